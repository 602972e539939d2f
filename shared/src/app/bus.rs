//! Work the stack asks of itself through its own bus: an audit's or a fan-out's continuation,
//! an audit an admin requested. One event, put now; a refusal is an error the caller's retry
//! (Lambda's, the client's) repeats — unlike seat events, these are not kept in the outbox.

use serde_json::Value;

use crate::app::seats::ServiceError;
use crate::ports::{EventSink, OutEvent};

/// Puts one `kiro.subscriptions` event of `detail_type` on the bus.
pub async fn ask<E: EventSink>(sink: &E, detail_type: &str, detail: Value) -> Result<(), ServiceError> {
    let event = OutEvent { detail_type: detail_type.to_owned(), detail };
    match sink.publish(std::slice::from_ref(&event)).await {
        Ok(rejected) if rejected.is_empty() => Ok(()),
        Ok(_) => Err(ServiceError::Bus(format!("EventBridge rejected the {detail_type} entry"), None)),
        Err(e) => Err(ServiceError::Bus(format!("putting {detail_type} failed"), Some(e))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::SinkError;

    /// Answers each publish with the next of `answers`, recording what it was given.
    struct Sink {
        answers: Mutex<Vec<Result<Vec<usize>, SinkError>>>,
        seen: Mutex<Vec<OutEvent>>,
    }

    impl EventSink for Sink {
        async fn publish(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
            self.seen.lock().unwrap().extend_from_slice(events);
            self.answers.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn one_event_put_or_an_error_naming_it() {
        let sink = Sink {
            answers: Mutex::new(vec![Ok(vec![]), Ok(vec![0]), Err(SinkError::Aws("down".into()))]),
            seen: Mutex::new(vec![]),
        };
        assert!(ask(&sink, "Audit Requested", serde_json::json!({"mode": "report"})).await.is_ok());
        let rejected = ask(&sink, "Fan-out Requested", Value::Null).await.unwrap_err();
        assert_eq!(rejected.to_string(), "EventBridge rejected the Fan-out Requested entry");
        let failed = ask(&sink, "Audit Requested", Value::Null).await.unwrap_err();
        assert_eq!(failed.to_string(), "putting Audit Requested failed");
        assert!(!failed.is_throttling(), "a failure the caller's retry repeats, answered 500 by the API");
        let seen = sink.seen.lock().unwrap();
        assert_eq!(
            (seen.len(), seen[0].detail_type.as_str(), &seen[0].detail),
            (3, "Audit Requested", &serde_json::json!({"mode": "report"}))
        );
    }
}
