//! `GET /usage`, `GET /usage/users` and `GET /activity/imports` (contract: "Usage"), over the
//! in-memory stack; the billing rules themselves are `kiro::domain::usage`'s (its unit tests and
//! model-based property test).

use chrono::{DateTime, NaiveDate, Utc};
use kiro::app::usage;
use kiro::domain::activity::{ActivityKey, Amount, ClientType, Figures};
use kiro::domain::seat::SourceKey;
use kiro::domain::usage::YearMonth;
use kiro::domain::{Seat, SeatStatus, Sources, Tier, UserId};
use kiro::ports::{ActivityStore, Commit, SeatStore, seat_position};
use kiro_fakes::fixtures::{at, user, write};
use kiro_tests::{MemoryStack, call_api};
use serde_json::json;

fn seat(u: &UserId, tier: Tier, status: SeatStatus, granted: DateTime<Utc>) -> Seat {
    Seat {
        user_id: u.clone(),
        user_name: Some(format!("user-{}", &u.as_str()[..4])),
        sources: if status == SeatStatus::Canceled {
            Sources::new()
        } else {
            Sources::from([(SourceKey::Direct, tier)])
        },
        tier,
        status,
        granted_at: granted,
        updated_at: granted,
        canceled_at: None,
        activated_at: (status != SeatStatus::Pending).then_some(granted),
        last_active_date: None,
        bills: Default::default(),
        version: 1,
    }
}

fn credits(u: &UserId, date: NaiveDate, used: u64, overage: u64) -> (ActivityKey, Figures) {
    let key = ActivityKey { user_id: u.clone(), date, client_type: ClientType::parse("c", "KIRO_IDE").unwrap() };
    let figures = Figures {
        credits_used: Amount::from_micros(used * 1_000_000),
        overage_credits_used: Amount::from_micros(overage * 1_000_000),
        total_messages: Amount::from_micros(3_000_000),
        ..Figures::default()
    };
    (key, figures)
}

/// December 2026: alice ACTIVE Pro with 1,200 credits (200 overage), bob PENDING Power, carol
/// ACTIVE Pro until she was canceled on the 10th, dave ACTIVE Pro using 9,000 credits.
async fn december() -> (MemoryStack, DateTime<Utc>) {
    let stack = MemoryStack::new(25).await;
    let now = at("2026-12-20T12:00:00Z");
    let granted = at("2026-11-15T09:00:00Z");
    let (alice, bob, carol, dave) = (user(1), user(2), user(3), user(4));
    let mut c = seat(&carol, Tier::Pro, SeatStatus::Canceled, granted);
    c.canceled_at = Some(at("2026-12-10T00:00:00Z"));
    let seats = vec![
        seat(&alice, Tier::Pro, SeatStatus::Active, granted),
        seat(&bob, Tier::Power, SeatStatus::Pending, granted),
        c,
        seat(&dave, Tier::Pro, SeatStatus::Active, granted),
    ];
    for s in seats {
        stack.store.commit(&Commit { seats: vec![write(s, None)], ..Commit::default() }).await.unwrap();
    }
    let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    stack.store.put_activity(&[credits(&alice, day, 1_200, 200), credits(&dave, day, 9_000, 8_000)]).await.unwrap();
    (stack, now)
}

#[tokio::test]
async fn the_months_estimate_bills_active_and_canceled_seats_and_not_pending_ones() {
    let (stack, now) = december().await;
    let month: YearMonth = "2026-12".parse().unwrap();
    let u = usage::summary(&*stack.store, month, &stack.api.pricing, now).await.unwrap();
    let body = serde_json::to_value(&u).unwrap();
    let pro = &body["tiers"]["PRO"];
    // Held now: alice and dave (Pro, active), bob (Power, pending); carol is canceled.
    assert_eq!((pro["seats"].as_u64(), pro["active"].as_u64(), pro["pending"].as_u64()), (Some(2), Some(2), Some(0)));
    assert_eq!(body["tiers"]["POWER"]["pending"], 1);
    assert_eq!(body["tiers"]["POWER"]["estimatedCostUsd"], 0.0, "PENDING costs nothing");
    // alice 20 + 200 × 0.04 = 28; carol 20 (a cancel bills the month); dave 20 + 8,000 × 0.04 = 340.
    assert_eq!(pro["estimatedCostUsd"], 388.0, "{body}");
    assert_eq!(body["total"]["estimatedCostUsd"], 388.0);
    assert_eq!(body["total"]["creditsUsed"], 10_200.0);
    assert_eq!(pro["creditsIncluded"], 2_000);
    assert!(body["tiers"]["PRO_PLUS"].is_object(), "every tier present, zeros included");
}

#[tokio::test]
async fn the_users_list_suggests_a_tier_and_names_the_seats_to_reclaim() {
    let (stack, now) = december().await;
    let month: YearMonth = "2026-12".parse().unwrap();
    let filter = usage::UsersFilter::default();
    let page = usage::users(&*stack.store, month, filter, &stack.api.pricing, 50, None, now).await.unwrap();
    let by_id = |n: u32| page.items.iter().find(|u| u.user_id == user(n)).unwrap();
    assert_eq!(page.items.len(), 4, "everyone who held a seat this month, carol included");
    assert_eq!(by_id(4).suggested_tier, Some(Tier::Power), "9,000 credits: Power (200) beats Pro (340)");
    assert_eq!(by_id(1).suggested_tier, None, "1,200 credits: Pro (28) is already the cheapest");
    assert_eq!(by_id(1).credits_used, 1_200.0);

    // Reclaim: held now, idle more than 30 days (never used since a grant 35 days ago).
    let idle = usage::UsersFilter { inactive_days: Some(30), ..Default::default() };
    let page = usage::users(&*stack.store, month, idle, &stack.api.pricing, 50, None, now).await.unwrap();
    let ids: Vec<&UserId> = page.items.iter().map(|u| &u.user_id).collect();
    let mut idle_ones = [user(1), user(2), user(4)];
    idle_ones.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
    assert_eq!(ids, idle_ones.iter().collect::<Vec<_>>(), "carol is canceled: nothing to reclaim (in list order)");
    let none_idle = usage::UsersFilter { inactive_days: Some(60), ..Default::default() };
    assert!(
        usage::users(&*stack.store, month, none_idle, &stack.api.pricing, 50, None, now)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Pages of one, without gaps or repeats.
    let mut token = None;
    let mut seen = vec![];
    loop {
        let page = usage::users(&*stack.store, month, filter, &stack.api.pricing, 1, token, now).await.unwrap();
        seen.extend(page.items.into_iter().map(|u| u.user_id));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut everyone = [user(1), user(2), user(3), user(4)];
    everyone.sort_by(|a, b| seat_position(a.as_str()).cmp(&seat_position(b.as_str())));
    assert_eq!(seen, everyone);
}

#[tokio::test]
async fn the_routes_answer_and_a_bad_month_is_a_bad_request() {
    let (stack, _) = december().await;
    let (status, body) = call_api(&stack.api, "GET", "/usage?month=2026-12", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["month"], "2026-12");
    assert!(body["groups"].is_array());
    for bad in ["/usage?month=2026-13", "/usage?month=December", "/usage/users?month=26-12"] {
        let (status, body) = call_api(&stack.api, "GET", bad, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("BadRequest")), "{bad}: {body}");
    }
    let (status, body) = call_api(&stack.api, "GET", "/usage/users?month=2026-12&status=PENDING", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = call_api(&stack.api, "GET", "/activity/imports", None).await;
    assert_eq!((status, body), (200, json!({"items": []})));
}

/// Each seat's history, through the one transition function, stored as the stack stores it.
struct History {
    seats: std::collections::HashMap<UserId, Seat>,
}

impl History {
    fn change(&mut self, u: &UserId, op: kiro::domain::seat::SourceOp, when: &str) {
        use kiro::domain::seat::{CancelReason, SeatChange, transition};
        let change = SeatChange::one(op, CancelReason::LeftGroup);
        let t = transition(self.seats.get(u), u, &change, at(when)).expect("a change");
        self.seats.insert(u.clone(), t.seat);
    }

    fn used(&mut self, u: &UserId, day: &str, when: &str) {
        let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let t = kiro::domain::seat::record_activity(&self.seats[u], date, at(when)).expect("a change");
        self.seats.insert(u.clone(), t.seat);
    }
}

#[tokio::test]
async fn a_past_month_and_a_mid_month_membership_downgrade_are_billed_as_held() {
    use kiro::domain::seat::SourceOp::{Remove, Set};
    let (alice, bob, carol) = (user(1), user(2), user(3));
    let power = SourceKey::Group(kiro_fakes::fixtures::group(9));
    let mut h = History { seats: Default::default() };
    // alice: Pro in October, active; Power through a group from 3 November, which she leaves on
    // the 20th (her seat falls back to Pro at once).
    h.change(&alice, Set(SourceKey::Direct, Tier::Pro), "2026-10-05T09:00:00Z");
    h.used(&alice, "2026-10-10", "2026-10-11T06:00:00Z");
    h.change(&alice, Set(power.clone(), Tier::Power), "2026-11-03T09:00:00Z");
    h.change(&alice, Remove(power.clone()), "2026-11-20T09:00:00Z");
    // carol: Power from 1 October, active the next day, canceled on 10 November.
    h.change(&carol, Set(SourceKey::Direct, Tier::Power), "2026-10-01T09:00:00Z");
    h.used(&carol, "2026-10-02", "2026-10-03T06:00:00Z");
    h.change(&carol, Remove(SourceKey::Direct), "2026-11-10T09:00:00Z");
    // bob: Pro from 5 November, never used.
    h.change(&bob, Set(SourceKey::Direct, Tier::Pro), "2026-11-05T09:00:00Z");
    let stack = MemoryStack::new(25).await;
    for s in h.seats.into_values() {
        stack.store.commit(&Commit { seats: vec![write(s, None)], ..Commit::default() }).await.unwrap();
    }
    let now = at("2026-12-20T12:00:00Z");
    let store = &*stack.store;
    let pricing = &stack.api.pricing;
    let month = |m: &str| {
        let m: YearMonth = m.parse().unwrap();
        async move { serde_json::to_value(usage::summary(store, m, pricing, now).await.unwrap()).unwrap() }
    };
    let row = |body: &serde_json::Value, tier: &str| {
        let r = &body["tiers"][tier];
        (r["seats"].as_u64().unwrap(), r["pending"].as_u64().unwrap(), r["estimatedCostUsd"].as_f64().unwrap())
    };

    // October: alice Pro (20), carol Power (200), both held at its end.
    let oct = month("2026-10").await;
    assert_eq!((row(&oct, "PRO"), row(&oct, "POWER")), ((1, 0, 20.0), (1, 0, 200.0)), "{oct}");
    // November: alice billed Power (the month's highest, though she ended it on Pro), carol Power
    // (a cancel bills the month), bob nothing (PENDING); at its end alice and bob hold Pro.
    let nov = month("2026-11").await;
    assert_eq!((row(&nov, "PRO"), row(&nov, "POWER")), ((2, 1, 0.0), (0, 0, 400.0)), "{nov}");
    assert_eq!(nov["total"]["estimatedCostUsd"], 400.0);
    // December: alice Pro all month (20); carol is gone; bob still PENDING.
    let dec = month("2026-12").await;
    assert_eq!((row(&dec, "PRO"), row(&dec, "POWER")), ((2, 1, 20.0), (0, 0, 0.0)), "{dec}");
}

/// 2,000 seats in December 2026, tiers in turn. Every 7th was canceled in October (held nothing
/// this month: not listed); every 4th was used on 18 December (not idle), with 5 credits per
/// user number that month and a November row that must not count; the rest were granted on
/// 15 November and never used (idle 35 days).
async fn many_seats(n: u32) -> (MemoryStack, Vec<Seat>) {
    let stack = MemoryStack::new(25).await;
    let granted = at("2026-11-15T09:00:00Z");
    let tiers = [Tier::Pro, Tier::ProPlus, Tier::Power];
    let (mut seats, mut rows) = (Vec::new(), Vec::new());
    for i in 1..=n {
        let u = user(i);
        let mut s = if i % 7 == 0 {
            let mut c = seat(&u, tiers[i as usize % 3], SeatStatus::Canceled, at("2026-09-01T09:00:00Z"));
            c.canceled_at = Some(at("2026-10-01T00:00:00Z"));
            c
        } else {
            seat(&u, tiers[i as usize % 3], SeatStatus::Active, granted)
        };
        if i % 4 == 0 {
            s.last_active_date = NaiveDate::from_ymd_opt(2026, 12, 18);
            rows.push(credits(&u, NaiveDate::from_ymd_opt(2026, 12, 18).unwrap(), u64::from(i) * 5, 0));
            rows.push(credits(&u, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(), 1_000_000, 0));
        }
        seats.push(s);
    }
    for chunk in seats.chunks(45) {
        let writes = chunk.iter().map(|s| write(s.clone(), None)).collect();
        stack.store.commit(&Commit { seats: writes, ..Commit::default() }).await.unwrap();
    }
    for chunk in rows.chunks(kiro::ports::ACTIVITY_BATCH) {
        stack.store.put_activity(chunk).await.unwrap();
    }
    (stack, seats)
}

/// The users listed are those expected, in that order; else where they part (not 2,000 users).
fn assert_same(listed: &[(UserId, f64)], expected: &[(UserId, f64)], what: &str) {
    if let Some(at) = (0..listed.len().max(expected.len())).find(|&i| listed.get(i) != expected.get(i)) {
        let (got, want) = (listed.get(at), expected.get(at));
        panic!("{what}: they part at {at} of {}: {got:?} listed, {want:?} expected", expected.len());
    }
}

/// Follows the tokens from the first page: the users listed, with their credits, and each page's
/// store requests by operation.
async fn walk(
    stack: &MemoryStack,
    filter: usage::UsersFilter,
    limit: usize,
) -> (Vec<(UserId, f64)>, Vec<std::collections::BTreeMap<&'static str, u64>>) {
    let (month, now) = ("2026-12".parse::<YearMonth>().unwrap(), at("2026-12-20T12:00:00Z"));
    let (mut listed, mut requests, mut token) = (Vec::new(), Vec::new(), None);
    loop {
        stack.store.reset_requests();
        let page = usage::users(&*stack.store, month, filter, &stack.api.pricing, limit, token, now).await.unwrap();
        requests.push(stack.store.requests_by_operation());
        assert!(page.items.len() <= limit);
        listed.extend(page.items.into_iter().map(|u| (u.user_id, u.credits_used)));
        token = page.next_token;
        if token.is_none() {
            return (listed, requests);
        }
        assert!(requests.len() < 1_000, "the tokens move on");
    }
}

#[tokio::test]
async fn a_page_of_users_costs_requests_of_the_page_not_of_every_seat_and_the_tokens_list_each_once() {
    let (stack, seats) = many_seats(2_000).await;
    // The oracle, from the seats as written: listed unless canceled before the month; idle when
    // held now and never used since the grant; in list order.
    let expected = |keep: &dyn Fn(&Seat) -> bool| {
        let mut ids: Vec<(UserId, f64)> = (seats.iter())
            .filter(|s| s.status != SeatStatus::Canceled && keep(s))
            .map(|s| {
                let n = u32::from_str_radix(&s.user_id.as_str()[24..], 16).unwrap();
                (s.user_id.clone(), if n % 4 == 0 { f64::from(n * 5) } else { 0.0 })
            })
            .collect();
        ids.sort_by(|a, b| seat_position(a.0.as_str()).cmp(&seat_position(b.0.as_str())));
        ids
    };
    let op = |r: &std::collections::BTreeMap<&str, u64>, name: &str| r.get(name).copied().unwrap_or(0);

    // Every user, 50 a page: at most ten reads of the seats' index (more than one where seats
    // are left out: the canceled ones), each one Query or two where it crosses a shard, and one
    // Query per user listed, whatever the number of seats (reading them all took 36 Queries).
    let (listed, requests) = walk(&stack, usage::UsersFilter::default(), 50).await;
    assert_same(&listed, &expected(&|_| true), "every seat listed once, in list order, with its month's credits");
    for (page, r) in requests.iter().enumerate() {
        let users = listed.len().saturating_sub(page * 50).min(50) as u64;
        assert!(op(r, "Query(gsi1)") <= 20, "page {page}: {r:?}");
        assert_eq!(op(r, "Query(activity of a user)"), users, "page {page}: {r:?}");
        assert_eq!(r.values().sum::<u64>(), op(r, "Query(gsi1)") + users, "nothing else read, page {page}: {r:?}");
    }

    // Pro seats idle over 30 days, 50 and then 7 a page: the tier filter is the index read's,
    // the idle one the page's; at most ten reads of the index a page, of ~150 rows each here.
    let idle_pro = usage::UsersFilter { tier: Some(Tier::Pro), inactive_days: Some(30), ..Default::default() };
    let oracle = expected(&|s| s.tier == Tier::Pro && s.last_active_date.is_none());
    assert!(oracle.len() > 300, "{}", oracle.len());
    for limit in [50, 7] {
        let (listed, requests) = walk(&stack, idle_pro, limit).await;
        assert_same(&listed, &oracle, &format!("idle Pro seats, {limit} a page"));
        for (page, r) in requests.iter().enumerate() {
            assert!(op(r, "Query(gsi1)") <= 30, "limit {limit}, page {page}: {r:?}");
            assert!(op(r, "Query(activity of a user)") <= limit as u64, "limit {limit}, page {page}: {r:?}");
        }
    }

    // A filter that matches nothing answers short pages with a token, each of bounded work
    // (the index read's own bound of 1,000 rows, or ten reads), rather than reading every seat.
    for none in [
        usage::UsersFilter { tier: Some(Tier::Power), status: Some(SeatStatus::Pending), ..Default::default() },
        usage::UsersFilter { inactive_days: Some(3_650), ..Default::default() },
    ] {
        let (listed, requests) = walk(&stack, none, 50).await;
        assert!(listed.is_empty());
        assert!(requests.len() > 1, "{none:?}: more than one page: {requests:?}");
        for r in &requests {
            assert!(op(r, "Query(gsi1)") <= 30, "{none:?}: {r:?}");
            assert_eq!(op(r, "Query(activity of a user)"), 0, "{none:?}: {r:?}");
        }
    }

    // A token the list did not hand out is the contract's invalid token.
    let forged = ["not a token!".to_owned(), kiro::aws::encode_token("user:alice"), kiro::aws::encode_token("SUB#x")];
    for token in forged {
        let (status, body) =
            call_api(&stack.api, "GET", &format!("/usage/users?month=2026-12&nextToken={token}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("BadRequest")), "{token}: {body}");
    }
}

/// The summary read from the table on moto (16 shards read at once, a shard's month and seats
/// page by page) is the summary of the same seats and activity in memory: 300 users over every
/// shard, every tier and status, a month of rows each for some.
#[tokio::test]
async fn the_summary_read_from_the_table_is_the_summary_in_memory() {
    let memory = MemoryStack::new(25).await;
    let world = kiro_tests::World::new().await;
    let table = kiro::aws::DynamoStore::new(world.dynamo.clone(), &world.table);
    let now = at("2026-12-20T12:00:00Z");
    let tiers = [Tier::Pro, Tier::ProPlus, Tier::Power];
    let statuses = [SeatStatus::Active, SeatStatus::Pending, SeatStatus::Canceled];
    let seats: Vec<Seat> = (1..=300)
        .map(|i| {
            let mut s = seat(&user(i), tiers[i as usize % 3], statuses[i as usize / 3 % 3], at("2026-11-15T09:00:00Z"));
            s.canceled_at = (s.status == SeatStatus::Canceled).then(|| at("2026-12-10T00:00:00Z"));
            s
        })
        .collect();
    let rows: Vec<(ActivityKey, Figures)> = (1..=300)
        .filter(|i| i % 4 != 0)
        .flat_map(|i| {
            (1..=20).map(move |d| credits(&user(i), NaiveDate::from_ymd_opt(2026, 12, d).unwrap(), 40, i as u64 % 3))
        })
        .collect();
    for chunk in seats.chunks(45) {
        let commit = Commit { seats: chunk.iter().cloned().map(|s| write(s, None)).collect(), ..Commit::default() };
        memory.store.commit(&commit).await.unwrap();
        table.commit(&commit).await.unwrap();
    }
    for batch in rows.chunks(kiro::ports::ACTIVITY_BATCH) {
        memory.store.put_activity(batch).await.unwrap();
        table.put_activity(batch).await.unwrap();
    }
    let month: YearMonth = "2026-12".parse().unwrap();
    let pricing = &memory.api.pricing;
    let expected = serde_json::to_value(usage::summary(&*memory.store, month, pricing, now).await.unwrap()).unwrap();
    let read = serde_json::to_value(usage::summary(&table, month, pricing, now).await.unwrap()).unwrap();
    assert_eq!(read, expected);
    let held = seats.iter().filter(|s| s.status != SeatStatus::Canceled).count();
    assert_eq!(expected["total"]["seats"], held, "active and pending seats, canceled ones not");
    assert!(expected["total"]["creditsUsed"].as_f64().unwrap() > 0.0, "and the month's credits");
}
