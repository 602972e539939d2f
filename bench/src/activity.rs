//! Issue 16: one of Kiro's daily user activity report files through `kiro::app::activity::ingest`,
//! over the in-memory fakes: rows per second in this process, DynamoDB requests per row (the
//! requests `DynamoStore` would send, counted by `MemoryStore`), `PutEvents`, activations, and
//! the process's peak resident set while the file is ingested.
//!
//! The file is the daily IDE file of a tenant of as many seats as rows: one row per user, one
//! day (2026-12-01), `KIRO_IDE`, Kiro's columns in Kiro's order (two `<model>_messages`
//! columns); about half the users have activity. 80% of the users hold a `PENDING` seat granted
//! the day before, committed through `SeatStore::commit` before the clock starts (the seeding's
//! requests are not counted).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use kiro::domain::activity::{ActivityKey, Figures};
use kiro::domain::import::{ImportReport, ImportStatus, ObjectRef};
use kiro::domain::seat::SourceKey;
use kiro::domain::{Seat, SeatStatus, Sources, Tier, UserId};
use kiro::ports::{ACTIVITY_BATCH, Commit, SeatStore};
use kiro_fakes::fixtures::{at, write};
use kiro_fakes::{MemoryObjects, MemorySink, MemoryStore};

use crate::memory::{chunk, reset_peak, status_kib};
use crate::report::{REQUESTS_PER_ACTIVITY_ROW, Row, Section};
use crate::{ms, percentile, thousands};

/// Ingests of the first delivery, each on fresh fakes; the time is their median.
const RUNS: usize = 3;
/// One seat in how many users is missing (80% of the users hold a seat).
const UNSEATED_ONE_IN: usize = 5;
/// `BATCHES_IN_FLIGHT` of `kiro::app::activity` (private there): batches in the channel.
const BATCHES_IN_FLIGHT: usize = 4;
/// A transaction's 100 items: what the seeding commits at a time.
const SEED_CHUNK: usize = 100;

const BUCKET: &str = "kiro-reports";
const KEY_DAY_1: &str = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/01/00/111122223333_user_report_us-east-1_20261201.csv";
const KEY_DAY_2: &str = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/02/00/111122223333_user_report_us-east-1_20261202.csv";
/// Kiro's header, in Kiro's order (as `events/activity/user-report-ide.csv`).
const HEADER: &str = "Date,UserId,Client_Type,Chat_Conversations,Credits_Used,Overage_Cap,Overage_Credits_Used,\
Overage_Enabled,ProfileId,Subscription_Tier,Total_Messages,New_User,User_Email,auto_messages,claude_sonnet_4.5_messages\n";
const PROFILE: &str = "arn:aws:codewhisperer:us-east-1:111122223333:profile/EXAMPLEPRF01";

/// splitmix64: the same file every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The Identity Store user id of user `i`: a UUID, as IAM Identity Center's.
fn user_id(i: usize) -> String {
    let mut r = Random(i as u64 ^ 0x5eed);
    let (a, b, c, d) = (r.next() as u32, r.next() as u16, r.next() as u16 & 0x0fff, r.next() as u16);
    format!("{a:08x}-{b:04x}-7{c:03x}-{d:04x}-{i:012x}")
}

fn seated(i: usize) -> bool {
    i % UNSEATED_ONE_IN != 0
}

/// One day's IDE file of `users` users, about half of them active (`seed` decides who).
fn report_csv(users: usize, date: &str, seed: u64) -> (String, Vec<bool>) {
    let mut r = Random(seed);
    let mut csv = String::with_capacity(users * 240 + HEADER.len());
    csv.push_str(HEADER);
    let mut active = Vec::with_capacity(users);
    for i in 0..users {
        let tier = ["PRO", "PRO", "PRO", "PRO_PLUS", "POWER"][r.below(5) as usize];
        let (overage_cap, overage_enabled) = if tier == "POWER" { ("2500.0", "true") } else { ("0.0", "false") };
        active.push(r.below(2) == 0);
        let (chat, credits, overage, auto, sonnet) = if active[i] {
            let credits = r.below(200_000_000_000) as f64 / 1e9;
            let overage = if tier == "POWER" && r.below(10) == 0 { credits / 4.0 } else { 0.0 };
            (1 + r.below(20), credits, overage, r.below(150), r.below(60))
        } else {
            (0, 0.0, 0.0, 0, 0)
        };
        let new_user = if r.below(50) == 0 { "true" } else { "false" };
        let _ = writeln!(
            csv,
            "{date},\"{uid}\",KIRO_IDE,{chat},{credits:.10},{overage_cap},{overage:.1},{overage_enabled},\"{PROFILE}\",\
             {tier},{total},{new_user},\"user{i:06}@example.com\",{auto},{sonnet}",
            uid = user_id(i),
            total = auto + sonnet + chat,
        );
    }
    (csv, active)
}

fn pending_seat(i: usize, granted: DateTime<Utc>) -> Seat {
    Seat {
        user_id: UserId::parse("u", &user_id(i)).expect("a user id"),
        user_name: Some(format!("user{i:06}")),
        sources: Sources::from([(SourceKey::Direct, Tier::Pro)]),
        tier: Tier::Pro,
        status: SeatStatus::Pending,
        granted_at: granted,
        updated_at: granted,
        canceled_at: None,
        activated_at: None,
        last_active_date: None,
        bills: Default::default(),
        version: 1,
    }
}

/// Fresh fakes holding a `PENDING` seat (granted 2026-11-30) for 80% of `users`.
async fn seeded(users: usize) -> (MemoryStore, MemorySink, MemoryObjects) {
    let store = MemoryStore::default();
    let granted = at("2026-11-30T10:00:00Z");
    let seats: Vec<usize> = (0..users).filter(|&i| seated(i)).collect();
    for chunk in seats.chunks(SEED_CHUNK) {
        let seats = chunk.iter().map(|&i| write(pending_seat(i, granted), None)).collect();
        store.commit(&Commit { seats, ..Commit::default() }).await.expect("seeding a seat");
    }
    store.reset_requests();
    (store, MemorySink::default(), MemoryObjects::default())
}

/// What one ingest sent and took.
struct Ingested {
    report: ImportReport,
    /// The file's data rows (a duplicate's ImportReport reads none).
    rows: usize,
    elapsed: Duration,
    /// DynamoDB requests by operation, largest first.
    requests: Vec<(&'static str, u64)>,
    put_events: u64,
    /// VmHWM before (the resident set once the peak is reset) and after, in KiB.
    hwm: Option<(u64, u64)>,
}

impl Ingested {
    fn total(&self) -> u64 {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    fn per_row(&self) -> f64 {
        self.total() as f64 / self.rows.max(1) as f64
    }

    /// `BatchWriteItem(activity) 4000 (0.0400/row), ...`
    fn breakdown(&self) -> String {
        let rows = self.rows.max(1) as f64;
        self.requests
            .iter()
            .map(|(op, n)| format!("{op} {n} ({:.4}/row)", *n as f64 / rows))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn ingest(
    store: &MemoryStore,
    sink: &MemorySink,
    objects: &MemoryObjects,
    object: &ObjectRef,
    rows: usize,
    now: DateTime<Utc>,
) -> Ingested {
    let before = store.requests_by_operation();
    let put_events = sink.requests();
    let hwm_before = reset_peak().then(|| status_kib("VmHWM:")).flatten();
    let started = Instant::now();
    let report = kiro::app::activity::ingest(store, sink, objects, object.clone(), now).await.expect("an ingest");
    let elapsed = started.elapsed();
    let hwm = hwm_before.zip(status_kib("VmHWM:"));
    let mut requests: Vec<(&'static str, u64)> = store
        .requests_by_operation()
        .into_iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    requests.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Ingested { report, rows, elapsed, requests, put_events: sink.requests() - put_events, hwm }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The ingest's own working state, from the sizes of its types: the per-user map (hashbrown:
/// a power-of-two table at most 7/8 full, one control byte a slot, the ids on the heap), the
/// `Vec` it becomes for `record_activity` (both alive while it is collected), and the batches
/// alive at once (the channel's, the one the reader fills, the one being written).
struct Estimate {
    map: usize,
    vec: usize,
    batches: usize,
    batch_count: usize,
}

impl Estimate {
    fn of(users: usize, id_len: usize) -> Estimate {
        let entry = size_of::<(UserId, Option<NaiveDate>)>();
        let slots = (users * 8 / 7).next_power_of_two().max(4);
        let ids = users * chunk(id_len);
        let map = slots * (entry + 1) + 16 + ids;
        let vec = users * entry;
        // One row: the key's id and client type (`KIRO_IDE`) and the tier on the heap.
        let row = size_of::<(ActivityKey, Figures)>() + chunk(id_len) + chunk(8) + chunk(8);
        let batch_count = BATCHES_IN_FLIGHT + 2;
        Estimate { map, vec, batches: batch_count * ACTIVITY_BATCH * row, batch_count }
    }

    fn total(&self) -> usize {
        self.map + self.vec + self.batches
    }
}

/// The per-user map built as `ingest` builds it, from the same ids, and collected into its
/// `Vec`: the peak resident set it adds in this process (KiB), a check on [`Estimate`].
fn measured_map(users: usize) -> Option<u64> {
    let ids: Vec<String> = (0..users).map(user_id).collect();
    if !reset_peak() {
        return None;
    }
    let before = status_kib("VmHWM:")?;
    let date = NaiveDate::from_ymd_opt(2026, 12, 1);
    let mut map: HashMap<UserId, Option<NaiveDate>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let latest = map.entry(UserId::parse("UserId", id).expect("an id")).or_default();
        if i % 2 == 0 {
            *latest = (*latest).max(date);
        }
    }
    let latest: Vec<(UserId, Option<NaiveDate>)> = map.into_iter().collect();
    let after = status_kib("VmHWM:")?;
    drop(std::hint::black_box(latest));
    Some(after.saturating_sub(before))
}

/// Ingests a report of `rows` rows (one per user) on fresh fakes, [`RUNS`] times; then, on the
/// last run's fakes, the same file again (a duplicate) and the next day's file.
pub async fn report_ingest(rows: usize) -> Section {
    let map_measured = measured_map(rows);
    let (day_1, active) = report_csv(rows, "2026-12-01", 1);
    let (day_2, _) = report_csv(rows, "2026-12-02", 2);
    // Seated users active on day 1: the activations to expect.
    let seated_active = active.iter().enumerate().filter(|&(i, &a)| a && seated(i)).count();
    let active = active.iter().filter(|&&a| a).count();

    let now_1 = at("2026-12-02T06:00:00Z");
    let now_2 = at("2026-12-03T06:00:00Z");
    let mut firsts: Vec<Ingested> = Vec::with_capacity(RUNS);
    let mut later = None;
    let mut seeding = Duration::ZERO;
    for run in 0..RUNS {
        let started = Instant::now();
        let (store, sink, objects) = seeded(rows).await;
        seeding = started.elapsed();
        let object = objects.put(BUCKET, KEY_DAY_1, day_1.as_bytes());
        let first = ingest(&store, &sink, &objects, &object, rows, now_1).await;
        assert_eq!(first.report.status, ImportStatus::Imported, "{:?}", first.report);
        assert_eq!(first.report.rows as usize, rows);
        assert_eq!(first.report.activated as usize, seated_active, "every seated user with activity activates");
        firsts.push(first);
        if run + 1 == RUNS {
            let again = ingest(&store, &sink, &objects, &object, rows, now_1).await;
            assert_eq!(again.report.status, ImportStatus::Duplicate, "{:?}", again.report);
            let next = objects.put(BUCKET, KEY_DAY_2, day_2.as_bytes());
            let next_day = ingest(&store, &sink, &objects, &next, rows, now_2).await;
            assert_eq!(next_day.report.status, ImportStatus::Imported, "{:?}", next_day.report);
            later = Some((again, next_day));
        }
        drop((store, sink, objects));
    }
    let (again, next_day) = later.expect("the last run delivers twice");

    // One reading pass alone, as `validate` makes it: the parsing's share of the time.
    let mut passes: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let summary = kiro::domain::activity::validate(std::io::Cursor::new(day_1.as_bytes()));
            let elapsed = started.elapsed();
            assert_eq!(summary.expect("a valid file").rows as usize, rows);
            elapsed
        })
        .collect();
    passes.sort_unstable();

    let times: Vec<Duration> = firsts.iter().map(|f| f.elapsed).collect();
    let median = percentile(&times, 50.0);
    let first = &firsts[0];
    let rows_f = rows as f64;

    let mut s = Section::new(format!(
        "Activity report of {} rows (ingest-activity, in-memory fakes)",
        thousands(rows as u64)
    ))
    .note(format!(
        "`kiro::app::activity::ingest` on a current-thread runtime (its reading passes run on `spawn_blocking`), \
             over `MemoryStore` (which counts the DynamoDB requests `DynamoStore` would send, by operation), \
             `MemorySink` (one `PutEvents` per 10 events) and `MemoryObjects`. The file: the daily IDE file of a \
             {}-seat tenant, generated in memory with Kiro's columns (two `<model>_messages`), one row per user for \
             2026-12-01, {} bytes, {} users with activity ({:.0}%). Before the clock starts, {}% of the users hold \
             a `PENDING` seat granted on 2026-11-30, committed 100 at a time through `SeatStore::commit` ({} per \
             run, not counted); so {} seats activate. Time: the whole `ingest` (import marker, the \
             validating pass, the storing pass, the seats, the ImportReport), in this process with no network: \
             median of {RUNS} runs, each on fresh fakes. Requests: the first run's (with the totals of all {RUNS}: \
             a count that depends on how the users' map orders them into chunks varies a little). Peak memory: \
             `VmHWM` of this process, reset (`5` to `/proc/self/clear_refs`) just before the ingest and read after \
             it. The duplicate and the next day's file (2026-12-02, the same users, another half active) are \
             delivered on the last run's fakes.",
        thousands(rows as u64),
        thousands(day_1.len() as u64),
        thousands(active as u64),
        active as f64 * 100.0 / rows_f,
        100 - 100 / UNSEATED_ONE_IN,
        ms(seeding),
        thousands(seated_active as u64),
    ));

    s.push(
        Row::new("first delivery: DynamoDB requests per row", format!("{:.4}", first.per_row()))
            .against(REQUESTS_PER_ACTIVITY_ROW, first.per_row())
            .detail(format!(
                "{} requests: {}; totals of the {RUNS} runs: {}",
                thousands(first.total()),
                first.breakdown(),
                firsts.iter().map(|f| thousands(f.total())).collect::<Vec<_>>().join(", ")
            )),
    );
    s.push(
        Row::new("first delivery: rows per second (in-process)", thousands((rows_f / median.as_secs_f64()) as u64))
            .detail(format!(
                "median of {RUNS}: {} (runs: {}); one reading pass alone (`validate`, median): {}",
                ms(median),
                times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", "),
                ms(passes[passes.len() / 2]),
            )),
    );
    s.push(Row::new("first delivery: activations (`Seat Activated`)", thousands(first.report.activated)).detail(
        format!(
            "ImportReport: rows {}, users {}, activated {}, unknown users {}, rejected rows {}",
            first.report.rows,
            first.report.users,
            first.report.activated,
            first.report.unknown_users,
            first.report.rejected_rows
        ),
    ));
    s.push(Row::new("first delivery: PutEvents requests", thousands(first.put_events)).detail(format!(
        "{:.4}/row; the `Seat Activated` of each transaction's outbox, 10 entries a request; runs: {}",
        first.put_events as f64 / rows_f,
        firsts.iter().map(|f| thousands(f.put_events)).collect::<Vec<_>>().join(", ")
    )));

    let hwm = |i: &Ingested| i.hwm.map(|(b, a)| a.saturating_sub(b));
    match first.hwm {
        Some((before, after)) => s.push(
            Row::new("first delivery: peak RSS growth during the ingest (VmHWM)", format!("{:.1} MiB", mib(after - before)))
                .detail(format!(
                    "run 1 (the figure): {:.1} MiB resident at the start (the two generated files, the seeded store, \
                     the stored object), peak {:.1} MiB. Runs 1–{RUNS}: {}; the later runs reuse memory the allocator \
                     kept from the previous run's fakes (freed, not returned), so only run 1 shows the growth. It \
                     counts what the fakes keep: the copy of the whole file `MemoryObjects` hands each pass ({:.1} MiB; \
                     S3 streams it), the {} activity rows `MemoryStore` keeps, the events `MemoryStore` and \
                     `MemorySink` record; the ingest's own state is the next row",
                    mib(before),
                    mib(after),
                    firsts.iter().filter_map(hwm).map(|k| format!("{:.1} MiB", mib(k))).collect::<Vec<_>>().join(", "),
                    day_1.len() as f64 / (1024.0 * 1024.0),
                    thousands(rows as u64),
                )),
        ),
        None => s.push(Row::new("first delivery: peak RSS growth during the ingest (VmHWM)", "n/a").detail(
            "/proc/self/clear_refs or /proc/self/status is not available here",
        )),
    }
    let id_len = user_id(0).len();
    let e = Estimate::of(rows, id_len);
    let kib = |bytes: usize| bytes as f64 / 1024.0;
    s.push(
        Row::new("the ingest's own working state (estimate)", format!("{:.1} MiB", kib(e.total()) / 1024.0)).detail(
            format!(
                "from the sizes of its types: the map of the file's {} users (`HashMap<UserId, Option<NaiveDate>>`) {:.1} MiB ({} B an entry in a table of {} \
             slots, plus each {id_len}-byte id on the heap, {} B with glibc's header), the `Vec` it is collected into \
             for the seats {:.1} MiB (the map's table and the `Vec` are both alive while it is collected), {} batches \
             of {ACTIVITY_BATCH} rows {:.0} KiB ({BATCHES_IN_FLIGHT} in the channel, one being read, one being \
             written); plus per chunk of 99 seats a few hundred KiB, and the CSV reader's buffers. Cross-check: the \
             same map built and collected here raised VmHWM by {}",
                thousands(rows as u64),
                kib(e.map) / 1024.0,
                size_of::<(UserId, Option<NaiveDate>)>(),
                thousands(((rows * 8 / 7).next_power_of_two()) as u64),
                chunk(id_len),
                kib(e.vec) / 1024.0,
                e.batch_count,
                kib(e.batches),
                map_measured.map_or("n/a".to_owned(), |k| format!("{:.1} MiB", mib(k))),
            ),
        ),
    );

    s.push(
        Row::new(
            "the same file delivered again (DUPLICATE): DynamoDB requests per row",
            format!("{:.6}", again.per_row()),
        )
        .against(REQUESTS_PER_ACTIVITY_ROW, again.per_row())
        .detail(format!(
            "{} requests: {}; PutEvents {}; {}",
            again.total(),
            again.requests.iter().map(|(op, n)| format!("{op} {n}")).collect::<Vec<_>>().join(", "),
            again.put_events,
            ms(again.elapsed)
        )),
    );
    s.push(
        Row::new("the next day's file: DynamoDB requests per row", format!("{:.4}", next_day.per_row()))
            .against(REQUESTS_PER_ACTIVITY_ROW, next_day.per_row())
            .detail(format!(
                "{} requests: {}; PutEvents {}; activated {} (seats still PENDING with activity on the 2nd), the other \
                 seat writes move `lastActiveDate`; {}",
                thousands(next_day.total()),
                next_day.breakdown(),
                next_day.put_events,
                next_day.report.activated,
                ms(next_day.elapsed)
            )),
    );
    s
}
