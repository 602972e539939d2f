//! Fuzzing the event side: the CloudTrail envelopes of `events/cloudtrail/`, mutated (fields
//! dropped, replaced, retyped or nulled at any depth; random strings and ARNs in the id fields;
//! event sources and names from the contract's table and outside it; other detail-types and
//! sources), must
//!
//! - classify without panicking, exactly as the contract's table says: anything it does not
//!   describe is `Ignore`, and what it does describe names the ids the event carries;
//! - deserialize into the runtime's `EventBridgeEvent<Value>` and run through
//!   `sync_group::handle` against in-memory ports without panicking and without an error: a
//!   malformed event is acknowledged (an error would make EventBridge retry it), and changes
//!   nothing.
//!
//! 256 cases by default; `PROPTEST_CASES` for more.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use kiro::domain::audit::AuditMode;
use kiro::domain::signal::{self, Signal};
use kiro::domain::{GroupId, Principal, Subscription, Tier, UserId};
use kiro::ports::{ProfileAdmin, SubscriptionStore};
use kiro_fakes::{MemoryDirectory, MemorySink, MemoryStore};
use kiro_tests::fixture;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use sync_group::{Deps, handle};

const FIXTURES: &[&str] = &[
    "audit-requested-continuation.json",
    "audit-requested-report.json",
    "console-add-member-to-group.json",
    "console-delete-group.json",
    "console-delete-user.json",
    "console-remove-member-from-group.json",
    "identitystore-create-group-membership-failed.json",
    "identitystore-create-group-membership.json",
    "identitystore-delete-group-membership.json",
    "identitystore-delete-group.json",
    "identitystore-delete-user.json",
    "scheduled-audit.json",
    "scim-delete-group.json",
    "scim-delete-user.json",
    "scim-patch-group.json",
];

const IDENTITY_STORE: &str = "identitystore.amazonaws.com";
const CONSOLE: &str = "sso-directory.amazonaws.com";
const SCIM: &str = "identitystore-scim.amazonaws.com";
const CLOUDTRAIL: &str = "AWS API Call via CloudTrail";

/// Event sources: the contract's three, and near misses.
const EVENT_SOURCES: &[&str] = &[
    IDENTITY_STORE,
    CONSOLE,
    SCIM,
    "sso.amazonaws.com",
    "iam.amazonaws.com",
    "IdentityStore.amazonaws.com",
    "identitystore.amazonaws.com ",
    "identitystore",
    "",
];

/// Event names: every name of the contract's table, and near misses.
const EVENT_NAMES: &[&str] = &[
    "CreateGroupMembership",
    "DeleteGroupMembership",
    "DeleteGroup",
    "DeleteUser",
    "AddMemberToGroup",
    "RemoveMemberFromGroup",
    "PatchGroup",
    "CreateUser",
    "UpdateGroup",
    "ListUsers",
    "createGroupMembership",
    "DeleteGroup\u{0}",
    "",
];

const DETAIL_TYPES: &[&str] = &[
    CLOUDTRAIL,
    "Scheduled Event",
    "Audit Requested",
    "AWS Console Sign In via CloudTrail",
    "aws api call via cloudtrail",
    "",
];

const ENVELOPE_SOURCES: &[&str] = &[
    "aws.identitystore",
    "aws.sso-directory",
    "aws.identitystore-scim",
    "aws.events",
    "kiro.subscriptions",
    "aws.evil",
    "attacker.example",
    "",
];

/// Every place the contract reads an id from, and the ARN kind that id has.
const ID_FIELDS: &[(&str, &str)] = &[
    ("/requestParameters/groupId", "group"),
    ("/requestParameters/memberId/userId", "user"),
    ("/responseElements/membershipId", "membership"),
    ("/requestParameters/membershipId", "membership"),
    ("/requestParameters/userId", "user"),
    ("/requestParameters/member/memberId", "user"),
    ("/requestParameters/id", "group"),
    ("/requestParameters/id", "user"),
    ("/requestParameters/identityStoreId", "identitystore"),
];

const ARN_KINDS: &[&str] = &["user", "group", "membership", "identitystore", "User", ""];

// ------------------------------------------------------------------------------ mutations

/// An id-ish string: resolved against the world's real ids when the case runs.
#[derive(Debug, Clone)]
enum IdValue {
    /// One of the directory's users, groups or memberships, or the fixtures' ids.
    Known(usize),
    /// A known id in an ARN of some kind.
    Arn {
        kind: usize,
        id: usize,
    },
    /// A known id in upper case.
    Upper(usize),
    Raw(String),
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Replace(usize, Value),
    Retype(usize),
    Null(usize),
    Id(usize, IdValue),
    Pair(usize, usize),
    ErrorCode(Value),
    Audit { mode: Value, force: Value },
    DetailType(usize),
    Source(usize),
    Time(Option<String>),
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        ".{0,24}".prop_map(Value::from),
        Just(json!("HIDDEN_DUE_TO_SECURITY_REASONS")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn id_value() -> impl Strategy<Value = IdValue> {
    prop_oneof![
        4 => any::<usize>().prop_map(IdValue::Known),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(kind, id)| IdValue::Arn { kind, id }),
        1 => any::<usize>().prop_map(IdValue::Upper),
        1 => "[0-9a-f]{10}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(IdValue::Raw),
        1 => "[0-9a-fA-F-]{30,48}".prop_map(IdValue::Raw),
        2 => ".{0,48}".prop_map(IdValue::Raw),
        1 => "[a-f0-9]{200,2000}".prop_map(IdValue::Raw),
        1 => Just(IdValue::Raw("HIDDEN_DUE_TO_SECURITY_REASONS".into())),
        1 => Just(IdValue::Raw("arn:aws:identitystore:::group/user/94482488-3041-7026-18f3-be45837cd0e4".into())),
        1 => Just(IdValue::Raw(String::new())),
    ]
}

fn time() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (1970..=9999i32, 1..=12u32, 1..=28u32, 0..24u32, 0..60u32, 0..60u32)
            .prop_map(|(y, mo, d, h, mi, s)| Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"))),
        Just(Some("2016-12-31T23:59:60Z".to_owned())),
        Just(Some("9999-12-31T23:59:59.999999999Z".to_owned())),
        Just(Some("2026-11-26T10:00:00+14:00".to_owned())),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<usize>().prop_map(Mutation::Drop),
        3 => (any::<usize>(), json_value()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        2 => any::<usize>().prop_map(Mutation::Retype),
        2 => any::<usize>().prop_map(Mutation::Null),
        5 => (any::<usize>(), id_value()).prop_map(|(f, v)| Mutation::Id(f, v)),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(s, n)| Mutation::Pair(s, n)),
        1 => prop_oneof![Just(Value::Null), Just(json!("AccessDenied")), json_value()].prop_map(Mutation::ErrorCode),
        1 => (
            prop_oneof![Just(json!("report")), Just(json!("repair")), Just(json!("REPAIR")), json_value()],
            prop_oneof![Just(json!(true)), Just(json!(false)), Just(json!("true")), json_value()],
        )
            .prop_map(|(mode, force)| Mutation::Audit { mode, force }),
        1 => any::<usize>().prop_map(Mutation::DetailType),
        1 => any::<usize>().prop_map(Mutation::Source),
        1 => time().prop_map(Mutation::Time),
    ]
}

/// RFC 6901 pointers of every node of `v` (`""` is `v` itself).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn pick(v: &Value, n: usize) -> String {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    all.swap_remove(n % all.len())
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Sets the value at `pointer`, turning whatever is in the way into objects.
fn set(root: &mut Value, pointer: &str, value: Value) {
    let mut at = root;
    for token in pointer.split('/').skip(1) {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at.as_object_mut().expect("made an object").entry(unescape(token)).or_insert(Value::Null);
    }
    *at = value;
}

fn remove(root: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else { return };
    match root.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&unescape(last));
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn retyped(v: &Value) -> Value {
    match v {
        Value::Null => json!({}),
        Value::Bool(b) => json!(b.to_string()),
        Value::Number(n) => json!(n.to_string()),
        Value::String(s) => json!(s.len()),
        Value::Array(a) => Value::Object(a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect()),
        Value::Object(m) => Value::Array(m.values().cloned().collect()),
    }
}

/// The real ids an `IdValue` can name.
struct Ids(Vec<String>);

impl Ids {
    fn resolve(&self, v: &IdValue) -> String {
        let known = |i: usize| self.0[i % self.0.len()].clone();
        match v {
            IdValue::Known(i) => known(*i),
            IdValue::Arn { kind, id } => {
                format!("arn:aws:identitystore:::{}/{}", ARN_KINDS[kind % ARN_KINDS.len()], known(*id))
            }
            IdValue::Upper(i) => known(*i).to_uppercase(),
            IdValue::Raw(s) => s.clone(),
        }
    }
}

fn apply(envelope: &mut Value, m: &Mutation, ids: &Ids) {
    let detail = &mut envelope["detail"];
    match m {
        Mutation::Drop(n) => remove(detail, &pick(detail, *n)),
        Mutation::Replace(n, v) => set(detail, &pick(detail, *n), v.clone()),
        Mutation::Retype(n) => {
            let p = pick(detail, *n);
            let v = retyped(detail.pointer(&p).unwrap_or(&Value::Null));
            set(detail, &p, v);
        }
        Mutation::Null(n) => set(detail, &pick(detail, *n), Value::Null),
        Mutation::Id(f, v) => set(detail, ID_FIELDS[f % ID_FIELDS.len()].0, json!(ids.resolve(v))),
        Mutation::Pair(s, n) => {
            set(detail, "/eventSource", json!(EVENT_SOURCES[s % EVENT_SOURCES.len()]));
            set(detail, "/eventName", json!(EVENT_NAMES[n % EVENT_NAMES.len()]));
        }
        Mutation::ErrorCode(v) => set(detail, "/errorCode", v.clone()),
        Mutation::Audit { mode, force } => {
            set(detail, "/mode", mode.clone());
            set(detail, "/force", force.clone());
        }
        Mutation::DetailType(i) => envelope["detail-type"] = json!(DETAIL_TYPES[i % DETAIL_TYPES.len()]),
        Mutation::Source(i) => envelope["source"] = json!(ENVELOPE_SOURCES[i % ENVELOPE_SOURCES.len()]),
        Mutation::Time(t) => match t {
            Some(t) => envelope["time"] = json!(t),
            None => {
                envelope.as_object_mut().expect("an envelope").remove("time");
            }
        },
    }
}

// --------------------------------------------------------------------------------- oracle

/// What the contract says an event means, written from its table (not from the classifier).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Meaning {
    Ignore,
    Audit { report: bool, force: bool, continues: Option<String> },
    Membership { group: String, user: String },
    MembershipDeleted(String),
    GroupMembersChanged(String),
    GroupDeleted(String),
    UserDeleted(String),
    NameSeats(Vec<String>),
    FanOut { group: String, next_token: Option<String>, granted: u64 },
}

fn meaning_of(s: &Signal) -> Meaning {
    match s {
        Signal::Ignore { .. } => Meaning::Ignore,
        Signal::Audit { mode, force, continues } => {
            Meaning::Audit { report: *mode == AuditMode::Report, force: *force, continues: continues.clone() }
        }
        Signal::Membership { group, user } => Meaning::Membership { group: group.to_string(), user: user.to_string() },
        Signal::MembershipDeleted { membership } => Meaning::MembershipDeleted(membership.to_string()),
        Signal::GroupMembersChanged { group } => Meaning::GroupMembersChanged(group.to_string()),
        Signal::GroupDeleted { group } => Meaning::GroupDeleted(group.to_string()),
        Signal::UserDeleted { user } => Meaning::UserDeleted(user.to_string()),
        Signal::NameSeats { users } => Meaning::NameSeats(users.iter().map(ToString::to_string).collect()),
        Signal::FanOut { group, next_token, granted } => {
            Meaning::FanOut { group: group.to_string(), next_token: next_token.clone(), granted: *granted }
        }
    }
}

/// The Identity Store API's id pattern: `([0-9a-f]{10}-|)` then a UUID in either case.
fn is_directory_id(s: &str) -> bool {
    let uuid = |u: &str| {
        let groups: Vec<&str> = u.split('-').collect();
        groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
    };
    match s.split_once('-') {
        Some((prefix, rest)) if prefix.len() == 10 && rest.len() == 36 => {
            prefix.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) && uuid(rest)
        }
        _ => uuid(s),
    }
}

/// The bare id of `raw` (an id, or `arn:…:<kind>/<id>`), if it is one of kind `kind`.
fn bare_id(raw: &str, kind: &str) -> Option<String> {
    let bare = match raw.strip_prefix("arn:") {
        Some(_) => match raw.rsplit(':').next().and_then(|resource| resource.split_once('/')) {
            Some((k, id)) if k == kind => id,
            _ => raw,
        },
        None => raw,
    };
    is_directory_id(bare).then(|| bare.to_owned())
}

fn expected(source: &str, detail_type: &str, detail: &Value) -> Meaning {
    match (source, detail_type) {
        ("aws.events", "Scheduled Event") => return Meaning::Audit { report: false, force: false, continues: None },
        ("kiro.subscriptions", "Audit Requested") => {
            let force = detail.get("force").and_then(Value::as_bool).unwrap_or(false);
            // `continues` (README, "Audits longer than one invocation"): an audit id, 1 to 64
            // letters, digits and dashes.
            let continues = match detail.get("continues") {
                None | Some(Value::Null) => None,
                Some(Value::String(id))
                    if (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
                {
                    Some(id.clone())
                }
                Some(_) => return Meaning::Ignore,
            };
            return match detail.get("mode").and_then(Value::as_str) {
                Some("report") => Meaning::Audit { report: true, force, continues },
                Some("repair") => Meaning::Audit { report: false, force, continues },
                _ => Meaning::Ignore,
            };
        }
        // Only AWS can put an event whose source starts with `aws.`: anything else calling itself
        // CloudTrail is forged.
        (s, CLOUDTRAIL) if s.starts_with("aws.") => {}
        _ => return Meaning::Ignore,
    }
    if detail.get("errorCode").is_some_and(|e| !e.is_null()) {
        return Meaning::Ignore;
    }
    let text = |p: &str| detail.pointer(p).and_then(Value::as_str);
    let id = |p: &str, kind: &str| text(p).and_then(|raw| bare_id(raw, kind));
    let one = |p: &str, kind: &str, make: fn(String) -> Meaning| id(p, kind).map_or(Meaning::Ignore, make);
    let membership = |group: Option<String>, user: Option<String>| match (group, user) {
        (Some(group), Some(user)) => Meaning::Membership { group, user },
        _ => Meaning::Ignore,
    };
    match (text("/eventSource").unwrap_or(""), text("/eventName").unwrap_or("")) {
        (IDENTITY_STORE, "CreateGroupMembership") => {
            membership(id("/requestParameters/groupId", "group"), id("/requestParameters/memberId/userId", "user"))
        }
        (IDENTITY_STORE, "DeleteGroupMembership") => {
            one("/requestParameters/membershipId", "membership", Meaning::MembershipDeleted)
        }
        (CONSOLE, "AddMemberToGroup" | "RemoveMemberFromGroup") => {
            membership(id("/requestParameters/groupId", "group"), id("/requestParameters/member/memberId", "user"))
        }
        (IDENTITY_STORE | CONSOLE, "DeleteGroup") => one("/requestParameters/groupId", "group", Meaning::GroupDeleted),
        (IDENTITY_STORE | CONSOLE, "DeleteUser") => one("/requestParameters/userId", "user", Meaning::UserDeleted),
        (SCIM, "PatchGroup") => one("/requestParameters/id", "group", Meaning::GroupMembersChanged),
        (SCIM, "DeleteGroup") => one("/requestParameters/id", "group", Meaning::GroupDeleted),
        (SCIM, "DeleteUser") => one("/requestParameters/id", "user", Meaning::UserDeleted),
        _ => Meaning::Ignore,
    }
}

// ---------------------------------------------------------------------------------- world

type SyncDeps = Deps<Arc<MemoryStore>, Arc<MemoryDirectory>, Arc<MemorySink>>;

struct World {
    store: Arc<MemoryStore>,
    sink: Arc<MemorySink>,
    deps: SyncDeps,
    ids: Ids,
}

/// A profile on the fixtures' identity store; three users, two groups with members, the
/// fixtures' group and one of the groups subscribed, and a direct subscription.
async fn world() -> World {
    let directory = Arc::new(MemoryDirectory::default());
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::default());
    let now = Utc::now();
    store.create_profile(&kiro_tests::memory_profile()).await.expect("profile");
    let users: Vec<UserId> = (0..3).map(|i| directory.add_user(format!("u{i}"), format!("U {i}"), None)).collect();
    let groups: Vec<GroupId> = (0..2).map(|i| directory.add_group(format!("g{i}"), None)).collect();
    let memberships = [
        directory.add_member(&groups[0], &users[0]),
        directory.add_member(&groups[0], &users[1]),
        directory.add_member(&groups[1], &users[1]),
        directory.add_member(&groups[1], &users[2]),
    ];
    let fixture_group = GroupId::parse("g", "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e").expect("fixture group id");
    for (principal, tier) in [
        (Principal::Group(groups[0].clone()), Tier::Pro),
        (Principal::Group(fixture_group), Tier::ProPlus),
        (Principal::User(users[2].clone()), Tier::Power),
    ] {
        store.create_subscription(&Subscription::new(principal, "s".into(), tier, "test", now)).await.expect("sub");
    }
    let mut ids: Vec<String> = users.iter().map(ToString::to_string).collect();
    ids.extend(groups.iter().map(ToString::to_string));
    ids.extend(memberships.iter().map(ToString::to_string));
    ids.extend(
        [
            "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e",
            "94482488-3041-7026-18f3-be45837cd0e4",
            "e4d89488-b0d1-70a5-7c2e-3f4a5b6c7d8e",
            "d-1234567890",
        ]
        .map(str::to_owned),
    );
    let deps = Deps::new(store.clone(), directory, sink.clone(), 25);
    World { store, sink, deps, ids: Ids(ids) }
}

/// Everything the store holds, to show an acknowledged event changed nothing.
fn state(store: &MemoryStore) -> String {
    format!(
        "{:?}{:?}{:?}{:?}",
        store.seats_snapshot(),
        store.subscriptions_snapshot(),
        store.grants_snapshot(),
        store.outboxes_snapshot()
    )
}

#[derive(Debug, Default)]
struct Tally(BTreeMap<&'static str, u32>);

async fn one_case(fixture_index: usize, mutations: &[Mutation], tally: &Mutex<Tally>) -> Result<(), TestCaseError> {
    let w = world().await;
    let mut envelope = fixture(&format!("cloudtrail/{}", FIXTURES[fixture_index % FIXTURES.len()]));
    for m in mutations {
        apply(&mut envelope, m, &w.ids);
    }
    let text = |k: &str| envelope[k].as_str().unwrap_or_default().to_owned();
    let (source, detail_type) = (text("source"), text("detail-type"));

    // The classifier agrees with the contract's table.
    let want = expected(&source, &detail_type, &envelope["detail"]);
    let got = meaning_of(&signal::classify(&source, &detail_type, &envelope["detail"]));
    prop_assert_eq!(&got, &want, "classify disagrees with the contract for {}", envelope);

    // The runtime can hand the handler every envelope EventBridge could deliver: only `detail` is free.
    let event: EventBridgeEvent<Value> = serde_json::from_value(envelope.clone())
        .map_err(|e| TestCaseError::fail(format!("EventBridgeEvent refused {envelope}: {e}")))?;
    let before = state(&w.store);
    let answer = handle(&w.deps, LambdaEvent::new(event, Context::default()))
        .await
        .map_err(|e| TestCaseError::fail(format!("handle failed (EventBridge would retry) on {envelope}: {e}")))?;
    if want == Meaning::Ignore {
        prop_assert_eq!(answer["signal"].as_str(), Some("ignored"), "{}", answer);
        prop_assert!(w.sink.events().is_empty(), "an ignored event emitted {:?}", w.sink.events());
        prop_assert_eq!(state(&w.store), before, "an ignored event changed the store");
    }
    let kind = match want {
        Meaning::Ignore => "ignored",
        Meaning::Audit { .. } => "audit",
        _ => "membership or deletion",
    };
    *tally.lock().expect("not poisoned").0.entry(kind).or_default() += 1;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

#[test]
fn mutated_envelopes_are_classified_by_the_contract_and_acknowledged() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let tally = Mutex::new(Tally::default());
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let strategy = (0..FIXTURES.len(), proptest::collection::vec(mutation(), 0..8));
    let result =
        runner.run(&strategy, |(fixture_index, mutations)| rt.block_on(one_case(fixture_index, &mutations, &tally)));
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must reach both sides of the table, or the property says little.
    let tally = tally.into_inner().expect("not poisoned").0;
    let total: u32 = tally.values().sum();
    eprintln!("{total} mutated envelopes: {tally:?}");
    for kind in ["ignored", "audit", "membership or deletion"] {
        let n = tally.get(kind).copied().unwrap_or(0);
        assert!(n * 20 >= total, "only {n} of {total} cases were {kind}: {tally:?}");
    }
}

/// The unmutated fixtures mean what their names say.
#[test]
fn the_fixtures_themselves_are_recognised() {
    for name in FIXTURES {
        let e = fixture(&format!("cloudtrail/{name}"));
        let (source, detail_type) = (e["source"].as_str().unwrap(), e["detail-type"].as_str().unwrap());
        let meaning = meaning_of(&signal::classify(source, detail_type, &e["detail"]));
        assert_eq!(meaning, expected(source, detail_type, &e["detail"]), "{name}");
        assert_eq!(meaning == Meaning::Ignore, name.ends_with("-failed.json"), "{name}: {meaning:?}");
    }
}

/// A CloudTrail-shaped event from a source AWS does not reserve (any account principal with
/// `events:PutEvents` can send one to the default bus) must not delete a subscription.
#[test]
fn forged_cloudtrail_events_are_ignored() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    rt.block_on(async {
        let w = world().await;
        let mut e = fixture("cloudtrail/identitystore-delete-group.json");
        e["source"] = json!("attacker.example");
        let before = state(&w.store);
        let event: EventBridgeEvent<Value> = serde_json::from_value(e).unwrap();
        let answer = handle(&w.deps, LambdaEvent::new(event, Context::default())).await.unwrap();
        assert_eq!(answer["signal"], "ignored");
        assert_eq!(state(&w.store), before, "the fixture group's subscription is still there");
    });
}
