//! [`MemoryStore`]: an in-memory table that stands in for [`kiro::aws::DynamoStore`], split by
//! port: [`profile`], [`subscriptions`], [`seats`], [`audits`] (reports and checkpoints) and
//! [`membership_map`] each hold their port's operations and its trait implementation; this file
//! holds the table, what it mirrors of DynamoDB, and the inspection and fault-injection methods.
//! `tests/tests/port_contract.rs` runs the same checks against it and against `DynamoStore` on
//! the emulator: where they disagree, this fake is wrong.

mod activity;
mod audits;
mod index;
mod membership_map;
mod profile;
mod seats;
mod sessions;
mod subscriptions;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
// DynamoStore's page tokens (base64url of the last sort key answered): one codec for both.
use kiro::aws::{decode_token, encode_token};
use kiro::domain::{
    GroupId, MembershipId, Principal, PrincipalType, Profile, ProfilePatch, Seat, Subscription, Tier, UserId,
};
use kiro::ports::{Commit, OutEvent, Outbox, Page, SeatFilter, StoreError};

/// The `Limit` DynamoStore puts on its list queries, and the keys it sends per `BatchGetItem`.
const QUERY_LIMIT: usize = 100;

/// DynamoDB transactions take at most 100 items.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// A Query reads at most 1 MiB of items per request.
const QUERY_BYTES: usize = 1 << 20;

/// Sort key prefix of the grant rows in a group's partition.
const MEMBER: &str = "MEMBER#";

/// An in-memory table that behaves like [`kiro::aws::DynamoStore`].
///
/// What it mirrors, beyond the port's contract:
/// - reads give back what the table keeps: times at millisecond precision, a subscription's
///   `seats` as 0 (it is not stored; callers count it), a pending tier only with its date;
/// - list tokens are DynamoStore's (base64url of the last sort key answered), so a page that ends
///   on the last item still has a token, and the next page is empty;
/// - a transaction DynamoDB would refuse outright (over 100 items, two operations on one item) is
///   [`StoreError::Refused`], not a conflict;
/// - [`MemoryStore::requests`] counts the requests DynamoStore would send for each call.
///
/// Injected faults ([`throttle_next`](Self::throttle_next),
/// [`fail_next_commits`](Self::fail_next_commits),
/// [`crash_after_next_commit`](Self::crash_after_next_commit)) apply to calls that reach the
/// table: an invalid token, an empty commit or an empty `get_seats` sends no request, so it
/// neither consumes a fault nor counts.
#[derive(Debug, Default)]
pub struct MemoryStore {
    table: Mutex<Table>,
    /// When not 0, the state of a pseudo-random sequence: every call first yields to the
    /// scheduler 1 to 4 times, so concurrent handlers interleave at uneven speeds.
    jitter: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    profile: Option<Profile>,
    /// By gsi1 sort key `<TYPE>#<id>`, the order `list_subscriptions` answers in.
    subscriptions: BTreeMap<String, Subscription>,
    /// By user id.
    seats: BTreeMap<String, Seat>,
    /// The seats' `gsi1` order, (shard, user id): the order `list_seats` answers in, a shard's
    /// seats a range of it (seats are never deleted).
    seat_order: BTreeSet<(usize, String)>,
    /// The grants index: group → `MEMBER#<userId>` → grant row.
    grants: BTreeMap<GroupId, BTreeMap<String, Grant>>,
    /// The `MSHIP#<membershipId>` partitions of gsi1: the grant rows that recorded each id.
    memberships: HashMap<MembershipId, BTreeSet<(GroupId, UserId)>>,
    /// By id (`<time>#<uuid>`), so oldest first.
    outboxes: BTreeMap<String, Vec<OutEvent>>,
    /// Every event ever committed to an outbox, in commit order (for exactly-once checks).
    committed_events: Vec<OutEvent>,
    /// Audit reports by `<startedAt>#<id>` (gsi1's order; listed newest first).
    audits: BTreeMap<String, kiro::domain::audit::AuditReport>,
    /// The unfinished audit's head and state.
    checkpoint: Option<(kiro::ports::CheckpointHead, String)>,
    /// The size of every checkpoint state saved, in bytes.
    checkpoint_sizes: Vec<usize>,
    requests: BTreeMap<&'static str, u64>,
    throttle_next: usize,
    fail_next_commits: usize,
    crash_after_next_commit: bool,
    /// Users whose seat writes the table refuses, every time (a unit that can never succeed).
    refused: HashSet<UserId>,
    /// Re-sync leases by group: (owner, running until ms, pending).
    resyncs: HashMap<GroupId, (String, i64, bool)>,
    /// Grant counters (`GROUP#<id>`/`COUNT`), kept by the commits as DynamoStore keeps them.
    grant_counts: HashMap<GroupId, i64>,
    /// Groups whose grant rows `DynamoStore` would keep over 16 partitions (`spread_grants`):
    /// the rows are kept as any other group's here, their reads counted as that store's.
    spread: HashSet<GroupId>,
    /// Console sessions by token hash, and sign-ins by state.
    sessions: HashMap<String, kiro::domain::session::Session>,
    sign_ins: HashMap<String, kiro::domain::session::SignIn>,
    /// Activity figures by (user, date, client type).
    activity: BTreeMap<kiro::domain::activity::ActivityKey, kiro::domain::activity::Figures>,
    /// The month's index (`USAGE#<month>#<shard>`, by `gsi1sk`): each row's key by (month,
    /// shard, gsi1sk), so a page of a shard's month is a range, not a scan of every row.
    usage_order: BTreeMap<(String, usize, String), kiro::domain::activity::ActivityKey>,
    /// Objects imported (or rejected), and the reports by id (`<importedAt>#<arrival>`).
    import_markers: HashSet<kiro::domain::import::ObjectRef>,
    imports: BTreeMap<String, kiro::domain::import::ImportReport>,
    import_seq: u64,
    /// The latest activity of users without a seat row (`ACTIVITY#<userId>`/`LATEST`).
    latest_activity: HashMap<UserId, chrono::NaiveDate>,
    /// The (date, client type)s an import stored figures for.
    activity_days: HashSet<kiro::domain::activity::ReportDay>,
}

/// One grant row: a seat holding a group as a source.
#[derive(Debug, Clone)]
struct Grant {
    user: UserId,
    membership: Option<MembershipId>,
}

impl Table {
    /// Counts the first request of a call and fails it when throttling was injected.
    fn request(&mut self, operation: &'static str) -> Result<(), StoreError> {
        *self.requests.entry(operation).or_default() += 1;
        if self.throttle_next == 0 {
            return Ok(());
        }
        self.throttle_next -= 1;
        Err(StoreError::Throttled { operation, source: "throttling injected by MemoryStore::throttle_next".into() })
    }

    /// Counts the requests of a call after its first (more pages, more chunks).
    fn more_requests(&mut self, operation: &'static str, n: usize) {
        if n > 0 {
            *self.requests.entry(operation).or_default() += n as u64;
        }
    }

    /// Every condition of the transaction, checked before anything is written.
    fn conditions_hold(&self, commit: &Commit) -> bool {
        let seats_hold =
            commit.seats.iter().all(|w| match (w.expected_version, self.seats.get(w.seat.user_id.as_str())) {
                (None, None) => true,
                (Some(expected), Some(stored)) => stored.version == expected,
                // `attribute_not_exists(pk)` on a stored seat, or `version = :v` on a missing one.
                _ => false,
            });
        seats_hold
            && commit
                .guards
                .iter()
                .all(|g| self.subscriptions.get(&sub_key(&g.principal)).is_some_and(|s| s.tier == g.tier))
            && commit.absent.iter().all(|p| !self.subscriptions.contains_key(&sub_key(p)))
    }

    fn apply(&mut self, commit: &Commit) {
        for w in &commit.seats {
            let user = &w.seat.user_id;
            if self.seats.insert(user.as_str().to_owned(), stored_seat(&w.seat)).is_none() {
                self.seat_order.insert((kiro::ports::seat_shard(user.as_str()), user.as_str().to_owned()));
            }
            for (group, membership) in &w.grants_added {
                self.put_grant(group, user, membership.clone());
            }
            for group in &w.grants_removed {
                self.delete_grant(group, user);
            }
        }
        // A group whose rows come and go in equal numbers has its counter checked, not written.
        for (group, delta) in commit.grant_deltas().into_iter().filter(|(_, d)| *d != 0) {
            *self.grant_counts.entry(group).or_default() += delta;
        }
        if let Some(outbox) = &commit.outbox {
            self.outboxes.insert(outbox.id.clone(), outbox.events.clone());
            self.committed_events.extend(outbox.events.iter().cloned());
        }
    }

    /// A `Put` of the row: replaces any earlier one, membership id included.
    fn put_grant(&mut self, group: &GroupId, user: &UserId, membership: Option<MembershipId>) {
        self.delete_grant(group, user);
        if let Some(m) = &membership {
            self.memberships.entry(m.clone()).or_default().insert((group.clone(), user.clone()));
        }
        self.grants.entry(group.clone()).or_default().insert(member_sk(user), Grant { user: user.clone(), membership });
    }

    fn delete_grant(&mut self, group: &GroupId, user: &UserId) {
        let Some(rows) = self.grants.get_mut(group) else { return };
        let Some(old) = rows.remove(&member_sk(user)) else { return };
        if rows.is_empty() {
            self.grants.remove(group);
        }
        if let Some(m) = old.membership {
            if let Some(rows) = self.memberships.get_mut(&m) {
                rows.remove(&(group.clone(), user.clone()));
                if rows.is_empty() {
                    self.memberships.remove(&m);
                }
            }
        }
    }
}

fn sub_key(p: &Principal) -> String {
    format!("{}#{}", p.principal_type().as_str(), p.id())
}

fn member_sk(user: &UserId) -> String {
    format!("{MEMBER}{user}")
}

/// A time as the table keeps it (RFC 3339 with milliseconds).
fn as_stored(t: DateTime<Utc>) -> DateTime<Utc> {
    kiro::time::parse(&kiro::time::format(&t)).unwrap_or(t)
}

fn stored_seat(seat: &Seat) -> Seat {
    Seat {
        granted_at: as_stored(seat.granted_at),
        updated_at: as_stored(seat.updated_at),
        canceled_at: seat.canceled_at.map(as_stored),
        activated_at: seat.activated_at.map(as_stored),
        ..seat.clone()
    }
}

/// What a read of the subscription answers once DynamoStore has written it.
fn stored_subscription(sub: &Subscription) -> Subscription {
    let pending = sub.pending_tier.zip(sub.pending_tier_effective_at);
    Subscription {
        pending_tier: pending.map(|(tier, _)| tier),
        pending_tier_effective_at: pending.map(|(_, at)| as_stored(at)),
        seats: 0,
        created_at: as_stored(sub.created_at),
        updated_at: as_stored(sub.updated_at),
        ..sub.clone()
    }
}

fn stored_profile(profile: &Profile) -> Profile {
    Profile { created_at: as_stored(profile.created_at), updated_at: as_stored(profile.updated_at), ..profile.clone() }
}

/// A grant row's size as DynamoDB counts it: attribute names plus string values.
fn grant_item_bytes(group: &GroupId, grant: &Grant) -> usize {
    let (g, u) = (group.as_str().len(), grant.user.as_str().len());
    let row = ("pk".len() + "GROUP#".len() + g)
        + ("sk".len() + MEMBER.len() + u)
        + ("entity".len() + "GroupGrant".len())
        + ("groupId".len() + g)
        + ("userId".len() + u);
    let index = grant.membership.as_ref().map_or(0, |m| {
        let m = m.as_str().len();
        ("membershipId".len() + m) + ("gsi1pk".len() + "MSHIP#".len() + m) + ("gsi1sk".len() + "MSHIP".len())
    });
    row + index
}

/// What DynamoDB refuses before evaluating any condition (a `ValidationException`).
fn transaction_refusal(commit: &Commit) -> Option<&'static str> {
    if commit.item_count() > MAX_TRANSACTION_ITEMS {
        return Some("ValidationException: a transaction takes at most 100 items");
    }
    let twice = Some("ValidationException: Transaction request cannot include multiple operations on one item");
    let mut seats = HashSet::new();
    let mut grants = HashSet::new();
    for w in &commit.seats {
        let user = &w.seat.user_id;
        if !seats.insert(user) {
            return twice;
        }
        for group in w.grants_added.iter().map(|(g, _)| g).chain(&w.grants_removed) {
            if !grants.insert((group, user)) {
                return twice;
            }
        }
    }
    let mut guards = HashSet::new();
    if !commit.guards.iter().map(|g| &g.principal).chain(&commit.absent).all(|p| guards.insert(p)) {
        return twice;
    }
    None
}

/// DynamoStore's `gsi1_page` over one index partition, `rows` being its rows after the token in
/// sort key order: keeps what `keep` accepts until `limit`, the token naming the last one kept.
/// Also answers how many Queries of 100 rows that took, counting the empty one DynamoDB answers
/// after a full read that happened to be the last.
fn gsi1_page<'a, V: 'a, T>(
    rows: impl Iterator<Item = (&'a String, &'a V)>,
    limit: usize,
    keep: impl Fn(&V) -> Option<T>,
) -> (Page<T>, usize) {
    let mut items = Vec::new();
    let mut read = 0;
    for (sort_key, row) in rows {
        read += 1;
        if let Some(item) = keep(row) {
            items.push(item);
            if items.len() == limit {
                return (Page { items, next_token: Some(encode_token(sort_key)) }, (read - 1) / QUERY_LIMIT + 1);
            }
        }
        // DynamoStore's bound: its last query filled, so it hands back the last key read.
        if read == QUERY_LIMIT * kiro::aws::MAX_QUERIES_PER_PAGE {
            return (Page { items, next_token: Some(encode_token(sort_key)) }, kiro::aws::MAX_QUERIES_PER_PAGE);
        }
    }
    (Page { items, next_token: None }, read / QUERY_LIMIT + 1)
}

fn after(start: Option<String>) -> (Bound<String>, Bound<String>) {
    (start.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)
}

impl MemoryStore {
    /// How many requests DynamoStore would have sent for the calls so far. A throttled call counts
    /// one, where the SDK would have sent its 5 attempts.
    pub fn requests(&self) -> u64 {
        self.table().requests.values().sum()
    }

    /// The same, by DynamoStore's operation name (`"Query(gsi1)"`, `"TransactWriteItems"`, ...).
    pub fn requests_by_operation(&self) -> BTreeMap<&'static str, u64> {
        self.table().requests.clone()
    }

    pub fn reset_requests(&self) {
        self.table().requests.clear();
    }

    /// Makes the next `n` calls fail with [`StoreError::Throttled`] at their first request, as
    /// throttling that survived the SDK's retries would, changing nothing.
    pub fn throttle_next(&self, n: usize) {
        self.table().throttle_next = n;
    }

    /// Makes the next `n` commits fail with [`StoreError::Conflict`] without applying, as a lost
    /// race (`TransactionCanceled`) would.
    pub fn fail_next_commits(&self, n: usize) {
        self.table().fail_next_commits = n;
    }

    /// Makes the next commit that applies answer `StoreError::Aws { operation: "crash", .. }`
    /// anyway, as a Lambda killed between its write and what follows would see it.
    pub fn crash_after_next_commit(&self) {
        self.table().crash_after_next_commit = true;
    }

    /// Makes every commit that writes `user`'s seat fail with [`StoreError::Refused`], for good: an
    /// item the table keeps refusing (what a poisoned unit of work looks like to its caller).
    pub fn refuse_seat_writes_of(&self, user: &UserId) {
        self.table().refused.insert(user.clone());
    }

    pub fn profile_snapshot(&self) -> Option<Profile> {
        self.table().profile.clone()
    }

    /// Every seat, by user id.
    pub fn seats_snapshot(&self) -> Vec<Seat> {
        self.table().seats.values().cloned().collect()
    }

    /// Whether `group`'s grant rows were spread (`spread_grants` while it had none).
    pub fn is_spread(&self, group: &GroupId) -> bool {
        self.table().spread.contains(group)
    }

    /// Every subscription, groups then users, each by id.
    pub fn subscriptions_snapshot(&self) -> Vec<Subscription> {
        self.table().subscriptions.values().cloned().collect()
    }

    /// Every grant row, by group then user.
    pub fn grants_snapshot(&self) -> Vec<(GroupId, UserId)> {
        let table = self.table();
        table.grants.iter().flat_map(|(group, rows)| rows.values().map(|r| (group.clone(), r.user.clone()))).collect()
    }

    /// Every event committed with a seat change so far, in commit order: what must be published,
    /// each exactly once.
    pub fn committed_events(&self) -> Vec<OutEvent> {
        self.table().committed_events.clone()
    }

    /// Deletes a subscription and nothing else, as an unsubscribe that failed after its first
    /// write leaves it: its seats keep the source until the audit.
    pub fn forget_subscription(&self, principal: &Principal) {
        self.table().subscriptions.remove(&sub_key(principal));
    }

    /// The unfinished audit's checkpoint head, if any.
    pub fn checkpoint_snapshot(&self) -> Option<kiro::ports::CheckpointHead> {
        self.table().checkpoint.as_ref().map(|(h, _)| h.clone())
    }

    /// The size in bytes of each checkpoint state saved so far, in order.
    pub fn checkpoint_sizes(&self) -> Vec<usize> {
        self.table().checkpoint_sizes.clone()
    }

    /// Every outbox, oldest first.
    pub fn outboxes_snapshot(&self) -> Vec<Outbox> {
        let table = self.table();
        table.outboxes.iter().map(|(id, events)| Outbox { id: id.clone(), events: events.clone() }).collect()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every mutation checks first and then writes without panicking, so a poisoned lock (a
        // failed assertion elsewhere in a test) still guards a consistent table.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every call first yield 1 to 4 times (a sequence seeded by `seed`; 0 turns it off):
    /// concurrent handlers then interleave between any two calls, at uneven speeds.
    pub fn set_jitter(&self, seed: u64) {
        self.jitter.store(seed, std::sync::atomic::Ordering::Relaxed);
    }

    async fn pause(&self) {
        crate::pause(&self.jitter).await;
    }
}
