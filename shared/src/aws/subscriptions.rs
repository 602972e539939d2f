//! `SubscriptionStore` on the table: subscriptions and the group grant rows they count.

use aws_sdk_dynamodb::types::Select;

use super::dynamo::{DynamoStore, store_error};
use super::item::{key, n, s, t};
use super::pages::{Partitions, decode_token_of, encode_token};
use super::records::{
    FAN_OUT_GRANTED, FAN_OUT_STATE, GRANT_SK_PREFIX, GSI1, Grant, Record, SUBS, grant_count_key, grant_pk,
    is_grant_key, is_subscription_key, membership_gsi_pk, sub_key,
};
use crate::domain::{FanOut, FanOutState, GroupId, MembershipId, Principal, PrincipalType, Subscription, Tier, UserId};
use crate::ports::{Page, StoreError, SubscriptionStore};

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
            Partitions { names: &partitions, of: |_| 0 },
            prefix.as_deref(),
            limit,
            next_token,
            |sk| format!("SUB#{sk}"),
            "SUB",
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
        let kept = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(grant_count_key(group)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(grant count)", e))?;
        if let Some(item) = kept.item {
            // ADD keeps a signed number; below zero it can only be a hand edit.
            let grants: i64 = item.get("grants").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
            return Ok(u64::try_from(grants).unwrap_or(0));
        }
        // Granted before counters were kept (or never granted): count the rows.
        let mut count = 0u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
                .expression_attribute_values(":pk", s(grant_pk(group)))
                .expression_attribute_values(":member", s(GRANT_SK_PREFIX))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query(count grants)", e))?;
            count += u64::try_from(out.count()).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(count),
            }
        }
    }

    async fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        let pk = grant_pk(group);
        let start = next_token.map(|t| decode_token_of(&t, is_grant_key)).transpose()?.map(|sk| key(pk.clone(), sk));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":member", s(GRANT_SK_PREFIX))
            .consistent_read(true)
            .limit(i32::try_from(crate::ports::GRANTS_PAGE).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(grants)", e))?;
        let items = out
            .items()
            .iter()
            .map(|item| Grant::from_item(item).map(|g| (g.user, g.membership)))
            .collect::<Result<_, StoreError>>()?;
        let next_token =
            out.last_evaluated_key().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
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
