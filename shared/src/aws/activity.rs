//! `ActivityStore` on the table: activity figures (a `BatchWriteItem` of 25 at a time), import
//! markers and reports.

use aws_sdk_dynamodb::types::{Put, PutRequest, TransactWriteItem, WriteRequest};
use futures_util::{StreamExt, TryStreamExt};

use super::dynamo::{DynamoStore, store_error};
use super::item::s;
use super::pages::{Partitions, check_shard_token};
use super::records::{
    IMPORTS, activity_day_key, activity_from, activity_item, activity_key_of_usage, activity_month_prefix, activity_pk,
    import_from, import_item, import_key, import_marker_key, is_import_key, is_usage_key, latest_activity_from,
    latest_activity_item, latest_activity_key, usage_partition, usage_shard,
};
use super::seats::{Throttled, cancellation_reasons, is_throttled};
use crate::domain::UserId;
use crate::domain::activity::{ActivityKey, Figures, ReportDay};
use crate::domain::import::{ImportReport, ImportStatus, ObjectRef};
use crate::ports::{ActivityReads, ActivityStore, Page, SHARD_PAGE, StoreError};

/// Tries of a batch's unprocessed items (throttling inside DynamoDB) before giving up.
const UNPROCESSED_ATTEMPTS: u32 = 8;

impl ActivityStore for DynamoStore {
    async fn recorded_activity(&self, users: &[UserId]) -> Result<Vec<(UserId, chrono::NaiveDate)>, StoreError> {
        let mut found = Vec::new();
        for chunk in users.chunks(100) {
            let keys = chunk.iter().map(latest_activity_key).collect();
            for item in self.batch_get(keys).await? {
                found.push(latest_activity_from(&item)?);
            }
        }
        Ok(found)
    }

    async fn record_unseated_activity(&self, latest: &[(UserId, chrono::NaiveDate)]) -> Result<(), StoreError> {
        for chunk in latest.chunks(crate::ports::ACTIVITY_BATCH) {
            let items = chunk.iter().map(|(user, date)| latest_activity_item(user, *date)).collect();
            self.batch_put(items, "BatchWriteItem(latest activity)").await?;
        }
        Ok(())
    }

    async fn put_activity(&self, rows: &[(ActivityKey, Figures)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.batch_put(rows.iter().map(|(k, f)| activity_item(k, f)).collect(), "BatchWriteItem(activity)").await
    }

    async fn first_imports_of(&self, days: &[ReportDay]) -> Result<Vec<ReportDay>, StoreError> {
        let mut first = Vec::new();
        for day in days {
            // The old item comes back when there was one: no old item, no earlier figures.
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(activity_day_key(day)))
                .update_expression("SET importedAt = if_not_exists(importedAt, :now)")
                .expression_attribute_values(":now", super::item::t(&chrono::Utc::now()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| store_error("UpdateItem(activity day)", e))?;
            if out.attributes.is_none_or(|a| a.is_empty()) {
                first.push(day.clone());
            }
        }
        Ok(first)
    }

    async fn import_seen(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(import_marker_key(object)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(import marker)", e))?;
        Ok(out.item.is_some())
    }

    async fn record_import(&self, report: &ImportReport) -> Result<(), StoreError> {
        let id = import_id(report);
        let item = import_item(&id, report);
        if report.status == ImportStatus::Duplicate {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| store_error("PutItem(import)", e))?;
            return Ok(());
        }
        let mut marker = import_marker_key(&report.object());
        marker.insert("importedAt".to_owned(), super::item::t(&report.imported_at));
        marker.insert("importId".to_owned(), s(&id));
        let put = |item, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| StoreError::Refused { operation: "TransactWriteItems(import)", source: Box::new(e) })
        };
        let items = vec![put(marker, Some("attribute_not_exists(pk)"))?, put(item, None)?];
        let mut throttled = Throttled::default();
        loop {
            let sent = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let Err(e) = sent else { return Ok(()) };
            match super::error_code(&e) {
                // Throttled is no other delivery's marker: sent again, never reported a duplicate.
                Some("TransactionCanceledException") if is_throttled(&cancellation_reasons(&e)) => {
                    if !throttled.wait().await {
                        return Err(StoreError::Throttled {
                            operation: "TransactWriteItems(import)",
                            source: Box::new(e),
                        });
                    }
                }
                Some("TransactionCanceledException") => return Err(StoreError::Conflict("TransactWriteItems(import)")),
                _ => return Err(store_error("TransactWriteItems(import)", e)),
            }
        }
    }
}

impl ActivityReads for DynamoStore {
    async fn list_imports(&self, limit: usize, next_token: Option<String>) -> Result<Page<ImportReport>, StoreError> {
        let key = |sk: &str| Ok(import_key(sk));
        self.index_page(IMPORTS, false, limit, next_token, is_import_key, key, "Query(imports)", import_from).await
    }

    async fn month_activity(
        &self,
        month: &str,
        shard: usize,
        next_token: Option<String>,
    ) -> Result<Page<(ActivityKey, Figures)>, StoreError> {
        self.month_page(month, shard, next_token).await
    }

    async fn users_month_activity(
        &self,
        month: &str,
        users: &[UserId],
    ) -> Result<Vec<(ActivityKey, Figures)>, StoreError> {
        let prefix = activity_month_prefix(month);
        // The futures are made first (none runs until polled): a closure borrowing its argument
        // inside the stream fails this `Send` future's higher-ranked lifetime check. `buffered`
        // answers in the order asked, whichever Query finishes first.
        let queries: Vec<_> = users.iter().map(|user| self.user_month(user, &prefix)).collect();
        let per_user: Vec<Vec<(ActivityKey, Figures)>> =
            futures_util::stream::iter(queries).buffered(USERS_AT_ONCE).try_collect().await?;
        Ok(per_user.into_iter().flatten().collect())
    }
}

/// Users whose month [`ActivityReads::users_month_activity`] queries at once: a page of 100
/// takes about 13 round trips, and the table's read capacity is not spent in a burst.
const USERS_AT_ONCE: usize = 8;

impl DynamoStore {
    /// One `BatchWriteItem` of at most 25 puts, its unprocessed items retried with backoff until
    /// they are all written or [`UNPROCESSED_ATTEMPTS`] rounds went by (then `Throttled`).
    async fn batch_put(&self, items: Vec<super::item::Item>, operation: &'static str) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Refused { operation, source: Box::new(e) })?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for attempt in 1..=UNPROCESSED_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| store_error(operation, e))?;
            requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            if attempt < UNPROCESSED_ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
            }
        }
        Err(StoreError::Throttled { operation, source: format!("{} items stayed unprocessed", requests.len()).into() })
    }

    /// `user`'s rows whose sort key begins with `prefix`, every page of them.
    async fn user_month(&self, user: &UserId, prefix: &str) -> Result<Vec<(ActivityKey, Figures)>, StoreError> {
        let mut rows = Vec::new();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :day)")
            .expression_attribute_values(":pk", s(activity_pk(user)))
            .expression_attribute_values(":day", s(prefix));
        self.every_page(query, "Query(activity of a user)", |out| {
            for item in out.items() {
                rows.push(activity_from(item)?);
            }
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    /// The month's figures of a shard's users through `gsi1` (`USAGE#<yyyy-mm>#<shard>`), up to
    /// [`SHARD_PAGE`] a page; the token is the last item's `gsi1sk`
    /// (`<userId>#<date>#<clientType>`), from which its shard and table key follow.
    async fn month_page(
        &self,
        month: &str,
        shard: usize,
        next_token: Option<String>,
    ) -> Result<Page<(ActivityKey, Figures)>, StoreError> {
        check_shard_token(shard, next_token.as_deref(), is_usage_key, usage_shard)?;
        let names = [usage_partition(month, shard)];
        let partitions = Partitions { names: &names, of: |_| 0, per_query: SHARD_PAGE as i32 };
        let convert = |item: &super::item::Item| activity_from(item).map(Some);
        self.gsi1_page(partitions, None, SHARD_PAGE, next_token, activity_key_of_usage, is_usage_key, convert).await
    }
}

/// `<importedAt>#<arrival>`: sorted newest first by the millisecond, then by arrival (the
/// wall clock's nanoseconds when it was stored, then a random tail against ties).
fn import_id(report: &ImportReport) -> String {
    let arrival = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("{}#{arrival:020}-{}", crate::time::format(&report.imported_at), &tail[..8])
}
