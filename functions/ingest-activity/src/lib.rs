//! `ingest-activity`: Kiro's daily user activity reports, from S3 `Object Created` events
//! (contract: "Activity").

use chrono::Utc;
use kiro::app::activity;
use kiro::domain::import::ObjectRef;
use kiro::error::cause_chain;
use kiro::ports::{ActivityStore, EventSink, ReportObjects, SeatStore};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

/// What the handler needs; built once in `main`.
pub struct Deps<S, E, O> {
    pub store: S,
    pub events: E,
    pub objects: O,
}

/// Why an invocation failed: only what a retry may cure (the table, S3, the bus). Everything
/// about the file itself is answered in its ImportReport.
#[derive(Debug)]
pub struct Failed(String);

impl From<Failed> for Diagnostic {
    fn from(f: Failed) -> Diagnostic {
        Diagnostic { error_type: "IngestFailed".into(), error_message: f.0 }
    }
}

/// The object an `Object Created` envelope names, or `None` for anything else.
pub fn object_of(event: &Value) -> Option<ObjectRef> {
    if event.get("source")?.as_str()? != "aws.s3" || event.get("detail-type")?.as_str()? != "Object Created" {
        return None;
    }
    let detail = event.get("detail")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    Some(ObjectRef {
        bucket: text(detail.get("bucket").and_then(|b| b.get("name")))?,
        key: text(detail.get("object").and_then(|o| o.get("key")))?,
        etag: text(detail.get("object").and_then(|o| o.get("etag")))?,
    })
}

pub async fn handle<S, E, O>(deps: &Deps<S, E, O>, event: LambdaEvent<Value>) -> Result<Value, Failed>
where
    S: ActivityStore + SeatStore,
    E: EventSink,
    O: ReportObjects,
{
    let Some(object) = object_of(&event.payload) else {
        // Not ours to retry: acknowledged and logged (without the payload's contents).
        tracing::warn!("ignored an event that is not an S3 Object Created envelope");
        return Ok(json!({"signal": "ignored"}));
    };
    match activity::ingest(&deps.store, &deps.events, &deps.objects, object, Utc::now()).await {
        Ok(report) => Ok(serde_json::to_value(&report).unwrap_or_default()),
        Err(e) => {
            tracing::error!(cause = %cause_chain(&e), "ingesting the report failed; the event will be retried");
            Err(Failed(e.to_string()))
        }
    }
}
