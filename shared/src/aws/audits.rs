//! `AuditStore` on the table: reports listed newest first through `gsi1`, kept 90 days (TTL).

use super::dynamo::{DynamoStore, store_error};
use super::item::s;
use super::pages::{decode_token_of, encode_token};
use super::records::{AUDITS, GSI1, Record, audit_key, is_audit_key};
use crate::domain::audit::AuditReport;
use crate::ports::{AuditStore, Page, StoreError};

impl AuditStore for DynamoStore {
    async fn put_audit(&self, report: &AuditReport) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(report.to_item()?))
            .send()
            .await
            .map_err(|e| store_error("PutItem(audit)", e))?;
        Ok(())
    }

    async fn get_audit(&self, audit_id: &str) -> Result<Option<AuditReport>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(audit_key(audit_id)))
            .send()
            .await
            .map_err(|e| store_error("GetItem(audit)", e))?;
        out.item.as_ref().map(AuditReport::from_item).transpose()
    }

    async fn list_audits(&self, limit: usize, next_token: Option<String>) -> Result<Page<AuditReport>, StoreError> {
        let start = match next_token {
            Some(t) => {
                let sk = decode_token_of(&t, is_audit_key)?;
                let id = sk.rsplit('#').next().ok_or(StoreError::InvalidToken)?.to_owned();
                let mut esk = audit_key(&id);
                esk.insert("gsi1pk".to_owned(), s(AUDITS));
                esk.insert("gsi1sk".to_owned(), s(sk));
                Some(esk)
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(AUDITS))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(50))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(audits)", e))?;
        let items = out.items().iter().map(AuditReport::from_item).collect::<Result<Vec<_>, _>>()?;
        let next_token = out
            .last_evaluated_key()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }
}
