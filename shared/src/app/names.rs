//! User names for seats granted without one.
//!
//! A group's fan-out learns its members from `ListGroupMemberships`, which carries ids only, so
//! those seats are written without a `userName`. Rather than a `DescribeUser` per member on the
//! request path, the fan-out puts `Seat Names Requested` (the members' ids) on the stack's bus and
//! sync-group fills the names within seconds ([`fill`]), paced like every Identity
//! Store read. The daily audit names whatever a lost request left.

use crate::app::seats::ServiceError;
use crate::domain::signal::{MAX_NAMES_PER_REQUEST, NAMES_REQUESTED};
use crate::domain::{IdentityStoreId, UserId};
use crate::ports::{Directory, EventSink, OutEvent, SeatNames, SeatStore};

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

/// Names the seats of `users` that hold a seat and have no name yet: one `BatchGetItem` per 100
/// users, then a `DescribeUser` and an `UpdateItem` per seat named. Answers how many were named.
pub async fn fill<S: SeatStore + SeatNames, D: Directory>(
    store: &S,
    directory: &D,
    identity_store: &IdentityStoreId,
    users: &[UserId],
) -> Result<u64, ServiceError> {
    let mut named = 0;
    for chunk in users.chunks(100) {
        for seat in store.get_seats(chunk).await? {
            if seat.holds()
                && seat.user_name.is_none()
                && fill_one(store, directory, identity_store, &seat.user_id).await?
            {
                named += 1;
            }
        }
    }
    Ok(named)
}

/// Names one user's seat from the directory; `false` when the directory no longer has the user.
pub async fn fill_one<S: SeatNames, D: Directory>(
    store: &S,
    directory: &D,
    identity_store: &IdentityStoreId,
    user: &UserId,
) -> Result<bool, ServiceError> {
    match directory.describe_user(identity_store, user).await? {
        Some(u) => {
            store.set_user_name(user, &u.user_name).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}
