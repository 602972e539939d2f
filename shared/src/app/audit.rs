//! The audit: make every seat match the subscriptions and the directory.
//!
//! It works in stages, each a series of units of work:
//! 1. `Groups`: each subscribed group's members (pages of 100) against the seats that hold the
//!    group (the grants index); what differs is kept as drift, and the membership map is
//!    refreshed on the way. Memory: one group's members and the drift, never the directory.
//! 2. `Seats`: one walk over the seats (pages of 100, in list order), merging the drift and the
//!    direct subscriptions; every seat that should change is planned with the one transition
//!    function. The revoke guard is decided on the complete plan, so it stays exact however many
//!    invocations the audit takes.
//! 3. `Apply`, `Resync`, `Names` (repair only): the planned changes in batched transactions;
//!    the groups they touched re-read and undone where they went stale meanwhile; missing user
//!    names filled.
//!
//! When an invocation runs short of time between two units, the audit saves its state and
//! continues in a new invocation (see [`checkpoint`]).

mod checkpoint;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::app::seats::{self, Applied, UserChange};
use crate::domain::audit::{
    self, Action, AuditMode, AuditReport, Downgraded, FindingRecord, GroupDrift, MAX_NAMES_PER_AUDIT, Planned,
    Subscribed,
};
use crate::domain::signal::AUDIT_REQUESTED;
use crate::domain::subscription::due_downgrade;
use crate::domain::{GroupId, MembershipId, Principal, Profile, Seat, UserId};
use crate::ports::{
    AuditCheckpoints, AuditStore, CheckpointHead, Directory, EventSink, MemberGroups, MembershipMap, OutEvent,
    SEAT_SHARDS, SeatFilter, SeatNames, SeatStore, StoreError, SubscriptionStore, all_pages, for_each_item,
    seat_position, seat_shard,
};
use crate::time::rfc3339;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use checkpoint::Budget;
use checkpoint::{Begin, begin};

use crate::app::membership;
use crate::error::AppError;

/// Seats read per page of the walk.
const SEAT_PAGE: usize = 100;
/// Directly subscribed users checked (`DescribeUser`) per unit of work.
const USERS_UNIT: usize = 25;
/// Skipped seats named in a report (all are counted).
const MAX_SKIPPED_NAMED: usize = 100;
/// Users whose planned change is applied per unit of work.
const APPLY_UNIT: usize = 1_000;
/// Names filled per unit of work.
const NAMES_UNIT: usize = 100;

/// What a `Scheduled Event` or `Audit Requested` asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: AuditMode,
    pub force: bool,
    /// The envelope's `time`; a resumed audit keeps the clock it started with.
    pub clock: DateTime<Utc>,
    /// The audit this request continues (`detail.continues`).
    pub continues: Option<String>,
    /// The Lambda request id of this invocation (Lambda's retries keep it).
    pub invocation: String,
}

/// What one invocation did.
#[derive(Debug)]
pub enum Outcome {
    Completed(Box<AuditReport>),
    /// Saved at `step`; its continuation is on the bus.
    Continuing {
        audit_id: String,
        mode: AuditMode,
        step: u32,
        stage: &'static str,
    },
    /// Nothing done (a duplicate continuation, another audit in progress, …).
    Skipped(String),
}

impl Outcome {
    /// The function's answer: the report, or what happened instead.
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Completed(report) => serde_json::to_value(report).unwrap_or_default(),
            Outcome::Continuing { audit_id, mode, step, stage } => {
                json!({"auditId": audit_id, "mode": mode, "continuing": true, "checkpoint": step, "stage": stage})
            }
            Outcome::Skipped(why) => json!({"signal": "audit", "ignored": why}),
        }
    }
}

/// Where an audit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Stage {
    /// The subscribed groups after `after` (by id) are still to be read.
    Groups {
        after: Option<GroupId>,
    },
    /// The directly subscribed users after `after` are still to be checked for existence.
    Users {
        after: Option<UserId>,
    },
    /// The seats after `after` are still to be walked, from `token`.
    Seats {
        after: Option<UserId>,
        token: Option<String>,
    },
    Apply {
        next: usize,
    },
    Resync {
        next: usize,
    },
    Names {
        next: usize,
    },
    Done,
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Groups { .. } => "groups",
            Stage::Users { .. } => "users",
            Stage::Seats { .. } => "seats",
            Stage::Apply { .. } => "apply",
            Stage::Resync { .. } => "resync",
            Stage::Names { .. } => "names",
            Stage::Done => "done",
        }
    }
}

/// Everything an audit carries from one unit of work to the next, and across invocations:
/// positions and drift, never the directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    audit_id: String,
    mode: AuditMode,
    force: bool,
    #[serde(with = "rfc3339")]
    clock: DateTime<Utc>,
    /// Wall clock when the first invocation began.
    #[serde(with = "rfc3339")]
    started: DateTime<Utc>,
    invocations: u32,
    stage: Stage,
    downgrades_due: u64,
    active_seats: u64,
    drift: BTreeMap<UserId, GroupDrift>,
    planned: Vec<Planned>,
    nameless: Vec<UserId>,
    halted: bool,
    cancels_withheld: u64,
    /// What the plan does: the report's counts in `report` mode.
    plan: Applied,
    /// What the repair did.
    applied: Applied,
    findings: Vec<FindingRecord>,
    findings_truncated: bool,
    touched: Vec<GroupId>,
    names_filled: u64,
    /// Subscribed principals the Identity Store no longer has (removed as deleted in `repair`).
    #[serde(default)]
    gone_users: BTreeSet<UserId>,
    #[serde(default)]
    gone_groups: BTreeSet<GroupId>,
    /// Seats whose planned change kept failing, skipped; the first [`MAX_SKIPPED_NAMED`] named.
    #[serde(default)]
    skipped: u64,
    #[serde(default)]
    skipped_users: Vec<String>,
    /// The scheduled downgrades applied (or, in `report` mode, found due), kept across
    /// invocations: a later one reads those subscriptions already lowered.
    #[serde(default)]
    downgraded: Downgraded,
}

impl Run {
    fn new(request: &Request, now: DateTime<Utc>) -> Self {
        Self {
            audit_id: uuid::Uuid::new_v4().to_string(),
            mode: request.mode,
            force: request.force,
            clock: request.clock,
            started: now,
            invocations: 0,
            stage: Stage::Groups { after: None },
            downgrades_due: 0,
            active_seats: 0,
            drift: BTreeMap::new(),
            planned: Vec::new(),
            nameless: Vec::new(),
            halted: false,
            cancels_withheld: 0,
            plan: Applied::default(),
            applied: Applied::default(),
            findings: Vec::new(),
            findings_truncated: false,
            touched: Vec::new(),
            names_filled: 0,
            gone_users: BTreeSet::new(),
            gone_groups: BTreeSet::new(),
            skipped: 0,
            skipped_users: Vec::new(),
            downgraded: Downgraded::default(),
        }
    }

    fn repair(&self) -> bool {
        self.mode == AuditMode::Repair
    }
}

/// What an audit reads and writes, and its revoke guard.
pub struct Audit<'a, S, D, E> {
    pub store: &'a S,
    pub directory: &'a D,
    pub events: &'a E,
    /// `AUDIT_REVOKE_LIMIT_PERCENT`.
    pub revoke_limit_percent: u8,
}

impl<S, D, E> Audit<'_, S, D, E> {
    fn ports(&self) -> membership::Ports<'_, S, D, E> {
        membership::Ports { store: self.store, directory: self.directory, sink: self.events }
    }
}

/// The audit saved its checkpoint but could not request its next invocation: the retry of this
/// event resumes from the checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("requesting the audit's continuation failed")]
struct Continuation(#[source] crate::BoxError);

impl From<Continuation> for AppError {
    fn from(e: Continuation) -> Self {
        AppError::internal(e)
    }
}

/// `POST /audits`: asks for an audit the way the schedule does, through the stack's own bus
/// (`Audit Requested`, which only the stack's functions may put there), recording who asked.
/// The audit runs in sync-group; one at a time (a request while one runs is ignored there).
pub async fn request<E: EventSink>(sink: &E, mode: AuditMode, force: bool, actor: &str) -> Result<(), AppError> {
    let detail = json!({"mode": mode, "force": force, "requestedBy": actor});
    crate::app::bus::ask(sink, AUDIT_REQUESTED, detail).await?;
    tracing::info!(mode = mode.as_str(), force, "audit requested");
    Ok(())
}

/// Runs (or resumes) the audit for one invocation.
pub async fn run<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    profile: &Profile,
    request: Request,
    mut budget: Budget,
) -> Result<Outcome, AppError>
where
    S: SubscriptionStore + SeatStore + SeatNames + AuditStore + AuditCheckpoints + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let now = Utc::now();
    let (mut run, mut head) = match begin(&request, deps.store.checkpoint_head().await?, now) {
        Begin::Skip(why) => {
            tracing::info!(why = %why, "audit request acknowledged, nothing to do");
            return Ok(Outcome::Skipped(why));
        }
        Begin::Fresh { replaces } => {
            if let Some(old) = &replaces {
                tracing::warn!(audit_id = %old.audit_id, saved_at = %old.saved_at, mode = old.mode.as_str(), "superseding an audit checkpoint");
            }
            let run = Run::new(&request, now);
            // A fresh audit takes the lease at once (its first checkpoint, held by this
            // invocation), so a second request while it runs finds the audit held and is
            // ignored, instead of running the same audit beside it.
            let lease = Some((request.invocation.as_str(), budget.lease_until_ms(now)));
            match save(deps, &run, replaces.as_ref(), lease).await {
                Ok(head) => (run, Some(head)),
                Err(StoreError::Conflict(_)) => {
                    let why = "another audit started at the same moment".to_owned();
                    tracing::info!(why = %why, "audit request acknowledged, nothing to do");
                    return Ok(Outcome::Skipped(why));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Begin::Resume(h) => match resume(deps, &request, &h, &budget, now).await? {
            Some(run) => (run, Some(h)),
            None => return Ok(Outcome::Skipped(format!("audit {} was taken up by another invocation", h.audit_id))),
        },
    };
    let first = run.invocations == 0;
    run.invocations += 1;
    tracing::info!(audit_id = %run.audit_id, invocation = run.invocations, stage = run.stage.name(), "audit working");

    let mut subs = match subscriptions(deps, &mut run, first).await {
        Ok(subs) => subs,
        Err(e) => return Err(save_after_failure(deps, &run, head.as_ref(), e).await),
    };

    while run.stage != Stage::Done {
        let unit = std::time::Instant::now();
        if let Err(e) = step(deps, profile, &mut subs, &mut run).await {
            return Err(save_after_failure(deps, &run, head.as_ref(), e).await);
        }
        budget.spent(unit.elapsed());
        if run.stage != Stage::Done && budget.exhausted() {
            return continue_later(deps, &run, head.as_ref()).await;
        }
    }

    if run.repair() {
        sweep_outbox(deps).await;
    }
    let report = report(&run);
    if let Err(e) = deps.store.put_audit(&report).await {
        return Err(save_after_failure(deps, &run, head.as_ref(), e.into()).await);
    }
    if let Some(h) = head.take() {
        deps.store.clear_checkpoint(&h).await?;
    }
    let event = OutEvent {
        detail_type: "Audit Completed".to_owned(),
        detail: serde_json::to_value(&report).unwrap_or_default(),
    };
    if let Err(e) = deps.events.publish(std::slice::from_ref(&event)).await {
        tracing::error!(cause = %crate::error::cause_chain(&e), "publishing Audit Completed failed; the report is stored");
    }
    tracing::info!(
        audit_id = %report.audit_id,
        mode = ?report.mode,
        granted = report.granted,
        changed = report.changed,
        canceled = report.canceled,
        halted = report.halted,
        invocations = report.invocations,
        "audit finished"
    );
    Ok(Outcome::Completed(Box::new(report)))
}

/// Publishes what the outbox kept: events of changes whose publish failed or whose writer
/// crashed after committing, this audit's own invocations included (a crashed invocation's retry
/// resumes past the change it committed, so only a sweep at the end sees its events). Where the
/// table's stream publishes them, only outboxes older than [`seats::OUTBOX_GRACE`] by the wall
/// clock: the net under the stream's publisher, not a second publisher racing it. A failure
/// leaves them for the next repair and does not fail this one: the seats are repaired either way.
async fn sweep_outbox<S, D, E>(deps: &Audit<'_, S, D, E>)
where
    S: SeatStore + SubscriptionStore,
    E: EventSink,
{
    match seats::flush_outbox(&deps.store, &deps.events, Utc::now()).await {
        Ok(0) => {}
        Ok(sent) => tracing::info!(sent, "published events left in the outbox"),
        Err(e) => {
            tracing::error!(cause = %crate::error::cause_chain(&e), "publishing the outbox failed; the next repair retries it")
        }
    }
}

/// Takes the lease on `head` and loads its state; `None` when another invocation got it first.
async fn resume<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    request: &Request,
    head: &CheckpointHead,
    budget: &Budget,
    now: DateTime<Utc>,
) -> Result<Option<Run>, AppError>
where
    S: AuditCheckpoints,
{
    let (owner, until) = (&request.invocation, budget.lease_until_ms(now));
    match deps.store.claim_checkpoint(head, owner, until, now.timestamp_millis()).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let state = deps.store.checkpoint_state(head).await?;
    match serde_json::from_str::<Run>(&state) {
        Ok(run) if run.audit_id == head.audit_id => Ok(Some(run)),
        // Unreadable (a deploy changed the format): retrying cannot help; start over instead.
        _ => {
            tracing::error!(audit_id = %head.audit_id, "audit checkpoint unreadable; starting the audit over");
            let request = Request { mode: head.mode, force: head.force, clock: now, ..request.clone() };
            let mut run = Run::new(&request, now);
            run.audit_id.clone_from(&head.audit_id);
            Ok(Some(run))
        }
    }
}

/// Saves the run, releasing the lease, and requests its continuation.
async fn continue_later<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    run: &Run,
    head: Option<&CheckpointHead>,
) -> Result<Outcome, AppError>
where
    S: AuditCheckpoints,
    E: EventSink,
{
    let saved = match save(deps, run, head, None).await {
        Ok(saved) => saved,
        Err(StoreError::Conflict(_)) => {
            let why = format!("audit {} was superseded while it ran; its work so far is kept", run.audit_id);
            tracing::warn!("{why}");
            return Ok(Outcome::Skipped(why));
        }
        Err(e) => return Err(e.into()),
    };
    let detail = json!({"mode": run.mode, "force": run.force, "continues": run.audit_id});
    crate::app::bus::ask(&deps.events, AUDIT_REQUESTED, detail).await.map_err(|e| Continuation(e.into()))?;
    tracing::info!(
        audit_id = %run.audit_id,
        step = saved.step,
        stage = run.stage.name(),
        planned = run.planned.len(),
        drift = run.drift.len(),
        "audit checkpointed; continuation requested"
    );
    Ok(Outcome::Continuing {
        audit_id: run.audit_id.clone(),
        mode: run.mode,
        step: saved.step,
        stage: run.stage.name(),
    })
}

/// On a failure, keeps the progress (units are idempotent, so the unit that failed is simply
/// done again): Lambda's retry of the same event resumes from here.
async fn save_after_failure<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    run: &Run,
    head: Option<&CheckpointHead>,
    error: AppError,
) -> AppError
where
    S: AuditCheckpoints,
{
    match save(deps, run, head, None).await {
        Ok(saved) => {
            tracing::warn!(audit_id = %run.audit_id, step = saved.step, "audit failed; progress saved for the retry")
        }
        Err(e) => {
            tracing::error!(cause = %crate::error::cause_chain(&e), "audit failed and its progress could not be saved")
        }
    }
    error
}

/// Saves `run` as the step after `replaces` (or as the first), held by `lease` — the invocation
/// and until when — or released for whoever continues it.
async fn save<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    run: &Run,
    replaces: Option<&CheckpointHead>,
    lease: Option<(&str, i64)>,
) -> Result<CheckpointHead, StoreError>
where
    S: AuditCheckpoints,
{
    let state = serde_json::to_string(run).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let (owner, until) = lease.unwrap_or_default();
    let next = CheckpointHead {
        audit_id: run.audit_id.clone(),
        step: replaces.map_or(1, |h| h.step + 1),
        mode: run.mode,
        force: run.force,
        lease_until_ms: until,
        lease_owner: owner.to_owned(),
        saved_at: Utc::now(),
        save_id: uuid::Uuid::new_v4().to_string(),
    };
    deps.store.save_checkpoint(replaces, &next, &state).await?;
    Ok(next)
}

/// Reads the subscriptions, applying due pending downgrades (writing them in `repair`).
async fn subscriptions<S, D, E>(deps: &Audit<'_, S, D, E>, run: &mut Run, first: bool) -> Result<Subscribed, AppError>
where
    S: SubscriptionStore,
{
    let mut subs = Subscribed::default();
    for mut sub in all_pages(|token| deps.store.list_subscriptions(None, 100, token)).await? {
        if let Some(tier) = due_downgrade(&sub, run.clock) {
            // In `report` mode nothing is written, so later invocations find the same ones.
            if first || run.repair() {
                run.downgrades_due += 1;
            }
            if let Some(effective_at) = sub.pending_tier_effective_at {
                run.downgraded.insert(&sub.principal, effective_at);
            }
            let expected = sub.tier;
            sub.tier = tier;
            sub.pending_tier = None;
            sub.pending_tier_effective_at = None;
            sub.updated_at = run.clock;
            sub.updated_by = "audit".to_owned();
            if run.repair() {
                match deps.store.update_subscription(&sub, expected).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        match sub.principal {
            Principal::User(u) => subs.direct.insert(u, sub.tier),
            Principal::Group(g) => subs.groups.insert(g, sub.tier),
        };
    }
    subs.downgraded = run.downgraded.clone();
    Ok(subs)
}

/// One unit of work.
async fn step<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    profile: &Profile,
    subs: &mut Subscribed,
    run: &mut Run,
) -> Result<(), AppError>
where
    S: SubscriptionStore + SeatStore + SeatNames + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    match run.stage.clone() {
        Stage::Groups { after } => {
            let lower = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
            match subs.groups.range((lower, Bound::Unbounded)).next().map(|(g, _)| g.clone()) {
                Some(group) => {
                    if !read_group(deps, profile, run, &group).await? {
                        principal_gone(deps, subs, run, Principal::Group(group.clone())).await?;
                    }
                    run.stage = Stage::Groups { after: Some(group) };
                }
                None => run.stage = Stage::Users { after: None },
            }
        }
        // Direct subscriptions of users the directory no longer has (deleted without their
        // event reaching us): a `DescribeUser` each, [`USERS_UNIT`] a unit.
        Stage::Users { after } => {
            let lower = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
            let users: Vec<UserId> =
                subs.direct.range((lower, Bound::Unbounded)).take(USERS_UNIT).map(|(u, _)| u.clone()).collect();
            for user in &users {
                if deps.directory.describe_user(&profile.identity_store_id, user).await?.is_none() {
                    principal_gone(deps, subs, run, Principal::User(user.clone())).await?;
                }
            }
            run.stage = match users.last() {
                Some(last) if users.len() == USERS_UNIT => Stage::Users { after: Some(last.clone()) },
                _ => Stage::Seats { after: None, token: None },
            };
        }
        Stage::Seats { mut after, token } => {
            let page = deps.store.list_seats(SeatFilter::default(), SEAT_PAGE, token).await?;
            for seat in &page.items {
                plan_seatless(run, subs, after.as_ref(), Some(&seat.user_id));
                run.active_seats += u64::from(seat.holds());
                if seat.holds() && seat.user_name.is_none() && run.nameless.len() < MAX_NAMES_PER_AUDIT {
                    run.nameless.push(seat.user_id.clone());
                }
                let drift = run.drift.remove(&seat.user_id).unwrap_or_default();
                plan(run, subs, &seat.user_id, Some(seat), drift);
                after = Some(seat.user_id.clone());
            }
            run.stage = match page.next_token {
                Some(token) => Stage::Seats { after, token: Some(token) },
                None => {
                    plan_seatless(run, subs, after.as_ref(), None);
                    decide(run, deps.revoke_limit_percent);
                    if run.repair() { Stage::Apply { next: 0 } } else { Stage::Done }
                }
            };
        }
        Stage::Apply { next } => {
            let end = (next + APPLY_UNIT).min(run.planned.len());
            let batch = run.planned[next..end]
                .iter()
                .map(|p| UserChange {
                    user: p.user.clone(),
                    change: p.change.clone(),
                    memberships: p.memberships.clone(),
                    user_name: None,
                })
                .collect();
            apply_or_skip(deps, run, batch).await?;
            run.stage = if end < run.planned.len() {
                Stage::Apply { next: end }
            } else {
                run.planned.clear();
                Stage::Resync { next: 0 }
            };
        }
        // The members were read before the writes: re-read each group the repair touched and
        // undo what went stale meanwhile (a member removed, or added, while the audit ran).
        // The re-sync also refreshes those groups' membership map. A halted repair skips it:
        // the re-sync would apply the very removals the guard withheld.
        Stage::Resync { next } => match run.touched.get(next).filter(|_| !run.halted) {
            Some(group) => {
                let group = group.clone();
                match membership::resync_group(&deps.ports(), profile, &group, run.clock).await {
                    Ok(applied) => run.applied.add(applied),
                    // A seat the repair skipped is refused here again: the re-sync of its group
                    // is given up (the skip is already in the report); anything else is retried.
                    Err(AppError::Internal(e))
                        if e.downcast_ref::<seats::ServiceError>().is_some_and(|s| s.is_refusal()) =>
                    {
                        tracing::error!(group = %group, cause = %crate::error::cause_chain(&*e), "re-sync of a group refused; skipped")
                    }
                    Err(e) => return Err(e),
                }
                run.stage = Stage::Resync { next: next + 1 };
            }
            None => run.stage = Stage::Names { next: 0 },
        },
        // Seats granted through a group carry no name (ListGroupMemberships has none): fill
        // them here, off the request path.
        Stage::Names { next } => {
            let end = (next + NAMES_UNIT).min(run.nameless.len());
            // Counted when the whole unit is done: a failed unit is done again by the retry.
            let mut filled = 0;
            for user in &run.nameless[next..end] {
                if crate::app::names::fill_one(&deps.store, &deps.directory, &profile.identity_store_id, user).await? {
                    filled += 1;
                }
            }
            run.names_filled += filled;
            run.stage = if end < run.nameless.len() { Stage::Names { next: end } } else { Stage::Done };
        }
        Stage::Done => {}
    }
    Ok(())
}

/// Compares one group's members with the seats holding it: the difference becomes drift; in
/// `repair`, stale membership ids on the grants are refreshed so a later
/// `DeleteGroupMembership` resolves without a resync. `false` when the directory no longer has
/// the group (`ListGroupMemberships` answers `ResourceNotFoundException`).
async fn read_group<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    profile: &Profile,
    run: &mut Run,
    group: &GroupId,
) -> Result<bool, AppError>
where
    S: SubscriptionStore + MembershipMap,
    D: Directory + MemberGroups,
{
    let store_id = &profile.identity_store_id;
    // Page by page into the map: the group's members are the largest thing the audit holds.
    let mut members: HashMap<UserId, MembershipId> = HashMap::new();
    let read = for_each_item(
        |token| deps.directory.group_memberships(store_id, group, token),
        |m| {
            members.insert(m.user_id, m.membership_id);
        },
    )
    .await;
    if membership::gone_is_none(read)?.is_none() {
        return Ok(false);
    }
    for (user, recorded) in all_pages(|token| deps.store.granted_users(group, token)).await? {
        match members.remove(&user) {
            None => {
                run.drift.entry(user).or_default().left.insert(group.clone());
            }
            Some(current) => {
                if run.repair() && recorded.as_ref() != Some(&current) {
                    deps.store.refresh_membership(group, &user, &current).await?;
                }
            }
        }
    }
    for (user, membership) in members {
        run.drift.entry(user).or_default().joined.insert(group.clone(), membership);
    }
    Ok(true)
}

/// Applies a batch of the repair. A batch the table refuses as sent (an item it can never
/// write, one it cannot read) is applied user by user, and a user whose change is refused is
/// skipped and named in the report (`skipped`): one bad unit never stops the audit, which a
/// checkpoint would otherwise resume into the same failure every time. Anything else fails the
/// unit, to be resumed.
async fn apply_or_skip<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    run: &mut Run,
    batch: Vec<UserChange>,
) -> Result<(), AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    let e = match seats::apply_changes(&deps.store, &deps.events, batch.clone(), run.clock).await {
        Ok(applied) => {
            run.applied.add(applied);
            return Ok(());
        }
        Err(e) if e.is_refusal() => e,
        // Throttling, or an outcome unknown (a timeout, a crash after the commit): the unit is
        // done again by the retry, from the checkpoint.
        Err(e) => return Err(e.into()),
    };
    tracing::warn!(cause = %crate::error::cause_chain(&e), users = batch.len(), "a repair batch failed; applying it user by user");
    for uc in batch {
        let user = uc.user.clone();
        match seats::apply_changes(&deps.store, &deps.events, vec![uc], run.clock).await {
            Ok(applied) => run.applied.add(applied),
            Err(e) if !e.is_refusal() => return Err(e.into()),
            Err(e) => {
                tracing::error!(user = %user, cause = %crate::error::cause_chain(&e), "a seat the repair could not change; skipped");
                run.skipped += 1;
                if run.skipped_users.len() < MAX_SKIPPED_NAMED {
                    run.skipped_users.push(user.to_string());
                }
            }
        }
    }
    Ok(())
}

/// A subscribed principal the directory no longer has was deleted (its event never reached us,
/// or failed). In `repair` it is removed as its deletion event would have removed it — its
/// subscription, and the source on every seat it gave, canceled `GROUP_DELETED` /
/// `USER_DELETED` — outside the revoke guard, as the event is (the directory states the
/// deletion; it is no accident). Either mode counts it in `principalsDeleted`; `report` changes
/// nothing and plans as if it still existed.
async fn principal_gone<S, D, E>(
    deps: &Audit<'_, S, D, E>,
    subs: &mut Subscribed,
    run: &mut Run,
    principal: Principal,
) -> Result<(), AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    tracing::warn!(
        principal_type = principal.principal_type().as_str(),
        principal_id = principal.id(),
        "a subscribed principal is gone from the directory"
    );
    match &principal {
        Principal::User(u) => run.gone_users.insert(u.clone()),
        Principal::Group(g) => run.gone_groups.insert(g.clone()),
    };
    if !run.repair() {
        return Ok(());
    }
    // The plan of this invocation must not give back what the deletion takes.
    let applied = match &principal {
        Principal::User(u) => {
            subs.direct.remove(u);
            membership::user_deleted(&deps.ports(), u, run.clock).await?
        }
        Principal::Group(g) => {
            subs.groups.remove(g);
            membership::group_deleted(&deps.ports(), g, run.clock).await?
        }
    };
    run.applied.add(applied);
    Ok(())
}

/// Plans the users strictly between `after` and `before` that have drift or a direct
/// subscription but no seat: the walk is in list order ([`seat_position`]: shard by shard, a
/// shard's seats by user id), so they fall between two seats. Each shard crossed is a user-id
/// range of the maps, its other shards' users skipped: a whole walk reads each map 16 times over.
fn plan_seatless(run: &mut Run, subs: &Subscribed, after: Option<&UserId>, before: Option<&UserId>) {
    let position = |u: &UserId| (seat_position(u.as_str()).0, u.clone());
    let (from, to) = (after.map(position), before.map(position));
    if from.as_ref().zip(to.as_ref()).is_some_and(|(a, b)| a >= b) {
        return;
    }
    let shards = from.as_ref().map_or(0, |(s, _)| *s)..=to.as_ref().map_or(SEAT_SHARDS - 1, |(s, _)| *s);
    for shard in shards {
        let bound = |end: &Option<(usize, UserId)>| match end {
            Some((s, u)) if *s == shard => Bound::Excluded(u.clone()),
            _ => Bound::Unbounded,
        };
        let range = (bound(&from), bound(&to));
        let users: BTreeSet<UserId> = (run.drift.range::<UserId, _>(range.clone()).map(|(u, _)| u))
            .chain(subs.direct.range::<UserId, _>(range).map(|(u, _)| u))
            .filter(|u| seat_shard(u.as_str()) == shard)
            .cloned()
            .collect();
        for user in users {
            let drift = run.drift.remove(&user).unwrap_or_default();
            plan(run, subs, &user, None, drift);
        }
    }
}

/// Plans `user`'s seat (see [`audit::plan`]).
fn plan(run: &mut Run, subs: &Subscribed, user: &UserId, seat: Option<&Seat>, drift: GroupDrift) {
    run.planned.extend(audit::plan(subs, user, seat, drift, run.clock));
}

/// The revoke guard, on the whole plan ([`audit::decide`]), and what the report will say.
fn decide(run: &mut Run, revoke_limit_percent: u8) {
    let d = audit::decide(&mut run.planned, run.active_seats, revoke_limit_percent, run.force);
    if d.halted {
        tracing::warn!(
            cancels = d.cancels_withheld,
            active_seats = run.active_seats,
            limit_percent = revoke_limit_percent,
            "revoke guard: cancellations withheld"
        );
    }
    // Seats this repair grants have no name yet either; those it cancels need none.
    let canceling: BTreeSet<&UserId> =
        run.planned.iter().filter(|p| p.finding.action == Action::Cancel).map(|p| &p.user).collect();
    run.nameless.retain(|u| !canceling.contains(u));
    let room = MAX_NAMES_PER_AUDIT.saturating_sub(run.nameless.len());
    let granting: Vec<UserId> =
        run.planned.iter().filter(|p| p.finding.action == Action::Grant).map(|p| p.user.clone()).take(room).collect();
    run.nameless.extend(granting);
    let c = d.counts;
    run.plan = Applied {
        granted: c.granted,
        changed: c.changed,
        canceled: c.canceled,
        updated: c.updated,
        ..Applied::default()
    };
    (run.halted, run.cancels_withheld) = (d.halted, d.cancels_withheld);
    (run.findings, run.findings_truncated, run.touched) = (d.findings, d.findings_truncated, d.touched);
}

fn report(run: &Run) -> AuditReport {
    let counts = if run.repair() { run.applied } else { run.plan };
    let elapsed = Utc::now() - run.started;
    AuditReport {
        mode: run.mode,
        granted: counts.granted,
        changed: counts.changed,
        canceled: counts.canceled,
        halted: run.halted,
        started_at: run.clock,
        finished_at: run.clock + elapsed.max(chrono::TimeDelta::zero()),
        audit_id: run.audit_id.clone(),
        active_seats: run.active_seats,
        downgrades_due: run.downgrades_due,
        cancels_withheld: run.cancels_withheld,
        names_filled: run.names_filled,
        principals_deleted: (run.gone_users.len() + run.gone_groups.len()) as u64,
        skipped: run.skipped,
        skipped_users: run.skipped_users.clone(),
        invocations: run.invocations,
        findings: run.findings.clone(),
        findings_truncated: run.findings_truncated,
    }
}
