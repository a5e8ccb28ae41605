//! The web dashboard: server-rendered pages (askama templates compiled into the binary, one
//! stylesheet, no JavaScript needed). Every page and every form is an adapter over the same
//! `yatai_service` functions as the REST API: it parses, calls the service, and shows the result.
//! It re-implements no rule, and does not use the API's handler modules (`tests/dashboard_layering.rs`
//! keeps it so).
//!
//! - `page`: the [`page::Page`] and [`page::Submission`] extractors, the frame, error pages.
//! - `pager`, `form`, `format`: the one pager, forms with field errors, sizes and times.
//! - `pages/`: one module per resource, each with its routes, merged below (deployments and
//!   clusters: `pages/deployments.rs`, `pages/clusters.rs`).

mod form;
mod format;
mod page;
mod pager;
mod pages;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use page::CSRF_COOKIE;

use crate::AppState;

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(pages::auth::routes())
        .merge(pages::overview::routes())
        .merge(pages::registry::routes())
        .merge(pages::tokens::routes())
        .merge(pages::members::routes())
        .merge(pages::users::routes())
        .merge(pages::events::routes())
        .merge(pages::deployments::routes())
        .merge(pages::clusters::routes())
        .route("/static/app.css", get(stylesheet))
}

async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}
