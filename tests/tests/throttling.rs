//! Throttling that survives the SDK's retries: `429 Throttled` on the API, a retryable
//! `Throttled` error for EventBridge deliveries. In-memory ports with injected throttling.

use std::sync::Arc;

use kiro::ports::ProfileAdmin;
use kiro_fakes::{MemoryDirectory, MemorySink, MemoryStore};
use kiro_tests::{fixture, http_event_from, status_and_json};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::json;

async fn world() -> (Arc<MemoryStore>, Arc<MemoryDirectory>, Arc<MemorySink>) {
    let store = Arc::new(MemoryStore::default());
    store.create_profile(&kiro_tests::memory_profile()).await.unwrap();
    (store, Arc::new(MemoryDirectory::default()), Arc::new(MemorySink::default()))
}

#[tokio::test]
async fn throttled_reads_and_lookups_answer_429() {
    let (store, directory, sink) = world().await;
    directory.add_user("alice", "Alice", None);
    let api = assign_tier::Deps::new(store.clone(), directory.clone(), sink);
    let call = |path: &str, method: &str, body: Option<serde_json::Value>| {
        kiro_tests::api_request(method, path, body.as_ref())
    };
    // Warm the profile cache so the injected throttle hits the call under test.
    assign_tier::handle(&api, call("/seats", "GET", None)).await.unwrap();

    store.throttle_next(1);
    let (status, body) = status_and_json(&assign_tier::handle(&api, call("/seats", "GET", None)).await.unwrap());
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("Throttled")), "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().contains("MemoryStore"), "no internal detail: {body}");

    directory.set_throttle_next(1);
    let subscribe = json!({"principalType": "USER", "userName": "alice", "tier": "PRO"});
    let (status, body) = status_and_json(
        &assign_tier::handle(&api, call("/subscriptions", "POST", Some(subscribe.clone()))).await.unwrap(),
    );
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("Throttled")));
    let (status, _) =
        status_and_json(&assign_tier::handle(&api, call("/subscriptions", "POST", Some(subscribe))).await.unwrap());
    assert_eq!(status, 201, "the retry goes through");
}

#[tokio::test]
async fn a_throttled_event_fails_with_a_retryable_error() {
    let (store, directory, sink) = world().await;
    let g = directory.add_group("eng", None);
    let u = directory.add_user("bob", "Bob", None);
    directory.add_member(&g, &u);
    let api = assign_tier::Deps::new(store.clone(), directory.clone(), sink.clone());
    let mut raw = fixture("http/subscribe-group.json");
    raw["body"] = json!(json!({"principalType": "GROUP", "principalId": g, "tier": "PRO"}).to_string());
    assert_eq!(assign_tier::handle(&api, http_event_from(raw)).await.unwrap().status_code, 201);

    let sync = sync_group::Deps::new(store.clone(), directory.clone(), sink.clone(), 25);
    let mut event = fixture("cloudtrail/console-add-member-to-group.json");
    event["detail"]["requestParameters"] =
        json!({"identityStoreId": "d-1234567890", "groupId": g, "member": {"memberId": u}});
    let envelope = || LambdaEvent::new(serde_json::from_value(event.clone()).unwrap(), Context::default());
    directory.set_throttle_next(1);
    let err = sync_group::handle(&sync, envelope()).await.unwrap_err();
    let diagnostic: Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "Throttled");
    assert!(sync_group::handle(&sync, envelope()).await.is_ok(), "EventBridge's retry succeeds");
}
