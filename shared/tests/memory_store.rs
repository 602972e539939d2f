//! `MemoryStore` and `MemorySink` behave like the DynamoDB and EventBridge adapters, and carry
//! `kiro::seats` through lost races, crashes and rejected events.
#![cfg(feature = "memory")]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kiro::domain::{
    CancelReason, GroupId, IdentityStoreId, MembershipId, Principal, PrincipalType, Profile, ProfilePatch, Seat,
    SeatChange, SeatStatus, SourceKey, SourceOp, Sources, Subscription, Tier, UserId,
};
use kiro::memory::{MemorySink, MemoryStore};
use kiro::ports::{
    Commit, EventSink, OutEvent, Outbox, ProfileStore, SeatFilter, SeatStore, SeatWrite, StoreError, SubscriptionGuard,
    SubscriptionStore,
};
use kiro::seats::{self, ServiceError, UserChange};
use proptest::prelude::*;
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    kiro::time::parse(s).unwrap()
}

fn now() -> DateTime<Utc> {
    at("2026-01-01T00:00:00Z")
}

fn user(n: u32) -> UserId {
    UserId::parse("u", &format!("94482488-3041-7026-18f3-{n:012x}")).unwrap()
}

fn group(n: u32) -> GroupId {
    GroupId::parse("g", &format!("a4d8e4a8-1071-70f6-1c5e-{n:012x}")).unwrap()
}

fn membership(n: u32) -> MembershipId {
    MembershipId::parse("m", &format!("c0ffee00-1071-70f6-1c5e-{n:012x}")).unwrap()
}

fn seat(user: &UserId, tier: Tier, version: u64) -> Seat {
    Seat {
        user_id: user.clone(),
        user_name: None,
        sources: Sources::from([(SourceKey::Direct, tier)]),
        tier,
        status: SeatStatus::Active,
        granted_at: now(),
        updated_at: now(),
        canceled_at: None,
        version,
    }
}

fn write(seat: Seat, expected_version: Option<u64>) -> SeatWrite {
    SeatWrite { seat, expected_version, grants_added: Vec::new(), grants_removed: Vec::new() }
}

fn event(n: u32) -> OutEvent {
    OutEvent { detail_type: "Seat Granted".into(), detail: json!({ "userId": user(n) }) }
}

fn outbox(id: &str, events: Vec<OutEvent>) -> Outbox {
    Outbox { id: id.into(), events }
}

fn subscription(principal: Principal, tier: Tier) -> Subscription {
    Subscription::new(principal, "someone".into(), tier, "admin", now())
}

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
async fn a_failing_guard_applies_nothing_of_the_commit() {
    // Given a subscription at PRO
    let store = MemoryStore::default();
    let alice = Principal::User(user(1));
    store.create_subscription(&subscription(alice.clone(), Tier::Pro)).await.unwrap();

    // When a commit of two new seats, a grant row and an outbox is guarded by POWER
    let mut first = write(seat(&user(1), Tier::Power, 1), None);
    first.grants_added.push((group(1), Some(membership(1))));
    let commit = Commit {
        seats: vec![first, write(seat(&user(2), Tier::Power, 1), None)],
        guards: vec![SubscriptionGuard { principal: alice, tier: Tier::Power }],
        outbox: Some(outbox("2026-01-01T00:00:00.000Z#1", vec![event(1)])),
        ..Commit::default()
    };
    let err = store.commit(&commit).await.unwrap_err();

    // Then it is a conflict and nothing of it was written
    assert!(matches!(err, StoreError::Conflict("TransactWriteItems")), "{err:?}");
    assert!(store.seats_snapshot().is_empty());
    assert!(store.grants_snapshot().is_empty());
    assert!(store.outboxes_snapshot().is_empty());
    assert_eq!(store.membership(&membership(1)).await.unwrap(), None);
}

#[tokio::test]
async fn a_guard_on_a_deleted_subscription_fails_and_a_matching_one_passes() {
    let store = MemoryStore::default();
    let team = Principal::Group(group(1));
    let guard = |tier| vec![SubscriptionGuard { principal: team.clone(), tier }];
    let commit =
        |tier| Commit { seats: vec![write(seat(&user(1), tier, 1), None)], guards: guard(tier), ..Commit::default() };

    assert!(matches!(store.commit(&commit(Tier::Pro)).await, Err(StoreError::Conflict(_))), "no subscription");
    store.create_subscription(&subscription(team.clone(), Tier::Pro)).await.unwrap();
    store.commit(&commit(Tier::Pro)).await.unwrap();
    assert_eq!(store.seats_snapshot().len(), 1);
}

#[tokio::test]
async fn a_stale_version_anywhere_applies_nothing_of_the_commit() {
    // Given two seats at version 1
    let store = MemoryStore::default();
    seed_seats(&store, [(user(1), Tier::Pro, SeatStatus::Active), (user(2), Tier::Pro, SeatStatus::Active)]).await;

    // When one write holds the right version and the other a stale one
    let commit = Commit {
        seats: vec![write(seat(&user(1), Tier::Power, 2), Some(1)), write(seat(&user(2), Tier::Power, 2), Some(0))],
        outbox: Some(outbox("o", vec![event(1)])),
        ..Commit::default()
    };

    // Then neither seat moved
    assert!(matches!(store.commit(&commit).await, Err(StoreError::Conflict(_))));
    assert!(store.seats_snapshot().iter().all(|s| s.version == 1 && s.tier == Tier::Pro));
    assert!(store.outboxes_snapshot().is_empty());
}

#[tokio::test]
async fn seat_writes_are_guarded_by_their_versions() {
    let store = MemoryStore::default();
    let one = |seat, expected| Commit { seats: vec![write(seat, expected)], ..Commit::default() };
    let conflict = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Conflict(_)));

    assert!(conflict(store.commit(&one(seat(&user(1), Tier::Pro, 6), Some(5))).await), "a version on a missing seat");
    store.commit(&one(seat(&user(1), Tier::Pro, 1), None)).await.unwrap();
    assert!(conflict(store.commit(&one(seat(&user(1), Tier::Pro, 1), None)).await), "must not exist yet");
    store.commit(&one(seat(&user(1), Tier::Power, 2), Some(1))).await.unwrap();
    assert!(conflict(store.commit(&one(seat(&user(1), Tier::ProPlus, 2), Some(1))).await), "lost the race");
    assert_eq!(store.get_seats(&[user(1)]).await.unwrap(), [seat(&user(1), Tier::Power, 2)]);
}

#[tokio::test]
async fn a_transaction_dynamodb_refuses_is_an_error_not_a_conflict() {
    let store = MemoryStore::default();
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Aws { operation: "TransactWriteItems", .. }));

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
    assert_eq!(store.requests(), 3);
}

// --- listing seats ------------------------------------------------------------------------------

#[tokio::test]
async fn two_hundred_fifty_seats_page_by_seven_without_duplicates_or_gaps() {
    // Given 250 seats stored in an order that is not their id order
    let store = MemoryStore::default();
    let mut users: Vec<UserId> = (0..250).map(|i| user((i * 7919) % 1000)).collect();
    seed_seats(&store, users.iter().map(|u| (u.clone(), Tier::Pro, SeatStatus::Active))).await;
    users.sort();
    store.reset_requests();

    // When the caller follows the tokens 7 at a time
    let pages = all_seat_pages(&store, SeatFilter::default(), 7).await;

    // Then it gets 35 full pages and one of 5, each seat once, in id order, one Query per page
    assert_eq!(pages.len(), 36);
    assert!(pages[..35].iter().all(|p| p.len() == 7));
    assert_eq!(pages[35].len(), 5);
    assert_eq!(user_ids(&pages.concat()), users);
    assert_eq!(store.requests(), 36);
}

#[tokio::test]
async fn a_page_ending_on_the_last_seat_still_has_a_token_and_the_next_is_empty() {
    let store = MemoryStore::default();
    seed_seats(&store, (0..14).map(|i| (user(i), Tier::Pro, SeatStatus::Active))).await;

    let pages = all_seat_pages(&store, SeatFilter::default(), 7).await;

    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 0]);
}

#[tokio::test]
async fn a_filtered_page_still_holds_up_to_limit_seats_and_reads_on_for_them() {
    // Given 300 seats, one in three canceled
    let store = MemoryStore::default();
    let status = |i: u32| if i % 3 == 0 { SeatStatus::Canceled } else { SeatStatus::Active };
    seed_seats(&store, (0..300).map(|i| (user(i), Tier::Pro, status(i)))).await;
    store.reset_requests();

    // When the canceled ones are listed 40 at a time
    let filter = SeatFilter { status: Some(SeatStatus::Canceled), ..SeatFilter::default() };
    let first = store.list_seats(filter, 40, None).await.unwrap();

    // Then the page is full although it read 118 seats to fill it: two Queries of 100
    assert_eq!(first.items.len(), 40);
    assert!(first.items.iter().all(|s| s.status == SeatStatus::Canceled));
    assert_eq!(store.requests(), 2);
    let rest = store.list_seats(filter, 100, first.next_token).await.unwrap();
    assert_eq!((rest.items.len(), rest.next_token), (60, None));
}

proptest! {
    /// Whatever the seats, filter and page size: following the tokens answers exactly the seats
    /// the filter keeps, each once, in user id order, no page over the limit.
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
        let expected: Vec<UserId> = seats
            .iter()
            .filter(|(_, (t, c))| filter.tier.is_none_or(|f| f == Tier::ALL[*t]) && filter.status.is_none_or(|f| f == status(*c)))
            .map(|(n, _)| user(*n))
            .collect();
        prop_assert!(pages.iter().all(|p| p.len() <= limit));
        prop_assert_eq!(user_ids(&pages.concat()), expected);
    }
}

// --- subscriptions ------------------------------------------------------------------------------

#[tokio::test]
async fn subscriptions_list_groups_before_users_and_filter_by_type() {
    // Given two users and two groups subscribed
    let store = MemoryStore::default();
    for p in
        [Principal::User(user(2)), Principal::Group(group(2)), Principal::User(user(1)), Principal::Group(group(1))]
    {
        store.create_subscription(&subscription(p, Tier::Pro)).await.unwrap();
    }
    let principals = |page: &[Subscription]| page.iter().map(|s| s.principal.clone()).collect::<Vec<_>>();

    // When all are listed 3 at a time, then groups then users, each by id
    let first = store.list_subscriptions(None, 3, None).await.unwrap();
    let second = store.list_subscriptions(None, 3, first.next_token.clone()).await.unwrap();
    assert_eq!(
        principals(&[first.items, second.items].concat()),
        [Principal::Group(group(1)), Principal::Group(group(2)), Principal::User(user(1)), Principal::User(user(2))]
    );
    assert_eq!(second.next_token, None);

    // And a type filter keeps its own, with tokens only good for that type
    let users = store.list_subscriptions(Some(PrincipalType::User), 1, None).await.unwrap();
    assert_eq!(principals(&users.items), [Principal::User(user(1))]);
    let users_token = users.next_token.unwrap();
    let next = store.list_subscriptions(Some(PrincipalType::User), 10, Some(users_token.clone())).await.unwrap();
    assert_eq!(principals(&next.items), [Principal::User(user(2))]);
    let err = store.list_subscriptions(Some(PrincipalType::Group), 10, Some(users_token)).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidToken));
    let groups = store.list_subscriptions(Some(PrincipalType::Group), 10, None).await.unwrap();
    assert_eq!(principals(&groups.items), [Principal::Group(group(1)), Principal::Group(group(2))]);
}

#[tokio::test]
async fn tokens_not_handed_out_are_refused_without_a_request() {
    let store = MemoryStore::default();
    for bad in ["not base64!", "", "__8"] {
        let token = || Some(bad.to_owned());
        assert!(matches!(store.list_seats(SeatFilter::default(), 10, token()).await, Err(StoreError::InvalidToken)));
        assert!(matches!(store.list_subscriptions(None, 10, token()).await, Err(StoreError::InvalidToken)));
        assert!(matches!(store.granted_users(&group(1), token()).await, Err(StoreError::InvalidToken)));
    }
    // A seat token is no grants token.
    seed_seats(&store, (0..2).map(|i| (user(i), Tier::Pro, SeatStatus::Active))).await;
    let seat_token = store.list_seats(SeatFilter::default(), 1, None).await.unwrap().next_token;
    assert!(matches!(store.granted_users(&group(1), seat_token).await, Err(StoreError::InvalidToken)));
    assert_eq!(store.requests_by_operation().get("Query(gsi1)"), Some(&1));
}

#[tokio::test]
async fn subscriptions_are_created_once_and_updated_only_from_the_expected_tier() {
    let store = MemoryStore::default();
    let alice = Principal::User(user(1));
    let sub = subscription(alice.clone(), Tier::Pro);
    store.create_subscription(&sub).await.unwrap();
    assert!(matches!(store.create_subscription(&sub).await, Err(StoreError::Conflict(_))));

    let upgraded = Subscription { tier: Tier::Power, ..sub.clone() };
    assert!(matches!(store.update_subscription(&upgraded, Tier::ProPlus).await, Err(StoreError::Conflict(_))));
    store.update_subscription(&upgraded, Tier::Pro).await.unwrap();
    assert_eq!(store.get_subscription(&alice).await.unwrap().map(|s| s.tier), Some(Tier::Power));

    assert_eq!(store.delete_subscription(&alice).await.unwrap().map(|s| s.tier), Some(Tier::Power));
    assert_eq!(store.delete_subscription(&alice).await.unwrap(), None);
    let err = store.update_subscription(&upgraded, Tier::Power).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "a deleted subscription is not updated");
    assert!(store.subscriptions_snapshot().is_empty());
}

#[tokio::test]
async fn reads_answer_what_the_table_keeps() {
    // Given a subscription with a seat count, nanoseconds, and a pending tier without its date
    let store = MemoryStore::default();
    let precise = at("2026-01-01T10:00:00.123456789Z");
    let sub = Subscription {
        seats: 42,
        pending_tier: Some(Tier::Pro),
        created_at: precise,
        updated_at: precise,
        ..subscription(Principal::User(user(1)), Tier::Power)
    };
    store.create_subscription(&sub).await.unwrap();
    store
        .commit(&Commit {
            seats: vec![write(Seat { updated_at: precise, ..seat(&user(1), Tier::Pro, 1) }, None)],
            ..Commit::default()
        })
        .await
        .unwrap();

    // When they are read back
    let read = store.get_subscription(&sub.principal).await.unwrap().unwrap();
    let seat = store.get_seats(&[user(1)]).await.unwrap().remove(0);

    // Then as DynamoStore reads them: no stored seat count, milliseconds, no half a pending change
    let millis = at("2026-01-01T10:00:00.123Z");
    assert_eq!((read.seats, read.created_at, read.updated_at), (0, millis, millis));
    assert_eq!((read.pending_tier, read.pending_tier_effective_at), (None, None));
    assert_eq!(seat.updated_at, millis);
}

#[tokio::test]
async fn the_profile_is_created_once_and_patched() {
    let store = MemoryStore::default();
    let patch = ProfilePatch { name: Some("Renamed".into()), description: None };
    assert_eq!(store.update_profile(&patch, "bob", now()).await.unwrap(), None, "no profile yet");

    let profile = Profile {
        profile_id: "p-1".into(),
        name: "Kiro".into(),
        description: "all of us".into(),
        region: "us-east-1".into(),
        identity_store_id: IdentityStoreId::parse("i", "d-1234567890").unwrap(),
        created_at: now(),
        updated_at: now(),
        updated_by: "alice".into(),
    };
    store.create_profile(&profile).await.unwrap();
    assert!(matches!(store.create_profile(&profile).await, Err(StoreError::Conflict("PutItem(profile)"))));

    let later = at("2026-02-01T00:00:00Z");
    let updated = store.update_profile(&patch, "bob", later).await.unwrap().unwrap();
    let expected = Profile { name: "Renamed".into(), updated_at: later, updated_by: "bob".into(), ..profile };
    assert_eq!(updated, expected);
    assert_eq!(store.get_profile().await.unwrap(), Some(expected));
}

// --- the grants index ---------------------------------------------------------------------------

#[tokio::test]
async fn grant_rows_follow_commits_and_page_by_100() {
    // Given 2,500 seats holding a group, stored by commits
    let store = MemoryStore::default();
    let writes: Vec<SeatWrite> = (0..2_500)
        .map(|i| SeatWrite {
            grants_added: vec![(group(1), Some(membership(i)))],
            ..write(seat(&user(i), Tier::Pro, 1), None)
        })
        .collect();
    for chunk in writes.chunks(49) {
        store.commit(&Commit { seats: chunk.to_vec(), ..Commit::default() }).await.unwrap();
    }
    store.reset_requests();

    // When the grants are counted and listed
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 2_500);
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store.granted_users(&group(1), token).await.unwrap();
        pages.push(page.items);
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }

    // Then pages of GRANTS_PAGE by user id, with the membership recorded for each, one request each
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [1_000, 1_000, 500]);
    let expected: Vec<_> = (0..2_500).map(|i| (user(i), Some(membership(i)))).collect();
    assert_eq!(pages.concat(), expected);
    assert_eq!(store.requests(), 4);
    assert_eq!(store.count_granted(&group(2)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_membership_id_finds_its_grant_until_the_row_is_replaced_or_removed() {
    let store = MemoryStore::default();
    let mut first = write(seat(&user(1), Tier::Pro, 1), None);
    first.grants_added = vec![(group(1), Some(membership(1))), (group(2), None)];
    store.commit(&Commit { seats: vec![first], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(1)).await.unwrap(), Some((group(1), user(1))));
    assert_eq!(store.grants_snapshot(), [(group(1), user(1)), (group(2), user(1))]);

    // The user left and rejoined: the row is put again with the new membership id.
    let mut rejoined = write(seat(&user(1), Tier::Pro, 2), Some(1));
    rejoined.grants_added = vec![(group(1), Some(membership(2)))];
    store.commit(&Commit { seats: vec![rejoined], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(1)).await.unwrap(), None);
    assert_eq!(store.membership(&membership(2)).await.unwrap(), Some((group(1), user(1))));

    let mut left = write(seat(&user(1), Tier::Pro, 3), Some(2));
    left.grants_removed = vec![group(1), group(3)];
    store.commit(&Commit { seats: vec![left], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(2)).await.unwrap(), None);
    assert_eq!(store.grants_snapshot(), [(group(2), user(1))]);
}

#[tokio::test]
async fn counting_a_group_over_a_mebibyte_of_rows_takes_more_than_one_query() {
    let store = MemoryStore::default();
    let writes: Vec<SeatWrite> = (0..6000)
        .map(|i| SeatWrite { grants_added: vec![(group(1), None)], ..write(seat(&user(i), Tier::Pro, 1), None) })
        .collect();
    for chunk in writes.chunks(49) {
        store.commit(&Commit { seats: chunk.to_vec(), ..Commit::default() }).await.unwrap();
    }
    store.reset_requests();

    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 6000);
    assert_eq!(store.requests(), 2, "190-byte rows: 5,518 per MiB");
}

// --- instrumentation ----------------------------------------------------------------------------

#[tokio::test]
async fn requests_are_counted_as_dynamo_store_sends_them() {
    let store = MemoryStore::default();
    let users: Vec<UserId> = (0..250).map(user).collect();

    assert!(store.get_seats(&[]).await.unwrap().is_empty());
    store.commit(&Commit::default()).await.unwrap();
    assert_eq!(store.requests(), 0, "nothing to read or write sends nothing");

    store.get_seats(&users).await.unwrap();
    assert_eq!(store.requests(), 3, "one BatchGetItem per 100 users");

    store.reset_requests();
    store
        .commit(&Commit { seats: vec![write(seat(&user(1), Tier::Pro, 1), None)], ..Commit::default() })
        .await
        .unwrap();
    store.get_subscription(&Principal::User(user(1))).await.unwrap();
    store.list_subscriptions(None, 10, None).await.unwrap();
    store.pending_outboxes(25).await.unwrap();
    store.settle_outbox("gone", &[]).await.unwrap();
    assert_eq!(
        store.requests_by_operation(),
        BTreeMap::from([
            ("DeleteItem(outbox)", 1),
            ("GetItem(subscription)", 1),
            ("Query(gsi1)", 1),
            ("Query(outbox)", 1),
            ("TransactWriteItems", 1),
        ])
    );
}

#[tokio::test]
async fn get_seats_answers_the_seats_that_exist_and_refuses_duplicates() {
    let store = MemoryStore::default();
    seed_seats(&store, [(user(3), Tier::Pro, SeatStatus::Active), (user(1), Tier::Power, SeatStatus::Active)]).await;

    let mut found = user_ids(&store.get_seats(&[user(3), user(2), user(1)]).await.unwrap());
    found.sort();
    assert_eq!(found, [user(1), user(3)]);
    let err = store.get_seats(&[user(1), user(1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Aws { operation: "BatchGetItem(seats)", .. }));
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
    assert_eq!(store.requests(), 2, "each fails at its first request");

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
    assert_eq!(store.requests(), 3);
}

#[tokio::test]
async fn outboxes_are_pending_oldest_first_until_settled() {
    let store = MemoryStore::default();
    for (i, id) in ["2026-01-02T00:00:00.000Z#b", "2026-01-01T00:00:00.000Z#a", "2026-01-03T00:00:00.000Z#c"]
        .into_iter()
        .enumerate()
    {
        let i = u32::try_from(i).unwrap();
        let seats = vec![write(seat(&user(i), Tier::Pro, 1), None)];
        store
            .commit(&Commit { seats, outbox: Some(outbox(id, vec![event(i), event(i + 10)])), ..Commit::default() })
            .await
            .unwrap();
    }

    let ids = |o: Vec<Outbox>| o.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.pending_outboxes(2).await.unwrap()),
        ["2026-01-01T00:00:00.000Z#a", "2026-01-02T00:00:00.000Z#b"]
    );
    assert_eq!(store.pending_outboxes(0).await.unwrap().len(), 1, "a limit below 1 is 1, as DynamoStore clamps it");

    store.settle_outbox("2026-01-01T00:00:00.000Z#a", &[event(11)]).await.unwrap();
    store.settle_outbox("2026-01-02T00:00:00.000Z#b", &[]).await.unwrap();
    assert_eq!(
        store.outboxes_snapshot(),
        [
            outbox("2026-01-01T00:00:00.000Z#a", vec![event(11)]),
            outbox("2026-01-03T00:00:00.000Z#c", vec![event(2), event(12)])
        ]
    );
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

// --- kiro::seats end to end ---------------------------------------------------------------------

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
    assert_eq!(seats::flush_outbox(&store, &sink).await.unwrap(), 1);
    assert_eq!(summary(&sink), [("Seat Granted".to_owned(), user(4).to_string())]);
    assert!(store.outboxes_snapshot().is_empty());
    assert_eq!(seats::flush_outbox(&store, &sink).await.unwrap(), 0);
    assert_eq!(sink.events().len(), 1);
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

    assert_eq!(seats::flush_outbox(&store, &sink).await.unwrap(), 1);
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
    assert_eq!((seats[0].status, seats[0].tier), (SeatStatus::Active, Tier::Pro));
    assert!(seats[1..].iter().all(|s| s.status == SeatStatus::Canceled));
    assert!(store.outboxes_snapshot().is_empty());
}
