//! The REST API: one module per resource, assembled here with the OpenAPI document.

pub mod api_tokens;
pub mod auth;
pub mod members;
pub mod meta;
pub mod organizations;
pub mod schemas;
pub mod setup;
pub mod users;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use yatai_domain::Error;

use crate::error::ApiError;
use crate::AppState;

/// The path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(info(
    title = "Yatai",
    description = "The Yatai registry API: what the BentoML CLI and the dashboard speak."
))]
struct ApiDoc;

/// Every documented route, with its OpenAPI description.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(meta::routes())
        .merge(setup::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(organizations::routes())
        .merge(members::routes())
        .merge(api_tokens::routes())
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    crate::metrics::handle();
    let (router, doc) = documented_routes().split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router
        .route(
            OPENAPI_PATH,
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .fallback(|| async { ApiError(Error::NotFound("no such route".into())) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(crate::error::ErrorBody {
                    error: "method_not_allowed",
                    message: "this route does not accept that method".into(),
                }),
            )
                .into_response()
        })
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
