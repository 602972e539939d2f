//! An audit cut into many invocations ends exactly where one uninterrupted audit ends.
//!
//! Two identical worlds (in-memory fakes) drift the same way without events; one is audited in a
//! single invocation, the other with every invocation cut after a few units of work, following
//! the continuations it puts on the bus — some delivered twice, some twice at once, some lost
//! (the next schedule tick resumes), some invocations failing on a throttled read (Lambda's retry
//! resumes). Both must end with the same seats, the same report and the same events; without
//! failures, the directory is read exactly as often (nothing starts over).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::domain::{GroupId, UserId};
use kiro_tests::{continuation, fixture};
use lambda_runtime::LambdaEvent;
use proptest::prelude::*;
use serde_json::{Value, json};

const USERS: usize = 24;
const GROUPS: usize = 4;
const TIERS: [&str; 3] = ["PRO", "PRO_PLUS", "POWER"];

/// A world, before drift: who is in which group, who is subscribed.
#[derive(Debug, Clone)]
struct Setup {
    members: Vec<(usize, usize)>,
    group_subs: Vec<(usize, usize)>,
    direct_subs: Vec<(usize, usize)>,
    /// Membership toggles no event reports.
    drift: Vec<(usize, usize)>,
    /// Subscriptions removed behind the API's back (their seats keep the source).
    orphaned_groups: Vec<usize>,
    revoke_limit: u8,
    mode: &'static str,
    force: bool,
}

impl Setup {
    /// A repair (limit 25%, not forced) of these memberships, group subscriptions and drift.
    fn repair(members: Vec<(usize, usize)>, group_subs: Vec<(usize, usize)>, drift: Vec<(usize, usize)>) -> Setup {
        Setup {
            members,
            group_subs,
            direct_subs: vec![],
            drift,
            orphaned_groups: vec![],
            revoke_limit: 25,
            mode: "repair",
            force: false,
        }
    }
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        proptest::collection::vec((0..GROUPS, 0..USERS), 0..40),
        proptest::collection::vec((0..GROUPS, 0..3usize), 1..=GROUPS),
        proptest::collection::vec((0..USERS, 0..3usize), 0..6),
        proptest::collection::vec((0..GROUPS, 0..USERS), 0..30),
        proptest::collection::vec(0..GROUPS, 0..2),
        prop_oneof![Just(0u8), Just(10), Just(25), Just(100)],
        prop_oneof![Just("repair"), Just("repair"), Just("report")],
        any::<bool>(),
    )
        .prop_map(|(members, group_subs, direct_subs, drift, orphaned_groups, revoke_limit, mode, force)| Setup {
            members,
            group_subs,
            direct_subs,
            drift,
            orphaned_groups,
            revoke_limit,
            mode,
            force,
        })
}

/// How the sliced audit's invocations go.
#[derive(Debug, Clone)]
struct Delivery {
    units: u32,
    /// Per continuation: 0 once, 1 twice in a row, 2 twice at once, 3 lost (a schedule tick
    /// resumes), 4 the invocation fails on a throttled directory read and Lambda retries it.
    fates: Vec<u8>,
    jitter: u64,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        1..4u32,
        proptest::collection::vec(
            prop_oneof![6 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)],
            64,
        ),
        1..u64::MAX,
    )
        .prop_map(|(units, fates, jitter)| Delivery { units, fates, jitter })
}

struct World {
    stack: kiro_tests::MemoryStack,
    users: Vec<UserId>,
    groups: Vec<GroupId>,
}

impl std::ops::Deref for World {
    type Target = kiro_tests::MemoryStack;

    fn deref(&self) -> &kiro_tests::MemoryStack {
        &self.stack
    }
}

impl World {
    /// The world of `s`, drifted; its audits cut after `units` units of work when given.
    async fn new(s: &Setup, units: Option<u32>) -> World {
        let mut stack = kiro_tests::MemoryStack::new(s.revoke_limit).await;
        stack.sync.audit_units_per_invocation = units;
        let users: Vec<UserId> =
            (0..USERS).map(|i| stack.directory.add_user(format!("u{i:02}"), format!("U {i}"), None)).collect();
        let groups: Vec<GroupId> = (0..GROUPS).map(|i| stack.directory.add_group(format!("g{i}"), None)).collect();
        let w = World { stack, users, groups };
        for &(g, u) in &s.members {
            w.flip(g, u);
        }
        for &(g, t) in &s.group_subs {
            w.subscribe("GROUP", w.groups[g].as_str(), TIERS[t]).await;
        }
        for &(u, t) in &s.direct_subs {
            w.subscribe("USER", w.users[u].as_str(), TIERS[t]).await;
        }
        // Drift no event reports.
        for &(g, u) in &s.drift {
            w.flip(g, u);
        }
        for &g in &s.orphaned_groups {
            w.store.forget_subscription(&kiro::domain::Principal::Group(w.groups[g].clone()));
        }
        w.sink.clear();
        w
    }

    /// Adds the user to the group, or removes them, in the directory only.
    fn flip(&self, group: usize, user: usize) {
        let (g, u) = (&self.groups[group], &self.users[user]);
        if self.directory.remove_user_from_group(g, u).is_none() {
            self.directory.add_member(g, u);
        }
    }

    async fn subscribe(&self, kind: &str, id: &str, tier: &str) {
        let body = json!({"principalType": kind, "principalId": id, "tier": tier});
        let (status, body) = kiro_tests::call_api(&self.api, "POST", "/subscriptions", Some(body)).await;
        // The same principal twice: at the same tier a retry (200), at another a conflict (409).
        assert!(matches!(status, 200 | 201 | 409), "{status} {body}");
    }

    /// Delivers `event` as a new invocation.
    async fn deliver(&self, event: &EventBridgeEvent<Value>) -> Result<Value, sync_group::SyncError> {
        self.deliver_as(event, &kiro_tests::unique("req")).await
    }

    /// Delivers `event` as the invocation `request_id` (a retry keeps the id).
    async fn deliver_as(
        &self,
        event: &EventBridgeEvent<Value>,
        request_id: &str,
    ) -> Result<Value, sync_group::SyncError> {
        sync_group::handle(&self.sync, LambdaEvent::new(event.clone(), kiro_tests::invocation(request_id))).await
    }

    /// `text` with the directory's random ids replaced by stable labels (`u03`, `g1`), so two
    /// worlds built alike compare equal.
    fn labeled(&self, text: String) -> String {
        let users = self.users.iter().enumerate().map(|(i, u)| (u.to_string(), format!("u{i:02}")));
        let groups = self.groups.iter().enumerate().map(|(i, g)| (g.to_string(), format!("g{i}")));
        users.chain(groups).fold(text, |text, (id, label)| text.replace(&id, &label))
    }

    /// Every seat, as (user, status, tier, sources), by label.
    fn seats(&self) -> Vec<String> {
        let mut seats: Vec<String> = self
            .store
            .seats_snapshot()
            .iter()
            .map(|s| {
                let mut sources: Vec<String> =
                    s.sources.iter().map(|(k, t)| self.labeled(format!("{k:?}={t:?}"))).collect();
                sources.sort();
                self.labeled(format!("{} {:?} {:?} {sources:?}", s.user_id, s.status, s.tier))
            })
            .collect();
        seats.sort();
        seats
    }

    /// The seat events committed, without ids and times.
    fn seat_events(&self) -> Vec<String> {
        let mut events: Vec<String> = self
            .store
            .committed_events()
            .iter()
            .map(|e| {
                let reason = e.detail.get("reason").unwrap_or(&Value::Null);
                self.labeled(format!("{} {} {reason}", e.detail_type, e.detail["userId"]))
            })
            .collect();
        events.sort();
        events
    }
}

fn audit_event(s: &Setup) -> EventBridgeEvent<Value> {
    let mut raw = fixture("cloudtrail/audit-requested-report.json");
    raw["detail"] = json!({"mode": s.mode, "force": s.force});
    raw["time"] = json!("2026-11-26T10:00:00Z");
    serde_json::from_value(raw).unwrap()
}

/// What must not depend on how the audit was cut (findings are by user id: by label, sorted).
fn comparable(w: &World, report: &Value) -> String {
    let mut r = report.clone();
    for volatile in ["auditId", "finishedAt", "invocations"] {
        r.as_object_mut().unwrap().remove(volatile);
    }
    let mut findings: Vec<String> =
        r["findings"].as_array().unwrap().iter().map(|f| w.labeled(f.to_string())).collect();
    findings.sort();
    r["findings"] = json!(findings);
    r.to_string()
}

fn check(s: Setup, d: Delivery) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(async move {
        let whole = World::new(&s, None).await;
        let before = whole.directory.requests();
        let one = whole.deliver(&audit_event(&s)).await.unwrap();
        prop_assert_eq!(&one["invocations"], &json!(1), "{}", one);
        let whole_reads = whole.directory.requests() - before;

        let sliced = World::new(&s, Some(d.units)).await;
        sliced.store.set_jitter(d.jitter);
        let before = sliced.directory.requests();
        // The first delivery is the schedule's tick; the fates apply to the continuations.
        let mut event = audit_event(&s);
        let mut answer = sliced.deliver(&event).await.unwrap();
        let mut fates = d.fates.iter().copied().cycle();
        let mut seen = 0;
        let mut failures = 0;
        let mut invocations = 1;
        let report = loop {
            if answer.get("continuing").is_none() {
                prop_assert!(answer.get("ignored").is_none(), "{}", answer);
                break answer;
            }
            invocations += 1;
            prop_assert!(invocations < 500, "the sliced audit never finished");
            let events = sliced.sink.events();
            let next = events[seen..].iter().rev().find(|e| e.detail_type == "Audit Requested").cloned();
            seen = events.len();
            let Some(next) = next else {
                return Err(TestCaseError::fail(format!("no continuation after {answer}")));
            };
            event = continuation(&event, next.detail.clone());
            answer = match fates.next().unwrap() {
                1 => {
                    let first = sliced.deliver(&event).await.unwrap();
                    let second = sliced.deliver(&event).await.unwrap();
                    // The duplicate resumed the next step, or found the audit finished.
                    if first.get("continuing").is_none() { first } else { second }
                }
                2 => {
                    let (a, b) = tokio::join!(sliced.deliver(&event), sliced.deliver(&event));
                    let (a, b) = (a.unwrap(), b.unwrap());
                    // One took the lease and the other stood aside, or they ran one after the other.
                    prop_assert!(
                        a.get("ignored").is_none() || b.get("ignored").is_none(),
                        "both skipped: {} / {}",
                        a,
                        b
                    );
                    let done = |x: &Value| x.get("continuing").is_none() && x.get("ignored").is_none();
                    if done(&a) || b.get("ignored").is_some() { a } else { b }
                }
                // Lost: the next schedule tick (same mode) resumes the audit in progress.
                3 => sliced.deliver(&audit_event(&s)).await.unwrap(),
                4 => {
                    sliced.directory.set_throttle_next(1);
                    let id = kiro_tests::unique("req");
                    let result = sliced.deliver_as(&event, &id).await;
                    sliced.directory.set_throttle_next(0);
                    match result {
                        Err(_) => {
                            failures += 1;
                            sliced.deliver_as(&event, &id).await.unwrap()
                        }
                        Ok(answer) => answer,
                    }
                }
                _ => sliced.deliver(&event).await.unwrap(),
            };
        };

        prop_assert_eq!(
            comparable(&sliced, &report),
            comparable(&whole, &one),
            "sliced audit ended elsewhere than the whole one"
        );
        prop_assert_eq!(sliced.seats(), whole.seats());
        prop_assert_eq!(sliced.seat_events(), whole.seat_events());
        prop_assert!(sliced.store.checkpoint_snapshot().is_none(), "the finished audit left its checkpoint");
        let reads = sliced.directory.requests() - before;
        if failures == 0 {
            prop_assert_eq!(reads, whole_reads, "the sliced audit read the directory more: it started something over");
        }
        let completed: Vec<_> =
            sliced.sink.events().into_iter().filter(|e| e.detail_type == "Audit Completed").collect();
        prop_assert_eq!(completed.len(), 1, "Audit Completed published once");
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_sliced_audit_ends_where_a_whole_one_does(s in setup(), d in delivery()) {
        check(s, d)?;
    }
}

#[tokio::test]
async fn the_guard_counts_cancellations_found_in_every_invocation() {
    // Every group is read in its own invocation; each group alone stays under the limit, all
    // of them together do not: the guard must see them all before cancelling any.
    let s = Setup {
        revoke_limit: 10,
        ..Setup::repair(
            (0..GROUPS).flat_map(|g| (0..6).map(move |u| (g, g * 6 + u))).collect(),
            (0..GROUPS).map(|g| (g, 0)).collect(),
            (0..GROUPS).flat_map(|g| (0..2).map(move |u| (g, g * 6 + u))).collect(),
        )
    };
    let w = World::new(&s, Some(1)).await;
    let sink = w.sink.clone();
    let (report, invocations) = kiro_tests::audit_to_completion(&w.sync, audit_event(&s), || sink.events()).await;
    assert!(invocations > GROUPS as u32, "{invocations}");
    assert_eq!(report["invocations"], json!(invocations));
    // 8 of 24 seats lose their group (33% > 10%): halted, none canceled.
    assert_eq!((report["halted"].clone(), report["canceled"].clone()), (json!(true), json!(0)), "{report}");
    assert_eq!(report["cancelsWithheld"], json!(8), "{report}");
    assert_eq!(w.store.seats_snapshot().iter().filter(|s| s.holds()).count(), 24);
}

#[tokio::test]
async fn a_request_for_another_audit_waits_for_the_one_in_progress() {
    let s = Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0), (1, 1)], vec![(0, 9)]);
    let w = World::new(&s, Some(1)).await;
    let first = w.deliver(&audit_event(&s)).await.unwrap();
    assert_eq!(first["continuing"], json!(true), "{first}");
    let report_mode = Setup { mode: "report", ..s.clone() };
    let other = w.deliver(&audit_event(&report_mode)).await.unwrap();
    let why = other["ignored"].as_str().unwrap_or_default();
    assert!(why.contains(first["auditId"].as_str().unwrap()) && why.contains("in progress"), "{other}");
    // The continuation of an audit that is not the one in progress does nothing either.
    let stray = continuation(&audit_event(&s), json!({"mode": "repair", "continues": "not-this-one"}));
    assert!(w.deliver(&stray).await.unwrap()["ignored"].is_string());
    // The audit itself carries on, and its report counts the invocations.
    let sink = w.sink.clone();
    let resume = continuation(&audit_event(&s), json!({"mode": "repair", "continues": first["auditId"]}));
    let (report, invocations) = kiro_tests::audit_to_completion(&w.sync, resume, || sink.events()).await;
    assert_eq!(report["auditId"], first["auditId"]);
    assert_eq!(report["invocations"], json!(invocations + 1));
    assert_eq!(report["granted"], json!(1), "{report}");
    // Once it finished, its late continuation is acknowledged, not run again.
    let late = continuation(&audit_event(&s), json!({"mode": "repair", "continues": first["auditId"]}));
    assert!(w.deliver(&late).await.unwrap()["ignored"].as_str().unwrap().contains("finished"));
}

#[tokio::test]
async fn lambdas_retry_of_an_invocation_that_died_holding_the_audit_resumes_it() {
    let s = Setup {
        direct_subs: vec![(12, 2)],
        ..Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0), (1, 1)], vec![(0, 9), (0, 1)])
    };
    use kiro::ports::AuditCheckpoints;
    let w = World::new(&s, Some(1)).await;
    let first = w.deliver(&audit_event(&s)).await.unwrap();
    assert_eq!(first["continuing"], json!(true), "{first}");
    let next = continuation(&audit_event(&s), json!({"mode": "repair", "continues": first["auditId"]}));
    // The continuation's invocation took the lease and was killed (a timeout): no save.
    let head = w.store.checkpoint_snapshot().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    w.store.claim_checkpoint(&head, "req-dead", now + 600_000, now).await.unwrap();
    // A duplicate delivery stays out while the lease lasts...
    let other = w.deliver(&next).await.unwrap();
    assert!(other["ignored"].as_str().unwrap().contains("running in another invocation"), "{other}");
    // ...Lambda's retry of the dead invocation, under its request id, resumes at once.
    let retried = w.deliver_as(&next, "req-dead").await.unwrap();
    assert!(retried.get("ignored").is_none(), "{retried}");
    let sink = w.sink.clone();
    let (report, _) = if retried.get("continuing").is_some() {
        let again = continuation(&audit_event(&s), json!({"mode": "repair", "continues": first["auditId"]}));
        kiro_tests::audit_to_completion(&w.sync, again, || sink.events()).await
    } else {
        (retried, 0)
    };
    assert_eq!(report["auditId"], first["auditId"]);
    assert_eq!((report["granted"].clone(), report["canceled"].clone()), (json!(1), json!(1)), "{report}");
}

/// Issue 19: an invocation that crashed right after committing a repair left that change's
/// event in the outbox, and Lambda's retry resumed past the change without publishing it (the
/// outbox was swept only at the start of an audit's first invocation).
#[tokio::test]
async fn the_retry_of_an_invocation_that_crashed_after_a_commit_publishes_its_events() {
    // One silent join and one silent leave: the repair grants one seat and cancels one.
    let s = Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0)], vec![(0, 9), (0, 1)]);
    let w = World::new(&s, None).await;
    w.store.crash_after_next_commit();
    let request = kiro_tests::unique("req");
    assert!(w.deliver_as(&audit_event(&s), &request).await.is_err(), "the injected crash fails the invocation");
    assert!(!w.store.outboxes_snapshot().is_empty(), "the crashed commit's events wait in the outbox");

    let report = w.deliver_as(&audit_event(&s), &request).await.unwrap();
    assert_eq!(report["invocations"], json!(2), "{report}");
    assert!(w.store.outboxes_snapshot().is_empty(), "events left unpublished");
    let published: Vec<_> = w.sink.events().iter().map(|e| e.detail_type.clone()).collect();
    for wanted in ["Seat Granted", "Seat Canceled"] {
        assert_eq!(published.iter().filter(|t| *t == wanted).count(), 1, "{published:?}");
    }
}

/// An event bus that is down does not stop a repair: the seats are repaired, the events wait in
/// the outbox (none lost), and the next repair publishes them.
#[tokio::test]
async fn a_repair_goes_on_while_the_event_bus_is_down() {
    let s = Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0)], vec![(0, 9), (0, 1)]);
    let w = World::new(&s, None).await;
    // An event from before the outage is still in the outbox.
    w.store.crash_after_next_commit();
    let body = json!({"principalType": "USER", "principalId": w.users[20], "tier": "POWER"});
    let (status, _) = kiro_tests::call_api(&w.api, "POST", "/subscriptions", Some(body)).await;
    assert_eq!(status, 500, "the crash after the commit fails the call");
    let waiting = w.store.outboxes_snapshot().len();
    assert_eq!(waiting, 1);

    w.sink.fail_next(1_000);
    let report = w.deliver(&audit_event(&s)).await.expect("the repair finishes without the bus");
    assert_eq!((report["granted"].clone(), report["canceled"].clone()), (json!(1), json!(1)), "{report}");
    assert!(w.sink.events().is_empty());
    assert_eq!(w.store.outboxes_snapshot().len(), waiting + 1, "the repair's own events wait too");

    w.sink.fail_next(0);
    w.deliver(&audit_event(&s)).await.unwrap();
    assert!(w.store.outboxes_snapshot().is_empty());
    let published: Vec<_> = w.sink.events().iter().map(|e| e.detail_type.clone()).collect();
    assert_eq!(published.iter().filter(|t| *t == "Seat Granted").count(), 2, "{published:?}");
    assert_eq!(published.iter().filter(|t| *t == "Seat Canceled").count(), 1, "{published:?}");
}

/// One audit at a time, fresh ones included: two requests at the same moment run one audit; the
/// other is acknowledged and says why. (Before fresh audits took the lease, both ran.)
#[tokio::test]
async fn two_fresh_audits_at_once_run_one() {
    let s = Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0)], vec![(0, 9), (0, 1)]);
    let w = World::new(&s, None).await;
    w.store.set_jitter(7);
    let event = audit_event(&s);
    let (a, b) = tokio::join!(w.deliver(&event), w.deliver(&event));
    let answers = [a.unwrap(), b.unwrap()];
    let completed = answers.iter().filter(|a| a.get("auditId").is_some()).count();
    let ignored = answers.iter().filter(|a| a.get("ignored").is_some()).count();
    assert_eq!((completed, ignored), (1, 1), "{answers:?}");
    let reports = kiro::ports::AuditStore::list_audits(&*w.store, 10, None).await.unwrap().items;
    assert_eq!(reports.len(), 1, "one report");
}

/// What wins: a repair supersedes a report audit in progress (the daily repair is never starved
/// by reports); the report's continuation then finds another audit and stops.
#[tokio::test]
async fn a_repair_supersedes_a_report_in_progress() {
    let report =
        Setup { mode: "report", ..Setup::repair((0..8).map(|u| (0, u)).collect(), vec![(0, 0)], vec![(0, 9)]) };
    let w = World::new(&report, Some(1)).await;
    let first = w.deliver(&audit_event(&report)).await.unwrap();
    assert_eq!(first["continuing"], json!(true), "{first}");

    let repair = Setup { mode: "repair", ..report.clone() };
    let sink = w.sink.clone();
    let (done, _) = kiro_tests::audit_to_completion(&w.sync, audit_event(&repair), || sink.events()).await;
    assert_eq!((done["mode"].as_str(), done["granted"].as_u64()), (Some("repair"), Some(1)), "{done}");

    let late = continuation(&audit_event(&report), json!({"mode": "report", "continues": first["auditId"]}));
    let answer = w.deliver(&late).await.unwrap();
    assert!(answer["ignored"].as_str().unwrap_or_default().contains("not in progress"), "{answer}");
}
