//! Subscriptions and the group grants index: [`SubscriptionStore`] on the in-memory table.

use kiro::domain::FanOut;
use kiro::ports::{SEAT_SHARDS, SubscriptionStore, seat_shard};

use super::*;

impl MemoryStore {
    fn get_subscription_now(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let mut table = self.table();
        table.request("GetItem(subscription)")?;
        Ok(table.subscriptions.get(&sub_key(principal)).cloned())
    }

    fn list_subscriptions_now(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError> {
        const OPERATION: &str = "Query(gsi1)";
        let prefix = principal_type.map(|t| format!("{}#", t.as_str())).unwrap_or_default();
        let start = next_token.map(decode_token).transpose()?;
        if start.as_ref().is_some_and(|sk| !sk.starts_with(&prefix)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request(OPERATION)?;
        let lower = start.map_or_else(|| Bound::Included(prefix.clone()), Bound::Excluded);
        let rows = table.subscriptions.range((lower, Bound::Unbounded)).take_while(|(sk, _)| sk.starts_with(&prefix));
        let (page, queries) = gsi1_page(rows, limit, |sub| Some(sub.clone()));
        table.more_requests(OPERATION, queries - 1);
        Ok(page)
    }

    fn create_subscription_now(&self, sub: &Subscription) -> Result<(), StoreError> {
        const OPERATION: &str = "PutItem(subscription)";
        let mut table = self.table();
        table.request(OPERATION)?;
        let key = sub_key(&sub.principal);
        if table.subscriptions.contains_key(&key) {
            return Err(StoreError::Conflict(OPERATION));
        }
        table.subscriptions.insert(key, stored_subscription(sub));
        Ok(())
    }

    fn update_subscription_now(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
        const OPERATION: &str = "UpdateItem(subscription)";
        let mut table = self.table();
        table.request(OPERATION)?;
        // Tier, pending tier and who changed it when; the rest of the item stays.
        match table.subscriptions.get_mut(&sub_key(&sub.principal)) {
            Some(stored) if stored.tier == expected_tier => {
                let next = stored_subscription(sub);
                stored.tier = next.tier;
                (stored.pending_tier, stored.pending_tier_effective_at) =
                    match (next.pending_tier, next.pending_tier_effective_at) {
                        (Some(tier), Some(at)) => (Some(tier), Some(at)),
                        _ => (None, None),
                    };
                stored.updated_at = next.updated_at;
                stored.updated_by = next.updated_by;
                Ok(())
            }
            _ => Err(StoreError::Conflict(OPERATION)),
        }
    }

    fn set_fan_out_now(&self, principal: &Principal, fan_out: FanOut) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(fan-out)")?;
        if let Some(stored) = table.subscriptions.get_mut(&sub_key(principal)) {
            if !stored.fan_out.is_some_and(|f| f.is_done()) {
                stored.fan_out = Some(fan_out);
            }
        }
        Ok(())
    }

    fn delete_subscription_now(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let mut table = self.table();
        table.request("DeleteItem(subscription)")?;
        Ok(table.subscriptions.remove(&sub_key(principal)))
    }

    fn count_granted_now(&self, group: &GroupId) -> Result<u64, StoreError> {
        const OPERATION: &str = "Query(count grants)";
        let mut table = self.table();
        table.request("GetItem(grant count)")?;
        if let Some(kept) = table.grant_counts.get(group) {
            return Ok(u64::try_from(*kept).unwrap_or(0));
        }
        // No counter: DynamoStore counts the rows.
        table.request(OPERATION)?;
        let (count, bytes) = table
            .grants
            .get(group)
            .map_or((0, 0), |rows| (rows.len(), rows.values().map(|row| grant_item_bytes(group, row)).sum::<usize>()));
        // A counting Query still reads its rows: one request per MiB of them.
        table.more_requests(OPERATION, bytes / QUERY_BYTES);
        Ok(count as u64)
    }

    fn spread_grants_now(&self, group: &GroupId) -> Result<(), StoreError> {
        let mut table = self.table();
        table.request("UpdateItem(spread grants)")?;
        // DynamoStore's condition: no rows counted, or spread already.
        if table.grant_counts.get(group).is_none_or(|n| *n == 0) {
            table.spread.insert(group.clone());
        }
        Ok(())
    }

    fn granted_users_now(
        &self,
        group: &GroupId,
        next_token: Option<&str>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        let start = next_token.map(decode_token).transpose()?;
        // Any other start key lies outside the query's `begins_with(sk, "MEMBER#")`.
        if start.as_ref().is_some_and(|sk| !sk.starts_with(MEMBER)) {
            return Err(StoreError::InvalidToken);
        }
        let mut table = self.table();
        table.request("Query(grants)")?;
        if table.spread.contains(group) {
            return Ok(spread_page(&mut table, group, start));
        }
        let Some(rows) = table.grants.get(group) else {
            return Ok(Page { items: Vec::new(), next_token: None });
        };
        let read: Vec<(&String, &Grant)> = rows.range(after(start)).take(kiro::ports::GRANTS_PAGE).collect();
        // DynamoDB answers a `LastEvaluatedKey` whenever the Query stopped at its `Limit`.
        let next_token = read.last().filter(|_| read.len() == kiro::ports::GRANTS_PAGE).map(|(sk, _)| encode_token(sk));
        let items = read.into_iter().map(|(_, row)| (row.user.clone(), row.membership.clone())).collect();
        Ok(Page { items, next_token })
    }

    fn membership_now(&self, membership_id: &MembershipId) -> Result<Option<(GroupId, UserId)>, StoreError> {
        let mut table = self.table();
        table.request("Query(membership)")?;
        Ok(table.memberships.get(membership_id).and_then(|rows| rows.first().cloned()))
    }
}

impl SubscriptionStore for MemoryStore {
    async fn get_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::get_subscription_now(self, principal)
    }

    async fn list_subscriptions(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Subscription>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::list_subscriptions_now(self, principal_type, limit, next_token.as_deref())
    }

    async fn create_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::create_subscription_now(self, sub)
    }

    async fn update_subscription(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::update_subscription_now(self, sub, expected_tier)
    }

    async fn set_fan_out(&self, principal: &Principal, fan_out: FanOut) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::set_fan_out_now(self, principal, fan_out)
    }

    async fn delete_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::delete_subscription_now(self, principal)
    }

    async fn count_granted(&self, group: &GroupId) -> Result<u64, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::count_granted_now(self, group)
    }

    async fn spread_grants(&self, group: &GroupId) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::spread_grants_now(self, group)
    }

    async fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::granted_users_now(self, group, next_token.as_deref())
    }

    async fn membership(&self, membership_id: &MembershipId) -> Result<Option<(GroupId, UserId)>, StoreError> {
        MemoryStore::pause(self).await;
        MemoryStore::membership_now(self, membership_id)
    }
}

/// A page of a spread group's rows, in `DynamoStore`'s order (by shard, then user) and with its
/// requests: the first page reads the group's own partition (its counter) and then each shard
/// it reaches; a page that stops inside a shard resumes there. The first Query is counted by the
/// caller.
fn spread_page(table: &mut Table, group: &GroupId, start: Option<String>) -> Page<(UserId, Option<MembershipId>)> {
    let mut rows: Vec<(usize, &String, &Grant)> = table
        .grants
        .get(group)
        .map(|rows| rows.iter().map(|(sk, row)| (seat_shard(row.user.as_str()), sk, row)).collect())
        .unwrap_or_default();
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let from = start.as_ref().map_or(0, |sk| {
        let shard = seat_shard(&sk[MEMBER.len()..]);
        rows.partition_point(|(s, k, _)| (*s, k.as_str()) <= (shard, sk.as_str()))
    });
    let read = &rows[from..(from + kiro::ports::GRANTS_PAGE).min(rows.len())];
    let full = read.len() == kiro::ports::GRANTS_PAGE;
    // Shards from where the page starts to where it stops (the last one when it ends the list).
    let first_shard = start.as_ref().map_or(0, |sk| seat_shard(&sk[MEMBER.len()..]));
    let last_shard = if full { read.last().map_or(first_shard, |r| r.0) } else { SEAT_SHARDS - 1 };
    let queries = (last_shard + 1 - first_shard) + usize::from(start.is_none());
    let page = Page {
        items: read.iter().map(|(_, _, row)| (row.user.clone(), row.membership.clone())).collect(),
        next_token: read.last().filter(|_| full).map(|(_, sk, _)| encode_token(sk)),
    };
    table.more_requests("Query(grants)", queries - 1);
    page
}
