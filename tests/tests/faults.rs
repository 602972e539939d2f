//! Property: convergence under faults. Random admin calls (subscribe, unsubscribe, re-tier),
//! membership changes whose events arrive duplicated, reordered and concurrently, and injected
//! faults — throttling, lost races (TransactionCanceled), a crash right after a commit, an event
//! bus that is down or rejects entries — followed by one audit: the seats equal the truth from
//! the subscriptions and the directory, and the emitted events replay to exactly those seats.
//!
//! A failed event is retried (as Lambda/EventBridge do); a failed API call is just a failure the
//! admin sees. `PROPTEST_CASES=10000` for the long profile (`make test-long`).

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::domain::{GroupId, Principal, SourceKey, Tier, UserId};
use lambda_runtime::LambdaEvent;
use proptest::prelude::*;
use serde_json::{Value, json};

const USERS: usize = 4;
const GROUPS: usize = 3;

#[derive(Debug, Clone)]
enum Fault {
    StoreThrottle(usize),
    DirectoryThrottle(usize),
    LostRaces(usize),
    CrashAfterCommit,
    BusDown(usize),
    BusRejects(usize),
}

#[derive(Debug, Clone)]
enum ApiOp {
    SubscribeUser { user: usize, tier: Tier },
    SubscribeGroup { group: usize, tier: Tier },
    Unsubscribe { group: Option<usize>, user: usize },
    PutTier { group: Option<usize>, user: usize, tier: Tier },
}

#[derive(Debug, Clone)]
enum Op {
    Toggle {
        group: usize,
        user: usize,
        console: bool,
    },
    Deliver {
        pick: usize,
        keep: bool,
    },
    Concurrent {
        a: usize,
        b: usize,
    },
    Api(ApiOp),
    /// Two admin calls at once (e.g. unsubscribe and subscribe the same user).
    RaceApi(ApiOp, ApiOp),
    /// An admin call while a pending event is handled.
    RaceApiEvent(ApiOp, usize),
    Inject(Fault),
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![Just(Tier::Pro), Just(Tier::ProPlus), Just(Tier::Power)]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1..=2usize).prop_map(Fault::StoreThrottle),
        (1..=2usize).prop_map(Fault::DirectoryThrottle),
        (1..=3usize).prop_map(Fault::LostRaces),
        Just(Fault::CrashAfterCommit),
        (1..=2usize).prop_map(Fault::BusDown),
        (1..=3usize).prop_map(Fault::BusRejects),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..GROUPS, 0..USERS, any::<bool>()).prop_map(|(group, user, console)| Op::Toggle { group, user, console }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, keep)| Op::Deliver { pick, keep }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Concurrent { a, b }),
        5 => api_op().prop_map(Op::Api),
        2 => (api_op(), api_op()).prop_map(|(a, b)| Op::RaceApi(a, b)),
        2 => (api_op(), any::<usize>()).prop_map(|(a, pick)| Op::RaceApiEvent(a, pick)),
        3 => fault().prop_map(Op::Inject),
    ]
}

fn api_op() -> impl Strategy<Value = ApiOp> {
    prop_oneof![
        2 => (0..USERS, tier()).prop_map(|(user, tier)| ApiOp::SubscribeUser { user, tier }),
        2 => (0..GROUPS, tier()).prop_map(|(group, tier)| ApiOp::SubscribeGroup { group, tier }),
        2 => (proptest::option::of(0..GROUPS), 0..USERS).prop_map(|(group, user)| ApiOp::Unsubscribe { group, user }),
        2 => (proptest::option::of(0..GROUPS), 0..USERS, tier()).prop_map(|(group, user, tier)| ApiOp::PutTier { group, user, tier }),
    ]
}

type Event = LambdaEvent<EventBridgeEvent<Value>>;

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
    async fn new(jitter: u64) -> World {
        let stack = kiro_tests::MemoryStack::new(25).await;
        let users = (0..USERS).map(|i| stack.directory.add_user(format!("u{i}"), format!("U {i}"), None)).collect();
        let groups = (0..GROUPS).map(|i| stack.directory.add_group(format!("g{i}"), None)).collect();
        stack.store.set_jitter(jitter);
        stack.directory.set_jitter(jitter.rotate_left(17) | 1);
        World { stack, users, groups }
    }

    fn toggle(&self, group: usize, user: usize, console: bool) -> Event {
        kiro_tests::toggle_membership(&self.directory, &self.groups[group], &self.users[user], console)
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> i64 {
        kiro_tests::call_api(&self.api, method, path, body).await.0
    }

    fn principal(&self, group: Option<usize>, user: usize) -> (&'static str, String) {
        match group {
            Some(g) => ("GROUP", self.groups[g].to_string()),
            None => ("USER", self.users[user].to_string()),
        }
    }

    async fn call(&self, op: &ApiOp) -> i64 {
        match op {
            ApiOp::SubscribeUser { user, tier } => {
                let body = json!({"principalType": "USER", "principalId": self.users[*user], "tier": tier});
                self.api("POST", "/subscriptions", Some(body)).await
            }
            ApiOp::SubscribeGroup { group, tier } => {
                let body = json!({"principalType": "GROUP", "principalId": self.groups[*group], "tier": tier});
                self.api("POST", "/subscriptions", Some(body)).await
            }
            ApiOp::Unsubscribe { group, user } => {
                let (kind, id) = self.principal(*group, *user);
                self.api("DELETE", &format!("/subscriptions/{kind}/{id}"), None).await
            }
            ApiOp::PutTier { group, user, tier } => {
                let (kind, id) = self.principal(*group, *user);
                self.api("PUT", &format!("/subscriptions/{kind}/{id}"), Some(json!({"tier": tier}))).await
            }
        }
    }

    fn inject(&self, f: &Fault) {
        match f {
            Fault::StoreThrottle(n) => self.store.throttle_next(*n),
            Fault::DirectoryThrottle(n) => self.directory.set_throttle_next(*n),
            Fault::LostRaces(n) => self.store.fail_next_commits(*n),
            Fault::CrashAfterCommit => self.store.crash_after_next_commit(),
            Fault::BusDown(n) => self.sink.fail_next(*n),
            Fault::BusRejects(n) => self.sink.reject_next_entries(*n),
        }
    }

    /// What each user should hold: their direct subscription and their subscribed groups.
    fn truth(&self) -> BTreeMap<UserId, Tier> {
        let mut top: BTreeMap<UserId, Tier> = BTreeMap::new();
        let mut raise = |u: UserId, t: Tier| {
            let e = top.entry(u).or_insert(t);
            *e = (*e).max(t);
        };
        for sub in self.store.subscriptions_snapshot() {
            match &sub.principal {
                Principal::User(u) => raise(u.clone(), sub.tier),
                Principal::Group(g) => {
                    for m in self.directory.memberships_of_group(g) {
                        raise(m.user_id, sub.tier);
                    }
                }
            }
        }
        top
    }
}

fn run(jitter: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(async move {
        let w = World::new(jitter).await;
        let mut pending: Vec<(Event, bool)> = Vec::new();
        let faultless = !ops.iter().any(|op| matches!(op, Op::Inject(_)));
        let deliver = |e: Event| {
            let w = &w;
            async move { sync_group::handle(&w.sync, e).await }
        };
        for op in ops {
            match op {
                Op::Toggle { group, user, console } => pending.push((w.toggle(group, user, console), true)),
                Op::Deliver { pick, keep } if !pending.is_empty() => {
                    let i = pick % pending.len();
                    let e = clone(&pending[i].0);
                    if deliver(e).await.is_ok() {
                        if keep {
                            pending[i].1 = false;
                        } else {
                            pending.remove(i);
                        }
                    }
                }
                Op::Concurrent { a, b } if !pending.is_empty() => {
                    let (i, j) = (a % pending.len(), b % pending.len());
                    let (ra, rb) = tokio::join!(deliver(clone(&pending[i].0)), deliver(clone(&pending[j].0)));
                    if ra.is_ok() {
                        pending[i].1 = false;
                    }
                    if rb.is_ok() {
                        pending[j].1 = false;
                    }
                }
                Op::Api(a) => {
                    w.call(&a).await;
                }
                Op::RaceApi(a, b) => {
                    tokio::join!(w.call(&a), w.call(&b));
                }
                Op::RaceApiEvent(a, pick) if !pending.is_empty() => {
                    let i = pick % pending.len();
                    let (_, r) = tokio::join!(w.call(&a), deliver(clone(&pending[i].0)));
                    if r.is_ok() {
                        pending[i].1 = false;
                    }
                }
                Op::Inject(f) => w.inject(&f),
                _ => {}
            }
        }
        // The faults pass; every event not yet handled is delivered (retried until it succeeds).
        w.store.throttle_next(0);
        w.store.fail_next_commits(0);
        w.directory.set_throttle_next(0);
        w.sink.fail_next(0);
        w.sink.reject_next_entries(0);
        for (e, undelivered) in pending.into_iter().rev() {
            if undelivered {
                let mut tries = 0;
                while deliver(clone(&e)).await.is_err() {
                    tries += 1;
                    prop_assert!(tries < 5, "an event kept failing without faults");
                }
            }
        }
        // Without faults nothing is left half done: the seats already match, before any audit.
        if faultless {
            let active: BTreeMap<UserId, Tier> = w
                .store
                .seats_snapshot()
                .into_iter()
                .filter(|s| s.holds())
                .map(|s| (s.user_id.clone(), s.tier))
                .collect();
            prop_assert_eq!(&active, &w.truth(), "without faults, seats differ from the truth before the audit");
        }
        // One audit: repairs what API failures left half done, publishes what the outbox kept.
        let audit =
            kiro_tests::eventbridge("Audit Requested", "kiro.subscriptions", json!({"mode": "repair", "force": true}));
        let mut tries = 0;
        while deliver(clone(&audit)).await.is_err() {
            tries += 1;
            prop_assert!(tries < 5, "the audit kept failing without faults");
        }
        prop_assert!(w.store.outboxes_snapshot().is_empty(), "events left unpublished");

        let truth = w.truth();
        let seats = w.store.seats_snapshot();
        let active: BTreeMap<UserId, Tier> =
            seats.iter().filter(|s| s.holds()).map(|s| (s.user_id.clone(), s.tier)).collect();
        prop_assert_eq!(&active, &truth, "seats differ from the truth");
        for s in &seats {
            let direct = s.sources.contains_key(&SourceKey::Direct);
            let subscribed =
                w.store.subscriptions_snapshot().iter().any(|sub| sub.principal == Principal::User(s.user_id.clone()));
            prop_assert_eq!(direct, subscribed, "direct source without its subscription, or the reverse");
        }

        // Exactly once: what was published is what was committed, no event lost, none doubled.
        let key = |e: &kiro::ports::OutEvent| (e.detail_type.clone(), e.detail.to_string());
        let mut published: Vec<_> =
            w.sink.events().iter().filter(|e| e.detail_type != "Audit Completed").map(key).collect();
        let mut committed: Vec<_> = w.store.committed_events().iter().map(key).collect();
        published.sort();
        committed.sort();
        prop_assert_eq!(&published, &committed, "published events differ from committed ones");

        // The events replay to the seats. EventBridge does not keep order (and an outbox flushed
        // late arrives after newer events), so per user the events must chain from no seat to the
        // final one in some order: every tier is entered as often as it is left.
        let mut balance: BTreeMap<(String, String), i64> = BTreeMap::new();
        let none = "NONE".to_owned();
        for e in w.sink.events().iter().filter(|e| e.detail_type != "Audit Completed") {
            let user = e.detail["userId"].as_str().unwrap().to_owned();
            let text = |k: &str| e.detail[k].as_str().unwrap_or_default().to_owned();
            let (from, to) = match e.detail_type.as_str() {
                "Seat Granted" => (none.clone(), text("tier")),
                "Seat Tier Changed" => (text("fromTier"), text("toTier")),
                "Seat Canceled" => (text("previousTier"), none.clone()),
                other => return Err(TestCaseError::fail(format!("unexpected event {other}"))),
            };
            *balance.entry((user.clone(), from)).or_default() -= 1;
            *balance.entry((user, to)).or_default() += 1;
        }
        for ((user, node), net) in balance {
            let uid = UserId::parse("u", &user).unwrap();
            let final_tier = truth.get(&uid).map(|t| t.as_str().to_owned()).unwrap_or_else(|| none.clone());
            let expected = i64::from(node == final_tier) - i64::from(node == none);
            prop_assert_eq!(net, expected, "events of {} do not chain to its seat at {}", user, node);
        }
        Ok(())
    })
}

fn clone(e: &Event) -> Event {
    LambdaEvent::new(e.payload.clone(), e.context.clone())
}

/// 256 by default; `PROPTEST_CASES` for the long profile.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn seats_converge_under_faults(jitter in 1..u64::MAX, ops in proptest::collection::vec(op(), 1..50)) {
        run(jitter, ops)?;
    }
}

/// An unsubscribe racing a new subscription of the same user: whatever the timing, the seat
/// ends holding exactly what the subscriptions say (the removal is guarded by the subscription
/// still being gone).
#[test]
fn an_unsubscribe_racing_a_resubscribe_never_strips_the_new_source() {
    for jitter in 1..300u64 {
        let ops = vec![
            Op::Api(ApiOp::SubscribeUser { user: 0, tier: Tier::Pro }),
            Op::RaceApi(
                ApiOp::Unsubscribe { group: None, user: 0 },
                ApiOp::SubscribeUser { user: 0, tier: Tier::Power },
            ),
        ];
        run(jitter * 104_729, ops).unwrap_or_else(|e| panic!("jitter {jitter}: {e}"));
    }
}
