//! [`MembershipMap`] on the in-memory table.

use kiro::ports::MembershipMap;

use super::*;

impl MemoryStore {
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

    /// As DynamoStore: a conditional put (1 request), and when it fails a conditional update
    /// (1 more); the put again if the holder let go in between.
    fn begin_resync_now(&self, group: &GroupId, owner: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut table = self.table();
        table.request("PutItem(resync lease)")?;
        let free = table.resyncs.get(group).is_none_or(|(holder, until, _)| *until < now_ms || holder == owner);
        if free {
            table.resyncs.insert(group.clone(), (owner.to_owned(), until_ms, false));
            return Ok(true);
        }
        table.request("UpdateItem(resync lease)")?;
        if let Some(lease) = table.resyncs.get_mut(group) {
            lease.2 = true;
        }
        Ok(false)
    }

    fn end_resync_now(&self, group: &GroupId, owner: &str) -> Result<bool, StoreError> {
        let mut table = self.table();
        table.request("DeleteItem(resync lease)")?;
        match table.resyncs.get(group).cloned() {
            Some((holder, _, false)) if holder == owner => {
                table.resyncs.remove(group);
                Ok(false)
            }
            Some((holder, until, true)) if holder == owner => {
                table.request("UpdateItem(resync lease)")?;
                table.resyncs.insert(group.clone(), (holder, until, false));
                Ok(true)
            }
            _ => {
                table.request("UpdateItem(resync lease)")?;
                Ok(false)
            }
        }
    }
}

impl MembershipMap for MemoryStore {
    async fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::refresh_membership_now(self, group, user, membership_id)
    }

    async fn begin_resync(&self, group: &GroupId, owner: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::begin_resync_now(self, group, owner, until_ms, now_ms)
    }

    async fn end_resync(&self, group: &GroupId, owner: &str) -> Result<bool, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::end_resync_now(self, group, owner)
    }
}
