//! Never half-done: every multi-step change finishes when the same request is retried or the same
//! event redelivered, in the contract's state, with the contract's reasons, one event per seat,
//! without an audit. Faults are injected halfway (a crash after the first committed chunk);
//! big fan-outs are cut by their budget and go on through the bus.

use std::collections::BTreeMap;

use kiro::domain::signal::FAN_OUT_REQUESTED;
use kiro::domain::{GroupId, SeatStatus, UserId};
use kiro::ports::OutEvent;
use kiro_tests::{MemoryStack, call_api, cloudtrail, continuation, eventbridge};
use serde_json::{Value, json};

/// A stack with one group of `members` users.
async fn group_of(members: usize) -> (MemoryStack, GroupId, Vec<UserId>) {
    let stack = MemoryStack::new(25).await;
    let group = stack.directory.add_group("engineering", None);
    let users: Vec<UserId> = (0..members)
        .map(|i| {
            let u = stack.directory.add_user(format!("u{i:05}"), format!("U {i}"), None);
            stack.directory.add_member(&group, &u);
            u
        })
        .collect();
    (stack, group, users)
}

fn subscribe_body(group: &GroupId, tier: &str) -> Value {
    json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": tier})
}

/// Seat events committed per user, by detail type: what consumers receive, exactly once each.
fn events_per_user(events: &[OutEvent]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| e.detail_type.starts_with("Seat ") && e.detail_type != "Seat Names Requested") {
        let user = e.detail["userId"].as_str().unwrap_or_default().to_owned();
        *out.entry((e.detail_type.clone(), user)).or_default() += 1;
    }
    out
}

fn assert_one_event_each(stack: &MemoryStack, detail_type: &str, users: &[UserId]) {
    let counts = events_per_user(&stack.store.committed_events());
    for u in users {
        assert_eq!(counts.get(&(detail_type.to_owned(), u.to_string())), Some(&1), "{detail_type} for {u}");
    }
}

fn canceled_with(stack: &MemoryStack, reason: &str) -> usize {
    stack
        .store
        .committed_events()
        .iter()
        .filter(|e| e.detail_type == "Seat Canceled" && e.detail["reason"] == reason)
        .count()
}

#[tokio::test]
async fn a_delete_cut_short_is_finished_by_its_retry_with_its_reason() {
    let (stack, group, users) = group_of(120).await;
    let path = format!("/subscriptions/GROUP/{group}");
    let (status, _) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
    assert_eq!(status, 201);

    stack.store.crash_after_next_commit();
    let (status, _) = call_api(&stack.api, "DELETE", &path, None).await;
    assert_eq!(status, 500, "the first chunk committed, then the call failed");
    let active = stack.store.seats_snapshot().iter().filter(|s| s.status == SeatStatus::Active).count();
    assert!(active > 0 && active < 120, "half done: {active} seats still held");

    let (status, body) = call_api(&stack.api, "DELETE", &path, None).await;
    assert_eq!(status, 204, "the retry finishes the clean-up: {body}");
    assert!(stack.store.seats_snapshot().iter().all(|s| s.status == SeatStatus::Canceled));
    assert!(stack.store.grants_snapshot().is_empty(), "no grant row left");
    assert_one_event_each(&stack, "Seat Canceled", &users);
    assert_eq!(canceled_with(&stack, "UNSUBSCRIBED"), 120);

    let (status, body) = call_api(&stack.api, "DELETE", &path, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NotFound")), "nothing is left");
}

#[tokio::test]
async fn a_group_deletion_cut_short_is_finished_by_its_redelivery() {
    let (stack, group, users) = group_of(120).await;
    let (status, _) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "POWER"))).await;
    assert_eq!(status, 201);
    stack.directory.delete_group(&group);
    let store = kiro_tests::memory_profile().identity_store_id.to_string();
    let event = || {
        let params = json!({"identityStoreId": store, "groupId": group.as_str()});
        cloudtrail("identitystore.amazonaws.com", "DeleteGroup", params, Value::Null)
    };

    stack.store.crash_after_next_commit();
    assert!(sync_group::handle(&stack.sync, event()).await.is_err(), "the first delivery fails halfway");
    let answer = sync_group::handle(&stack.sync, event()).await.expect("the redelivery finishes");
    assert!(answer["applied"]["canceled"].as_u64().unwrap() > 0, "{answer}");
    assert!(stack.store.seats_snapshot().iter().all(|s| s.status == SeatStatus::Canceled));
    assert!(stack.store.subscriptions_snapshot().is_empty());
    assert_one_event_each(&stack, "Seat Canceled", &users);
    assert_eq!(canceled_with(&stack, "GROUP_DELETED"), 120);
}

#[tokio::test]
async fn a_subscribe_cut_short_is_finished_by_a_retried_post_and_another_tier_conflicts() {
    let (stack, group, users) = group_of(150).await;
    stack.store.crash_after_next_commit();
    let (status, _) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
    assert_eq!(status, 500);
    assert!(stack.store.seats_snapshot().len() < 150, "half done");

    let (status, body) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
    assert_eq!(status, 200, "a retry, not a conflict: {body}");
    assert_eq!(body["fanOut"], json!({"state": "DONE", "granted": 150}));
    assert_eq!(body["seats"], 150);
    assert_one_event_each(&stack, "Seat Granted", &users);

    let (status, body) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "POWER"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("SubscriptionExists")));
    // Done: a retry now changes nothing and answers 200.
    let before = stack.store.committed_events().len();
    let (status, _) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
    assert_eq!((status, stack.store.committed_events().len()), (200, before));
}

#[tokio::test]
async fn a_put_to_the_same_tier_finishes_a_fan_out_cut_short() {
    let (stack, group, users) = group_of(150).await;
    stack.store.crash_after_next_commit();
    let (status, _) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO_PLUS"))).await;
    assert_eq!(status, 500);
    let path = format!("/subscriptions/GROUP/{group}");
    let (status, body) = call_api(&stack.api, "GET", &path, None).await;
    assert_eq!((status, body["fanOut"]["state"].as_str()), (200, Some("IN_PROGRESS")), "{body}");

    let (status, body) = call_api(&stack.api, "PUT", &path, Some(json!({"tier": "PRO_PLUS"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fanOut"], json!({"state": "DONE", "granted": 150}));
    assert_one_event_each(&stack, "Seat Granted", &users);
}

/// The `Fan-out Requested` events put on the bus after the first `seen`.
fn continuations(stack: &MemoryStack, seen: usize) -> Vec<OutEvent> {
    stack.sink.events().into_iter().filter(|e| e.detail_type == FAN_OUT_REQUESTED).skip(seen).collect()
}

#[tokio::test]
async fn a_30000_member_group_answers_202_continues_through_the_bus_and_ends_done() {
    let (mut stack, group, users) = group_of(30_000).await;
    // As if the deadline came after 20 pages (2,000 members) per invocation.
    stack.api.fan_out_pages_per_call = Some(20);
    stack.sync.fan_out_pages_per_invocation = Some(20);
    let (status, body) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["fanOut"], json!({"state": "IN_PROGRESS", "granted": 2_000}));

    let like = eventbridge("Fan-out Requested", "kiro.subscriptions", json!({})).payload;
    let (mut seen, mut invocations) = (0, 0);
    while let Some(next) = continuations(&stack, seen).first().cloned() {
        seen += 1;
        invocations += 1;
        let event = continuation(&like, next.detail.clone());
        let mut event = lambda_runtime::LambdaEvent::new(event, kiro_tests::invocation("c"));
        event.payload.detail_type = FAN_OUT_REQUESTED.to_owned();
        let answer = sync_group::handle(&stack.sync, event).await.expect("a continuation");
        assert_eq!(answer["signal"], "fan-out", "{answer}");
        assert!(invocations < 100, "the fan-out does not end");
    }
    assert_eq!(invocations, 14, "28,000 members in 14 continuations of 2,000");

    let (status, body) = call_api(&stack.api, "GET", &format!("/subscriptions/GROUP/{group}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["fanOut"], json!({"state": "DONE", "granted": 30_000}));
    assert_eq!(body["seats"], 30_000);
    let seats = stack.store.seats_snapshot();
    assert_eq!(seats.iter().filter(|s| s.status == SeatStatus::Active).count(), 30_000);
    assert_one_event_each(&stack, "Seat Granted", &users);
    assert_eq!(stack.store.committed_events().len(), 30_000, "one event per seat, nothing else");
}
