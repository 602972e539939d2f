//! A group's fan-out: every current member gets a seat from the group.
//!
//! It runs page by page (`ListGroupMemberships`, up to 100 members, each page one batch of seat
//! changes) while the invocation has time, and records its progress on the subscription
//! (`fanOut`). When it must stop, it puts `Fan-out Requested` (the Identity Store's page token
//! and the count so far) on the stack's bus; the `AuditRequested` rule brings that back to
//! `sync-group`, which goes on from there, as many times as it takes. Each page is idempotent
//! (a member who holds the seat already is unchanged, and emits nothing), so a duplicate
//! delivery, a retried request or a restart from the first page repeats no seat and no event.

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::app::budget::Budget;
use crate::app::seats::{Applied, ServiceError};
use crate::domain::signal::FAN_OUT_REQUESTED;
use crate::domain::{FanOut, FanOutState, GroupId, IdentityStoreId, Principal, Tier};
use crate::ports::{Directory, DirectoryError, EventSink, SeatStore, SubscriptionStore};

/// Where a fan-out starts: the first page, or where a previous invocation stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub next_token: Option<String>,
    /// Members granted before `next_token`.
    pub granted: u64,
}

/// How far one invocation took a fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub fan_out: FanOut,
    /// What this invocation changed.
    pub applied: Applied,
}

/// Pages of `ListGroupMemberships` (100 members each) granted together: 400 members fill eight
/// transactions of 48 seats and one of 16, where a page alone fills three.
const PAGES_PER_STEP: u32 = 4;

/// Pages the first step reads before it writes anything: a group with more members than these
/// (2,000) has its grant rows spread over partitions first (`SubscriptionStore::spread_grants`),
/// so its fan-out does not write them all to one partition key, faster than DynamoDB takes
/// (README "Capacity"). A smaller group keeps them in one, read with one `Query`.
const FIRST_STEP_PAGES: u32 = 20;

/// Runs `group`'s fan-out at `tier` from `from` until it is done or `budget` runs out; records
/// the progress on the subscription and, when it stops early, requests its continuation.
#[allow(clippy::too_many_arguments)] // the ports, the group and where to start: one use case
pub async fn run<S, D, E>(
    store: &S,
    directory: &D,
    sink: &E,
    identity_store: &IdentityStoreId,
    group: &GroupId,
    tier: Tier,
    from: Resume,
    budget: &mut Budget,
    now: DateTime<Utc>,
) -> Result<Outcome, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    D: Directory,
    E: EventSink,
{
    let principal = Principal::Group(group.clone());
    let (mut token, mut granted) = (from.next_token, from.granted);
    let mut applied = Applied::default();
    'steps: loop {
        let started = Instant::now();
        let first = token.is_none() && granted == 0;
        let step = if first { FIRST_STEP_PAGES } else { PAGES_PER_STEP };
        // A few pages a step: their seats are read and written together, so the transactions
        // are full (48 seats) rather than three a page of 100.
        let (mut members, mut pages) = (Vec::new(), 0u32);
        while pages == 0 || (pages < step && !budget.exhausted_after(pages)) {
            pages += 1;
            let page = match directory.group_memberships(identity_store, group, token.clone()).await {
                Ok(page) => page,
                // A token the Identity Store no longer takes (they expire): start over; the pages
                // already done change nothing the second time.
                Err(DirectoryError::InvalidToken { .. }) if token.is_some() => {
                    tracing::warn!(group = %group, "the fan-out's page token was refused; starting over");
                    (token, granted) = (None, 0);
                    continue 'steps;
                }
                // Deleted while its fan-out ran: nothing more to grant; its `DeleteGroup` (or the
                // audit) removes the subscription and cancels what was granted.
                Err(DirectoryError::NotFound { .. }) => {
                    tracing::info!(group = %group, granted, "the group is gone; its fan-out ends");
                    let fan_out = FanOut { state: FanOutState::Done, granted };
                    store.set_fan_out(&principal, fan_out).await?;
                    return Ok(Outcome { fan_out, applied });
                }
                Err(e) => return Err(e.into()),
            };
            members.extend(page.items);
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        if first && pages == FIRST_STEP_PAGES && token.is_some() {
            store.spread_grants(group).await?;
        }
        let count = members.len() as u64;
        let batch = crate::app::seats::grant_page(store, sink, group, tier, members, now).await?;
        applied.add(batch);
        granted += count;
        budget.spent_units(pages, started.elapsed());
        if token.is_none() {
            let fan_out = FanOut { state: FanOutState::Done, granted };
            store.set_fan_out(&principal, fan_out).await?;
            return Ok(Outcome { fan_out, applied });
        }
        if budget.exhausted() {
            let fan_out = FanOut { state: FanOutState::InProgress, granted };
            store.set_fan_out(&principal, fan_out).await?;
            request_continuation(sink, group, token.as_deref(), granted).await?;
            tracing::info!(group = %group, granted, "fan-out continues through the bus");
            return Ok(Outcome { fan_out, applied });
        }
    }
}

/// Puts `Fan-out Requested` on the bus. Unlike a seat event it is not in the outbox: if it is
/// lost, the subscription stays `IN_PROGRESS` until a retried POST or a PUT to the same tier
/// finishes the fan-out (the daily repair audit grants the missing seats meanwhile).
async fn request_continuation<E: EventSink>(
    sink: &E,
    group: &GroupId,
    next_token: Option<&str>,
    granted: u64,
) -> Result<(), ServiceError> {
    let detail = serde_json::json!({"groupId": group.as_str(), "nextToken": next_token, "granted": granted});
    crate::app::bus::ask(sink, FAN_OUT_REQUESTED, detail).await
}

/// A continuation delivered by the bus: goes on with the subscription as it is now (its tier
/// may have changed since; if it is gone or its fan-out is done, there is nothing to do).
#[allow(clippy::too_many_arguments)] // as `run`
pub async fn resume<S, D, E>(
    store: &S,
    directory: &D,
    sink: &E,
    identity_store: &IdentityStoreId,
    group: &GroupId,
    from: Resume,
    budget: &mut Budget,
    now: DateTime<Utc>,
) -> Result<Option<Outcome>, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    D: Directory,
    E: EventSink,
{
    let Some(sub) = store.get_subscription(&Principal::Group(group.clone())).await? else {
        return Ok(None);
    };
    if sub.fan_out.is_none_or(|f| f.is_done()) {
        return Ok(None);
    }
    run(store, directory, sink, identity_store, group, sub.tier, from, budget, now).await.map(Some)
}
