//! Version handlers, generic over the kind: adapters over `yatai_service::registry::versions`.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use yatai_api_types::{CreateVersion, UpdateVersion};
use yatai_domain::registry::Kind;
use yatai_service::registry::versions::{self, NewVersionInput, VersionChanges};

use super::{
    cached, client_generation, load_version, Bentos, ListQuery, Models, Presenter, RegistryKind,
};
use crate::api::schemas::{self, LabelItem, VersionSchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

fn label_pairs(list: &[LabelItem]) -> Vec<(String, String)> {
    list.iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect()
}

pub async fn create<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CreateVersion>,
) -> ApiResult<Json<VersionSchema>> {
    let input = NewVersionInput {
        version: body.version,
        description: body.description,
        manifest: body.manifest,
        build_at: body.build_at,
        labels: label_pairs(body.labels.as_deref().unwrap_or_default()),
    };
    let v = versions::create(&state, &caller, K::KIND, &name, &input).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}

pub async fn get<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    cached::answer(&state, &caller, &uri, &headers, || async {
        let v = load_version::<K>(&state, &caller, &name, &version).await?;
        let mut presenter = Presenter::new(&state, client_generation(&headers));
        let mut schema = presenter
            .versions(std::slice::from_ref(&v), true, true)
            .await?
            .remove(0);
        if K::KIND == Kind::Bento {
            let models = versions::models_of_bento(&state, &caller, &v).await?;
            schema.models = Some(presenter.versions(&models, true, true).await?);
        }
        Ok(schema)
    })
    .await
}

pub async fn update<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateVersion>,
) -> ApiResult<Json<VersionSchema>> {
    let changes = VersionChanges {
        description: body.description,
        manifest: body.manifest,
        labels: body.labels.as_deref().map(label_pairs),
    };
    let v = versions::update(&state, &caller, K::KIND, &name, &version, &changes).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}

pub async fn delete<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<VersionSchema>> {
    let v = load_version::<K>(&state, &caller, &name, &version).await?;
    let schema = Presenter::new(&state, client_generation(&headers))
        .version(&v, false)
        .await?;
    versions::delete(&state, &caller, K::KIND, &name, &version).await?;
    Ok(Json(schema))
}

async fn list_versions<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    uri: &Uri,
    q: &ListQuery,
    repository: Option<&str>,
) -> ApiResult<Response> {
    let spec = super::parse_list(q)?;
    cached::answer(state, caller, uri, headers, || async {
        let page = versions::list(state, caller, K::KIND, repository, &spec).await?;
        let items = Presenter::new(state, client_generation(headers)).versions_related(
            &page.versions,
            true,
            &page.related,
            true,
        )?;
        Ok(schemas::page(spec.page(), page.total, items))
    })
    .await
}

pub async fn list_in_repository<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    list_versions::<K>(&state, &caller, &headers, &uri, &q, Some(&name)).await
}

pub async fn list_all<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    list_versions::<K>(&state, &caller, &headers, &uri, &q, None).await
}

pub async fn models_of_bento(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<VersionSchema>>> {
    let v = load_version::<Bentos>(&state, &caller, &name, &version).await?;
    let models = versions::models_of_bento(&state, &caller, &v).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .versions(&models, true, true)
            .await?,
    ))
}

pub async fn bentos_of_model(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<VersionSchema>>> {
    load_version::<Models>(&state, &caller, &name, &version).await?;
    let bentos = versions::bentos_of_model(&state, &caller, &name, &version).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .versions(&bentos, true, true)
            .await?,
    ))
}
