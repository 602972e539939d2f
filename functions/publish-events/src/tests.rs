//! The stream's publisher over the in-memory fakes: each seat event exactly once through a batch
//! delivered twice, a partly refused `PutEvents`, a crash between the put and the settle, and
//! records that are not new outboxes.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiro::app::seats::{self, UserChange};
use kiro::domain::{CancelReason, Principal, SeatChange, SourceKey, SourceOp, Tier};
use kiro::ports::{OutEvent, Outbox, Outboxes, StoreError, SubscriptionStore};
use kiro_fakes::fixtures::{now, subscription, user};
use kiro_fakes::{MemorySink, MemoryStore};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::*;

type Fakes = Deps<Arc<MemoryStore>, Arc<MemorySink>>;

/// The deployed mode: writers leave their outboxes to the stream.
fn fakes() -> Fakes {
    Deps { store: Arc::new(MemoryStore::default()), events: Arc::new(MemorySink::streamed()) }
}

/// Subscribes `users` directly at `tier` and applies their seats in one batch of changes: the
/// outboxes that commit wrote (one per transaction).
async fn change(f: &Fakes, users: &[u32], tier: Tier) -> Vec<String> {
    let before: Vec<String> = f.store.outboxes_snapshot().into_iter().map(|o| o.id).collect();
    let mut changes = Vec::new();
    for &n in users {
        let principal = Principal::User(user(n));
        match f.store.get_subscription(&principal).await.unwrap() {
            None => f.store.create_subscription(&subscription(principal, tier)).await.unwrap(),
            Some(old) => {
                let new = kiro::domain::Subscription { tier, ..old.clone() };
                f.store.update_subscription(&new, old.tier).await.unwrap();
            }
        }
        let op = SourceOp::Set(SourceKey::Direct, tier);
        changes.push(UserChange::new(user(n), SeatChange::one(op, CancelReason::Unsubscribed)));
    }
    seats::apply_changes(&f.store, &f.events, changes, now()).await.unwrap();
    f.store.outboxes_snapshot().into_iter().map(|o| o.id).filter(|id| !before.contains(id)).collect()
}

/// The partition the table keeps outbox `id` in.
fn outbox_pk(id: &str) -> String {
    format!("OUTBOX#{:02}", kiro::aws::outbox_shard(id))
}

/// A stream record of the table, as Lambda delivers it.
fn record(event_name: &str, pk: &str, sk: Option<&str>, sequence: u64) -> Value {
    let mut keys = json!({"pk": {"S": pk}});
    if let Some(sk) = sk {
        keys["sk"] = json!({"S": sk});
    }
    json!({
        "eventID": format!("event-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_767_225_600.0,
            "Keys": keys,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 120,
            "StreamViewType": "KEYS_ONLY"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:111122223333:table/kiro/stream/2026-01-01T00:00:00.000"
    })
}

/// The `INSERT` records of these outboxes, numbered from `first`.
fn inserts(ids: &[String], first: u64) -> Vec<Value> {
    ids.iter().enumerate().map(|(i, id)| record("INSERT", &outbox_pk(id), Some(id), first + i as u64)).collect()
}

fn batch(records: &[Value]) -> LambdaEvent<Event> {
    let event = serde_json::from_value(json!({ "Records": records })).expect("a DynamoDB stream event");
    LambdaEvent::new(event, Context::default())
}

fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap_or_default()).collect()
}

/// What a consumer keeps of what it received: one event per (`userId`, `version`), a later copy
/// dropped (it is equal: checked).
fn deduplicated(received: &[OutEvent]) -> Vec<OutEvent> {
    let mut kept: BTreeMap<(String, u64), OutEvent> = BTreeMap::new();
    for e in received {
        let key = (e.detail["userId"].as_str().unwrap().to_owned(), e.detail["version"].as_u64().unwrap());
        if let Some(first) = kept.get(&key) {
            assert_eq!(first, e, "a copy differs from the first event of its version");
        } else {
            kept.insert(key, e.clone());
        }
    }
    kept.into_values().collect()
}

fn sorted(mut events: Vec<OutEvent>) -> Vec<String> {
    events.sort_by_key(|e| e.detail.to_string());
    events.into_iter().map(|e| format!("{} {}", e.detail_type, e.detail)).collect()
}

#[tokio::test]
async fn writers_leave_their_outboxes_to_the_stream() {
    let f = fakes();
    let ids = change(&f, &[1, 2], Tier::Pro).await;
    assert_eq!(ids.len(), 1, "one transaction, one outbox");
    assert!(f.events.events().is_empty(), "nothing published on the request path");
    assert_eq!(f.events.requests(), 0);
    let by_op = f.store.requests_by_operation();
    assert!(!by_op.contains_key("DeleteItem(outbox)"), "{by_op:?}");
    assert_eq!(f.store.outboxes_snapshot()[0].events.len(), 2);
}

#[tokio::test]
async fn a_batch_delivered_twice_publishes_each_event_once() {
    // Given two commits' outboxes, and their records in one batch
    let f = fakes();
    let mut ids = change(&f, &[1, 2, 3], Tier::Pro).await;
    ids.extend(change(&f, &[1], Tier::Power).await);
    let records = inserts(&ids, 100);

    // When the stream delivers the batch, then the same batch again
    let first = handle(&f, batch(&records)).await.unwrap();
    f.store.reset_requests();
    let again = handle(&f, batch(&records)).await.unwrap();

    // Then each committed event went out once, the outboxes are gone, and the second delivery
    // read the outboxes (one request) and found nothing to publish
    assert!(failures(&first).is_empty() && failures(&again).is_empty());
    assert_eq!(sorted(f.events.events()), sorted(f.store.committed_events()));
    assert_eq!(f.events.events().len(), 4);
    assert!(f.store.outboxes_snapshot().is_empty());
    assert_eq!(f.store.requests(), 1, "{:?}", f.store.requests_by_operation());
}

#[tokio::test]
async fn the_publisher_costs_one_read_per_100_outboxes_one_put_per_10_events_and_one_delete_per_outbox() {
    let f = fakes();
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.extend(change(&f, &[n], Tier::Pro).await);
    }
    f.store.reset_requests();
    handle(&f, batch(&inserts(&ids, 1))).await.unwrap();
    let by_op = f.store.requests_by_operation();
    assert_eq!(by_op.get("BatchGetItem(outbox)"), Some(&1), "{by_op:?}");
    assert_eq!(by_op.get("DeleteItem(outbox)"), Some(&12), "{by_op:?}");
    assert_eq!(f.events.requests(), 2, "12 events from 12 outboxes: two PutEvents of up to 10");
}

#[tokio::test]
async fn a_partly_refused_put_is_retried_for_the_refused_events_only() {
    // Given a batch of two outboxes: three grants, then one more
    let f = fakes();
    let mut ids = change(&f, &[1, 2, 3], Tier::Pro).await;
    ids.extend(change(&f, &[4], Tier::Pro).await);
    let records = inserts(&ids, 100);

    // When the bus refuses one entry of the first outbox
    f.events.reject_next_entries(1);
    let response = handle(&f, batch(&records)).await.unwrap();

    // Then the first record is reported, its outbox keeps only the refused event, and the second
    // outbox, whose events went out, is settled
    assert_eq!(failures(&response), ["100"]);
    let left = f.store.outboxes_snapshot();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id.as_str(), left[0].events.len()), (ids[0].as_str(), 1));
    assert_eq!(f.events.events().len(), 3);

    // When Lambda retries from the reported record (the rest of the batch with it)
    let retry = handle(&f, batch(&records)).await.unwrap();

    // Then only the refused event is put, and every committed event went out exactly once
    assert!(failures(&retry).is_empty());
    assert_eq!(f.events.events().len(), 4);
    assert_eq!(sorted(f.events.events()), sorted(f.store.committed_events()));
    assert!(f.store.outboxes_snapshot().is_empty());
}

#[tokio::test]
async fn the_first_record_still_holding_events_is_the_one_reported() {
    // Given three outboxes, the first already published (its record came in an earlier batch)
    let f = fakes();
    let mut ids = change(&f, &[1], Tier::Pro).await;
    ids.extend(change(&f, &[2], Tier::Pro).await);
    ids.extend(change(&f, &[3], Tier::Pro).await);
    let records = inserts(&ids, 7);
    handle(&f, batch(&records[..1])).await.unwrap();

    // When a batch of the three is delivered and the bus refuses the first entry it is given
    f.events.reject_next_entries(1);
    let response = handle(&f, batch(&records)).await.unwrap();

    // Then the second record is reported (entries go out in the batch's order), the third's
    // outbox is settled
    assert_eq!(failures(&response), ["8"], "the first record whose outbox still holds events");
    let left: Vec<String> = f.store.outboxes_snapshot().into_iter().map(|o| o.id).collect();
    assert_eq!(left, [ids[1].clone()]);
}

#[tokio::test]
async fn a_bus_that_is_down_leaves_every_outbox_for_the_retry() {
    let f = fakes();
    let mut ids = change(&f, &[1], Tier::Pro).await;
    ids.extend(change(&f, &[2], Tier::Pro).await);
    let records = inserts(&ids, 40);
    f.events.fail_next(1);
    let response = handle(&f, batch(&records)).await.unwrap();
    assert_eq!(failures(&response), ["40"]);
    assert_eq!(f.store.outboxes_snapshot().len(), 2, "nothing settled");
    let retry = handle(&f, batch(&records)).await.unwrap();
    assert!(failures(&retry).is_empty());
    assert_eq!(sorted(f.events.events()), sorted(f.store.committed_events()));
}

/// The outbox of a publisher that dies after `PutEvents` and before its `DeleteItem`: reads
/// answer, settling fails.
struct DiesBeforeSettling<'a>(&'a MemoryStore);

impl Outboxes for DiesBeforeSettling<'_> {
    async fn get_outboxes(&self, ids: &[String]) -> Result<Vec<Outbox>, StoreError> {
        self.0.get_outboxes(ids).await
    }

    async fn settle_outbox(&self, _id: &str, _remaining: &[OutEvent]) -> Result<(), StoreError> {
        Err(StoreError::Aws { operation: "DeleteItem(outbox)", source: "the function died".into() })
    }
}

#[tokio::test]
async fn a_crash_between_the_put_and_the_settle_puts_the_same_events_again_which_version_deduplicates() {
    // Given a seat granted then upgraded: two outboxes, one event each, versions 1 and 2
    let f = fakes();
    let mut ids = change(&f, &[1, 2], Tier::Pro).await;
    ids.extend(change(&f, &[1], Tier::Power).await);
    let records = inserts(&ids, 10);

    // When the publisher puts the events and dies before settling
    let dying = Deps { store: DiesBeforeSettling(&f.store), events: f.events.clone() };
    let response = handle(&dying, batch(&records)).await.unwrap();
    assert_eq!(failures(&response), ["10"], "the records are retried");
    assert_eq!(f.store.outboxes_snapshot().len(), 2, "the outboxes still hold their events");

    // And Lambda delivers the batch again
    let retry = handle(&f, batch(&records)).await.unwrap();
    assert!(failures(&retry).is_empty());

    // Then every event went out twice, equal to the first copy (version, updatedAt included), and
    // a consumer that keeps one event per (userId, version) has each change exactly once
    let received = f.events.events();
    assert_eq!(received.len(), 2 * f.store.committed_events().len());
    let kept = deduplicated(&received);
    assert_eq!(sorted(kept.clone()), sorted(f.store.committed_events()));
    let versions: Vec<(String, u64)> = kept
        .iter()
        .map(|e| (e.detail["userId"].as_str().unwrap().to_owned(), e.detail["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(versions.len(), 3);
    assert!(versions.contains(&(user(1).to_string(), 2)), "{versions:?}");
    assert!(f.store.outboxes_snapshot().is_empty());
}

#[tokio::test]
async fn records_that_are_not_new_outboxes_are_ignored() {
    let f = fakes();
    let ids = change(&f, &[1], Tier::Pro).await;
    let id = Some(ids[0].as_str());
    let others = [
        record("MODIFY", &outbox_pk(ids[0].as_str()), id, 1),
        record("REMOVE", &outbox_pk(ids[0].as_str()), id, 2),
        record("INSERT", "SEAT#u", Some("SEAT"), 3),
        // Malformed: an outbox insert without a sort key, or with an empty one.
        record("INSERT", "OUTBOX#00", None, 4),
        record("INSERT", "OUTBOX#00", Some(""), 5),
        // The partition of the layout before outboxes were sharded: not an outbox.
        record("INSERT", "OUTBOX", id, 6),
    ];
    f.store.reset_requests();
    let response = handle(&f, batch(&others)).await.unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(f.store.requests(), 0, "nothing read");
    assert!(f.events.events().is_empty());

    // Among them, the new outbox alone is published.
    let mut mixed = others.to_vec();
    mixed.insert(2, record("INSERT", &outbox_pk(ids[0].as_str()), id, 9));
    assert!(failures(&handle(&f, batch(&mixed)).await.unwrap()).is_empty());
    assert_eq!(f.events.events().len(), 1);
}

#[tokio::test]
async fn a_table_that_cannot_be_read_fails_the_batch() {
    let f = fakes();
    let ids = change(&f, &[1], Tier::Pro).await;
    f.store.throttle_next(1);
    let err = handle(&f, batch(&inserts(&ids, 1))).await.unwrap_err();
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "PublishFailed");
    assert!(f.events.events().is_empty());
    assert_eq!(f.store.outboxes_snapshot().len(), 1);
}

#[test]
fn the_sample_records_read_as_the_template_filters_them() {
    let sample = |name: &str| -> Event {
        let path = format!("{}/../../events/dynamodb/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let kinds = |e: &Event| e.records.iter().map(|r| format!("{:?}", classify(r))).collect::<Vec<_>>();
    assert_eq!(
        kinds(&sample("outbox-inserted.json")),
        [r#"NewOutbox("2026-11-26T10:00:00.250Z#6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")"#]
    );
    for other in ["outbox-modified.json", "outbox-removed.json", "seat-inserted.json"] {
        assert_eq!(kinds(&sample(other)), ["Other"], "{other}");
    }
}
