//! Events: who did what to which resource, and when.

use yatai_domain::paging::Page;
use yatai_domain::time::parse_rfc3339;
use yatai_domain::{Action, Error};
use yatai_store::db::events::{self, Event, EventFilter, NewEvent};

use crate::{Caller, Services};

/// Records that the caller did `operation` to a resource. A failure to record is logged, never
/// turned into a failure of the operation that already happened.
pub async fn record(
    svc: &Services,
    caller: &Caller,
    resource_type: &str,
    resource_name: &str,
    operation: &str,
) {
    let event = NewEvent {
        organization_uid: &caller.organization.uid,
        user_uid: Some(&caller.user().uid),
        user_name: &caller.user().name,
        api_token_name: caller
            .identity
            .token
            .as_ref()
            .map(|t| t.name.as_str())
            .unwrap_or(""),
        resource_type,
        resource_name,
        operation_name: operation,
    };
    if let Err(e) = events::record(svc.db.pool(), &event).await {
        tracing::warn!(error = %e, resource_type, resource_name, operation, "could not record an event");
    }
}

/// Filters of the event list, as a client sends them (times in RFC 3339).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub resource_type: Option<String>,
    pub operation_name: Option<String>,
    pub user: Option<String>,
    /// The name of one resource (the dashboard's page of a deployment shows its events).
    pub resource_name: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<i64>, Error> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            parse_rfc3339(s)
                .ok_or_else(|| Error::field(name, format!("{name} {s:?} is not an RFC 3339 time")))
        })
        .transpose()
}

/// A page of the events of the caller's organization, newest first.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    q: &EventQuery,
    page: Page,
) -> Result<(Vec<Event>, i64), Error> {
    caller.authorize(Action::ReadOrganization)?;
    let filter = EventFilter {
        resource_type: q.resource_type.clone().unwrap_or_default(),
        operation_name: q.operation_name.clone().unwrap_or_default(),
        user_name: q.user.clone().unwrap_or_default(),
        resource_name: q.resource_name.clone().unwrap_or_default(),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
    };
    events::list(
        svc.db.pool(),
        &caller.organization.uid,
        &filter,
        page.start,
        page.count,
    )
    .await
}

/// The operation names that appear in the caller's organization's events.
pub async fn operation_names(svc: &Services, caller: &Caller) -> Result<Vec<String>, Error> {
    caller.authorize(Action::ReadOrganization)?;
    events::operation_names(svc.db.pool(), &caller.organization.uid).await
}
