//! What the port contract suite (`tests/tests/port_contract.rs`, the same checks against
//! `DynamoStore` on moto) cannot hold the fakes to: the transactions DynamoDB refuses and moto
//! accepts, paging as a property over many worlds, the injected faults, the sink; and `kiro::app::seats`
//! carried through lost races, crashes and rejected events on the fakes.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiro::app::seats::{self, ServiceError, UserChange};
use kiro::domain::{CancelReason, Principal, Seat, SeatChange, SeatStatus, SourceKey, SourceOp, Tier, UserId};
use kiro::ports::{
    Commit, EventSink, OutEvent, SeatFilter, SeatStore, SeatWrite, StoreError, SubscriptionStore, seat_position,
};
use kiro_fakes::fixtures::{event, group, membership, now, outbox, seat, subscription, user, write};
use kiro_fakes::{MemorySink, MemoryStore};
use proptest::prelude::*;

/// Stores new seats for `users`, 45 per commit, each at version 1.
async fn seed_seats(store: &MemoryStore, users: impl IntoIterator<Item = (UserId, Tier, SeatStatus)>) {
    let writes: Vec<SeatWrite> =
        users.into_iter().map(|(u, tier, status)| write(Seat { status, ..seat(&u, tier, 1) }, None)).collect();
    for chunk in writes.chunks(45) {
        store.commit(&Commit { seats: chunk.to_vec(), ..Commit::default() }).await.unwrap();
    }
}

/// Every page of `list_seats`, following the tokens.
async fn all_seat_pages(store: &MemoryStore, filter: SeatFilter, limit: usize) -> Vec<Vec<Seat>> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store.list_seats(filter, limit, token).await.unwrap();
        pages.push(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => return pages,
        }
    }
}

fn user_ids(seats: &[Seat]) -> Vec<UserId> {
    seats.iter().map(|s| s.user_id.clone()).collect()
}

// --- the commit ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_transaction_dynamodb_refuses_is_an_error_not_a_conflict() {
    let store = MemoryStore::default();
    let refused =
        |r: Result<(), StoreError>| matches!(r, Err(StoreError::Refused { operation: "TransactWriteItems", .. }));

    let same_seat_twice = Commit {
        seats: vec![write(seat(&user(1), Tier::Pro, 1), None), write(seat(&user(1), Tier::Power, 1), None)],
        ..Commit::default()
    };
    assert!(refused(store.commit(&same_seat_twice).await));

    let mut add_and_remove = write(seat(&user(1), Tier::Pro, 1), None);
    add_and_remove.grants_added.push((group(1), None));
    add_and_remove.grants_removed.push(group(1));
    assert!(refused(store.commit(&Commit { seats: vec![add_and_remove], ..Commit::default() }).await));

    let too_many =
        Commit { seats: (0..101).map(|i| write(seat(&user(i), Tier::Pro, 1), None)).collect(), ..Commit::default() };
    assert!(refused(store.commit(&too_many).await));

    assert!(store.seats_snapshot().is_empty());
}

// --- listing seats ------------------------------------------------------------------------------

proptest! {
    /// Whatever the seats, filter and page size: following the tokens answers exactly the seats
    /// the filter keeps, each once, in list order (shard by shard, then user id), no page over the
    /// limit.
    #[test]
    fn paging_answers_each_kept_seat_once(
        seats in proptest::collection::btree_map(0u32..2000, (0usize..3, any::<bool>()), 0..260),
        limit in 1usize..30,
        tier in proptest::option::of(0usize..3),
        canceled in proptest::option::of(any::<bool>()),
    ) {
        let status = |c: bool| if c { SeatStatus::Canceled } else { SeatStatus::Active };
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let filter = SeatFilter { tier: tier.map(|t| Tier::ALL[t]), status: canceled.map(status) };
        let pages = rt.block_on(async {
            seed_seats(&store, seats.iter().map(|(n, (t, c))| (user(*n), Tier::ALL[*t], status(*c)))).await;
            all_seat_pages(&store, filter, limit).await
        });
        let mut expected: Vec<UserId> = seats
            .iter()
            .filter(|(_, (t, c))| filter.tier.is_none_or(|f| f == Tier::ALL[*t]) && filter.status.is_none_or(|f| f == status(*c)))
            .map(|(n, _)| user(*n))
            .collect();
        expected.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
        prop_assert!(pages.iter().all(|p| p.len() <= limit));
        prop_assert_eq!(user_ids(&pages.concat()), expected);
    }
}

// --- what only the fakes do: DynamoDB's refusals moto lets through, injected faults ------------

#[tokio::test]
async fn get_seats_answers_the_seats_that_exist_and_refuses_duplicates() {
    let store = MemoryStore::default();
    seed_seats(&store, [(user(3), Tier::Pro, SeatStatus::Active), (user(1), Tier::Power, SeatStatus::Active)]).await;

    let mut found = user_ids(&store.get_seats(&[user(3), user(2), user(1)]).await.unwrap());
    found.sort();
    assert_eq!(found, [user(1), user(3)]);
    let err = store.get_seats(&[user(1), user(1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Refused { operation: "BatchGetItem(seats)", .. }));
}

#[tokio::test]
async fn injected_throttling_fails_whole_calls_and_changes_nothing() {
    let store = Arc::new(MemoryStore::default());
    store.throttle_next(2);
    let commit = Commit { seats: vec![write(seat(&user(1), Tier::Pro, 1), None)], ..Commit::default() };

    let err = store.commit(&commit).await.unwrap_err();
    assert!(matches!(err, StoreError::Throttled { operation: "TransactWriteItems", .. }));
    let err = store.get_seats(&(0..250).map(user).collect::<Vec<_>>()).await.unwrap_err();
    assert!(matches!(err, StoreError::Throttled { operation: "BatchGetItem(seats)", .. }));
    assert!(store.seats_snapshot().is_empty());

    store.commit(&commit).await.unwrap();
    assert_eq!(store.seats_snapshot().len(), 1);
}

#[tokio::test]
async fn injected_conflicts_apply_nothing_and_a_crash_applies_everything() {
    let store = MemoryStore::default();
    let commit = Commit {
        seats: vec![write(seat(&user(1), Tier::Pro, 1), None)],
        outbox: Some(outbox("o", vec![event(1)])),
        ..Commit::default()
    };

    store.fail_next_commits(2);
    for _ in 0..2 {
        assert!(matches!(store.commit(&commit).await, Err(StoreError::Conflict("TransactWriteItems"))));
    }
    assert!(store.seats_snapshot().is_empty() && store.outboxes_snapshot().is_empty());

    store.crash_after_next_commit();
    let err = store.commit(&commit).await.unwrap_err();
    assert!(matches!(err, StoreError::Aws { operation: "crash", .. }));
    assert_eq!(store.seats_snapshot(), [seat(&user(1), Tier::Pro, 1)]);
    assert_eq!(store.outboxes_snapshot(), [outbox("o", vec![event(1)])]);
}

#[tokio::test]
async fn the_sink_records_rejects_and_fails_as_told() {
    let sink = Arc::new(MemorySink::default());
    let events: Vec<OutEvent> = (0..12).map(event).collect();

    sink.fail_next(1);
    assert!(sink.publish(&events).await.is_err());
    assert!(sink.events().is_empty());

    sink.reject_next_entries(3);
    assert_eq!(sink.publish(&events[..2]).await.unwrap(), [0, 1]);
    assert_eq!(sink.publish(&events[2..]).await.unwrap(), [0], "the third rejection falls on the next call");
    assert_eq!(sink.events(), events[3..]);
    assert_eq!(sink.requests(), 1 + 1 + 1, "10 entries per PutEvents");

    assert_eq!(sink.publish(&[]).await.unwrap(), Vec::<usize>::new());
    sink.clear();
    assert!(sink.events().is_empty());
}

// --- kiro::app::seats end to end ---------------------------------------------------------------------

fn direct(u: &UserId, tier: Tier) -> UserChange {
    UserChange::new(u.clone(), SeatChange::one(SourceOp::Set(SourceKey::Direct, tier), CancelReason::Unsubscribed))
}

/// `(detail-type, userId)` of every event, in order.
fn summary(sink: &MemorySink) -> Vec<(String, String)> {
    sink.events().iter().map(|e| (e.detail_type.clone(), e.detail["userId"].as_str().unwrap().to_owned())).collect()
}

async fn subscribe(store: &MemoryStore, principal: Principal, tier: Tier) {
    store.create_subscription(&subscription(principal, tier)).await.unwrap();
}

#[tokio::test]
async fn a_lost_race_is_retried_and_each_grant_applied_and_announced_once() {
    // Given three users subscribed directly, and a commit that will lose a race
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::default());
    let users: Vec<UserId> = (1..=3).map(user).collect();
    for u in &users {
        subscribe(&store, Principal::User(u.clone()), Tier::Pro).await;
    }
    store.fail_next_commits(1);

    // When their seats are granted
    let changes = users.iter().map(|u| direct(u, Tier::Pro)).collect();
    let applied = seats::apply_changes(&store, &sink, changes, now()).await.unwrap();

    // Then each seat is stored once at version 1, with one event each, and no outbox left
    assert_eq!((applied.granted, applied.events()), (3, 3));
    assert_eq!(user_ids(&store.seats_snapshot()), users);
    assert!(store.seats_snapshot().iter().all(|s| s.version == 1 && s.tier == Tier::Pro));
    let granted: Vec<_> = users.iter().map(|u| ("Seat Granted".to_owned(), u.to_string())).collect();
    assert_eq!(summary(&sink), granted);
    assert!(store.outboxes_snapshot().is_empty());

    // And the same request again changes and announces nothing
    let changes = users.iter().map(|u| direct(u, Tier::Pro)).collect();
    let again = seats::apply_changes(&store, &sink, changes, now()).await.unwrap();
    assert_eq!((again.unchanged, again.events()), (3, 0));
    assert_eq!(sink.events().len(), 3);
}

#[tokio::test]
async fn a_crash_after_the_commit_leaves_the_outbox_and_the_flush_publishes_it_once() {
    // Given a user subscribed, and a Lambda that dies right after its commit
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::default());
    subscribe(&store, Principal::User(user(4)), Tier::Power).await;
    store.crash_after_next_commit();

    // When the seat is granted
    let err = seats::apply_changes(&store, &sink, vec![direct(&user(4), Tier::Power)], now()).await.unwrap_err();

    // Then the seat stands, nothing was published, and its event waits in the outbox
    assert!(matches!(err, ServiceError::Store(StoreError::Aws { operation: "crash", .. })), "{err:?}");
    assert_eq!(store.seats_snapshot().len(), 1);
    assert!(sink.events().is_empty());
    assert_eq!(store.outboxes_snapshot().len(), 1);

    // And the flush publishes it exactly once
    assert_eq!(seats::flush_outbox(&store, &sink, chrono::Utc::now()).await.unwrap(), 1);
    assert_eq!(summary(&sink), [("Seat Granted".to_owned(), user(4).to_string())]);
    assert!(store.outboxes_snapshot().is_empty());
    assert_eq!(seats::flush_outbox(&store, &sink, chrono::Utc::now()).await.unwrap(), 0);
    assert_eq!(sink.events().len(), 1);
}

/// Where the table's stream publishes the outboxes (the deployed mode), the audit's sweep is the
/// net under that publisher, not a second one racing it: it takes an outbox only once the grace
/// period since its commit has passed.
#[tokio::test]
async fn the_sweep_leaves_young_outboxes_to_the_stream_and_takes_those_it_left_behind() {
    // Given writers that leave their outboxes to the stream, and a seat granted
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::streamed());
    subscribe(&store, Principal::User(user(4)), Tier::Power).await;
    seats::apply_changes(&store, &sink, vec![direct(&user(4), Tier::Power)], now()).await.unwrap();
    assert!(sink.events().is_empty(), "the request path published nothing");
    assert_eq!(store.outboxes_snapshot().len(), 1);

    // When the audit sweeps now, or just before the grace period ends: the outbox is left alone
    let second = chrono::TimeDelta::seconds(1);
    assert_eq!(seats::flush_outbox(&store, &sink, chrono::Utc::now()).await.unwrap(), 0);
    assert_eq!(seats::flush_outbox(&store, &sink, chrono::Utc::now() + seats::OUTBOX_GRACE - second).await.unwrap(), 0);
    assert!(sink.events().is_empty());
    assert_eq!(store.outboxes_snapshot().len(), 1);

    // When it sweeps once the grace period has passed (the stream never published it)
    let later = chrono::Utc::now() + seats::OUTBOX_GRACE + second;
    assert_eq!(seats::flush_outbox(&store, &sink, later).await.unwrap(), 1);

    // Then its event goes out once, and the outbox is settled
    assert_eq!(summary(&sink), [("Seat Granted".to_owned(), user(4).to_string())]);
    assert!(store.outboxes_snapshot().is_empty());
    assert_eq!(seats::flush_outbox(&store, &sink, later).await.unwrap(), 0);
}

#[tokio::test]
async fn rejected_events_wait_in_the_outbox_for_the_flush() {
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::default());
    for u in [user(1), user(2)] {
        subscribe(&store, Principal::User(u), Tier::Pro).await;
    }
    sink.reject_next_entries(1);

    seats::apply_changes(&store, &sink, vec![direct(&user(1), Tier::Pro), direct(&user(2), Tier::Pro)], now())
        .await
        .unwrap();
    assert_eq!(summary(&sink), [("Seat Granted".to_owned(), user(2).to_string())]);
    let left = store.outboxes_snapshot();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].events.len(), 1);

    assert_eq!(seats::flush_outbox(&store, &sink, chrono::Utc::now()).await.unwrap(), 1);
    let mut announced: Vec<String> = summary(&sink).into_iter().map(|(_, u)| u).collect();
    announced.sort();
    assert_eq!(announced, [user(1).to_string(), user(2).to_string()]);
}

#[tokio::test]
async fn a_group_grant_is_indexed_and_removed_with_its_subscription() {
    // Given a group subscribed at PRO_PLUS and its three members granted, one also direct at PRO
    let store = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::default());
    let team = group(9);
    subscribe(&store, Principal::Group(team.clone()), Tier::ProPlus).await;
    subscribe(&store, Principal::User(user(1)), Tier::Pro).await;
    seats::apply_changes(&store, &sink, vec![direct(&user(1), Tier::Pro)], now()).await.unwrap();
    let changes = (1..=3)
        .map(|i| UserChange {
            memberships: BTreeMap::from([(team.clone(), membership(i))]),
            ..UserChange::new(
                user(i),
                SeatChange::one(SourceOp::Set(SourceKey::Group(team.clone()), Tier::ProPlus), CancelReason::LeftGroup),
            )
        })
        .collect();
    let applied = seats::apply_changes(&store, &sink, changes, now()).await.unwrap();
    assert_eq!((applied.granted, applied.changed), (2, 1));
    assert_eq!(store.count_granted(&team).await.unwrap(), 3);
    assert_eq!(store.membership(&membership(2)).await.unwrap(), Some((team.clone(), user(2))));

    // When the group's subscription is deleted and its grants removed
    store.delete_subscription(&Principal::Group(team.clone())).await.unwrap();
    let removed = seats::change_group_grants(
        &store,
        &sink,
        &team,
        SourceOp::Remove(SourceKey::Group(team.clone())),
        CancelReason::Unsubscribed,
        now(),
    )
    .await
    .unwrap();

    // Then the direct holder falls back to PRO, the others are canceled, and no grant row is left
    assert_eq!((removed.canceled, removed.changed), (2, 1));
    assert!(store.grants_snapshot().is_empty());
    let seats = store.seats_snapshot();
    assert_eq!((seats[0].status, seats[0].tier), (SeatStatus::Pending, Tier::Pro));
    assert!(seats[1..].iter().all(|s| s.status == SeatStatus::Canceled));
    assert!(store.outboxes_snapshot().is_empty());
}
