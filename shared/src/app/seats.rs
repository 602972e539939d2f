//! Applying seat changes: the one path by which the API, membership events and the audit change
//! seats. It reads the seats, computes each next seat with [`domain::transition`], writes seats,
//! grant rows and the outbox in one transaction per chunk (guarded by seat versions and by the
//! subscriptions the sources come from). The deployed stack publishes the outbox from the
//! table's stream (`publish-events`, [`crate::app::publish`]); without a stream publisher the
//! writer publishes it itself after the commit ([`EventSink::publishes_seat_events_inline`]).
//!
//! A lost race re-reads and re-applies the same relative change, re-resolving the tier of every
//! source from its subscription, so neither writer's source is lost. Events are committed with the
//! seats they describe, so a retried request that finds nothing to change emits nothing, and an
//! event that was not published stays in the outbox for [`flush_outbox`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::domain::{self, GroupId, MembershipId, Principal, SeatChange, SourceKey, SourceOp, Tier, UserId};
use crate::ports::{
    Commit, DirectoryError, EventSink, OutEvent, Outbox, SeatStore, SeatWrite, StoreError, SubscriptionGuard,
    SubscriptionStore,
};

/// DynamoDB transactions take 100 items; a seat takes up to 1 + its grant rows.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Users whose seats (and activity recorded while seatless) one `BatchGetItem` reads.
use crate::ports::SEATS_WITH_ACTIVITY;
/// Attempts for one user after a lost race before giving up with the conflict.
const MAX_ATTEMPTS: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Events could not be put on the bus: deferred work (a continuation), or the outbox's in
    /// the audit's sweep.
    #[error("{0}")]
    Bus(String, #[source] Option<crate::ports::SinkError>),
}

impl ServiceError {
    /// The store refuses this request as sent (or cannot read an item): sending it again fails
    /// the same way.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ServiceError::Store(StoreError::Refused { .. } | StoreError::Corrupt(_)))
    }

    pub fn is_throttling(&self) -> bool {
        matches!(
            self,
            ServiceError::Store(StoreError::Throttled { .. })
                | ServiceError::Directory(DirectoryError::Throttled { .. })
        )
    }
}

/// One user's change, with the membership ids of groups it grants (for the membership map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub user: UserId,
    pub change: SeatChange,
    pub memberships: BTreeMap<GroupId, MembershipId>,
    /// The user's name, stored with the seat when it is known and the seat lacks it.
    pub user_name: Option<String>,
}

impl UserChange {
    pub fn new(user: UserId, change: SeatChange) -> Self {
        Self { user, change, memberships: BTreeMap::new(), user_name: None }
    }
}

/// What a batch of changes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub granted: u64,
    pub changed: u64,
    pub canceled: u64,
    /// Stored changes that moved sources but neither status nor tier.
    pub updated: u64,
    pub unchanged: u64,
    /// Seats made `ACTIVE` (`Seat Activated`).
    #[serde(default)]
    pub activated: u64,
}

impl Applied {
    pub fn add(&mut self, other: Applied) {
        self.granted += other.granted;
        self.changed += other.changed;
        self.canceled += other.canceled;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.activated += other.activated;
    }

    pub fn events(&self) -> u64 {
        self.granted + self.changed + self.canceled + self.activated
    }
}

fn principal_of(key: &SourceKey, user: &UserId) -> Principal {
    match key {
        SourceKey::Direct => Principal::User(user.clone()),
        SourceKey::Group(g) => Principal::Group(g.clone()),
    }
}

/// The write one change makes to one seat, if any, and how to count it.
/// Conditions a seat write carries: subscriptions that must exist with a tier, and ones that must not.
#[derive(Debug, Default)]
struct Conditions {
    guards: Vec<SubscriptionGuard>,
    absent: Vec<Principal>,
}

impl Conditions {
    fn merge(&mut self, other: Conditions) {
        for g in other.guards {
            if !self.guards.contains(&g) {
                self.guards.push(g);
            }
        }
        for p in other.absent {
            if !self.absent.contains(&p) {
                self.absent.push(p);
            }
        }
    }
}

fn plan(
    current: Option<&domain::Seat>,
    recorded: Option<chrono::NaiveDate>,
    uc: &UserChange,
    now: DateTime<Utc>,
) -> Option<(SeatWrite, Conditions, Vec<OutEvent>, Applied)> {
    let mut t = domain::seat::transition_with(current, recorded, &uc.user, &uc.change, now)?;
    if t.seat.user_name.is_none() {
        t.seat.user_name = uc.user_name.clone();
    }
    let before = current.map(|s| &s.sources);
    let had = |k: &SourceKey| before.is_some_and(|b| b.contains_key(k));
    let grants_added = t
        .seat
        .sources
        .keys()
        .filter(|k| !had(k))
        .filter_map(|k| match k {
            SourceKey::Group(g) => Some((g.clone(), uc.memberships.get(g).cloned())),
            SourceKey::Direct => None,
        })
        .collect();
    let grants_removed = before
        .into_iter()
        .flat_map(|b| b.keys())
        .filter(|k| !t.seat.sources.contains_key(*k))
        .filter_map(|k| match k {
            SourceKey::Group(g) => Some(g.clone()),
            SourceKey::Direct => None,
        })
        .collect();
    // Every source the seat keeps from this change must still be backed by its subscription, and
    // every source dropped for a gone subscription must still have none.
    let mut conditions = Conditions::default();
    for op in &uc.change.ops {
        match op {
            SourceOp::Set(k, tier) if t.seat.sources.get(k) == Some(tier) => {
                conditions.guards.push(SubscriptionGuard { principal: principal_of(k, &uc.user), tier: *tier });
            }
            SourceOp::Unsubscribed(k) if had(k) && !t.seat.sources.contains_key(k) => {
                conditions.absent.push(principal_of(k, &uc.user));
            }
            _ => {}
        }
    }
    let mut applied = Applied::default();
    match &t.event {
        Some(domain::SeatEvent::Granted { .. }) => applied.granted = 1,
        Some(domain::SeatEvent::TierChanged { .. }) => applied.changed = 1,
        Some(domain::SeatEvent::Canceled { .. }) => applied.canceled = 1,
        Some(domain::SeatEvent::Activated { .. }) => applied.activated = 1,
        None => applied.updated = 1,
    }
    applied.activated += u64::from(t.activated.is_some());
    let event: Vec<OutEvent> = t
        .event_details()
        .into_iter()
        .map(|(detail_type, detail)| OutEvent { detail_type: detail_type.to_owned(), detail })
        .collect();
    let write = SeatWrite { expected_version: current.map(|s| s.version), seat: t.seat, grants_added, grants_removed };
    Some((write, conditions, event, applied))
}

/// A new outbox's id: the wall-clock time of its commit, then a UUID. The time is the commit's,
/// not the change's clock (an audit's is the time it started, however long it runs), because
/// [`flush_outbox`] compares it with its own wall clock to leave young outboxes to the stream's
/// publisher.
fn outbox_id() -> String {
    format!("{}#{}", crate::time::format(&Utc::now()), uuid::Uuid::new_v4())
}

/// What the seats of some users hold, read once for all the transactions that change them.
#[derive(Debug, Default)]
pub struct SeatsRead {
    seats: HashMap<UserId, domain::Seat>,
    /// Activity recorded while seatless, of users without a seat.
    recorded: HashMap<UserId, chrono::NaiveDate>,
    users: std::collections::HashSet<UserId>,
}

impl SeatsRead {
    /// What [`SeatStore::get_seats_with_activity`] answered for `users`.
    pub fn new(users: &[UserId], (seats, recorded): crate::ports::SeatsWithActivity) -> Self {
        Self {
            seats: seats.into_iter().map(|s| (s.user_id.clone(), s)).collect(),
            recorded: recorded.into_iter().collect(),
            users: users.iter().cloned().collect(),
        }
    }

    fn covers(&self, changes: &[UserChange]) -> bool {
        changes.iter().all(|uc| self.users.contains(&uc.user))
    }
}

/// Applies the changes (one per user; later changes for the same user are merged into the first)
/// and publishes the events they imply.
pub async fn apply_changes<S, E>(
    store: &S,
    sink: &E,
    changes: Vec<UserChange>,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    apply_changes_read(store, sink, changes, None, now).await
}

/// [`apply_changes`], the seats read once for every transaction (a `BatchGetItem` per
/// [`SEATS_WITH_ACTIVITY`] users, not per transaction), or taken from `read` when the caller
/// read them already (with what it read beside them). A seat that changed since is caught by its
/// version, as always, and applied again from a fresh read.
pub async fn apply_changes_read<S, E>(
    store: &S,
    sink: &E,
    changes: Vec<UserChange>,
    read: Option<SeatsRead>,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    let mut merged: Vec<UserChange> = Vec::with_capacity(changes.len());
    let mut index: HashMap<UserId, usize> = HashMap::new();
    for uc in changes {
        match index.get(&uc.user) {
            Some(&i) => {
                let m = &mut merged[i];
                m.change.ops.extend(uc.change.ops);
                m.change.reason = uc.change.reason;
                m.memberships.extend(uc.memberships);
                m.user_name = m.user_name.take().or(uc.user_name);
            }
            None => {
                index.insert(uc.user.clone(), merged.len());
                merged.push(uc);
            }
        }
    }
    let mut total = Applied::default();
    // A user with more sources than one transaction holds is changed in rounds, each its own
    // commit (and its own event, when the seat's tier or status moves in that round).
    let mut round = merged;
    let mut read = read;
    while !round.is_empty() {
        let (now_round, rest) = split_oversized(store, round).await?;
        let read = match read.take().filter(|r| r.covers(&now_round)) {
            Some(read) => read,
            None => {
                let users: Vec<UserId> = now_round.iter().map(|uc| uc.user.clone()).collect();
                SeatsRead::new(&users, store.get_seats_with_activity(&users).await?)
            }
        };
        for chunk in transaction_chunks(&now_round) {
            total.add(apply_chunk(store, sink, chunk, &read, now).await?);
        }
        round = rest;
    }
    Ok(total)
}

/// Most source operations one user's commit carries: each writes or deletes a grant row, checks
/// a subscription and moves a grant counter (3 items), plus the seat and the outbox:
/// 3 × 32 + 2 = 98 ≤ 100.
const MAX_OPS_PER_COMMIT: usize = 32;

/// Cuts every change with more than [`MAX_OPS_PER_COMMIT`] operations: this round takes the
/// first ones, the rest go to the next round. Grants come first, highest tier first, so the seat
/// takes its final tier in the first round and the rest only add sources (no event); removals
/// come after, the lowest held tier first, so the seat keeps its tier until its last sources go
/// and is canceled once, in the last round. Reads the seats of the oversized changes only.
async fn split_oversized<S: SeatStore>(
    store: &S,
    changes: Vec<UserChange>,
) -> Result<(Vec<UserChange>, Vec<UserChange>), StoreError> {
    let oversized: Vec<UserId> =
        changes.iter().filter(|uc| uc.change.ops.len() > MAX_OPS_PER_COMMIT).map(|uc| uc.user.clone()).collect();
    if oversized.is_empty() {
        return Ok((changes, Vec::new()));
    }
    let held: HashMap<UserId, domain::Seat> =
        store.get_seats(&oversized).await?.into_iter().map(|s| (s.user_id.clone(), s)).collect();
    let mut rest = Vec::new();
    let this = changes
        .into_iter()
        .map(|mut uc| {
            if uc.change.ops.len() > MAX_OPS_PER_COMMIT {
                let seat = held.get(&uc.user);
                let held_tier = |k: &SourceKey| seat.and_then(|s| s.sources.get(k).copied());
                let rank = |t: Option<Tier>| match t {
                    None => 0,
                    Some(Tier::Pro) => 1,
                    Some(Tier::ProPlus) => 2,
                    Some(Tier::Power) => 3,
                };
                uc.change.ops.sort_by_key(|op| match op {
                    SourceOp::Set(_, tier) => (0, -rank(Some(*tier))),
                    other => (1, rank(held_tier(other.key()))),
                });
                let later = uc.change.ops.split_off(MAX_OPS_PER_COMMIT);
                rest.push(UserChange {
                    user: uc.user.clone(),
                    change: SeatChange::new(later, uc.change.reason),
                    memberships: uc.memberships.clone(),
                    user_name: None,
                });
            }
            uc
        })
        .collect();
    Ok((this, rest))
}

/// Splits changes into runs whose transaction fits DynamoDB's 100 items (and whose seats fit one
/// `BatchGetItem`), counting for each change the most it can write: its seat, a grant row per
/// group it touches, and a condition per subscription not already checked in the run; plus the
/// outbox item.
fn transaction_chunks(changes: &[UserChange]) -> Vec<&[UserChange]> {
    let mut chunks = Vec::new();
    let (mut start, mut items) = (0, 1);
    let mut principals: std::collections::HashSet<Principal> = std::collections::HashSet::new();
    for (i, uc) in changes.iter().enumerate() {
        let mine: std::collections::HashSet<Principal> =
            uc.change.ops.iter().map(|op| principal_of(op.key(), &uc.user)).collect();
        let grant_rows = uc.change.ops.iter().filter(|op| matches!(op.key(), SourceKey::Group(_))).count();
        // A new principal costs its condition, and a group also its grant counter.
        let cost_of = |p: &Principal| if matches!(p, Principal::Group(_)) { 2 } else { 1 };
        let mut cost = 1 + grant_rows + mine.difference(&principals).map(cost_of).sum::<usize>();
        if i > start && (items + cost > MAX_TRANSACTION_ITEMS || i - start == SEATS_WITH_ACTIVITY) {
            chunks.push(&changes[start..i]);
            (start, items) = (i, 1);
            principals.clear();
            cost = 1 + grant_rows + mine.iter().map(cost_of).sum::<usize>();
        }
        items += cost;
        principals.extend(mine);
    }
    if start < changes.len() {
        chunks.push(&changes[start..]);
    }
    chunks
}

async fn apply_chunk<S, E>(
    store: &S,
    sink: &E,
    chunk: &[UserChange],
    read: &SeatsRead,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    let (seats, recorded) = (&read.seats, &read.recorded);
    let mut commit = Commit::default();
    let mut events = Vec::new();
    let mut applied = Applied::default();
    let mut conditions = Conditions::default();
    for uc in chunk {
        match plan(seats.get(&uc.user), recorded.get(&uc.user).copied(), uc, now) {
            None => applied.unchanged += 1,
            Some((write, c, event, a)) => {
                commit.seats.push(write);
                conditions.merge(c);
                events.extend(event);
                applied.add(a);
            }
        }
    }
    if commit.seats.is_empty() {
        return Ok(applied);
    }
    (commit.guards, commit.absent) = (conditions.guards, conditions.absent);
    if !events.is_empty() {
        commit.outbox = Some(Outbox { id: outbox_id(), events });
    }
    if commit.item_count() <= MAX_TRANSACTION_ITEMS {
        match store.commit(&commit).await {
            Ok(()) => {
                publish(store, sink, commit.outbox.as_ref()).await;
                return Ok(applied);
            }
            Err(StoreError::Conflict(_)) => {
                tracing::info!(users = chunk.len(), "chunk lost a race; applying user by user");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // One user at a time: re-read, re-resolve the sources' tiers, retry on conflict.
    let mut applied = Applied::default();
    for uc in chunk {
        applied.add(apply_one(store, sink, uc.clone(), now).await?);
    }
    Ok(applied)
}

/// Applies one user's change, retrying lost races with fresh reads.
async fn apply_one<S, E>(store: &S, sink: &E, mut uc: UserChange, now: DateTime<Utc>) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    for attempt in 1..=MAX_ATTEMPTS {
        let (seats, recorded) = store.get_seats_with_activity(std::slice::from_ref(&uc.user)).await?;
        let (seat, recorded) = (seats.into_iter().next(), recorded.into_iter().next().map(|(_, d)| d));
        let Some((write, conditions, event, applied)) = plan(seat.as_ref(), recorded, &uc, now) else {
            return Ok(Applied { unchanged: 1, ..Applied::default() });
        };
        let outbox = (!event.is_empty()).then(|| Outbox { id: outbox_id(), events: event });
        let commit = Commit { seats: vec![write], guards: conditions.guards, absent: conditions.absent, outbox };
        match store.commit(&commit).await {
            Ok(()) => {
                publish(store, sink, commit.outbox.as_ref()).await;
                return Ok(applied);
            }
            Err(StoreError::Conflict(_)) if attempt < MAX_ATTEMPTS => {
                uc.change.ops = resolve_sources(store, &uc).await?;
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// `Set` and `Unsubscribed` both mean "make this source follow its subscription": after a lost
/// race, re-read each subscription, so a deleted one becomes a removal, a re-tiered one its new
/// tier, and one created again meanwhile a `Set`.
async fn resolve_sources<S: SubscriptionStore>(store: &S, uc: &UserChange) -> Result<Vec<SourceOp>, StoreError> {
    let mut ops = Vec::with_capacity(uc.change.ops.len());
    for op in &uc.change.ops {
        ops.push(match op {
            SourceOp::Set(k, _) | SourceOp::Unsubscribed(k) => {
                match store.get_subscription(&principal_of(k, &uc.user)).await? {
                    Some(sub) => SourceOp::Set(k.clone(), sub.tier),
                    None => SourceOp::Unsubscribed(k.clone()),
                }
            }
            remove @ SourceOp::Remove(_) => remove.clone(),
        });
    }
    Ok(ops)
}

/// After a commit: publishes its outbox and settles it when this writer publishes its own
/// ([`EventSink::publishes_seat_events_inline`]), or leaves it to the stream's publisher. A
/// failure leaves it for the stream's retry or for [`flush_outbox`]: the seat change itself has
/// happened.
async fn publish<S: SeatStore, E: EventSink>(store: &S, sink: &E, outbox: Option<&Outbox>) {
    let Some(outbox) = outbox else { return };
    if sink.publishes_seat_events_inline() {
        crate::app::publish::publish_and_settle(store, sink, std::slice::from_ref(outbox)).await;
    }
}

/// How long an outbox is left to the stream's publisher before the audit's sweep takes it: the
/// stream hands a new item to `publish-events` within seconds, and retries a failed batch for a
/// few minutes; a sweep reading the same outbox meanwhile would publish its events twice.
pub const OUTBOX_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Publishes outboxes left behind by crashes or failed publishes: those committed before `now`
/// less [`OUTBOX_GRACE`] when the stream publishes them, all of them when writers publish their
/// own (nobody else will). Answers how many events went out; an error when outboxes were left and
/// none of their events could go out.
pub async fn flush_outbox<S: SeatStore, E: EventSink>(
    store: &S,
    sink: &E,
    now: DateTime<Utc>,
) -> Result<u64, ServiceError> {
    let grace = if sink.publishes_seat_events_inline() { chrono::TimeDelta::zero() } else { OUTBOX_GRACE };
    // Committed at or before `now - grace`: ids carry milliseconds.
    let bound = now - grace + chrono::TimeDelta::milliseconds(1);
    let mut sent = 0u64;
    loop {
        let pending = store.pending_outboxes(bound, 25).await?;
        if pending.is_empty() {
            return Ok(sent);
        }
        let published = crate::app::publish::publish_and_settle(store, sink, &pending).await;
        sent += published.events;
        if !published.failed.is_empty() {
            // The bus refused events, or an outbox could not be settled: the next sweep retries.
            if sent > 0 {
                return Ok(sent);
            }
            let left = published.failed.len();
            return Err(ServiceError::Bus(format!("{left} outboxes could not be published"), None));
        }
    }
}

/// Grants `group` at `tier` to one page of its members, as one batch of changes, and asks for
/// the names of the seats it granted (`ListGroupMemberships` has none). The whole fan-out, which
/// spans invocations when it must, is [`crate::app::fanout`].
pub async fn grant_page<S, E>(
    store: &S,
    sink: &E,
    group: &GroupId,
    tier: crate::domain::Tier,
    members: Vec<crate::ports::Membership>,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    let changes: Vec<UserChange> = members
        .into_iter()
        .map(|m| UserChange {
            change: SeatChange::one(
                SourceOp::Set(SourceKey::Group(group.clone()), tier),
                domain::CancelReason::LeftGroup,
            ),
            memberships: BTreeMap::from([(group.clone(), m.membership_id)]),
            user: m.user_id,
            user_name: None,
        })
        .collect();
    let users: Vec<UserId> = changes.iter().map(|c| c.user.clone()).collect();
    let applied = apply_changes(store, sink, changes, now).await?;
    if applied.granted > 0 {
        crate::app::names::request(sink, &users).await;
    }
    Ok(applied)
}

/// Applies `op` for `group` to every seat that holds the group as a source (the grants index),
/// e.g. a new tier after an upgrade, or its removal when the subscription or group is deleted.
pub async fn change_group_grants<S, E>(
    store: &S,
    sink: &E,
    group: &GroupId,
    op: SourceOp,
    reason: domain::CancelReason,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    let mut total = Applied::default();
    let mut token = None;
    loop {
        let page = store.granted_users(group, token).await?;
        let changes = page
            .items
            .into_iter()
            .map(|(user, _)| UserChange::new(user, SeatChange::one(op.clone(), reason)))
            .collect();
        total.add(apply_changes(store, sink, changes, now).await?);
        token = page.next_token;
        if token.is_none() {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CancelReason, Tier};

    fn user(n: usize) -> UserId {
        UserId::parse("u", &format!("94482488-3041-7026-18f3-{n:012x}")).unwrap()
    }

    fn group(n: usize) -> GroupId {
        GroupId::parse("g", &format!("a4d8e4a8-1071-70f6-1c5e-{n:012x}")).unwrap()
    }

    fn set(u: usize, groups: &[usize]) -> UserChange {
        let ops = groups.iter().map(|g| SourceOp::Set(SourceKey::Group(group(*g)), Tier::Pro)).collect();
        UserChange::new(user(u), SeatChange::new(ops, CancelReason::Audit))
    }

    #[test]
    fn one_group_fans_out_in_runs_of_48() {
        // 48 × (seat + grant row) + the group's guard and counter + the outbox = 99.
        let changes: Vec<UserChange> = (0..100).map(|u| set(u, &[7])).collect();
        let sizes: Vec<usize> = transaction_chunks(&changes).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [48, 48, 4]);
    }

    #[test]
    fn changes_across_many_groups_never_overflow_a_transaction() {
        // Each user in its own group: seat + grant row + guard + counter = 4 items a user.
        let changes: Vec<UserChange> = (0..200).map(|u| set(u, &[u])).collect();
        let chunks = transaction_chunks(&changes);
        assert!(
            chunks.iter().all(|c| 4 * c.len() < MAX_TRANSACTION_ITEMS),
            "{:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 200);
        assert_eq!(chunks[0].len(), 24);
    }

    #[test]
    fn direct_sources_count_one_condition_per_user() {
        let direct = |u| {
            UserChange::new(user(u), SeatChange::one(SourceOp::Set(SourceKey::Direct, Tier::Pro), CancelReason::Audit))
        };
        let changes: Vec<UserChange> = (0..120).map(direct).collect();
        let sizes: Vec<usize> = transaction_chunks(&changes).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [49, 49, 22], "seat + its subscription's condition = 2 items a user");
    }
}

/// What recording activity on seats did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityApplied {
    /// Seats made `ACTIVE`.
    pub activated: u64,
    /// Seats whose latest activity date moved (activations included).
    pub updated: u64,
    /// Users with activity and no seat row at all.
    pub unknown: u64,
}

/// Records each user's latest activity date on their seat ([`domain::seat::record_activity`]):
/// `PENDING` seats with activity on or after their grant's date become `ACTIVE`, one
/// `Seat Activated` each, committed with the seats. Only users with activity are read: chunks of
/// 99, one `BatchGetItem` and one transaction each (seats only: no grant rows move; the outbox
/// is the 100th item), the same version guards as every seat write. Users without a seat keep
/// their latest date for their first grant (`record_unseated_activity`, 25 a request) and are
/// counted as `unknown`.
pub async fn record_activity<S, E>(
    store: &S,
    sink: &E,
    latest: Vec<(UserId, chrono::NaiveDate)>,
    now: DateTime<Utc>,
) -> Result<ActivityApplied, ServiceError>
where
    S: SeatStore + crate::ports::ActivityStore,
    E: EventSink,
{
    let mut total = ActivityApplied::default();
    let mut unseated: Vec<(UserId, chrono::NaiveDate)> = Vec::new();
    for chunk in latest.chunks(MAX_TRANSACTION_ITEMS - 1) {
        let mut pending: Vec<(UserId, chrono::NaiveDate)> = chunk.to_vec();
        for attempt in 1..=MAX_ATTEMPTS {
            let users: Vec<UserId> = pending.iter().map(|(u, _)| u.clone()).collect();
            let seats: HashMap<UserId, domain::Seat> =
                store.get_seats(&users).await?.into_iter().map(|s| (s.user_id.clone(), s)).collect();
            if attempt == 1 {
                unseated.extend(pending.iter().filter(|(u, _)| !seats.contains_key(u)).cloned());
            }
            let mut commit = Commit::default();
            let mut events = Vec::new();
            let mut applied = ActivityApplied::default();
            for (user, date) in &pending {
                let Some(seat) = seats.get(user) else { continue };
                let Some(t) = domain::seat::record_activity(seat, *date, now) else { continue };
                applied.updated += 1;
                applied.activated += u64::from(t.event.is_some());
                events.extend(
                    t.event_details()
                        .into_iter()
                        .map(|(detail_type, detail)| OutEvent { detail_type: detail_type.to_owned(), detail }),
                );
                commit.seats.push(SeatWrite {
                    expected_version: Some(seat.version),
                    seat: t.seat,
                    grants_added: vec![],
                    grants_removed: vec![],
                });
            }
            if commit.seats.is_empty() {
                break;
            }
            if !events.is_empty() {
                commit.outbox = Some(Outbox { id: outbox_id(), events });
            }
            match store.commit(&commit).await {
                Ok(()) => {
                    publish(store, sink, commit.outbox.as_ref()).await;
                    total.activated += applied.activated;
                    total.updated += applied.updated;
                    break;
                }
                // A seat changed meanwhile: read them again and decide again (activity is
                // idempotent: a seat already active or already as recent changes nothing).
                Err(StoreError::Conflict(_)) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                    // Users whose seat did not need a write stay out of the retry.
                    pending.retain(|(u, _)| commit.seats.iter().any(|w| &w.seat.user_id == u));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Users without a seat: keep the latest date for their first grant, never an older one.
    total.unknown = unseated.len() as u64;
    let users: Vec<UserId> = unseated.iter().map(|(u, _)| u.clone()).collect();
    let recorded: HashMap<UserId, chrono::NaiveDate> = store.recorded_activity(&users).await?.into_iter().collect();
    unseated.retain(|(u, d)| recorded.get(u).is_none_or(|r| d > r));
    for batch in unseated.chunks(crate::ports::ACTIVITY_BATCH) {
        store.record_unseated_activity(batch).await?;
    }
    Ok(total)
}
