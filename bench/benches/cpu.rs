//! CPU per event: what sync-group computes for an event before and besides its AWS calls.
//!
//! - `envelope/<sample>`: parse an EventBridge envelope from `events/cloudtrail/` as the runtime
//!   hands it over (`serde_json::from_str::<EventBridgeEvent<Value>>`) and classify it
//!   (`kiro::domain::signal::classify`);
//! - `seat/<case>`: compute a seat change with `kiro::domain::transition`, and the event's JSON
//!   detail when it implies one;
//! - `audit/<case>`: the audit's per-seat work, `kiro::domain::audit::diff` then `classify`.
//!
//! `cargo bench -p kiro-bench --bench cpu` (`make bench` runs it with short measurement times).

use std::hint::black_box;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiro::domain::audit;
use kiro::domain::signal::classify;
use kiro::domain::{
    CancelReason, GroupId, Seat, SeatChange, SeatStatus, SourceKey, SourceOp, Sources, Tier, UserId, transition,
};
use serde_json::Value;

fn samples() -> Vec<(String, String)> {
    let dir = kiro_tests::repo_root().join("events/cloudtrail");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn envelopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    for (name, text) in samples() {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &text, |b, text| {
            b.iter(|| {
                let e: EventBridgeEvent<Value> = serde_json::from_str(black_box(text)).expect("an envelope");
                classify(&e.source, &e.detail_type, &e.detail)
            })
        });
    }
    group.finish();
}

fn user() -> UserId {
    UserId::parse("userId", "94482488-3041-7026-18f3-be45837cd0e4").expect("a user id")
}

fn group_id(n: u8) -> GroupId {
    GroupId::parse("groupId", &format!("a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d{n:02x}")).expect("a group id")
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).single().expect("a date")
}

/// An active seat holding `sources`.
fn seat(sources: Sources) -> Seat {
    let tier = sources.values().copied().max().unwrap_or(Tier::Pro);
    Seat {
        user_id: user(),
        user_name: Some("alice".into()),
        sources,
        tier,
        status: SeatStatus::Active,
        granted_at: at(1),
        updated_at: at(2),
        canceled_at: None,
        activated_at: Some(at(2)),
        last_active_date: None,
        bills: Default::default(),
        version: 3,
    }
}

fn seat_changes(c: &mut Criterion) {
    let g = |n| SourceKey::Group(group_id(n));
    let one_group = seat(Sources::from([(g(1), Tier::Pro)]));
    let cases: Vec<(&str, Option<Seat>, SeatChange)> = vec![
        ("join, seat granted", None, SeatChange::one(SourceOp::Set(g(1), Tier::Pro), CancelReason::LeftGroup)),
        (
            "join a second group, tier up",
            Some(one_group.clone()),
            SeatChange::one(SourceOp::Set(g(2), Tier::Power), CancelReason::LeftGroup),
        ),
        (
            "leave the last group, seat canceled",
            Some(one_group.clone()),
            SeatChange::one(SourceOp::Remove(g(1)), CancelReason::LeftGroup),
        ),
        (
            "duplicate join, no change",
            Some(one_group),
            SeatChange::one(SourceOp::Set(g(1), Tier::Pro), CancelReason::LeftGroup),
        ),
    ];
    let mut group = c.benchmark_group("seat");
    for (name, current, change) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let t = transition(black_box(current.as_ref()), &user(), black_box(change), at(26));
                // The event's detail is what goes into the outbox and out to EventBridge.
                t.map(|t| (t.event.as_ref().map(|e| e.detail()), t))
            })
        });
    }
    group.finish();
}

fn audit_diffs(c: &mut Criterion) {
    let g = |n| SourceKey::Group(group_id(n));
    let held = seat(Sources::from([(SourceKey::Direct, Tier::Pro), (g(1), Tier::ProPlus), (g(2), Tier::Pro)]));
    let cases: Vec<(&str, Sources)> = vec![
        ("in sync", held.sources.clone()),
        (
            "one group left, one joined",
            Sources::from([(SourceKey::Direct, Tier::Pro), (g(1), Tier::ProPlus), (g(3), Tier::Power)]),
        ),
        ("every source lost, seat canceled", Sources::new()),
    ];
    let mut group = c.benchmark_group("audit");
    for (name, desired) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let change = audit::diff(black_box(Some(&held)), black_box(desired))?;
                audit::classify(&held.user_id, Some(&held), &change, at(26))
            })
        });
    }
    group.finish();
}

criterion_group!(cpu, envelopes, seat_changes, audit_diffs);
criterion_main!(cpu);
