//! `MembershipMap` on the table: the membership id of a grant row, refreshed by the audit.

use super::dynamo::{DynamoStore, store_error};
use super::item::s;
use super::records::{grant_key, membership_gsi_pk};
use crate::domain::{GroupId, MembershipId, UserId};
use crate::ports::{MembershipMap, StoreError};

impl MembershipMap for DynamoStore {
    async fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(grant_key(group, user)))
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
}
