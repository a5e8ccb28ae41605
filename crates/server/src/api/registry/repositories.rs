//! Repository handlers, generic over the kind: adapters over `yatai_service::registry::repositories`.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use yatai_api_types::{CreateRepository, UpdateRepository};
use yatai_service::registry::repositories;

use super::{cached, client_generation, load_repository, ListQuery, Presenter, RegistryKind};
use crate::api::schemas::{self, RepositorySchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub async fn list<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let spec = super::parse_list(&q)?;
    cached::answer(&state, &caller, &uri, &headers, || async {
        let page = repositories::list(&state, &caller, K::KIND, &spec).await?;
        let items = Presenter::new(&state, client_generation(&headers)).repository_page(&page)?;
        Ok(schemas::page(spec.page(), page.total, items))
    })
    .await
}

pub async fn create<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRepository>,
) -> ApiResult<Json<RepositorySchema>> {
    let repo =
        repositories::create(&state, &caller, K::KIND, &body.name, &body.description).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .repository(&repo)
            .await?,
    ))
}

pub async fn get<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    cached::answer(&state, &caller, &uri, &headers, || async {
        let repo = load_repository::<K>(&state, &caller, &name).await?;
        Presenter::new(&state, client_generation(&headers))
            .repository(&repo)
            .await
    })
    .await
}

pub async fn update<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRepository>,
) -> ApiResult<Json<RepositorySchema>> {
    let repo =
        repositories::update(&state, &caller, K::KIND, &name, body.description.as_deref()).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .repository(&repo)
            .await?,
    ))
}

pub async fn delete<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RepositorySchema>> {
    let repo = load_repository::<K>(&state, &caller, &name).await?;
    let schema = Presenter::new(&state, client_generation(&headers))
        .repository(&repo)
        .await?;
    repositories::delete(&state, &caller, K::KIND, &name).await?;
    Ok(Json(schema))
}
