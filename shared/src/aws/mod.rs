//! Adapters: the ports implemented with the AWS SDK. Emulators are reached only through the SDK's
//! standard `AWS_ENDPOINT_URL` settings, never through a code path of their own.

mod audits;
mod checkpoints;
pub mod dynamo;
pub mod eventbridge;
pub mod identitystore;
mod item;
mod membership_map;
mod pace;
mod pages;
mod profile;
mod records;
mod seats;
mod subscriptions;

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use checkpoints::PART_BYTES as CHECKPOINT_PART_BYTES;
pub use dynamo::DynamoStore;
pub use identitystore::IdentityStoreDirectory;
/// The page-token codec of `DynamoStore`'s lists, for a fake that must hand out the same tokens.
pub use pages::{MAX_QUERIES_PER_PAGE, decode_token, encode_token};

/// Loads the shared SDK configuration once per process (region, credentials, endpoint, retries).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // Throttling is retried with exponential backoff; what survives becomes `Throttled`.
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .load()
        .await
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// The service error code, when the call reached the service and it answered with one.
pub(crate) fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

pub(crate) fn is_throttling<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    error_code(err).is_some_and(|c| THROTTLING_CODES.contains(&c))
}
