//! Property: whatever the interleaving of membership events — duplicated, reordered, handled
//! concurrently with the directory still changing — once every change has been delivered at
//! least once, the seats equal what the directory implies, and the emitted events replay to
//! exactly those seats (none lost, none doubled).
//!
//! In-memory ports; every port call yields, so concurrent handlers interleave between any two
//! calls. `PROPTEST_CASES=10000` for the long profile.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use kiro::domain::{GroupId, Principal, SeatStatus, Subscription, Tier, UserId};
use kiro::ports::SubscriptionStore;
use lambda_runtime::LambdaEvent;
use proptest::prelude::*;
use serde_json::{Value, json};
use sync_group::handle;

const USERS: usize = 4;
const GROUPS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// Add or remove (group, user) in the directory; the event goes to the pending queue.
    Toggle { group: usize, user: usize, console: bool },
    /// Deliver a pending event (by index modulo the queue), keeping it for a possible duplicate.
    Deliver { pick: usize, keep: bool },
    /// Deliver two pending events concurrently.
    Concurrent { a: usize, b: usize },
    /// Deliver a pending event while, `delay` calls later, the directory changes again and that
    /// change's event is handled: a handler's read goes stale before it writes.
    Racing { pick: usize, group: usize, user: usize, console: bool, delay: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..GROUPS, 0..USERS, any::<bool>()).prop_map(|(group, user, console)| Step::Toggle { group, user, console }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, keep)| Step::Deliver { pick, keep }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Concurrent { a, b }),
        2 => (any::<usize>(), 0..GROUPS, 0..USERS, any::<bool>(), 0..12usize)
            .prop_map(|(pick, group, user, console, delay)| Step::Racing { pick, group, user, console, delay }),
    ]
}

struct World {
    stack: kiro_tests::MemoryStack,
    users: Vec<UserId>,
    groups: Vec<GroupId>,
    tiers: HashMap<GroupId, Tier>,
}

impl std::ops::Deref for World {
    type Target = kiro_tests::MemoryStack;

    fn deref(&self) -> &kiro_tests::MemoryStack {
        &self.stack
    }
}

impl World {
    async fn new(subscribed: [Option<Tier>; GROUPS], jitter: u64) -> World {
        let stack = kiro_tests::MemoryStack::new(25).await;
        let now = Utc::now();
        let users = (0..USERS).map(|i| stack.directory.add_user(format!("u{i}"), format!("U {i}"), None)).collect();
        let groups: Vec<GroupId> = (0..GROUPS).map(|i| stack.directory.add_group(format!("g{i}"), None)).collect();
        let mut tiers = HashMap::new();
        for (g, tier) in groups.iter().zip(subscribed) {
            if let Some(tier) = tier {
                let sub = Subscription::new(Principal::Group(g.clone()), "g".into(), tier, "test", now);
                stack.store.create_subscription(&sub).await.unwrap();
                tiers.insert(g.clone(), tier);
            }
        }
        stack.store.set_jitter(jitter);
        stack.directory.set_jitter(jitter.rotate_left(17) | 1);
        World { stack, users, groups, tiers }
    }

    /// Changes the directory and returns the event CloudTrail would deliver for it.
    fn toggle(&self, group: usize, user: usize, console: bool) -> LambdaEvent<EventBridgeEvent<Value>> {
        let (g, u) = (&self.groups[group], &self.users[user]);
        if scim_channel(group, user) {
            // An external IdP's SCIM PatchGroup: which member changed is redacted.
            if self.directory.remove_user_from_group(g, u).is_none() {
                self.directory.add_member(g, u);
            }
            let detail = json!({"eventSource": "identitystore-scim.amazonaws.com", "eventName": "PatchGroup",
                                "requestParameters": {"id": format!("arn:aws:identitystore:::group/{g}")}});
            return kiro_tests::eventbridge("AWS API Call via CloudTrail", "aws.identitystore-scim", detail);
        }
        kiro_tests::toggle_membership(&self.directory, g, u, console)
    }

    /// The sources each user should hold: the subscribed groups they are in.
    fn truth(&self) -> BTreeMap<UserId, Tier> {
        let mut top: BTreeMap<UserId, Tier> = BTreeMap::new();
        for g in &self.groups {
            let Some(tier) = self.tiers.get(g) else { continue };
            for m in self.directory.memberships_of_group(g) {
                let e = top.entry(m.user_id).or_insert(*tier);
                *e = (*e).max(*tier);
            }
        }
        top
    }
}

fn run(subscribed: [Option<Tier>; GROUPS], jitter: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async move {
        let w = World::new(subscribed, jitter).await;
        let mut pending: Vec<LambdaEvent<EventBridgeEvent<Value>>> = Vec::new();
        let mut undelivered: Vec<bool> = Vec::new();
        for s in steps {
            match s {
                Step::Toggle { group, user, console } => {
                    pending.push(w.toggle(group, user, console));
                    undelivered.push(true);
                }
                Step::Deliver { pick, keep } if !pending.is_empty() => {
                    let i = pick % pending.len();
                    let e = if keep { clone_event(&pending[i]) } else { pending.remove(i) };
                    if keep {
                        undelivered[i] = false;
                    } else {
                        undelivered.remove(i);
                    }
                    handle(&w.sync, e).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                Step::Concurrent { a, b } if !pending.is_empty() => {
                    let (i, j) = (a % pending.len(), b % pending.len());
                    undelivered[i] = false;
                    undelivered[j] = false;
                    let (ea, eb) = (clone_event(&pending[i]), clone_event(&pending[j]));
                    let (ra, rb) = tokio::join!(handle(&w.sync, ea), handle(&w.sync, eb));
                    ra.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    rb.map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                Step::Racing { pick, group, user, console, delay } if !pending.is_empty() => {
                    let i = pick % pending.len();
                    undelivered[i] = false;
                    let first = clone_event(&pending[i]);
                    let w = &w;
                    let racer = async move {
                        for _ in 0..delay {
                            tokio::task::yield_now().await;
                        }
                        let e = w.toggle(group, user, console);
                        let copy = clone_event(&e);
                        (handle(&w.sync, e).await, copy)
                    };
                    let (ra, (rb, raced)) = tokio::join!(handle(&w.sync, first), racer);
                    ra.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    rb.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    pending.push(raced);
                    undelivered.push(false);
                }
                _ => {}
            }
        }
        // Every change is delivered at least once (the rest of the queue, in reverse: late and out of order).
        for (e, missing) in pending.into_iter().zip(undelivered).rev() {
            if missing {
                handle(&w.sync, e).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }

        let truth = w.truth();
        let seats: BTreeMap<UserId, (SeatStatus, Tier)> =
            w.store.seats_snapshot().into_iter().map(|s| (s.user_id.clone(), (s.status, s.tier))).collect();
        let active: BTreeMap<UserId, Tier> =
            seats.iter().filter(|(_, (st, _))| st.holds()).map(|(u, (_, t))| (u.clone(), *t)).collect();
        prop_assert_eq!(&active, &truth, "seats differ from the directory");

        // Replaying the events gives the same seats; each one follows from the state before it.
        let mut replay: BTreeMap<String, Option<String>> = BTreeMap::new();
        for e in w.sink.events() {
            let user = e.detail["userId"].as_str().unwrap().to_owned();
            let state = replay.entry(user.clone()).or_insert(None);
            match e.detail_type.as_str() {
                "Seat Granted" => {
                    prop_assert!(state.is_none(), "Granted for an active seat of {}", user);
                    *state = e.detail["tier"].as_str().map(str::to_owned);
                }
                "Seat Tier Changed" => {
                    prop_assert_eq!(
                        state.as_deref(),
                        e.detail["fromTier"].as_str(),
                        "TierChanged from a tier not held"
                    );
                    *state = e.detail["toTier"].as_str().map(str::to_owned);
                }
                "Seat Canceled" => {
                    prop_assert_eq!(state.as_deref(), e.detail["previousTier"].as_str(), "Canceled a seat not held");
                    *state = None;
                }
                other => prop_assert!(false, "unexpected event {}", other),
            }
        }
        let replayed: BTreeMap<String, String> = replay.into_iter().filter_map(|(u, t)| t.map(|t| (u, t))).collect();
        let expected: BTreeMap<String, String> =
            truth.iter().map(|(u, t)| (u.to_string(), t.as_str().to_owned())).collect();
        prop_assert_eq!(replayed, expected, "events do not replay to the seats");
        Ok(())
    })
}

/// One (group, user) pair in three changes through SCIM, the rest through the API or the console.
fn scim_channel(group: usize, user: usize) -> bool {
    (group + user) % 3 == 0
}

fn clone_event(e: &LambdaEvent<EventBridgeEvent<Value>>) -> LambdaEvent<EventBridgeEvent<Value>> {
    LambdaEvent::new(e.payload.clone(), e.context.clone())
}

fn tier() -> impl Strategy<Value = Option<Tier>> {
    prop_oneof![Just(None), Just(Some(Tier::Pro)), Just(Some(Tier::ProPlus)), Just(Some(Tier::Power))]
}

/// 256 by default; `PROPTEST_CASES` for the long profile.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn seats_converge_on_the_directory(
        subscribed in [tier(), tier(), tier()],
        jitter in 1..u64::MAX,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        run(subscribed, jitter, steps)?;
    }
}

/// The race the re-check exists for: a join is being handled when the member is removed and
/// the removal's event is handled; whatever the timing, the seat ends canceled.
#[test]
fn a_stale_join_never_outlives_the_removal() {
    for jitter in 1..40u64 {
        for delay in 0..16 {
            let steps = vec![
                Step::Toggle { group: 0, user: 0, console: true },
                Step::Racing { pick: 0, group: 0, user: 0, console: true, delay },
            ];
            run([Some(Tier::Pro), None, None], jitter * 7919, steps)
                .unwrap_or_else(|e| panic!("jitter {jitter}, delay {delay}: {e}"));
        }
    }
}
