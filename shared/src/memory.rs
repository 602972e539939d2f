//! In-memory implementations of the ports, for tests and benchmarks (crate feature `memory`).
//!
//! [`MemoryDirectory`] stands in for one Identity Store: the `store` argument of the trait calls
//! is accepted and ignored. It pages like the service (100 per page, opaque tokens), counts the
//! requests a caller makes, and can be told to throttle.
//!
//! [`MemoryStore`] stands in for the table behind [`crate::aws::DynamoStore`]: the same conditions,
//! orders and page tokens, what a read gives back of a write, and a count of the requests
//! DynamoStore would send. [`MemorySink`] records what is published. Both can be told to fail.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::{Bound, RangeFrom};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

// DynamoStore's page tokens (base64url of the last sort key answered): one codec for both.
use crate::aws::tables::{decode_token, encode_token};
use crate::domain::{
    GroupId, IdentityStoreId, MembershipId, Principal, PrincipalType, Profile, ProfilePatch, Seat, Subscription, Tier,
    UserId,
};
use crate::ports::{
    Commit, Directory, DirectoryError, DirectoryGroup, DirectoryUser, EventSink, Membership, OutEvent, Outbox, Page,
    ProfileStore, SeatFilter, SeatStore, SinkError, StoreError, SubscriptionStore,
};

/// The service's page size for every list call.
const PAGE_SIZE: usize = 100;

/// An in-memory Identity Store.
///
/// Entries are listed in creation order. A page token is the position of the first entry of the
/// next page, so deleting entries between two pages neither repeats nor skips the others.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    state: Mutex<State>,
    requests: AtomicU64,
    throttle_next: AtomicUsize,
    /// When not 0, the state of a pseudo-random sequence: every call first yields to the
    /// scheduler 1 to 4 times, so concurrent handlers interleave at uneven speeds.
    jitter: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Position of the next entry created, shared by every kind.
    next_seq: u64,
    users: BTreeMap<u64, DirectoryUser>,
    user_seq: HashMap<UserId, u64>,
    groups: BTreeMap<u64, DirectoryGroup>,
    group_seq: HashMap<GroupId, u64>,
    memberships: BTreeMap<u64, Membership>,
    membership_seq: HashMap<MembershipId, u64>,
    by_group: HashMap<GroupId, BTreeSet<u64>>,
    by_user: HashMap<UserId, BTreeSet<u64>>,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn membership_seq(&self, group: &GroupId, user: &UserId) -> Option<u64> {
        let of_group = self.by_group.get(group)?;
        self.by_user.get(user)?.iter().copied().find(|seq| of_group.contains(seq))
    }

    fn remove_membership(&mut self, seq: u64) -> Option<Membership> {
        let m = self.memberships.remove(&seq)?;
        self.membership_seq.remove(&m.membership_id);
        if let Some(set) = self.by_group.get_mut(&m.group_id) {
            set.remove(&seq);
        }
        if let Some(set) = self.by_user.get_mut(&m.user_id) {
            set.remove(&seq);
        }
        Some(m)
    }
}

/// The first page of `from` (position, entry) and the token naming the position after it.
fn page<'a, T: Clone + 'a>(from: impl Iterator<Item = (u64, &'a T)>) -> Page<T> {
    page_of(from, PAGE_SIZE)
}

/// [`page`] of at most `limit` entries (and at most [`PAGE_SIZE`], as the service caps it).
fn page_of<'a, T: Clone + 'a>(mut from: impl Iterator<Item = (u64, &'a T)>, limit: usize) -> Page<T> {
    let items: Vec<T> = from.by_ref().take(limit.clamp(1, PAGE_SIZE)).map(|(_, v)| v.clone()).collect();
    Page { items, next_token: from.next().map(|(seq, _)| seq.to_string()) }
}

fn new_id<T>(parse: fn(&str, &str) -> Result<T, crate::domain::Invalid>) -> T {
    parse("id", &Uuid::new_v4().to_string()).expect("a v4 UUID is an Identity Store id")
}

impl MemoryDirectory {
    /// Creates a user; `email` becomes their primary address.
    ///
    /// # Panics
    /// When a user already has `user_name`: the service would refuse it, and `GetUserId` would
    /// become ambiguous.
    pub fn add_user(
        &self,
        user_name: impl Into<String>,
        display_name: impl Into<String>,
        email: Option<&str>,
    ) -> UserId {
        let user_name = user_name.into();
        let mut state = self.state();
        assert!(
            state.users.values().all(|u| u.user_name != user_name),
            "MemoryDirectory: user name {user_name:?} is taken"
        );
        let user_id = new_id(UserId::parse);
        let seq = state.next_seq();
        state.users.insert(
            seq,
            DirectoryUser {
                user_id: user_id.clone(),
                user_name,
                display_name: display_name.into(),
                email: email.map(str::to_owned),
            },
        );
        state.user_seq.insert(user_id.clone(), seq);
        user_id
    }

    /// Creates a group.
    ///
    /// # Panics
    /// When a group already has `display_name` (unique in the service, as `GetGroupId` needs).
    pub fn add_group(&self, display_name: impl Into<String>, description: Option<&str>) -> GroupId {
        let display_name = display_name.into();
        let mut state = self.state();
        assert!(
            state.groups.values().all(|g| g.display_name != display_name),
            "MemoryDirectory: group name {display_name:?} is taken"
        );
        let group_id = new_id(GroupId::parse);
        let seq = state.next_seq();
        state.groups.insert(
            seq,
            DirectoryGroup { group_id: group_id.clone(), display_name, description: description.map(str::to_owned) },
        );
        state.group_seq.insert(group_id.clone(), seq);
        group_id
    }

    /// Makes `user` a member of `group`; when they already are, returns the existing membership.
    ///
    /// # Panics
    /// When the user or the group does not exist: a test that wants that is set up wrong.
    pub fn add_member(&self, group: &GroupId, user: &UserId) -> MembershipId {
        let mut state = self.state();
        assert!(state.group_seq.contains_key(group), "MemoryDirectory: no group {group}");
        assert!(state.user_seq.contains_key(user), "MemoryDirectory: no user {user}");
        if let Some(seq) = state.membership_seq(group, user) {
            return state.memberships[&seq].membership_id.clone();
        }
        let membership_id = new_id(MembershipId::parse);
        let seq = state.next_seq();
        state.memberships.insert(
            seq,
            Membership { membership_id: membership_id.clone(), group_id: group.clone(), user_id: user.clone() },
        );
        state.membership_seq.insert(membership_id.clone(), seq);
        state.by_group.entry(group.clone()).or_default().insert(seq);
        state.by_user.entry(user.clone()).or_default().insert(seq);
        membership_id
    }

    /// Deletes one membership; `false` when there was no such membership.
    pub fn remove_member(&self, membership_id: &MembershipId) -> bool {
        let mut state = self.state();
        match state.membership_seq.get(membership_id).copied() {
            Some(seq) => state.remove_membership(seq).is_some(),
            None => false,
        }
    }

    /// Deletes `user`'s membership of `group`, returning its id; `None` when not a member.
    pub fn remove_user_from_group(&self, group: &GroupId, user: &UserId) -> Option<MembershipId> {
        let mut state = self.state();
        let seq = state.membership_seq(group, user)?;
        state.remove_membership(seq).map(|m| m.membership_id)
    }

    /// Deletes a user and every membership they had; `false` when there was no such user.
    pub fn delete_user(&self, user: &UserId) -> bool {
        let mut state = self.state();
        let Some(seq) = state.user_seq.remove(user) else {
            return false;
        };
        state.users.remove(&seq);
        for m in state.by_user.remove(user).unwrap_or_default() {
            state.remove_membership(m);
        }
        true
    }

    /// Deletes a group and every membership of it; `false` when there was no such group.
    pub fn delete_group(&self, group: &GroupId) -> bool {
        let mut state = self.state();
        let Some(seq) = state.group_seq.remove(group) else {
            return false;
        };
        state.groups.remove(&seq);
        for m in state.by_group.remove(group).unwrap_or_default() {
            state.remove_membership(m);
        }
        true
    }

    /// Every current membership of `group`, in creation order, without counting a request.
    pub fn memberships_of_group(&self, group: &GroupId) -> Vec<Membership> {
        let state = self.state();
        state
            .by_group
            .get(group)
            .map(|seqs| seqs.iter().map(|seq| state.memberships[seq].clone()).collect())
            .unwrap_or_default()
    }

    /// How many requests the trait calls have made so far (each page is one request).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Makes the next `n` requests fail with [`DirectoryError::Throttled`], as throttling that
    /// survived the SDK's retries would. Throttled requests are counted too.
    pub fn set_throttle_next(&self, n: usize) {
        self.throttle_next.store(n, Ordering::Relaxed);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while locked (a failed assertion in a test) leaves no half-done change: every
        // mutation above checks first and then writes, so the state is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one request and decides whether it is throttled.
    fn request(&self, operation: &'static str) -> Result<(), DirectoryError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let throttled =
            self.throttle_next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
        if throttled {
            Err(DirectoryError::Throttled {
                operation,
                source: "throttling injected by MemoryDirectory::set_throttle_next".into(),
            })
        } else {
            Ok(())
        }
    }

    /// The entries from the position a token names; an unknown token is refused like the service
    /// refuses one (a `ValidationException`).
    fn from_token(operation: &'static str, token: Option<&str>) -> Result<RangeFrom<u64>, DirectoryError> {
        match token {
            None => Ok(0..),
            Some(raw) => raw.parse().map(|seq| seq..).map_err(|_| DirectoryError::InvalidToken { operation }),
        }
    }

    fn describe_user_now(&self, user: &UserId) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.request("DescribeUser")?;
        let state = self.state();
        Ok(state.user_seq.get(user).map(|seq| state.users[seq].clone()))
    }

    fn describe_group_now(&self, group: &GroupId) -> Result<Option<DirectoryGroup>, DirectoryError> {
        self.request("DescribeGroup")?;
        let state = self.state();
        Ok(state.group_seq.get(group).map(|seq| state.groups[seq].clone()))
    }

    fn user_id_by_name_now(&self, user_name: &str) -> Result<Option<UserId>, DirectoryError> {
        self.request("GetUserId")?;
        let state = self.state();
        Ok(state.users.values().find(|u| u.user_name == user_name).map(|u| u.user_id.clone()))
    }

    fn group_id_by_name_now(&self, display_name: &str) -> Result<Option<GroupId>, DirectoryError> {
        self.request("GetGroupId")?;
        let state = self.state();
        Ok(state.groups.values().find(|g| g.display_name == display_name).map(|g| g.group_id.clone()))
    }

    fn group_memberships_now(
        &self,
        group: &GroupId,
        next_token: Option<&str>,
    ) -> Result<Page<Membership>, DirectoryError> {
        const OPERATION: &str = "ListGroupMemberships";
        self.request(OPERATION)?;
        let range = Self::from_token(OPERATION, next_token)?;
        let state = self.state();
        let Some(seqs) = state.by_group.get(group) else {
            return Ok(Page { items: Vec::new(), next_token: None });
        };
        Ok(page(seqs.range(range).map(|seq| (*seq, &state.memberships[seq]))))
    }

    fn user_memberships_now(&self, user: &UserId) -> Result<Vec<Membership>, DirectoryError> {
        const OPERATION: &str = "ListGroupMembershipsForMember";
        let mut all = Vec::new();
        let mut next_token = None;
        loop {
            self.request(OPERATION)?;
            let range = Self::from_token(OPERATION, next_token.as_deref())?;
            let state = self.state();
            let Some(seqs) = state.by_user.get(user) else {
                return Ok(all);
            };
            let Page { items, next_token: next } = page(seqs.range(range).map(|seq| (*seq, &state.memberships[seq])));
            all.extend(items);
            match next {
                Some(token) => next_token = Some(token),
                None => return Ok(all),
            }
        }
    }

    fn list_users_now(&self, limit: usize, next_token: Option<&str>) -> Result<Page<DirectoryUser>, DirectoryError> {
        const OPERATION: &str = "ListUsers";
        self.request(OPERATION)?;
        let range = Self::from_token(OPERATION, next_token)?;
        let state = self.state();
        Ok(page_of(state.users.range(range).map(|(seq, u)| (*seq, u)), limit))
    }

    fn list_groups_now(&self, limit: usize, next_token: Option<&str>) -> Result<Page<DirectoryGroup>, DirectoryError> {
        const OPERATION: &str = "ListGroups";
        self.request(OPERATION)?;
        let range = Self::from_token(OPERATION, next_token)?;
        let state = self.state();
        Ok(page_of(state.groups.range(range).map(|(seq, g)| (*seq, g)), limit))
    }
}

/// The trait for the directory itself and for the ways tests share it with a handler.
macro_rules! impl_directory {
    ($($ty:ty),* $(,)?) => {$(
        impl Directory for $ty {
            async fn describe_user(
                &self,
                _store: &IdentityStoreId,
                user: &UserId,
            ) -> Result<Option<DirectoryUser>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::describe_user_now(self, user)
            }

            async fn describe_group(
                &self,
                _store: &IdentityStoreId,
                group: &GroupId,
            ) -> Result<Option<DirectoryGroup>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::describe_group_now(self, group)
            }

            async fn user_id_by_name(
                &self,
                _store: &IdentityStoreId,
                user_name: &str,
            ) -> Result<Option<UserId>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::user_id_by_name_now(self, user_name)
            }

            async fn group_id_by_name(
                &self,
                _store: &IdentityStoreId,
                display_name: &str,
            ) -> Result<Option<GroupId>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::group_id_by_name_now(self, display_name)
            }

            async fn group_memberships(
                &self,
                _store: &IdentityStoreId,
                group: &GroupId,
                next_token: Option<String>,
            ) -> Result<Page<Membership>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::group_memberships_now(self, group, next_token.as_deref())
            }

            async fn user_memberships(
                &self,
                _store: &IdentityStoreId,
                user: &UserId,
            ) -> Result<Vec<Membership>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::user_memberships_now(self, user)
            }

            async fn list_users(
                &self,
                _store: &IdentityStoreId,
                limit: usize,
                next_token: Option<String>,
            ) -> Result<Page<DirectoryUser>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::list_users_now(self, limit, next_token.as_deref())
            }

            async fn list_groups(
                &self,
                _store: &IdentityStoreId,
                limit: usize,
                next_token: Option<String>,
            ) -> Result<Page<DirectoryGroup>, DirectoryError> {
                MemoryDirectory::pause(self).await;
                MemoryDirectory::list_groups_now(self, limit, next_token.as_deref())
            }
        }
    )*};
}

impl_directory!(MemoryDirectory, &MemoryDirectory, Arc<MemoryDirectory>);

/// The `Limit` DynamoStore puts on its list queries, and the keys it sends per `BatchGetItem`.
const QUERY_LIMIT: usize = 100;
/// DynamoDB transactions take at most 100 items.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// A Query reads at most 1 MiB of items per request.
const QUERY_BYTES: usize = 1 << 20;
/// `PutEvents` takes at most 10 entries, so the EventBridge sink sends one request per 10.
const PUT_EVENTS_ENTRIES: usize = 10;
/// Sort key prefix of the grant rows in a group's partition.
const MEMBER: &str = "MEMBER#";

/// An in-memory table that behaves like [`crate::aws::DynamoStore`].
///
/// What it mirrors, beyond the port's contract:
/// - reads give back what the table keeps: times at millisecond precision, a subscription's
///   `seats` as 0 (it is not stored; callers count it), a pending tier only with its date;
/// - list tokens are DynamoStore's (base64url of the last sort key answered), so a page that ends
///   on the last item still has a token, and the next page is empty;
/// - a transaction DynamoDB would refuse outright (over 100 items, two operations on one item) is
///   [`StoreError::Aws`], not a conflict;
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
    /// By user id, the order `list_seats` answers in.
    seats: BTreeMap<String, Seat>,
    /// The grants index: group → `MEMBER#<userId>` → grant row.
    grants: BTreeMap<GroupId, BTreeMap<String, Grant>>,
    /// The `MSHIP#<membershipId>` partitions of gsi1: the grant rows that recorded each id.
    memberships: HashMap<MembershipId, BTreeSet<(GroupId, UserId)>>,
    /// By id (`<time>#<uuid>`), so oldest first.
    outboxes: BTreeMap<String, Vec<OutEvent>>,
    /// Every event ever committed to an outbox, in commit order (for exactly-once checks).
    committed_events: Vec<OutEvent>,
    /// Audit reports by `<startedAt>#<id>` (gsi1's order; listed newest first).
    audits: BTreeMap<String, crate::domain::audit::AuditReport>,
    /// The unfinished audit's head and state.
    checkpoint: Option<(crate::ports::CheckpointHead, String)>,
    /// The size of every checkpoint state saved, in bytes.
    checkpoint_sizes: Vec<usize>,
    requests: BTreeMap<&'static str, u64>,
    throttle_next: usize,
    fail_next_commits: usize,
    crash_after_next_commit: bool,
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
            self.seats.insert(user.as_str().to_owned(), stored_seat(&w.seat));
            for (group, membership) in &w.grants_added {
                self.put_grant(group, user, membership.clone());
            }
            for group in &w.grants_removed {
                self.delete_grant(group, user);
            }
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
    crate::time::parse(&crate::time::format(&t)).unwrap_or(t)
}

fn stored_seat(seat: &Seat) -> Seat {
    Seat {
        granted_at: as_stored(seat.granted_at),
        updated_at: as_stored(seat.updated_at),
        canceled_at: seat.canceled_at.map(as_stored),
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

    pub fn profile_snapshot(&self) -> Option<Profile> {
        self.table().profile.clone()
    }

    /// Every seat, by user id.
    pub fn seats_snapshot(&self) -> Vec<Seat> {
        self.table().seats.values().cloned().collect()
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
    pub fn checkpoint_snapshot(&self) -> Option<crate::ports::CheckpointHead> {
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

    fn get_profile_now(&self) -> Result<Option<Profile>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(profile)")?;
        Ok(table.profile.clone())
    }

    fn create_profile_now(&self, profile: &Profile) -> Result<(), StoreError> {
        const OPERATION: &str = "PutItem(profile)";
        let mut table = self.table();
        table.request(OPERATION)?;
        if table.profile.is_some() {
            return Err(StoreError::Conflict(OPERATION));
        }
        table.profile = Some(stored_profile(profile));
        Ok(())
    }

    fn update_profile_now(
        &self,
        patch: &ProfilePatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Profile>, StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(profile)")?;
        let Some(profile) = table.profile.as_mut() else {
            return Ok(None);
        };
        if let Some(name) = &patch.name {
            profile.name.clone_from(name);
        }
        if let Some(description) = &patch.description {
            profile.description.clone_from(description);
        }
        profile.updated_at = as_stored(now);
        actor.clone_into(&mut profile.updated_by);
        Ok(Some(profile.clone()))
    }

    fn get_subscription_now(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(subscription)")?;
        Ok(table.subscriptions.get(&sub_key(principal)).cloned())
    }

    fn list_subscriptions_now(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        let prefix = principal_type.map(|t| format!("{}#", t.as_str())).unwrap_or_default();
        let start = next_token.map(decode_token).transpose()?;
        if start.as_ref().is_some_and(|sk| !sk.starts_with(&prefix)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        let lower = start.map_or_else(|| Bound::Included(prefix.clone()), Bound::Excluded);
        let rows = table.subscriptions.range((lower, Bound::Unbounded)).take_while(|(sk, _)| sk.starts_with(&prefix));
        let (page, queries) = gsi1_page(rows, limit, |sub| Some(sub.clone()));
        table.more_requests(OPERATION, queries - 1);
        Ok(page)
    }

    fn create_subscription_now(&self, sub: &Subscription) -> Result<(), StoreError> {
        const OPERATION: &str = "PutItem(subscription)";
        let mut table = self.table();
        table.request(OPERATION)?;
        let key = sub_key(&sub.principal);
        if table.subscriptions.contains_key(&key) {
            return Err(StoreError::Conflict(OPERATION));
        }
        table.subscriptions.insert(key, stored_subscription(sub));
        Ok(())
    }

    fn update_subscription_now(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
        const OPERATION: &str = "PutItem(subscription)";
        let mut table = self.table();
        table.request(OPERATION)?;
        // A conditional `PutItem`: the whole item is replaced, not only the fields that changed.
        match table.subscriptions.get_mut(&sub_key(&sub.principal)) {
            Some(stored) if stored.tier == expected_tier => {
                *stored = stored_subscription(sub);
                Ok(())
            }
            _ => Err(StoreError::Conflict(OPERATION)),
        }
    }

    fn delete_subscription_now(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let mut table = self.table();
        table.request("DeleteItem(subscription)")?;
        Ok(table.subscriptions.remove(&sub_key(principal)))
    }

    fn count_granted_now(&self, group: &GroupId) -> Result<u64, StoreError> {
        const OPERATION: &str = "Query(count grants)";
        let mut table = self.table();
        table.request(OPERATION)?;
        let (count, bytes) = table
            .grants
            .get(group)
            .map_or((0, 0), |rows| (rows.len(), rows.values().map(|row| grant_item_bytes(group, row)).sum::<usize>()));
        // A counting Query still reads its rows: one request per MiB of them.
        table.more_requests(OPERATION, bytes / QUERY_BYTES);
        Ok(count as u64)
    }

    fn granted_users_now(
        &self,
        group: &GroupId,
        next_token: Option<&str>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        let start = next_token.map(decode_token).transpose()?;
        // Any other start key lies outside the query's `begins_with(sk, "MEMBER#")`.
        if start.as_ref().is_some_and(|sk| !sk.starts_with(MEMBER)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request("Query(grants)")?;
        let Some(rows) = table.grants.get(group) else {
            return Ok(Page { items: Vec::new(), next_token: None });
        };
        let read: Vec<(&String, &Grant)> = rows.range(after(start)).take(crate::ports::GRANTS_PAGE).collect();
        // DynamoDB answers a `LastEvaluatedKey` whenever the Query stopped at its `Limit`.
        let next_token =
            read.last().filter(|_| read.len() == crate::ports::GRANTS_PAGE).map(|(sk, _)| encode_token(sk));
        let items = read.into_iter().map(|(_, row)| (row.user.clone(), row.membership.clone())).collect();
        Ok(Page { items, next_token })
    }

    fn membership_now(&self, membership_id: &MembershipId) -> Result<Option<(GroupId, UserId)>, StoreError> {
        let mut table = self.table();
        table.request("Query(membership)")?;
        Ok(table.memberships.get(membership_id).and_then(|rows| rows.first().cloned()))
    }

    /// One `BatchGetItem` per 100 users; each batch answers in user id order, not in the order
    /// asked, since DynamoDB keeps none.
    fn get_seats_now(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
        const OPERATION: &str = "BatchGetItem(seats)";
        let mut table = self.table();
        let mut seats = Vec::with_capacity(users.len());
        for (i, chunk) in users.chunks(QUERY_LIMIT).enumerate() {
            if i == 0 {
                table.request(OPERATION)?;
            } else {
                table.more_requests(OPERATION, 1);
            }
            let keys: BTreeSet<&str> = chunk.iter().map(UserId::as_str).collect();
            if keys.len() < chunk.len() {
                return Err(StoreError::Aws {
                    operation: OPERATION,
                    source: "ValidationException: Provided list of item keys contains duplicates".into(),
                });
            }
            seats.extend(keys.into_iter().filter_map(|user| table.seats.get(user).cloned()));
        }
        Ok(seats)
    }

    fn list_seats_now(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Seat>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        let start = next_token.map(decode_token).transpose()?;
        let mut table = self.table();
        table.request(OPERATION)?;
        // The filters apply to the rows read, as DynamoStore applies them after each Query.
        let (page, queries) = gsi1_page(table.seats.range(after(start)), limit, |seat| {
            let keep = filter.tier.is_none_or(|t| t == seat.tier) && filter.status.is_none_or(|st| st == seat.status);
            keep.then(|| seat.clone())
        });
        table.more_requests(OPERATION, queries - 1);
        Ok(page)
    }

    fn commit_now(&self, commit: &Commit) -> Result<(), StoreError> {
        const OPERATION: &str = "TransactWriteItems";
        if commit.item_count() == 0 {
            return Ok(());
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        if let Some(refusal) = transaction_refusal(commit) {
            return Err(StoreError::Aws { operation: OPERATION, source: refusal.into() });
        }
        if table.fail_next_commits > 0 {
            table.fail_next_commits -= 1;
            return Err(StoreError::Conflict(OPERATION));
        }
        if !table.conditions_hold(commit) {
            return Err(StoreError::Conflict(OPERATION));
        }
        table.apply(commit);
        if std::mem::take(&mut table.crash_after_next_commit) {
            return Err(StoreError::Aws {
                operation: "crash",
                source: "crash injected by MemoryStore::crash_after_next_commit, after the commit applied".into(),
            });
        }
        Ok(())
    }

    /// One Query of up to `limit` (clamped to 1..=1000) outboxes, oldest first.
    fn pending_outboxes_now(&self, limit: usize) -> Result<Vec<Outbox>, StoreError> {
        let mut table = self.table();
        table.request("Query(outbox)")?;
        let outboxes = table.outboxes.iter().take(limit.clamp(1, 1000));
        Ok(outboxes.map(|(id, events)| Outbox { id: id.clone(), events: events.clone() }).collect())
    }

    /// Deletes the outbox, or puts it back with only `remaining` (unconditionally, as DynamoStore).
    fn settle_outbox_now(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
        let mut table = self.table();
        if remaining.is_empty() {
            table.request("DeleteItem(outbox)")?;
            table.outboxes.remove(id);
        } else {
            table.request("PutItem(outbox)")?;
            table.outboxes.insert(id.to_owned(), remaining.to_vec());
        }
        Ok(())
    }
}

/// The store's traits for the store itself and for the ways tests share it with a handler.
macro_rules! impl_store {
    ($($ty:ty),* $(,)?) => {$(
        impl ProfileStore for $ty {
            async fn get_profile(&self) -> Result<Option<Profile>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::get_profile_now(self)
            }

            async fn create_profile(&self, profile: &Profile) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::create_profile_now(self, profile)
            }

            async fn update_profile(
                &self,
                patch: &ProfilePatch,
                actor: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Profile>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::update_profile_now(self, patch, actor, now)
            }
        }

        impl SubscriptionStore for $ty {
            async fn get_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::get_subscription_now(self, principal)
            }

            async fn list_subscriptions(
                &self,
                principal_type: Option<PrincipalType>,
                limit: usize,
                next_token: Option<String>,
            ) -> Result<Page<Subscription>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::list_subscriptions_now(self, principal_type, limit, next_token.as_deref())
            }

            async fn create_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::create_subscription_now(self, sub)
            }

            async fn update_subscription(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::update_subscription_now(self, sub, expected_tier)
            }

            async fn delete_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::delete_subscription_now(self, principal)
            }

            async fn count_granted(&self, group: &GroupId) -> Result<u64, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::count_granted_now(self, group)
            }

            async fn granted_users(
                &self,
                group: &GroupId,
                next_token: Option<String>,
            ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::granted_users_now(self, group, next_token.as_deref())
            }

            async fn membership(
                &self,
                membership_id: &MembershipId,
            ) -> Result<Option<(GroupId, UserId)>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::membership_now(self, membership_id)
            }
        }

        impl SeatStore for $ty {
            async fn get_seats(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::get_seats_now(self, users)
            }

            async fn list_seats(
                &self,
                filter: SeatFilter,
                limit: usize,
                next_token: Option<String>,
            ) -> Result<Page<Seat>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::list_seats_now(self, filter, limit, next_token.as_deref())
            }

            async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::commit_now(self, commit)
            }

            async fn set_user_name(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::set_user_name_now(self, user, user_name)
            }

            async fn pending_outboxes(&self, limit: usize) -> Result<Vec<Outbox>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::pending_outboxes_now(self, limit)
            }

            async fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::settle_outbox_now(self, id, remaining)
            }
        }
    )*};
}

impl MemoryStore {
    fn put_audit_now(&self, report: &crate::domain::audit::AuditReport) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("PutItem(audit)")?;
        let key = format!("{}#{}", crate::time::format(&report.started_at), report.audit_id);
        table.audits.insert(key, report.clone());
        Ok(())
    }

    fn get_audit_now(&self, id: &str) -> Result<Option<crate::domain::audit::AuditReport>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(audit)")?;
        Ok(table.audits.values().find(|r| r.audit_id == id).cloned())
    }

    fn list_audits_now(
        &self,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<crate::domain::audit::AuditReport>, StoreError> {
        let before = next_token.map(decode_token).transpose()?;
        let mut table = self.table();
        table.request("Query(audits)")?;
        let mut rows =
            table.audits.iter().rev().filter(|(k, _)| before.as_ref().is_none_or(|b| k.as_str() < b.as_str()));
        let items: Vec<_> = rows.by_ref().take(limit).map(|(k, r)| (k.clone(), r.clone())).collect();
        let next_token = (items.len() == limit).then(|| items.last().map(|(k, _)| encode_token(k))).flatten();
        Ok(Page { items: items.into_iter().map(|(_, r)| r).collect(), next_token })
    }

    fn set_user_name_now(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(seat name)")?;
        if let Some(seat) = table.seats.get_mut(user.as_str()) {
            seat.user_name = Some(user_name.to_owned());
        }
        Ok(())
    }

    fn refresh_membership_now(
        &self,
        group: &GroupId,
        user: &UserId,
        membership: &MembershipId,
    ) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(grant)")?;
        let exists = table.grants.get(group).is_some_and(|rows| rows.contains_key(&member_sk(user)));
        if exists {
            table.put_grant(group, user, Some(membership.clone()));
        }
        Ok(())
    }
}

impl MemoryStore {
    fn checkpoint_head_now(&self) -> Result<Option<crate::ports::CheckpointHead>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(audit checkpoint)")?;
        Ok(table.checkpoint.as_ref().map(|(h, _)| h.clone()))
    }

    fn checkpoint_state_now(&self, head: &crate::ports::CheckpointHead) -> Result<String, StoreError> {
        let mut table = self.table();
        table.request("Query(audit checkpoint)")?;
        match &table.checkpoint {
            Some((h, state)) if h.audit_id == head.audit_id && h.step == head.step => Ok(state.clone()),
            // DynamoStore reads the parts of `head`, which outlive a newer head (TTL); the harness
            // never keeps them, so a caller asking for a replaced step gets nothing.
            _ => Ok(String::new()),
        }
    }

    fn claim_checkpoint_now(
        &self,
        head: &crate::ports::CheckpointHead,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(audit checkpoint)")?;
        match &mut table.checkpoint {
            Some((h, _))
                if h.audit_id == head.audit_id
                    && h.step == head.step
                    && (h.lease_until_ms < now_ms || (!owner.is_empty() && h.lease_owner == owner)) =>
            {
                h.lease_until_ms = lease_until_ms;
                owner.clone_into(&mut h.lease_owner);
                Ok(())
            }
            _ => Err(StoreError::Conflict("UpdateItem(audit checkpoint)")),
        }
    }

    fn save_checkpoint_now(
        &self,
        replaces: Option<&crate::ports::CheckpointHead>,
        next: &crate::ports::CheckpointHead,
        state: &str,
    ) -> Result<(), StoreError> {
        let mut table = self.table();
        let parts = state.len().div_ceil(crate::aws::CHECKPOINT_PART_BYTES);
        table.more_requests("PutItem(audit checkpoint part)", parts);
        table.request("PutItem(audit checkpoint)")?;
        let current = table.checkpoint.as_ref().map(|(h, _)| (h.audit_id.as_str(), h.step));
        if current != replaces.map(|h| (h.audit_id.as_str(), h.step)) {
            return Err(StoreError::Conflict("PutItem(audit checkpoint)"));
        }
        table.checkpoint = Some((next.clone(), state.to_owned()));
        table.checkpoint_sizes.push(state.len());
        Ok(())
    }

    fn clear_checkpoint_now(&self, head: &crate::ports::CheckpointHead) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("DeleteItem(audit checkpoint)")?;
        if table.checkpoint.as_ref().is_some_and(|(h, _)| h.audit_id == head.audit_id && h.step == head.step) {
            table.checkpoint = None;
        }
        Ok(())
    }
}

macro_rules! impl_audit_store {
    ($($ty:ty),* $(,)?) => {$(
        impl crate::ports::AuditStore for $ty {
            async fn put_audit(&self, report: &crate::domain::audit::AuditReport) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::put_audit_now(self, report)
            }

            async fn get_audit(&self, audit_id: &str) -> Result<Option<crate::domain::audit::AuditReport>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::get_audit_now(self, audit_id)
            }

            async fn list_audits(
                &self,
                limit: usize,
                next_token: Option<String>,
            ) -> Result<Page<crate::domain::audit::AuditReport>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::list_audits_now(self, limit, next_token.as_deref())
            }
        }

        impl crate::ports::AuditCheckpoints for $ty {
            async fn checkpoint_head(&self) -> Result<Option<crate::ports::CheckpointHead>, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::checkpoint_head_now(self)
            }

            async fn checkpoint_state(&self, head: &crate::ports::CheckpointHead) -> Result<String, StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::checkpoint_state_now(self, head)
            }

            async fn claim_checkpoint(
                &self,
                head: &crate::ports::CheckpointHead,
                owner: &str,
                lease_until_ms: i64,
                now_ms: i64,
            ) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::claim_checkpoint_now(self, head, owner, lease_until_ms, now_ms)
            }

            async fn save_checkpoint(
                &self,
                replaces: Option<&crate::ports::CheckpointHead>,
                next: &crate::ports::CheckpointHead,
                state: &str,
            ) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::save_checkpoint_now(self, replaces, next, state)
            }

            async fn clear_checkpoint(&self, head: &crate::ports::CheckpointHead) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::clear_checkpoint_now(self, head)
            }
        }

        impl crate::ports::MembershipMap for $ty {
            async fn refresh_membership(
                &self,
                group: &GroupId,
                user: &UserId,
                membership_id: &MembershipId,
            ) -> Result<(), StoreError> {
                MemoryStore::pause(self).await;
                MemoryStore::refresh_membership_now(self, group, user, membership_id)
            }
        }
    )*};
}

impl MemoryStore {
    /// Makes every call first yield 1 to 4 times (a sequence seeded by `seed`; 0 turns it off):
    /// concurrent handlers then interleave between any two calls, at uneven speeds.
    pub fn set_jitter(&self, seed: u64) {
        self.jitter.store(seed, std::sync::atomic::Ordering::Relaxed);
    }

    async fn pause(&self) {
        pause(&self.jitter).await;
    }
}

impl MemoryDirectory {
    /// Makes every call first yield 1 to 4 times (a sequence seeded by `seed`; 0 turns it off):
    /// concurrent handlers then interleave between any two calls, at uneven speeds.
    pub fn set_jitter(&self, seed: u64) {
        self.jitter.store(seed, std::sync::atomic::Ordering::Relaxed);
    }

    async fn pause(&self) {
        pause(&self.jitter).await;
    }
}

/// Yields 1 to 4 times, as the jitter sequence says (not at all when it is 0).
async fn pause(jitter: &AtomicU64) {
    use std::sync::atomic::Ordering::Relaxed;
    let step = |x: u64| x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let Ok(previous) = jitter.fetch_update(Relaxed, Relaxed, |x| (x != 0).then(|| step(x).max(1))) else {
        return;
    };
    for _ in 0..=(step(previous) >> 62) {
        tokio::task::yield_now().await;
    }
}

impl_store!(MemoryStore, &MemoryStore, Arc<MemoryStore>);
impl_audit_store!(MemoryStore, &MemoryStore, Arc<MemoryStore>);

/// An in-memory event bus: records every event it accepts, in order.
///
/// A failed publish ([`fail_next`](Self::fail_next)) records nothing of its call, where the
/// EventBridge sink may already have sent the chunks of 10 before the one that failed.
fn is_name_request(e: &OutEvent) -> bool {
    e.detail_type == crate::domain::signal::NAMES_REQUESTED
}

#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    events: Vec<OutEvent>,
    requests: u64,
    fail_next: usize,
    reject_next_entries: usize,
}

impl MemorySink {
    /// Every event accepted so far, in order.
    /// The events accepted so far, but for `Seat Names Requested` (the stack's request to
    /// itself to name seats, see [`name_requests`](Self::name_requests)).
    pub fn events(&self) -> Vec<OutEvent> {
        self.state().events.iter().filter(|e| !is_name_request(e)).cloned().collect()
    }

    /// The `Seat Names Requested` events accepted so far.
    pub fn name_requests(&self) -> Vec<OutEvent> {
        self.state().events.iter().filter(|e| is_name_request(e)).cloned().collect()
    }

    /// Forgets the events accepted so far.
    pub fn clear(&self) {
        self.state().events.clear();
    }

    /// The `PutEvents` requests the EventBridge sink would have sent: one per 10 entries, one for
    /// a failed call.
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    pub fn reset_requests(&self) {
        self.state().requests = 0;
    }

    /// Makes the next `n` non-empty publishes fail with [`SinkError`], accepting none of their events.
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// Makes the next `n` entries published be answered as failed (their indexes returned) and not
    /// recorded, as `PutEvents` entries with an error code.
    pub fn reject_next_entries(&self, n: usize) {
        self.state().reject_next_entries = n;
    }

    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_now(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.state();
        if state.fail_next > 0 {
            state.fail_next -= 1;
            state.requests += 1;
            return Err(SinkError::Aws("failure injected by MemorySink::fail_next".into()));
        }
        state.requests += events.len().div_ceil(PUT_EVENTS_ENTRIES) as u64;
        let mut failed = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if state.reject_next_entries > 0 {
                state.reject_next_entries -= 1;
                failed.push(i);
            } else {
                state.events.push(event.clone());
            }
        }
        Ok(failed)
    }
}

macro_rules! impl_sink {
    ($($ty:ty),* $(,)?) => {$(
        impl EventSink for $ty {
            async fn publish(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
                MemorySink::publish_now(self, events)
            }
        }
    )*};
}

impl_sink!(MemorySink, &MemorySink, Arc<MemorySink>);

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> IdentityStoreId {
        IdentityStoreId::parse("identityStoreId", "d-1234567890").unwrap()
    }

    /// Every page of a group's memberships, following the tokens.
    async fn all_group_memberships(dir: &MemoryDirectory, group: &GroupId) -> Vec<Vec<Membership>> {
        let mut pages = Vec::new();
        let mut token = None;
        loop {
            let page = dir.group_memberships(&store(), group, token).await.unwrap();
            pages.push(page.items);
            match page.next_token {
                Some(next) => token = Some(next),
                None => return pages,
            }
        }
    }

    #[tokio::test]
    async fn a_group_of_250_is_listed_in_pages_of_100_in_creation_order() {
        // Given a group of 250 members
        let dir = MemoryDirectory::default();
        let group = dir.add_group("Engineering", None);
        let users: Vec<UserId> = (0..250)
            .map(|i| {
                let user = dir.add_user(format!("user{i}"), format!("User {i}"), None);
                dir.add_member(&group, &user);
                user
            })
            .collect();

        // When the caller follows the tokens
        let pages = all_group_memberships(&dir, &group).await;

        // Then it gets 100 + 100 + 50, each member once, in order, one request per page
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        let listed: Vec<UserId> = pages.into_iter().flatten().map(|m| m.user_id).collect();
        assert_eq!(listed, users);
        assert_eq!(dir.requests(), 3);
    }

    #[tokio::test]
    async fn user_and_group_listings_page_at_100() {
        let dir = MemoryDirectory::default();
        for i in 0..101 {
            dir.add_user(format!("user{i}"), "", None);
        }
        dir.add_group("Only", Some("the one group"));

        let first = dir.list_users(&store(), 100, None).await.unwrap();
        assert_eq!(first.items.len(), 100);
        let second = dir.list_users(&store(), 100, first.next_token).await.unwrap();
        assert_eq!(second.items.len(), 1);
        assert_eq!(second.items[0].user_name, "user100");
        assert_eq!(second.next_token, None);

        let groups = dir.list_groups(&store(), 100, None).await.unwrap();
        assert_eq!(groups.items.len(), 1);
        assert_eq!(groups.items[0].description.as_deref(), Some("the one group"));
        assert_eq!(groups.next_token, None);
    }

    #[tokio::test]
    async fn deleting_between_pages_neither_repeats_nor_skips_the_rest() {
        let dir = MemoryDirectory::default();
        let group = dir.add_group("Big", None);
        let users: Vec<UserId> = (0..150)
            .map(|i| {
                let user = dir.add_user(format!("user{i}"), "", None);
                dir.add_member(&group, &user);
                user
            })
            .collect();

        let first = dir.group_memberships(&store(), &group, None).await.unwrap();
        dir.remove_user_from_group(&group, &users[0]).unwrap();
        let second = dir.group_memberships(&store(), &group, first.next_token).await.unwrap();

        let listed: Vec<&UserId> = second.items.iter().map(|m| &m.user_id).collect();
        assert_eq!(listed, users[100..].iter().collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_user_in_many_groups_gets_them_all_one_request_per_page() {
        let dir = MemoryDirectory::default();
        let user = dir.add_user("alice", "Alice", Some("alice@example.com"));
        let groups: Vec<GroupId> = (0..205)
            .map(|i| {
                let group = dir.add_group(format!("group{i}"), None);
                dir.add_member(&group, &user);
                group
            })
            .collect();

        let memberships = dir.user_memberships(&store(), &user).await.unwrap();

        let listed: Vec<GroupId> = memberships.into_iter().map(|m| m.group_id).collect();
        assert_eq!(listed, groups);
        assert_eq!(dir.requests(), 3);
    }

    #[tokio::test]
    async fn an_invalid_token_is_refused() {
        let dir = MemoryDirectory::default();
        let err = dir.list_users(&store(), 100, Some("not-a-token".into())).await.unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidToken { operation: "ListUsers" }));
    }

    #[test]
    fn removing_a_member_by_id_or_by_pair_leaves_the_others() {
        // Given a group with two members
        let dir = MemoryDirectory::default();
        let group = dir.add_group("Team", None);
        let alice = dir.add_user("alice", "Alice", None);
        let bob = dir.add_user("bob", "Bob", None);
        let carol = dir.add_user("carol", "Carol", None);
        let alice_m = dir.add_member(&group, &alice);
        dir.add_member(&group, &bob);
        let carol_m = dir.add_member(&group, &carol);

        // When one leaves by membership id and one by (group, user)
        assert!(dir.remove_member(&alice_m));
        assert_eq!(dir.remove_user_from_group(&group, &carol), Some(carol_m.clone()));

        // Then only the third remains, and removing again is a no-op
        let left: Vec<UserId> = dir.memberships_of_group(&group).into_iter().map(|m| m.user_id).collect();
        assert_eq!(left, [bob]);
        assert!(!dir.remove_member(&alice_m));
        assert_eq!(dir.remove_user_from_group(&group, &carol), None);
    }

    #[test]
    fn adding_a_member_twice_keeps_one_membership() {
        let dir = MemoryDirectory::default();
        let group = dir.add_group("Team", None);
        let alice = dir.add_user("alice", "Alice", None);
        let first = dir.add_member(&group, &alice);
        assert_eq!(dir.add_member(&group, &alice), first);
        assert_eq!(dir.memberships_of_group(&group).len(), 1);
    }

    #[tokio::test]
    async fn deleting_a_user_or_a_group_drops_their_memberships() {
        let dir = MemoryDirectory::default();
        let team = dir.add_group("Team", None);
        let other = dir.add_group("Other", None);
        let alice = dir.add_user("alice", "Alice", None);
        let bob = dir.add_user("bob", "Bob", None);
        dir.add_member(&team, &alice);
        dir.add_member(&team, &bob);
        dir.add_member(&other, &bob);

        assert!(dir.delete_user(&alice));
        assert_eq!(dir.describe_user(&store(), &alice).await.unwrap(), None);
        assert_eq!(dir.user_id_by_name(&store(), "alice").await.unwrap(), None);
        assert_eq!(dir.memberships_of_group(&team).len(), 1);

        assert!(dir.delete_group(&team));
        assert_eq!(dir.describe_group(&store(), &team).await.unwrap(), None);
        assert!(dir.memberships_of_group(&team).is_empty());
        let bobs: Vec<GroupId> =
            dir.user_memberships(&store(), &bob).await.unwrap().into_iter().map(|m| m.group_id).collect();
        assert_eq!(bobs, [other]);
        assert!(!dir.delete_user(&alice));
        assert!(!dir.delete_group(&team));
    }

    #[tokio::test]
    async fn names_find_their_principals_and_ids_are_directory_ids() {
        let dir = MemoryDirectory::default();
        let alice = dir.add_user("alice", "Alice Liddell", Some("alice@example.com"));
        let team = dir.add_group("Team", Some("the team"));

        assert_eq!(dir.user_id_by_name(&store(), "alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(dir.group_id_by_name(&store(), "Team").await.unwrap(), Some(team.clone()));
        assert_eq!(dir.user_id_by_name(&store(), "bob").await.unwrap(), None);
        let described = dir.describe_user(&store(), &alice).await.unwrap().unwrap();
        assert_eq!(described.email.as_deref(), Some("alice@example.com"));
        assert_eq!(UserId::parse("u", alice.as_str()).unwrap(), alice);
        assert_eq!(GroupId::parse("g", team.as_str()).unwrap(), team);
    }

    #[tokio::test]
    async fn injected_throttling_fails_the_next_n_requests_and_counts_them() {
        let dir = Arc::new(MemoryDirectory::default());
        let alice = dir.add_user("alice", "Alice", None);
        dir.set_throttle_next(2);

        for _ in 0..2 {
            let err = dir.describe_user(&store(), &alice).await.unwrap_err();
            assert!(matches!(err, DirectoryError::Throttled { operation: "DescribeUser", .. }));
        }
        assert!(dir.describe_user(&store(), &alice).await.unwrap().is_some());
        assert_eq!(dir.requests(), 3);
    }

    #[tokio::test]
    async fn a_throttled_page_fails_the_whole_user_listing() {
        let dir = MemoryDirectory::default();
        let user = dir.add_user("alice", "Alice", None);
        for i in 0..150 {
            let group = dir.add_group(format!("group{i}"), None);
            dir.add_member(&group, &user);
        }
        dir.set_throttle_next(1);

        // Through a borrow, as a handler generic over `Directory` would hold it.
        async fn memberships(dir: impl Directory, user: &UserId) -> Result<Vec<Membership>, DirectoryError> {
            dir.user_memberships(&store(), user).await
        }
        let err = memberships(&dir, &user).await.unwrap_err();
        assert!(matches!(err, DirectoryError::Throttled { .. }));
        assert_eq!(memberships(&dir, &user).await.unwrap().len(), 150);
        assert_eq!(dir.requests(), 3);
    }
}
