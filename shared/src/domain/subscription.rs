//! Subscriptions: an admin's assignment of a tier to one user or group, and tier changes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::seat::SourceKey;
use super::{GroupId, Invalid, Tier, UserId};
use crate::time::{rfc3339, rfc3339_opt, start_of_next_month};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrincipalType {
    User,
    Group,
}

impl PrincipalType {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        match raw {
            "USER" => Ok(Self::User),
            "GROUP" => Ok(Self::Group),
            _ => Err(Invalid::new(field, "must be USER or GROUP")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Group => "GROUP",
        }
    }
}

/// A user or a group of the profile's Identity Store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(UserId),
    Group(GroupId),
}

impl Principal {
    pub fn parse(principal_type: PrincipalType, field: &str, id: &str) -> Result<Self, Invalid> {
        Ok(match principal_type {
            PrincipalType::User => Self::User(UserId::parse(field, id)?),
            PrincipalType::Group => Self::Group(GroupId::parse(field, id)?),
        })
    }

    pub fn principal_type(&self) -> PrincipalType {
        match self {
            Self::User(_) => PrincipalType::User,
            Self::Group(_) => PrincipalType::Group,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::User(u) => u.as_str(),
            Self::Group(g) => g.as_str(),
        }
    }

    /// The seat source this principal's subscription is.
    pub fn source_key(&self) -> SourceKey {
        match self {
            Self::User(_) => SourceKey::Direct,
            Self::Group(g) => SourceKey::Group(g.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(skip)]
    pub principal: Principal,
    pub principal_type: PrincipalType,
    pub principal_id: String,
    pub display_name: String,
    pub tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tier: Option<Tier>,
    #[serde(with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub pending_tier_effective_at: Option<DateTime<Utc>>,
    /// How many seats this subscription is a source of.
    pub seats: u64,
    /// A group's fan-out: whether every member holds a seat yet. `None` for users, and for
    /// groups subscribed before fan-outs were tracked (done then, or the audit did it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fan_out: Option<FanOut>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl Subscription {
    /// A new subscription; a group's starts its fan-out.
    pub fn new(principal: Principal, display_name: String, tier: Tier, actor: &str, now: DateTime<Utc>) -> Self {
        let fan_out = match principal {
            Principal::Group(_) => Some(FanOut { state: FanOutState::InProgress, granted: 0 }),
            Principal::User(_) => None,
        };
        Self {
            principal_type: principal.principal_type(),
            principal_id: principal.id().to_owned(),
            principal,
            display_name,
            tier,
            pending_tier: None,
            pending_tier_effective_at: None,
            seats: 0,
            fan_out,
            created_at: now,
            updated_at: now,
            updated_by: actor.to_owned(),
        }
    }
}

/// Where a group's fan-out stands: `IN_PROGRESS` until every member holds a seat, then `DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FanOut {
    pub state: FanOutState,
    /// Members that hold a seat from the group so far.
    pub granted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FanOutState {
    InProgress,
    Done,
}

impl FanOutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Done => "DONE",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "IN_PROGRESS" => Some(Self::InProgress),
            "DONE" => Some(Self::Done),
            _ => None,
        }
    }
}

impl FanOut {
    pub fn is_done(&self) -> bool {
        self.state == FanOutState::Done
    }
}

/// What a `PUT` of `requested` does to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierChange {
    /// Higher than the current tier: at once, and any pending downgrade is dropped.
    Upgrade { to: Tier },
    /// Lower: recorded as pending until the first instant of next month (UTC).
    ScheduleDowngrade { to: Tier, effective_at: DateTime<Utc> },
    /// The current tier: clears a pending downgrade, if any.
    KeepCurrent,
}

pub fn tier_change(current: Tier, requested: Tier, now: DateTime<Utc>) -> TierChange {
    use std::cmp::Ordering::*;
    match requested.cmp(&current) {
        Greater => TierChange::Upgrade { to: requested },
        Less => TierChange::ScheduleDowngrade { to: requested, effective_at: start_of_next_month(now) },
        Equal => TierChange::KeepCurrent,
    }
}

/// The pending downgrade that is due at `clock`, if any (the audit applies it).
pub fn due_downgrade(sub: &Subscription, clock: DateTime<Utc>) -> Option<Tier> {
    match (sub.pending_tier, sub.pending_tier_effective_at) {
        (Some(tier), Some(at)) if at <= clock => Some(tier),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).unwrap()
    }

    #[test]
    fn upgrades_are_immediate_and_downgrades_wait_for_next_month() {
        let now = at("2026-11-26T10:00:00Z");
        assert_eq!(tier_change(Tier::Pro, Tier::Power, now), TierChange::Upgrade { to: Tier::Power });
        assert_eq!(
            tier_change(Tier::Power, Tier::ProPlus, now),
            TierChange::ScheduleDowngrade { to: Tier::ProPlus, effective_at: at("2026-12-01T00:00:00Z") }
        );
        assert_eq!(tier_change(Tier::ProPlus, Tier::ProPlus, now), TierChange::KeepCurrent);
    }

    #[test]
    fn a_downgrade_is_due_from_its_instant_on() {
        let mut sub = Subscription::new(
            Principal::User(UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap()),
            "alice".into(),
            Tier::Power,
            "me",
            at("2026-11-26T10:00:00Z"),
        );
        sub.pending_tier = Some(Tier::Pro);
        sub.pending_tier_effective_at = Some(at("2026-12-01T00:00:00Z"));
        assert_eq!(due_downgrade(&sub, at("2026-11-30T23:59:59.999Z")), None);
        assert_eq!(due_downgrade(&sub, at("2026-12-01T00:00:00Z")), Some(Tier::Pro));
    }
}
