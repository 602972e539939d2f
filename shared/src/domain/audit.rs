//! The audit's rules: what each seat should be given the subscriptions and the directory, what
//! a repair would do, and the revoke guard that stops a bad read from mass-cancelling seats.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::seat::{CancelReason, Seat, SeatChange, SeatEvent, SourceOp, Sources, transition};
use super::signal::AuditMode;
use super::{Tier, UserId};
use crate::time::rfc3339;

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
        None => (Action::Update, Some(t.seat.tier), Some(t.seat.tier)),
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
            status: if sources.is_empty() { SeatStatus::Canceled } else { SeatStatus::Active },
            sources,
            granted_at: now,
            updated_at: now,
            canceled_at: None,
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
}
