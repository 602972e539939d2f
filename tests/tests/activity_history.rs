//! Property: over random histories of grants, tier changes, cancels and activity reports —
//! reports written for past days and delivered late, out of order, some twice — every seat's
//! status, `activatedAt` and `lastActiveDate` are what the history implies, and each activation
//! emits exactly one `Seat Activated` (each grant one `Seat Granted`), a redelivery nothing.
//!
//! The model is computed from the history alone (contract: "Vocabulary", "Activity", "Events
//! out"). In a period of holding a seat granted at G, the seat turns `ACTIVE` at the first
//! delivered report with activity dated on or after G's UTC date — at the grant itself when such
//! activity was recorded before G — with `activatedAt` = max(that date's first instant, G) of
//! the activating report. A report delivered later with an earlier qualifying date does not move
//! it (`domain::seat::record_activity` only activates a `PENDING` seat). `lastActiveDate` is the
//! latest date of any activity ever delivered for the user, across cancels and re-grants.
//!
//! In-memory ports, one report per day and file (as Kiro writes them). `PROPTEST_CASES=10000`
//! for the long profile.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use kiro::app::activity::ingest;
use kiro::app::seats::{UserChange, apply_changes};
use kiro::domain::import::{ImportReport, ImportStatus, ObjectRef};
use kiro::domain::{
    CancelReason, GroupId, Principal, Seat, SeatChange, SeatStatus, SourceKey, SourceOp, Subscription, Tier, UserId,
};
use kiro::ports::SubscriptionStore;
use kiro_fakes::fixtures::{at, group, user};
use kiro_fakes::{MemoryObjects, MemorySink, MemoryStore};
use proptest::prelude::*;

const USERS: usize = 4;
const BUCKET: &str = "kiro-reports";
const CLIENTS: [&str; 3] = ["KIRO_IDE", "KIRO_CLI", "PLUGIN"];
/// Rows without activity, of users who never hold a seat, that a report may carry in its
/// middle: one `BatchWriteItem` of rows ([`kiro::ports::ACTIVITY_BATCH`]).
const PADDING: usize = kiro::ports::ACTIVITY_BATCH;

#[derive(Debug, Clone)]
enum Step {
    /// The user's direct subscription at `tier` (created, or moved to that tier), or removed
    /// (`None`: deleted, then the source dropped as `Unsubscribed` or as a plain `Remove`).
    Direct { user: usize, tier: Option<Tier>, unsubscribed: bool },
    /// The user joins (`true`) or leaves the subscribed group.
    Group { user: usize, member: bool },
    /// The user loses every source, then, `later` minutes after, gains a direct one again; with
    /// `used`, a report of the day with their activity is written and delivered in between.
    Regrant { user: usize, tier: Tier, later: i64, used: bool },
    /// Kiro writes the report of the day `days_back` days before today: rows of
    /// (user, client type, whether the row is activity), and with `pad_at` (an index, modulo),
    /// [`PADDING`] rows of users without a seat there, so that the rows around them are stored
    /// in different batches. Not delivered yet.
    ///
    /// Users are indexes modulo the case's number of users.
    Report { days_back: i64, rows: Vec<(usize, usize, bool)>, pad_at: Option<usize> },
    /// Delivers a report not delivered yet: the newest (`None`, as Kiro's notifications usually
    /// come) or any (by index, modulo). With `again`, one already delivered (a redelivery:
    /// `DUPLICATE`, nothing changes) when there is one.
    Deliver { pick: Option<usize>, again: bool },
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![Just(Tier::Pro), Just(Tier::ProPlus), Just(Tier::Power)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..USERS, prop::option::weighted(0.6, tier()), any::<bool>())
            .prop_map(|(user, tier, unsubscribed)| Step::Direct { user, tier, unsubscribed }),
        2 => (0..USERS, any::<bool>()).prop_map(|(user, member)| Step::Group { user, member }),
        2 => (0..USERS, tier(), 2..90i64, any::<bool>())
            .prop_map(|(user, tier, later, used)| Step::Regrant { user, tier, later, used }),
        3 => (
            prop_oneof![Just(0i64), 0..4i64],
            prop::collection::vec((0..USERS, 0..CLIENTS.len(), prop::bool::weighted(0.7)), 0..8),
            prop::option::weighted(0.2, any::<usize>()),
        )
            .prop_map(|(days_back, rows, pad_at)| Step::Report { days_back, rows, pad_at }),
        5 => (prop::option::of(any::<usize>()), prop::bool::weighted(0.2))
            .prop_map(|(pick, again)| Step::Deliver { pick, again }),
    ]
}

/// How far the clock moves before a step: minutes, hours, or a few days (about 14 hours on
/// average, so the longest histories span about 20 days).
fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![5 => 1..120i64, 3 => 60..1440i64, 2 => 1440..4320i64]
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(date.and_hms_opt(0, 0, 0).unwrap(), Utc)
}

/// A report as written: its day, its rows (user, client type, activity), where the padding goes.
#[derive(Debug, Clone)]
struct Report {
    day: NaiveDate,
    rows: Vec<(usize, usize, bool)>,
    pad_at: Option<usize>,
    object: ObjectRef,
}

impl Report {
    /// The users with activity in it: within a file, a repeated (user, client type) row
    /// replaces the earlier one.
    fn active_users(&self) -> BTreeSet<usize> {
        let last: BTreeMap<(usize, usize), bool> = self.rows.iter().map(|&(u, c, a)| ((u, c), a)).collect();
        last.into_iter().filter(|(_, active)| *active).map(|((u, _), _)| u).collect()
    }

    fn users(&self) -> BTreeSet<usize> {
        self.rows.iter().map(|&(u, _, _)| u).collect()
    }

    /// Data rows in the file, padding included.
    fn row_count(&self) -> usize {
        self.rows.len() + if self.pad_at.is_some() { PADDING } else { 0 }
    }

    fn csv(&self, users: &[UserId]) -> String {
        let mut csv = String::from("Date,UserId,Client_Type,Total_Messages,Credits_Used\n");
        let pad_at = self.pad_at.map(|p| p % (self.rows.len() + 1));
        for i in 0..=self.rows.len() {
            if pad_at == Some(i) {
                for n in 0..PADDING as u32 {
                    csv.push_str(&format!("{},{},KIRO_IDE,0,0\n", self.day, user(1000 + n)));
                }
            }
            let Some(&(u, c, active)) = self.rows.get(i) else { break };
            let (messages, credits) =
                if active { (format!("{}", 1 + i % 5), format!("{}.25", i % 3)) } else { ("0".into(), String::new()) };
            csv.push_str(&format!("{},{},{},{messages},{credits}\n", self.day, users[u], CLIENTS[c]));
        }
        csv
    }
}

/// The seat the history implies (once the user has ever held one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    tier: Tier,
    holds: bool,
    granted_at: DateTime<Utc>,
    canceled_at: Option<DateTime<Utc>>,
    activated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
struct UserModel {
    direct: Option<Tier>,
    member: bool,
    seat: Option<Expected>,
    /// The latest date of activity delivered for the user, ever.
    last_active: Option<NaiveDate>,
    granted: usize,
    tier_changed: usize,
    canceled: usize,
    /// `activatedAt` of each activation, in order.
    activations: Vec<DateTime<Utc>>,
}

impl UserModel {
    fn holds(&self) -> bool {
        self.seat.as_ref().is_some_and(|s| s.holds)
    }

    /// After the sources moved at `now`.
    fn sources_changed(&mut self, group_tier: Tier, now: DateTime<Utc>) {
        let top = self.direct.max(self.member.then_some(group_tier));
        match (self.holds(), top) {
            (false, Some(tier)) => {
                self.granted += 1;
                // Activity already recorded, dated on or after the grant's UTC date: active at once.
                let activated_at = self.last_active.filter(|d| *d >= now.date_naive()).map(|d| midnight(d).max(now));
                self.activations.extend(activated_at);
                self.seat = Some(Expected { tier, holds: true, granted_at: now, canceled_at: None, activated_at });
            }
            (true, None) => {
                self.canceled += 1;
                let seat = self.seat.as_mut().unwrap();
                seat.holds = false;
                seat.canceled_at = Some(now);
            }
            (true, Some(tier)) => {
                let seat = self.seat.as_mut().unwrap();
                if seat.tier != tier {
                    self.tier_changed += 1;
                    seat.tier = tier;
                }
            }
            (false, None) => {}
        }
    }

    /// Activity dated `day` delivered; answers whether it activated the seat.
    fn active_on(&mut self, day: NaiveDate) -> bool {
        self.last_active = self.last_active.max(Some(day));
        let Some(seat) = self.seat.as_mut().filter(|s| s.holds && s.activated_at.is_none()) else { return false };
        if day < seat.granted_at.date_naive() {
            return false;
        }
        let activated_at = midnight(day).max(seat.granted_at);
        seat.activated_at = Some(activated_at);
        self.activations.push(activated_at);
        true
    }

    fn status(&self) -> Option<SeatStatus> {
        self.seat.as_ref().map(|s| match (s.holds, s.activated_at) {
            (false, _) => SeatStatus::Canceled,
            (true, None) => SeatStatus::Pending,
            (true, Some(_)) => SeatStatus::Active,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The world: the code under test over the in-memory ports
// ---------------------------------------------------------------------------------------------

struct World {
    store: MemoryStore,
    sink: MemorySink,
    objects: MemoryObjects,
    users: Vec<UserId>,
    group: GroupId,
    group_tier: Tier,
    model: Vec<UserModel>,
    /// Written, not delivered yet.
    undelivered: Vec<Report>,
    /// Delivered at least once.
    delivered: Vec<Report>,
    written: usize,
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

impl World {
    async fn new(users: usize, group_tier: Tier, now: DateTime<Utc>) -> World {
        let store = MemoryStore::default();
        let group = group(1);
        let sub = Subscription::new(Principal::Group(group.clone()), "Kiro users".into(), group_tier, "test", now);
        store.create_subscription(&sub).await.unwrap();
        World {
            store,
            sink: MemorySink::default(),
            objects: MemoryObjects::default(),
            users: (0..users as u32).map(user).collect(),
            group,
            group_tier,
            model: vec![UserModel::default(); users],
            undelivered: Vec::new(),
            delivered: Vec::new(),
            written: 0,
        }
    }

    async fn change(
        &self,
        u: usize,
        op: SourceOp,
        reason: CancelReason,
        now: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let change = UserChange::new(self.users[u].clone(), SeatChange::one(op, reason));
        apply_changes(&self.store, &self.sink, vec![change], now).await.map_err(fail)?;
        Ok(())
    }

    async fn direct(
        &mut self,
        u: usize,
        tier: Option<Tier>,
        unsubscribed: bool,
        now: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let principal = Principal::User(self.users[u].clone());
        match (self.model[u].direct, tier) {
            (None, Some(tier)) => {
                let sub = Subscription::new(principal, format!("u{u}"), tier, "test", now);
                self.store.create_subscription(&sub).await.map_err(fail)?;
            }
            (Some(old), Some(tier)) if old != tier => {
                let mut sub = self.store.get_subscription(&principal).await.map_err(fail)?.unwrap();
                (sub.tier, sub.updated_at) = (tier, now);
                self.store.update_subscription(&sub, old).await.map_err(fail)?;
            }
            (Some(_), None) => {
                self.store.delete_subscription(&principal).await.map_err(fail)?;
            }
            _ => {}
        }
        let op = match tier {
            Some(tier) => SourceOp::Set(SourceKey::Direct, tier),
            None if unsubscribed => SourceOp::Unsubscribed(SourceKey::Direct),
            None => SourceOp::Remove(SourceKey::Direct),
        };
        self.change(u, op, CancelReason::Unsubscribed, now).await?;
        self.model[u].direct = tier;
        self.model[u].sources_changed(self.group_tier, now);
        Ok(())
    }

    async fn group(&mut self, u: usize, member: bool, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        let key = SourceKey::Group(self.group.clone());
        let op = if member { SourceOp::Set(key, self.group_tier) } else { SourceOp::Remove(key) };
        self.change(u, op, CancelReason::LeftGroup, now).await?;
        self.model[u].member = member;
        self.model[u].sources_changed(self.group_tier, now);
        Ok(())
    }

    fn write(&mut self, days_back: i64, rows: Vec<(usize, usize, bool)>, pad_at: Option<usize>, now: DateTime<Utc>) {
        let day = now.date_naive() - Duration::days(days_back);
        self.written += 1;
        let key = format!(
            "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/{}/00/report-{}.csv",
            day.format("%Y/%m/%d"),
            self.written
        );
        let empty = ObjectRef { bucket: String::new(), key: String::new(), etag: String::new() };
        let mut report = Report { day, rows, pad_at, object: empty };
        report.object = self.objects.put(BUCKET, &key, report.csv(&self.users));
        self.undelivered.push(report);
    }

    async fn ingest(&self, report: &Report, now: DateTime<Utc>) -> Result<ImportReport, TestCaseError> {
        ingest(&self.store, &self.sink, &self.objects, report.object.clone(), now).await.map_err(fail)
    }

    /// First delivery: imported, and exactly what the model says it activates.
    async fn deliver(&mut self, pick: Option<usize>, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        let newest = self.undelivered.len() - 1;
        let report = self.undelivered.remove(pick.map_or(newest, |p| p % self.undelivered.len()));
        prop_assert!(report.day <= now.date_naive(), "a report is never delivered before its day");
        let padding = (report.row_count() - report.rows.len()) as u64;
        let users = report.users().len() as u64 + padding;
        // Users with activity in the file and no seat (the padding rows have none).
        let unknown = report.active_users().into_iter().filter(|&u| self.model[u].seat.is_none()).count() as u64;
        let imported = self.ingest(&report, now).await?;
        let activated =
            report.active_users().into_iter().filter(|&u| self.model[u].active_on(report.day)).count() as u64;
        prop_assert_eq!(imported.status, ImportStatus::Imported, "{:?}", imported.reason);
        prop_assert_eq!(
            (imported.rows, imported.users, imported.activated, imported.unknown_users, imported.rejected_rows),
            (report.row_count() as u64, users, activated, unknown, 0),
            "rows, users, activated, unknownUsers, rejectedRows of the report of {}",
            report.day
        );
        self.delivered.push(report);
        Ok(())
    }

    /// A redelivery: `DUPLICATE`, no seat touched, no event.
    async fn redeliver(&self, pick: Option<usize>, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        let report = &self.delivered[pick.unwrap_or(0) % self.delivered.len()];
        let (seats, events, gets) = (self.seats(), self.sink.events().len(), self.objects.gets());
        let again = self.ingest(report, now).await?;
        prop_assert_eq!(again.status, ImportStatus::Duplicate);
        prop_assert_eq!((again.rows, again.activated), (0, 0));
        prop_assert_eq!(self.objects.gets(), gets, "a duplicate was read");
        prop_assert_eq!(self.seats(), seats, "a duplicate changed a seat");
        prop_assert_eq!(self.sink.events().len(), events, "a duplicate emitted events");
        Ok(())
    }

    fn seats(&self) -> BTreeMap<UserId, Seat> {
        self.store.seats_snapshot().into_iter().map(|s| (s.user_id.clone(), s)).collect()
    }

    /// Every seat, and the events of every user, against the model.
    fn check(&self, context: &str) -> Result<(), TestCaseError> {
        let seats = self.seats();
        let events = self.sink.events();
        for (u, (id, m)) in self.users.iter().zip(&self.model).enumerate() {
            let seat = seats.get(id);
            prop_assert_eq!(seat.is_some(), m.seat.is_some(), "user {}: seat row {}", u, context);
            if let (Some(seat), Some(want)) = (seat, &m.seat) {
                prop_assert_eq!(Some(seat.status), m.status(), "user {}: status {}", u, context);
                prop_assert_eq!(seat.activated_at, want.activated_at, "user {}: activatedAt {}", u, context);
                prop_assert_eq!(seat.last_active_date, m.last_active, "user {}: lastActiveDate {}", u, context);
                prop_assert_eq!(
                    (seat.tier, seat.granted_at, seat.canceled_at),
                    (want.tier, want.granted_at, want.canceled_at),
                    "user {}: tier, grantedAt, canceledAt {}",
                    u,
                    context
                );
            }
            let mine: Vec<_> = events.iter().filter(|e| e.detail["userId"].as_str() == Some(id.as_str())).collect();
            let count = |t: &str| mine.iter().filter(|e| e.detail_type == t).count();
            prop_assert_eq!(
                (count("Seat Granted"), count("Seat Tier Changed"), count("Seat Canceled")),
                (m.granted, m.tier_changed, m.canceled),
                "user {}: Granted, Tier Changed, Canceled events {}",
                u,
                context
            );
            let activations: Vec<DateTime<Utc>> = mine
                .iter()
                .filter(|e| e.detail_type == "Seat Activated")
                .map(|e| DateTime::parse_from_rfc3339(e.detail["activatedAt"].as_str().unwrap()).unwrap().to_utc())
                .collect();
            prop_assert_eq!(&activations, &m.activations, "user {}: Seat Activated events {}", u, context);
        }
        Ok(())
    }
}

fn run(users: usize, group_tier: Tier, steps: Vec<(i64, Step)>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move {
        let mut now = at("2026-11-28T09:00:00Z");
        let mut w = World::new(users, group_tier, now).await;
        for (i, (minutes, step)) in steps.into_iter().enumerate() {
            now += Duration::minutes(minutes);
            let context = format!("after step {i} at {now}: {step:?}");
            match step {
                Step::Direct { user, tier, unsubscribed } => w.direct(user % users, tier, unsubscribed, now).await?,
                Step::Group { user, member } => w.group(user % users, member, now).await?,
                Step::Regrant { user, tier, later, used } => {
                    w.group(user % users, false, now).await?;
                    w.direct(user % users, None, true, now).await?;
                    w.check(&format!("{context}, canceled"))?;
                    if used {
                        now += Duration::minutes(1);
                        w.write(0, vec![(user % users, 0, true)], None, now);
                        w.deliver(None, now).await?;
                        w.check(&format!("{context}, used while canceled"))?;
                    }
                    now += Duration::minutes(later);
                    w.direct(user % users, Some(tier), false, now).await?;
                }
                Step::Report { days_back, rows, pad_at } => {
                    w.write(days_back, rows.into_iter().map(|(u, c, a)| (u % users, c, a)).collect(), pad_at, now)
                }
                Step::Deliver { pick, again: true } if !w.delivered.is_empty() => w.redeliver(pick, now).await?,
                Step::Deliver { pick, .. } if !w.undelivered.is_empty() => w.deliver(pick, now).await?,
                Step::Deliver { .. } => {}
            }
            w.check(&context)?;
        }
        // The reports still undelivered arrive at last, newest first, an hour apart.
        while !w.undelivered.is_empty() {
            now += Duration::hours(1);
            w.deliver(None, now).await?;
            w.check(&format!("after a late delivery at {now}"))?;
        }
        Ok(())
    })
}

/// 256 by default; `PROPTEST_CASES` for the long profile.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn seats_follow_the_activity_history(
        users in 1..=USERS,
        group_tier in tier(),
        steps in prop::collection::vec((advance(), step()), 1..36),
    ) {
        run(users, group_tier, steps)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The smallest histories that tell the code and the contract apart (kept as examples)
// ---------------------------------------------------------------------------------------------

fn example(users: usize, steps: Vec<Step>) {
    run(users, Tier::Pro, steps.into_iter().map(|s| (1, s)).collect()).unwrap_or_else(|e| panic!("{e}"));
}

/// Activity recorded for a user who has never held a seat is kept ("Activity"), and is their
/// latest activity ever (`lastActiveDate`); a first grant later that day finds it, as a
/// re-grant does ("Vocabulary": `ACTIVE`, with a `Seat Activated` after its `Seat Granted`).
#[test]
fn a_first_grant_finds_the_activity_of_its_day_already_recorded() {
    example(
        1,
        vec![
            Step::Report { days_back: 0, rows: vec![(0, 0, true)], pad_at: None },
            Step::Deliver { pick: None, again: false },
            Step::Direct { user: 0, tier: Some(Tier::Pro), unsubscribed: false },
        ],
    );
}

/// Within one file a repeated (user, date, client type) row replaces the earlier one, whether
/// or not a batch boundary falls between them: a row with activity replaced by one without is
/// no activity.
#[test]
fn a_row_replaced_later_in_the_file_is_not_activity() {
    example(
        1,
        vec![
            Step::Direct { user: 0, tier: Some(Tier::Pro), unsubscribed: false },
            Step::Report { days_back: 0, rows: vec![(0, 0, true), (0, 0, false)], pad_at: Some(1) },
            Step::Deliver { pick: None, again: false },
        ],
    );
}
