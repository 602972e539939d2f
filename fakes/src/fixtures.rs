//! Fixed ids and records for tests of the ports (the port contract suite and the fakes' own
//! tests): the same values on both sides, so a difference is the store's, not the fixture's.

use chrono::{DateTime, Utc};
use kiro::domain::{
    GroupId, MembershipId, Principal, Seat, SeatStatus, SourceKey, Sources, Subscription, Tier, UserId,
};
use kiro::ports::{OutEvent, Outbox, SeatWrite};
use serde_json::json;

pub fn at(s: &str) -> DateTime<Utc> {
    kiro::time::parse(s).unwrap()
}

pub fn now() -> DateTime<Utc> {
    at("2026-01-01T00:00:00Z")
}

pub fn user(n: u32) -> UserId {
    UserId::parse("u", &format!("94482488-3041-7026-18f3-{n:012x}")).unwrap()
}

pub fn group(n: u32) -> GroupId {
    GroupId::parse("g", &format!("a4d8e4a8-1071-70f6-1c5e-{n:012x}")).unwrap()
}

pub fn membership(n: u32) -> MembershipId {
    MembershipId::parse("m", &format!("c0ffee00-1071-70f6-1c5e-{n:012x}")).unwrap()
}

pub fn seat(user: &UserId, tier: Tier, version: u64) -> Seat {
    Seat {
        user_id: user.clone(),
        user_name: None,
        sources: Sources::from([(SourceKey::Direct, tier)]),
        tier,
        status: SeatStatus::Active,
        granted_at: now(),
        updated_at: now(),
        canceled_at: None,
        activated_at: Some(now()),
        last_active_date: Some(now().date_naive()),
        bills: Default::default(),
        version,
    }
}

pub fn write(seat: Seat, expected_version: Option<u64>) -> SeatWrite {
    SeatWrite { seat, expected_version, grants_added: Vec::new(), grants_removed: Vec::new() }
}

pub fn event(n: u32) -> OutEvent {
    OutEvent { detail_type: "Seat Granted".into(), detail: json!({ "userId": user(n) }) }
}

pub fn outbox(id: &str, events: Vec<OutEvent>) -> Outbox {
    Outbox { id: id.into(), events }
}

pub fn subscription(principal: Principal, tier: Tier) -> Subscription {
    Subscription::new(principal, "someone".into(), tier, "admin", now())
}
