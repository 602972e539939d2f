use assign_tier::{Deps, handle};
use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::{DynamoStore, IdentityStoreDirectory, load_sdk_config};
use kiro::config::Config;
use lambda_runtime::{run_concurrent, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let pricing = kiro::config::pricing(kiro::config::env_var).inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let mut deps = Deps::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&sdk)),
        // Seat events go out from the table's stream (publish-events), not from here.
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus_name).seat_events_from_stream(),
    );
    deps.pricing = pricing;
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    run_concurrent(service_fn(move |event| handle(deps, event))).await
}
