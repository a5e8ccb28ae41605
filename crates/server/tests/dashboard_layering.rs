//! The dashboard is an adapter over `yatai_service`, beside the API, never on top of it: no file
//! of `src/dashboard/` may name the API's handler modules (`crate::api`), nor call the store
//! (its row types, which the services return, are fine). When the dashboard needs something the
//! API has, it calls the service function the API calls, or the shared helper moves out of
//! `api/` (as `crate::auth::session_cookie` and `crate::error` did).
//!
//! Why a test and not a lint: clippy's `disallowed-methods`/`disallowed-types` name items, not
//! modules, and would have to list every handler and store function (a new one would slip
//! through), and moving the dashboard into its own crate would need the router split across
//! crates. This scan covers every file, present and future, of the folder.

use std::path::{Path, PathBuf};

/// The tokens of a source with their line numbers: identifiers, `::`, single punctuation.
/// Comments and string literals are left out.
fn tokens(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in source.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or("");
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                let mut escaped = false;
                for s in chars.by_ref() {
                    if s == '"' && !escaped {
                        break;
                    }
                    escaped = s == '\\' && !escaped;
                }
            } else if c.is_alphanumeric() || c == '_' {
                let mut ident = c.to_string();
                while let Some(&d) = chars.peek() {
                    if !(d.is_alphanumeric() || d == '_') {
                        break;
                    }
                    ident.push(d);
                    chars.next();
                }
                out.push((n + 1, ident));
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                out.push((n + 1, "::".into()));
            } else if !c.is_whitespace() {
                out.push((n + 1, c.to_string()));
            }
        }
    }
    out
}

/// The lines where a source names a module called `api`: as a path segment (next to `::`) or
/// as an item of a `use` group.
fn api_references(source: &str) -> Vec<usize> {
    let tokens = tokens(source);
    let text = |i: usize| tokens.get(i).map(|(_, t)| t.as_str());
    let mut found = Vec::new();
    let mut in_use = false;
    for (i, (line, t)) in tokens.iter().enumerate() {
        in_use = (in_use || t == "use") && t != ";";
        let prev = i.checked_sub(1).and_then(text);
        if t == "api" && (in_use || prev == Some("::") || text(i + 1) == Some("::")) {
            found.push(*line);
        }
    }
    found
}

/// The lines where a source uses something of `yatai_store` that is not a type (a function or
/// a module to call functions of): only the services call the store.
fn store_calls(source: &str) -> Vec<usize> {
    let tokens = tokens(source);
    let text = |i: usize| tokens.get(i).map(|(_, t)| t.as_str()).unwrap_or("");
    let is_type = |t: &str| t.starts_with(|c: char| c.is_ascii_uppercase());
    let mut found = Vec::new();
    for (start, (line, t)) in tokens.iter().enumerate() {
        if t != "yatai_store" {
            continue;
        }
        let mut i = start;
        let mut depth = 0;
        loop {
            match text(i + 1) {
                "::" => i += 1,
                "{" => {
                    depth += 1;
                    i += 1;
                }
                "," if depth > 0 => i += 1,
                "}" if depth > 0 => {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
                next if next.starts_with(|c: char| c.is_alphanumeric() || c == '_') => {
                    i += 1;
                    let leaf = text(i + 1) != "::";
                    if leaf && !is_type(next) {
                        found.push(*line);
                    }
                    if leaf && depth == 0 {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_scan_finds_every_way_of_naming_the_api_or_calling_the_store() {
    for bad in [
        "use crate::api::members;",
        "use crate::api::{auth, events};",
        "use crate::{api, AppState};",
        "use crate::{\n    api::registry::ListQuery,\n    AppState,\n};",
        "let x = crate::api::events::list(&state, &caller, &q).await?;",
        "use super::super::api;",
        "let q = crate :: api :: registry::ListQuery::default();",
    ] {
        assert!(!api_references(bad).is_empty(), "not caught: {bad}");
    }
    for bad in [
        "use yatai_store::db::labels;",
        "use yatai_store::db::{labels, versions::Version};",
        "use yatai_store::db::{\n    bento_models, cli_logins,\n};",
        "let n = yatai_store::db::versions::count_in_repository(pool, &uid).await?;",
        "use yatai_store::db::versions::{self, Version};",
    ] {
        assert!(!store_calls(bad).is_empty(), "not caught: {bad}");
    }
    for fine in [
        "use crate::error::ApiError;",
        "let to = \"/api_tokens\"; // crate::api is not used",
        "Router::new().route(\"/api_tokens/authorize_cli\", post(authorize_cli))",
        "let text = \"see crate::api::members and yatai_store::db::labels\";",
        "api_tokens::list(state, caller, page)",
        "use yatai_store::db::versions::Version;",
        "use yatai_store::db::{events::Event, versions::{Version, VersionFilter}};",
        "fn f(v: &yatai_store::db::versions::Version) {}",
    ] {
        assert!(
            api_references(fine).is_empty() && store_calls(fine).is_empty(),
            "wrongly caught: {fine}"
        );
    }
}

#[test]
fn the_dashboard_calls_only_the_services() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 5,
        "the dashboard sources were not found under {}",
        root.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        let mut report = |what: &str, line: usize| {
            found.push(format!(
                "{}:{line}: {what}: {}",
                file.display(),
                lines[line - 1].trim()
            ))
        };
        for line in api_references(&source) {
            report("uses the API's handlers", line);
        }
        for line in store_calls(&source) {
            report("calls the store", line);
        }
    }
    assert!(
        found.is_empty(),
        "the dashboard goes around the services; call the yatai_service function the API calls:\n{}",
        found.join("\n")
    );
}
