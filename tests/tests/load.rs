//! Concurrent load on loopback against moto: many admin calls and membership events for
//! overlapping users at once. Afterwards — with no audit to mask anything — every seat holds
//! exactly the sources the subscriptions and the directory imply, and each user's events chain
//! from no seat to the final one (none lost, none doubled).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::aws::{DynamoStore, IdentityStoreDirectory};
use kiro::domain::{Principal, UserId};
use kiro::ports::{Directory as _, SeatFilter, SeatStore, SubscriptionStore};
use kiro_tests::{Directory, RecordingSink, World, fixture};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const USERS: usize = 12;
const GROUPS: usize = 3;
/// Concurrent operations.
const N: usize = 96;

struct Ctx {
    world: World,
    dir: Directory,
    sink: RecordingSink,
    api: assign_tier::Deps<DynamoStore, IdentityStoreDirectory, RecordingSink>,
    sync: sync_group::Deps<DynamoStore, IdentityStoreDirectory, RecordingSink>,
    users: Vec<String>,
    groups: Vec<String>,
    /// (group, user) → membership id, one lock per pair so a toggle and its event stay paired.
    memberships: HashMap<(usize, usize), Mutex<Option<String>>>,
    events: std::sync::Mutex<Vec<Value>>,
}

impl Ctx {
    async fn api_call(&self, method: &str, path: &str, body: Option<Value>) -> i64 {
        kiro_tests::call_api(&self.api, method, path, body).await.0
    }

    async fn deliver(&self, event: Value) {
        let payload: EventBridgeEvent<Value> = serde_json::from_value(event).unwrap();
        sync_group::handle(&self.sync, LambdaEvent::new(payload, Context::default())).await.expect("event handled");
    }

    /// Adds or removes the member in Identity Store, then delivers the CloudTrail event for it.
    async fn toggle(&self, g: usize, u: usize) {
        let mut slot = self.memberships[&(g, u)].lock().await;
        let (group, user) = (&self.groups[g], &self.users[u]);
        let store = &self.dir.store_id;
        let event = match slot.take() {
            Some(m) => {
                self.dir.remove(&m).await;
                json!({"eventSource": "identitystore.amazonaws.com", "eventName": "DeleteGroupMembership",
                       "requestParameters": {"identityStoreId": store, "membershipId": m}})
            }
            None => {
                let m = self.dir.add(group, user).await;
                *slot = Some(m.clone());
                json!({"eventSource": "identitystore.amazonaws.com", "eventName": "CreateGroupMembership",
                       "requestParameters": {"identityStoreId": store, "groupId": group, "memberId": {"userId": user}},
                       "responseElements": {"membershipId": m}})
            }
        };
        drop(slot);
        let mut envelope = fixture("cloudtrail/identitystore-create-group-membership.json");
        envelope["detail"] = event;
        self.events.lock().unwrap().push(envelope.clone());
        self.deliver(envelope).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_and_events_lose_no_source_and_double_no_event() {
    let world = World::new().await;
    let dir = Directory::new(&world.sdk);
    let store = || DynamoStore::new(world.dynamo.clone(), &world.table);
    let identity = || IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&world.sdk));
    kiro_tests::create_test_profile(&world, &dir.store_id).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(dir.user(&format!("load{i}")).await);
    }
    let mut groups = Vec::new();
    for i in 0..GROUPS {
        groups.push(dir.group(&format!("load-group-{i}")).await);
    }
    let sink = RecordingSink::default();
    let memberships = (0..GROUPS).flat_map(|g| (0..USERS).map(move |u| ((g, u), Mutex::new(None)))).collect();
    let ctx = Arc::new(Ctx {
        api: assign_tier::Deps::new(store(), identity(), sink.clone()),
        sync: sync_group::Deps::new(store(), identity(), sink.clone(), 25),
        world,
        dir,
        sink,
        users,
        groups,
        memberships,
        events: std::sync::Mutex::new(Vec::new()),
    });
    for (g, tier) in ["PRO", "POWER"].iter().enumerate() {
        let body = json!({"principalType": "GROUP", "principalId": ctx.groups[g], "tier": tier});
        assert_eq!(ctx.api_call("POST", "/subscriptions", Some(body)).await, 201);
    }

    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                // A fixed pseudo-random spread of users, groups and actions (repeatable runs).
                let r = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
                let u = (r % USERS as u64) as usize;
                match (r >> 8) % 6 {
                    0..=2 => ctx.toggle(((r >> 16) % GROUPS as u64) as usize, u).await,
                    3 => {
                        let body = json!({"principalType": "USER", "principalId": ctx.users[u], "tier": "PRO_PLUS"});
                        ctx.api_call("POST", "/subscriptions", Some(body)).await;
                    }
                    4 => {
                        ctx.api_call("DELETE", &format!("/subscriptions/USER/{}", ctx.users[u]), None).await;
                    }
                    _ => {
                        let tier = if (r >> 24) % 2 == 0 { "POWER" } else { "PRO" };
                        let path = format!("/subscriptions/GROUP/{}", ctx.groups[2]);
                        if ctx.api_call("PUT", &path, Some(json!({"tier": tier}))).await == 404 {
                            let body = json!({"principalType": "GROUP", "principalId": ctx.groups[2], "tier": tier});
                            ctx.api_call("POST", "/subscriptions", Some(body)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // EventBridge delivers at least once: every event again, late.
    let events = ctx.events.lock().unwrap().clone();
    for e in events.into_iter().rev() {
        ctx.deliver(e).await;
    }
    let elapsed = started.elapsed();

    // The truth: subscriptions as stored, memberships as Identity Store has them.
    let store = DynamoStore::new(ctx.world.dynamo.clone(), &ctx.world.table);
    let subs = store.list_subscriptions(None, 100, None).await.unwrap().items;
    let identity = IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&ctx.world.sdk));
    let profile_store = kiro::domain::IdentityStoreId::parse("s", &ctx.dir.store_id).unwrap();
    let mut truth: BTreeMap<UserId, BTreeMap<String, String>> = BTreeMap::new();
    for sub in &subs {
        match &sub.principal {
            Principal::User(u) => {
                truth.entry(u.clone()).or_default().insert("DIRECT".into(), sub.tier.to_string());
            }
            Principal::Group(g) => {
                let members = identity.group_memberships(&profile_store, g, None).await.unwrap().items;
                for m in members {
                    truth.entry(m.user_id).or_default().insert(format!("GROUP#{g}"), sub.tier.to_string());
                }
            }
        }
    }
    let seats = store.list_seats(SeatFilter::default(), 100, None).await.unwrap().items;
    let held: BTreeMap<UserId, BTreeMap<String, String>> = seats
        .iter()
        .filter(|s| s.holds())
        .map(|s| {
            let sources = s
                .sources
                .iter()
                .map(|(k, t)| {
                    let key = match k {
                        kiro::domain::SourceKey::Direct => "DIRECT".to_owned(),
                        kiro::domain::SourceKey::Group(g) => format!("GROUP#{g}"),
                    };
                    (key, t.to_string())
                })
                .collect();
            (s.user_id.clone(), sources)
        })
        .collect();
    assert_eq!(held, truth, "every source the subscriptions and the directory imply, and no other");

    // Every committed event was published and its outbox settled: nothing waits for a sweep.
    // (moto must serve one request at a time for this: its transactions are not isolated, and
    // two at once can roll back a third's committed writes — see scripts/moto_server.py.)
    let pending: Vec<kiro::ports::OutEvent> =
        store.pending_outboxes(chrono::Utc::now(), 1000).await.unwrap().into_iter().flat_map(|o| o.events).collect();
    assert!(pending.is_empty(), "events left in the outbox: {pending:?}");
    let mut balance: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in ctx.sink.events() {
        let user = e.detail["userId"].as_str().unwrap().to_owned();
        let text = |k: &str| e.detail[k].as_str().unwrap_or_default().to_owned();
        let (from, to) = match e.detail_type.as_str() {
            "Seat Granted" => ("NONE".to_owned(), text("tier")),
            "Seat Tier Changed" => (text("fromTier"), text("toTier")),
            "Seat Canceled" => (text("previousTier"), "NONE".to_owned()),
            other => panic!("unexpected {other}"),
        };
        chains.entry(user.clone()).or_default().push(format!("{from}->{to}"));
        *balance.entry((user.clone(), from)).or_default() -= 1;
        *balance.entry((user, to)).or_default() += 1;
    }
    for ((user, node), net) in balance {
        let uid = UserId::parse("u", &user).unwrap();
        let seat = seats.iter().find(|s| s.user_id == uid);
        let last = seat.filter(|s| s.holds()).map_or("NONE".to_owned(), |s| s.tier.to_string());
        let expected = i64::from(node == last) - i64::from(node == "NONE");
        assert_eq!(
            net,
            expected,
            "events of {user} do not chain to its seat (at {node}; final {last}): {:?}",
            chains.get(&user)
        );
    }
    println!(
        "load: {N} concurrent operations + {} redelivered events over {USERS} users and {GROUPS} groups in {elapsed:?}; {} events, {} seats",
        ctx.events.lock().unwrap().len(),
        ctx.sink.events().len(),
        seats.len()
    );
}
