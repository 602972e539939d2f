//! Adapters: the ports implemented with the AWS SDK. Emulators are reached only through the SDK's
//! standard `AWS_ENDPOINT_URL` settings, never through a code path of their own.

mod activity;
mod audits;
mod checkpoints;
pub mod dynamo;
pub mod eventbridge;
mod grants;
pub mod https;
pub mod identitystore;
mod item;
mod membership_map;
mod pace;
mod pages;
mod profile;
mod records;
#[cfg(feature = "activity")]
pub mod s3;
mod seats;
mod sessions;
#[cfg(feature = "console")]
pub mod ssoadmin;
mod subscriptions;

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use checkpoints::PART_BYTES as CHECKPOINT_PART_BYTES;
pub use dynamo::DynamoStore;
pub use identitystore::IdentityStoreDirectory;
/// The page-token codec of `DynamoStore`'s lists, for a fake that must hand out the same tokens.
pub use pages::{MAX_QUERIES_PER_PAGE, decode_token, encode_token, partitions_ahead};
/// Where an outbox is written, for a fake that must read them as the table does.
pub use records::{OUTBOX_SHARDS, outbox_shard};

/// One attempt of any call: DynamoDB and Identity Store answer in milliseconds; a connection
/// that hangs is abandoned and the attempt retried, not waited on until the Lambda timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole call, its retries included: under the API functions' 29 s, so a request that cannot
/// be served ends in the contract's error instead of API Gateway's 503.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);

/// Loads the shared SDK configuration once per process (region, credentials, endpoint, retries,
/// timeouts), over the process's one HTTPS client ([`https`]: roots compiled in, not read from
/// the file system).
///
/// Credentials: the environment's keys when they are set, as Lambda sets them for every function
/// (the execution role's), without building the rest of the default chain, which would pick them
/// first anyway; building it (profile files, web identity, ECS, IMDS) costs each cold start about
/// 24 page faults and 0.1–0.2 ms (`scripts/cold_start_ab.py`, BENCHMARKS.md). Without them, the
/// default chain.
pub async fn load_sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https::sdk_http_client())
        // Throttling is retried with exponential backoff; what survives becomes `Throttled`.
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(timeouts());
    let loader = if environment_keys_set(crate::config::env_var) {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

/// Whether the environment holds an access key and its secret: when it does, the default chain
/// ends at its first link, the environment.
fn environment_keys_set(get: impl Fn(&str) -> Option<String>) -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].iter().all(|name| get(name).is_some_and(|v| !v.trim().is_empty()))
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call is bounded: a hung connection costs an attempt, not the invocation.
    #[tokio::test]
    async fn the_sdk_configuration_bounds_every_call() {
        let config = load_sdk_config().await;
        let t = config.timeout_config().expect("timeouts are set");
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(3)));
        assert!(OPERATION_TIMEOUT < Duration::from_secs(29), "under the API functions' timeout");
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(5));
    }

    /// The environment's keys are used alone only when both are there, as the default chain
    /// would use them; a missing or blank one leaves the whole chain to find credentials.
    #[test]
    fn only_a_whole_pair_of_environment_keys_skips_the_default_chain() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(environment_keys_set(env(&[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!environment_keys_set(env(&[("AWS_ACCESS_KEY_ID", "AKIA")])));
        assert!(!environment_keys_set(env(&[("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!environment_keys_set(env(&[("AWS_ACCESS_KEY_ID", " "), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!environment_keys_set(env(&[("AWS_PROFILE", "dev")])));
    }
}
