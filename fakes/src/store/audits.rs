//! Audit reports and the audit's checkpoint: [`AuditStore`] and [`AuditCheckpoints`] on the
//! in-memory table.

use kiro::ports::{AuditCheckpoints, AuditStore};

use super::*;

impl MemoryStore {
    fn put_audit_now(&self, report: &kiro::domain::audit::AuditReport) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("PutItem(audit)")?;
        let key = format!("{}#{}", kiro::time::format(&report.started_at), report.audit_id);
        table.audits.insert(key, report.clone());
        Ok(())
    }

    fn get_audit_now(&self, id: &str) -> Result<Option<kiro::domain::audit::AuditReport>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(audit)")?;
        Ok(table.audits.values().find(|r| r.audit_id == id).cloned())
    }

    fn list_audits_now(
        &self,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<kiro::domain::audit::AuditReport>, StoreError> {
        let before = next_token.map(decode_token).transpose()?;
        let mut table = self.table();
        table.request("Query(audits)")?;
        let mut rows =
            table.audits.iter().rev().filter(|(k, _)| before.as_ref().is_none_or(|b| k.as_str() < b.as_str()));
        let items: Vec<_> = rows.by_ref().take(limit).map(|(k, r)| (k.clone(), r.clone())).collect();
        let next_token = (items.len() == limit).then(|| items.last().map(|(k, _)| encode_token(k))).flatten();
        Ok(Page { items: items.into_iter().map(|(_, r)| r).collect(), next_token })
    }

    fn checkpoint_head_now(&self) -> Result<Option<kiro::ports::CheckpointHead>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(audit checkpoint)")?;
        Ok(table.checkpoint.as_ref().map(|(h, _)| h.clone()))
    }

    fn checkpoint_state_now(&self, head: &kiro::ports::CheckpointHead) -> Result<String, StoreError> {
        let mut table = self.table();
        table.request("Query(audit checkpoint)")?;
        match &table.checkpoint {
            Some((h, state)) if h.audit_id == head.audit_id && h.step == head.step => {
                // A Query answers at most 1 MB: three parts of 300 KB a page.
                let parts = state.len().div_ceil(kiro::aws::CHECKPOINT_PART_BYTES);
                let pages = parts.div_ceil(1_000_000 / kiro::aws::CHECKPOINT_PART_BYTES).max(1);
                let state = state.clone();
                table.more_requests("Query(audit checkpoint)", pages - 1);
                Ok(state)
            }
            // DynamoStore reads the parts of `head`, which outlive a newer head (TTL); the harness
            // never keeps them, so a caller asking for a replaced step gets nothing.
            _ => Ok(String::new()),
        }
    }

    fn claim_checkpoint_now(
        &self,
        head: &kiro::ports::CheckpointHead,
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
        replaces: Option<&kiro::ports::CheckpointHead>,
        next: &kiro::ports::CheckpointHead,
        state: &str,
    ) -> Result<(), StoreError> {
        let mut table = self.table();
        let parts = state.len().div_ceil(kiro::aws::CHECKPOINT_PART_BYTES);
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

    fn clear_checkpoint_now(&self, head: &kiro::ports::CheckpointHead) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("DeleteItem(audit checkpoint)")?;
        if table.checkpoint.as_ref().is_some_and(|(h, _)| h.audit_id == head.audit_id && h.step == head.step) {
            table.checkpoint = None;
        }
        Ok(())
    }
}

impl AuditStore for MemoryStore {
    async fn put_audit(&self, report: &kiro::domain::audit::AuditReport) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::put_audit_now(self, report)
    }

    async fn get_audit(&self, audit_id: &str) -> Result<Option<kiro::domain::audit::AuditReport>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::get_audit_now(self, audit_id)
    }

    async fn list_audits(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<kiro::domain::audit::AuditReport>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::list_audits_now(self, limit, next_token.as_deref())
    }
}

impl AuditCheckpoints for MemoryStore {
    async fn checkpoint_head(&self) -> Result<Option<kiro::ports::CheckpointHead>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::checkpoint_head_now(self)
    }

    async fn checkpoint_state(&self, head: &kiro::ports::CheckpointHead) -> Result<String, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::checkpoint_state_now(self, head)
    }

    async fn claim_checkpoint(
        &self,
        head: &kiro::ports::CheckpointHead,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::claim_checkpoint_now(self, head, owner, lease_until_ms, now_ms)
    }

    async fn save_checkpoint(
        &self,
        replaces: Option<&kiro::ports::CheckpointHead>,
        next: &kiro::ports::CheckpointHead,
        state: &str,
    ) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::save_checkpoint_now(self, replaces, next, state)
    }

    async fn clear_checkpoint(&self, head: &kiro::ports::CheckpointHead) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::clear_checkpoint_now(self, head)
    }
}
