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
    let active = stack.store.seats_snapshot().iter().filter(|s| s.holds()).count();
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
    assert_eq!(seats.iter().filter(|s| s.holds()).count(), 30_000);
    assert_one_event_each(&stack, "Seat Granted", &users);
    assert_eq!(stack.store.committed_events().len(), 30_000, "one event per seat, nothing else");
    assert!(stack.store.is_spread(&group), "its grant rows spread over partitions");
}

#[tokio::test]
async fn a_group_larger_than_the_first_step_is_spread_before_its_first_row_and_a_smaller_one_is_not() {
    for (members, spread) in [(2_000, false), (2_001, true)] {
        let (stack, group, users) = group_of(members).await;
        let (status, body) = call_api(&stack.api, "POST", "/subscriptions", Some(subscribe_body(&group, "PRO"))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(stack.store.is_spread(&group), spread, "{members} members");
        assert_eq!(body["seats"], members, "{body}");
        assert_one_event_each(&stack, "Seat Granted", &users);

        // And its rows are where the audit and the unsubscribe read them
        let report = audit(&stack, "repair").await;
        assert_eq!((report["granted"].as_u64(), report["canceled"].as_u64()), (Some(0), Some(0)), "{report}");
        let (status, _) = call_api(&stack.api, "DELETE", &format!("/subscriptions/GROUP/{group}"), None).await;
        assert_eq!(status, 204);
        assert!(stack.store.seats_snapshot().iter().all(|s| s.status == SeatStatus::Canceled), "{members} members");
        assert_one_event_each(&stack, "Seat Canceled", &users);
    }
}

/// Runs an audit to its end through sync-group, continuations included: the report.
async fn audit(stack: &MemoryStack, mode: &str) -> Value {
    let request = eventbridge("Audit Requested", "kiro.subscriptions", json!({"mode": mode})).payload;
    kiro_tests::audit_to_completion(&stack.sync, request, || stack.sink.events()).await.0
}

#[tokio::test]
async fn an_audit_with_a_deleted_user_and_a_deleted_group_finishes_and_removes_them_as_deleted() {
    let (stack, group, members) = group_of(3).await;
    let alice = stack.directory.add_user("alice", "Alice", None);
    for (kind, id) in [("GROUP", group.as_str()), ("USER", alice.as_str())] {
        let body = json!({"principalType": kind, "principalId": id, "tier": "PRO"});
        assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    }
    // Deleted in Identity Center; their events never arrive.
    stack.directory.delete_group(&group);
    stack.directory.delete_user(&alice);

    let report = audit(&stack, "report").await;
    assert_eq!(report["principalsDeleted"].as_u64(), Some(2), "{report}");
    assert_eq!(stack.store.subscriptions_snapshot().len(), 2, "a report changes nothing");

    let report = audit(&stack, "repair").await;
    assert_eq!((report["principalsDeleted"].as_u64(), report["canceled"].as_u64()), (Some(2), Some(4)), "{report}");
    assert_eq!(report["halted"], false, "a deletion the directory states is not a mass revoke by accident");
    assert!(stack.store.subscriptions_snapshot().is_empty());
    assert!(stack.store.seats_snapshot().iter().all(|s| s.status == SeatStatus::Canceled));
    assert_one_event_each(&stack, "Seat Canceled", &members);
    assert_eq!((canceled_with(&stack, "GROUP_DELETED"), canceled_with(&stack, "USER_DELETED")), (3, 1));

    let report = audit(&stack, "repair").await;
    assert_eq!((report["principalsDeleted"].as_u64(), report["canceled"].as_u64()), (Some(0), Some(0)), "{report}");
}

#[tokio::test]
async fn a_membership_event_for_a_deleted_user_or_a_resync_of_a_deleted_group_is_not_stuck() {
    let (stack, group, members) = group_of(2).await;
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    let store = kiro_tests::memory_profile().identity_store_id.to_string();
    // The user is deleted before the event of their leaving is handled.
    stack.directory.delete_user(&members[0]);
    let params =
        json!({"identityStoreId": store, "groupId": group.as_str(), "member": {"memberId": members[0].as_str()}});
    let event = cloudtrail("sso-directory.amazonaws.com", "RemoveMemberFromGroup", params, Value::Null);
    let answer = sync_group::handle(&stack.sync, event).await.expect("acknowledged, not retried for ever");
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
    assert_eq!(canceled_with(&stack, "USER_DELETED"), 1);
    // A SCIM PatchGroup (resync) of a group deleted meanwhile.
    stack.directory.delete_group(&group);
    let event =
        cloudtrail("identitystore-scim.amazonaws.com", "PatchGroup", json!({"id": group.as_str()}), Value::Null);
    let answer = sync_group::handle(&stack.sync, event).await.expect("acknowledged, not retried for ever");
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
    assert_eq!(canceled_with(&stack, "GROUP_DELETED"), 1);
}

/// One user's change over more sources than a transaction holds (2 items a source: 60 groups
/// are 122 items) is committed in rounds: granted, changed and canceled once each.
#[tokio::test]
async fn a_user_in_60_subscribed_groups_is_granted_changed_and_canceled_once_each() {
    let stack = MemoryStack::new(25).await;
    let user = stack.directory.add_user("many", "Many Groups", None);
    let groups: Vec<GroupId> = (0..60).map(|i| stack.directory.add_group(format!("g{i:02}"), None)).collect();
    for g in &groups {
        let body = json!({"principalType": "GROUP", "principalId": g.as_str(), "tier": "PRO"});
        assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
        // Joined after the fan-out, and no event came: the audit finds 60 sources at once.
        stack.directory.add_member(g, &user);
    }
    let report = audit(&stack, "repair").await;
    assert_eq!(report["granted"], 1, "{report}");
    let seat = stack.store.seats_snapshot().into_iter().next().expect("a seat");
    assert_eq!((seat.sources.len(), seat.status), (60, SeatStatus::Pending));

    let path = format!("/subscriptions/GROUP/{}", groups[59]);
    assert_eq!(call_api(&stack.api, "PUT", &path, Some(json!({"tier": "POWER"}))).await.0, 200);

    let store = kiro_tests::memory_profile().identity_store_id.to_string();
    stack.directory.delete_user(&user);
    let params = json!({"identityStoreId": store, "userId": user.as_str()});
    let answer =
        sync_group::handle(&stack.sync, cloudtrail("identitystore.amazonaws.com", "DeleteUser", params, Value::Null))
            .await
            .expect("a user with 60 sources is removed");
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
    let counts = events_per_user(&stack.store.committed_events());
    for kind in ["Seat Granted", "Seat Tier Changed", "Seat Canceled"] {
        assert_eq!(counts.get(&(kind.to_owned(), user.to_string())), Some(&1), "{kind}: {counts:?}");
    }
    assert_eq!(canceled_with(&stack, "USER_DELETED"), 1);
    assert!(stack.store.grants_snapshot().is_empty());
}

/// A seat the table keeps refusing does not stop the repair: it is skipped and named, the rest
/// are repaired, and the audit finishes (a checkpoint would otherwise resume into the same
/// failure every time).
#[tokio::test]
async fn a_seat_that_keeps_failing_is_skipped_and_named_and_the_audit_finishes() {
    let (stack, group, members) = group_of(5).await;
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    // Two members join without events; the table refuses one of their seats, for good.
    let late: Vec<UserId> = (0..2)
        .map(|i| {
            let u = stack.directory.add_user(format!("late{i}"), "Late", None);
            stack.directory.add_member(&group, &u);
            u
        })
        .collect();
    stack.store.refuse_seat_writes_of(&late[0]);
    let report = audit(&stack, "repair").await;
    assert_eq!((report["granted"].as_u64(), report["skipped"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["skippedUsers"], json!([late[0].as_str()]));
    let active = stack.store.seats_snapshot().iter().filter(|s| s.holds()).count();
    assert_eq!(active, members.len() + 1, "everyone but the refused seat");
}

fn deadline_in(ms: u64) -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + ms
}

/// The same, cut by the invocation's real deadline (the Runtime API's `Lambda-Runtime-Deadline-Ms`),
/// not by a page count: each call and continuation has 100 ms, far less than the 30,000 members
/// take, and always does at least one page, so the fan-out ends whatever the machine's speed.
#[tokio::test]
async fn a_fan_out_cut_by_the_lambda_deadline_answers_202_and_ends_done() {
    let (stack, group, users) = group_of(30_000).await;
    let mut request = kiro_tests::api_request("POST", "/subscriptions", Some(&subscribe_body(&group, "PRO")));
    request.context.deadline = deadline_in(100);
    let (status, body) = kiro_tests::status_and_json(&assign_tier::handle(&stack.api, request).await.unwrap());
    assert_eq!((status, body["fanOut"]["state"].as_str()), (202, Some("IN_PROGRESS")), "{body}");
    let granted = body["fanOut"]["granted"].as_u64().unwrap();
    assert!((100..30_000).contains(&granted), "at least a page, not all: {granted}");

    let like = eventbridge("Fan-out Requested", "kiro.subscriptions", json!({})).payload;
    let mut seen = 0;
    while let Some(next) = continuations(&stack, seen).first().cloned() {
        seen += 1;
        let mut context = kiro_tests::invocation(&format!("c{seen}"));
        context.deadline = deadline_in(100);
        let mut event = continuation(&like, next.detail.clone());
        event.detail_type = FAN_OUT_REQUESTED.to_owned();
        sync_group::handle(&stack.sync, lambda_runtime::LambdaEvent::new(event, context)).await.unwrap();
        assert!(seen <= 300, "each continuation does at least one of the 300 pages");
    }
    let (_, body) = call_api(&stack.api, "GET", &format!("/subscriptions/GROUP/{group}"), None).await;
    assert_eq!(body["fanOut"], json!({"state": "DONE", "granted": 30_000}), "after {seen} continuations");
    assert_one_event_each(&stack, "Seat Granted", &users);
}
