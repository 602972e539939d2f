//! [`MemoryDirectory`]: an in-memory Identity Store. The `store` argument of the trait calls is
//! accepted and ignored. It pages like the service (100 per page, opaque tokens), counts the
//! requests a caller makes, and can be told to throttle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeFrom;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use kiro::domain::{GroupId, IdentityStoreId, MembershipId, UserId};
use kiro::ports::{
    Directory, DirectoryError, DirectoryGroup, DirectorySearch, DirectoryUser, MemberGroups, Membership, Page,
};
use uuid::Uuid;

use crate::pause;

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
    /// User names are unique in the service: the index that checks it and `GetUserId` reads.
    user_names: HashMap<String, UserId>,
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

fn new_id<T>(parse: fn(&str, &str) -> Result<T, kiro::domain::Invalid>) -> T {
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
        assert!(!state.user_names.contains_key(&user_name), "MemoryDirectory: user name {user_name:?} is taken");
        let user_id = new_id(UserId::parse);
        state.user_names.insert(user_name.clone(), user_id.clone());
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
        if let Some(removed) = state.users.remove(&seq) {
            state.user_names.remove(&removed.user_name);
        }
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
        Ok(state.user_names.get(user_name).cloned())
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
        if !state.group_seq.contains_key(group) {
            return Err(DirectoryError::NotFound { operation: OPERATION });
        }
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
            if !state.user_seq.contains_key(user) {
                return Err(DirectoryError::NotFound { operation: OPERATION });
            }
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

impl Directory for MemoryDirectory {
    async fn describe_user(
        &self,
        _store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        MemoryDirectory::pause(self).await;
        MemoryDirectory::describe_user_now(self, user)
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
}

impl DirectorySearch for MemoryDirectory {
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

impl MemberGroups for MemoryDirectory {
    async fn user_memberships(
        &self,
        _store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Vec<Membership>, DirectoryError> {
        MemoryDirectory::pause(self).await;
        MemoryDirectory::user_memberships_now(self, user)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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

        // Through a borrow, as a handler generic over `MemberGroups` would hold it.
        async fn memberships(dir: impl MemberGroups, user: &UserId) -> Result<Vec<Membership>, DirectoryError> {
            dir.user_memberships(&store(), user).await
        }
        let err = memberships(&dir, &user).await.unwrap_err();
        assert!(matches!(err, DirectoryError::Throttled { .. }));
        assert_eq!(memberships(&dir, &user).await.unwrap().len(), 150);
        assert_eq!(dir.requests(), 3);
    }
}

/// The account's IAM Identity Center instances, in memory (`sso-admin:ListInstances`).
#[derive(Debug, Default, Clone)]
pub struct MemoryInstances(pub Vec<kiro::ports::Instance>);

impl MemoryInstances {
    /// One instance, bound to `store`.
    pub fn one(store: &kiro::domain::IdentityStoreId) -> Self {
        Self(vec![kiro::ports::Instance {
            instance_arn: "arn:aws:sso:::instance/ssoins-1111111111111111".into(),
            identity_store_id: store.clone(),
            name: Some("Example Corp".into()),
        }])
    }
}

impl kiro::ports::Instances for MemoryInstances {
    async fn list_instances(&self) -> Result<Vec<kiro::ports::Instance>, kiro::ports::DirectoryError> {
        Ok(self.0.clone())
    }
}
