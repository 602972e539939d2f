//! The smallest Rust Lambda function: `lambda_runtime` answering every event with its payload, on
//! the current-thread runtime the functions use. `make bench` builds it in the same
//! `cargo build --release` as the functions and measures its cold start and peak RSS beside
//! theirs: issue 17 wants each function within 2× of it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async { Ok::<_, Error>(event.payload) })).await
}
