//! User names for seats granted without one.
//!
//! A group's fan-out learns its members from `ListGroupMemberships`, which carries ids only, so
//! those seats are written without a `userName`. Rather than a `DescribeUser` per member on the
//! request path, the fan-out puts `Seat Names Requested` (the members' ids) on the stack's bus and
//! sync-group fills the names within seconds (`sync_group::names`), paced like every Identity
//! Store read. The daily audit names whatever a lost request left.

use crate::domain::UserId;
use crate::domain::signal::{MAX_NAMES_PER_REQUEST, NAMES_REQUESTED};
use crate::ports::{EventSink, OutEvent};

/// The `Seat Names Requested` events for `users`, at most [`MAX_NAMES_PER_REQUEST`] ids each.
pub fn requests(users: &[UserId]) -> Vec<OutEvent> {
    users
        .chunks(MAX_NAMES_PER_REQUEST)
        .map(|chunk| OutEvent {
            detail_type: NAMES_REQUESTED.to_owned(),
            detail: serde_json::json!({ "userIds": chunk }),
        })
        .collect()
}

/// Asks for `users`' seats to be named. A failure is logged, not returned: the grant itself has
/// happened, and the audit names what is left.
pub async fn request<E: EventSink>(sink: &E, users: &[UserId]) {
    if users.is_empty() {
        return;
    }
    let events = requests(users);
    match sink.publish(&events).await {
        Ok(failed) if failed.is_empty() => {}
        Ok(failed) => {
            tracing::warn!(failed = failed.len(), "some name requests were refused; the audit names those seats")
        }
        Err(e) => {
            tracing::warn!(cause = %crate::error::cause_chain(&e), "requesting seat names failed; the audit names those seats")
        }
    }
}
