//! A world of in-memory fakes (`kiro_fakes`) behind the real handlers, and the request counts
//! they keep: `MemoryStore` counts the DynamoDB requests `DynamoStore` would send, by operation;
//! `MemoryDirectory` (here in shards, see [`crate::directory`]) the Identity Store requests;
//! `MemorySink` the `PutEvents` requests (one per 10 entries).
//!
//! The handlers run as deployed: their sink leaves seat events to the table's stream
//! ([`MemorySink::streamed`]), so what an operation is counted for is its request path alone;
//! [`Fakes::publish_outboxes`] is `publish-events`' share, counted apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{SecondsFormat, Utc};
use kiro::domain::{GroupId, IdentityStoreId, MembershipId, Profile, UserId};
use kiro::ports::ProfileAdmin;
use kiro_fakes::{MemorySink, MemoryStore};
use kiro_tests::{fixture, http_event, status_and_json};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::directory::{Shard, ShardedDirectory};

/// The identity store of the samples in `events/`.
pub const IDENTITY_STORE: &str = "d-1234567890";

pub type Api = assign_tier::Deps<Arc<MemoryStore>, ShardedDirectory, Arc<MemorySink>>;
pub type Sync = sync_group::Deps<Arc<MemoryStore>, ShardedDirectory, Arc<MemorySink>>;

/// The three fakes, and the two handlers that use them, sharing one profile.
pub struct Fakes {
    pub store: Arc<MemoryStore>,
    pub directory: ShardedDirectory,
    pub sink: Arc<MemorySink>,
    pub api: Api,
    pub sync: Sync,
}

impl Fakes {
    /// Fakes holding the deployment's profile, bound to [`IDENTITY_STORE`].
    pub async fn with_profile() -> Fakes {
        let store = Arc::new(MemoryStore::default());
        let directory = ShardedDirectory::default();
        let sink = Arc::new(MemorySink::streamed());
        let now = Utc::now();
        let profile = Profile {
            profile_id: "bench".into(),
            name: "Benchmarks".into(),
            description: String::new(),
            region: "us-east-1".into(),
            identity_store_id: IdentityStoreId::parse("identityStoreId", IDENTITY_STORE).expect("a store id"),
            created_at: now,
            updated_at: now,
            created_by: "bench".into(),
            updated_by: "bench".into(),
        };
        store.create_profile(&profile).await.expect("a fresh store takes a profile");
        let api = assign_tier::Deps::new(store.clone(), directory.clone(), sink.clone());
        let sync = sync_group::Deps::new(store.clone(), directory.clone(), sink.clone(), 25);
        Fakes { store, directory, sink, api, sync }
    }

    /// Both handlers read the profile once per execution environment; a warm one has it. Reads it
    /// into each, so that what is counted afterwards is what a warm invocation sends.
    pub async fn warm(&self) {
        let (status, body) = self.http(http_event("list-seats.json", None)).await;
        assert_eq!(status, 200, "GET /seats: {body}");
        // A membership event in a group nobody subscribed: the profile, then one read.
        let group = GroupId::parse("g", "00000000-0000-0000-0000-000000000000").expect("an id");
        let user = UserId::parse("u", "00000000-0000-0000-0000-000000000001").expect("an id");
        let m = MembershipId::parse("m", "00000000-0000-0000-0000-000000000002").expect("an id");
        self.event(create_membership(&group, &user, &m)).await;
    }

    /// A group of `members` new users in `shard`, in creation order.
    pub fn group_of(&self, shard: &Shard, name: &str, members: usize) -> (GroupId, Vec<UserId>) {
        let group = self.directory.add_group(shard, name);
        let users = (0..members)
            .map(|i| {
                let user = self.directory.add_user(shard, format!("{name}-{i:06}"), format!("{name} {i}"));
                shard.add_member(&group, &user);
                user
            })
            .collect();
        (group, users)
    }

    /// `POST /subscriptions` through assign-tier; panics unless it answers 201.
    pub async fn subscribe(&self, principal_type: &str, principal_id: &str, tier: &str) -> Value {
        let body = json!({"principalType": principal_type, "principalId": principal_id, "tier": tier});
        let fixture = if principal_type == "GROUP" { "subscribe-group.json" } else { "subscribe-user.json" };
        let (status, answer) = self.http(http_event(fixture, Some(body))).await;
        assert_eq!(status, 201, "POST /subscriptions {principal_type} {principal_id}: {answer}");
        answer
    }

    /// An API Gateway request through assign-tier: status and JSON body.
    pub async fn http(&self, event: LambdaEvent<aws_lambda_events::apigw::ApiGatewayV2httpRequest>) -> (i64, Value) {
        let resp: ApiGatewayV2httpResponse = assign_tier::handle(&self.api, event).await.expect("assign-tier answers");
        status_and_json(&resp)
    }

    /// An EventBridge envelope through sync-group; panics on an error (none is expected here).
    pub async fn event(&self, raw: Value) -> Value {
        sync_group::handle(&self.sync, envelope(raw)).await.expect("sync-group handles the event")
    }

    /// What the stream's publisher (`publish-events`) does with the outboxes the request path
    /// committed: their `INSERT` records handed over `BatchSize` at a time, as the template's
    /// event source hands them. Answers its requests and the events it put.
    pub async fn publish_outboxes(&self) -> (Requests, u64) {
        let batch_size = kiro_tests::stream::EventSource::from_template().batch_size;
        let before = self.counts();
        let ids: Vec<String> = self.store.outboxes_snapshot().into_iter().map(|o| o.id).collect();
        let mut events = 0;
        for batch in ids.chunks(batch_size) {
            let published =
                kiro::app::publish::outboxes(&self.store, &self.sink, batch).await.expect("the outboxes are read");
            assert!(published.failed.is_empty(), "the in-memory bus accepts every event");
            events += published.events;
        }
        (self.counts().since(&before), events)
    }

    /// The requests counted so far.
    pub fn counts(&self) -> Counts {
        Counts {
            store: self.store.requests_by_operation(),
            directory: self.directory.requests(),
            put_events: self.sink.requests(),
        }
    }
}

/// Request counters at one instant.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    store: BTreeMap<&'static str, u64>,
    directory: u64,
    put_events: u64,
}

impl Counts {
    /// The requests sent between `earlier` and `self`.
    pub fn since(&self, earlier: &Counts) -> Requests {
        let mut by_operation: Vec<(String, u64)> = self
            .store
            .iter()
            .map(|(op, n)| (op.to_string(), n - earlier.store.get(op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let directory = self.directory - earlier.directory;
        if directory > 0 {
            // MemoryDirectory counts its requests without naming them.
            by_operation.push(("Identity Store".into(), directory));
        }
        let put_events = self.put_events - earlier.put_events;
        if put_events > 0 {
            by_operation.push(("PutEvents".into(), put_events));
        }
        by_operation.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Requests { total: by_operation.iter().map(|(_, n)| n).sum(), by_operation }
    }
}

/// The requests of one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    pub total: u64,
    /// Largest first.
    pub by_operation: Vec<(String, u64)>,
}

impl Requests {
    /// `TransactWriteItems 3, PutEvents 2, ...`
    /// The requests of `operation` (0 when none).
    pub fn of(&self, operation: &str) -> u64 {
        self.by_operation.iter().find(|(op, _)| op == operation).map_or(0, |(_, n)| *n)
    }

    pub fn breakdown(&self) -> String {
        self.by_operation.iter().map(|(op, n)| format!("{op} {n}")).collect::<Vec<_>>().join(", ")
    }
}

/// An EventBridge envelope as sync-group receives it.
pub fn envelope(raw: Value) -> LambdaEvent<EventBridgeEvent<Value>> {
    LambdaEvent::new(serde_json::from_value(raw).expect("an EventBridge envelope"), Context::default())
}

/// The API's `CreateGroupMembership` sample, for `user` joining `group`.
pub fn create_membership(group: &GroupId, user: &UserId, membership: &MembershipId) -> Value {
    let mut e = fixture("cloudtrail/identitystore-create-group-membership.json");
    let d = &mut e["detail"];
    d["requestParameters"]["groupId"] = json!(group);
    d["requestParameters"]["memberId"] = json!({"userId": user});
    d["responseElements"]["membershipId"] = json!(membership);
    e
}

/// The API's `DeleteGroupMembership` sample: only the membership id.
pub fn delete_membership(membership: &MembershipId) -> Value {
    let mut e = fixture("cloudtrail/identitystore-delete-group-membership.json");
    e["detail"]["requestParameters"]["membershipId"] = json!(membership);
    e
}

/// The console's `AddMemberToGroup` (`add`) or `RemoveMemberFromGroup` sample.
pub fn console_membership(add: bool, group: &GroupId, user: &UserId) -> Value {
    let name = if add { "console-add-member-to-group.json" } else { "console-remove-member-from-group.json" };
    let mut e = fixture(&format!("cloudtrail/{name}"));
    let p = &mut e["detail"]["requestParameters"];
    p["groupId"] = json!(group);
    p["member"]["memberId"] = json!(user);
    e
}

/// An audit: `Some(mode)` is an `Audit Requested` event, `None` the schedule's tick (repair). Its
/// clock is the envelope's time, set to now.
pub fn audit(mode: Option<&str>) -> Value {
    let mut e = match mode {
        Some(mode) => {
            let mut e = fixture("cloudtrail/audit-requested-report.json");
            e["detail"] = json!({"mode": mode, "force": false});
            e
        }
        None => fixture("cloudtrail/scheduled-audit.json"),
    };
    e["time"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
    e
}
