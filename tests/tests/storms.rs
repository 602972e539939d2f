//! No storms: an event that names nothing we hold costs a few requests, whatever the number of
//! subscribed groups. `DeleteGroupMembership` names only a membership id; one that no grant
//! recorded (a removal from a group nobody subscribed, the common case) used to re-sync every
//! subscribed group.

use kiro::domain::GroupId;
use kiro_tests::{MemoryStack, call_api, cloudtrail};
use serde_json::{Value, json};

const GROUPS: usize = 20;
const MEMBERS: usize = 100;
const REMOVALS: usize = 200;

#[tokio::test]
async fn unknown_membership_removals_cost_a_few_requests_each() {
    let stack = MemoryStack::new(25).await;
    let users: Vec<_> = (0..MEMBERS).map(|i| stack.directory.add_user(format!("u{i}"), "U", None)).collect();
    let groups: Vec<GroupId> = (0..GROUPS).map(|i| stack.directory.add_group(format!("g{i}"), None)).collect();
    for g in &groups {
        for u in &users {
            stack.directory.add_member(g, u);
        }
        let body = json!({"principalType": "GROUP", "principalId": g.as_str(), "tier": "PRO"});
        assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    }
    // A group nobody subscribed, whose members come and go.
    let other = stack.directory.add_group("unsubscribed", None);
    let store_id = kiro_tests::memory_profile().identity_store_id.to_string();
    stack.store.reset_requests();
    let directory_before = stack.directory.requests();
    for i in 0..REMOVALS {
        let m = stack.directory.add_member(&other, &users[i % MEMBERS]);
        stack.directory.remove_member(&m);
        let params = json!({"identityStoreId": store_id, "membershipId": m});
        let event = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
        sync_group::handle(&stack.sync, event).await.expect("acknowledged");
    }
    let (store, directory) = (stack.store.requests(), stack.directory.requests() - directory_before);
    println!(
        "{REMOVALS} unknown removals over {GROUPS} subscribed groups of {MEMBERS}: {store} table requests, {directory} Identity Store requests"
    );
    assert!(store + directory <= 3 * REMOVALS as u64, "{store} + {directory} requests");
    assert_eq!(stack.store.committed_events().len(), MEMBERS, "nothing changed: no event beyond the grants");
}

/// What makes the cheap answer above right: the membership map stays current. A member removed
/// and added again has a new membership id; when the add is handled while the seat still holds
/// the group (the removal's event late), the map takes the new id, so the next removal resolves.
#[tokio::test]
async fn a_re_added_member_keeps_the_map_current_so_its_next_removal_resolves() {
    let stack = MemoryStack::new(25).await;
    let user = stack.directory.add_user("re-added", "R", None);
    let group = stack.directory.add_group("team", None);
    stack.directory.add_member(&group, &user);
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    let store_id = kiro_tests::memory_profile().identity_store_id.to_string();

    // Removed and added again; only the add's event has arrived so far.
    stack.directory.remove_user_from_group(&group, &user);
    let again = stack.directory.add_member(&group, &user);
    let params = json!({"identityStoreId": store_id, "groupId": group.as_str(), "memberId": {"userId": user.as_str()}});
    let add =
        cloudtrail("identitystore.amazonaws.com", "CreateGroupMembership", params, json!({"membershipId": again}));
    sync_group::handle(&stack.sync, add).await.unwrap();

    // Then removed for good: its event names the new id only.
    stack.directory.remove_member(&again);
    let params = json!({"identityStoreId": store_id, "membershipId": again});
    let remove = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
    let answer = sync_group::handle(&stack.sync, remove).await.unwrap();
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
}

/// SCIM sends a `PatchGroup` per change of a group, often in bursts: one re-sync runs, and the
/// requests that arrive meanwhile make it run once more, not once each.
#[tokio::test]
async fn a_burst_of_patch_group_events_re_syncs_the_group_twice_not_twenty_times() {
    let stack = MemoryStack::new(25).await;
    let group = stack.directory.add_group("scim-team", None);
    for i in 0..MEMBERS {
        let u = stack.directory.add_user(format!("s{i}"), "S", None);
        stack.directory.add_member(&group, &u);
    }
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    stack.store.set_jitter(11);
    let before = stack.directory.requests();
    let events: Vec<_> = (0..20)
        .map(|_| {
            cloudtrail("identitystore-scim.amazonaws.com", "PatchGroup", json!({"id": group.as_str()}), Value::Null)
        })
        .collect();
    let answers = futures_util::future::join_all(events.into_iter().map(|e| sync_group::handle(&stack.sync, e))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let reads = stack.directory.requests() - before;
    println!("20 PatchGroup events at once: {reads} ListGroupMemberships");
    assert!((1..=2).contains(&reads), "{reads} group reads for one burst");
}

/// Issue 17's budgets on the request path (seat events leave from the table's stream, so the
/// outbox's settle is not the request path's): a join that grants a seat reads the group's
/// subscription and the user's seat in one `BatchGetItem`, asks the Identity Store twice (before
/// and after writing) and commits once; a group's fan-out reads its seats once a step of pages
/// and writes them in full transactions.
#[tokio::test]
async fn a_granting_join_costs_four_requests_and_a_fan_out_reads_and_writes_in_full_batches() {
    let stack = MemoryStack::new(25).await;
    let group = stack.directory.add_group("team", None);
    let members: Vec<_> = (0..1_000).map(|i| stack.directory.add_user(format!("m{i}"), "M", None)).collect();
    for u in &members {
        stack.directory.add_member(&group, u);
    }
    stack.store.reset_requests();
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    let by_op = stack.store.requests_by_operation();
    let reads = by_op.get("BatchGetItem(seats)").copied().unwrap_or_default();
    let commits = by_op.get("TransactWriteItems").copied().unwrap_or_default();
    assert_eq!(reads, 20, "two reads a page of 100 members, not one a transaction: {by_op:?}");
    // The first step reads up to 20 pages (whether the group is spread is decided there): the
    // 1,000 members in 21 full transactions of 48, not 3 a page (30)
    assert_eq!(commits, 21, "full transactions, not 3 a page: {by_op:?}");
    assert!((reads + commits) as f64 / 1_000.0 <= 0.06, "{by_op:?}");

    let joiner = stack.directory.add_user("joiner", "J", None);
    let m = stack.directory.add_member(&group, &joiner);
    let store_id = kiro_tests::memory_profile().identity_store_id.to_string();
    let params =
        json!({"identityStoreId": store_id, "groupId": group.as_str(), "memberId": {"userId": joiner.as_str()}});
    let add = cloudtrail("identitystore.amazonaws.com", "CreateGroupMembership", params, json!({"membershipId": m}));
    // A warm execution environment: the profile is cached by an earlier event.
    let params = json!({"identityStoreId": store_id, "membershipId": "c0ffee00-1071-70f6-1c5e-000000000001"});
    let unknown = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
    sync_group::handle(&stack.sync, unknown).await.unwrap();
    stack.store.reset_requests();
    let directory_before = stack.directory.requests();
    let answer = sync_group::handle(&stack.sync, add).await.unwrap();
    assert_eq!(answer["applied"]["granted"], 1, "{answer}");
    let mut by_op = stack.store.requests_by_operation();
    by_op.remove("DeleteItem(outbox)"); // the stream's publisher settles it when deployed
    let table: u64 = by_op.values().sum();
    let directory = stack.directory.requests() - directory_before;
    assert_eq!((table, directory), (2, 2), "{by_op:?}");

    // The API's leave names only the membership: resolved with one `Query`, written, verified.
    stack.directory.remove_member(&m);
    let params = json!({"identityStoreId": store_id, "membershipId": m});
    let leave = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
    stack.store.reset_requests();
    let directory_before = stack.directory.requests();
    let answer = sync_group::handle(&stack.sync, leave).await.unwrap();
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
    let mut by_op = stack.store.requests_by_operation();
    by_op.remove("DeleteItem(outbox)");
    let table: u64 = by_op.values().sum();
    let directory = stack.directory.requests() - directory_before;
    assert_eq!((table, directory), (3, 1), "a leave costs four requests: {by_op:?}");
}

/// A removal whose event comes after the member was added back (a new membership id, its event
/// not yet here): the leave, written before asking the directory, is verified after it, and the
/// seat given back in the same invocation; the late join then changes nothing.
#[tokio::test]
async fn a_removal_arriving_after_the_member_was_added_back_keeps_the_seat() {
    let stack = MemoryStack::new(25).await;
    let user = stack.directory.add_user("back", "B", None);
    let group = stack.directory.add_group("team", None);
    let first = stack.directory.add_member(&group, &user);
    let body = json!({"principalType": "GROUP", "principalId": group.as_str(), "tier": "PRO"});
    assert_eq!(call_api(&stack.api, "POST", "/subscriptions", Some(body)).await.0, 201);
    let store_id = kiro_tests::memory_profile().identity_store_id.to_string();

    stack.directory.remove_member(&first);
    let again = stack.directory.add_member(&group, &user);
    let params = json!({"identityStoreId": store_id, "membershipId": first});
    let remove = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
    let answer = sync_group::handle(&stack.sync, remove).await.unwrap();
    assert_eq!(
        (answer["applied"]["canceled"].clone(), answer["applied"]["granted"].clone()),
        (json!(1), json!(1)),
        "{answer}"
    );
    let (status, seat) = call_api(&stack.api, "GET", &format!("/seats/{user}"), None).await;
    assert_eq!(
        (status, seat["status"].clone(), seat["sources"][0]["groupId"].clone()),
        (200, json!("PENDING"), json!(group.as_str())),
        "held: {seat}"
    );

    let params = json!({"identityStoreId": store_id, "groupId": group.as_str(), "memberId": {"userId": user.as_str()}});
    let add =
        cloudtrail("identitystore.amazonaws.com", "CreateGroupMembership", params, json!({"membershipId": again}));
    let answer = sync_group::handle(&stack.sync, add).await.unwrap();
    assert_eq!(answer["applied"]["unchanged"], 1, "{answer}");
    // The map recorded the new id: its removal resolves.
    stack.directory.remove_member(&again);
    let params = json!({"identityStoreId": store_id, "membershipId": again});
    let remove = cloudtrail("identitystore.amazonaws.com", "DeleteGroupMembership", params, Value::Null);
    let answer = sync_group::handle(&stack.sync, remove).await.unwrap();
    assert_eq!(answer["applied"]["canceled"], 1, "{answer}");
}
