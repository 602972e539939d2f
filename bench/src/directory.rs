//! `MemoryDirectory`, partitioned into shards: one Identity Store whose groups and users each live
//! in one shard, every call answered (paged and counted) by the shard that holds its id.
//!
//! Why: `MemoryDirectory::add_user` checks that the user name is free by scanning every user, so
//! building a directory of 100,000 users is quadratic (about 4 minutes here). With one shard per
//! group of 1,000 the same directory builds in well under a second. The handlers see the same
//! pages, tokens and request counts: each call goes to exactly one shard, and a user belongs only
//! to groups of their own shard.
//!
//! Lookups by name and the unfiltered listings would have to ask every shard, so they are refused;
//! no benchmark uses them (subscriptions name principals by id).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kiro::domain::{GroupId, IdentityStoreId, UserId};
use kiro::ports::{
    Directory, DirectoryError, DirectoryGroup, DirectorySearch, DirectoryUser, MemberGroups, Membership, Page,
};
use kiro_fakes::MemoryDirectory;

/// A shard: one `MemoryDirectory`, holding groups with all of their members.
pub type Shard = Arc<MemoryDirectory>;

#[derive(Debug, Default)]
struct Routes {
    shards: Vec<Shard>,
    groups: HashMap<GroupId, Shard>,
    users: HashMap<UserId, Shard>,
}

/// One Identity Store made of [`Shard`]s. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ShardedDirectory {
    routes: Arc<Mutex<Routes>>,
}

impl ShardedDirectory {
    /// A new, empty shard.
    pub fn new_shard(&self) -> Shard {
        let shard = Shard::default();
        self.routes().shards.push(shard.clone());
        shard
    }

    /// Creates a group in `shard`.
    pub fn add_group(&self, shard: &Shard, display_name: impl Into<String>) -> GroupId {
        let group = shard.add_group(display_name, None);
        self.routes().groups.insert(group.clone(), shard.clone());
        group
    }

    /// Creates a user in `shard`.
    pub fn add_user(&self, shard: &Shard, user_name: impl Into<String>, display_name: impl Into<String>) -> UserId {
        let user = shard.add_user(user_name, display_name, None);
        self.routes().users.insert(user.clone(), shard.clone());
        user
    }

    /// The requests every shard has answered.
    pub fn requests(&self) -> u64 {
        self.routes().shards.iter().map(|s| s.requests()).sum()
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shard of a group; an unknown id goes to the first shard, which counts the request and
    /// finds nothing, as the service would.
    fn of_group(&self, group: &GroupId) -> Shard {
        let mut routes = self.routes();
        match routes.groups.get(group) {
            Some(shard) => shard.clone(),
            None => first(&mut routes),
        }
    }

    fn of_user(&self, user: &UserId) -> Shard {
        let mut routes = self.routes();
        match routes.users.get(user) {
            Some(shard) => shard.clone(),
            None => first(&mut routes),
        }
    }
}

fn first(routes: &mut Routes) -> Shard {
    if routes.shards.is_empty() {
        routes.shards.push(Shard::default());
    }
    routes.shards[0].clone()
}

fn refused(operation: &'static str) -> DirectoryError {
    DirectoryError::Aws { operation, source: "the sharded benchmark directory answers calls by id only".into() }
}

impl Directory for ShardedDirectory {
    async fn describe_user(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.of_user(user).describe_user(store, user).await
    }

    async fn group_memberships(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<Membership>, DirectoryError> {
        self.of_group(group).group_memberships(store, group, next_token).await
    }
}

impl DirectorySearch for ShardedDirectory {
    async fn describe_group(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
    ) -> Result<Option<DirectoryGroup>, DirectoryError> {
        self.of_group(group).describe_group(store, group).await
    }

    async fn user_id_by_name(&self, _: &IdentityStoreId, _: &str) -> Result<Option<UserId>, DirectoryError> {
        Err(refused("GetUserId"))
    }

    async fn group_id_by_name(&self, _: &IdentityStoreId, _: &str) -> Result<Option<GroupId>, DirectoryError> {
        Err(refused("GetGroupId"))
    }

    async fn list_users(
        &self,
        _: &IdentityStoreId,
        _: usize,
        _: Option<String>,
    ) -> Result<Page<DirectoryUser>, DirectoryError> {
        Err(refused("ListUsers"))
    }

    async fn list_groups(
        &self,
        _: &IdentityStoreId,
        _: usize,
        _: Option<String>,
    ) -> Result<Page<DirectoryGroup>, DirectoryError> {
        Err(refused("ListGroups"))
    }
}

impl MemberGroups for ShardedDirectory {
    async fn user_memberships(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Vec<Membership>, DirectoryError> {
        self.of_user(user).user_memberships(store, user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> IdentityStoreId {
        IdentityStoreId::parse("identityStoreId", "d-1234567890").unwrap()
    }

    #[tokio::test]
    async fn each_call_is_answered_and_counted_by_the_shard_of_its_id() {
        let dir = ShardedDirectory::default();
        let (a, b) = (dir.new_shard(), dir.new_shard());
        let ga = dir.add_group(&a, "a");
        let gb = dir.add_group(&b, "b");
        let users: Vec<UserId> = (0..150).map(|i| dir.add_user(&b, format!("u{i}"), "")).collect();
        for u in &users {
            b.add_member(&gb, u);
        }

        let first = dir.group_memberships(&store(), &gb, None).await.unwrap();
        let second = dir.group_memberships(&store(), &gb, first.next_token).await.unwrap();
        assert_eq!((first.items.len(), second.items.len(), second.next_token), (100, 50, None));
        assert!(dir.group_memberships(&store(), &ga, None).await.unwrap().items.is_empty());
        assert_eq!(dir.user_memberships(&store(), &users[7]).await.unwrap()[0].group_id, gb);
        assert!(dir.describe_group(&store(), &ga).await.unwrap().is_some());
        assert_eq!((a.requests(), b.requests(), dir.requests()), (2, 3, 5));
    }

    #[tokio::test]
    async fn unknown_ids_cost_a_request_and_find_nothing() {
        let dir = ShardedDirectory::default();
        let user = UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap();
        assert!(dir.describe_user(&store(), &user).await.unwrap().is_none());
        // As the service: the memberships of a user it does not have are `NotFound` (deleted).
        let gone = dir.user_memberships(&store(), &user).await;
        assert!(matches!(gone, Err(DirectoryError::NotFound { .. })), "{gone:?}");
        assert_eq!(dir.requests(), 2);
        assert!(dir.user_id_by_name(&store(), "alice").await.is_err());
    }
}
