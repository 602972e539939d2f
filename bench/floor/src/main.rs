//! The floor of the functions' cost: what every one of them does before its own work, and
//! nothing more. `main` builds the SDK configuration and a DynamoDB client exactly as the
//! functions do (`kiro::aws::load_sdk_config`, then `aws_sdk_dynamodb::Client::new`), then, like
//! `bench/echo`, runs `lambda_runtime` on the current-thread runtime with a handler that makes one
//! `GetItem` of the profile and answers the payload. `make bench` measures its cold start and peak
//! RSS beside the echo's and the functions': how much of each function's cost over the echo is the
//! SDK itself (issue 17).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// The profile's key (`kiro::aws`'s records: pk = sk = `PROFILE`), the item every API function
/// reads first.
const PROFILE: &str = "PROFILE";

struct Deps {
    dynamo: Client,
    table: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let sdk = kiro::aws::load_sdk_config().await;
    // Built once and kept for the life of the process, as the functions keep theirs.
    let deps: &'static Deps = Box::leak(Box::new(Deps { dynamo: Client::new(&sdk), table }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| answer(deps, event))).await
}

/// One consistent `GetItem` of the profile, whatever it finds; then the payload.
async fn answer(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Error> {
    deps.dynamo
        .get_item()
        .table_name(&deps.table)
        .key("pk", AttributeValue::S(PROFILE.to_owned()))
        .key("sk", AttributeValue::S(PROFILE.to_owned()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(event.payload)
}
