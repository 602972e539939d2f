use console::fetch::Https;
use console::{Deps, handle};
use kiro::aws::eventbridge::EventBridgeSink;
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
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus_name),
        SsoAdminInstances::new(aws_sdk_ssoadmin::Client::new(&sdk)),
        Https::new()?,
        console,
        pricing,
        region,
        supported_regions,
    );
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    run_concurrent(service_fn(move |event| handle(deps, event))).await
}
