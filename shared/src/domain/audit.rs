//! The audit's rules: what each seat should be given the subscriptions and the directory, what
//! a repair would do, and the revoke guard that stops a bad read from mass-cancelling seats.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};

use super::seat::{CancelReason, Seat, SeatChange, SeatEvent, SourceKey, SourceOp, Sources, transition};
use super::{GroupId, MembershipId, Principal, Tier, UserId};
use crate::time::rfc3339;

/// What an audit does: `report` plans and reports, `repair` also applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    Report,
    Repair,
}

impl AuditMode {
    /// As `detail.mode` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Report => "report",
            AuditMode::Repair => "repair",
        }
    }

    pub fn parse(mode: &str) -> Option<AuditMode> {
        [AuditMode::Report, AuditMode::Repair].into_iter().find(|m| m.as_str() == mode)
    }
}

/// The change that makes `seat` hold exactly `desired` (`None` when it already does).
pub fn diff(seat: Option<&Seat>, desired: &Sources) -> Option<SeatChange> {
    let empty = Sources::new();
    let actual = seat.map_or(&empty, |s| &s.sources);
    let mut ops: Vec<SourceOp> =
        desired.iter().filter(|(k, t)| actual.get(*k) != Some(*t)).map(|(k, t)| SourceOp::Set(k.clone(), *t)).collect();
    ops.extend(actual.keys().filter(|k| !desired.contains_key(*k)).cloned().map(SourceOp::Remove));
    (!ops.is_empty()).then(|| SeatChange::new(ops, CancelReason::Audit))
}

/// What a change would do to a seat, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    Grant,
    Change,
    Cancel,
    /// Sources move, the seat's tier and status do not.
    Update,
}

/// One line of the report: a seat the repair changes (or would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub user_id: UserId,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_tier: Option<Tier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_tier: Option<Tier>,
}

/// Classifies `change` on `seat` with the one seat transition function.
pub fn classify(user: &UserId, seat: Option<&Seat>, change: &SeatChange, now: DateTime<Utc>) -> Option<Finding> {
    let t = transition(seat, user, change, now)?;
    let (action, from_tier, to_tier) = match t.event {
        Some(SeatEvent::Granted { tier, .. }) => (Action::Grant, None, Some(tier)),
        Some(SeatEvent::TierChanged { from, to, .. }) => (Action::Change, Some(from), Some(to)),
        Some(SeatEvent::Canceled { previous_tier, .. }) => (Action::Cancel, Some(previous_tier), None),
        // Source changes never activate by themselves; kept total for the compiler.
        Some(SeatEvent::Activated { .. }) | None => (Action::Update, Some(t.seat.tier), Some(t.seat.tier)),
    };
    Some(Finding { user_id: user.clone(), action, from_tier, to_tier })
}

/// The most seats a repair may cancel without `force`: the limit's share of the active seats,
/// rounded up.
pub fn revoke_allowance(active_seats: u64, limit_percent: u8) -> u64 {
    (active_seats * u64::from(limit_percent)).div_ceil(100)
}

/// Whether the guard halts the cancellations of this repair.
pub fn halts(cancels: u64, active_seats: u64, limit_percent: u8, force: bool) -> bool {
    !force && cancels > revoke_allowance(active_seats, limit_percent)
}

/// Under a halt only what adds or raises stays: removals are withheld, so nothing is canceled and
/// no tier goes down. `None` when nothing is left.
pub fn without_removals(change: &SeatChange) -> Option<SeatChange> {
    let ops: Vec<SourceOp> = change.ops.iter().filter(|op| matches!(op, SourceOp::Set(..))).cloned().collect();
    (!ops.is_empty()).then(|| SeatChange::new(ops, change.reason))
}

/// The audit's answer (contract fields first), stored and emitted as `Audit Completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub mode: AuditMode,
    pub granted: u64,
    pub changed: u64,
    pub canceled: u64,
    pub halted: bool,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    pub audit_id: String,
    /// Active seats before the audit (the revoke guard's base).
    pub active_seats: u64,
    /// Pending downgrades that were due (applied in `repair`).
    pub downgrades_due: u64,
    /// Cancellations withheld by the revoke guard.
    pub cancels_withheld: u64,
    /// Seats whose missing `userName` was filled from the directory (repair only).
    #[serde(default)]
    pub names_filled: u64,
    /// Subscribed groups and users the Identity Store no longer has: removed as deleted in
    /// `repair` (`GROUP_DELETED` / `USER_DELETED`), reported in `report`.
    #[serde(default)]
    pub principals_deleted: u64,
    /// Seats whose repair kept failing, skipped so the audit could finish; the first 100 named.
    #[serde(default)]
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_users: Vec<String>,
    /// Lambda invocations the audit took: more than one when it continued from a checkpoint.
    #[serde(default = "one")]
    pub invocations: u32,
    /// The seats changed (or, in `report`, that would change); the first [`MAX_FINDINGS`].
    pub findings: Vec<FindingRecord>,
    pub findings_truncated: bool,
}

fn one() -> u32 {
    1
}

/// A [`Finding`] as stored (ids as strings, for reading back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingRecord {
    pub user_id: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_tier: Option<String>,
}

impl From<&Finding> for FindingRecord {
    fn from(f: &Finding) -> Self {
        let action =
            serde_json::to_value(f.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        Self {
            user_id: f.user_id.to_string(),
            action,
            from_tier: f.from_tier.map(|t| t.as_str().to_owned()),
            to_tier: f.to_tier.map(|t| t.as_str().to_owned()),
        }
    }
}

/// Findings kept in a report: keeps the stored item well under DynamoDB's 400 KB.
pub const MAX_FINDINGS: usize = 1000;

/// Names an audit fills at most: `DescribeUser` one by one at 20 requests/s is 2.5 minutes.
pub const MAX_NAMES_PER_AUDIT: usize = 3000;

// --- planning: what the audit changes, and the guard on the whole plan -------------------------

/// The subscriptions as the audit's clock sees them (due downgrades applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribed {
    pub direct: BTreeMap<UserId, Tier>,
    pub groups: BTreeMap<GroupId, Tier>,
    /// The scheduled downgrades this audit applied, with when each took effect.
    pub downgraded: Downgraded,
}

/// Scheduled downgrades the audit applied, by principal: the instant each took effect (its
/// `pendingTierEffectiveAt`), which the seats it lowers are billed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgraded {
    pub users: BTreeMap<UserId, DateTime<Utc>>,
    pub groups: BTreeMap<GroupId, DateTime<Utc>>,
}

impl Downgraded {
    pub fn insert(&mut self, principal: &Principal, effective_at: DateTime<Utc>) {
        match principal {
            Principal::User(u) => self.users.insert(u.clone(), effective_at),
            Principal::Group(g) => self.groups.insert(g.clone(), effective_at),
        };
    }

    /// When `user`'s source `key` was lowered, if a downgrade this audit applied lowered it.
    fn effective_at(&self, user: &UserId, key: &SourceKey) -> Option<DateTime<Utc>> {
        match key {
            SourceKey::Direct => self.users.get(user).copied(),
            SourceKey::Group(g) => self.groups.get(g).copied(),
        }
    }
}

impl Subscribed {
    pub fn has(&self, p: &Principal) -> bool {
        match p {
            Principal::User(u) => self.direct.contains_key(u),
            Principal::Group(g) => self.groups.contains_key(g),
        }
    }
}

/// How a user's group sources differ from the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDrift {
    /// Groups the user is a member of without holding them, with the membership ids.
    pub joined: BTreeMap<GroupId, MembershipId>,
    /// Groups the user holds without being a member.
    pub left: BTreeSet<GroupId>,
}

/// A seat the audit changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub user: UserId,
    pub change: SeatChange,
    pub finding: Finding,
    /// Membership ids of the groups the change grants (for the grants index).
    pub memberships: BTreeMap<GroupId, MembershipId>,
}

/// What `seat` should hold: its direct subscription, the subscribed groups it holds and did not
/// leave, and those it joined. `None` when it already does.
pub fn plan(
    subs: &Subscribed,
    user: &UserId,
    seat: Option<&Seat>,
    drift: GroupDrift,
    clock: DateTime<Utc>,
) -> Option<Planned> {
    let mut desired = Sources::new();
    if let Some(tier) = subs.direct.get(user) {
        desired.insert(SourceKey::Direct, *tier);
    }
    let held = seat.into_iter().flat_map(|s| s.sources.keys()).filter_map(|k| match k {
        SourceKey::Group(g) if !drift.left.contains(g) => Some(g),
        _ => None,
    });
    for group in held.chain(drift.joined.keys()) {
        if let Some(tier) = subs.groups.get(group) {
            desired.insert(SourceKey::Group(group.clone()), *tier);
        }
    }
    let mut change = follow_subscriptions(diff(seat, &desired)?, user, subs);
    // A source lowered by a scheduled downgrade took effect at the downgrade's instant.
    change.effective_at = change
        .ops
        .iter()
        .filter_map(|op| match (op, seat) {
            (SourceOp::Set(k, tier), Some(s)) if s.sources.get(k).is_some_and(|held| held > tier) => {
                subs.downgraded.effective_at(user, k)
            }
            _ => None,
        })
        .min();
    let finding = classify(user, seat, &change, clock)?;
    let memberships = drift
        .joined
        .into_iter()
        .filter(|(g, _)| change.ops.iter().any(|op| matches!(op, SourceOp::Set(SourceKey::Group(x), _) if x == g)))
        .collect();
    Some(Planned { user: user.clone(), change, finding, memberships })
}

/// A source whose subscription is gone is removed only while it stays gone (`Unsubscribed`), so
/// a subscription created while the audit runs keeps the source it grants.
fn follow_subscriptions(mut change: SeatChange, user: &UserId, subs: &Subscribed) -> SeatChange {
    for op in &mut change.ops {
        if let SourceOp::Remove(k) = op {
            let principal = match k {
                SourceKey::Direct => Principal::User(user.clone()),
                SourceKey::Group(g) => Principal::Group(g.clone()),
            };
            if !subs.has(&principal) {
                *op = SourceOp::Unsubscribed(k.clone());
            }
        }
    }
    change
}

/// Seats planned by what the change does to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub granted: u64,
    pub changed: u64,
    pub canceled: u64,
    pub updated: u64,
}

/// The revoke guard's verdict on the whole plan, and what the report says of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub halted: bool,
    /// Cancellations the guard withheld.
    pub cancels_withheld: u64,
    /// What the plan does, once the guard has spoken.
    pub counts: Counts,
    /// The first [`MAX_FINDINGS`].
    pub findings: Vec<FindingRecord>,
    pub findings_truncated: bool,
    /// The subscribed groups the plan grants or removes (re-read after the repair).
    pub touched: Vec<GroupId>,
}

/// Decides the revoke guard on the complete plan: over the allowance (and not forced), every
/// cancellation is dropped and the other changes keep only what adds or raises. `planned` is left
/// holding what the repair will do.
pub fn decide(planned: &mut Vec<Planned>, active_seats: u64, limit_percent: u8, force: bool) -> Decision {
    let cancels = planned.iter().filter(|p| p.finding.action == Action::Cancel).count() as u64;
    let halted = halts(cancels, active_seats, limit_percent, force);
    if halted {
        *planned = std::mem::take(planned)
            .into_iter()
            .filter(|p| p.finding.action != Action::Cancel)
            .filter_map(|p| without_removals(&p.change).map(|change| Planned { change, ..p }))
            .collect();
    }
    let counted = |a: Action| planned.iter().filter(|p| p.finding.action == a).count() as u64;
    // Set and Remove name subscribed groups only (`follow_subscriptions` turned the rest into
    // `Unsubscribed`).
    let touched: BTreeSet<&GroupId> = planned
        .iter()
        .flat_map(|p| p.change.ops.iter())
        .filter_map(|op| match op {
            SourceOp::Set(SourceKey::Group(g), _) | SourceOp::Remove(SourceKey::Group(g)) => Some(g),
            _ => None,
        })
        .collect();
    Decision {
        halted,
        cancels_withheld: if halted { cancels } else { 0 },
        counts: Counts {
            granted: counted(Action::Grant),
            changed: counted(Action::Change),
            canceled: counted(Action::Cancel),
            updated: counted(Action::Update),
        },
        findings: planned.iter().take(MAX_FINDINGS).map(|p| FindingRecord::from(&p.finding)).collect(),
        findings_truncated: planned.len() > MAX_FINDINGS,
        touched: touched.into_iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::seat::SourceKey;
    use crate::domain::{GroupId, SeatStatus};

    fn user() -> UserId {
        UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap()
    }

    fn group(n: u8) -> SourceKey {
        SourceKey::Group(GroupId::parse("g", &format!("a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d{n:02x}")).unwrap())
    }

    fn seat(sources: &[(SourceKey, Tier)]) -> Seat {
        let now = crate::time::parse("2026-01-01T00:00:00Z").unwrap();
        let sources: Sources = sources.iter().cloned().collect();
        Seat {
            user_id: user(),
            user_name: None,
            tier: sources.values().copied().max().unwrap_or(Tier::Pro),
            status: if sources.is_empty() { SeatStatus::Canceled } else { SeatStatus::Pending },
            sources,
            granted_at: now,
            updated_at: now,
            canceled_at: None,
            activated_at: None,
            last_active_date: None,
            bills: Default::default(),
            version: 1,
        }
    }

    #[test]
    fn the_diff_sets_what_is_missing_and_removes_what_lost_its_source() {
        let s = seat(&[(SourceKey::Direct, Tier::Pro), (group(1), Tier::Pro)]);
        let desired: Sources = [(SourceKey::Direct, Tier::Power), (group(2), Tier::Pro)].into_iter().collect();
        let change = diff(Some(&s), &desired).unwrap();
        assert_eq!(change.apply_to(&s.sources), desired);
        assert_eq!(change.reason, CancelReason::Audit);
        assert_eq!(diff(Some(&s), &s.sources), None);
        assert_eq!(diff(None, &Sources::new()), None);
    }

    #[test]
    fn findings_name_what_the_repair_does() {
        let now = crate::time::parse("2026-02-01T00:00:00Z").unwrap();
        let desired: Sources = [(group(1), Tier::Pro)].into_iter().collect();
        let grant = diff(None, &desired).unwrap();
        assert_eq!(classify(&user(), None, &grant, now).unwrap().action, Action::Grant);
        let s = seat(&[(group(1), Tier::Pro)]);
        let cancel = diff(Some(&s), &Sources::new()).unwrap();
        let f = classify(&user(), Some(&s), &cancel, now).unwrap();
        assert_eq!((f.action, f.from_tier), (Action::Cancel, Some(Tier::Pro)));
    }

    #[test]
    fn the_guard_allows_its_share_rounded_up() {
        assert_eq!(revoke_allowance(10, 25), 3);
        assert_eq!(revoke_allowance(4, 25), 1);
        assert_eq!(revoke_allowance(0, 25), 0);
        assert!(!halts(3, 10, 25, false));
        assert!(halts(4, 10, 25, false));
        assert!(!halts(4, 10, 25, true), "force repairs anyway");
        assert!(halts(1, 10, 0, false), "0% allows no cancellation");
    }

    #[test]
    fn a_halted_change_keeps_only_additions() {
        let change = SeatChange::new(
            vec![SourceOp::Set(SourceKey::Direct, Tier::Power), SourceOp::Remove(group(1))],
            CancelReason::Audit,
        );
        assert_eq!(without_removals(&change).unwrap().ops, vec![SourceOp::Set(SourceKey::Direct, Tier::Power)]);
        assert_eq!(without_removals(&SeatChange::one(SourceOp::Remove(group(1)), CancelReason::Audit)), None);
    }

    // --- plan ---

    fn gid(n: u8) -> GroupId {
        match group(n) {
            SourceKey::Group(g) => g,
            SourceKey::Direct => unreachable!(),
        }
    }

    fn mid(n: u8) -> MembershipId {
        MembershipId::parse("m", &format!("c0ffee00-1071-70f6-1c5e-6f1a2b3c4d{n:02x}")).unwrap()
    }

    fn clock() -> DateTime<Utc> {
        crate::time::parse("2026-02-01T00:00:00Z").unwrap()
    }

    fn subscribed(direct: Option<Tier>, groups: &[(u8, Tier)]) -> Subscribed {
        Subscribed {
            direct: direct.map(|t| (user(), t)).into_iter().collect(),
            groups: groups.iter().map(|(g, t)| (gid(*g), *t)).collect(),
            downgraded: Downgraded::default(),
        }
    }

    fn joined(groups: &[u8]) -> GroupDrift {
        GroupDrift { joined: groups.iter().map(|g| (gid(*g), mid(*g))).collect(), left: BTreeSet::new() }
    }

    fn left(groups: &[u8]) -> GroupDrift {
        GroupDrift { joined: BTreeMap::new(), left: groups.iter().map(|g| gid(*g)).collect() }
    }

    #[test]
    fn plan_makes_a_seat_hold_its_subscriptions_and_memberships() {
        use Action::*;
        let (pro, plus, power) = (Tier::Pro, Tier::ProPlus, Tier::Power);
        // (what is subscribed, the seat, the drift) -> (action, the seat's sources afterwards)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Subscribed, Option<Seat>, GroupDrift, Option<(Action, Vec<(SourceKey, Tier)>)>)> = vec![
            (
                "in step: nothing",
                subscribed(Some(pro), &[]),
                Some(seat(&[(SourceKey::Direct, pro)])),
                GroupDrift::default(),
                None,
            ),
            (
                "a direct subscription without a seat",
                subscribed(Some(plus), &[]),
                None,
                GroupDrift::default(),
                Some((Grant, vec![(SourceKey::Direct, plus)])),
            ),
            (
                "joined a subscribed group silently",
                subscribed(None, &[(1, pro)]),
                None,
                joined(&[1]),
                Some((Grant, vec![(group(1), pro)])),
            ),
            ("joined a group nobody subscribed", subscribed(None, &[]), None, joined(&[1]), None),
            (
                "left its only group",
                subscribed(None, &[(1, pro)]),
                Some(seat(&[(group(1), pro)])),
                left(&[1]),
                Some((Cancel, vec![])),
            ),
            (
                "left one of two groups, the higher",
                subscribed(None, &[(1, pro), (2, power)]),
                Some(seat(&[(group(1), pro), (group(2), power)])),
                left(&[2]),
                Some((Change, vec![(group(1), pro)])),
            ),
            (
                "left one of two groups, the same tier",
                subscribed(None, &[(1, pro), (2, pro)]),
                Some(seat(&[(group(1), pro), (group(2), pro)])),
                left(&[2]),
                Some((Update, vec![(group(1), pro)])),
            ),
            (
                "a group re-tiered since the grant",
                subscribed(None, &[(1, power)]),
                Some(seat(&[(group(1), pro)])),
                GroupDrift::default(),
                Some((Change, vec![(group(1), power)])),
            ),
            (
                "a source whose subscription is gone",
                subscribed(Some(pro), &[]),
                Some(seat(&[(SourceKey::Direct, pro), (group(1), power)])),
                GroupDrift::default(),
                Some((Change, vec![(SourceKey::Direct, pro)])),
            ),
        ];
        for (name, subs, seat, drift, expected) in cases {
            let planned = plan(&subs, &user(), seat.as_ref(), drift, clock());
            let got = planned.as_ref().map(|p| {
                let after = p.change.apply_to(&seat.as_ref().map(|s| s.sources.clone()).unwrap_or_default());
                (p.finding.action, after.into_iter().collect::<Vec<_>>())
            });
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn a_removed_source_whose_subscription_is_gone_stays_removed_only_while_it_is() {
        // Group 1 is no longer subscribed: its removal must not strip a subscription created meanwhile.
        let s = seat(&[(SourceKey::Direct, Tier::Pro), (group(1), Tier::Power)]);
        let p = plan(&subscribed(Some(Tier::Pro), &[]), &user(), Some(&s), GroupDrift::default(), clock()).unwrap();
        assert_eq!(p.change.ops, vec![SourceOp::Unsubscribed(group(1))]);
        // Still subscribed but left: a plain removal.
        let p =
            plan(&subscribed(Some(Tier::Pro), &[(1, Tier::Power)]), &user(), Some(&s), left(&[1]), clock()).unwrap();
        assert_eq!(p.change.ops, vec![SourceOp::Remove(group(1))]);
    }

    #[test]
    fn plan_keeps_the_membership_ids_of_the_groups_it_grants() {
        let p = plan(&subscribed(None, &[(1, Tier::Pro)]), &user(), None, joined(&[1, 2]), clock()).unwrap();
        assert_eq!(p.memberships, BTreeMap::from([(gid(1), mid(1))]), "group 2 is not subscribed");
    }

    // --- decide ---

    fn planned(user_n: u8, action: Action) -> Planned {
        let u = UserId::parse("u", &format!("94482488-3041-7026-18f3-be45837cd0{user_n:02x}")).unwrap();
        let ops = match action {
            Action::Grant => vec![SourceOp::Set(group(1), Tier::Pro)],
            Action::Cancel => vec![SourceOp::Remove(group(2))],
            Action::Change => vec![SourceOp::Set(SourceKey::Direct, Tier::Power), SourceOp::Remove(group(3))],
            Action::Update => vec![SourceOp::Unsubscribed(group(4))],
        };
        let finding = Finding { user_id: u.clone(), action, from_tier: None, to_tier: None };
        Planned { user: u, change: SeatChange::new(ops, CancelReason::Audit), finding, memberships: BTreeMap::new() }
    }

    #[test]
    fn decide_withholds_every_cancellation_past_the_allowance_unless_forced() {
        use Action::*;
        // (cancellations, active seats, limit %, force) -> (halted, withheld, canceled counted)
        let cases = [
            (0, 10, 25, false, (false, 0, 0)),
            (3, 10, 25, false, (false, 0, 3)),
            (4, 10, 25, false, (true, 4, 0)),
            (4, 10, 25, true, (false, 0, 4)),
            (1, 10, 0, false, (true, 1, 0)),
            (10, 10, 100, false, (false, 0, 10)),
            (1, 0, 25, false, (true, 1, 0)),
        ];
        for (cancels, active, limit, force, (halted, withheld, canceled)) in cases {
            let mut plan: Vec<Planned> = (0..cancels).map(|i| planned(i, Cancel)).collect();
            plan.extend([planned(100, Grant), planned(101, Change), planned(102, Update)]);
            let d = decide(&mut plan, active, limit, force);
            let case = format!("{cancels} of {active} at {limit}%, force {force}");
            assert_eq!((d.halted, d.cancels_withheld, d.counts.canceled), (halted, withheld, canceled), "{case}");
            // Grants and raises go ahead either way; a halted change keeps only what it adds.
            assert_eq!((d.counts.granted, d.counts.changed), (1, 1), "{case}");
            let change = plan.iter().find(|p| p.finding.action == Change).unwrap();
            let removes = change.change.ops.iter().any(|op| matches!(op, SourceOp::Remove(_)));
            assert_eq!(removes, !halted, "{case}");
            // A change that only removes (the update) is withheld whole under a halt.
            assert_eq!(d.counts.updated, u64::from(!halted), "{case}");
            assert_eq!(plan.len() as u64, d.counts.granted + d.counts.changed + d.counts.canceled + d.counts.updated);
        }
    }

    #[test]
    fn decide_reports_the_first_findings_and_the_groups_the_plan_touches() {
        let mut plan: Vec<Planned> = (0..=u8::MAX).flat_map(|i| [planned(i, Action::Grant)]).collect();
        plan.extend((0..MAX_FINDINGS).map(|_| planned(7, Action::Grant)));
        let d = decide(&mut plan, 0, 25, false);
        assert_eq!(d.findings.len(), MAX_FINDINGS);
        assert!(d.findings_truncated);
        assert_eq!(d.touched, vec![gid(1)]);

        let mut exactly: Vec<Planned> = (0..MAX_FINDINGS).map(|_| planned(7, Action::Grant)).collect();
        let d = decide(&mut exactly, 0, 25, false);
        assert_eq!((d.findings.len(), d.findings_truncated), (MAX_FINDINGS, false), "all of them fit");

        let mut plan = vec![planned(1, Action::Change), planned(2, Action::Update)];
        let d = decide(&mut plan, 10, 100, false);
        assert!(!d.findings_truncated);
        // Set and Remove name subscribed groups; Unsubscribed (group 4) names one that is gone.
        assert_eq!(d.touched, vec![gid(3)]);
    }
}
