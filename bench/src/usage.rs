//! `GET /usage` (the console's Dashboard) over 10,000 and 100,000 seats with the in-memory
//! fakes: the requests the month's summary sends (counted as `DynamoStore` would send them), its
//! time in-process, and from the counts its time on DynamoDB (README, *Usage at that size*).
//!
//! The seats are seeded through the store's ports as the million-seat audit seeds them
//! ([`crate::million`]: groups of 1,000, every seat named), granted at the start of the month
//! before the one summed; each seat's user has a row for each of the month's first 22 days (a
//! working month of daily use, one client type), stored 25 rows a call as the import stores them.

use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use kiro::domain::activity::{ActivityKey, Amount, ClientType, Figures};
use kiro::domain::usage::YearMonth;
use kiro::ports::{ACTIVITY_BATCH, ActivityStore, SEAT_SHARDS};

use crate::fakes::Fakes;
use crate::report::{Row, Section};
use crate::{ms, thousands};

/// Days of a seat's activity in the month summed.
const DAYS: u32 = 22;
/// A `Query` of up to 1,000 items on DynamoDB, about (README, *Usage at that size*).
const QUERY_MS: f64 = 20.0;
/// Shards the summary reads at once (`app::usage`).
const SHARDS_AT_ONCE: usize = SEAT_SHARDS / 2;
const PER_GROUP: usize = 1_000;

/// The summary over `sizes` seats each, a row each for its requests and its estimated time.
pub async fn summaries(sizes: &[usize]) -> Section {
    let mut s = Section::new("GET /usage: the month's summary (assign-tier's `app::usage::summary`, in-memory fakes)")
        .note(format!(
            "Seats seeded through the ports in groups of {PER_GROUP} (every seat `PRO`, `ACTIVE`, granted the \
             month before and activated in it), each user with {DAYS} days of activity in the month summed. Requests as `DynamoStore` \
             sends them (a shard's month and its seats, 1,000 items a `Query`); time in this process. On \
             DynamoDB: the `Query`s one after the other within a shard, {SHARDS_AT_ONCE} shards at once, at \
             ~{QUERY_MS:.0} ms a `Query` (an estimate, not measured on AWS)."
        ));
    for &seats in sizes {
        let f = Fakes::with_profile().await;
        let now = Utc::now();
        let month = YearMonth::of(YearMonth::of(now).first_instant() - Duration::days(1));
        let granted = YearMonth::of(month.first_instant() - Duration::days(1)).first_instant();
        let groups = crate::million::seed(&f, seats.div_ceil(PER_GROUP), PER_GROUP.min(seats), granted).await;
        let client = ClientType::parse("clientType", "KIRO_IDE").expect("a client type");
        let mut rows = Vec::with_capacity(ACTIVITY_BATCH);
        for (i, user) in groups.iter().flat_map(|g| &g.members).enumerate() {
            for day in 1..=DAYS {
                let key = ActivityKey {
                    user_id: user.clone(),
                    date: NaiveDate::from_ymd_opt(month.year(), month.month(), day).expect("a day of the month"),
                    client_type: client.clone(),
                };
                let credits = Amount::from_micros(((i as u64 * 7 + u64::from(day)) % 40) * 1_000_000);
                rows.push((key, Figures { credits_used: credits, total_messages: credits, ..Figures::default() }));
                if rows.len() == ACTIVITY_BATCH {
                    f.store.put_activity(&rows).await.expect("seeding activity");
                    rows.clear();
                }
            }
        }
        f.store.put_activity(&rows).await.expect("seeding activity");
        // What the import does next: each seat's latest activity recorded, `PENDING` seats
        // activated (on the day after the last row).
        let last = NaiveDate::from_ymd_opt(month.year(), month.month(), DAYS).expect("a day of the month");
        let latest = groups.iter().flat_map(|g| &g.members).map(|u| (u.clone(), last)).collect();
        let activated_at = month.first_instant() + Duration::days(i64::from(DAYS));
        kiro::app::seats::record_activity(&*f.store, &*f.sink, latest, activated_at).await.expect("seats activated");
        let pricing = kiro::config::pricing(|_| None).expect("default pricing");

        let before = f.counts();
        let started = Instant::now();
        let usage = kiro::app::usage::summary(&*f.store, month, &pricing, now).await.expect("the summary");
        let elapsed = started.elapsed();
        let requests = f.counts().since(&before);
        assert_eq!(usage.summary.total.seats, seats as u64, "every seat counted");
        assert_eq!(usage.summary.total.active, seats as u64, "every seat active");

        let queries = requests.of("Query(gsi1)");
        // The shards are alike: each sends its share of the Queries one after the other.
        let estimate = queries as f64 / SHARDS_AT_ONCE as f64 * QUERY_MS / 1_000.0;
        let rows_read = seats as u64 * u64::from(DAYS);
        s.push(Row::new(format!("{} seats: requests", thousands(seats as u64)), thousands(requests.total)).detail(
            format!(
                "{}; {} activity rows and {} seats read; {} in-process",
                requests.breakdown(),
                thousands(rows_read),
                thousands(seats as u64),
                ms(elapsed)
            ),
        ));
        s.push(
            Row::new(format!("{} seats: on DynamoDB, estimated", thousands(seats as u64)), format!("~{estimate:.1} s"))
                .detail(format!(
                    "{} `Query`s / {SHARDS_AT_ONCE} shards at once × ~{QUERY_MS:.0} ms; a request has 29 s (API \
                     Gateway's limit, assign-tier's timeout)",
                    thousands(queries)
                )),
        );
    }
    s
}
