//! The table: one DynamoDB table, keys `pk`/`sk`, one overloaded index `gsi1`.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | profile | `PROFILE` | `PROFILE` |

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use super::item::{Item, Reader, key, s, t};
use super::{error_code, is_throttling};
use crate::domain::{IdentityStoreId, Profile, ProfilePatch};
use crate::ports::{ProfileAdmin, ProfileStore, StoreError};

const PROFILE_KEY: &str = "PROFILE";

/// All the functions' state, in the table named by `TABLE_NAME`.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

/// Maps an SDK failure: conditional-check failures are domain outcomes, throttling is its own kind.
pub(crate) fn store_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if error_code(&err) == Some("ConditionalCheckFailedException") {
        return StoreError::Conflict(operation);
    }
    let throttled = is_throttling(&err);
    let source = Box::new(err);
    if throttled { StoreError::Throttled { operation, source } } else { StoreError::Aws { operation, source } }
}

fn profile_from(item: &Item) -> Result<Profile, StoreError> {
    let r = Reader::new(item, "profile");
    Ok(Profile {
        profile_id: r.str("profileId")?.to_owned(),
        name: r.str("name")?.to_owned(),
        description: r.opt_str("description")?.unwrap_or_default().to_owned(),
        region: r.str("region")?.to_owned(),
        identity_store_id: r.parsed("identityStoreId", |v| IdentityStoreId::parse("identityStoreId", v))?,
        created_at: r.time("createdAt")?,
        updated_at: r.time("updatedAt")?,
        updated_by: r.opt_str("updatedBy")?.unwrap_or_default().to_owned(),
    })
}

impl ProfileStore for DynamoStore {
    async fn get_profile(&self) -> Result<Option<Profile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(PROFILE_KEY, PROFILE_KEY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(profile)", e))?;
        out.item.as_ref().map(profile_from).transpose()
    }
}

impl ProfileAdmin for DynamoStore {
    async fn create_profile(&self, p: &Profile) -> Result<(), StoreError> {
        let mut item = key(PROFILE_KEY, PROFILE_KEY);
        item.extend([
            ("entity".to_owned(), s("Profile")),
            ("profileId".to_owned(), s(&p.profile_id)),
            ("name".to_owned(), s(&p.name)),
            ("description".to_owned(), s(&p.description)),
            ("region".to_owned(), s(&p.region)),
            ("identityStoreId".to_owned(), s(p.identity_store_id.as_str())),
            ("createdAt".to_owned(), t(&p.created_at)),
            ("updatedAt".to_owned(), t(&p.updated_at)),
            ("createdBy".to_owned(), s(&p.updated_by)),
            ("updatedBy".to_owned(), s(&p.updated_by)),
        ]);
        // One profile per deployment, decided by the table, not by a read before the write.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
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
            .set_key(Some(key(PROFILE_KEY, PROFILE_KEY)))
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
            Ok(out) => out.attributes.as_ref().map(profile_from).transpose(),
            Err(e) => match store_error("UpdateItem(profile)", e) {
                StoreError::Conflict(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}
