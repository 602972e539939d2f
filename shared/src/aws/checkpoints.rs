//! `AuditCheckpoints` on the table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | head: where the unfinished audit stands | `AUDITRUN` | `HEAD` |
//! | its state, in parts of at most [`PART_BYTES`] | `AUDITRUN#<auditId>#<step>#<saveId>` | `PART#<nnnnn>` |
//!
//! Parts are written before the head that points at them, so a head never names a partial state;
//! parts of replaced steps are left to the TTL (`expiresAt`), which costs no request.

use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamo::{DynamoStore, store_error};
use super::item::{Item, Reader, key, n, s, t};
use crate::domain::audit::AuditMode;
use crate::ports::{AuditCheckpoints, CheckpointHead, StoreError};

const HEAD_PK: &str = "AUDITRUN";
const HEAD_SK: &str = "HEAD";
/// Well under DynamoDB's 400 KB item limit.
pub const PART_BYTES: usize = 300_000;
/// Parts and a forgotten head outlive any audit (continuations come within seconds).
const KEEP_DAYS: i64 = 2;

fn parts_pk(head: &CheckpointHead) -> String {
    format!("{HEAD_PK}#{}#{}#{}", head.audit_id, head.step, head.save_id)
}

/// `state` cut into parts of at most `max` bytes, on character boundaries.
pub(crate) fn split(state: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = state;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

fn head_from(item: &Item) -> Result<CheckpointHead, StoreError> {
    let r = Reader::new(item, "audit checkpoint");
    let mode = r.parsed("mode", |m| AuditMode::parse(m).ok_or(()))?;
    let force = match item.get("force") {
        Some(AttributeValue::Bool(b)) => *b,
        _ => return Err(StoreError::Corrupt("audit checkpoint item: attribute 'force' is not a boolean".into())),
    };
    Ok(CheckpointHead {
        audit_id: r.str("auditId")?.to_owned(),
        step: u32::try_from(r.u64("step")?).map_err(|_| StoreError::Corrupt("audit checkpoint: step".into()))?,
        mode,
        force,
        lease_until_ms: i64::try_from(r.u64("leaseUntil")?).unwrap_or(i64::MAX),
        lease_owner: r.opt_str("leaseOwner")?.unwrap_or_default().to_owned(),
        saved_at: r.time("savedAt")?,
        save_id: r.str("saveId")?.to_owned(),
    })
}

impl AuditCheckpoints for DynamoStore {
    async fn checkpoint_head(&self) -> Result<Option<CheckpointHead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_PK, HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(audit checkpoint)", e))?;
        out.item.as_ref().map(head_from).transpose()
    }

    async fn checkpoint_state(&self, head: &CheckpointHead) -> Result<String, StoreError> {
        let mut state = String::new();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(parts_pk(head)))
            .consistent_read(true);
        self.every_page(query, "Query(audit checkpoint)", |out| {
            for item in out.items() {
                state.push_str(Reader::new(item, "audit checkpoint part").str("data")?);
            }
            Ok(())
        })
        .await?;
        Ok(state)
    }

    async fn claim_checkpoint(
        &self,
        head: &CheckpointHead,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_PK, HEAD_SK)))
            .update_expression("SET leaseUntil = :lease, leaseOwner = :owner")
            .condition_expression("auditId = :id AND step = :step AND (leaseUntil < :now OR leaseOwner = :owner)")
            .expression_attribute_values(":lease", n(lease_until_ms))
            // An empty owner matches no one: `:owner` is then a value no lease carries.
            .expression_attribute_values(":owner", s(if owner.is_empty() { "-" } else { owner }))
            .expression_attribute_values(":id", s(&head.audit_id))
            .expression_attribute_values(":step", n(head.step))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem(audit checkpoint)", e))?;
        Ok(())
    }

    async fn save_checkpoint(
        &self,
        replaces: Option<&CheckpointHead>,
        next: &CheckpointHead,
        state: &str,
    ) -> Result<(), StoreError> {
        let expires = n((next.saved_at + chrono::Duration::days(KEEP_DAYS)).timestamp());
        let parts = split(state, PART_BYTES);
        for (i, part) in parts.iter().enumerate() {
            let mut item = key(parts_pk(next), format!("PART#{i:05}"));
            item.extend([("data".to_owned(), s(*part)), ("expiresAt".to_owned(), expires.clone())]);
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| store_error("PutItem(audit checkpoint part)", e))?;
        }
        let mut item = key(HEAD_PK, HEAD_SK);
        item.extend([
            ("entity".to_owned(), s("AuditCheckpoint")),
            ("auditId".to_owned(), s(&next.audit_id)),
            ("step".to_owned(), n(next.step)),
            ("mode".to_owned(), s(next.mode.as_str())),
            ("force".to_owned(), AttributeValue::Bool(next.force)),
            ("leaseUntil".to_owned(), n(next.lease_until_ms.max(0))),
            ("leaseOwner".to_owned(), s(&next.lease_owner)),
            ("savedAt".to_owned(), t(&next.saved_at)),
            ("saveId".to_owned(), s(&next.save_id)),
            ("parts".to_owned(), n(parts.len())),
            ("expiresAt".to_owned(), expires),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let put = match replaces {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(h) => put
                .condition_expression("auditId = :id AND step = :step")
                .expression_attribute_values(":id", s(&h.audit_id))
                .expression_attribute_values(":step", n(h.step)),
        };
        put.send().await.map_err(|e| store_error("PutItem(audit checkpoint)", e))?;
        Ok(())
    }

    async fn clear_checkpoint(&self, head: &CheckpointHead) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_PK, HEAD_SK)))
            .condition_expression("auditId = :id AND step = :step")
            .expression_attribute_values(":id", s(&head.audit_id))
            .expression_attribute_values(":step", n(head.step))
            .send()
            .await;
        match result.map_err(|e| store_error("DeleteItem(audit checkpoint)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn parts_join_back_and_respect_character_boundaries() {
        let state = "ab€cd€".repeat(1000);
        for max in [4, 5, 7, 300] {
            let parts = split(&state, max);
            assert!(parts.iter().all(|p| p.len() <= max && !p.is_empty()));
            assert_eq!(parts.concat(), state);
        }
        assert!(split("", 10).is_empty());
    }
}
