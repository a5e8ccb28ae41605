//! Events: who did what to which resource, and when.

use yatai_store::db::events::{self, NewEvent};

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
