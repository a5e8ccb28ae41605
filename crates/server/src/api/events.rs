//! Events of the current organization: who did what to which resource, and when.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::time::{parse_rfc3339, to_rfc3339};
use yatai_domain::{Action, Error};
use yatai_store::db::events::{self, EventFilter};

use super::schemas::{EventSchema, ListSchema};
use crate::auth::Caller;
use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(operation_names))
}

pub use yatai_service::events::record;

/// Filters of the event list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    pub start: Option<i64>,
    pub count: Option<i64>,
    /// e.g. `bento`, `model`, `bento_repository`.
    pub resource_type: Option<String>,
    /// e.g. `create`, `push`, `pull`, `delete`, `update`.
    pub operation_name: Option<String>,
    /// The user who acted.
    pub user: Option<String>,
    /// RFC 3339: only events at or after.
    pub since: Option<String>,
    /// RFC 3339: only events before.
    pub until: Option<String>,
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<i64>, Error> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            parse_rfc3339(s)
                .ok_or_else(|| Error::invalid(format!("{name} {s:?} is not an RFC 3339 time")))
        })
        .transpose()
}

/// Lists the events of the caller's organization, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: &EventQuery,
) -> Result<ListSchema<EventSchema>, Error> {
    caller.authorize(Action::ReadOrganization)?;
    let yatai_domain::paging::Page { start, count } =
        yatai_domain::paging::Page::new(q.start, q.count, 50)?;
    let filter = EventFilter {
        resource_type: q.resource_type.clone().unwrap_or_default(),
        operation_name: q.operation_name.clone().unwrap_or_default(),
        user_name: q.user.clone().unwrap_or_default(),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
    };
    let (rows, total) = events::list(
        state.db.pool(),
        &caller.organization.uid,
        &filter,
        start,
        count,
    )
    .await?;
    let items = rows
        .into_iter()
        .map(|e| EventSchema {
            uid: e.uid,
            created_at: to_rfc3339(e.created_at),
            resource_type: e.resource_type,
            resource_name: e.resource_name,
            operation_name: e.operation_name,
            status: e.status,
            creator_name: e.user_name,
            api_token_name: e.api_token_name,
        })
        .collect::<Vec<_>>();
    Ok(ListSchema {
        start,
        count: items.len() as i64,
        total,
        items,
    })
}

/// Lists the events of the current organization, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/current_org/events", tag = "events", params(EventQuery), responses((status = 200, body = ListSchema<EventSchema>)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<ListSchema<EventSchema>>> {
    Ok(Json(list(&state, &caller, &q).await?))
}

/// The operation names that appear in the current organization's events.
#[utoipa::path(get, path = "/api/v1/current_org/event_operation_names", tag = "events", responses((status = 200, body = Vec<String>)))]
async fn operation_names(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<String>>> {
    caller.authorize(Action::ReadOrganization)?;
    Ok(Json(
        events::operation_names(state.db.pool(), &caller.organization.uid).await?,
    ))
}
