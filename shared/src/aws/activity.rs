//! `ActivityStore` on the table: activity figures (a `BatchWriteItem` of 25 at a time), import
//! markers and reports.

use aws_sdk_dynamodb::types::{Put, PutRequest, TransactWriteItem, WriteRequest};

use super::dynamo::{DynamoStore, store_error};
use super::pages::{decode_token_of, encode_token};
use super::records::{
    IMPORTS, activity_from, activity_item, import_from, import_item, import_key, import_marker_key, is_import_key,
    latest_activity_from, latest_activity_item, latest_activity_key,
};
use super::{GSI1_INDEX, item::s};
use crate::domain::UserId;
use crate::domain::activity::{ActivityKey, Figures};
use crate::domain::import::{ImportReport, ImportStatus, ObjectRef};
use crate::ports::{ActivityReads, ActivityStore, Page, StoreError};

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
            let mut requests: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
            for (user, date) in chunk {
                let put =
                    PutRequest::builder().set_item(Some(latest_activity_item(user, *date))).build().map_err(|e| {
                        StoreError::Refused { operation: "BatchWriteItem(latest activity)", source: Box::new(e) }
                    })?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut attempt = 0u32;
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchWriteItem(latest activity)", e))?;
                requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                attempt += 1;
                if !requests.is_empty() {
                    if attempt > UNPROCESSED_ATTEMPTS {
                        return Err(StoreError::Throttled {
                            operation: "BatchWriteItem(latest activity)",
                            source: "items stayed unprocessed after every retry".into(),
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
                }
            }
        }
        Ok(())
    }

    async fn put_activity(&self, rows: &[(ActivityKey, Figures)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(rows.len());
        for (k, f) in rows {
            let put = PutRequest::builder()
                .set_item(Some(activity_item(k, f)))
                .build()
                .map_err(|e| StoreError::Refused { operation: "BatchWriteItem(activity)", source: Box::new(e) })?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for attempt in 1..=UNPROCESSED_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| store_error("BatchWriteItem(activity)", e))?;
            requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            if attempt < UNPROCESSED_ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
            }
        }
        Err(StoreError::Throttled {
            operation: "BatchWriteItem(activity)",
            source: format!("{} items stayed unprocessed", requests.len()).into(),
        })
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
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match super::error_code(&e) {
                Some("TransactionCanceledException") => Err(StoreError::Conflict("TransactWriteItems(import)")),
                _ => Err(store_error("TransactWriteItems(import)", e)),
            },
        }
    }
}

impl ActivityReads for DynamoStore {
    async fn list_imports(&self, limit: usize, next_token: Option<String>) -> Result<Page<ImportReport>, StoreError> {
        let start = match next_token {
            Some(t) => {
                let sk = decode_token_of(&t, is_import_key)?;
                let mut esk = import_key(&sk);
                esk.insert("gsi1pk".to_owned(), s(IMPORTS));
                esk.insert("gsi1sk".to_owned(), s(sk));
                Some(esk)
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(IMPORTS))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(50))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(imports)", e))?;
        let items = out.items().iter().map(import_from).collect::<Result<Vec<_>, _>>()?;
        let next_token = out
            .last_evaluated_key()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }

    async fn month_activity(
        &self,
        month: &str,
        next_token: Option<String>,
    ) -> Result<Page<(ActivityKey, Figures)>, StoreError> {
        self.month_page(month, next_token).await
    }
}

impl DynamoStore {
    /// The month's figures through `gsi1` (`USAGE#<yyyy-mm>`), up to 1,000 a page; the token is
    /// the last item's `gsi1sk` (`<userId>#<date>#<clientType>`), from which its table key follows.
    async fn month_page(
        &self,
        month: &str,
        next_token: Option<String>,
    ) -> Result<Page<(ActivityKey, Figures)>, StoreError> {
        let partition = format!("USAGE#{month}");
        let start = match next_token {
            Some(t) => {
                let sk = decode_token_of(&t, |sk| sk.splitn(3, '#').count() == 3)?;
                let mut parts = sk.splitn(3, '#');
                let (Some(user), Some(date), Some(client)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(StoreError::InvalidToken);
                };
                let mut esk = super::item::key(format!("ACTIVITY#{user}"), format!("DAY#{date}#{client}"));
                esk.insert("gsi1pk".to_owned(), s(&partition));
                esk.insert("gsi1sk".to_owned(), s(sk.as_str()));
                Some(esk)
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(&partition))
            .limit(1_000)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(activity)", e))?;
        let items = out.items().iter().map(activity_from).collect::<Result<Vec<_>, _>>()?;
        let next_token = out
            .last_evaluated_key()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }
}

/// `<importedAt>#<arrival>`: sorted newest first by the millisecond, then by arrival (the
/// wall clock's nanoseconds when it was stored, then a random tail against ties).
fn import_id(report: &ImportReport) -> String {
    let arrival = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("{}#{arrival:020}-{}", crate::time::format(&report.imported_at), &tail[..8])
}
