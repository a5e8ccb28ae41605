//! Events of the current organization: who did what to which resource, and when.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::EventQuery;
use yatai_domain::paging::Page;
use yatai_domain::time::to_rfc3339;
use yatai_domain::Error;

use super::schemas::{self, EventSchema, ListSchema};
use crate::auth::Caller;
use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(operation_names))
}

use yatai_service::events;
pub use yatai_service::events::record;

/// Lists the events of the caller's organization, newest first, as the API shows them.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: &EventQuery,
) -> Result<ListSchema<EventSchema>, Error> {
    let page = Page::new(q.start, q.count, 50)?;
    let query = events::EventQuery {
        resource_type: q.resource_type.clone(),
        operation_name: q.operation_name.clone(),
        user: q.user.clone(),
        since: q.since.clone(),
        until: q.until.clone(),
        resource_name: None,
    };
    let (rows, total) = events::list(state, caller, &query, page).await?;
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
        .collect();
    Ok(schemas::page(page, total, items))
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
    Ok(Json(events::operation_names(&state, &caller).await?))
}
