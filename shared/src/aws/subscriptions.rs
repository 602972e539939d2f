//! `SubscriptionStore` on the table: subscriptions and the group grant rows they count.

use aws_sdk_dynamodb::types::Select;

use super::dynamo::{DynamoStore, store_error};
use super::grants::{GrantLayout, SHARDS, shard_pk};
use super::item::{key, n, s, t};
use super::pages::{Partitions, decode_token, encode_token};
use super::records::{
    FAN_OUT_GRANTED, FAN_OUT_STATE, GRANT_SK_PREFIX, GSI1, Grant, Record, SUBS, grant_count_key, grant_pk,
    is_grant_key, is_subscription_key, membership_gsi_pk, sub_key,
};
use crate::domain::{FanOut, FanOutState, GroupId, MembershipId, Principal, PrincipalType, Subscription, Tier, UserId};
use crate::ports::{Page, SEAT_SHARDS, StoreError, SubscriptionStore, seat_shard};

impl SubscriptionStore for DynamoStore {
    async fn get_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(sub_key(principal)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(subscription)", e))?;
        out.item.as_ref().map(Subscription::from_item).transpose()
    }

    async fn list_subscriptions(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Subscription>, StoreError> {
        let prefix = principal_type.map(|t| format!("{}#", t.as_str()));
        let partitions = [SUBS.to_owned()];
        self.gsi1_page(
            Partitions { names: &partitions, of: |_| 0, per_query: 100 },
            prefix.as_deref(),
            limit,
            next_token,
            |sk| key(format!("SUB#{sk}"), "SUB"),
            is_subscription_key,
            |item| Subscription::from_item(item).map(Some),
        )
        .await
    }

    async fn create_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(sub.to_item()?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error("PutItem(subscription)", e))?;
        Ok(())
    }

    async fn update_subscription(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(sub_key(&sub.principal)))
            .condition_expression("attribute_exists(pk) AND tier = :expected")
            .expression_attribute_values(":expected", s(expected_tier.as_str()))
            .expression_attribute_values(":tier", s(sub.tier.as_str()))
            .expression_attribute_values(":at", t(&sub.updated_at))
            .expression_attribute_values(":by", s(&sub.updated_by));
        let sets = "tier = :tier, updatedAt = :at, updatedBy = :by";
        let expression = match (sub.pending_tier, sub.pending_tier_effective_at) {
            (Some(tier), Some(at)) => {
                update = update
                    .expression_attribute_values(":pending", s(tier.as_str()))
                    .expression_attribute_values(":pendingAt", t(&at));
                format!("SET {sets}, pendingTier = :pending, pendingTierEffectiveAt = :pendingAt")
            }
            _ => format!("SET {sets} REMOVE pendingTier, pendingTierEffectiveAt"),
        };
        update.update_expression(expression).send().await.map_err(|e| store_error("UpdateItem(subscription)", e))?;
        Ok(())
    }

    async fn set_fan_out(&self, principal: &Principal, fan_out: FanOut) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(sub_key(principal)))
            .update_expression(format!("SET {FAN_OUT_STATE} = :state, {FAN_OUT_GRANTED} = :granted"))
            .condition_expression(format!("attribute_exists(pk) AND NOT {FAN_OUT_STATE} = :done"))
            .expression_attribute_values(":state", s(fan_out.state.as_str()))
            .expression_attribute_values(":granted", n(fan_out.granted))
            .expression_attribute_values(":done", s(FanOutState::Done.as_str()))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(fan-out)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(sub_key(principal)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem(subscription)", e))?;
        out.attributes.as_ref().map(Subscription::from_item).transpose()
    }

    async fn count_granted(&self, group: &GroupId) -> Result<u64, StoreError> {
        if let Some(item) = self.read_counter(group).await? {
            // ADD keeps a signed number; below zero it can only be a hand edit.
            let grants: i64 = item.get("grants").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
            return Ok(u64::try_from(grants).unwrap_or(0));
        }
        // Granted before counters were kept (or never granted): count the rows, all in the
        // group's one partition (a group is spread only through its counter).
        let mut count = 0u64;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", s(grant_pk(group)))
            .expression_attribute_values(":member", s(GRANT_SK_PREFIX))
            .select(Select::Count)
            .consistent_read(true);
        self.every_page(query, "Query(count grants)", |out| {
            count += u64::try_from(out.count()).unwrap_or(0);
            Ok(())
        })
        .await?;
        Ok(count)
    }

    async fn spread_grants(&self, group: &GroupId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(grant_count_key(group)))
            .update_expression("SET entity = :entity, #shards = :shards")
            .condition_expression("attribute_not_exists(grants) OR grants = :none OR #shards = :shards")
            .expression_attribute_names("#shards", SHARDS)
            .expression_attribute_values(":entity", s("GrantCount"))
            .expression_attribute_values(":shards", n(SEAT_SHARDS))
            .expression_attribute_values(":none", n(0))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(spread grants)", e)) {
            Ok(_) => self.layouts.learn(group, GrantLayout::Spread),
            // It has rows, in its one partition: they stay there, and so do the next.
            Err(StoreError::Conflict(_)) => self.layouts.learn(group, GrantLayout::One),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        // Where the page starts: the group's own partition, whose counter comes first and says
        // where the rows are (after it for a group in one partition; in its shards once spread),
        // or a shard of a spread group, which a token names by its user.
        let (mut part, mut start) = match next_token {
            None => (Part::Own, None),
            Some(token) => {
                let raw = decode_token(&token)?;
                match raw.strip_prefix(SPREAD_TOKEN) {
                    Some(sk) if is_grant_key(sk) => {
                        (Part::Shard(seat_shard(&sk[GRANT_SK_PREFIX.len()..])), Some(sk.to_owned()))
                    }
                    None if is_grant_key(&raw) => (Part::Own, Some(raw)),
                    _ => return Err(StoreError::InvalidToken),
                }
            }
        };
        let mut layout = GrantLayout::One;
        let mut items = Vec::new();
        loop {
            let pk = match part {
                Part::Own => grant_pk(group),
                Part::Shard(shard) => shard_pk(group, shard),
            };
            // The counter, read first in the group's own partition, takes a place of its own.
            let counter = usize::from(matches!(part, Part::Own) && start.is_none());
            let limit = crate::ports::GRANTS_PAGE - items.len() + counter;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take().map(|sk| key(pk, sk)))
                .send()
                .await
                .map_err(|e| store_error("Query(grants)", e))?;
            for item in out.items() {
                if item.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == "COUNT") {
                    layout = GrantLayout::of_counter(Some(item))?;
                    self.layouts.learn(group, layout);
                    continue;
                }
                let grant = Grant::from_item(item)?;
                items.push((grant.user, grant.membership));
            }
            let last = out.last_evaluated_key().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok());
            if let Some(sk) = last.filter(|sk| is_grant_key(sk)) {
                let raw = match part {
                    Part::Own => sk.clone(),
                    Part::Shard(_) => format!("{SPREAD_TOKEN}{sk}"),
                };
                return Ok(Page { items, next_token: Some(encode_token(&raw)) });
            }
            part = match part {
                Part::Own if layout == GrantLayout::Spread => Part::Shard(0),
                Part::Shard(shard) if shard + 1 < SEAT_SHARDS => Part::Shard(shard + 1),
                _ => return Ok(Page { items, next_token: None }),
            };
        }
    }

    async fn membership(&self, membership_id: &MembershipId) -> Result<Option<(GroupId, UserId)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(membership_gsi_pk(membership_id)))
            .limit(1)
            .send()
            .await
            .map_err(|e| store_error("Query(membership)", e))?;
        out.items().first().map(|item| Grant::from_item(item).map(|g| (g.group, g.user))).transpose()
    }
}

/// The partition a page of a group's grant rows is read from.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// `GROUP#<groupId>`: the counter, and the rows of a group in one partition.
    Own,
    /// `GROUP#<groupId>#<shard>` of a spread group.
    Shard(usize),
}

/// Marks a token of a spread group's rows (whose shard is its user's).
const SPREAD_TOKEN: &str = "S/";
