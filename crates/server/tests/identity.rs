//! Setup, login, users, organizations, members and API tokens, on both backend pairs.

mod common;

use common::{assert_error, TestApp, ADMIN_PASSWORD, INIT_TOKEN};
use reqwest::StatusCode;
use serde_json::json;

backend_test!(setup_runs_once_only, |app: TestApp| async move {
    let c = app.browser();
    let body = json!({"token": "wrong", "name": "admin", "email": "admin@example.com", "password": ADMIN_PASSWORD});
    let (s, b) = c.post("/api/v1/setup", body).await;
    assert_error(s, &b, StatusCode::FORBIDDEN);
    assert_eq!(
        app.count_rows("users").await,
        0,
        "a refused setup writes nothing"
    );

    // Invalid input with the right token is refused before anything is written.
    let (s, b) = c.post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": "admin", "email": "not-an-email", "password": ADMIN_PASSWORD})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    assert_eq!(app.count_rows("users").await, 0);
    assert_eq!(app.count_rows("settings").await, 0);

    // Five setups at once: exactly one wins.
    let attempts = (0..5).map(|i| {
        let c = app.browser();
        async move {
            c.post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": format!("admin{i}"), "email": format!("a{i}@example.com"), "password": ADMIN_PASSWORD}))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(app.count_rows("users").await, 1);
    assert_eq!(app.count_rows("organizations").await, 1);

    let (s, b) = c.post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": "late", "email": "late@example.com", "password": ADMIN_PASSWORD})).await;
    assert_error(s, &b, StatusCode::CONFLICT);
    assert_eq!(app.count_rows("users").await, 1);
});

backend_test!(
    login_sessions_and_password_change,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (s, me) = admin.get("/api/v1/auth/current").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["name"], "admin");
        assert_eq!(me["resource_type"], "user");
        let (s, org) = admin.get("/api/v1/current_org").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(org["name"], "default");

        let stranger = app.browser();
        let (s, b) = stranger
            .post(
                "/api/v1/auth/login",
                json!({"name_or_email": "admin", "password": "wrong-password"}),
            )
            .await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED);
        let (s, b) = stranger
            .post(
                "/api/v1/auth/login",
                json!({"name_or_email": "nobody", "password": "wrong-password"}),
            )
            .await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED);
        let (s, b) = stranger.get("/api/v1/auth/current").await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED);
        // Login by e-mail works too.
        stranger.login("admin@example.com", ADMIN_PASSWORD).await;

        // Changing the password ends every session and the new password works.
        let (s, b) = admin
            .patch(
                "/api/v1/auth/reset_password",
                json!({"current_password": "bad", "new_password": "new-password-2"}),
            )
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST);
        let (s, _) = admin
            .patch(
                "/api/v1/auth/reset_password",
                json!({"current_password": ADMIN_PASSWORD, "new_password": "new-password-2"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            stranger.get("/api/v1/auth/current").await.0,
            StatusCode::UNAUTHORIZED
        );
        let fresh = app.browser();
        fresh.login("admin", "new-password-2").await;
        assert_eq!(
            fresh.post("/api/v1/auth/logout", json!({})).await.0,
            StatusCode::OK
        );
        assert_eq!(
            fresh.get("/api/v1/auth/current").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
);

backend_test!(api_token_life_cycle, |app: TestApp| async move {
    let admin = app.setup_admin().await;
    let (uid, secret) = admin
        .create_token("ci", &["api", "read_organization"])
        .await;
    assert!(secret.starts_with("yt_"));
    let (s, stored): (_, Option<String>) = (
        StatusCode::OK,
        sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_optional(app.state.db.pool())
            .await
            .unwrap(),
    );
    assert_eq!(s, StatusCode::OK);
    assert_ne!(
        stored.as_deref(),
        Some(secret.as_str()),
        "the secret is stored only as a hash"
    );

    // The secret is shown once: list and get never return it.
    let (_, list) = admin.get("/api/v1/api_tokens").await;
    assert_eq!(list["total"], 1);
    assert!(list["items"][0].get("token").is_none());
    let (_, one) = admin.get(&format!("/api/v1/api_tokens/{uid}")).await;
    assert_eq!(one["scopes"], json!(["api", "read_organization"]));
    assert!(one.get("token").is_none());
    assert_eq!(one["last_used_at"], json!(null));

    // It authenticates the CLI's header and records its use.
    let cli = app.with_token(&secret);
    let (s, me) = cli.get("/api/v1/auth/current").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "admin");
    let (_, one) = admin.get(&format!("/api/v1/api_tokens/{uid}")).await;
    assert!(one["last_used_at"].is_string(), "{one}");

    // Same name twice is a conflict; bad scopes and past expiry are refused; nothing is written.
    let (s, b) = admin
        .post(
            "/api/v1/api_tokens",
            json!({"name": "ci", "scopes": ["api"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT);
    let (s, b) = admin
        .post(
            "/api/v1/api_tokens",
            json!({"name": "x", "scopes": ["root"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = admin
        .post("/api/v1/api_tokens", json!({"name": "x", "scopes": []}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = admin
        .post(
            "/api/v1/api_tokens",
            json!({"name": "x", "scopes": ["api"], "expired_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = admin
        .post(
            "/api/v1/api_tokens",
            json!({"name": "x", "scopes": ["api"], "expired_at": "next week"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    assert_eq!(app.count_rows("api_tokens").await, 1);

    // Update description, scopes and expiry.
    let (s, upd) = admin.patch(&format!("/api/v1/api_tokens/{uid}"), json!({"description": "for CI", "scopes": ["api"], "expired_at": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["description"], "for CI");
    assert_eq!(upd["scopes"], json!(["api"]));
    assert_eq!(upd["expired_at"], "2999-01-01T00:00:00.000000Z");
    assert_eq!(upd["is_expired"], false);
    let (_, upd) = admin
        .patch(
            &format!("/api/v1/api_tokens/{uid}"),
            json!({"expired_at": null}),
        )
        .await;
    assert_eq!(upd["expired_at"], json!(null));

    // A token cannot mint a token with more scopes than it has.
    let (s, b) = app
        .with_token(
            &admin
                .create_token("writer", &["write_organization"])
                .await
                .1,
        )
        .post(
            "/api/v1/api_tokens",
            json!({"name": "escalate", "scopes": ["api"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN);

    // Expiry: a token stops working once its time has passed.
    let soon = chrono_in(1);
    let (s, short) = admin
        .post(
            "/api/v1/api_tokens",
            json!({"name": "short", "scopes": ["api"], "expired_at": soon}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{short}");
    let short_cli = app.with_token(short["token"].as_str().unwrap());
    assert_eq!(short_cli.get("/api/v1/current_org").await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (s, b) = short_cli.get("/api/v1/current_org").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);
    assert!(b["message"].as_str().unwrap().contains("expired"), "{b}");

    // Revoked: stops working, and is gone from the list.
    let (s, _) = admin
        .delete(&format!("/api/v1/api_tokens/{uid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = cli.get("/api/v1/auth/current").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin.get(&format!("/api/v1/api_tokens/{uid}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, b) = app.with_token("yt_0000").get("/api/v1/current_org").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED);
});

fn chrono_in(seconds: i64) -> String {
    yatai_domain::time::to_rfc3339(yatai_domain::time::now_micros() + seconds * 1_000_000)
}

/// Which single-scope tokens each endpoint accepts (the token's user is an admin, so only the scope limits).
const SCOPE_MATRIX: &[(&str, &str, &[&str])] = &[
    (
        "GET",
        "/api/v1/auth/current",
        &[
            "api",
            "read_organization",
            "write_organization",
            "read_cluster",
            "write_cluster",
        ],
    ),
    (
        "GET",
        "/api/v1/current_org",
        &["api", "read_organization", "write_organization"],
    ),
    ("PATCH", "/api/v1/current_org", &["write_organization"]),
    (
        "GET",
        "/api/v1/orgs/default",
        &["read_organization", "write_organization"],
    ),
    ("PATCH", "/api/v1/orgs/default", &["write_organization"]),
    (
        "GET",
        "/api/v1/members",
        &["read_organization", "write_organization"],
    ),
    ("POST", "/api/v1/members", &["write_organization"]),
    (
        "GET",
        "/api/v1/users",
        &["read_organization", "write_organization"],
    ),
    (
        "GET",
        "/api/v1/users/admin",
        &["read_organization", "write_organization"],
    ),
    ("GET", "/api/v1/api_tokens", &["write_organization"]),
];

backend_test!(
    token_scopes_are_enforced_on_every_endpoint,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (s, _) = admin.post("/api/v1/users", json!({"name": "dev", "email": "dev@example.com", "password": "dev-password", "role": "developer"})).await;
        assert_eq!(s, StatusCode::OK);
        for scope in yatai_domain::Scope::ALL {
            let scope = scope.as_str();
            let token = admin
                .create_token(&format!("only-{scope}"), &[scope])
                .await
                .1;
            let cli = app.with_token(&token);
            for (method, path, allowed) in SCOPE_MATRIX {
                let body = match (*method, *path) {
                    ("POST", "/api/v1/members") => {
                        Some(json!({"usernames": ["dev"], "role": "developer"}))
                    }
                    ("PATCH", _) => Some(json!({"description": "changed"})),
                    _ => None,
                };
                let (s, b) = cli.send(method.parse().unwrap(), path, body).await;
                if allowed.contains(&scope) {
                    assert_eq!(
                        s,
                        StatusCode::OK,
                        "{method} {path} with scope {scope} must be allowed: {b}"
                    );
                } else {
                    assert_error(s, &b, StatusCode::FORBIDDEN);
                }
            }
        }
    }
);

backend_test!(organizations_are_isolated, |app: TestApp| async move {
    let admin = app.setup_admin().await;
    // A second organization with its own member.
    let (s, b) = admin
        .post(
            "/api/v1/orgs",
            json!({"name": "other", "description": "another team"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = admin.post("/api/v1/orgs", json!({"name": "other"})).await;
    assert_error(s, &b, StatusCode::CONFLICT);
    let admin_other = admin.in_org("other");
    let (s, _) = admin_other.post("/api/v1/users", json!({"name": "bob", "email": "bob@example.com", "password": "bob-password", "role": "admin"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = admin.post("/api/v1/users", json!({"name": "dev", "email": "dev@example.com", "password": "dev-password", "role": "developer"})).await;
    assert_eq!(s, StatusCode::OK);

    let all = [
        "api",
        "read_organization",
        "write_organization",
        "read_cluster",
        "write_cluster",
    ];
    let (uid_a, token_a) = admin.create_token("a", &all).await;
    let (uid_b, token_b) = admin_other.create_token("b", &all).await;
    let (a, b) = (app.with_token(&token_a), app.with_token(&token_b));

    assert_eq!(a.get("/api/v1/current_org").await.1["name"], "default");
    assert_eq!(b.get("/api/v1/current_org").await.1["name"], "other");
    for (own, cli, foreign_org, foreign_token, foreign_user) in [
        (&uid_a, &a, "other", &uid_b, "bob"),
        (&uid_b, &b, "default", &uid_a, "dev"),
    ] {
        assert_eq!(
            cli.get(&format!("/api/v1/api_tokens/{own}")).await.0,
            StatusCode::OK
        );
        let (s, body) = cli
            .get(&format!("/api/v1/api_tokens/{foreign_token}"))
            .await;
        assert_error(s, &body, StatusCode::NOT_FOUND);
        let (s, body) = cli.get(&format!("/api/v1/orgs/{foreign_org}")).await;
        assert_error(s, &body, StatusCode::NOT_FOUND);
        let (s, body) = cli
            .patch(
                &format!("/api/v1/orgs/{foreign_org}"),
                json!({"description": "hijacked"}),
            )
            .await;
        assert_error(s, &body, StatusCode::NOT_FOUND);
        let (s, body) = cli.get(&format!("/api/v1/users/{foreign_user}")).await;
        assert_error(s, &body, StatusCode::NOT_FOUND);
        let (_, orgs) = cli.get("/api/v1/orgs").await;
        assert_eq!(
            orgs["total"], 1,
            "a token sees only its organization: {orgs}"
        );
        let (_, members) = cli.get("/api/v1/members").await;
        let names: Vec<&str> = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"]["name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&foreign_user), "{names:?}");
        let (_, tokens) = cli.get("/api/v1/api_tokens").await;
        assert_eq!(tokens["total"], 1);
    }
    // The foreign organization's description did not change.
    let (_, other) = admin_other.get("/api/v1/current_org").await;
    assert_eq!(other["description"], "another team");

    // A member of one organization cannot act in another by naming it.
    let dev = app.browser();
    dev.login("dev", "dev-password").await;
    let (s, body) = dev.in_org("other").get("/api/v1/current_org").await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    // Only a site admin may create organizations.
    let (s, body) = dev.post("/api/v1/orgs", json!({"name": "mine"})).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
});

backend_test!(
    roles_limit_members_and_rejected_requests_write_nothing,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        admin.create_user("dev", "dev-password", None).await;
        let users_before = app.count_rows("users").await;
        for (body, status) in [
            (
                json!({"name": "bad", "email": "nope", "password": "long-enough"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "bad name", "email": "b@example.com", "password": "long-enough"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "short", "email": "s@example.com", "password": "short"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "x", "email": "x@example.com", "password": "long-enough", "role": "owner"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "dev", "email": "other@example.com", "password": "long-enough"}),
                StatusCode::CONFLICT,
            ),
            (
                json!({"name": "dev2", "email": "dev@example.com", "password": "long-enough"}),
                StatusCode::CONFLICT,
            ),
            (json!({"name": 5}), StatusCode::BAD_REQUEST),
        ] {
            let (s, b) = admin.post("/api/v1/users", body).await;
            assert_error(s, &b, status);
        }
        assert_eq!(
            app.count_rows("users").await,
            users_before,
            "refused user creations write nothing"
        );
        assert_eq!(app.count_rows("members").await, 2);

        // New users default to developer; a developer cannot manage members.
        let (_, members) = admin.get("/api/v1/members").await;
        let role_of = |members: &serde_json::Value, name: &str| {
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user"]["name"] == name)
                .map(|m| m["role"].as_str().unwrap().to_string())
        };
        assert_eq!(role_of(&members, "dev").as_deref(), Some("developer"));
        let dev = app.browser();
        dev.login("dev", "dev-password").await;
        let (s, b) = dev
            .post(
                "/api/v1/members",
                json!({"usernames": ["dev"], "role": "admin"}),
            )
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        let (s, b) = dev
            .post(
                "/api/v1/users",
                json!({"name": "eve", "email": "eve@example.com", "password": "long-enough"}),
            )
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);

        // One unknown user in a batch: nobody's role changes.
        let (s, b) = admin
            .post(
                "/api/v1/members",
                json!({"usernames": ["dev", "ghost"], "role": "guest"}),
            )
            .await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        let (_, members) = admin.get("/api/v1/members").await;
        assert_eq!(role_of(&members, "dev").as_deref(), Some("developer"));
        // The last admin can be neither demoted nor removed.
        let (s, b) = admin
            .post(
                "/api/v1/members",
                json!({"usernames": ["admin"], "role": "guest"}),
            )
            .await;
        assert_error(s, &b, StatusCode::CONFLICT);
        let (s, b) = admin
            .delete("/api/v1/members", Some(json!({"username": "admin"})))
            .await;
        assert_error(s, &b, StatusCode::CONFLICT);
        let (_, members) = admin.get("/api/v1/members").await;
        assert_eq!(role_of(&members, "admin").as_deref(), Some("admin"));

        // Demote dev to guest: a guest reads but cannot change the organization.
        let (s, _) = admin
            .post(
                "/api/v1/members",
                json!({"usernames": ["dev"], "role": "guest"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(dev.get("/api/v1/members").await.0, StatusCode::OK);
        let (s, b) = dev
            .patch("/api/v1/current_org", json!({"description": "x"}))
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        // Admin resets dev's password; dev's session ends.
        let (s, _) = admin
            .post(
                "/api/v1/users/dev/reset_password",
                json!({"new_password": "reset-password"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(dev.get("/api/v1/members").await.0, StatusCode::UNAUTHORIZED);
        // Removing dev: they can no longer act in the organization.
        let (s, _) = admin
            .delete("/api/v1/members", Some(json!({"username": "dev"})))
            .await;
        assert_eq!(s, StatusCode::OK);
        let again = app.browser();
        again.login("dev", "reset-password").await;
        assert_eq!(
            again.get("/api/v1/current_org").await.0,
            StatusCode::FORBIDDEN
        );
        let (s, b) = admin
            .delete("/api/v1/members", Some(json!({"username": "dev"})))
            .await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
    }
);

backend_test!(errors_have_one_shape, |app: TestApp| async move {
    let admin = app.setup_admin().await;
    let raw = reqwest::Client::new();
    let res = raw
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_error(status, &res.json().await.unwrap(), StatusCode::BAD_REQUEST);
    let res = raw
        .post(format!("{}/api/v1/auth/login", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_error(status, &res.json().await.unwrap(), StatusCode::BAD_REQUEST);
    let (s, b) = admin.get("/api/v1/no/such/route").await;
    assert_error(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = admin
        .send(reqwest::Method::PUT, "/api/v1/version", None)
        .await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED);
    let (s, b) = admin.get("/api/v1/users/nobody").await;
    assert_error(s, &b, StatusCode::NOT_FOUND);
});

backend_test!(restart_keeps_all_data, |app: TestApp| async move {
    let admin = app.setup_admin().await;
    let (_, secret) = admin.create_token("keep", &["api"]).await;
    let (s, _) = admin
        .post(
            "/api/v1/users",
            json!({"name": "dev", "email": "dev@example.com", "password": "dev-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let app = app.restart().await;
    let (s, me) = app.with_token(&secret).get("/api/v1/auth/current").await;
    assert_eq!(s, StatusCode::OK, "the token survives a restart: {me}");
    let c = app.browser();
    c.login("dev", "dev-password").await;
    let (s, b) = c.post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": "x", "email": "x@example.com", "password": ADMIN_PASSWORD})).await;
    assert_error(s, &b, StatusCode::CONFLICT);
});

backend_test!(meta_endpoints, |app: TestApp| async move {
    let c = app.browser();
    let (s, v) = c.get("/api/v1/version").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let (s, info) = c.get("/api/v1/info").await;
    assert_eq!(s, StatusCode::OK);
    let expected_db = match app.backend {
        common::Backend::Embedded => "sqlite",
        common::Backend::Production => "postgresql",
    };
    assert_eq!(info["database"], expected_db);
    assert_eq!(c.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(c.get("/readyz").await.0, StatusCode::OK);
    let (_, metrics) = c.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("yatai_http_requests_total")
            && metrics.contains("route=\"/api/v1/version\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("yatai_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("yatai_uploads_in_flight"), "{metrics}");

    let (s, doc) = c.get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (method, path, _) in SCOPE_MATRIX {
        let p = path
            .replace("/default", "/{name}")
            .replace("/users/admin", "/users/{name}");
        assert!(
            paths
                .get(&p)
                .and_then(|m| m.get(method.to_lowercase()))
                .is_some(),
            "{method} {p} missing from the OpenAPI document"
        );
    }
    for p in [
        "/api/v1/setup",
        "/api/v1/auth/login",
        "/api/v1/api_tokens/{uid}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/version",
        "/api/v1/info",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
});

backend_test!(
    imported_yatai_1_passwords_log_in_and_are_rehashed,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (s, _) = admin.post("/api/v1/users", json!({"name": "legacy", "email": "legacy@example.com", "password": "placeholder-pw"})).await;
        assert_eq!(s, StatusCode::OK);
        // As `yatai import` stores it: the bcrypt hash of Yatai 1.x.
        let bcrypt_hash = bcrypt::hash("legacy-password", 4).unwrap();
        sqlx::query("UPDATE users SET password_hash = $1 WHERE name = 'legacy'")
            .bind(&bcrypt_hash)
            .execute(app.state.db.pool())
            .await
            .unwrap();
        let c = app.browser();
        let (s, _) = c
            .post(
                "/api/v1/auth/login",
                json!({"name_or_email": "legacy", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        c.login("legacy", "legacy-password").await;
        let stored: String =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE name = 'legacy'")
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        assert!(
            stored.starts_with("$argon2id$"),
            "the legacy hash is replaced at login: {stored}"
        );
        app.browser().login("legacy", "legacy-password").await;
    }
);

backend_test!(
    setup_is_closed_when_users_exist_without_it,
    |app: TestApp| async move {
        // As after `yatai import` of a Yatai 1.x installation: users, but setup never ran here.
        let mut tx = app.state.db.begin().await.unwrap();
        yatai_store::db::users::create(&mut tx, &new_user("imported", "imported@example.com"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (s, b) = app.browser().post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": "intruder", "email": "i@example.com", "password": ADMIN_PASSWORD})).await;
        assert_error(s, &b, StatusCode::CONFLICT);
        assert_eq!(app.count_rows("users").await, 1);
    }
);

/// The fields of a user created straight in the store, as an import would.
fn new_user<'a>(name: &'a str, email: &'a str) -> yatai_store::db::users::NewUser<'a> {
    yatai_store::db::users::NewUser {
        name,
        email,
        first_name: "",
        last_name: "",
        password_hash: "x",
        is_site_admin: true,
    }
}

// Two users whose names differ only in letter case, created at once: the second waits for the
// first and is refused. On PostgreSQL, each creation's check for a taken name could not see the
// other's uncommitted user, and both were committed.
backend_test!(
    users_whose_names_differ_in_case_created_at_once_are_not_both_kept,
    |app: TestApp| async move {
        use yatai_domain::Error;
        let db = app.state.db.clone();
        let mut first = db.begin().await.unwrap();
        yatai_store::db::users::create(&mut first, &new_user("Racer", "one@example.com"))
            .await
            .unwrap();
        let second = common::waits_for(first, async move {
            let mut tx = db.begin().await?;
            let user =
                yatai_store::db::users::create(&mut tx, &new_user("racer", "two@example.com"))
                    .await?;
            tx.commit()
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok::<_, Error>(user)
        })
        .await;
        assert!(matches!(second, Err(Error::Conflict(_))), "{second:?}");
        let kept: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE lower(name) = 'racer'")
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(kept, 1);
    }
);

/// The whole OpenAPI document, registry included, as a reviewed snapshot: a change of the API's
/// shape shows up in review (`cargo insta review`), and nothing changes it unnoticed.
#[test]
fn the_openapi_document_is_the_reviewed_one() {
    let doc = serde_json::to_value(yatai_server::api::openapi()).unwrap();
    let registry_ops = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.contains("_repositories"))
        .count();
    assert!(registry_ops > 10, "the registry routes are documented");
    let upload = &doc["paths"]["/api/v1/bento_repositories/{name}/bentos/{version}/upload"]["put"];
    assert_eq!(
        upload["parameters"].as_array().unwrap().len(),
        2,
        "path parameters: {upload}"
    );
    assert!(upload["requestBody"]["content"]["application/octet-stream"].is_object());
    insta::assert_json_snapshot!("openapi", doc);
}

// Two admins demoting each other at once: one demotion wins, the other is refused, and the
// organization keeps an admin. On PostgreSQL both once counted the other admin and committed
// (each changed a different row), leaving none; rounds, as the race is one of timing.
backend_test!(
    two_admins_demoting_each_other_at_once_leave_one_admin,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        admin.create_user("second", "second-password", None).await;
        let second = app.browser();
        second.login("second", "second-password").await;
        let admins = |members: &serde_json::Value| {
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "admin")
                .map(|m| m["user"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let demote = |name: &str| json!({"usernames": [name], "role": "developer"});
        let both = json!({"usernames": ["admin", "second"], "role": "admin"});
        for round in 0..12 {
            // Whoever is still an admin makes both admins again.
            if admin.post("/api/v1/members", both.clone()).await.0 != StatusCode::OK {
                let (s, b) = second.post("/api/v1/members", both.clone()).await;
                assert_eq!(s, StatusCode::OK, "round {round}: {b}");
            }
            let ((s1, b1), (s2, b2)) = tokio::join!(
                admin.post("/api/v1/members", demote("second")),
                second.post("/api/v1/members", demote("admin")),
            );
            let ok = [s1, s2].iter().filter(|s| **s == StatusCode::OK).count();
            assert_eq!(
                ok, 1,
                "round {round}: exactly one demotion wins: {s1} {b1}, {s2} {b2}"
            );
            for (s, b) in [(s1, b1), (s2, b2)] {
                assert!(
                    [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(&s),
                    "round {round}: {s} {b}"
                );
            }
            let (_, members) = admin.get("/api/v1/members").await;
            assert_eq!(
                admins(&members).len(),
                1,
                "round {round}: one admin is left: {members}"
            );
        }
    }
);

// Two changes of one token at once, its scopes narrowed and its description changed: both are
// kept. The description's change once wrote every field from the token as read before, and put
// the wider scopes back.
backend_test!(
    a_tokens_description_changed_beside_its_scopes_keeps_the_new_scopes,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (uid, _) = admin
            .create_token("ci", &["api", "read_organization"])
            .await;
        let narrowed = yatai_store::db::api_tokens::join_scopes(&[yatai_domain::Scope::Api]);
        let mut first = app.state.db.begin().await.unwrap();
        sqlx::query("UPDATE api_tokens SET scopes = $1 WHERE uid = $2")
            .bind(&narrowed)
            .bind(&uid)
            .execute(&mut *first)
            .await
            .unwrap();
        let (s, b) = common::waits_for(first, {
            let uid = uid.clone();
            async move {
                admin
                    .patch(
                        &format!("/api/v1/api_tokens/{uid}"),
                        json!({"description": "renamed"}),
                    )
                    .await
            }
        })
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["description"], "renamed");
        let (scopes, description): (String, String) =
            sqlx::query_as("SELECT scopes, description FROM api_tokens WHERE uid = $1")
                .bind(&uid)
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(
            (scopes.as_str(), description.as_str()),
            (narrowed.as_str(), "renamed")
        );
    }
);

// An admin demoted while his own change of roles waits for the organization's lock: the change
// is refused, as his role is checked again under the lock (it was read when the request began,
// and he could make himself admin again).
backend_test!(
    an_admin_demoted_while_his_change_waits_is_refused,
    |app: TestApp| async move {
        use yatai_store::db::members;
        let admin = app.setup_admin().await;
        admin
            .create_user("second", "second-password", Some("admin"))
            .await;
        let second = app.browser();
        second.login("second", "second-password").await;
        let (org, uid): (String, String) = sqlx::query_as(
            "SELECT m.organization_uid, u.uid FROM members m JOIN users u ON u.uid = m.user_uid WHERE u.name = 'second'",
        )
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
        // The first admin's demotion of the second, as the service makes it.
        let mut first = app.state.db.begin().await.unwrap();
        members::lock_organization(&mut *first, &org).await.unwrap();
        members::upsert(&mut *first, &org, &uid, yatai_domain::Role::Developer)
            .await
            .unwrap();
        let (s, b) = common::waits_for(first, async move {
            second
                .post(
                    "/api/v1/members",
                    json!({"usernames": ["second"], "role": "admin"}),
                )
                .await
        })
        .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        let role: String = sqlx::query_scalar("SELECT role FROM members WHERE user_uid = $1")
            .bind(&uid)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        assert_eq!(role, "developer");
    }
);
