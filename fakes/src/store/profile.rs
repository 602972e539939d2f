//! The profile: [`ProfileStore`] on the in-memory table.

use kiro::ports::{ProfileAdmin, ProfileStore};

use super::*;

impl MemoryStore {
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
}

impl ProfileStore for MemoryStore {
    async fn get_profile(&self) -> Result<Option<Profile>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::get_profile_now(self)
    }
}

impl ProfileAdmin for MemoryStore {
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
