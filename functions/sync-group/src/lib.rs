//! `sync-group`: Identity Center membership events and the audit.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::ports::ProfileStore;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

/// What the handler needs; built once in `main`.
pub struct Deps<S> {
    pub store: S,
}

pub async fn handle<S: ProfileStore>(
    _deps: &Deps<S>,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, lambda_runtime::Error> {
    let e = &event.payload;
    tracing::info!(source = %e.source, detail_type = %e.detail_type, "event acknowledged, not handled");
    Ok(json!({"handled": false}))
}
