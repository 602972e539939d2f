//! `SeatStore` and `SeatNames` on the table: seats, their grant rows, the outbox, in one
//! transaction per change.

use aws_sdk_dynamodb::types::{ConditionCheck, Delete, KeysAndAttributes, Put, TransactWriteItem, Update};

use super::dynamo::{DynamoStore, store_error};
use std::collections::BTreeMap;

use super::grants::GrantLayout;
use super::item::{Item, key, n, s};
use super::pages::{Partitions, check_shard_token};
use super::records::{
    Grant, OUTBOX_SHARDS, Record, SEATS_PARTITIONS, grant_count_key, grant_key, is_seat_key, latest_activity_from,
    latest_activity_key, outbox_key, outbox_partition, seat_key, seat_shard, sub_key,
};
use crate::domain::{GroupId, Principal, Seat, Subscription, UserId};
use crate::ports::{
    Commit, OutEvent, Outbox, Outboxes, Page, SHARD_PAGE, SeatFilter, SeatNames, SeatStore, SeatsWithActivity,
    StoreError,
};

/// Rounds of `UnprocessedKeys` retried before a batch read gives up (about 3 s of backoff).
const MAX_UNPROCESSED_ROUNDS: u32 = 6;

impl SeatStore for DynamoStore {
    async fn get_seats(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
        let mut seats = Vec::with_capacity(users.len());
        for chunk in users.chunks(100) {
            let keys: Vec<Item> = chunk.iter().map(seat_key).collect();
            for item in self.batch_get(keys).await? {
                seats.push(Seat::from_item(&item)?);
            }
        }
        Ok(seats)
    }

    async fn get_seats_with_activity(
        &self,
        users: &[UserId],
    ) -> Result<(Vec<Seat>, Vec<(UserId, chrono::NaiveDate)>), StoreError> {
        let (mut seats, mut recorded) = (Vec::with_capacity(users.len()), Vec::new());
        for chunk in users.chunks(crate::ports::SEATS_WITH_ACTIVITY) {
            let keys: Vec<Item> = chunk.iter().flat_map(|u| [seat_key(u), latest_activity_key(u)]).collect();
            for item in self.batch_get(keys).await? {
                match item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) {
                    Some("LATEST") => recorded.push(latest_activity_from(&item)?),
                    _ => seats.push(Seat::from_item(&item)?),
                }
            }
        }
        // Activity recorded while seatless only matters to users who still have no seat.
        recorded.retain(|(u, _)| !seats.iter().any(|s| &s.user_id == u));
        Ok((seats, recorded))
    }

    async fn get_subscription_and_seats(
        &self,
        principal: &Principal,
        users: &[UserId],
    ) -> Result<(Option<Subscription>, SeatsWithActivity), StoreError> {
        let mut keys = vec![sub_key(principal)];
        // A group's counter too: where its grant rows are, for the commit that follows.
        let group = match principal {
            Principal::Group(g) => Some(g),
            Principal::User(_) => None,
        };
        keys.extend(group.map(grant_count_key));
        keys.extend(users.iter().flat_map(|u| [seat_key(u), latest_activity_key(u)]));
        let (mut sub, mut seats, mut recorded, mut counter) = (None, Vec::with_capacity(users.len()), Vec::new(), None);
        for chunk in keys.chunks(2 * crate::ports::SEATS_WITH_ACTIVITY) {
            for item in self.batch_get(chunk.to_vec()).await? {
                match item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) {
                    Some("LATEST") => recorded.push(latest_activity_from(&item)?),
                    Some("SUB") => sub = Some(Subscription::from_item(&item)?),
                    Some("COUNT") => counter = Some(item),
                    _ => seats.push(Seat::from_item(&item)?),
                }
            }
        }
        if let Some(g) = group {
            self.layouts.learn(g, GrantLayout::of_counter(counter.as_ref())?);
        }
        recorded.retain(|(u, _): &(UserId, chrono::NaiveDate)| !seats.iter().any(|s| &s.user_id == u));
        Ok((sub, (seats, recorded)))
    }

    async fn list_seats(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Seat>, StoreError> {
        self.gsi1_page(
            Partitions { names: &SEATS_PARTITIONS, of: seat_shard, per_query: 100 },
            None,
            limit,
            next_token,
            |sk| key(format!("SEAT#{sk}"), "SEAT"),
            is_seat_key,
            |item| {
                let seat = Seat::from_item(item)?;
                let keep =
                    filter.tier.is_none_or(|t| t == seat.tier) && filter.status.is_none_or(|st| st == seat.status);
                Ok(keep.then_some(seat))
            },
        )
        .await
    }

    async fn shard_seats(&self, shard: usize, next_token: Option<String>) -> Result<Page<Seat>, StoreError> {
        check_shard_token(shard, next_token.as_deref(), is_seat_key, seat_shard)?;
        let names = [SEATS_PARTITIONS[shard].clone()];
        self.gsi1_page(
            Partitions { names: &names, of: |_| 0, per_query: SHARD_PAGE as i32 },
            None,
            SHARD_PAGE,
            next_token,
            |sk| key(format!("SEAT#{sk}"), "SEAT"),
            is_seat_key,
            |item| Seat::from_item(item).map(Some),
        )
        .await
    }

    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        // Every group whose rows this commit writes, with the layout it is written with.
        let mut layouts: BTreeMap<GroupId, GrantLayout> = commit
            .grant_deltas()
            .into_keys()
            .map(|g| {
                let layout = self.layouts.assumed(&g);
                (g, layout)
            })
            .collect();
        let (mut learnt, mut throttled) = (false, Throttled::default());
        loop {
            match self.transact(commit, &layouts).await? {
                Sent::Done => return Ok(()),
                // Canceled for throttling: nothing was written, and the SDK does not send a
                // canceled transaction again. One partition key takes about 1,000 write units a
                // second; a burst over it (a group's first 2,000 grant rows) waits and goes on at
                // the key's pace instead of failing.
                Sent::Throttled(e) => {
                    if !throttled.wait().await {
                        return Err(StoreError::Throttled { operation: "TransactWriteItems", source: e });
                    }
                }
                // A layout taken without reading it was wrong (the group was spread meanwhile):
                // read it and send the commit again, once; anything else lost a race.
                Sent::Lost { counters } if !learnt && !counters.is_empty() => {
                    learnt = true;
                    let mut moved = false;
                    for group in counters {
                        let now = GrantLayout::of_counter(self.read_counter(&group).await?.as_ref())?;
                        moved |= layouts.insert(group, now) != Some(now);
                    }
                    if !moved {
                        return Err(StoreError::Conflict("TransactWriteItems"));
                    }
                }
                Sent::Lost { .. } => return Err(StoreError::Conflict("TransactWriteItems")),
            }
        }
    }

    async fn pending_outboxes(
        &self,
        committed_before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Outbox>, StoreError> {
        // Sort keys are `<time>#<uuid>`, times of one width: `sk < <time>` is "committed before".
        // Each shard's oldest `limit`, together: the oldest `limit` of all.
        let limit = limit.clamp(1, 1000);
        let before = crate::time::format(&committed_before);
        let query = |shard: usize| {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":pk", s(outbox_partition(shard)))
                .expression_attribute_values(":before", s(&before))
                .consistent_read(true)
                .limit(i32::try_from(limit).unwrap_or(100))
                .send()
        };
        let answers = futures_util::future::try_join_all((0..OUTBOX_SHARDS).map(query))
            .await
            .map_err(|e| store_error("Query(outbox)", e))?;
        let mut outboxes =
            (answers.iter().flat_map(|out| out.items())).map(Outbox::from_item).collect::<Result<Vec<_>, _>>()?;
        outboxes.sort_by(|a, b| a.id.cmp(&b.id));
        outboxes.truncate(limit);
        Ok(outboxes)
    }
}

impl Outboxes for DynamoStore {
    async fn get_outboxes(&self, ids: &[String]) -> Result<Vec<Outbox>, StoreError> {
        let mut outboxes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk.iter().map(|id| outbox_key(id)).collect();
            for item in self.batch_get(keys).await? {
                outboxes.push(Outbox::from_item(&item)?);
            }
        }
        Ok(outboxes)
    }

    async fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
        if remaining.is_empty() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(outbox_key(id)))
                .send()
                .await
                .map_err(|e| store_error("DeleteItem(outbox)", e))?;
        } else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Outbox { id: id.to_owned(), events: remaining.to_vec() }.to_item()?))
                .send()
                .await
                .map_err(|e| store_error("PutItem(outbox)", e))?;
        }
        Ok(())
    }
}

impl SeatNames for DynamoStore {
    async fn set_user_name(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(seat_key(user)))
            .update_expression("SET userName = :name")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":name", s(user_name))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(seat name)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl DynamoStore {
    /// One `BatchGetItem` of at most 100 keys, consistent, its unprocessed keys retried.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Aws { operation: "BatchGetItem(seats)", source: e.into() })?,
        );
        let mut attempt = 0u32;
        while let Some(keys) = request.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(|e| store_error("BatchGetItem(seats)", e))?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(&self.table).unwrap_or_default());
            }
            request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            if request.is_some() {
                // Keys left unprocessed are DynamoDB throttling the batch: back off, and after as
                // many rounds as the SDK's own retries, answer `Throttled`.
                attempt += 1;
                if attempt > MAX_UNPROCESSED_ROUNDS {
                    return Err(StoreError::Throttled {
                        operation: "BatchGetItem(seats)",
                        source: "keys stayed unprocessed after every retry".into(),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
            }
        }
        Ok(found)
    }
}

/// Why DynamoDB canceled a transaction: one code per item, in the order sent ("None" for an item
/// that did not fail); empty for any other failure.
pub(crate) fn cancellation_reasons<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Vec<String> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_owned()).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether a cancellation was a partition's throttling: nothing was written, and it is no race.
pub(crate) fn is_throttled(reasons: &[String]) -> bool {
    reasons.iter().any(|r| r == "ThrottlingError" || r == "ProvisionedThroughputExceeded")
}

/// Rounds a transaction canceled for throttling is sent again, after 100 ms, 200 ms, ... 3.2 s
/// (6.3 s in all), before the store answers `Throttled`.
const MAX_THROTTLED_ROUNDS: u32 = 6;

/// The rounds of one transaction DynamoDB canceled for throttling. Nothing of it was written, and
/// the SDK does not send a canceled transaction again: every transaction the store sends (a
/// commit, an import's marker and report) waits and sends it again itself.
#[derive(Default)]
pub(crate) struct Throttled {
    rounds: u32,
}

impl Throttled {
    /// After a cancellation for throttling: waits (100 ms, doubling) and answers whether to send
    /// the transaction again; `false`, without waiting, once [`MAX_THROTTLED_ROUNDS`] went by.
    pub(crate) async fn wait(&mut self) -> bool {
        self.rounds += 1;
        if self.rounds > MAX_THROTTLED_ROUNDS {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50 << self.rounds)).await;
        true
    }
}

/// How a transaction ended, short of an error.
enum Sent {
    Done,
    /// Canceled because an item's partition was throttled: nothing was written.
    Throttled(crate::BoxError),
    /// Its conditions failed; `counters` are the groups whose counter's layout condition did.
    Lost {
        counters: Vec<GroupId>,
    },
}

impl DynamoStore {
    /// One `TransactWriteItems` of the commit, the grant rows of each group where `layouts` says.
    async fn transact(&self, commit: &Commit, layouts: &BTreeMap<GroupId, GrantLayout>) -> Result<Sent, StoreError> {
        let mut items = Vec::with_capacity(commit.item_count());
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Aws {
            operation: "TransactWriteItems",
            source: e.into(),
        };
        let layout_of = |g: &GroupId| layouts.get(g).copied().unwrap_or(GrantLayout::One);
        for w in &commit.seats {
            let mut put = Put::builder().table_name(&self.table).set_item(Some(w.seat.to_item()?));
            put = match w.expected_version {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
            for (group, membership) in &w.grants_added {
                let grant = Grant {
                    group: group.clone(),
                    user: w.seat.user_id.clone(),
                    membership: membership.clone(),
                    layout: layout_of(group),
                };
                let put =
                    Put::builder().table_name(&self.table).set_item(Some(grant.to_item()?)).build().map_err(build)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            for group in &w.grants_removed {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(grant_key(group, &w.seat.user_id, layout_of(group))))
                    .build()
                    .map_err(build)?;
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
        }
        for g in &commit.guards {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(sub_key(&g.principal)))
                .condition_expression("attribute_exists(pk) AND tier = :t")
                .expression_attribute_values(":t", s(g.tier.as_str()))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for p in &commit.absent {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(sub_key(p)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        // Each group's counter: moved by the rows' count, and asserting the layout they are
        // written with (checked only, when as many rows come as go).
        let mut counters = Vec::new();
        for (group, delta) in commit.grant_deltas() {
            let (condition, shards) = layout_of(&group).condition();
            counters.push((items.len(), group.clone()));
            let item = if delta == 0 {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(grant_count_key(&group)))
                    .condition_expression(condition)
                    .set_expression_attribute_values(shards.map(|v| [(":shards".to_owned(), v)].into()))
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().condition_check(check).build()
            } else {
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(grant_count_key(&group)))
                    .update_expression("SET entity = :entity ADD grants :delta")
                    .condition_expression(condition)
                    .expression_attribute_values(":entity", s("GrantCount"))
                    .expression_attribute_values(":delta", n(delta));
                if let Some(v) = shards {
                    update = update.expression_attribute_values(":shards", v);
                }
                TransactWriteItem::builder().update(update.build().map_err(build)?).build()
            };
            items.push(item);
        }
        if let Some(outbox) = &commit.outbox {
            let put =
                Put::builder().table_name(&self.table).set_item(Some(outbox.to_item()?)).build().map_err(build)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        if items.is_empty() {
            return Ok(Sent::Done);
        }
        // The token makes the SDK's own retries of this request idempotent: a retry of a commit
        // whose answer was lost succeeds instead of failing its conditions (10 minutes).
        let token = uuid::Uuid::new_v4().to_string();
        let request = self.client.transact_write_items().set_transact_items(Some(items)).client_request_token(token);
        let e = match request.send().await {
            Ok(_) => return Ok(Sent::Done),
            Err(e) => e,
        };
        let code = super::error_code(&e);
        if !matches!(code, Some("TransactionCanceledException") | Some("TransactionConflictException")) {
            return Err(store_error("TransactWriteItems", e));
        }
        let reasons = cancellation_reasons(&e);
        if is_throttled(&reasons) {
            return Ok(Sent::Throttled(Box::new(e)));
        }
        // An item the table refuses (too large, a malformed key): not a race.
        if reasons.iter().any(|r| r == "ValidationError") {
            return Err(StoreError::Refused { operation: "TransactWriteItems", source: Box::new(e) });
        }
        let failed = |i: usize| reasons.get(i).is_some_and(|r| r == "ConditionalCheckFailed");
        Ok(Sent::Lost { counters: counters.into_iter().filter(|(i, _)| failed(*i)).map(|(_, g)| g).collect() })
    }
}

#[cfg(test)]
mod tests {
    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// As DynamoDB answers a transaction an item of which a throttled partition holds.
    fn throttled() -> TransactWriteItemsError {
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .cancellation_reasons(CancellationReason::builder().code("ThrottlingError").build())
                .meta(ErrorMetadata::builder().code("TransactionCanceledException").build())
                .build(),
        )
    }

    /// A store whose client answers from `rule`; the SDK's own retries off (it does not retry a
    /// canceled transaction anyway).
    fn store(rule: &Rule) -> DynamoStore {
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [rule], |c| {
            c.retry_config(RetryConfig::disabled())
        });
        DynamoStore::new(client, "kiro")
    }

    fn commit() -> Commit {
        Commit { outbox: Some(Outbox { id: "2026-12-01T00:00:00.000Z#1".into(), events: vec![] }), ..Commit::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_canceled_for_throttling_is_sent_again_after_a_pause() {
        let rule = mock!(Client::transact_write_items)
            .sequence()
            .error(throttled)
            .times(3)
            .output(|| TransactWriteItemsOutput::builder().build())
            .build();
        let started = tokio::time::Instant::now();

        store(&rule).commit(&commit()).await.unwrap();

        assert_eq!(rule.num_calls(), 4);
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(100 + 200 + 400), "it waited between rounds");
    }

    fn import() -> crate::domain::import::ImportReport {
        use crate::domain::import::{ImportReport, ImportStatus, ObjectRef};
        let object = ObjectRef { bucket: "b".into(), key: "k.csv".into(), etag: "e".into() };
        ImportReport::empty(&object, ImportStatus::Rejected, Some("r".into()), chrono::Utc::now())
    }

    /// The import's transaction (marker and report) is sent again as a commit is; throttled
    /// round after round, it is `Throttled` (its delivery retried), never the `Conflict` that
    /// would report the import a duplicate of another delivery.
    #[tokio::test(start_paused = true)]
    async fn an_import_canceled_for_throttling_is_sent_again_then_throttled_not_a_duplicate() {
        use crate::ports::ActivityStore;
        let again = mock!(Client::transact_write_items)
            .sequence()
            .error(throttled)
            .times(2)
            .output(|| TransactWriteItemsOutput::builder().build())
            .build();
        store(&again).record_import(&import()).await.unwrap();
        assert_eq!(again.num_calls(), 3);

        let rule = mock!(Client::transact_write_items).sequence().error(throttled).times(10).build();
        let err = store(&rule).record_import(&import()).await.unwrap_err();

        assert!(matches!(err, StoreError::Throttled { operation: "TransactWriteItems(import)", .. }), "{err:?}");
        assert_eq!(rule.num_calls(), 1 + MAX_THROTTLED_ROUNDS as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_throttled_round_after_round_is_throttled() {
        let rule = mock!(Client::transact_write_items).sequence().error(throttled).times(10).build();

        let err = store(&rule).commit(&commit()).await.unwrap_err();

        assert!(matches!(err, StoreError::Throttled { operation: "TransactWriteItems", .. }), "{err:?}");
        assert_eq!(rule.num_calls(), 1 + MAX_THROTTLED_ROUNDS as usize);
    }
}
