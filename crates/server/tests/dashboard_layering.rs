//! The dashboard is an adapter over `yatai_service`, beside the API, never on top of it: no file
//! of `src/dashboard/` may name the API's handler modules (`crate::api`). When the dashboard
//! needs something the API has, it calls the service function the API calls, or the shared
//! helper moves out of `api/` (as `crate::auth::session_cookie` and `crate::error` did).
//!
//! Why a test and not a lint: clippy's `disallowed-methods`/`disallowed-types` name items, not
//! modules, and would have to list every handler (a new one would slip through), and moving the
//! dashboard into its own crate would need the router split across crates. This scan covers every
//! file, present and future, of the folder.

use std::path::{Path, PathBuf};

/// Where a source names a module called `api`: `(line, text)` of each place. Comments are
/// ignored; `api` counts as a path segment (next to `::`) or as an item of a `use` group.
fn api_references(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_use = false;
    for (n, raw) in source.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or("");
        let tokens = tokens(line);
        for (i, t) in tokens.iter().enumerate() {
            if t == "use" {
                in_use = true;
            }
            let prev = i
                .checked_sub(1)
                .and_then(|p| tokens.get(p))
                .map(String::as_str);
            let next = tokens.get(i + 1).map(String::as_str);
            if t == "api" && (in_use || prev == Some("::") || next == Some("::")) {
                found.push((n + 1, raw.trim().to_string()));
            }
            if t == ";" {
                in_use = false;
            }
        }
    }
    found
}

/// Identifiers, `::`, and single punctuation; string literals are skipped.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
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
            out.push(ident);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push("::".into());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
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
fn the_scan_finds_every_way_of_naming_the_api() {
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
    for fine in [
        "use crate::error::ApiError;",
        "let to = \"/api_tokens\"; // crate::api is not used",
        "Router::new().route(\"/api_tokens/authorize_cli\", post(authorize_cli))",
        "let text = \"see crate::api::members\";",
        "api_tokens::list(state, caller, page)",
    ] {
        assert!(api_references(fine).is_empty(), "wrongly caught: {fine}");
    }
}

#[test]
fn the_dashboard_does_not_use_the_api_handlers() {
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
        for (line, text) in api_references(&source) {
            found.push(format!("{}:{line}: {text}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "the dashboard uses the API's handler modules; call the yatai_service function instead:\n{}",
        found.join("\n")
    );
}
