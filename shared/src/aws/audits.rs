//! `AuditStore` on the table: reports listed newest first through `gsi1`, kept 90 days (TTL).

use super::dynamo::{DynamoStore, store_error};
use super::records::{AUDITS, Record, audit_key, is_audit_key};
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
        let key = |sk: &str| Ok(audit_key(sk.rsplit('#').next().ok_or(StoreError::InvalidToken)?));
        self.index_page(AUDITS, false, limit, next_token, is_audit_key, key, "Query(audits)", AuditReport::from_item)
            .await
    }
}
