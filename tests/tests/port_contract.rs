//! The port contract: one set of checks, run against `DynamoStore` on moto and against the
//! in-memory `MemoryStore` that the property tests (convergence, faults, sliced audits) trust.
//! Each check uses the ports only, never a snapshot of either side, so whatever one answers the
//! other must answer too. Where they disagree, the fake is wrong.
//!
//! Every check also compares request counts: the fake counts, by operation, the requests
//! `DynamoStore` would send (the bench's requests per operation come from that count), and the
//! adapter's client here counts what it sent. Kept out: what moto is lenient about (it accepts
//! transactions DynamoDB refuses: those are pinned on the fake alone, in
//! `fakes/tests/memory_store.rs`).

use kiro::domain::audit::AuditMode;
use kiro::domain::audit::AuditReport;
use kiro::domain::{
    IdentityStoreId, Principal, PrincipalType, Profile, ProfilePatch, Seat, SeatStatus, Sources, Subscription, Tier,
    UserId,
};
use kiro::ports::{
    ActivityReads, AuditCheckpoints, AuditStore, CheckpointHead, Commit, GRANTS_PAGE, MembershipMap, ProfileAdmin,
    ProfileStore, SEAT_SHARDS, SeatFilter, SeatNames, SeatStore, SeatWrite, SessionStore, StoreError,
    SubscriptionGuard, SubscriptionStore, seat_position, seat_shard,
};
use kiro_fakes::fixtures::{at, event, group, membership, now, outbox, seat, subscription, user, write};

/// Runs `check` against a fresh `MemoryStore`, then against a fresh table on moto through a
/// `DynamoStore` whose client counts its requests: both must pass, and the fake must count the
/// requests the adapter sent (the bench's requests per operation come from that count).
macro_rules! contract {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test]
            async fn memory_then_dynamo() {
                let memory = kiro_fakes::MemoryStore::default();
                super::$check(&memory).await;
                let world = kiro_tests::World::new().await;
                let counter = kiro_tests::counting::RequestCounter::default();
                let (dynamo, _, _) = counter.clients(&world.sdk);
                super::$check(&kiro::aws::DynamoStore::new(dynamo, &world.table)).await;
                assert_eq!(
                    memory.requests(),
                    counter.total(),
                    "requests counted by the fake ({:?}) against those the adapter sent ({:?})",
                    memory.requests_by_operation(),
                    counter.snapshot()
                );
            }
        }
    )*};
}

contract!(
    a_failing_guard_applies_nothing_of_the_commit,
    a_guard_on_a_deleted_subscription_fails_and_a_matching_one_passes,
    an_absent_condition_holds_only_while_the_subscription_is_gone,
    a_stale_version_anywhere_applies_nothing_of_the_commit,
    seat_writes_are_guarded_by_their_versions,
    seats_page_without_duplicates_or_gaps_and_a_last_full_page_has_a_token,
    a_filtered_page_holds_up_to_limit_seats,
    a_filtered_page_reads_at_most_1000_seats_and_hands_back_a_token,
    seats_of_every_shard_page_as_one_list_and_forged_positions_are_refused,
    subscriptions_list_groups_before_users_and_filter_by_type,
    tokens_not_handed_out_are_refused,
    subscriptions_are_created_once_and_updated_only_from_the_expected_tier,
    a_fan_out_moves_on_until_done_and_a_tier_change_leaves_it_alone,
    reads_answer_what_the_table_keeps,
    the_profile_is_created_once_and_patched,
    grant_rows_follow_commits_and_page,
    a_spread_groups_rows_page_as_one_list_and_follow_commits,
    a_group_is_spread_only_while_it_has_no_rows,
    a_membership_id_finds_its_grant_until_the_row_is_replaced_or_removed,
    get_seats_answers_the_seats_that_exist,
    outboxes_are_pending_oldest_first_until_settled,
    outboxes_are_read_by_id_as_they_are_now,
    user_names_are_set_only_on_seats_that_exist,
    audit_reports_are_listed_newest_first,
    one_resync_of_a_group_at_a_time_and_requests_meanwhile_run_it_once_more,
    the_checkpoint_is_created_once_leased_and_replaced_step_by_step,
    sessions_live_until_ended_and_a_sign_in_is_taken_once,
    activity_recorded_while_seatless_is_read_with_the_seats,
    a_days_first_import_is_answered_once,
    a_subscription_and_seats_are_read_together,
    users_month_activity_answers_those_users_rows_of_that_month,
    a_shards_month_pages_its_users_rows_once,
    a_shards_seats_page_by_user_id,
);

// --- fixtures -----------------------------------------------------------------------------------

fn canceled(user: &UserId, tier: Tier, version: u64) -> Seat {
    Seat {
        sources: Sources::new(),
        status: SeatStatus::Canceled,
        canceled_at: Some(now()),
        ..seat(user, tier, version)
    }
}

fn one(seat: Seat, expected_version: Option<u64>) -> Commit {
    Commit { seats: vec![write(seat, expected_version)], ..Commit::default() }
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

/// Stores `seats` as new seats, 45 per commit.
async fn seed<S: SeatStore>(store: &S, seats: Vec<Seat>) {
    let writes: Vec<SeatWrite> = seats.into_iter().map(|s| write(s, None)).collect();
    for chunk in writes.chunks(45) {
        store.commit(&Commit { seats: chunk.to_vec(), ..Commit::default() }).await.unwrap();
    }
}

/// Every page of `list_seats`, following the tokens.
async fn seat_pages<S: SeatStore>(store: &S, filter: SeatFilter, limit: usize) -> Vec<Vec<UserId>> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store.list_seats(filter, limit, token).await.unwrap();
        pages.push(page.items.iter().map(|s| s.user_id.clone()).collect());
        match page.next_token {
            Some(next) => token = Some(next),
            None => return pages,
        }
    }
}

// --- the commit ---------------------------------------------------------------------------------

async fn a_failing_guard_applies_nothing_of_the_commit<S: SeatStore + SubscriptionStore>(store: &S) {
    // Given a subscription at PRO
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
    let result = store.commit(&commit).await;

    // Then it is a conflict and nothing of it was written
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(store.get_seats(&[user(1), user(2)]).await.unwrap(), []);
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 0);
    assert_eq!(store.membership(&membership(1)).await.unwrap(), None);
    assert_eq!(store.pending_outboxes(at("2100-01-01T00:00:00Z"), 10).await.unwrap(), []);
}

async fn a_guard_on_a_deleted_subscription_fails_and_a_matching_one_passes<S: SeatStore + SubscriptionStore>(
    store: &S,
) {
    let team = Principal::Group(group(1));
    let guarded = |tier| Commit {
        guards: vec![SubscriptionGuard { principal: team.clone(), tier }],
        ..one(seat(&user(1), tier, 1), None)
    };
    assert!(is_conflict(&store.commit(&guarded(Tier::Pro)).await), "no subscription");
    store.create_subscription(&subscription(team.clone(), Tier::Pro)).await.unwrap();
    assert!(is_conflict(&store.commit(&guarded(Tier::Power)).await), "another tier");
    store.commit(&guarded(Tier::Pro)).await.unwrap();
    assert_eq!(store.get_seats(&[user(1)]).await.unwrap().len(), 1);
}

async fn an_absent_condition_holds_only_while_the_subscription_is_gone<S: SeatStore + SubscriptionStore>(store: &S) {
    let alice = Principal::User(user(1));
    let removal = |version| Commit { absent: vec![alice.clone()], ..one(canceled(&user(1), Tier::Pro, version), None) };
    store.create_subscription(&subscription(alice.clone(), Tier::Pro)).await.unwrap();
    assert!(is_conflict(&store.commit(&removal(1)).await), "the subscription exists");
    assert_eq!(store.get_seats(&[user(1)]).await.unwrap(), []);
    store.delete_subscription(&alice).await.unwrap();
    store.commit(&removal(1)).await.unwrap();
    assert_eq!(store.get_seats(&[user(1)]).await.unwrap(), [canceled(&user(1), Tier::Pro, 1)]);
}

async fn a_stale_version_anywhere_applies_nothing_of_the_commit<S: SeatStore>(store: &S) {
    // Given two seats at version 1
    seed(store, vec![seat(&user(1), Tier::Pro, 1), seat(&user(2), Tier::Pro, 1)]).await;

    // When one write holds the right version and the other a stale one
    let commit = Commit {
        seats: vec![write(seat(&user(1), Tier::Power, 2), Some(1)), write(seat(&user(2), Tier::Power, 2), Some(0))],
        outbox: Some(outbox("o", vec![event(1)])),
        ..Commit::default()
    };

    // Then neither seat moved, and no outbox was kept
    assert!(is_conflict(&store.commit(&commit).await));
    let seats = store.get_seats(&[user(1), user(2)]).await.unwrap();
    assert!(seats.len() == 2 && seats.iter().all(|s| s.version == 1 && s.tier == Tier::Pro), "{seats:?}");
    assert_eq!(store.get_outboxes(&["o".to_owned()]).await.unwrap(), []);
}

async fn seat_writes_are_guarded_by_their_versions<S: SeatStore>(store: &S) {
    assert!(is_conflict(&store.commit(&one(seat(&user(1), Tier::Pro, 6), Some(5))).await), "a version on no seat");
    store.commit(&one(seat(&user(1), Tier::Pro, 1), None)).await.unwrap();
    assert!(is_conflict(&store.commit(&one(seat(&user(1), Tier::Pro, 1), None)).await), "must not exist yet");
    store.commit(&one(seat(&user(1), Tier::Power, 2), Some(1))).await.unwrap();
    assert!(is_conflict(&store.commit(&one(seat(&user(1), Tier::ProPlus, 2), Some(1))).await), "lost the race");
    assert_eq!(store.get_seats(&[user(1)]).await.unwrap(), [seat(&user(1), Tier::Power, 2)]);
}

// --- listing seats ------------------------------------------------------------------------------

async fn seats_page_without_duplicates_or_gaps_and_a_last_full_page_has_a_token<S: SeatStore>(store: &S) {
    // Given 60 seats stored in an order that is not their id order
    let mut users: Vec<UserId> = (0..60).map(|i| user((i * 7919) % 1000)).collect();
    seed(store, users.iter().map(|u| seat(u, Tier::Pro, 1)).collect()).await;
    users.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));

    // When the caller follows the tokens 7 at a time: 8 full pages and one of 4, in list order
    let pages = seat_pages(store, SeatFilter::default(), 7).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 7, 7, 7, 7, 7, 4]);
    assert_eq!(pages.concat(), users);

    // A page that ends on the last seat still hands out a token; the page after it is empty.
    let pages = seat_pages(store, SeatFilter::default(), 30).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [30, 30, 0]);
}

async fn a_filtered_page_holds_up_to_limit_seats<S: SeatStore>(store: &S) {
    // Given 150 seats, one in three canceled, tiers in turn
    let tier = |i: u32| Tier::ALL[(i % 3) as usize];
    let seats = (0..150)
        .map(|i| if i % 3 == 0 { canceled(&user(i), tier(i), 1) } else { seat(&user(i), tier(i), 1) })
        .collect();
    seed(store, seats).await;

    // When the canceled ones are listed 20 at a time, every page but the last is full
    let filter = SeatFilter { status: Some(SeatStatus::Canceled), ..SeatFilter::default() };
    let pages = seat_pages(store, filter, 20).await;
    assert!(pages.iter().rev().skip(1).all(|p| p.len() == 20), "{:?}", pages.iter().map(Vec::len).collect::<Vec<_>>());
    let listed = |keep: fn(&u32) -> bool| {
        let mut users: Vec<UserId> = (0..150).filter(keep).map(user).collect();
        users.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
        users
    };
    assert_eq!(pages.concat(), listed(|i| i % 3 == 0));

    // And tier and status together keep exactly their own
    let filter = SeatFilter { tier: Some(Tier::ProPlus), status: Some(SeatStatus::Active) };
    let expected = listed(|i| i % 3 == 1);
    assert_eq!(seat_pages(store, filter, 100).await.concat(), expected);
}

async fn a_filtered_page_reads_at_most_1000_seats_and_hands_back_a_token<S: SeatStore>(store: &S) {
    // Given 2,000 active seats (about 125 a shard) and one canceled seat in the last shard
    let mut seats: Vec<Seat> = (0..2_000).map(|i| seat(&user(i), Tier::Pro, 1)).collect();
    let last = (2_000..).map(user).find(|u| seat_shard(u.as_str()) == SEAT_SHARDS - 1).unwrap();
    seats.push(canceled(&last, Tier::Pro, 1));
    seed(store, seats).await;

    // When the canceled ones are listed: a first page that read at most its 1,000 seats (10
    // Queries) and found none
    let filter = SeatFilter { status: Some(SeatStatus::Canceled), ..SeatFilter::default() };
    let first = store.list_seats(filter, 50, None).await.unwrap();
    assert!(first.items.is_empty() && first.next_token.is_some(), "bounded work: {:?}", first.next_token);
    // Then the rest, from its token: the canceled seat, once
    let mut pages = vec![first.items];
    let mut token = first.next_token;
    while let Some(t) = token.take() {
        let page = store.list_seats(filter, 50, Some(t)).await.unwrap();
        pages.push(page.items);
        token = page.next_token;
        assert!(pages.len() < 10, "each page makes progress");
    }
    assert_eq!(pages.concat().iter().map(|s| s.user_id.clone()).collect::<Vec<_>>(), [last]);
}

async fn seats_of_every_shard_page_as_one_list_and_forged_positions_are_refused<S: SeatStore + SubscriptionStore>(
    store: &S,
) {
    // Given 300 seats, their index rows over every shard
    let mut users: Vec<UserId> = (0..300).map(|i| user((i * 7919) % 5000)).collect();
    let shards: std::collections::BTreeSet<usize> = users.iter().map(|u| kiro::ports::seat_shard(u.as_str())).collect();
    assert_eq!(shards.len(), kiro::ports::SEAT_SHARDS, "the seats cover every shard");
    seed(store, users.iter().map(|u| seat(u, Tier::Pro, 1)).collect()).await;
    users.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));

    // When the caller follows the tokens, whatever the page size: every seat once, in list order
    // (shard by shard, a shard's by user id), every page full but the last
    for limit in [13, 64, 300] {
        let pages = seat_pages(store, SeatFilter::default(), limit).await;
        assert_eq!(pages.concat(), users, "limit {limit}");
        assert!(pages.iter().rev().skip(1).all(|p| p.len() == limit), "limit {limit}");
    }

    // A filter nothing matches reads every shard, ending with no token (never a token that
    // would read the same shards again)
    let pages = seat_pages(store, SeatFilter { tier: Some(Tier::Power), status: None }, 10).await;
    assert!(pages.concat().is_empty() && pages.len() <= 4, "{} pages", pages.len());

    // A token is a user id this list could answer: a shard's partition, a position inside a
    // key, or another list's token is refused
    store.create_subscription(&subscription(Principal::User(user(1)), Tier::Pro)).await.unwrap();
    let other = store.list_subscriptions(None, 1, None).await.unwrap().next_token;
    assert!(other.is_some());
    let forged = ["SEATS#03", "SEATS", &format!("03#{}", users[0]), &format!("{}#x", users[0]), ""];
    let forged = forged.iter().map(|raw| Some(kiro::aws::encode_token(raw))).chain([other]);
    for token in forged.filter(Option::is_some) {
        let answer = store.list_seats(SeatFilter::default(), 10, token.clone()).await;
        assert!(matches!(answer, Err(StoreError::InvalidToken)), "{token:?}: {answer:?}");
    }
}

async fn one_resync_of_a_group_at_a_time_and_requests_meanwhile_run_it_once_more<S: MembershipMap>(store: &S) {
    let (g, now) = (group(1), 1_000_000);
    assert!(store.begin_resync(&g, "a", now + 900_000, now).await.unwrap(), "a free lease is taken");
    assert!(!store.begin_resync(&g, "b", now + 900_000, now).await.unwrap(), "held: b's request is recorded");
    assert!(!store.begin_resync(&g, "c", now + 900_000, now).await.unwrap(), "and c's, as the same one more round");
    assert!(store.end_resync(&g, "a").await.unwrap(), "requests came: a goes round once more");
    assert!(!store.begin_resync(&g, "b", now + 900_000, now).await.unwrap(), "a request during that round");
    // Lambda's retry of a (same request id) takes the lease back; its round starts after every
    // request so far, so it owes none of them another.
    assert!(store.begin_resync(&g, "a", now + 900_000, now).await.unwrap(), "a's retry takes it back");
    assert!(!store.end_resync(&g, "a").await.unwrap(), "none since: released");
    assert!(!store.end_resync(&g, "a").await.unwrap(), "nothing left to release");
    assert!(store.begin_resync(&g, "b", now + 900_000, now).await.unwrap(), "free again");
    // A lease whose invocation died is taken over once it expires.
    assert!(store.begin_resync(&g, "c", now + 2_000_000, now + 900_001).await.unwrap());
    assert!(!store.end_resync(&g, "b").await.unwrap(), "b's lease is no longer b's");
    assert!(!store.end_resync(&g, "c").await.unwrap());
    assert!(store.begin_resync(&group(2), "b", now + 900_000, now).await.unwrap(), "leases are per group");
}

// --- subscriptions ------------------------------------------------------------------------------

async fn subscriptions_list_groups_before_users_and_filter_by_type<S: SubscriptionStore>(store: &S) {
    for p in
        [Principal::User(user(2)), Principal::Group(group(2)), Principal::User(user(1)), Principal::Group(group(1))]
    {
        store.create_subscription(&subscription(p, Tier::Pro)).await.unwrap();
    }
    let principals = |page: &[Subscription]| page.iter().map(|s| s.principal.clone()).collect::<Vec<_>>();

    // All, 3 at a time: groups then users, each by id
    let first = store.list_subscriptions(None, 3, None).await.unwrap();
    let second = store.list_subscriptions(None, 3, first.next_token.clone()).await.unwrap();
    assert_eq!(
        principals(&[first.items, second.items].concat()),
        [Principal::Group(group(1)), Principal::Group(group(2)), Principal::User(user(1)), Principal::User(user(2))]
    );
    assert_eq!(second.next_token, None);

    // A type filter keeps its own, with tokens good only for that type
    let users = store.list_subscriptions(Some(PrincipalType::User), 1, None).await.unwrap();
    assert_eq!(principals(&users.items), [Principal::User(user(1))]);
    let users_token = users.next_token.unwrap();
    let next = store.list_subscriptions(Some(PrincipalType::User), 10, Some(users_token.clone())).await.unwrap();
    assert_eq!(principals(&next.items), [Principal::User(user(2))]);
    let other = store.list_subscriptions(Some(PrincipalType::Group), 10, Some(users_token)).await;
    assert!(matches!(other, Err(StoreError::InvalidToken)), "{other:?}");
}

async fn tokens_not_handed_out_are_refused<S: SeatStore + SubscriptionStore>(store: &S) {
    for bad in ["not base64!", "__8"] {
        let token = || Some(bad.to_owned());
        assert!(matches!(store.list_seats(SeatFilter::default(), 10, token()).await, Err(StoreError::InvalidToken)));
        assert!(matches!(store.list_subscriptions(None, 10, token()).await, Err(StoreError::InvalidToken)));
        assert!(matches!(store.granted_users(&group(1), token()).await, Err(StoreError::InvalidToken)));
    }
    // A seat token is no grants token.
    seed(store, vec![seat(&user(1), Tier::Pro, 1), seat(&user(2), Tier::Pro, 1)]).await;
    let seat_token = store.list_seats(SeatFilter::default(), 1, None).await.unwrap().next_token;
    assert!(seat_token.is_some());
    assert!(matches!(store.granted_users(&group(1), seat_token).await, Err(StoreError::InvalidToken)));
}

async fn subscriptions_are_created_once_and_updated_only_from_the_expected_tier<S: SubscriptionStore>(store: &S) {
    let alice = Principal::User(user(1));
    let sub = subscription(alice.clone(), Tier::Pro);
    store.create_subscription(&sub).await.unwrap();
    assert!(is_conflict(&store.create_subscription(&sub).await));

    let upgraded = Subscription { tier: Tier::Power, ..sub.clone() };
    assert!(is_conflict(&store.update_subscription(&upgraded, Tier::ProPlus).await));
    store.update_subscription(&upgraded, Tier::Pro).await.unwrap();
    assert_eq!(store.get_subscription(&alice).await.unwrap().map(|s| s.tier), Some(Tier::Power));

    assert_eq!(store.delete_subscription(&alice).await.unwrap().map(|s| s.tier), Some(Tier::Power));
    assert_eq!(store.delete_subscription(&alice).await.unwrap(), None);
    assert!(is_conflict(&store.update_subscription(&upgraded, Tier::Power).await), "a deleted one is not updated");
    assert_eq!(store.get_subscription(&alice).await.unwrap(), None);
}

async fn a_fan_out_moves_on_until_done_and_a_tier_change_leaves_it_alone<S: SubscriptionStore>(store: &S) {
    use kiro::domain::{FanOut, FanOutState};
    let engineering = Principal::Group(group(1));
    let sub = subscription(engineering.clone(), Tier::Pro);
    assert_eq!(sub.fan_out, Some(FanOut { state: FanOutState::InProgress, granted: 0 }), "a new group's starts");
    store.create_subscription(&sub).await.unwrap();
    let fan_out = |state, granted| FanOut { state, granted };
    let stored = || async { store.get_subscription(&engineering).await.unwrap().and_then(|s| s.fan_out) };

    store.set_fan_out(&engineering, fan_out(FanOutState::InProgress, 100)).await.unwrap();
    assert_eq!(stored().await, Some(fan_out(FanOutState::InProgress, 100)));
    // A tier change sets the tier, not the fan-out (which moves on its own meanwhile).
    let upgraded = Subscription { tier: Tier::Power, fan_out: None, ..sub.clone() };
    store.update_subscription(&upgraded, Tier::Pro).await.unwrap();
    assert_eq!(stored().await, Some(fan_out(FanOutState::InProgress, 100)));

    store.set_fan_out(&engineering, fan_out(FanOutState::Done, 150)).await.unwrap();
    // DONE is final: a late continuation's progress is dropped, without an error.
    store.set_fan_out(&engineering, fan_out(FanOutState::InProgress, 120)).await.unwrap();
    assert_eq!(stored().await, Some(fan_out(FanOutState::Done, 150)));
    // And a subscription gone takes no progress, without an error.
    store.delete_subscription(&engineering).await.unwrap();
    store.set_fan_out(&engineering, fan_out(FanOutState::InProgress, 1)).await.unwrap();
    assert_eq!(store.get_subscription(&engineering).await.unwrap(), None);
}

async fn reads_answer_what_the_table_keeps<S: SeatStore + SubscriptionStore>(store: &S) {
    // Given a subscription with a seat count, nanoseconds, and a pending tier without its date
    let precise = at("2026-01-01T10:00:00.123456789Z");
    let sub = Subscription {
        seats: 42,
        pending_tier: Some(Tier::Pro),
        created_at: precise,
        updated_at: precise,
        ..subscription(Principal::User(user(1)), Tier::Power)
    };
    store.create_subscription(&sub).await.unwrap();
    store.commit(&one(Seat { updated_at: precise, ..seat(&user(1), Tier::Pro, 1) }, None)).await.unwrap();

    // When they are read back: no stored seat count, milliseconds, no half a pending change
    let read = store.get_subscription(&sub.principal).await.unwrap().unwrap();
    let seat = store.get_seats(&[user(1)]).await.unwrap().remove(0);
    let millis = at("2026-01-01T10:00:00.123Z");
    assert_eq!((read.seats, read.created_at, read.updated_at), (0, millis, millis));
    assert_eq!((read.pending_tier, read.pending_tier_effective_at), (None, None));
    assert_eq!(seat.updated_at, millis);
}

async fn the_profile_is_created_once_and_patched<S: ProfileStore + ProfileAdmin>(store: &S) {
    let patch = ProfilePatch { name: Some("Renamed".into()), description: None };
    assert_eq!(store.update_profile(&patch, "bob", now()).await.unwrap(), None, "no profile yet");
    assert_eq!(store.get_profile().await.unwrap(), None);

    let profile = Profile {
        profile_id: "p-1".into(),
        name: "Kiro".into(),
        description: "all of us".into(),
        region: "us-east-1".into(),
        identity_store_id: IdentityStoreId::parse("i", "d-1234567890").unwrap(),
        created_at: now(),
        updated_at: now(),
        created_by: "alice".into(),
        updated_by: "alice".into(),
    };
    store.create_profile(&profile).await.unwrap();
    assert!(is_conflict(&store.create_profile(&profile).await));

    let later = at("2026-02-01T00:00:00Z");
    let updated = store.update_profile(&patch, "bob", later).await.unwrap().unwrap();
    let expected = Profile { name: "Renamed".into(), updated_at: later, updated_by: "bob".into(), ..profile };
    assert_eq!(updated, expected);
    assert_eq!(store.get_profile().await.unwrap(), Some(expected));
}

// --- the grants index ---------------------------------------------------------------------------

/// Users 0.. get new seats holding group 1 (membership `i` each), 30 more than a page of grants,
/// 49 a commit: how many.
async fn grant_more_than_a_page<S: SeatStore>(store: &S) -> u32 {
    let n = u32::try_from(GRANTS_PAGE).unwrap() + 30;
    let writes: Vec<SeatWrite> = (0..n)
        .map(|i| SeatWrite {
            grants_added: vec![(group(1), Some(membership(i)))],
            ..write(seat(&user(i), Tier::Pro, 1), None)
        })
        .collect();
    for chunk in writes.chunks(49) {
        store.commit(&Commit { seats: chunk.to_vec(), ..Commit::default() }).await.unwrap();
    }
    n
}

async fn grant_rows_follow_commits_and_page<S: SeatStore + SubscriptionStore>(store: &S) {
    // Given more seats holding a group than one page of grants
    let n = grant_more_than_a_page(store).await;

    // Then they are counted, and listed by user id with the membership recorded for each
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), u64::from(n));
    let first = store.granted_users(&group(1), None).await.unwrap();
    assert_eq!(first.items.len(), GRANTS_PAGE);
    let second = store.granted_users(&group(1), first.next_token).await.unwrap();
    assert_eq!(second.next_token, None);
    let expected: Vec<_> = (0..n).map(|i| (user(i), Some(membership(i)))).collect();
    assert_eq!([first.items, second.items].concat(), expected);
    assert_eq!(store.count_granted(&group(2)).await.unwrap(), 0);

    // And the count follows removals in the same transactions (kept, not recounted)
    let removals: Vec<SeatWrite> = (0..10)
        .map(|i| SeatWrite { grants_removed: vec![group(1)], ..write(seat(&user(i), Tier::Pro, 2), Some(1)) })
        .collect();
    store.commit(&Commit { seats: removals, ..Commit::default() }).await.unwrap();
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), u64::from(n - 10));
}

async fn a_spread_groups_rows_page_as_one_list_and_follow_commits<S: SeatStore + SubscriptionStore + MembershipMap>(
    store: &S,
) {
    // Given a group spread before its first row, and more seats holding it than a page of grants
    store.spread_grants(&group(1)).await.unwrap();
    let n = grant_more_than_a_page(store).await;

    // Then they are counted, and listed once each, shard by shard (a shard's by user id), with
    // the membership recorded for each
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), u64::from(n));
    let first = store.granted_users(&group(1), None).await.unwrap();
    assert_eq!(first.items.len(), GRANTS_PAGE);
    let second = store.granted_users(&group(1), first.next_token.clone()).await.unwrap();
    assert_eq!(second.next_token, None);
    let mut expected: Vec<_> = (0..n).map(|i| (user(i), Some(membership(i)))).collect();
    expected.sort_by(|a, b| seat_position(a.0.as_str()).cmp(&seat_position(b.0.as_str())));
    assert_eq!([first.items, second.items].concat(), expected);
    // And a spread page's token is refused by another group's list only as a position it holds
    // not: a forged position inside a shard's key is refused
    let forged = kiro::aws::encode_token(&format!("S/MEMBER#{}#x", user(1)));
    assert!(matches!(store.granted_users(&group(1), Some(forged)).await, Err(StoreError::InvalidToken)));

    // And a membership id finds its spread row, which a refresh keeps current
    assert_eq!(store.membership(&membership(7)).await.unwrap(), Some((group(1), user(7))));
    store.refresh_membership(&group(1), &user(7), &membership(5000)).await.unwrap();
    assert_eq!(store.membership(&membership(5000)).await.unwrap(), Some((group(1), user(7))));
    assert_eq!(store.membership(&membership(7)).await.unwrap(), None);

    // And rows go with their seats' sources, the count with them, even when a commit adds as
    // many rows of the group as it removes
    let mut swap = vec![SeatWrite { grants_removed: vec![group(1)], ..write(seat(&user(0), Tier::Pro, 2), Some(1)) }];
    swap.push(SeatWrite {
        grants_added: vec![(group(1), Some(membership(n)))],
        ..write(seat(&user(n), Tier::Pro, 1), None)
    });
    store.commit(&Commit { seats: swap, ..Commit::default() }).await.unwrap();
    let removals: Vec<SeatWrite> = (1..10)
        .map(|i| SeatWrite { grants_removed: vec![group(1)], ..write(seat(&user(i), Tier::Pro, 2), Some(1)) })
        .collect();
    store.commit(&Commit { seats: removals, ..Commit::default() }).await.unwrap();
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), u64::from(n - 9));
    let listed: Vec<UserId> = all_grants(store, &group(1)).await.into_iter().map(|(u, _)| u).collect();
    let mut kept: Vec<UserId> = (10..=n).map(user).collect();
    kept.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
    assert_eq!(listed, kept);
}

async fn a_group_is_spread_only_while_it_has_no_rows<S: SeatStore + SubscriptionStore>(store: &S) {
    // Given a group with a row
    let mut first = write(seat(&user(1), Tier::Pro, 1), None);
    first.grants_added = vec![(group(1), Some(membership(1)))];
    store.commit(&Commit { seats: vec![first], ..Commit::default() }).await.unwrap();

    // When it is asked to spread, it stays as it is: its next rows are listed with the first
    store.spread_grants(&group(1)).await.unwrap();
    let mut second = write(seat(&user(2), Tier::Pro, 1), None);
    second.grants_added = vec![(group(1), Some(membership(2)))];
    store.commit(&Commit { seats: vec![second], ..Commit::default() }).await.unwrap();
    let users: Vec<UserId> = all_grants(store, &group(1)).await.into_iter().map(|(u, _)| u).collect();
    assert_eq!(users, [user(1), user(2)]);
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 2);

    // Once its rows are gone it may be spread (as a re-subscribed large group is), and it lists
    // what it gets after
    let leave = |u: u32| SeatWrite { grants_removed: vec![group(1)], ..write(seat(&user(u), Tier::Pro, 2), Some(1)) };
    store.commit(&Commit { seats: vec![leave(1), leave(2)], ..Commit::default() }).await.unwrap();
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 0);
    store.spread_grants(&group(1)).await.unwrap();
    let mut third = write(seat(&user(3), Tier::Pro, 1), None);
    third.grants_added = vec![(group(1), Some(membership(3)))];
    store.commit(&Commit { seats: vec![third], ..Commit::default() }).await.unwrap();
    assert_eq!(all_grants(store, &group(1)).await, [(user(3), Some(membership(3)))]);
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 1);
}

/// Every page of `granted_users`, following the tokens.
async fn all_grants<S: SubscriptionStore>(
    store: &S,
    group: &kiro::domain::GroupId,
) -> Vec<(UserId, Option<kiro::domain::MembershipId>)> {
    let (mut rows, mut token) = (Vec::new(), None);
    loop {
        let page = store.granted_users(group, token).await.unwrap();
        rows.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => return rows,
        }
    }
}

async fn a_membership_id_finds_its_grant_until_the_row_is_replaced_or_removed<
    S: SeatStore + SubscriptionStore + MembershipMap,
>(
    store: &S,
) {
    let mut first = write(seat(&user(1), Tier::Pro, 1), None);
    first.grants_added = vec![(group(1), Some(membership(1))), (group(2), None)];
    store.commit(&Commit { seats: vec![first], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(1)).await.unwrap(), Some((group(1), user(1))));
    assert_eq!(store.granted_users(&group(2), None).await.unwrap().items, [(user(1), None)]);

    // The grant learns its membership id later (the audit refreshes it).
    store.refresh_membership(&group(2), &user(1), &membership(7)).await.unwrap();
    assert_eq!(store.membership(&membership(7)).await.unwrap(), Some((group(2), user(1))));
    // A grant that does not exist is not created by a refresh.
    store.refresh_membership(&group(9), &user(1), &membership(9)).await.unwrap();
    assert_eq!(store.membership(&membership(9)).await.unwrap(), None);
    assert_eq!(store.count_granted(&group(9)).await.unwrap(), 0);

    // The user left and rejoined: the row goes, then comes back with the new membership id.
    // (A row exists exactly while its seat holds the group: the seat writer adds a row only for a
    // source the seat did not hold, removes one only for a source it held.)
    let mut left = write(seat(&user(1), Tier::Pro, 2), Some(1));
    left.grants_removed = vec![group(1)];
    store.commit(&Commit { seats: vec![left], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(1)).await.unwrap(), None);
    let mut rejoined = write(seat(&user(1), Tier::Pro, 3), Some(2));
    rejoined.grants_added = vec![(group(1), Some(membership(2)))];
    store.commit(&Commit { seats: vec![rejoined], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(2)).await.unwrap(), Some((group(1), user(1))));
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 1);

    let mut left = write(seat(&user(1), Tier::Pro, 4), Some(3));
    left.grants_removed = vec![group(1)];
    store.commit(&Commit { seats: vec![left], ..Commit::default() }).await.unwrap();
    assert_eq!(store.membership(&membership(2)).await.unwrap(), None);
    assert_eq!(store.count_granted(&group(1)).await.unwrap(), 0);
    assert_eq!(store.count_granted(&group(2)).await.unwrap(), 1);
}

async fn get_seats_answers_the_seats_that_exist<S: SeatStore>(store: &S) {
    seed(store, vec![seat(&user(1), Tier::Pro, 1), seat(&user(3), Tier::Power, 1)]).await;
    let mut found = store.get_seats(&[user(3), user(2), user(1)]).await.unwrap();
    found.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(found, [seat(&user(1), Tier::Pro, 1), seat(&user(3), Tier::Power, 1)]);
    assert_eq!(store.get_seats(&[]).await.unwrap(), []);
}

async fn outboxes_are_pending_oldest_first_until_settled<S: SeatStore>(store: &S) {
    for (n, id) in [(2, "2026-01-01T00:00:02.000Z#b"), (1, "2026-01-01T00:00:01.000Z#a")] {
        let commit = Commit {
            outbox: Some(outbox(id, vec![event(n), event(n + 10)])),
            ..one(seat(&user(n), Tier::Pro, 1), None)
        };
        store.commit(&commit).await.unwrap();
    }
    let later = at("2026-01-01T00:05:00Z");
    let pending = store.pending_outboxes(later, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["2026-01-01T00:00:01.000Z#a", "2026-01-01T00:00:02.000Z#b"]
    );
    assert_eq!(pending[0].events, [event(1), event(11)]);
    assert_eq!(store.pending_outboxes(later, 1).await.unwrap().len(), 1);

    // Only those committed before the bound: the sweep leaves younger ones to the stream
    let ids = |p: Vec<kiro::ports::Outbox>| p.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.pending_outboxes(at("2026-01-01T00:00:02Z"), 10).await.unwrap()),
        ["2026-01-01T00:00:01.000Z#a"]
    );
    assert_eq!(store.pending_outboxes(at("2026-01-01T00:00:01Z"), 10).await.unwrap(), []);

    // Settling keeps what could not be published, then nothing
    store.settle_outbox("2026-01-01T00:00:01.000Z#a", &[event(11)]).await.unwrap();
    assert_eq!(store.pending_outboxes(later, 10).await.unwrap()[0].events, [event(11)]);
    store.settle_outbox("2026-01-01T00:00:01.000Z#a", &[]).await.unwrap();
    store.settle_outbox("2026-01-01T00:00:02.000Z#b", &[]).await.unwrap();
    assert_eq!(store.pending_outboxes(later, 10).await.unwrap(), []);
}

/// The stream's publisher reads the outboxes of a batch by id: those still there, as they are
/// now (after a partial settle, only what is left), and nothing of those settled.
async fn outboxes_are_read_by_id_as_they_are_now<S: SeatStore>(store: &S) {
    let ids: Vec<String> = (1..=3).map(|n| format!("2026-01-01T00:00:0{n}.000Z#{n}")).collect();
    for (n, id) in (1..=3).zip(&ids) {
        let commit = Commit {
            outbox: Some(outbox(id, vec![event(n), event(n + 10)])),
            ..one(seat(&user(n), Tier::Pro, 1), None)
        };
        store.commit(&commit).await.unwrap();
    }
    let read = |want: Vec<String>| async move {
        let mut found = store.get_outboxes(&want).await.unwrap();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    };
    assert_eq!(
        read(ids.clone()).await,
        [
            outbox(&ids[0], vec![event(1), event(11)]),
            outbox(&ids[1], vec![event(2), event(12)]),
            outbox(&ids[2], vec![event(3), event(13)]),
        ]
    );
    store.settle_outbox(&ids[0], &[]).await.unwrap();
    store.settle_outbox(&ids[1], &[event(12)]).await.unwrap();
    let unknown = "2026-01-01T00:00:09.000Z#never".to_owned();
    assert_eq!(read(vec![ids[0].clone(), ids[1].clone(), unknown]).await, [outbox(&ids[1], vec![event(12)])]);
    assert_eq!(store.get_outboxes(&[]).await.unwrap(), []);

    // More than one BatchGetItem's 100 keys
    let many: Vec<String> =
        (0..150).map(|n| format!("2026-01-01T00:01:00.000Z#{n:03}")).chain([ids[2].clone()]).collect();
    assert_eq!(read(many).await, [outbox(&ids[2], vec![event(3), event(13)])]);
}

async fn user_names_are_set_only_on_seats_that_exist<S: SeatStore + SeatNames>(store: &S) {
    store.commit(&one(seat(&user(1), Tier::Pro, 1), None)).await.unwrap();
    store.set_user_name(&user(1), "alice").await.unwrap();
    store.set_user_name(&user(2), "bob").await.unwrap();
    let seats = store.get_seats(&[user(1), user(2)]).await.unwrap();
    assert_eq!(seats.len(), 1, "no seat is created by naming it");
    assert_eq!((seats[0].user_name.as_deref(), seats[0].version), (Some("alice"), 1), "display only: no new version");
}

// --- audits -------------------------------------------------------------------------------------

fn report(id: &str, started: &str) -> AuditReport {
    let started = at(started);
    AuditReport {
        audit_id: id.into(),
        mode: AuditMode::Report,
        granted: 1,
        changed: 0,
        canceled: 0,
        halted: false,
        started_at: started,
        finished_at: started,
        active_seats: 3,
        downgrades_due: 0,
        cancels_withheld: 0,
        names_filled: 0,
        principals_deleted: 0,
        skipped: 0,
        skipped_users: vec![],
        invocations: 1,
        findings: Vec::new(),
        findings_truncated: false,
    }
}

async fn audit_reports_are_listed_newest_first<S: AuditStore>(store: &S) {
    let ids = [
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
        "00000000-0000-0000-0000-000000000003",
    ];
    for (id, t) in ids.iter().zip(["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z"]) {
        store.put_audit(&report(id, t)).await.unwrap();
    }
    assert_eq!(store.get_audit(ids[0]).await.unwrap(), Some(report(ids[0], "2026-01-02T00:00:00Z")));
    assert_eq!(store.get_audit("00000000-0000-0000-0000-000000000009").await.unwrap(), None);
    let first = store.list_audits(2, None).await.unwrap();
    let second = store.list_audits(2, first.next_token).await.unwrap();
    let listed: Vec<String> = [first.items, second.items].concat().into_iter().map(|r| r.audit_id).collect();
    assert_eq!(listed, [ids[1], ids[0], ids[2]]);
    assert_eq!(second.next_token, None);
}

fn head(step: u32, save_id: &str) -> CheckpointHead {
    CheckpointHead {
        audit_id: "a-1".into(),
        step,
        mode: AuditMode::Repair,
        force: false,
        lease_until_ms: 0,
        lease_owner: String::new(),
        saved_at: now(),
        save_id: save_id.into(),
    }
}

async fn the_checkpoint_is_created_once_leased_and_replaced_step_by_step<S: AuditCheckpoints>(store: &S) {
    assert_eq!(store.checkpoint_head().await.unwrap(), None);
    let first = head(1, "s-1");
    store.save_checkpoint(None, &first, "state one ✓").await.unwrap();
    assert!(is_conflict(&store.save_checkpoint(None, &head(1, "s-x"), "other").await), "created once");
    let read = store.checkpoint_head().await.unwrap().unwrap();
    assert_eq!((read.step, read.save_id.as_str()), (1, "s-1"));
    assert_eq!(store.checkpoint_state(&read).await.unwrap(), "state one ✓");

    // One lease at a time; its owner may take it again
    store.claim_checkpoint(&read, "req-1", 2_000, 1_000).await.unwrap();
    assert!(is_conflict(&store.claim_checkpoint(&read, "req-2", 3_000, 1_500).await), "held");
    let held = store.checkpoint_head().await.unwrap().unwrap();
    store.claim_checkpoint(&held, "req-1", 4_000, 1_500).await.unwrap();
    let held = store.checkpoint_head().await.unwrap().unwrap();
    store.claim_checkpoint(&held, "req-2", 9_000, 5_000).await.unwrap();

    // A save names the step it replaces; a stale one loses
    let current = store.checkpoint_head().await.unwrap().unwrap();
    let second = head(2, "s-2");
    store.save_checkpoint(Some(&current), &second, "state two").await.unwrap();
    assert!(is_conflict(&store.save_checkpoint(Some(&current), &head(2, "s-3"), "late").await), "replaced already");
    let read = store.checkpoint_head().await.unwrap().unwrap();
    assert_eq!(store.checkpoint_state(&read).await.unwrap(), "state two");

    // A state over a Query's 1 MB (1.3 MB: five parts, two pages) comes back whole, characters
    // cut at no part's boundary.
    let large = format!("x{}", "✓".repeat(433_333));
    let third = head(3, "s-4");
    store.save_checkpoint(Some(&read), &third, &large).await.unwrap();
    let read = store.checkpoint_head().await.unwrap().unwrap();
    assert!(store.checkpoint_state(&read).await.unwrap() == large, "the 1.3 MB state, whole");

    // Clearing an old head does nothing; clearing the current one ends the run
    store.clear_checkpoint(&first).await.unwrap();
    assert!(store.checkpoint_head().await.unwrap().is_some());
    store.clear_checkpoint(&read).await.unwrap();
    assert_eq!(store.checkpoint_head().await.unwrap(), None);
}

async fn sessions_live_until_ended_and_a_sign_in_is_taken_once<S: SessionStore>(store: &S) {
    use kiro::domain::session::{Role, Session, SignIn};
    let session = Session {
        token_hash: "a".repeat(64),
        user_name: "alice@example.com".into(),
        user_id: user(1),
        role: Role::Admin,
        csrf: "csrf-1".into(),
        created_at: at("2026-12-01T08:00:00.000Z"),
        expires_at: at("2026-12-01T20:00:00.000Z"),
        role_checked_at: at("2026-12-01T08:00:00.000Z"),
    };
    assert_eq!(store.get_session(&session.token_hash).await.unwrap(), None);
    store.put_session(&session).await.unwrap();
    assert_eq!(store.get_session(&session.token_hash).await.unwrap().as_ref(), Some(&session));
    // A re-checked role replaces the session.
    let demoted = Session { role: Role::Viewer, role_checked_at: at("2026-12-01T08:20:00.000Z"), ..session.clone() };
    store.put_session(&demoted).await.unwrap();
    assert_eq!(store.get_session(&session.token_hash).await.unwrap(), Some(demoted));
    store.delete_session(&session.token_hash).await.unwrap();
    assert_eq!(store.get_session(&session.token_hash).await.unwrap(), None);
    store.delete_session(&session.token_hash).await.unwrap(); // ending it again is not an error

    let sign_in = SignIn {
        state: "s-1".into(),
        nonce: "n-1".into(),
        verifier: "v".repeat(64),
        expires_at: at("2026-12-01T08:10:00.000Z"),
    };
    store.put_sign_in(&sign_in).await.unwrap();
    assert!(is_conflict(&store.put_sign_in(&sign_in).await), "a state is used once");
    assert_eq!(store.take_sign_in("s-1").await.unwrap(), Some(sign_in));
    assert_eq!(store.take_sign_in("s-1").await.unwrap(), None, "and taken once");
}

async fn activity_recorded_while_seatless_is_read_with_the_seats<S: SeatStore + kiro::ports::ActivityStore>(store: &S) {
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    seed(store, vec![seat(&user(1), Tier::Pro, 1)]).await;
    store.record_unseated_activity(&[(user(2), day(3)), (user(3), day(4))]).await.unwrap();
    store.record_unseated_activity(&[(user(2), day(5))]).await.unwrap();
    let users: Vec<UserId> = (1..=60).map(user).collect(); // two BatchGetItem of 50 users
    let (seats, mut recorded) = store.get_seats_with_activity(&users).await.unwrap();
    recorded.sort();
    assert_eq!(seats.iter().map(|s| s.user_id.clone()).collect::<Vec<_>>(), [user(1)]);
    assert_eq!(recorded, [(user(2), day(5)), (user(3), day(4))], "a later record replaces the earlier");
    // Once a seat exists, what was recorded while seatless is no longer answered.
    seed(store, vec![seat(&user(3), Tier::Pro, 1)]).await;
    let (_, recorded) = store.get_seats_with_activity(&[user(3)]).await.unwrap();
    assert!(recorded.is_empty());
}

async fn a_days_first_import_is_answered_once<S: kiro::ports::ActivityStore>(store: &S) {
    let day = |d: u32, client: &str| {
        (
            chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap(),
            kiro::domain::activity::ClientType::parse("c", client).unwrap(),
        )
    };
    let first = [day(1, "KIRO_IDE"), day(1, "KIRO_CLI")];
    assert_eq!(store.first_imports_of(&first).await.unwrap(), first);
    let again = [day(1, "KIRO_IDE"), day(2, "KIRO_IDE")];
    assert_eq!(store.first_imports_of(&again).await.unwrap(), [day(2, "KIRO_IDE")], "only the day not seen before");
    assert!(store.first_imports_of(&first).await.unwrap().is_empty());
    assert!(store.first_imports_of(&[]).await.unwrap().is_empty());
}

async fn a_subscription_and_seats_are_read_together<S: SeatStore + SubscriptionStore + kiro::ports::ActivityStore>(
    store: &S,
) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    let team = Principal::Group(group(1));
    store.create_subscription(&subscription(team.clone(), Tier::ProPlus)).await.unwrap();
    seed(store, vec![seat(&user(1), Tier::Pro, 1)]).await;
    store.record_unseated_activity(&[(user(2), day)]).await.unwrap();

    let (sub, (seats, recorded)) = store.get_subscription_and_seats(&team, &[user(1), user(2), user(3)]).await.unwrap();
    assert_eq!(sub.map(|s| (s.principal, s.tier)), Some((team.clone(), Tier::ProPlus)));
    assert_eq!(seats.iter().map(|s| s.user_id.clone()).collect::<Vec<_>>(), [user(1)]);
    assert_eq!(recorded, [(user(2), day)]);

    let (none, (seats, _)) = store.get_subscription_and_seats(&Principal::Group(group(2)), &[user(1)]).await.unwrap();
    assert!(none.is_none() && seats.len() == 1, "no subscription, the seat still read");
    // 1 + 2 × 60 keys: two requests of at most 100 (counted alike on both sides).
    let users: Vec<UserId> = (1..=60).map(user).collect();
    let (sub, (seats, _)) = store.get_subscription_and_seats(&team, &users).await.unwrap();
    assert!(sub.is_some() && seats.len() == 1);
}

async fn users_month_activity_answers_those_users_rows_of_that_month<S: kiro::ports::ActivityStore + ActivityReads>(
    store: &S,
) {
    use kiro::domain::activity::{ActivityKey, Amount, ClientType, Figures};
    let row = |u: u32, date: (i32, u32, u32), client: &str, credits: u64| {
        let key = ActivityKey {
            user_id: user(u),
            date: chrono::NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap(),
            client_type: ClientType::parse("c", client).unwrap(),
        };
        (key, Figures { credits_used: Amount::from_micros(credits), ..Figures::default() })
    };
    let december = [
        row(1, (2026, 12, 1), "KIRO_IDE", 1),
        row(1, (2026, 12, 1), "KIRO_CLI", 2),
        row(1, (2026, 12, 31), "KIRO_IDE", 3),
        row(2, (2026, 12, 15), "KIRO_IDE", 4),
        row(3, (2026, 12, 9), "KIRO_IDE", 5),
    ];
    // The neighbouring months, December of another year, January, and another user's December.
    let elsewhere = [
        row(1, (2026, 11, 30), "KIRO_IDE", 6),
        row(1, (2027, 1, 1), "KIRO_IDE", 7),
        row(2, (2025, 12, 15), "KIRO_IDE", 8),
        row(2, (2026, 1, 12), "KIRO_IDE", 9),
        row(4, (2026, 12, 2), "KIRO_IDE", 10),
    ];
    store.put_activity(&[december.as_slice(), elsewhere.as_slice()].concat()).await.unwrap();
    store.record_unseated_activity(&[(user(2), chrono::NaiveDate::from_ymd_opt(2026, 12, 20).unwrap())]).await.unwrap();

    // Users 2, 1 and 5 (who has no rows): user by user as asked, a user's by date, client type.
    let rows = store.users_month_activity("2026-12", &[user(2), user(1), user(5)]).await.unwrap();
    let expected = [&december[3], &december[1], &december[0], &december[2]];
    assert_eq!(rows.iter().collect::<Vec<_>>(), expected, "only those users' rows of that month");
    let rows = store.users_month_activity("2026-01", &[user(2)]).await.unwrap();
    assert_eq!(rows, [elsewhere[3].clone()], "January only, not November or December");
    assert!(store.users_month_activity("2026-12", &[]).await.unwrap().is_empty(), "no user, no request");
}

/// The month's rows (what `GET /usage` adds up) are kept over the seats' 16 shards, by user:
/// a shard's pages list each of its users' rows of the month once, by user, date and client
/// type, up to 1,000 a page, and nothing of the neighbouring months; a token is its shard's.
async fn a_shards_month_pages_its_users_rows_once<S: kiro::ports::ActivityStore + ActivityReads>(store: &S) {
    use kiro::domain::activity::{ActivityKey, Amount, ClientType, Figures};
    let row = |u: &UserId, date: (i32, u32, u32), client: &str| {
        let key = ActivityKey {
            user_id: u.clone(),
            date: chrono::NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap(),
            client_type: ClientType::parse("c", client).unwrap(),
        };
        (key, Figures { credits_used: Amount::from_micros(7), ..Figures::default() })
    };
    // 550 users of shard 0 (1,100 rows: two pages) and 100 of the others, two rows each in
    // December; some also in November and January.
    let of_zero: Vec<UserId> = (1..).map(user).filter(|u| seat_shard(u.as_str()) == 0).take(550).collect();
    let others: Vec<UserId> = (1..).map(user).filter(|u| seat_shard(u.as_str()) != 0).take(100).collect();
    let users: Vec<&UserId> = of_zero.iter().chain(&others).collect();
    let december: Vec<_> =
        users.iter().flat_map(|u| [row(u, (2026, 12, 1), "KIRO_IDE"), row(u, (2026, 12, 31), "KIRO_CLI")]).collect();
    let elsewhere: Vec<_> = users
        .iter()
        .step_by(20)
        .flat_map(|u| [row(u, (2026, 11, 30), "KIRO_IDE"), row(u, (2027, 1, 1), "KIRO_IDE")])
        .collect();
    for batch in [december.as_slice(), elsewhere.as_slice()].concat().chunks(kiro::ports::ACTIVITY_BATCH) {
        store.put_activity(batch).await.unwrap();
    }

    let mut listed = Vec::new();
    for shard in 0..SEAT_SHARDS {
        let (mut pages, mut token) = (0, None);
        loop {
            let page = store.month_activity("2026-12", shard, token).await.unwrap();
            assert!(page.items.len() <= kiro::ports::SHARD_PAGE, "a page of {} rows", page.items.len());
            assert!(page.items.iter().all(|(k, _)| seat_shard(k.user_id.as_str()) == shard), "its own users");
            let mut order =
                page.items.iter().map(|(k, _)| (k.user_id.clone(), k.date, k.client_type.as_str().to_owned()));
            let mut last = order.next();
            for next in order {
                assert!(last.as_ref() < Some(&next), "by user, date, client type: {last:?} then {next:?}");
                last = Some(next);
            }
            pages += 1;
            listed.extend(page.items);
            match page.next_token {
                Some(next) if shard == 0 && pages == 1 => {
                    // A token is its shard's: another shard refuses it.
                    let elsewhere = store.month_activity("2026-12", 1, Some(next.clone())).await;
                    assert!(matches!(elsewhere, Err(StoreError::InvalidToken)), "{elsewhere:?}");
                    token = Some(next);
                }
                Some(next) => token = Some(next),
                None => break,
            }
        }
        if shard == 0 {
            assert_eq!(pages, 2, "1,100 rows: a page of 1,000, then the rest");
        }
    }
    let mut expected = december.clone();
    let position = |(k, _): &(ActivityKey, Figures)| {
        let (shard, user) = seat_position(k.user_id.as_str());
        (shard, user.to_owned(), k.date, k.client_type.as_str().to_owned())
    };
    expected.sort_by_key(position);
    assert_eq!(listed, expected, "every December row once, nothing of November or January");

    // A token this list did not hand out, or a shard that does not exist, is refused.
    let forged = kiro::aws::encode_token("not-a-row");
    assert!(matches!(store.month_activity("2026-12", 0, Some(forged)).await, Err(StoreError::InvalidToken)));
    assert!(matches!(store.month_activity("2026-12", SEAT_SHARDS, None).await, Err(StoreError::InvalidToken)));
}

/// A shard's seats (what `GET /usage` walks, the shards at once) page by user id, up to 1,000
/// a page, each seat once; a token is its shard's.
async fn a_shards_seats_page_by_user_id<S: SeatStore>(store: &S) {
    let of_five: Vec<UserId> = (1..).map(user).filter(|u| seat_shard(u.as_str()) == 5).take(1_001).collect();
    let others: Vec<UserId> = (1..).map(user).filter(|u| seat_shard(u.as_str()) != 5).take(60).collect();
    seed(store, of_five.iter().chain(&others).map(|u| seat(u, Tier::Pro, 1)).collect()).await;

    let mut listed: Vec<UserId> = Vec::new();
    for shard in 0..SEAT_SHARDS {
        let (mut pages, mut token) = (Vec::new(), None);
        loop {
            let page = store.shard_seats(shard, token).await.unwrap();
            pages.push(page.items.len());
            listed.extend(page.items.into_iter().map(|s| s.user_id));
            match page.next_token {
                Some(next) => {
                    let elsewhere = store.shard_seats((shard + 1) % SEAT_SHARDS, Some(next.clone())).await;
                    assert!(matches!(elsewhere, Err(StoreError::InvalidToken)), "another shard's token: {elsewhere:?}");
                    token = Some(next);
                }
                None => break,
            }
        }
        if shard == 5 {
            assert_eq!(pages, [1_000, 1], "1,001 seats: a page of 1,000, then the last");
        }
    }
    let mut expected: Vec<UserId> = of_five.iter().chain(&others).cloned().collect();
    expected.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
    assert_eq!(listed, expected, "every seat once, shard by shard, by user id");
    assert!(matches!(store.shard_seats(SEAT_SHARDS, None).await, Err(StoreError::InvalidToken)));
}

/// A near-empty table's page of seats reads every shard, 16 Queries, but not one after the
/// other: the first shard read whole tells that each holds few, and the other 15 are queried at
/// once (two round trips instead of 16). A table whose shards fill a page reads one at a time,
/// as the request counts of the paging checks above pin. (DynamoStore alone: the fake sends
/// nothing.)
#[tokio::test]
async fn a_near_empty_tables_page_queries_its_shards_at_once() {
    let world = kiro_tests::World::new().await;
    let counter = kiro_tests::counting::RequestCounter::default();
    let (dynamo, _, _) = counter.clients(&world.sdk);
    let store = kiro::aws::DynamoStore::new(dynamo, &world.table);
    let users: Vec<UserId> = (1..=3).map(user).collect();
    seed(&store, users.iter().map(|u| seat(u, Tier::Pro, 1)).collect()).await;
    counter.reset();

    let page = store.list_seats(SeatFilter::default(), 50, None).await.unwrap();

    assert_eq!((page.items.len(), page.next_token), (3, None));
    assert_eq!(counter.total(), SEAT_SHARDS as u64, "{:?}", counter.snapshot());
    assert_eq!(counter.most_in_flight(), SEAT_SHARDS - 1, "the 15 shards after the first at once");
}

/// A page of group subscriptions (`GET /subscriptions`, the console's Groups, every group of
/// `GET /usage`) reads its groups' grant counters eight at once, not one after the other, and
/// each count lands on its own group. (DynamoStore on moto: the fake has no round trips.)
#[tokio::test]
async fn a_page_of_groups_reads_their_counters_at_once() {
    let world = kiro_tests::World::new().await;
    let counter = kiro_tests::counting::RequestCounter::default();
    let (dynamo, _, _) = counter.clients(&world.sdk);
    let store = kiro::aws::DynamoStore::new(dynamo, &world.table);
    // Group n holds n seats, but group 20 none (no counter: its count is a Query of its rows).
    let held = |n: u32| if n < 20 { n } else { 0 };
    for n in 1..=20u32 {
        store.create_subscription(&subscription(Principal::Group(group(n)), Tier::Pro)).await.unwrap();
        for i in 0..held(n) {
            let mut joined = write(seat(&user(100 * n + i), Tier::Pro, 1), None);
            joined.grants_added = vec![(group(n), Some(membership(100 * n + i)))];
            store.commit(&Commit { seats: vec![joined], ..Commit::default() }).await.unwrap();
        }
    }
    counter.reset();

    let page = kiro::app::subscriptions::list(&store, Some(PrincipalType::Group), 100, None).await.unwrap();

    let counts: Vec<(String, u64)> = page.items.iter().map(|s| (s.principal.id().to_owned(), s.seats)).collect();
    let mut expected: Vec<(String, u64)> =
        (1..=20u32).map(|n| (group(n).as_str().to_owned(), u64::from(held(n)))).collect();
    expected.sort();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "each group its own count");
    let sent = counter.snapshot();
    assert_eq!(counter.total(), 1 + 20 + 1, "the page, a counter a group, group 20's rows: {sent:?}");
    assert_eq!(counter.most_in_flight(), 8, "eight counters at once");
}

/// A group spread by another process after this one read it: the commit that wrote its row where
/// it used to be fails on the counter's condition, reads the counter and is sent again, once,
/// the row where the spread group's list finds it. (DynamoStore alone: the fake has no
/// partitions.)
#[tokio::test]
async fn a_store_that_read_a_group_before_it_was_spread_writes_its_rows_where_they_are_now() {
    use kiro::aws::DynamoStore;
    let world = kiro_tests::World::new().await;
    let counter = kiro_tests::counting::RequestCounter::default();
    let (dynamo, _, _) = counter.clients(&world.sdk);
    let (spreads, writes) = (DynamoStore::new(dynamo.clone(), &world.table), DynamoStore::new(dynamo, &world.table));
    // The writer read the group while it was in one partition
    assert_eq!(writes.count_granted(&group(1)).await.unwrap(), 0);
    spreads.spread_grants(&group(1)).await.unwrap();

    counter.reset();
    let mut joined = write(seat(&user(1), Tier::Pro, 1), None);
    joined.grants_added = vec![(group(1), Some(membership(1)))];
    writes.commit(&Commit { seats: vec![joined], ..Commit::default() }).await.unwrap();
    let sent = counter.snapshot();
    assert_eq!(sent.get("DynamoDB.TransactWriteItems"), Some(&2), "{sent:?}");
    assert_eq!(sent.get("DynamoDB.GetItem"), Some(&1), "{sent:?}");

    assert_eq!(spreads.granted_users(&group(1), None).await.unwrap().items, [(user(1), Some(membership(1)))]);
    let shard = format!("GROUP#{}#{:02}", group(1), seat_shard(user(1).as_str()));
    let row = world
        .dynamo
        .get_item()
        .table_name(&world.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(shard))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("MEMBER#{}", user(1))))
        .send()
        .await
        .unwrap();
    assert!(row.item.is_some(), "the row is in its user's shard");
    // And the writer now knows: its next row costs one transaction
    counter.reset();
    let mut second = write(seat(&user(2), Tier::Pro, 1), None);
    second.grants_added = vec![(group(1), Some(membership(2)))];
    writes.commit(&Commit { seats: vec![second], ..Commit::default() }).await.unwrap();
    assert_eq!(counter.total(), 1, "{:?}", counter.snapshot());
}
