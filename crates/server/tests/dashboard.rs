//! The dashboard over HTTP (no browser): CSRF, permissions identical to the API, the BentoML
//! CLI's browser login, escaping. The browser tests in tests/browser drive real Chromium.

mod common;

use common::{csrf_of, page, post_form, TestApp};
use reqwest::StatusCode;
use serde_json::json;

backend_test!(
    cli_browser_login_hands_out_a_token_once,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let cli = reqwest::Client::new();
        let code: serde_json::Value = cli
            .get(format!("{}/api/v1/auth/code", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = code["code"].as_str().unwrap().to_string();
        let poll = || {
            cli.get(format!("{}/api/v1/auth/token?code={code}", app.base))
                .send()
        };
        assert_eq!(
            poll().await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "not authorized yet"
        );

        let (s, html) = page(&admin, &format!("/api_tokens?code={code}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=\"authorize-cli\""), "{html}");
        let (s, html) = post_form(
            &admin,
            "/api_tokens/authorize_cli",
            &[("csrf", &csrf_of(&html)), ("code", &code)],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=\"cli-login-done\""));

        let res = poll().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let token = res.json::<serde_json::Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, me) = app.with_token(&token).get("/api/v1/auth/current").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["name"], "admin");
        assert_eq!(
            poll().await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "the token is handed out once"
        );
        let (s, html) = page(&admin, &format!("/api_tokens?code={code}")).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "a used code cannot be authorized again"
        );
        assert!(html.contains("run `bentoml cloud login` again"));
        let (s, _) = page(&admin, "/api_tokens?code=made-up").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

backend_test!(forms_need_the_csrf_token, |app: TestApp| async move {
    let admin = app.setup_admin().await;
    let (_, html) = page(&admin, "/api_tokens").await;
    let csrf = csrf_of(&html);
    let (s, _) = post_form(&admin, "/api_tokens", &[("name", "x"), ("scopes", "api")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = post_form(
        &admin,
        "/api_tokens",
        &[("csrf", "forged"), ("name", "x"), ("scopes", "api")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        app.count_rows("api_tokens").await,
        0,
        "a refused form writes nothing"
    );
    let (s, html) = post_form(
        &admin,
        "/api_tokens",
        &[
            ("csrf", &csrf),
            ("name", "ci"),
            ("scopes", "api"),
            ("scopes", "read_organization"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("id=\"token-secret\"") && html.contains("bentoml yatai login --endpoint"),
        "the secret and login commands are shown once"
    );
    let (_, html) = page(&admin, "/api_tokens").await;
    assert!(
        !html.contains("id=\"token-secret\""),
        "the secret is not shown again"
    );
    // Server-side validation shows the error next to the field and writes nothing.
    let (s, html) = post_form(
        &admin,
        "/api_tokens",
        &[("csrf", &csrf), ("name", "bad name"), ("scopes", "api")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(html.contains("class=\"field-error\""));
    assert_eq!(app.count_rows("api_tokens").await, 1);
});

backend_test!(
    guests_see_no_create_buttons_and_forged_posts_fail,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, html) = page(&admin, "/users").await;
        let (s, _) = post_form(
            &admin,
            "/users",
            &[
                ("csrf", &csrf_of(&html)),
                ("name", "gus"),
                ("email", "gus@example.com"),
                ("password", "gus-password"),
                ("role", "guest"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let guest = app.browser();
        guest.login("gus", "gus-password").await;
        let (s, html) = page(&guest, "/members").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains("data-member=\"admin\"")
                && !html.contains("id=\"add-member\"")
                && !html.contains("change-role"),
            "a guest sees no member forms"
        );
        assert!(
            !html.contains("href=\"/users\""),
            "a guest has no Users link"
        );
        let csrf = csrf_of(&html);
        let (s, _) = post_form(
            &guest,
            "/members",
            &[("csrf", &csrf), ("username", "gus"), ("role", "admin")],
        )
        .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a forged POST is refused like the API refuses it"
        );
        let (s, _) = page(&guest, "/users").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (_, members) = admin.get("/api/v1/members").await;
        assert!(members["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"]["name"] == "gus" && m["role"] == "guest"));
        // Anonymous visitors are sent to the login page and come back after it.
        let anon = app.browser();
        let res = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/events", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/login?next=%2Fevents");
        let (s, html) = page(&anon, "/login?next=/events").await;
        assert_eq!(s, StatusCode::OK);
        let (s, html) = post_form(
            &anon,
            "/login",
            &[
                ("csrf", &csrf_of(&html)),
                ("next", "/events"),
                ("name_or_email", "gus"),
                ("password", "gus-password"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("<h1>Events</h1>"));
    }
);

backend_test!(
    pages_show_pushed_items_and_escape_them,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, token) = admin.create_token("cli", &["api"]).await;
        let api = app.with_token(&token);
        api.post("/api/v1/model_repositories", json!({"name": "clf"}))
            .await;
        let (s, b) = api.post("/api/v1/model_repositories/clf/models", json!({"version": "m1", "manifest": {"module": "bentoml.sklearn", "size_bytes": 10}, "labels": [{"key": "note", "value": "<script>alert(1)</script>"}]})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        api.post("/api/v1/bento_repositories", json!({"name": "svc"}))
            .await;
        api.post("/api/v1/bento_repositories/svc/bentos", json!({"version": "b1", "manifest": {"service": "svc:Svc", "models": ["clf:m1"], "size_bytes": 5}})).await;
        let (s, html) = page(&admin, "/models/clf/m1").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains("alert(1)") && !html.contains("<script>"),
            "labels are escaped"
        );
        assert!(
            html.contains("bentoml models pull clf:m1") && html.contains("data-bento=\"svc:b1\""),
            "a model lists the bentos using it"
        );
        let (_, html) = page(&admin, "/bentos/svc/b1").await;
        assert!(html.contains("data-model=\"clf:m1\"") && html.contains("id=\"pull-command\""));
        let (_, html) = page(&admin, "/bentos").await;
        assert!(html.contains("data-repository=\"svc\""));
        let (_, html) = page(&admin, "/models?label=note%3Dnothing").await;
        assert!(html.contains("No model matches"));
        let (s, html) = page(&admin, "/models?label=broken").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(html.contains("KEY=VALUE"));
        let (_, html) = page(&admin, "/").await;
        assert!(html.contains("id=\"count-models\">1<"));
        let (_, html) = page(&admin, "/events?operation_name=create").await;
        assert!(html.contains("data-resource=\"clf:m1\""));
    }
);

backend_test!(
    repository_lists_show_each_repository_with_its_own_latest_version,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, token) = admin.create_token("cli", &["api"]).await;
        let api = app.with_token(&token);
        for (repo, versions) in [
            ("alpha", vec!["a1", "a2"]),
            ("beta", vec!["b1"]),
            ("gamma", vec!["g1", "g2", "g3"]),
        ] {
            api.post("/api/v1/bento_repositories", json!({"name": repo}))
                .await;
            for (i, v) in versions.iter().enumerate() {
                let (s, b) = api.post(&format!("/api/v1/bento_repositories/{repo}/bentos"), json!({"version": v, "manifest": {"service": "s:S"}, "build_at": format!("2026-01-0{} 00:00:00.000000", i + 1)})).await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
        }
        let (s, html) = page(&admin, "/bentos").await;
        assert_eq!(s, StatusCode::OK);
        for (repo, latest) in [("alpha", "a2"), ("beta", "b1"), ("gamma", "g3")] {
            let row_start = html
                .find(&format!("data-repository=\"{repo}\""))
                .unwrap_or_else(|| panic!("{repo} is listed"));
            let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
            assert!(
                row.contains(&format!("/bentos/{repo}/{latest}\"")),
                "{repo} shows its own latest version {latest}: {row}"
            );
        }
    }
);
