//! Group fan-out at scale, AWS requests per operation (counted by an SDK interceptor), and
//! events that survive a failed publish exactly once.

use assign_tier::Deps;
use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::{DynamoStore, IdentityStoreDirectory};
use kiro::ports::{EventSink, OutEvent, SinkError};
use kiro_tests::counting::RequestCounter;
use kiro_tests::stream::StreamReader;
use kiro_tests::{Directory, RecordingSink, World, unique};
use serde_json::{Value, json};

async fn call<E>(
    api: &Deps<DynamoStore, IdentityStoreDirectory, E>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (i64, Value)
where
    E: EventSink,
{
    kiro_tests::call_api(api, method, path, body).await
}

async fn with_profile(world: &World, dir: &Directory) {
    kiro_tests::create_test_profile(world, &dir.store_id).await;
}

fn line(label: &str, counter: &RequestCounter) -> String {
    let detail: Vec<String> = counter.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{label}: {} requests ({})", counter.total(), detail.join(", "))
}

/// Prints the requests each operation makes; run with `--nocapture` to read them.
/// Bounds are asserted so a regression that multiplies requests fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_operation_and_a_thousand_member_fan_out() {
    const MEMBERS: usize = 1000;
    let world = World::new().await;
    let dir = Directory::new(&world.sdk);
    with_profile(&world, &dir).await;
    let group = dir.group("everyone").await;
    let mut users = Vec::with_capacity(MEMBERS);
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(20) {
        let made = futures_util::future::join_all(chunk.iter().map(|i| {
            let dir = &dir;
            let group = &group;
            async move {
                let u = dir.user(&format!("member{i}")).await;
                dir.add(group, &u).await;
                u
            }
        }))
        .await;
        users.extend(made);
    }
    let solo = dir.user("solo").await;

    let counter = RequestCounter::default();
    let (dynamo, identity, events) = counter.clients(&world.sdk);
    let bus = unique("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    // As deployed: seat events go out from the table's stream (publish-events, counted apart below).
    let api = Deps::new(
        DynamoStore::new(dynamo.clone(), &world.table),
        IdentityStoreDirectory::new(identity),
        EventBridgeSink::new(events.clone(), &bus).seat_events_from_stream(),
    );
    // Warm the profile cache, as a warm execution environment would have it.
    call(&api, "GET", "/seats?limit=1", None).await;
    let mut report = Vec::new();

    counter.reset();
    let (status, _) = call(
        &api,
        "POST",
        "/subscriptions",
        Some(json!({"principalType": "USER", "principalId": solo, "tier": "PRO"})),
    )
    .await;
    assert_eq!(status, 201);
    report.push(line("direct subscribe", &counter));
    assert!(counter.total() <= 5, "{}", report.last().unwrap());
    let direct = counter.snapshot();
    assert!(!direct.contains_key("EventBridge.PutEvents") && !direct.contains_key("DynamoDB.DeleteItem"), "{direct:?}");

    counter.reset();
    let started = std::time::Instant::now();
    let (status, sub) = call(
        &api,
        "POST",
        "/subscriptions",
        Some(json!({"principalType": "GROUP", "principalId": group, "tier": "PRO_PLUS"})),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["seats"], MEMBERS);
    report.push(format!("{} in {elapsed:?} against moto", line(&format!("group subscribe of {MEMBERS}"), &counter)));
    let per_seat = counter.total() as f64 / MEMBERS as f64;
    assert!(per_seat < 0.1, "{per_seat} requests per seat: {}", report.last().unwrap());

    // publish-events' share: the stream's records of both subscriptions' outboxes, as the
    // template's event source hands them over.
    counter.reset();
    let publisher = publish_events::Deps {
        store: DynamoStore::new(dynamo.clone(), &world.table),
        events: EventBridgeSink::new(events.clone(), &bus),
    };
    let answers = StreamReader::new(&world.sdk, &world.table).await.publish(&publisher, 100).await;
    assert!(answers.iter().all(|a| a["batchItemFailures"] == json!([])), "{answers:?}");
    let events_out = 1 + MEMBERS;
    report.push(format!(
        "{} ({:.3} per event)",
        line(&format!("publish-events, {events_out} events from the stream"), &counter),
        counter.total() as f64 / events_out as f64
    ));
    assert!(counter.total() as f64 / (events_out as f64) < 0.15, "{}", report.last().unwrap());
    for u in [&users[0], &users[499], &users[999]] {
        let (status, seat) = call(&api, "GET", &format!("/seats/{u}"), None).await;
        assert_eq!((status, seat["tier"].as_str()), (200, Some("PRO_PLUS")));
    }

    counter.reset();
    call(&api, "GET", &format!("/seats/{}", users[10]), None).await;
    report.push(line("GET seat (granted through a group, not yet named by the audit)", &counter));
    assert_eq!(counter.total(), 2, "the seat read and one DescribeUser for its name");

    counter.reset();
    let (_, page) = call(&api, "GET", "/seats?limit=50", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    report.push(line("GET /seats page of 50", &counter));
    assert!(counter.total() <= 2);

    for u in &users[..3] {
        let body = json!({"principalType": "USER", "principalId": u, "tier": "POWER"});
        assert_eq!(call(&api, "POST", "/subscriptions", Some(body)).await.0, 201);
    }
    counter.reset();
    let (_, subs) = call(&api, "GET", "/subscriptions", None).await;
    assert_eq!(subs["items"].as_array().unwrap().len(), 5);
    report.push(line("GET /subscriptions page (4 users, 1 group of 1000)", &counter));
    let by_op = counter.snapshot();
    assert_eq!(
        by_op.get("DynamoDB.BatchGetItem"),
        Some(&1),
        "one read for every direct subscription's seat: {by_op:?}"
    );

    for l in &report {
        println!("{l}");
    }
}

/// A sink that is down: every publish fails.
#[derive(Clone, Default)]
struct DownSink;

impl EventSink for DownSink {
    async fn publish(&self, _events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
        Err(SinkError::Aws("EventBridge unavailable".into()))
    }
}

/// Seats change while EventBridge is down: the change stands, its events wait in the outbox, a
/// retried request adds none, and the flush publishes each exactly once.
#[tokio::test]
async fn events_of_a_failed_publish_go_out_exactly_once() {
    let world = World::new().await;
    let dir = Directory::new(&world.sdk);
    with_profile(&world, &dir).await;
    let u = dir.user("outage").await;
    let identity = || IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&world.sdk));
    let store = || DynamoStore::new(world.dynamo.clone(), &world.table);

    let down = Deps::new(store(), identity(), DownSink);
    let body = json!({"principalType": "USER", "principalId": u, "tier": "PRO"});
    let (status, _) = call(&down, "POST", "/subscriptions", Some(body)).await;
    assert_eq!(status, 201, "the seat change does not wait for EventBridge");
    let (status, _) = call(&down, "PUT", &format!("/subscriptions/USER/{u}"), Some(json!({"tier": "POWER"}))).await;
    assert_eq!(status, 200);

    // The client retries the PUT once EventBridge is back: nothing left to change, nothing emitted.
    let sink = RecordingSink::default();
    let up = Deps::new(store(), identity(), sink.clone());
    call(&up, "PUT", &format!("/subscriptions/USER/{u}"), Some(json!({"tier": "POWER"}))).await;
    assert!(sink.events().is_empty());

    let sent = kiro::app::seats::flush_outbox(&store(), &sink, chrono::Utc::now()).await.unwrap();
    assert_eq!(sent, 2);
    assert_eq!(
        sink.summary(),
        vec![("Seat Granted".to_owned(), u.clone()), ("Seat Tier Changed".to_owned(), u.clone())]
    );
    assert_eq!(
        kiro::app::seats::flush_outbox(&store(), &sink, chrono::Utc::now()).await.unwrap(),
        0,
        "flushed once only"
    );
    assert_eq!(sink.events().len(), 2);
}
