//! Fills the user names of seats: for `Seat Names Requested` (a group's fan-out granted them
//! without names) and for the audit's naming stage. Requesting them is `kiro::names`.

use kiro::domain::{IdentityStoreId, UserId};
use kiro::ports::{Directory, SeatNames, SeatStore};
use kiro::seats::ServiceError;

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
            if seat.is_active()
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
