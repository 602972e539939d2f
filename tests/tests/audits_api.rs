//! `POST /audits`: the admin's way to request an audit (the bus takes `kiro.subscriptions` events
//! from the stack's functions only). The request goes through the bus as `Audit Requested`, with
//! who asked, and runs as the schedule's audit does.

use kiro::domain::signal::{AUDIT_REQUESTED, OWN_SOURCE};
use kiro_tests::{MemoryStack, call_api, continuation, eventbridge};
use serde_json::json;

#[tokio::test]
async fn a_requested_audit_goes_through_the_bus_with_its_requester_and_runs() {
    let stack = MemoryStack::new(25).await;
    let (status, body) = call_api(&stack.api, "POST", "/audits", Some(json!({"mode": "report"}))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"requested": true, "mode": "report", "force": false}));
    let requested = stack.sink.events().into_iter().find(|e| e.detail_type == AUDIT_REQUESTED).expect("put on the bus");
    assert_eq!(requested.detail["mode"], "report");
    assert_eq!(requested.detail["requestedBy"], "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/alice");

    // The bus brings it to sync-group, which runs it.
    let like = eventbridge(AUDIT_REQUESTED, OWN_SOURCE, json!({})).payload;
    let event = lambda_runtime::LambdaEvent::new(continuation(&like, requested.detail), kiro_tests::invocation("r"));
    let report = sync_group::handle(&stack.sync, event).await.unwrap();
    assert_eq!(report["mode"], "report", "{report}");
    let (status, list) = call_api(&stack.api, "GET", "/audits", None).await;
    assert_eq!((status, list["items"][0]["auditId"].clone()), (200, report["auditId"].clone()));
}

#[tokio::test]
async fn a_request_names_a_mode_and_nothing_else() {
    let stack = MemoryStack::new(25).await;
    for (body, field) in [
        (json!({}), "mode"),
        (json!({"mode": "nuke"}), "mode"),
        (json!({"mode": 1}), "mode"),
        (json!({"mode": "repair", "force": "yes"}), "force"),
        (json!({"mode": "repair", "time": "2099-01-01T00:00:00Z"}), "time"),
    ] {
        let (status, answer) = call_api(&stack.api, "POST", "/audits", Some(body.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("ValidationError")), "{body}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{body}: {answer}");
    }
    assert!(stack.sink.events().is_empty(), "nothing put on the bus");
}
