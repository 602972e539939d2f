//! The integration-test harness: one moto server per test binary (started on a free port, killed
//! when the test process exits), a fresh table per test created from `template.yaml`'s own
//! declaration, and API Gateway / EventBridge payloads loaded from `events/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

pub mod bus;
pub mod counting;
pub mod runtime_api;
pub mod stream;
pub mod template;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A sample payload from `events/`, e.g. `fixture("http/create-profile.json")`.
pub fn fixture(relative: &str) -> Value {
    let path = repo_root().join("events").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The moto server of this test process.
pub struct Moto {
    pub endpoint: String,
}

static MOTO: OnceLock<Moto> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Moto {
    /// Starts moto once per test process: `scripts/moto_server.py` (moto serving one request at a
    /// time) with the project's `.venv` Python, or `python3` from `PATH`.
    pub fn get() -> &'static Moto {
        MOTO.get_or_init(Moto::start)
    }

    fn start() -> Moto {
        let port = free_port();
        let venv_bin = repo_root().join(".venv/bin");
        // moto serving one request at a time: its transactions are all-or-nothing only then.
        let server = repo_root().join("scripts/moto_server.py").display().to_string();
        let python = venv_bin.join("python");
        let python = if python.exists() { python.display().to_string() } else { "python3".to_owned() };
        // The server must not outlive the tests: the spawning thread lives as long as the process,
        // and PR_SET_PDEATHSIG ends moto when that thread (so the process) is gone.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let script = "import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); os.execvp(sys.executable, [sys.executable] + sys.argv[1:])";
            let child = Command::new(python)
                .args(["-c", script, &server, "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            tx.send(child.map(|_| ())).expect("test thread waits");
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .expect("moto thread answers")
            .unwrap_or_else(|e| panic!("cannot start moto_server (run `make venv` first): {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_listening(port, Duration::from_secs(30));
        Moto { endpoint }
    }

    /// SDK configuration pointing at this moto, as `AWS_ENDPOINT_URL` would.
    pub fn sdk_config(&self) -> SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "tests"),
            ))
            .build()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn wait_until_listening(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < limit, "moto did not listen on {port} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unique name for this test's resources.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// One test's world: moto, a fresh table made from the template, and SDK clients.
pub struct World {
    pub sdk: SdkConfig,
    pub table: String,
    pub dynamo: aws_sdk_dynamodb::Client,
}

impl World {
    pub async fn new() -> World {
        let sdk = Moto::get().sdk_config();
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique("kiro");
        create_table_from_template(&dynamo, &table).await;
        World { sdk, table, dynamo }
    }
}

/// Creates `name` with exactly the key schema, indexes, billing mode, stream and TTL of
/// `template.yaml`'s `Table` resource: the template is the only declaration of the table.
pub async fn create_table_from_template(dynamo: &aws_sdk_dynamodb::Client, name: &str) {
    let spec = template::table_spec();
    let attr_type = |t: &str| ScalarAttributeType::from(t);
    let key = |(name, kind): &(String, String)| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::from(kind.as_str()))
            .build()
            .expect("key schema element")
    };
    let mut req = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(spec.billing_mode.as_str()))
        .set_key_schema(Some(spec.key_schema.iter().map(key).collect()));
    for (attr, kind) in &spec.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(attr_type(kind))
                .build()
                .expect("attribute definition"),
        );
    }
    for gsi in &spec.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.name)
                .set_key_schema(Some(gsi.key_schema.iter().map(key).collect()))
                .projection(
                    Projection::builder().projection_type(ProjectionType::from(gsi.projection.as_str())).build(),
                )
                .build()
                .expect("index"),
        );
    }
    if let Some(view) = &spec.stream_view_type {
        let stream = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(view.as_str()))
            .build()
            .expect("stream specification");
        req = req.stream_specification(stream);
    }
    req.send().await.expect("CreateTable in moto");
    if let Some(ttl) = &spec.ttl_attribute {
        dynamo
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name(ttl).enabled(true).build().expect("ttl"),
            )
            .send()
            .await
            .expect("UpdateTimeToLive in moto");
    }
}

/// An API Gateway request built from a fixture in `events/http/`, with its body replaced.
pub fn http_event(fixture_name: &str, body: Option<Value>) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut raw = fixture(&format!("http/{fixture_name}"));
    if let Some(body) = body {
        raw["body"] = Value::String(body.to_string());
        raw["isBase64Encoded"] = Value::Bool(false);
    }
    http_event_from(raw)
}

/// An API Gateway request from a raw payload.
pub fn http_event_from(raw: Value) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let payload: ApiGatewayV2httpRequest = serde_json::from_value(raw).expect("an API Gateway v2 payload");
    LambdaEvent::new(payload, invocation(&unique("req")))
}

/// The context of an invocation with `request_id` (Lambda keeps it across its retries).
pub fn invocation(request_id: &str) -> Context {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context
}

/// An API Gateway request for `method` and `path_and_query` (`/seats?tier=PRO`), as the HTTP API
/// delivers it: path, raw and parsed query string, method, and the body as JSON text.
pub fn api_request(method: &str, path_and_query: &str, body: Option<&Value>) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut raw = fixture("http/get-profile.json");
    raw["rawPath"] = serde_json::json!(path);
    raw["rawQueryString"] = serde_json::json!(query);
    route_as_api_gateway(&mut raw, method, path);
    raw["requestContext"]["http"]["method"] = serde_json::json!(method);
    raw["requestContext"]["http"]["path"] = serde_json::json!(path);
    let params: serde_json::Map<String, Value> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), serde_json::json!(v))).collect();
    raw["queryStringParameters"] = Value::Object(params);
    if let Some(body) = body {
        raw["body"] = serde_json::json!(body.to_string());
    }
    http_event_from(raw)
}

/// Sets `routeKey` and `pathParameters` as API Gateway does from the template's routes (the
/// functions' route tables, which the template contract test holds equal to `template.yaml`):
/// a declared route with its parameters, or `$default`.
pub fn route_as_api_gateway(raw: &mut Value, method: &str, path: &str) {
    let keys = assign_tier::ROUTES.iter().map(|(k, _)| *k).chain(create_profile::ROUTES.iter().map(|(k, _)| *k));
    let (key, params) = keys
        .filter_map(|key| Some((key, kiro::http::match_route(key, method, path)?)))
        .next()
        .map_or((kiro::http::DEFAULT_ROUTE, None), |(key, params)| (key, Some(params.into_map())));
    raw["routeKey"] = serde_json::json!(key);
    raw["requestContext"]["routeKey"] = serde_json::json!(key);
    match params {
        Some(params) if !params.is_empty() => raw["pathParameters"] = serde_json::json!(params),
        _ => {
            if let Some(o) = raw.as_object_mut() {
                o.remove("pathParameters");
            }
        }
    }
}

/// Calls assign-tier with [`api_request`]: status and JSON body.
pub async fn call_api<S, D, E>(
    api: &assign_tier::Deps<S, D, E>,
    method: &str,
    path_and_query: &str,
    body: Option<Value>,
) -> (i64, Value)
where
    S: kiro::ports::ApiStore,
    D: kiro::ports::Directory + kiro::ports::DirectorySearch,
    E: kiro::ports::EventSink,
{
    let resp = assign_tier::handle(api, api_request(method, path_and_query, body.as_ref())).await.unwrap();
    status_and_json(&resp)
}

/// Status and JSON body (or `Null`) of a handler's response.
pub fn status_and_json(resp: &ApiGatewayV2httpResponse) -> (i64, Value) {
    let body = match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).expect("a JSON body"),
        Some(Body::Binary(b)) => serde_json::from_slice(b).expect("a JSON body"),
        _ => Value::Null,
    };
    (resp.status_code, body)
}

/// The `error.code` of an error response.
pub fn error_code(resp: &ApiGatewayV2httpResponse) -> String {
    let (_, body) = status_and_json(resp);
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// An `EventSink` that records what it is asked to publish (the EventBridge adapter has its own
/// test against moto).
#[derive(Default, Clone)]
pub struct RecordingSink {
    events: std::sync::Arc<std::sync::Mutex<Vec<kiro::ports::OutEvent>>>,
}

impl RecordingSink {
    /// The events published, but for `Seat Names Requested` (the stack's request to itself to
    /// name the seats a group granted; see [`name_requests`](Self::name_requests)).
    pub fn events(&self) -> Vec<kiro::ports::OutEvent> {
        let all = self.events.lock().expect("not poisoned").clone();
        all.into_iter().filter(|e| e.detail_type != kiro::domain::signal::NAMES_REQUESTED).collect()
    }

    /// The `Seat Names Requested` events published.
    pub fn name_requests(&self) -> Vec<kiro::ports::OutEvent> {
        let all = self.events.lock().expect("not poisoned").clone();
        all.into_iter().filter(|e| e.detail_type == kiro::domain::signal::NAMES_REQUESTED).collect()
    }

    /// `(detail-type, userId)` of every event, in order.
    pub fn summary(&self) -> Vec<(String, String)> {
        self.events()
            .iter()
            .map(|e| (e.detail_type.clone(), e.detail["userId"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    pub fn clear(&self) {
        self.events.lock().expect("not poisoned").clear();
    }
}

impl kiro::ports::EventSink for RecordingSink {
    async fn publish(&self, events: &[kiro::ports::OutEvent]) -> Result<Vec<usize>, kiro::ports::SinkError> {
        self.events.lock().expect("not poisoned").extend_from_slice(events);
        Ok(Vec::new())
    }
}

/// A demo Identity Store in moto, made through the real SDK.
pub struct Directory {
    pub client: aws_sdk_identitystore::Client,
    pub store_id: String,
}

impl Directory {
    /// A fresh, empty identity store (moto makes one per id on first use).
    pub fn new(sdk: &SdkConfig) -> Directory {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let store_id = format!("d-{:010x}", (u64::from(std::process::id()) << 16 | u64::from(n)) & 0xff_ffff_ffff);
        Directory { client: aws_sdk_identitystore::Client::new(sdk), store_id }
    }

    pub async fn user(&self, user_name: &str) -> String {
        use aws_sdk_identitystore::types::{Email, Name};
        self.client
            .create_user()
            .identity_store_id(&self.store_id)
            .user_name(user_name)
            .display_name(format!("{user_name} display"))
            .name(Name::builder().given_name(user_name).family_name("Tester").build())
            .emails(Email::builder().value(format!("{user_name}@example.com")).primary(true).build())
            .send()
            .await
            .expect("CreateUser")
            .user_id
    }

    pub async fn group(&self, display_name: &str) -> String {
        self.client
            .create_group()
            .identity_store_id(&self.store_id)
            .display_name(display_name)
            .send()
            .await
            .expect("CreateGroup")
            .group_id
    }

    pub async fn add(&self, group: &str, user: &str) -> String {
        self.client
            .create_group_membership()
            .identity_store_id(&self.store_id)
            .group_id(group)
            .member_id(aws_sdk_identitystore::types::MemberId::UserId(user.to_owned()))
            .send()
            .await
            .expect("CreateGroupMembership")
            .membership_id
    }

    pub async fn remove(&self, membership: &str) {
        self.client
            .delete_group_membership()
            .identity_store_id(&self.store_id)
            .membership_id(membership)
            .send()
            .await
            .expect("DeleteGroupMembership");
    }
}

/// Creates the deployment's profile, bound to `identity_store_id`, through the create-profile
/// handler (as an admin would).
pub async fn create_test_profile(world: &World, identity_store_id: &str) {
    let deps = create_profile::Deps {
        store: kiro::aws::DynamoStore::new(world.dynamo.clone(), &world.table),
        region: "us-east-1".into(),
        supported_regions: vec!["us-east-1".into()],
    };
    let body = serde_json::json!({"name": "Test", "identityStoreId": identity_store_id});
    let resp = create_profile::handle(&deps, http_event("create-profile.json", Some(body))).await.expect("handled");
    assert_eq!(resp.status_code, 201, "creating the test profile");
}

/// A profile for the in-memory store, bound to `d-1234567890`.
pub fn memory_profile() -> kiro::domain::Profile {
    let now = chrono::Utc::now();
    kiro::domain::Profile {
        profile_id: "p".into(),
        name: "p".into(),
        description: String::new(),
        region: "us-east-1".into(),
        identity_store_id: kiro::domain::IdentityStoreId::parse("id", "d-1234567890").expect("fixture id"),
        created_at: now,
        updated_at: now,
        created_by: "test".into(),
        updated_by: "test".into(),
    }
}

/// A deployment on moto with a profile: the assign-tier and sync-group handlers over the real
/// adapters, with their events recorded.
pub struct Stack {
    pub world: World,
    pub dir: Directory,
    pub sink: RecordingSink,
    pub sync: sync_group::Deps<kiro::aws::DynamoStore, kiro::aws::IdentityStoreDirectory, RecordingSink>,
    pub api: assign_tier::Deps<kiro::aws::DynamoStore, kiro::aws::IdentityStoreDirectory, RecordingSink>,
}

/// The in-memory fakes (`kiro_fakes`) behind both handlers, holding [`memory_profile`]: the
/// counterpart of [`Stack`] for property tests, which need thousands of worlds.
pub struct MemoryStack {
    pub directory: std::sync::Arc<kiro_fakes::MemoryDirectory>,
    pub store: std::sync::Arc<kiro_fakes::MemoryStore>,
    pub sink: std::sync::Arc<kiro_fakes::MemorySink>,
    pub sync: sync_group::Deps<MemoryStoreArc, MemoryDirectoryArc, MemorySinkArc>,
    pub api: assign_tier::Deps<MemoryStoreArc, MemoryDirectoryArc, MemorySinkArc>,
}

type MemoryStoreArc = std::sync::Arc<kiro_fakes::MemoryStore>;
type MemoryDirectoryArc = std::sync::Arc<kiro_fakes::MemoryDirectory>;
type MemorySinkArc = std::sync::Arc<kiro_fakes::MemorySink>;

impl MemoryStack {
    /// Empty fakes but for the profile; sync-group's revoke guard at `revoke_limit_percent`.
    pub async fn new(revoke_limit_percent: u8) -> MemoryStack {
        use kiro::ports::ProfileAdmin;
        let directory = MemoryDirectoryArc::default();
        let store = MemoryStoreArc::default();
        let sink = MemorySinkArc::default();
        store.create_profile(&memory_profile()).await.expect("an empty store takes the profile");
        let sync = sync_group::Deps::new(store.clone(), directory.clone(), sink.clone(), revoke_limit_percent);
        let api = assign_tier::Deps::new(store.clone(), directory.clone(), sink.clone());
        MemoryStack { directory, store, sink, sync, api }
    }
}

impl Stack {
    /// The stack with a profile bound to its fresh directory.
    pub async fn new() -> Stack {
        let stack = Stack::without_profile().await;
        create_test_profile(&stack.world, &stack.dir.store_id).await;
        stack
    }

    /// The stack before `POST /profile`.
    pub async fn without_profile() -> Stack {
        let world = World::new().await;
        let dir = Directory::new(&world.sdk);
        let sink = RecordingSink::default();
        let store = || kiro::aws::DynamoStore::new(world.dynamo.clone(), &world.table);
        let identity = || kiro::aws::IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&world.sdk));
        let sync = sync_group::Deps::new(store(), identity(), sink.clone(), 25);
        let api = assign_tier::Deps::new(store(), identity(), sink.clone());
        Stack { world, dir, sink, sync, api }
    }

    /// The table, for reading what the handlers wrote.
    pub fn store(&self) -> kiro::aws::DynamoStore {
        kiro::aws::DynamoStore::new(self.world.dynamo.clone(), &self.world.table)
    }

    /// Calls assign-tier: status and JSON body.
    pub async fn api(&self, method: &str, path_and_query: &str, body: Option<Value>) -> (i64, Value) {
        call_api(&self.api, method, path_and_query, body).await
    }

    /// `POST /subscriptions`; panics unless it answers 201.
    pub async fn subscribe(&self, principal_type: &str, principal_id: &str, tier: &str) {
        let body = serde_json::json!({"principalType": principal_type, "principalId": principal_id, "tier": tier});
        let (status, answer) = self.api("POST", "/subscriptions", Some(body)).await;
        assert_eq!(status, 201, "POST /subscriptions {principal_type} {principal_id}: {answer}");
    }

    /// The user's seat as stored.
    pub async fn seat(&self, user: &str) -> Option<kiro::domain::Seat> {
        use kiro::ports::SeatStore;
        let user = kiro::domain::UserId::parse("userId", user).expect("a user id");
        self.store().get_seats(&[user]).await.expect("reading seats").into_iter().next()
    }
}

/// Delivers an audit event to sync-group as EventBridge does, then each `Audit Requested`
/// continuation the audit puts on the bus (read with `published`, which answers every event
/// published so far), until the audit answers with its report. Answers the report and the
/// number of invocations.
pub async fn audit_to_completion<S, D, E>(
    deps: &sync_group::Deps<S, D, E>,
    first: aws_lambda_events::eventbridge::EventBridgeEvent<Value>,
    published: impl Fn() -> Vec<kiro::ports::OutEvent>,
) -> (Value, u32)
where
    S: kiro::ports::SyncStore,
    D: kiro::ports::Directory + kiro::ports::MemberGroups,
    E: kiro::ports::EventSink,
{
    let mut seen = published().len();
    let mut event = first;
    for n in 1..=1_000 {
        let answer =
            sync_group::handle(deps, LambdaEvent::new(event.clone(), invocation(&unique("req")))).await.unwrap();
        if answer.get("continuing").is_none() {
            assert!(answer.get("auditId").is_some(), "neither a report nor a continuation: {answer}");
            return (answer, n);
        }
        let events = published();
        let next = events[seen..]
            .iter()
            .rev()
            .find(|e| e.detail_type == "Audit Requested")
            .unwrap_or_else(|| panic!("the audit said it continues ({answer}) but requested no continuation"));
        assert_eq!(next.detail["continues"], answer["auditId"], "{answer}");
        seen = events.len();
        event = continuation(&event, next.detail.clone());
    }
    panic!("the audit did not finish in 1,000 invocations");
}

/// The `Audit Requested` envelope EventBridge delivers for a continuation put with `detail`.
pub fn continuation(
    like: &aws_lambda_events::eventbridge::EventBridgeEvent<Value>,
    detail: Value,
) -> aws_lambda_events::eventbridge::EventBridgeEvent<Value> {
    let mut next = like.clone();
    next.source = kiro::domain::signal::OWN_SOURCE.to_owned();
    next.detail_type = kiro::domain::signal::AUDIT_REQUESTED.to_owned();
    next.detail = detail;
    next
}

/// An EventBridge envelope at 2026-11-26T10:00:00Z, as delivered to sync-group.
pub fn eventbridge(
    detail_type: &str,
    source: &str,
    detail: Value,
) -> LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<Value>> {
    let raw = serde_json::json!({
        "version": "0", "id": "e", "detail-type": detail_type, "source": source,
        "account": "111122223333", "time": "2026-11-26T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": detail
    });
    LambdaEvent::new(serde_json::from_value(raw).expect("an EventBridge envelope"), invocation(&unique("req")))
}

/// The `AWS API Call via CloudTrail` event of a call to `event_source`'s `event_name`.
pub fn cloudtrail(
    event_source: &str,
    event_name: &str,
    params: Value,
    response: Value,
) -> LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<Value>> {
    let detail = serde_json::json!({
        "eventSource": event_source, "eventName": event_name, "requestParameters": params, "responseElements": response
    });
    eventbridge("AWS API Call via CloudTrail", "aws.identitystore", detail)
}

/// Adds `user` to `group` in the in-memory directory, or removes them, and answers the event
/// CloudTrail delivers for it: through the console (`AddMemberToGroup`/`RemoveMemberFromGroup`)
/// or the Identity Store API (`CreateGroupMembership`/`DeleteGroupMembership`). The directory is
/// [`memory_profile`]'s.
pub fn toggle_membership(
    directory: &kiro_fakes::MemoryDirectory,
    group: &kiro::domain::GroupId,
    user: &kiro::domain::UserId,
    console: bool,
) -> LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<Value>> {
    use serde_json::json;
    let store = memory_profile().identity_store_id.to_string();
    let (api, sso) = ("identitystore.amazonaws.com", "sso-directory.amazonaws.com");
    let member = json!({"identityStoreId": store, "groupId": group, "member": {"memberId": user}});
    match directory.remove_user_from_group(group, user) {
        Some(_) if console => cloudtrail(sso, "RemoveMemberFromGroup", member, Value::Null),
        Some(m) => {
            cloudtrail(api, "DeleteGroupMembership", json!({"identityStoreId": store, "membershipId": m}), Value::Null)
        }
        None => {
            let m = directory.add_member(group, user);
            if console {
                cloudtrail(sso, "AddMemberToGroup", member, Value::Null)
            } else {
                let params = json!({"identityStoreId": store, "groupId": group, "memberId": {"userId": user}});
                cloudtrail(api, "CreateGroupMembership", params, json!({"membershipId": m}))
            }
        }
    }
}
