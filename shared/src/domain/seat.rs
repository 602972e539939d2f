//! Seats: what a user effectively holds, derived from their sources.
//!
//! A user's sources are their direct subscription and each subscribed group they belong to; the
//! seat's tier is the highest among them. [`transition`] is the one function that computes the
//! next seat from the current one and a change, with the event the change implies. The API,
//! the membership events and the audit all go through it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::usage::{Bills, Held};
use super::{GroupId, Tier, UserId};
use crate::time::{rfc3339, rfc3339_opt};

/// Where a seat's tier comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SourceKey {
    Direct,
    Group(GroupId),
}

/// A source as it appears in answers and events: `{"type": "DIRECT" | "GROUP", "groupId"?, "tier"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: SourceKind,
    #[serde(rename = "groupId", skip_serializing_if = "Option::is_none", default)]
    pub group_id: Option<GroupId>,
    pub tier: Tier,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceKind {
    Direct,
    Group,
}

pub type Sources = BTreeMap<SourceKey, Tier>;

/// Sources in their wire form, direct first, then groups by id.
pub fn sources_list(sources: &Sources) -> Vec<Source> {
    sources
        .iter()
        .map(|(key, tier)| match key {
            SourceKey::Direct => Source { kind: SourceKind::Direct, group_id: None, tier: *tier },
            SourceKey::Group(g) => Source { kind: SourceKind::Group, group_id: Some(g.clone()), tier: *tier },
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    /// Holds a seat, no activity recorded since it was granted: not billed.
    Pending,
    /// Holds a seat and has used Kiro since it was granted: billed.
    Active,
    /// Lost its last source; the row is kept.
    Canceled,
}

impl SeatStatus {
    pub const ALL: [SeatStatus; 3] = [SeatStatus::Pending, SeatStatus::Active, SeatStatus::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Pending => "PENDING",
            SeatStatus::Active => "ACTIVE",
            SeatStatus::Canceled => "CANCELED",
        }
    }

    pub fn parse(raw: &str) -> Option<SeatStatus> {
        SeatStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// `PENDING` or `ACTIVE`: the user holds a seat (with a tier, counted as a seat everywhere).
    pub fn holds(self) -> bool {
        self != SeatStatus::Canceled
    }
}

/// Why a seat lost its last source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    Unsubscribed,
    LeftGroup,
    UserDeleted,
    GroupDeleted,
    Audit,
}

/// A user's seat, as stored. `version` increases by one with every stored change and guards
/// every write (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub sources: Sources,
    /// The effective tier while active; the last one held once canceled.
    pub tier: Tier,
    pub status: SeatStatus,
    pub granted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub canceled_at: Option<DateTime<Utc>>,
    /// Its first activity since `granted_at` (`None` while `PENDING`).
    pub activated_at: Option<DateTime<Utc>>,
    /// The date of its latest recorded activity, ever.
    pub last_active_date: Option<NaiveDate>,
    /// What it held month by month, for the bill: updated by every change.
    pub bills: Bills,
    pub version: u64,
}

/// The seat as the API answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatView<'a> {
    pub user_id: &'a UserId,
    pub user_name: &'a str,
    pub tier: Tier,
    pub status: SeatStatus,
    pub sources: Vec<Source>,
    #[serde(with = "rfc3339")]
    pub granted_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_date: Option<NaiveDate>,
}

impl Seat {
    pub fn view(&self) -> SeatView<'_> {
        SeatView {
            user_id: &self.user_id,
            user_name: self.user_name.as_deref().unwrap_or_default(),
            tier: self.tier,
            status: self.status,
            sources: sources_list(&self.sources),
            granted_at: self.granted_at,
            updated_at: self.updated_at,
            canceled_at: self.canceled_at,
            activated_at: self.activated_at,
            last_active_date: self.last_active_date,
        }
    }

    /// `PENDING` or `ACTIVE`.
    pub fn holds(&self) -> bool {
        self.status.holds()
    }

    /// What it holds, as the bill sees it.
    pub fn held(&self) -> Held {
        self.holds().then_some((self.tier, self.status == SeatStatus::Active))
    }
}

/// One change to one source of a seat. Changes are relative, so re-applying them to a fresher
/// seat after a lost race never drops a source another writer added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceOp {
    /// Add the source, or change its tier.
    Set(SourceKey, Tier),
    /// Remove the source if present (the user left the group, was deleted, …).
    Remove(SourceKey),
    /// Remove the source because its subscription is gone; applies only while it stays gone, so
    /// an unsubscribe racing a new subscribe never strips the new one's source.
    Unsubscribed(SourceKey),
}

impl SourceOp {
    pub fn key(&self) -> &SourceKey {
        match self {
            SourceOp::Set(k, _) | SourceOp::Remove(k) | SourceOp::Unsubscribed(k) => k,
        }
    }
}

/// A change to a seat: source operations, and the reason to give if it ends up canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatChange {
    pub ops: Vec<SourceOp>,
    pub reason: CancelReason,
    /// When the change took effect, if before it is applied: a scheduled downgrade, applied by
    /// the audit after its effective instant (the first of a month). The bill reads the change
    /// at this instant, so the month it opens is billed at the lower tier.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub effective_at: Option<DateTime<Utc>>,
}

impl SeatChange {
    pub fn new(ops: Vec<SourceOp>, reason: CancelReason) -> Self {
        Self { ops, reason, effective_at: None }
    }

    pub fn one(op: SourceOp, reason: CancelReason) -> Self {
        Self::new(vec![op], reason)
    }

    /// The sources after this change.
    pub fn apply_to(&self, sources: &Sources) -> Sources {
        let mut next = sources.clone();
        for op in &self.ops {
            match op {
                SourceOp::Set(k, t) => {
                    next.insert(k.clone(), *t);
                }
                SourceOp::Remove(k) | SourceOp::Unsubscribed(k) => {
                    next.remove(k);
                }
            }
        }
        next
    }
}

/// The events a seat change emits (contract: "Events out").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatEvent {
    Granted {
        user_id: UserId,
        tier: Tier,
        sources: Sources,
    },
    TierChanged {
        user_id: UserId,
        from: Tier,
        to: Tier,
        sources: Sources,
    },
    Canceled {
        user_id: UserId,
        previous_tier: Tier,
        reason: CancelReason,
    },
    /// `PENDING` to `ACTIVE`.
    Activated {
        user_id: UserId,
        tier: Tier,
        activated_at: DateTime<Utc>,
    },
}

impl SeatEvent {
    pub fn detail_type(&self) -> &'static str {
        match self {
            SeatEvent::Granted { .. } => "Seat Granted",
            SeatEvent::TierChanged { .. } => "Seat Tier Changed",
            SeatEvent::Canceled { .. } => "Seat Canceled",
            SeatEvent::Activated { .. } => "Seat Activated",
        }
    }

    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SeatEvent::Granted { user_id, tier, sources } => {
                json!({"userId": user_id, "tier": tier, "sources": sources_list(sources)})
            }
            SeatEvent::TierChanged { user_id, from, to, sources } => {
                json!({"userId": user_id, "fromTier": from, "toTier": to, "sources": sources_list(sources)})
            }
            SeatEvent::Canceled { user_id, previous_tier, reason } => {
                json!({"userId": user_id, "previousTier": previous_tier, "reason": reason})
            }
            SeatEvent::Activated { user_id, tier, activated_at } => {
                json!({"userId": user_id, "tier": tier, "activatedAt": crate::time::format(activated_at)})
            }
        }
    }
}

/// The outcome of a change that does something: the seat to store (with the next version) and
/// the event it implies, if it is a seat change a consumer must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub seat: Seat,
    pub event: Option<SeatEvent>,
    /// The `Seat Activated` that follows `event` in the same change: a seat granted again whose
    /// activity on or after the grant's date is already recorded.
    pub activated: Option<SeatEvent>,
}

impl Transition {
    /// Each event's detail type and detail, in order, with what lets consumers order a seat's
    /// events: the seat's `version` (it grows with every change of the seat) and `updatedAt`.
    pub fn event_details(&self) -> Vec<(&'static str, serde_json::Value)> {
        [&self.event, &self.activated]
            .into_iter()
            .flatten()
            .map(|event| {
                let mut detail = event.detail();
                detail["version"] = serde_json::json!(self.seat.version);
                detail["updatedAt"] = serde_json::json!(crate::time::format(&self.seat.updated_at));
                (event.detail_type(), detail)
            })
            .collect()
    }

    /// The first event's detail (most changes imply at most one).
    pub fn event_detail(&self) -> Option<(&'static str, serde_json::Value)> {
        self.event_details().into_iter().next()
    }
}

/// The first instant of a UTC date.
pub fn start_of(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or_default()
}

/// Recorded activity on `date` for the seat: a `PENDING` seat with activity on or after the UTC
/// date of its grant becomes `ACTIVE` (`activatedAt` = the later of that date's first instant and
/// `grantedAt`, one `Seat Activated`); any seat keeps its latest activity date. `None` when
/// nothing changes (an earlier date than the one kept, on a seat that needs no activation).
pub fn record_activity(current: &Seat, date: NaiveDate, now: DateTime<Utc>) -> Option<Transition> {
    let last_active_date = current.last_active_date.max(Some(date));
    let activates = current.status == SeatStatus::Pending && date >= current.granted_at.date_naive();
    if !activates && last_active_date == current.last_active_date {
        return None;
    }
    let mut seat = Seat { last_active_date, updated_at: now, version: current.version + 1, ..current.clone() };
    let mut event = None;
    if activates {
        let activated_at = start_of(date).max(current.granted_at);
        seat.status = SeatStatus::Active;
        seat.activated_at = Some(activated_at);
        event = Some(SeatEvent::Activated { user_id: current.user_id.clone(), tier: current.tier, activated_at });
        seat.bills.record(current.held(), seat.held(), activated_at);
    }
    Some(Transition { seat, event, activated: None })
}

/// The next seat for `user` after `change`, or `None` when nothing changes (no write, no event).
///
/// - no seat or a canceled one, gaining a source → `PENDING`, `Seat Granted` (or `ACTIVE`, with a
///   `Seat Activated` after it, when activity dated today or later is already recorded);
/// - active, highest tier moves → `Seat Tier Changed`; sources move but not the tier → stored, no event;
/// - active, losing its last source → `CANCELED` with `canceledAt`, `Seat Canceled` with the reason.
pub fn transition(
    current: Option<&Seat>,
    user: &UserId,
    change: &SeatChange,
    now: DateTime<Utc>,
) -> Option<Transition> {
    transition_with(current, None, user, change, now)
}

/// [`transition`], for a user whose latest activity was recorded while they had no seat row
/// (`recorded`): their first seat starts from it, `ACTIVE` at once when it is dated today or later.
pub fn transition_with(
    current: Option<&Seat>,
    recorded: Option<NaiveDate>,
    user: &UserId,
    change: &SeatChange,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let empty = Sources::new();
    let before = current.map_or(&empty, |s| &s.sources);
    let after = change.apply_to(before);
    if &after == before {
        return None;
    }
    let highest = after.values().copied().max();
    let version = current.map_or(1, |s| s.version + 1);
    let held = current.is_some_and(Seat::holds);
    let base = |tier: Tier| Seat {
        user_id: user.clone(),
        user_name: current.and_then(|s| s.user_name.clone()),
        sources: after.clone(),
        tier,
        status: current.map_or(SeatStatus::Pending, |s| s.status),
        granted_at: current.map_or(now, |s| s.granted_at),
        updated_at: now,
        canceled_at: None,
        activated_at: current.and_then(|s| s.activated_at),
        last_active_date: current.map_or(recorded, |s| s.last_active_date),
        bills: current.map(|s| s.bills.clone()).unwrap_or_default(),
        version,
    };
    let (seat, event, activated) = match (held, highest, current) {
        (true, None, Some(cur)) => {
            let seat = Seat { status: SeatStatus::Canceled, canceled_at: Some(now), ..base(cur.tier) };
            let event = SeatEvent::Canceled { user_id: user.clone(), previous_tier: cur.tier, reason: change.reason };
            (seat, Some(event), None)
        }
        (true, Some(to), Some(cur)) => {
            let event = (to != cur.tier).then(|| SeatEvent::TierChanged {
                user_id: user.clone(),
                from: cur.tier,
                to,
                sources: after.clone(),
            });
            (base(to), event, None)
        }
        (false, Some(tier), _) => {
            // Granted (again): PENDING, unless activity on or after today's date is recorded.
            let mut seat = Seat { granted_at: now, status: SeatStatus::Pending, activated_at: None, ..base(tier) };
            let granted = SeatEvent::Granted { user_id: user.clone(), tier, sources: after.clone() };
            let mut activated = None;
            if let Some(date) = seat.last_active_date.filter(|d| *d >= now.date_naive()) {
                let activated_at = start_of(date).max(now);
                seat.status = SeatStatus::Active;
                seat.activated_at = Some(activated_at);
                activated = Some(SeatEvent::Activated { user_id: user.clone(), tier, activated_at });
            }
            (seat, Some(granted), activated)
        }
        // A canceled seat (or none) that gains nothing: only possible when `after` is empty,
        // which equals `before` and returned above; kept total for the compiler.
        (false, None, _) | (true, _, None) => return None,
    };
    let mut seat = seat;
    let effective = change.effective_at.filter(|at| *at < now).unwrap_or(now);
    seat.bills.record(current.and_then(Seat::held), seat.held(), effective);
    Some(Transition { seat, event, activated })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn user() -> UserId {
        UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap()
    }

    fn group(n: u8) -> GroupId {
        GroupId::parse("g", &format!("a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d{n:02x}")).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).unwrap()
    }

    fn apply(seat: Option<&Seat>, ops: Vec<SourceOp>, reason: CancelReason, now: &str) -> Option<Transition> {
        transition(seat, &user(), &SeatChange::new(ops, reason), at(now))
    }

    #[test]
    fn a_first_source_grants_the_seat() {
        let t = apply(
            None,
            vec![SourceOp::Set(SourceKey::Direct, Tier::Pro)],
            CancelReason::Unsubscribed,
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(t.seat.status, SeatStatus::Pending, "a new seat waits for its first activity");
        assert_eq!((t.seat.tier, t.seat.version), (Tier::Pro, 1));
        assert!(matches!(t.event, Some(SeatEvent::Granted { tier: Tier::Pro, .. })));
    }

    /// Contract: every seat event's detail carries the seat's `version` and `updatedAt`, so a
    /// consumer can order a seat's events however they arrive.
    #[test]
    fn each_event_carries_the_version_and_time_of_its_change() {
        let set = |t| vec![SourceOp::Set(SourceKey::Direct, t)];
        let granted = apply(None, set(Tier::Pro), CancelReason::Audit, "2026-01-01T00:00:00Z").unwrap();
        let changed =
            apply(Some(&granted.seat), set(Tier::Power), CancelReason::Audit, "2026-01-02T00:00:00.250Z").unwrap();
        let canceled = apply(
            Some(&changed.seat),
            vec![SourceOp::Remove(SourceKey::Direct)],
            CancelReason::Audit,
            "2026-01-03T00:00:00Z",
        )
        .unwrap();
        let details: Vec<(&str, serde_json::Value)> =
            [&granted, &changed, &canceled].iter().map(|t| t.event_detail().unwrap()).collect();
        let stamps: Vec<(&str, u64, &str)> = details
            .iter()
            .map(|(kind, d)| (*kind, d["version"].as_u64().unwrap(), d["updatedAt"].as_str().unwrap()))
            .collect();
        assert_eq!(
            stamps,
            [
                ("Seat Granted", 1, "2026-01-01T00:00:00.000Z"),
                ("Seat Tier Changed", 2, "2026-01-02T00:00:00.250Z"),
                ("Seat Canceled", 3, "2026-01-03T00:00:00.000Z"),
            ]
        );
        // A change that moves no tier stores the seat (its version grows) and emits nothing.
        let more = vec![SourceOp::Set(SourceKey::Group(group(1)), Tier::Pro)];
        let quiet = apply(Some(&changed.seat), more, CancelReason::Audit, "2026-01-04T00:00:00Z").unwrap();
        assert_eq!((quiet.seat.version, quiet.event_detail()), (3, None));
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn activity_on_or_after_the_grant_date_activates_once() {
        let set = vec![SourceOp::Set(SourceKey::Direct, Tier::Pro)];
        let granted = apply(None, set, CancelReason::Audit, "2026-03-10T15:00:00Z").unwrap().seat;
        assert!(
            record_activity(&granted, date("2026-03-09"), at("2026-03-11T00:00:00Z")).unwrap().event.is_none(),
            "the day before the grant does not count"
        );
        let t = record_activity(&granted, date("2026-03-10"), at("2026-03-11T01:00:00Z")).unwrap();
        assert_eq!(t.seat.status, SeatStatus::Active);
        assert_eq!(
            t.seat.activated_at,
            Some(at("2026-03-10T15:00:00Z")),
            "the later of the date's start and the grant"
        );
        assert_eq!(t.seat.last_active_date, Some(date("2026-03-10")));
        assert!(matches!(t.event, Some(SeatEvent::Activated { tier: Tier::Pro, .. })));
        let again = record_activity(&t.seat, date("2026-03-12"), at("2026-03-13T00:00:00Z")).unwrap();
        assert_eq!(
            (again.seat.status, again.event, again.seat.activated_at),
            (SeatStatus::Active, None, t.seat.activated_at),
            "activated once"
        );
        assert!(
            record_activity(&again.seat, date("2026-03-11"), at("2026-03-13T00:00:00Z")).is_none(),
            "an older date changes nothing"
        );
    }

    #[test]
    fn a_seat_granted_again_is_pending_unless_todays_activity_is_recorded() {
        let set = || vec![SourceOp::Set(SourceKey::Direct, Tier::Pro)];
        let drop = || vec![SourceOp::Remove(SourceKey::Direct)];
        let s = apply(None, set(), CancelReason::Audit, "2026-03-01T08:00:00Z").unwrap().seat;
        let s = record_activity(&s, date("2026-03-02"), at("2026-03-03T00:00:00Z")).unwrap().seat;
        let canceled = apply(Some(&s), drop(), CancelReason::Audit, "2026-03-05T00:00:00Z").unwrap().seat;
        assert_eq!((canceled.status, canceled.last_active_date), (SeatStatus::Canceled, Some(date("2026-03-02"))));
        let regranted = apply(Some(&canceled), set(), CancelReason::Audit, "2026-03-06T09:00:00Z").unwrap();
        assert_eq!(
            (regranted.seat.status, regranted.seat.activated_at, &regranted.activated),
            (SeatStatus::Pending, None, &None)
        );
        // Activity dated the day of a later grant, recorded while canceled: active at once.
        let c2 = apply(Some(&regranted.seat), drop(), CancelReason::Audit, "2026-03-07T00:00:00Z").unwrap().seat;
        let c2 = record_activity(&c2, date("2026-03-08"), at("2026-03-08T20:00:00Z")).unwrap().seat;
        assert_eq!(c2.status, SeatStatus::Canceled, "activity changes no canceled seat's status");
        let back = apply(Some(&c2), set(), CancelReason::Audit, "2026-03-08T21:00:00Z").unwrap();
        assert!(matches!(back.event, Some(SeatEvent::Granted { .. })));
        assert!(matches!(back.activated, Some(SeatEvent::Activated { .. })), "Seat Activated after its Seat Granted");
        assert_eq!((back.seat.status, back.seat.activated_at), (SeatStatus::Active, Some(at("2026-03-08T21:00:00Z"))));
        let kinds: Vec<&str> = back.event_details().iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["Seat Granted", "Seat Activated"]);
    }

    #[test]
    fn the_highest_of_three_sources_wins_and_falls_back_as_they_go() {
        let r = CancelReason::LeftGroup;
        let s1 =
            apply(None, vec![SourceOp::Set(SourceKey::Direct, Tier::Pro)], r, "2026-01-01T00:00:00Z").unwrap().seat;
        let t2 =
            apply(Some(&s1), vec![SourceOp::Set(SourceKey::Group(group(1)), Tier::Power)], r, "2026-01-02T00:00:00Z")
                .unwrap();
        assert_eq!(
            t2.event,
            Some(SeatEvent::TierChanged {
                user_id: user(),
                from: Tier::Pro,
                to: Tier::Power,
                sources: t2.seat.sources.clone()
            })
        );
        let t3 = apply(
            Some(&t2.seat),
            vec![SourceOp::Set(SourceKey::Group(group(2)), Tier::ProPlus)],
            r,
            "2026-01-03T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (t3.seat.tier, t3.seat.sources.len(), t3.event),
            (Tier::Power, 3, None),
            "a lower source changes no tier"
        );
        let t4 = apply(Some(&t3.seat), vec![SourceOp::Remove(SourceKey::Group(group(1)))], r, "2026-01-04T00:00:00Z")
            .unwrap();
        assert!(matches!(t4.event, Some(SeatEvent::TierChanged { from: Tier::Power, to: Tier::ProPlus, .. })));
        assert_eq!(t4.seat.granted_at, at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn losing_the_last_source_cancels_and_a_new_source_reactivates() {
        let s = apply(
            None,
            vec![SourceOp::Set(SourceKey::Group(group(1)), Tier::ProPlus)],
            CancelReason::LeftGroup,
            "2026-01-01T00:00:00Z",
        )
        .unwrap()
        .seat;
        let c = apply(
            Some(&s),
            vec![SourceOp::Remove(SourceKey::Group(group(1)))],
            CancelReason::LeftGroup,
            "2026-02-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(c.seat.status, SeatStatus::Canceled);
        assert_eq!((c.seat.tier, c.seat.canceled_at), (Tier::ProPlus, Some(at("2026-02-01T00:00:00Z"))));
        assert!(c.seat.sources.is_empty());
        assert_eq!(
            c.event,
            Some(SeatEvent::Canceled {
                user_id: user(),
                previous_tier: Tier::ProPlus,
                reason: CancelReason::LeftGroup
            })
        );
        assert_eq!(
            apply(
                Some(&c.seat),
                vec![SourceOp::Remove(SourceKey::Direct)],
                CancelReason::Audit,
                "2026-02-02T00:00:00Z"
            ),
            None
        );
        let r = apply(
            Some(&c.seat),
            vec![SourceOp::Set(SourceKey::Direct, Tier::Pro)],
            CancelReason::Audit,
            "2026-03-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (r.seat.status, r.seat.canceled_at, r.seat.granted_at),
            (SeatStatus::Pending, None, at("2026-03-01T00:00:00Z"))
        );
        assert!(matches!(r.event, Some(SeatEvent::Granted { tier: Tier::Pro, .. })));
        assert_eq!(r.seat.version, 3);
    }

    #[test]
    fn repeating_a_change_is_a_no_op() {
        let ops = vec![SourceOp::Set(SourceKey::Group(group(1)), Tier::Pro)];
        let s = apply(None, ops.clone(), CancelReason::LeftGroup, "2026-01-01T00:00:00Z").unwrap().seat;
        assert_eq!(apply(Some(&s), ops, CancelReason::LeftGroup, "2026-01-01T00:00:01Z"), None);
        assert_eq!(
            apply(None, vec![SourceOp::Remove(SourceKey::Direct)], CancelReason::Unsubscribed, "2026-01-01T00:00:00Z"),
            None
        );
    }

    fn arb_key() -> impl Strategy<Value = SourceKey> {
        prop_oneof![Just(SourceKey::Direct), (0u8..4).prop_map(|n| SourceKey::Group(group(n)))]
    }

    fn arb_tier() -> impl Strategy<Value = Tier> {
        prop_oneof![Just(Tier::Pro), Just(Tier::ProPlus), Just(Tier::Power)]
    }

    fn arb_op() -> impl Strategy<Value = SourceOp> {
        prop_oneof![
            (arb_key(), arb_tier()).prop_map(|(k, t)| SourceOp::Set(k, t)),
            arb_key().prop_map(SourceOp::Remove),
            arb_key().prop_map(SourceOp::Unsubscribed),
        ]
    }

    proptest! {
        /// Whatever the sequence of changes: the seat's sources are the changes folded over the
        /// start, its tier the highest of them, its status ACTIVE iff it has one, and exactly the
        /// steps that move status or tier emit one event.
        #[test]
        fn seats_follow_their_sources(ops in proptest::collection::vec(arb_op(), 1..40)) {
            let mut seat: Option<Seat> = None;
            let mut expected = Sources::new();
            for (i, op) in ops.into_iter().enumerate() {
                let change = SeatChange::one(op, CancelReason::LeftGroup);
                let next_expected = change.apply_to(&expected);
                let now = at("2026-01-01T00:00:00Z") + chrono::Duration::seconds(i as i64);
                match transition(seat.as_ref(), &user(), &change, now) {
                    None => prop_assert_eq!(&next_expected, &expected),
                    Some(t) => {
                        prop_assert_eq!(&t.seat.sources, &next_expected);
                        prop_assert_eq!(t.seat.version, seat.as_ref().map_or(1, |s| s.version + 1));
                        let was_active = seat.as_ref().is_some_and(Seat::holds);
                        let old_tier = seat.as_ref().map(|s| s.tier);
                        match next_expected.values().max() {
                            Some(top) => {
                                prop_assert_eq!(t.seat.status, SeatStatus::Pending, "no activity in this history");
                                prop_assert_eq!(t.seat.tier, *top);
                                let moved = !was_active || old_tier != Some(*top);
                                prop_assert_eq!(t.event.is_some(), moved);
                            }
                            None => {
                                prop_assert_eq!(t.seat.status, SeatStatus::Canceled);
                                prop_assert!(t.seat.canceled_at.is_some());
                                let is_cancel = matches!(t.event, Some(SeatEvent::Canceled { .. }));
                                prop_assert!(is_cancel);
                            }
                        }
                        seat = Some(t.seat);
                    }
                }
                expected = next_expected;
            }
        }
    }
}
