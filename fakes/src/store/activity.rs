//! Activity figures and import reports: [`ActivityStore`] on the in-memory table.

use kiro::domain::activity::{ActivityKey, Figures, ReportDay};
use kiro::domain::import::{ImportReport, ImportStatus, ObjectRef};
use kiro::ports::{ACTIVITY_BATCH, ActivityReads, ActivityStore, Page};

use super::*;

impl MemoryStore {
    /// Every activity row stored, by key.
    pub fn activity_snapshot(&self) -> Vec<(ActivityKey, Figures)> {
        self.table().activity.iter().map(|(k, f)| (k.clone(), f.clone())).collect()
    }
}

impl ActivityStore for MemoryStore {
    async fn recorded_activity(&self, users: &[UserId]) -> Result<Vec<(UserId, chrono::NaiveDate)>, StoreError> {
        const OPERATION: &str = "BatchGetItem(seats)";
        if users.is_empty() {
            return Ok(Vec::new());
        }
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request(OPERATION)?;
        table.more_requests(OPERATION, users.len().div_ceil(100) - 1);
        Ok(users.iter().filter_map(|u| table.latest_activity.get(u).map(|d| (u.clone(), *d))).collect())
    }

    async fn record_unseated_activity(&self, latest: &[(UserId, chrono::NaiveDate)]) -> Result<(), StoreError> {
        const OPERATION: &str = "BatchWriteItem(latest activity)";
        if latest.is_empty() {
            return Ok(());
        }
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request(OPERATION)?;
        table.more_requests(OPERATION, latest.len().div_ceil(kiro::ports::ACTIVITY_BATCH) - 1);
        for (user, date) in latest {
            table.latest_activity.insert(user.clone(), *date);
        }
        Ok(())
    }

    async fn put_activity(&self, rows: &[(ActivityKey, Figures)]) -> Result<(), StoreError> {
        const OPERATION: &str = "BatchWriteItem(activity)";
        if rows.is_empty() {
            return Ok(());
        }
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request(OPERATION)?;
        let mut keys: Vec<&ActivityKey> = rows.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        // As DynamoDB: more than 25 requests, or two for one key, is refused whole.
        if rows.len() > ACTIVITY_BATCH || keys.len() < rows.len() {
            return Err(StoreError::Refused { operation: OPERATION, source: "a batch DynamoDB refuses".into() });
        }
        for (k, f) in rows {
            table.activity.insert(k.clone(), f.clone());
            let (month, sk) = (k.date.format("%Y-%m").to_string(), usage_sort_key(k));
            table.usage_order.insert((month, kiro::ports::seat_shard(k.user_id.as_str()), sk), k.clone());
        }
        Ok(())
    }

    async fn first_imports_of(&self, days: &[ReportDay]) -> Result<Vec<ReportDay>, StoreError> {
        let mut first = Vec::new();
        for day in days {
            MemoryStore::pause(self).await;
            let mut table = self.table();
            table.request("UpdateItem(activity day)")?;
            if table.activity_days.insert(day.clone()) {
                first.push(day.clone());
            }
        }
        Ok(first)
    }

    async fn import_seen(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("GetItem(import marker)")?;
        Ok(table.import_markers.contains(object))
    }

    async fn record_import(&self, report: &ImportReport) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        let duplicate = report.status == ImportStatus::Duplicate;
        table.request(if duplicate { "PutItem(import)" } else { "TransactWriteItems(import)" })?;
        if !duplicate && !table.import_markers.insert(report.object()) {
            return Err(StoreError::Conflict("TransactWriteItems(import)"));
        }
        table.import_seq += 1;
        let id = format!("{}#{:020}", kiro::time::format(&report.imported_at), table.import_seq);
        let stored = ImportReport { imported_at: as_stored(report.imported_at), ..report.clone() };
        table.imports.insert(id, stored);
        Ok(())
    }
}

impl ActivityReads for MemoryStore {
    async fn list_imports(&self, limit: usize, next_token: Option<String>) -> Result<Page<ImportReport>, StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("Query(imports)")?;
        let start = match next_token {
            Some(t) => Some(kiro::aws::decode_token(&t)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut last = None;
        for (id, report) in table.imports.iter().rev() {
            if start.as_ref().is_some_and(|s| id >= s) {
                continue;
            }
            if items.len() == limit {
                break;
            }
            items.push(report.clone());
            last = Some(id.clone());
        }
        let more = last.as_ref().is_some_and(|l| table.imports.keys().next().is_some_and(|first| first < l));
        Ok(Page { items, next_token: if more { last.map(|l| kiro::aws::encode_token(&l)) } else { None } })
    }

    async fn month_activity(
        &self,
        month: &str,
        shard: usize,
        next_token: Option<String>,
    ) -> Result<Page<(ActivityKey, Figures)>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        MemoryStore::pause(self).await;
        let start = next_token.map(|t| decode_token(&t)).transpose()?;
        let shard_of = |sk: &str| kiro::ports::seat_shard(sk.split('#').next().unwrap_or_default());
        // DynamoStore's checks: a token is an activity row's gsi1sk, `<user>#<date>#<client>`,
        // of that shard.
        let is_key = |sk: &str| sk.splitn(3, '#').filter(|part| !part.is_empty()).count() == 3 && shard_of(sk) == shard;
        if shard >= kiro::ports::SEAT_SHARDS || start.as_deref().is_some_and(|sk| !is_key(sk)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        // One Query of `USAGE#<month>#<shard>` from the token on: up to a page of rows, with a
        // token whenever it fills one (the next call may then find nothing), as `gsi1_page`.
        let low = (month.to_owned(), shard, start.unwrap_or_default());
        let high = (month.to_owned(), shard + 1, String::new());
        let keys: Vec<(&String, &ActivityKey)> =
            (table.usage_order.range((Bound::Excluded(low), Bound::Excluded(high))))
                .take(kiro::ports::SHARD_PAGE)
                .map(|((_, _, sk), key)| (sk, key))
                .collect();
        let next_token = (keys.len() == kiro::ports::SHARD_PAGE).then(|| encode_token(keys[keys.len() - 1].0));
        let items = keys.iter().map(|(_, k)| ((*k).clone(), table.activity[*k].clone())).collect();
        Ok(Page { items, next_token })
    }

    async fn users_month_activity(
        &self,
        month: &str,
        users: &[UserId],
    ) -> Result<Vec<(ActivityKey, Figures)>, StoreError> {
        // One Query per user, as DynamoStore sends them (a user's month is far below 1 MB).
        let mut rows = Vec::new();
        for user in users {
            MemoryStore::pause(self).await;
            let mut table = self.table();
            table.request("Query(activity of a user)")?;
            rows.extend(
                (table.activity.iter())
                    .filter(|(k, _)| &k.user_id == user && k.date.format("%Y-%m").to_string() == month)
                    .map(|(k, f)| (k.clone(), f.clone())),
            );
        }
        Ok(rows)
    }
}

/// An activity row's `gsi1sk`, `<userId>#<date>#<clientType>`: its place in its month's index.
fn usage_sort_key(k: &ActivityKey) -> String {
    format!("{}#{}#{}", k.user_id.as_str(), k.date.format("%Y-%m-%d"), k.client_type.as_str())
}
