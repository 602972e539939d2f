use console::fetch::Https;
use console::{Deps, handle};
use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::s3::S3Exports;
use kiro::aws::ssoadmin::SsoAdminInstances;
use kiro::aws::{DynamoStore, IdentityStoreDirectory, load_sdk_config};
use kiro::config::{self, Config, env_var};
use lambda_runtime::{run_concurrent, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let console = config::console(env_var).inspect_err(|e| tracing::error!("{e}"))?;
    let pricing = config::pricing(env_var).inspect_err(|e| tracing::error!("{e}"))?;
    let supported_regions = config::supported_regions(env_var).inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let deps = Deps::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&sdk)),
        // Seat events go out from the table's stream (publish-events), not from here.
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus_name).seat_events_from_stream(),
        SsoAdminInstances::new(aws_sdk_ssoadmin::Client::new(&sdk)),
        Https::new(),
        console,
        pricing,
        region,
        supported_regions,
    )
    // Large exports go to the stack's export bucket (CONSOLE_EXPORT_BUCKET, an addition to the
    // contract's variables); without it they are refused with a message.
    .with_exports(
        env_var("CONSOLE_EXPORT_BUCKET")
            .filter(|b| !b.trim().is_empty())
            .map(|bucket| S3Exports::new(aws_sdk_s3::Client::new(&sdk), bucket.trim())),
    );
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    run_concurrent(service_fn(move |event| handle(deps, event))).await
}
