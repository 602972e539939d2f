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
}
