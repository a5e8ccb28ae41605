//! Repository handlers, generic over the kind.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use yatai_domain::{names, Action, Error};
use yatai_store::db::repositories as repos;
use yatai_store::db::versions;

use super::{client_generation, load_repository, ListQuery, Presenter, RegistryKind};
use crate::api::events;
use crate::api::schemas::{ListSchema, RepositorySchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

/// The body of a repository creation.
#[derive(Debug, Deserialize)]
pub struct CreateRepository {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The body of a repository update.
#[derive(Debug, Deserialize)]
pub struct UpdateRepository {
    pub description: Option<String>,
}

pub async fn list<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListSchema<RepositorySchema>>> {
    caller.authorize(Action::ReadRegistry)?;
    let spec = q.parse()?;
    let (rows, total) = repos::list(
        state.db.pool(),
        &caller.organization.uid,
        K::KIND,
        &repos::RepositoryFilter {
            search: spec.search.clone(),
            labels: spec.labels.clone(),
        },
        spec.repository_order()?,
        spec.page(),
    )
    .await?;
    let items = Presenter::new(&state, client_generation(&headers))
        .repositories(&rows)
        .await?;
    Ok(Json(ListSchema {
        start: spec.start,
        count: items.len() as i64,
        total,
        items,
    }))
}

pub async fn create<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRepository>,
) -> ApiResult<Json<RepositorySchema>> {
    caller.authorize(Action::WriteRegistry)?;
    names::validate_repository_name(&body.name)?;
    names::validate_description("repository", &body.description)?;
    let pool = state.db.pool();
    let existed = repos::find(pool, &caller.organization.uid, K::KIND, &body.name)
        .await?
        .is_some();
    let repo = repos::create_or_get(
        pool,
        &caller.organization.uid,
        K::KIND,
        &body.name,
        &body.description,
        &caller.user().uid,
    )
    .await?;
    if !existed {
        events::record(
            &state,
            &caller,
            K::KIND.repository_type(),
            &repo.name,
            "create",
        )
        .await;
    }
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
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RepositorySchema>> {
    let repo = load_repository::<K>(&state, &caller, &name).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .repository(&repo)
            .await?,
    ))
}

pub async fn update<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRepository>,
) -> ApiResult<Json<RepositorySchema>> {
    caller.authorize(Action::WriteRegistry)?;
    let mut repo = load_repository::<K>(&state, &caller, &name).await?;
    if let Some(d) = body.description {
        names::validate_description("repository", &d)?;
        repos::set_description(state.db.pool(), &repo.uid, &d).await?;
        repo.description = d;
        events::record(
            &state,
            &caller,
            K::KIND.repository_type(),
            &repo.name,
            "update",
        )
        .await;
    }
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
    caller.authorize(Action::WriteRegistry)?;
    let repo = load_repository::<K>(&state, &caller, &name).await?;
    let n = versions::count_in_repository(state.db.pool(), &repo.uid).await?;
    if n > 0 {
        return Err(Error::Conflict(format!(
            "the {} repository {name:?} still has {n} version(s); delete them first",
            K::KIND.as_str()
        ))
        .into());
    }
    let schema = Presenter::new(&state, client_generation(&headers))
        .repository(&repo)
        .await?;
    repos::delete(state.db.pool(), &repo.uid).await?;
    events::record(
        &state,
        &caller,
        K::KIND.repository_type(),
        &repo.name,
        "delete",
    )
    .await;
    Ok(Json(schema))
}
