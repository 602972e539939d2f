//! `MembershipMap` on the table: the membership id of a grant row, and the re-sync lease of a
//! group (`RESYNC#<groupId>`).

use super::dynamo::{DynamoStore, store_error};
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{n, s};
use super::records::{grant_key, membership_gsi_pk, resync_key};
use crate::domain::{GroupId, MembershipId, UserId};
use crate::ports::{MembershipMap, StoreError};

impl MembershipMap for DynamoStore {
    async fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> Result<(), StoreError> {
        // Its callers have just read the group's rows (or its counter), so the store knows where
        // they are; a row not where it looks is taken for one gone, as below.
        let layout = self.layouts.assumed(group);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(grant_key(group, user, layout)))
            .update_expression("SET membershipId = :m, gsi1pk = :g, gsi1sk = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":m", s(membership_id.as_str()))
            .expression_attribute_values(":g", s(membership_gsi_pk(membership_id)))
            .expression_attribute_values(":s", s("MSHIP"))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(grant)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn begin_resync(&self, group: &GroupId, owner: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        // A lease left behind by a crash expires with its invocation; its item with the TTL.
        let expires = until_ms / 1000 + 3600;
        for _ in 0..3 {
            let mut item = resync_key(group);
            item.extend([
                ("entity".to_owned(), s("ResyncLease")),
                ("owner".to_owned(), s(owner)),
                ("runningUntil".to_owned(), n(until_ms)),
                ("pending".to_owned(), AttributeValue::Bool(false)),
                ("expiresAt".to_owned(), n(expires)),
            ]);
            let taken = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR runningUntil < :now OR #owner = :me")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":me", s(owner))
                .send()
                .await;
            match taken.map_err(|e| store_error("PutItem(resync lease)", e)) {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            // Held: ask the holder for one more round, unless it let go meanwhile (then try again).
            let marked = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(resync_key(group)))
                .update_expression("SET pending = :t")
                .condition_expression("attribute_exists(pk) AND runningUntil >= :now")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await;
            match marked.map_err(|e| store_error("UpdateItem(resync lease)", e)) {
                Ok(_) => return Ok(false),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict("PutItem(resync lease)"))
    }

    async fn end_resync(&self, group: &GroupId, owner: &str) -> Result<bool, StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(resync_key(group)))
            .condition_expression("#owner = :me AND pending = :f")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .send()
            .await;
        match released.map_err(|e| store_error("DeleteItem(resync lease)", e)) {
            Ok(_) => return Ok(false),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        // A request came meanwhile: keep the lease, clear the mark, go round once more.
        let again = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(resync_key(group)))
            .update_expression("SET pending = :f")
            .condition_expression("#owner = :me AND pending = :t")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match again.map_err(|e| store_error("UpdateItem(resync lease)", e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
