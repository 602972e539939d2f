//! The table: one DynamoDB table, keys `pk`/`sk`, one overloaded index `gsi1`. Its item kinds
//! and their keys are in `records.rs`; each port's store is in its own file.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::grants::Layouts;
use super::{error_code, is_throttling};
use crate::ports::StoreError;

/// All the functions' state, in the table named by `TABLE_NAME`.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    /// Where the grant rows of the groups read so far are ([`super::grants`]).
    pub(crate) layouts: Arc<Layouts>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), layouts: Arc::default() }
    }

    /// Sends `query` for every page of its answer, from the first, and hands each to `page`.
    pub(crate) async fn every_page(
        &self,
        query: QueryFluentBuilder,
        operation: &'static str,
        mut page: impl FnMut(QueryOutput) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let out =
                query.clone().set_exclusive_start_key(start).send().await.map_err(|e| store_error(operation, e))?;
            start = out.last_evaluated_key.clone();
            page(out)?;
            if start.is_none() {
                return Ok(());
            }
        }
    }
}

/// Maps an SDK failure: conditional-check failures are domain outcomes, throttling is its own kind.
pub(crate) fn store_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error_code(&err) {
        Some("ConditionalCheckFailedException") => return StoreError::Conflict(operation),
        Some("ValidationException") => return StoreError::Refused { operation, source: Box::new(err) },
        _ => {}
    }
    let throttled = is_throttling(&err);
    let source = Box::new(err);
    if throttled { StoreError::Throttled { operation, source } } else { StoreError::Aws { operation, source } }
}
