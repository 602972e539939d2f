//! What the API reads: seats and stored audit reports.

use crate::domain::audit::AuditReport;
use crate::domain::invalid::excerpt;
use crate::domain::{IdentityStoreId, Seat, UserId};
use crate::error::AppError;
use crate::ports::{AuditStore, Directory, Page, SeatFilter, SeatStore};

/// A page of seats, filtered.
pub async fn seats<S: SeatStore>(
    store: &S,
    filter: SeatFilter,
    limit: usize,
    next_token: Option<String>,
) -> Result<Page<Seat>, AppError> {
    Ok(store.list_seats(filter, limit, next_token).await?)
}

/// One user's seat, or `NotFound`. A seat granted through a group and not named yet gets its
/// name from the directory.
pub async fn seat<S: SeatStore, D: Directory>(
    store: &S,
    directory: &D,
    identity_store: &IdentityStoreId,
    user: &str,
) -> Result<Seat, AppError> {
    let no_seat = || AppError::NotFound(format!("no seat for user {}", excerpt(user)));
    let user = UserId::parse("userId", user).map_err(|_| no_seat())?;
    let mut seat = store.get_seats(std::slice::from_ref(&user)).await?.into_iter().next().ok_or_else(no_seat)?;
    if seat.user_name.is_none() {
        seat.user_name = directory.describe_user(identity_store, &user).await?.map(|u| u.user_name);
    }
    Ok(seat)
}

/// The stored audit reports, newest first.
pub async fn audits<S: AuditStore>(
    store: &S,
    limit: usize,
    next_token: Option<String>,
) -> Result<Page<AuditReport>, AppError> {
    Ok(store.list_audits(limit, next_token).await?)
}

/// One audit report, or `NotFound` (an id not shaped like one names none).
pub async fn audit<S: AuditStore>(store: &S, id: &str) -> Result<AuditReport, AppError> {
    let not_found = || AppError::NotFound(format!("no audit {}", excerpt(id)));
    let well_formed = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !well_formed {
        return Err(not_found());
    }
    store.get_audit(id).await?.ok_or_else(not_found)
}
