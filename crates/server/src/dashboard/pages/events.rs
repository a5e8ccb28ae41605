//! Events of the organization: who did what to which resource, and when.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use yatai_domain::paging::Page as Range;
use yatai_service::events::{self, EventQuery};
use yatai_store::db::events::Event;

use crate::dashboard::form::FormError;
use crate::dashboard::format::{exact, relative};
use crate::dashboard::page::{Layout, Page};
use crate::dashboard::pager::{Pager, PAGE_SIZE};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(list))
}

/// An event as a table row (`templates/event_rows.html`).
pub struct EventRow {
    pub operation: String,
    pub resource: String,
    pub resource_type: String,
    pub user: String,
    pub token: String,
    pub created_relative: String,
    pub created_exact: String,
}

impl From<Event> for EventRow {
    fn from(e: Event) -> Self {
        EventRow {
            operation: e.operation_name,
            resource: e.resource_name,
            resource_type: e.resource_type,
            user: e.user_name,
            token: e.api_token_name,
            created_relative: relative(e.created_at),
            created_exact: exact(e.created_at),
        }
    }
}

/// The rows of a page of events.
pub fn event_rows(list: Vec<Event>) -> Vec<EventRow> {
    list.into_iter().map(EventRow::from).collect()
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    events: Vec<EventRow>,
    resource_types: Vec<String>,
    operations: Vec<String>,
    filters: EventFilters,
    error: String,
    pager: Pager,
}

/// The filters of the event list, as the form sends them.
#[derive(Deserialize, Default)]
struct EventFilters {
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    operation_name: String,
    #[serde(default)]
    user: String,
    /// A day (`2026-01-31`): events from its start on.
    #[serde(default)]
    since: String,
    #[serde(default)]
    start: i64,
}

impl EventFilters {
    fn query(&self) -> EventQuery {
        EventQuery {
            resource_type: Some(self.resource_type.clone()),
            operation_name: Some(self.operation_name.clone()),
            user: Some(self.user.clone()),
            since: (!self.since.is_empty()).then(|| format!("{}T00:00:00Z", self.since)),
            until: None,
            resource_name: None,
        }
    }

    fn pairs(&self) -> [(&str, &str); 4] {
        [
            ("resource_type", &self.resource_type),
            ("operation_name", &self.operation_name),
            ("user", &self.user),
            ("since", &self.since),
        ]
    }
}

async fn list(
    State(state): State<AppState>,
    page: Page,
    Query(filters): Query<EventFilters>,
) -> Response {
    let start = filters.start.max(0);
    let range = Range {
        start,
        count: PAGE_SIZE,
    };
    let operations = match events::operation_names(&state, &page.caller).await {
        Ok(o) => o,
        Err(e) => return page.error(e),
    };
    let mut view = EventsPage {
        layout: page.layout("events"),
        events: Vec::new(),
        resource_types: [
            "bento",
            "bento_repository",
            "cluster",
            "deployment",
            "model",
            "model_repository",
        ]
        .map(String::from)
        .to_vec(),
        operations,
        filters,
        error: String::new(),
        pager: Pager::default(),
    };
    match events::list(&state, &page.caller, &view.filters.query(), range).await {
        Ok((rows, total)) => {
            view.pager = Pager::new("/events", &view.filters.pairs(), start, rows.len(), total)
                .newest_first();
            view.events = event_rows(rows);
            page.show(&view)
        }
        Err(e) => match FormError::of(e, &["since"]) {
            Ok(error) => {
                view.error = error.message;
                page.show_with(error.status, &view)
            }
            Err(e) => page.error(e),
        },
    }
}
