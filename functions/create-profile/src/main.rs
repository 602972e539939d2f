use create_profile::{Deps, handle};
use kiro::aws::{DynamoStore, load_sdk_config};
use kiro::config::{self, Config};
use lambda_runtime::{run_concurrent, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().and_then(|c| Ok((c, config::supported_regions(config::env_var)?)));
    let (config, supported_regions) = config.inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let region = sdk.region().map(ToString::to_string).ok_or("AWS_REGION is not set")?;
    let deps = Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        region,
        supported_regions,
    };
    // Built once and kept for the life of the process; each invocation borrows it.
    let deps: &'static _ = Box::leak(Box::new(deps));
    run_concurrent(service_fn(move |event| handle(deps, event))).await
}
