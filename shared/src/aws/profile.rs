//! `ProfileStore` and `ProfileAdmin` on the table: the one profile of the deployment.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::dynamo::{DynamoStore, store_error};
use super::item::{s, t};
use super::records::{Record, profile_key};
use crate::domain::{Profile, ProfilePatch};
use crate::ports::{ProfileAdmin, ProfileStore, StoreError};

impl ProfileStore for DynamoStore {
    async fn get_profile(&self) -> Result<Option<Profile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(profile_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(profile)", e))?;
        out.item.as_ref().map(Profile::from_item).transpose()
    }
}

impl ProfileAdmin for DynamoStore {
    async fn create_profile(&self, p: &Profile) -> Result<(), StoreError> {
        // One profile per deployment, decided by the table, not by a read before the write.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(p.to_item()?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error("PutItem(profile)", e))?;
        Ok(())
    }

    async fn update_profile(
        &self,
        patch: &ProfilePatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Profile>, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", t(&now))
            .expression_attribute_values(":actor", s(actor))
            .return_values(ReturnValue::AllNew);
        let mut sets = vec!["updatedAt = :now", "updatedBy = :actor"];
        if let Some(name) = &patch.name {
            sets.push("#name = :name");
            update = update.expression_attribute_names("#name", "name").expression_attribute_values(":name", s(name));
        }
        if let Some(description) = &patch.description {
            sets.push("description = :description");
            update = update.expression_attribute_values(":description", s(description));
        }
        match update.update_expression(format!("SET {}", sets.join(", "))).send().await {
            Ok(out) => out.attributes.as_ref().map(Profile::from_item).transpose(),
            Err(e) => match store_error("UpdateItem(profile)", e) {
                StoreError::Conflict(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}
