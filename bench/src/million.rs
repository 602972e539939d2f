//! Issue 17: the audit over a million seats — 1,000 subscribed groups of 1,000 members — with the
//! in-memory fakes, in report and in repair mode, each cut into invocations with checkpoints as
//! the deadline cuts it: requests per seat by operation, wall time, the checkpoints' state, and
//! the audit's own peak memory against sync-group's configured memory.
//!
//! The seats are seeded through the store's ports, not through 1,000 fan-outs (which would keep
//! a million events in `MemoryStore` and `MemorySink`): each seat is computed by the domain's
//! `transition`, as a fan-out computes it, and committed with its grant row and the directory's
//! membership id through `SeatStore::commit`, 49 seats a transaction (with the group's grant
//! counter, 99 items); each group's subscription is created with its fan-out done. Every seat
//! carries its user name, as once the first repairs after the fan-outs have named them all: the
//! audits measured are the daily ones.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kiro::domain::audit::{self, GroupDrift, Planned, Subscribed};
use kiro::domain::seat::{CancelReason, SeatChange, SourceKey, SourceOp, transition};
use kiro::domain::signal::AUDIT_REQUESTED;
use kiro::domain::{FanOut, FanOutState, GroupId, MembershipId, Principal, Seat, Subscription, Tier, UserId};
use kiro::ports::{Commit, SeatStore, SeatWrite, SubscriptionStore};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::directory::Shard;
use crate::fakes::{self, Fakes, Requests};
use crate::memory::{self, Heap, HeapWindow, Resident, mib};
use crate::report::{REQUESTS_PER_SEAT, Row, Section, Target};
use crate::{ms, thousands};

pub const GROUPS: usize = 1_000;
pub const PER_GROUP: usize = 1_000;
/// A seat and its grant row each, and the group's grant counter: 99 of a transaction's 100 items.
const SEATS_PER_COMMIT: usize = 49;
/// Invocations an audit is cut into, about: as the other audit benchmarks cut theirs.
const INVOCATIONS: usize = 10;

/// A subscribed group: its shard of the directory and its members, in creation order.
pub(crate) struct Group {
    shard: Shard,
    id: GroupId,
    pub(crate) members: Vec<UserId>,
}

/// What no event reported: members removed from their group, users added to one.
#[derive(Default)]
struct Drift {
    left: Vec<(GroupId, UserId)>,
    joined: Vec<(GroupId, UserId, MembershipId)>,
}

/// The seat a fan-out gives `user` from `group`, named.
fn granted_seat(user: &UserId, group: &GroupId, user_name: String, now: DateTime<Utc>) -> Seat {
    let change = SeatChange::one(SourceOp::Set(SourceKey::Group(group.clone()), Tier::Pro), CancelReason::LeftGroup);
    let mut seat = transition(None, user, &change, now).expect("a first source grants a seat").seat;
    seat.user_name = Some(user_name);
    seat
}

/// `groups` groups of `per_group` new users each, in their own shards, every member seated.
pub(crate) async fn seed(f: &Fakes, groups: usize, per_group: usize, now: DateTime<Utc>) -> Vec<Group> {
    let mut seeded = Vec::with_capacity(groups);
    for g in 0..groups {
        let shard = f.directory.new_shard();
        let name = format!("m{g:04}");
        let id = f.directory.add_group(&shard, &name);
        let mut members = Vec::with_capacity(per_group);
        let mut writes = Vec::with_capacity(per_group);
        for i in 0..per_group {
            let user_name = format!("{name}-{i:06}");
            let user = f.directory.add_user(&shard, &user_name, format!("{name} {i}"));
            let membership = shard.add_member(&id, &user);
            writes.push(SeatWrite {
                seat: granted_seat(&user, &id, user_name, now),
                expected_version: None,
                grants_added: vec![(id.clone(), Some(membership))],
                grants_removed: Vec::new(),
            });
            members.push(user);
        }
        let mut sub = Subscription::new(Principal::Group(id.clone()), name, Tier::Pro, "bench", now);
        sub.fan_out = Some(FanOut { state: FanOutState::Done, granted: per_group as u64 });
        f.store.create_subscription(&sub).await.expect("a new group's subscription");
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let seats = writes.by_ref().take(SEATS_PER_COMMIT).collect();
            f.store.commit(&Commit { seats, ..Commit::default() }).await.expect("seeding seats");
        }
        seeded.push(Group { shard, id, members });
    }
    seeded
}

/// ~1% drift, as the other audit benchmarks make it: per group, as many members leave as new
/// users join.
fn drift(f: &Fakes, groups: &[Group], per_group: usize) -> Drift {
    let changes = (per_group / 100).max(2);
    let (leaves, joins) = (changes / 2, changes - changes / 2);
    let mut d = Drift::default();
    for (g, group) in groups.iter().enumerate() {
        for user in &group.members[..leaves] {
            group.shard.remove_user_from_group(&group.id, user);
            d.left.push((group.id.clone(), user.clone()));
        }
        for j in 0..joins {
            let user = f.directory.add_user(&group.shard, format!("late-{g:04}-{j:03}"), "");
            let membership = group.shard.add_member(&group.id, &user);
            d.joined.push((group.id.clone(), user, membership));
        }
    }
    d
}

/// One audit, from its first event to its report, and what it cost.
struct Audited {
    answer: Value,
    invocations: usize,
    requests: Requests,
    elapsed: Duration,
    /// The size of each checkpoint state it saved, in order.
    checkpoints: Vec<usize>,
    heap: Option<Heap>,
    resident: Option<Resident>,
}

/// Runs an audit (`mode` `Some("report")`, or `None` for the schedule's repair) to completion,
/// each invocation stopped after `units` units of work, every continuation delivered at once.
/// Nothing but the audit runs while the memory is measured: the continuation is made from the
/// invocation's answer, and checked against what the audit put on the bus afterwards.
async fn audit_to_completion(f: &Fakes, mode: Option<&str>, units: u32) -> Audited {
    // A new execution environment: the first invocation reads the profile.
    let mut deps = sync_group::Deps::new(f.store.clone(), f.directory.clone(), f.sink.clone(), 25);
    deps.audit_units_per_invocation = Some(units);
    f.sink.clear();
    let saved = f.store.checkpoint_sizes().len();
    let mut event = fakes::envelope(fakes::audit(mode)).payload;
    let before = f.counts();

    let resident = memory::start_resident();
    let window = HeapWindow::open();
    let started = Instant::now();
    let mut invocations = 0;
    let answer = loop {
        invocations += 1;
        let context = kiro_tests::invocation(&kiro_tests::unique("bench-audit"));
        let answer = sync_group::handle(&deps, LambdaEvent::new(event.clone(), context)).await.expect("an audit");
        if answer.get("continuing").is_none() || invocations == 1_000 {
            break answer;
        }
        let detail = json!({"mode": answer["mode"], "force": false, "continues": answer["auditId"]});
        event = kiro_tests::continuation(&event, detail);
    };
    let elapsed = started.elapsed();
    let heap = window.map(HeapWindow::close);
    let resident = memory::peak_since(resident);

    let requests = f.counts().since(&before);
    assert!(answer.get("auditId").is_some() && answer.get("continuing").is_none(), "no report: {answer}");
    let continued: Vec<Value> =
        f.sink.events().into_iter().filter(|e| e.detail_type == AUDIT_REQUESTED).map(|e| e.detail).collect();
    assert_eq!(continued.len(), invocations - 1, "one continuation requested per invocation but the last");
    let asked = json!({"mode": answer["mode"], "force": false, "continues": answer["auditId"]});
    assert!(continued.iter().all(|d| *d == asked), "continuations other than {asked}: {continued:?}");
    let checkpoints = f.store.checkpoint_sizes()[saved..].to_vec();
    Audited { answer, invocations, requests, elapsed, checkpoints, heap, resident }
}

/// sync-group's `MemorySize` in template.yaml (its own, else the Globals'), in MB.
fn sync_group_memory_mb() -> Option<u64> {
    let template = kiro_tests::template::load();
    template["Resources"]["SyncGroupFunction"]["Properties"]["MemorySize"]
        .as_u64()
        .or_else(|| template["Globals"]["Function"]["MemorySize"].as_u64())
}

/// The audit of [`GROUPS`] × [`PER_GROUP`] seats with ~1% drift: a report, then a repair of the
/// same drift, each to completion over about [`INVOCATIONS`] invocations.
pub async fn audit() -> Section {
    audit_of(GROUPS, PER_GROUP).await
}

pub async fn audit_of(groups: usize, per_group: usize) -> Section {
    let seats = groups * per_group;
    let f = Fakes::with_profile().await;
    let now = Utc::now();
    let started = Instant::now();
    let seeded = seed(&f, groups, per_group, now).await;
    let seeding = started.elapsed();
    f.store.reset_requests();
    let d = drift(&f, &seeded, per_group);
    let (leaves, joins) = (d.left.len(), d.joined.len());

    let units = u32::try_from((groups + seats / 100) / INVOCATIONS).unwrap_or(u32::MAX);
    let memory_mb = sync_group_memory_mb();
    let limit = Target { limit: memory_mb.unwrap_or(128) as f64, label: "≤ MemorySize" };
    let mut s = Section::new(format!(
        "Audit of {} seats across {} groups, with checkpoints (sync-group, in-memory fakes)",
        thousands(seats as u64),
        thousands(groups as u64)
    ));

    let report = audit_to_completion(&f, Some("report"), units).await;
    assert_eq!(
        (report.answer["granted"].as_u64(), report.answer["canceled"].as_u64()),
        (Some(joins as u64), Some(leaves as u64)),
        "the report finds the drift and only it: {}",
        report.answer["findings"].as_array().map_or(0, Vec::len)
    );
    rows(&mut s, "report mode", &report, seats, limit);
    let repair = audit_to_completion(&f, None, units).await;
    assert_eq!(
        (repair.answer["granted"].as_u64(), repair.answer["canceled"].as_u64()),
        (Some(joins as u64), Some(leaves as u64)),
        "the repair changes the drift and only it"
    );
    rows(&mut s, "repair mode", &repair, seats, limit);

    let largest = report.checkpoints.iter().chain(&repair.checkpoints).max().copied().unwrap_or(0);
    s.push(working_state(&seeded, &d, per_group, largest, now));

    s.note = format!(
        "Seeded in {} through the store's ports (see `bench/src/million.rs`: each seat as a fan-out computes it, \
         with its grant row, membership id and user name, 49 a transaction; each group's subscription with its \
         fan-out done), not counted. Drift that no event reported: {} members leave their group and {} new users \
         join one ({:.1}%, {} and {} in every group). Each audit runs to completion, every invocation stopped \
         after {} units of work (a group read, a page of 100 seats, a batch of changes, a group re-synced, 100 \
         names) as the deadline would stop it, its continuation delivered at once; each starts in a new \
         execution environment (one `GetItem(profile)`). The repair follows the report (which changed nothing) \
         over the same drift. Memory: sync-group's `MemorySize` is {} MB (template.yaml); the heap figure counts \
         every byte the process allocates and frees while the audit runs (a counting global allocator in the \
         figures bench), the VmHWM figure the pages it touches (after `malloc_trim`, `5` to \
         `/proc/self/clear_refs`).",
        ms(seeding),
        thousands(leaves as u64),
        thousands(joins as u64),
        (leaves + joins) as f64 * 100.0 / seats as f64,
        leaves / groups,
        joins / groups,
        thousands(u64::from(units)),
        memory_mb.map_or("unknown (not found in template.yaml; 128 assumed)".to_owned(), |m| m.to_string()),
    );
    // A million seats and users: hand the pages back for the parts that measure memory after.
    drop((seeded, d, f));
    memory::trim();
    s
}

fn rows(s: &mut Section, what: &str, a: &Audited, seats: usize, limit: Target) {
    let r = &a.answer;
    let per_seat = a.requests.total as f64 / seats as f64;
    let by_operation: Vec<String> = a
        .requests
        .by_operation
        .iter()
        .map(|(op, n)| match *n as f64 / seats as f64 {
            share if share >= 0.000_01 => format!("{op} {} ({share:.5})", thousands(*n)),
            _ => format!("{op} {n}"),
        })
        .collect();
    s.push(
        Row::new(
            format!("{what}, ~1% drift, {} invocations: requests per seat", a.invocations),
            format!("{per_seat:.4}"),
        )
        .against(REQUESTS_PER_SEAT, per_seat)
        .detail(format!(
            "{} requests, by operation (per seat): {}; granted {}, canceled {}, names filled {}, active seats {}",
            thousands(a.requests.total),
            by_operation.join(", "),
            r["granted"],
            r["canceled"],
            r["namesFilled"],
            r["activeSeats"]
        )),
    );
    let identity_store = a.requests.by_operation.iter().find(|(op, _)| op == "Identity Store").map_or(0, |(_, n)| *n);
    s.push(Row::new(format!("{what}: wall time, in-process"), ms(a.elapsed)).detail(format!(
        "all {} invocations, no network; on AWS its {} Identity Store requests alone take at least {:.1} min at \
         Identity Store's 20 requests/s",
        a.invocations,
        thousands(identity_store),
        identity_store as f64 / 20.0 / 60.0
    )));
    let largest = a.checkpoints.iter().max().copied().unwrap_or(0);
    let parts = largest.div_ceil(kiro::aws::CHECKPOINT_PART_BYTES);
    let sizes: Vec<String> = a.checkpoints.iter().map(|b| thousands(*b as u64)).collect();
    s.push(
        Row::new(format!("{what}: largest checkpoint state"), format!("{} bytes", thousands(largest as u64))).detail(
            format!(
                "{} checkpoints (the lease a fresh audit takes, then one per continuation), state in bytes: {}; the \
             largest is {parts} part(s) of at most {} bytes",
                a.checkpoints.len(),
                sizes.join(", "),
                thousands(kiro::aws::CHECKPOINT_PART_BYTES as u64),
            ),
        ),
    );
    match a.heap {
        Some(h) => s.push(
            Row::new(format!("{what}: the audit's own peak memory (heap)"), mib(h.peak))
                .against(limit, h.peak as f64 / (1024.0 * 1024.0))
                .detail(format!(
                    "heap bytes allocated less those freed, across its invocations: peak {} above the start, {} still \
                     held after it ({}), so the audit's own state peaked between {} and {}. The peak also holds \
                     `MemoryStore`'s copy of the checkpoint state ({}; two for a moment as one replaces the other), \
                     which on AWS is in DynamoDB. Against sync-group's {} MB, of which its process takes ~9 MiB \
                     at rest (peak RSS above)",
                    mib(h.peak),
                    mib(h.retained),
                    if what.starts_with("report") {
                        "what it left in the fakes: the report stored, the checkpoints' sizes, the continuations"
                    } else {
                        "what it left in the fakes: the seats it changed and their grant rows, their events (the \
                         outboxes, and `MemoryStore`'s record of every event committed), the report"
                    },
                    mib(h.peak - h.retained.max(0)),
                    mib(h.peak),
                    mib(largest as i64),
                    limit.limit,
                )),
        ),
        None => s.push(
            Row::new(format!("{what}: the audit's own peak memory (heap)"), "n/a")
                .detail("the counting allocator is not installed (it is in the figures bench)"),
        ),
    }
    if let Some(rss) = a.resident {
        let growth = format!("{:.1} MiB", rss.growth_kib() as f64 / 1024.0);
        s.push(Row::new(format!("{what}: peak RSS growth (VmHWM)"), growth).detail(format!(
            "{:.1} MiB resident at the start (the million seats and grant rows in `MemoryStore`, the directory's \
             shards, after `malloc_trim`), peak {:.1} MiB: the pages the heap figure's bytes took anew, the \
             fakes' included, less what the allocator reused",
            rss.start_kib as f64 / 1024.0,
            rss.peak_kib as f64 / 1024.0
        )));
    }
}

/// The audit's largest pieces of state, built here from the same data and the same types and
/// counted on the heap: an estimate of its working state apart from the fakes'.
fn working_state(groups: &[Group], d: &Drift, per_group: usize, largest_state: usize, now: DateTime<Utc>) -> Row {
    let what = "the audit's working state (estimate from its types)";
    let counted = |build: &mut dyn FnMut()| {
        HeapWindow::open().map(|w| {
            build();
            w.close().retained
        })
    };
    let mut subs = Subscribed::default();
    let subscribed = counted(&mut || subs.groups = groups.iter().map(|g| (g.id.clone(), Tier::Pro)).collect());
    let mut drift: BTreeMap<UserId, GroupDrift> = BTreeMap::new();
    let drift_bytes = counted(&mut || {
        for (group, user) in &d.left {
            drift.entry(user.clone()).or_default().left.insert(group.clone());
        }
        for (group, user, membership) in &d.joined {
            drift.entry(user.clone()).or_default().joined.insert(group.clone(), membership.clone());
        }
    });
    // The seats the walk finds for the users who left (those who joined have none).
    let held: HashMap<&UserId, Seat> =
        d.left.iter().map(|(g, u)| (u, granted_seat(u, g, format!("{u}"), now))).collect();
    let mut planned: Vec<Planned> = Vec::new();
    let plan_bytes = counted(&mut || {
        planned = drift.iter().filter_map(|(u, gd)| audit::plan(&subs, u, held.get(u), gd.clone(), now)).collect();
    });
    let mut nameless: Vec<UserId> = Vec::new();
    let nameless_bytes = counted(&mut || {
        nameless = d.joined.iter().take(audit::MAX_NAMES_PER_AUDIT).map(|(_, u, _)| u.clone()).collect();
    });
    let mut members: HashMap<UserId, MembershipId> = HashMap::new();
    let members_bytes = counted(&mut || {
        members = groups[0]
            .members
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (u.clone(), MembershipId::parse("m", &format!("c0ffee00-1071-70f6-1c5e-{i:012x}")).expect("an id"))
            })
            .collect();
    });
    let (Some(subscribed), Some(drift_bytes), Some(plan_bytes), Some(nameless_bytes), Some(members_bytes)) =
        (subscribed, drift_bytes, plan_bytes, nameless_bytes, members_bytes)
    else {
        return Row::new(what, "n/a").detail("the counting allocator is not installed (it is in the figures bench)");
    };
    // serde_json writes into a `Vec` that starts at 128 bytes and doubles.
    let json = (largest_state.max(128).div_ceil(128).next_power_of_two() * 128) as i64;
    let total = drift_bytes.max(plan_bytes) + nameless_bytes + subscribed + members_bytes + json;
    Row::new(what, mib(total)).detail(format!(
        "the drift of {} users (`BTreeMap<UserId, GroupDrift>`, complete after the group reads) {} or the plan of \
         its {} changes (`Vec<Planned>`, complete after the seat walk, by which time the drift is used up) {}, \
         whichever is larger; seats to name ({} `UserId`s) {}; the subscriptions ({} groups) {}; one group's members \
         read (`HashMap<UserId, MembershipId>` of {}) {}; and the largest checkpoint's JSON ({} bytes, in a buffer \
         of {} as `serde_json` grows it), alive beside the state while it is saved. Each built here from the same \
         data and counted on the heap",
        thousands(drift.len() as u64),
        mib(drift_bytes),
        thousands(planned.len() as u64),
        mib(plan_bytes),
        thousands(nameless.len() as u64),
        mib(nameless_bytes),
        thousands(subs.groups.len() as u64),
        mib(subscribed),
        thousands(per_group as u64),
        mib(members_bytes),
        thousands(largest_state as u64),
        mib(json),
    ))
}
