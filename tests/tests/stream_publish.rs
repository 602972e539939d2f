//! Seat events through the table's stream, on moto: the handlers commit through `DynamoStore`
//! with the functions' sink (which leaves seat events to the stream), moto's DynamoDB stream is
//! read as Lambda's event source mapping reads it (`template.yaml`'s filter and batch size), and
//! `publish-events` puts the events on a moto bus, read back from a queue.

use std::collections::BTreeSet;
use std::time::Duration;

use kiro::aws::eventbridge::EventBridgeSink;
use kiro::aws::{DynamoStore, IdentityStoreDirectory};
use kiro::ports::SeatStore;
use kiro_tests::bus::BusTap;
use kiro_tests::counting::RequestCounter;
use kiro_tests::stream::StreamReader;
use kiro_tests::{Directory, World, call_api, create_test_profile};
use serde_json::{Value, json};

/// (detail-type, userId, version) of the seat events among `envelopes`.
fn seat_events(envelopes: &[Value]) -> Vec<(String, String, u64)> {
    envelopes
        .iter()
        .filter(|e| e["detail"]["version"].is_u64())
        .map(|e| {
            let d = &e["detail"];
            (
                e["detail-type"].as_str().unwrap().to_owned(),
                d["userId"].as_str().unwrap().to_owned(),
                d["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_events_go_out_once_from_the_tables_stream_even_when_a_batch_comes_twice() {
    // Given a deployment on moto whose functions leave seat events to the stream
    let world = World::new().await;
    let dir = Directory::new(&world.sdk);
    create_test_profile(&world, &dir.store_id).await;
    let (alice, bob) = (dir.user("alice").await, dir.user("bob").await);
    let team = dir.group("team").await;
    for u in [&alice, &bob] {
        dir.add(&team, u).await;
    }
    let tap = BusTap::new(&world.sdk).await;
    let counter = RequestCounter::default();
    let (dynamo, identity, events) = counter.clients(&world.sdk);
    let api = assign_tier::Deps::new(
        DynamoStore::new(dynamo, &world.table),
        IdentityStoreDirectory::new(identity),
        EventBridgeSink::new(events, &tap.bus).seat_events_from_stream(),
    );
    call_api(&api, "GET", "/seats?limit=1", None).await;

    // When alice is subscribed directly, then the team (alice moves up, bob is granted)
    counter.reset();
    let body = json!({"principalType": "USER", "principalId": alice, "tier": "PRO"});
    assert_eq!(call_api(&api, "POST", "/subscriptions", Some(body)).await.0, 201);
    let direct = counter.snapshot();
    let body = json!({"principalType": "GROUP", "principalId": team, "tier": "PRO_PLUS"});
    assert_eq!(call_api(&api, "POST", "/subscriptions", Some(body)).await.0, 201);

    // Then the request path neither put seat events nor deleted the outbox
    assert!(!direct.contains_key("EventBridge.PutEvents") && !direct.contains_key("DynamoDB.DeleteItem"), "{direct:?}");
    assert!(direct.values().sum::<u64>() <= 5, "{direct:?}");
    let before = tap.received(0, Duration::from_millis(300)).await;
    assert!(seat_events(&before).is_empty(), "no seat event before the stream's publisher ran: {before:?}");

    // When the stream's records reach publish-events
    let publisher = publish_events::Deps {
        store: DynamoStore::new(world.dynamo.clone(), &world.table),
        events: EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&world.sdk), &tap.bus),
    };
    let mut reader = StreamReader::new(&world.sdk, &world.table).await;
    let answers = reader.publish(&publisher, 10).await;
    assert!(!answers.is_empty() && answers.iter().all(|a| a["batchItemFailures"] == json!([])), "{answers:?}");

    // Then each change is on the bus once, and no outbox is left
    let mut published = seat_events(&tap.received(3, Duration::from_secs(10)).await);
    published.sort();
    let mut expected = vec![
        ("Seat Granted".to_owned(), alice.clone(), 1),
        ("Seat Tier Changed".to_owned(), alice.clone(), 2),
        ("Seat Granted".to_owned(), bob.clone(), 1),
    ];
    expected.sort();
    assert_eq!(published, expected);
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    assert_eq!(publisher.store.pending_outboxes(later, 100).await.unwrap(), []);

    // When the stream delivers the same records again (a reader from the oldest record)
    let mut again = StreamReader::new(&world.sdk, &world.table).await;
    let answers = again.publish(&publisher, 10).await;

    // Then nothing more goes out
    assert!(!answers.is_empty() && answers.iter().all(|a| a["batchItemFailures"] == json!([])), "{answers:?}");
    let more = tap.received(0, Duration::from_millis(500)).await;
    assert!(seat_events(&more).is_empty(), "{more:?}");
    let names: BTreeSet<String> =
        more.iter().chain(&before).filter_map(|e| e["detail-type"].as_str().map(str::to_owned)).collect();
    assert!(
        names.iter().all(|n| n == "Seat Names Requested"),
        "only the fan-out's own request went out directly: {names:?}"
    );
}
