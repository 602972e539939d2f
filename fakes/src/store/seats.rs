//! Seats, commits and the outbox: [`SeatStore`] on the in-memory table.

use kiro::ports::{Outboxes, SEAT_SHARDS, SeatNames, SeatStore, seat_shard};

use super::index::Index;
use super::*;

impl MemoryStore {
    /// One `BatchGetItem` per 100 users; each batch answers in user id order, not in the order
    /// asked, since DynamoDB keeps none.
    fn get_seats_now(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
        const OPERATION: &str = "BatchGetItem(seats)";
        let mut table = self.table();
        let mut seats = Vec::with_capacity(users.len());
        for (i, chunk) in users.chunks(QUERY_LIMIT).enumerate() {
            if i == 0 {
                table.request(OPERATION)?;
            } else {
                table.more_requests(OPERATION, 1);
            }
            let keys: BTreeSet<&str> = chunk.iter().map(UserId::as_str).collect();
            if keys.len() < chunk.len() {
                return Err(StoreError::Refused {
                    operation: OPERATION,
                    source: "ValidationException: Provided list of item keys contains duplicates".into(),
                });
            }
            seats.extend(keys.into_iter().filter_map(|user| table.seats.get(user).cloned()));
        }
        Ok(seats)
    }

    fn list_seats_now(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Seat>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        let start = next_token.map(decode_token).transpose()?;
        // DynamoStore's check: a token is a user id (`is_seat_key`).
        if start.as_deref().is_some_and(|u| UserId::parse("token", u).map_or(true, |p| p.as_str() != u)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        // The filters apply to the rows read, as DynamoStore applies them after each Query.
        let keep = |seat: &Seat| {
            filter.tier.is_none_or(|t| t == seat.tier) && filter.status.is_none_or(|st| st == seat.status)
        };
        let (page, queries) = sharded_page(&table.seats, &table.seat_order, start, limit, keep);
        table.more_requests(OPERATION, queries - 1);
        Ok(page)
    }

    fn commit_now(&self, commit: &Commit) -> Result<(), StoreError> {
        const OPERATION: &str = "TransactWriteItems";
        if commit.item_count() == 0 {
            return Ok(());
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        if let Some(refusal) = transaction_refusal(commit) {
            return Err(StoreError::Refused { operation: OPERATION, source: refusal.into() });
        }
        if commit.seats.iter().any(|w| table.refused.contains(&w.seat.user_id)) {
            return Err(StoreError::Refused {
                operation: OPERATION,
                source: "ValidationException: refused (injected)".into(),
            });
        }
        if table.fail_next_commits > 0 {
            table.fail_next_commits -= 1;
            return Err(StoreError::Conflict(OPERATION));
        }
        if !table.conditions_hold(commit) {
            return Err(StoreError::Conflict(OPERATION));
        }
        table.apply(commit);
        if std::mem::take(&mut table.crash_after_next_commit) {
            return Err(StoreError::Aws {
                operation: "crash",
                source: "crash injected by MemoryStore::crash_after_next_commit, after the commit applied".into(),
            });
        }
        Ok(())
    }

    /// Up to `limit` (clamped to 1..=1000) outboxes whose id sorts before the time
    /// `committed_before` (`sk < :before`), oldest first.
    fn pending_outboxes_now(&self, committed_before: DateTime<Utc>, limit: usize) -> Result<Vec<Outbox>, StoreError> {
        let mut table = self.table();
        // One Query per `OUTBOX#<shard>` partition, each of the shard's oldest `limit`.
        table.request("Query(outbox)")?;
        table.more_requests("Query(outbox)", kiro::aws::OUTBOX_SHARDS - 1);
        let before = kiro::time::format(&committed_before);
        let outboxes = table.outboxes.range::<str, _>((Bound::Unbounded, Bound::Excluded(before.as_str())));
        let outboxes = outboxes.take(limit.clamp(1, 1000));
        Ok(outboxes.map(|(id, events)| Outbox { id: id.clone(), events: events.clone() }).collect())
    }

    /// One `BatchGetItem` per 100 ids; duplicates refused as DynamoDB refuses them.
    fn get_outboxes_now(&self, ids: &[String]) -> Result<Vec<Outbox>, StoreError> {
        const OPERATION: &str = "BatchGetItem(outbox)";
        let mut table = self.table();
        let mut found = Vec::new();
        for (i, chunk) in ids.chunks(QUERY_LIMIT).enumerate() {
            if i == 0 {
                table.request(OPERATION)?;
            } else {
                table.more_requests(OPERATION, 1);
            }
            let keys: BTreeSet<&str> = chunk.iter().map(String::as_str).collect();
            if keys.len() < chunk.len() {
                return Err(StoreError::Refused {
                    operation: OPERATION,
                    source: "ValidationException: Provided list of item keys contains duplicates".into(),
                });
            }
            found.extend(keys.into_iter().filter_map(|id| {
                table.outboxes.get(id).map(|events| Outbox { id: id.to_owned(), events: events.clone() })
            }));
        }
        Ok(found)
    }

    /// Deletes the outbox, or puts it back with only `remaining` (unconditionally, as DynamoStore).
    fn settle_outbox_now(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
        let mut table = self.table();
        if remaining.is_empty() {
            table.request("DeleteItem(outbox)")?;
            table.outboxes.remove(id);
        } else {
            table.request("PutItem(outbox)")?;
            table.outboxes.insert(id.to_owned(), remaining.to_vec());
        }
        Ok(())
    }

    fn set_user_name_now(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(seat name)")?;
        if let Some(seat) = table.seats.get_mut(user.as_str()) {
            seat.user_name = Some(user_name.to_owned());
        }
        Ok(())
    }
}

impl SeatStore for MemoryStore {
    async fn get_seats(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::get_seats_now(self, users)
    }

    async fn get_seats_with_activity(
        &self,
        users: &[UserId],
    ) -> Result<(Vec<Seat>, Vec<(UserId, chrono::NaiveDate)>), StoreError> {
        const OPERATION: &str = "BatchGetItem(seats)";
        MemoryStore::pause(self).await;
        let mut table = self.table();
        let (mut seats, mut recorded) = (Vec::new(), Vec::new());
        for (i, chunk) in users.chunks(kiro::ports::SEATS_WITH_ACTIVITY).enumerate() {
            if i == 0 {
                table.request(OPERATION)?;
            } else {
                table.more_requests(OPERATION, 1);
            }
            let keys: BTreeSet<&UserId> = chunk.iter().collect();
            if keys.len() < chunk.len() {
                return Err(StoreError::Refused {
                    operation: OPERATION,
                    source: "ValidationException: Provided list of item keys contains duplicates".into(),
                });
            }
            for user in keys {
                match table.seats.get(user.as_str()) {
                    Some(seat) => seats.push(seat.clone()),
                    None => recorded.extend(table.latest_activity.get(user).map(|d| (user.clone(), *d))),
                }
            }
        }
        Ok((seats, recorded))
    }

    async fn get_subscription_and_seats(
        &self,
        principal: &Principal,
        users: &[UserId],
    ) -> Result<(Option<kiro::domain::Subscription>, kiro::ports::SeatsWithActivity), StoreError> {
        const OPERATION: &str = "BatchGetItem(seats)";
        MemoryStore::pause(self).await;
        let mut table = self.table();
        // The subscription's key and two a user, 100 keys a request.
        table.request(OPERATION)?;
        table.more_requests(OPERATION, (1 + 2 * users.len()).div_ceil(2 * kiro::ports::SEATS_WITH_ACTIVITY) - 1);
        if users.iter().collect::<BTreeSet<_>>().len() < users.len() {
            return Err(StoreError::Refused {
                operation: OPERATION,
                source: "ValidationException: Provided list of item keys contains duplicates".into(),
            });
        }
        let sub = table.subscriptions.get(&sub_key(principal)).cloned();
        let (mut seats, mut recorded) = (Vec::new(), Vec::new());
        for user in users {
            match table.seats.get(user.as_str()) {
                Some(seat) => seats.push(seat.clone()),
                None => recorded.extend(table.latest_activity.get(user).map(|d| (user.clone(), *d))),
            }
        }
        Ok((sub, (seats, recorded)))
    }

    async fn list_seats(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Seat>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::list_seats_now(self, filter, limit, next_token.as_deref())
    }

    async fn shard_seats(&self, shard: usize, next_token: Option<String>) -> Result<Page<Seat>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        MemoryStore::pause(self).await;
        let start = next_token.map(|t| decode_token(&t)).transpose()?;
        // DynamoStore's checks: a token is a user id of that shard.
        let of_shard = |u: &str| UserId::parse("token", u).is_ok_and(|p| p.as_str() == u && seat_shard(u) == shard);
        if shard >= SEAT_SHARDS || start.as_deref().is_some_and(|u| !of_shard(u)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        // The shard's seats: a range of the list order.
        let range = (Bound::Included((shard, String::new())), Bound::Excluded((shard + 1, String::new())));
        let seats: BTreeMap<String, Seat> =
            table.seat_order.range(range).map(|(_, user)| (user.clone(), table.seats[user].clone())).collect();
        let index = Index { rows: &seats, order: None, shard_of: |_| 0, shards: 1, per_query: kiro::ports::SHARD_PAGE };
        let (page, queries) = index.page(start, kiro::ports::SHARD_PAGE, |_| true);
        table.more_requests(OPERATION, queries - 1);
        Ok(page)
    }

    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::commit_now(self, commit)
    }

    async fn pending_outboxes(&self, committed_before: DateTime<Utc>, limit: usize) -> Result<Vec<Outbox>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::pending_outboxes_now(self, committed_before, limit)
    }
}

impl Outboxes for MemoryStore {
    async fn get_outboxes(&self, ids: &[String]) -> Result<Vec<Outbox>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::get_outboxes_now(self, ids)
    }

    async fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::settle_outbox_now(self, id, remaining)
    }
}

impl SeatNames for MemoryStore {
    async fn set_user_name(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::set_user_name_now(self, user, user_name)
    }
}

/// DynamoStore's `gsi1_page` over the `SEATS#<shard>` partitions, Query by Query (100 rows of one
/// shard each, a last key whenever one fills): the page, in list order, and how many Queries it
/// took.
fn sharded_page(
    seats: &BTreeMap<String, Seat>,
    order: &BTreeSet<(usize, String)>,
    start: Option<String>,
    limit: usize,
    keep: impl Fn(&Seat) -> bool,
) -> (Page<Seat>, usize) {
    let index =
        Index { rows: seats, order: Some(order), shard_of: seat_shard, shards: SEAT_SHARDS, per_query: QUERY_LIMIT };
    index.page(start, limit, keep)
}
