//! The REST API: one module per resource, assembled here with the OpenAPI document.

pub mod api_tokens;
pub mod auth;
pub mod deployments;
pub mod events;
pub mod members;
pub mod meta;
pub mod organizations;
pub mod presigned;
pub mod registry;
pub mod schemas;
pub mod setup;
pub mod stream;
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
        .merge(events::routes())
        .merge(presigned::routes())
        .merge(deployments::routes())
}

/// Adds the registry routes (generic handlers mounted by a route table) to the OpenAPI document:
/// path and query parameters, bodies and answers with their schemas, and the error answers.
fn document_registry(doc: &mut utoipa::openapi::OpenApi, routes: &[registry::RegistryRoute]) {
    use registry::Payload;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder, ResponsesBuilder};
    use utoipa::IntoParams;

    let mut deps = registry::SchemaDeps::new();
    let error = {
        use utoipa::{PartialSchema, ToSchema};
        deps.push((
            yatai_api_types::ErrorBody::name().into_owned(),
            yatai_api_types::ErrorBody::schema(),
        ));
        Ref::from_schema_name(yatai_api_types::ErrorBody::name())
    };
    let binary = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build()
    };
    for r in routes {
        let method = match r.method.as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        let mut params: Vec<_> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build()
            })
            .collect();
        if r.lists {
            params.extend(yatai_api_types::ListQuery::into_params(|| {
                Some(ParameterIn::Query)
            }));
        }
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .tag(r.tag)
            .parameters(Some(params));
        match r.body {
            Payload::Nothing => {}
            Payload::Json(schema) => {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(schema(&mut deps)))
                                .build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ));
            }
            Payload::Archive => {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/octet-stream",
                            ContentBuilder::new().schema(Some(binary())).build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ));
            }
        }
        let mut responses = ResponsesBuilder::new();
        match r.answer {
            Payload::Nothing => {
                responses = responses.response("200", ResponseBuilder::new().description("done"));
            }
            Payload::Json(schema) => {
                responses = responses.response(
                    "200",
                    ResponseBuilder::new().description("the answer").content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(schema(&mut deps)))
                            .build(),
                    ),
                );
            }
            Payload::Archive => {
                for (code, what) in [
                    ("200", "the archive"),
                    ("206", "the requested range of the archive"),
                ] {
                    responses = responses.response(
                        code,
                        ResponseBuilder::new().description(what).content(
                            "application/octet-stream",
                            ContentBuilder::new().schema(Some(binary())).build(),
                        ),
                    );
                }
                responses = responses.response(
                    "416",
                    ResponseBuilder::new().description("the range starts past the end"),
                );
            }
        }
        for (code, what) in [
            ("400", "bad input"),
            ("401", "no or invalid credentials"),
            ("403", "not allowed"),
            ("404", "no such repository or version"),
            (
                "409",
                "a state that forbids it (not uploaded, a push in progress, ...)",
            ),
            ("429", "too many requests: wait Retry-After seconds"),
            ("503", "a dependency is unavailable"),
        ] {
            responses = responses.response(
                code,
                ResponseBuilder::new().description(what).content(
                    "application/json",
                    ContentBuilder::new().schema(Some(error.clone())).build(),
                ),
            );
        }
        let op = op.responses(responses.build()).build();
        doc.paths
            .add_path_operation(r.path.clone(), vec![method], op);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in deps {
        components.schemas.entry(name).or_insert(schema);
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented_routes().into_openapi();
    document_registry(&mut doc, &registry::routes());
    doc
}

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    crate::metrics::handle();
    let (router, mut doc) = documented_routes().split_for_parts();
    let registry_routes = registry::routes();
    document_registry(&mut doc, &registry_routes);
    let router = registry::mount(router, registry_routes).merge(crate::dashboard::router());
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
                    field: None,
                }),
            )
                .into_response()
        })
        .layer(axum::middleware::from_fn(legacy_client_errors))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// bentoml 1.0 recognises "not found" only as status 400 with `record not found` in the body
/// (Yatai before 1.1.10): answer it so, and every other client with a plain 404.
async fn legacy_client_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let legacy = registry::client_generation(req.headers())
        == yatai_domain::registry::ClientGeneration::Legacy;
    let response = next.run(req).await;
    if !legacy || response.status() != StatusCode::NOT_FOUND {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "record not found", "message": format!("{message}: record not found")}))).into_response()
}
