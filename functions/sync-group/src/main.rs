use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::{DynamoStore, IdentityStoreDirectory, load_sdk_config};
use kiro::config::{self, Config};
use lambda_runtime::{run_concurrent, service_fn, tracing};
use sync_group::{Deps, handle_payload};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().and_then(|c| {
        Ok((c, config::revoke_limit_percent(config::env_var)?, config::identity_store_share(config::env_var)?))
    });
    let (config, revoke_limit, identity_store_rate) = config.inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let deps = Deps::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        // Its share of Identity Store's 20 requests a second: concurrent invocations pace apart.
        IdentityStoreDirectory::with_rate(aws_sdk_identitystore::Client::new(&sdk), identity_store_rate),
        // Seat events go out from the table's stream (publish-events), not from here.
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus_name).seat_events_from_stream(),
        revoke_limit,
    );
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    // Raw JSON in: a payload that is not an envelope is acknowledged, not failed in the runtime.
    run_concurrent(service_fn(move |event| handle_payload(deps, event))).await
}
