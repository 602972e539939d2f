use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::{DynamoStore, load_sdk_config};
use kiro::config::Config;
use lambda_runtime::{run, service_fn, tracing};
use publish_events::{Deps, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let deps = Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        events: EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus_name),
    };
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    // One batch at a time: Lambda hands a shard's batches over in order.
    run(service_fn(move |event| handle(deps, event))).await
}
