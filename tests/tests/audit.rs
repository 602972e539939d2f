//! The audit against moto: repairs drift that no event reported, applies due downgrades, and
//! never mass-revokes without `force`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::domain::{Principal, SeatStatus, Subscription, Tier};
use kiro::ports::SubscriptionStore;
use kiro_tests::fixture;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use sync_group::handle;

/// The shared stack, with this file's helpers on top.
struct Ctx(kiro_tests::Stack);

impl std::ops::Deref for Ctx {
    type Target = kiro_tests::Stack;

    fn deref(&self) -> &kiro_tests::Stack {
        &self.0
    }
}

impl Ctx {
    async fn new() -> Ctx {
        Ctx(kiro_tests::Stack::new().await)
    }

    /// Runs an audit the way EventBridge delivers it: on request, or as the schedule's tick at `time`.
    async fn audit(&self, mode: &str, force: bool, time: &str) -> Value {
        let mut raw = if mode == "scheduled" {
            fixture("cloudtrail/scheduled-audit.json")
        } else {
            let mut r = fixture("cloudtrail/audit-requested-report.json");
            r["detail"] = json!({"mode": mode, "force": force});
            r
        };
        raw["time"] = json!(time);
        let payload: EventBridgeEvent<Value> = serde_json::from_value(raw).unwrap();
        handle(&self.sync, LambdaEvent::new(payload, Context::default())).await.unwrap()
    }
}

const NOW: &str = "2026-11-26T10:00:00Z";

#[tokio::test]
async fn silent_joins_and_leaves_are_repaired_and_report_mode_changes_nothing() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("eng").await;
    let members: Vec<String> = users(&ctx, 8).await;
    let mut memberships = Vec::new();
    for u in &members[..6] {
        memberships.push(ctx.dir.add(&g, u).await);
    }
    ctx.subscribe("GROUP", &g, "PRO").await;
    // No events reach sync-group: one member leaves, two join.
    ctx.dir.remove(&memberships[0]).await;
    ctx.dir.add(&g, &members[6]).await;
    ctx.dir.add(&g, &members[7]).await;
    ctx.sink.clear();

    let report = ctx.audit("report", false, NOW).await;
    assert_eq!(
        (report["mode"].as_str(), report["granted"].as_u64(), report["canceled"].as_u64()),
        (Some("report"), Some(2), Some(1)),
        "{report}"
    );
    assert_eq!(report["halted"], false);
    assert!(ctx.seat(&members[6]).await.is_none(), "report mode changes nothing");
    assert_eq!(ctx.seat(&members[0]).await.unwrap().status, SeatStatus::Pending);
    let actions: Vec<&str> =
        report["findings"].as_array().unwrap().iter().map(|f| f["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "GRANT").count(), 2);
    assert_eq!(ctx.sink.summary(), vec![("Audit Completed".to_owned(), String::new())]);

    ctx.sink.clear();
    let report = ctx.audit("scheduled", false, NOW).await;
    assert_eq!(
        (report["mode"].as_str(), report["granted"].as_u64(), report["canceled"].as_u64()),
        (Some("repair"), Some(2), Some(1))
    );
    assert_eq!(report["startedAt"], "2026-11-26T10:00:00.000Z", "the audit's clock is the envelope's time");
    assert_eq!(ctx.seat(&members[6]).await.unwrap().status, SeatStatus::Pending);
    assert_eq!(ctx.seat(&members[0]).await.unwrap().status, SeatStatus::Canceled);
    assert_eq!(report["namesFilled"], 7, "the group's seats (5 kept, 2 granted) are named from the directory");
    assert_eq!(ctx.seat(&members[6]).await.unwrap().user_name.as_deref(), Some("member6"));
    let canceled = ctx.sink.events().into_iter().find(|e| e.detail_type == "Seat Canceled").unwrap();
    assert_eq!(canceled.detail["reason"], "AUDIT");
    assert_eq!(ctx.sink.events().last().unwrap().detail_type, "Audit Completed");

    let again = ctx.audit("repair", false, NOW).await;
    assert_eq!(
        (again["granted"].as_u64(), again["changed"].as_u64(), again["canceled"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
}

/// Creates users `member0`.. in the directory, one after the other.
async fn users(ctx: &Ctx, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(ctx.dir.user(&format!("member{i}")).await);
    }
    out
}

#[tokio::test]
async fn due_downgrades_apply_and_early_ones_wait() {
    let ctx = Ctx::new().await;
    let u = ctx.dir.user("downgraded").await;
    ctx.subscribe("USER", &u, "POWER").await;
    let (status, sub) = ctx.api("PUT", &format!("/subscriptions/USER/{u}"), Some(json!({"tier": "PRO"}))).await;
    assert_eq!(status, 200);
    let effective = sub["pendingTierEffectiveAt"].as_str().unwrap().to_owned();
    let before = kiro::time::format(&(kiro::time::parse(&effective).unwrap() - chrono::Duration::milliseconds(1)));

    let early = ctx.audit("repair", false, &before).await;
    assert_eq!((early["downgradesDue"].as_u64(), early["changed"].as_u64()), (Some(0), Some(0)));
    assert_eq!(ctx.seat(&u).await.unwrap().tier, Tier::Power);

    // The daily audit runs three hours into the month the downgrade takes effect in.
    let effective_at = kiro::time::parse(&effective).unwrap();
    let later = kiro::time::format(&(effective_at + chrono::Duration::hours(3)));
    let due = ctx.audit("repair", false, &later).await;
    assert_eq!((due["downgradesDue"].as_u64(), due["changed"].as_u64()), (Some(1), Some(1)), "{due}");
    let seat = ctx.seat(&u).await.unwrap();
    assert_eq!(seat.tier, Tier::Pro);
    // Billed from its effective instant, not the audit's: the month it opens is a Pro month.
    let month = kiro::domain::usage::YearMonth::of(effective_at);
    let (new_month, _) = seat.bills.month(month, seat.held());
    assert_eq!(new_month.highest_tier, Some(Tier::Pro), "{:?}", seat.bills);
    let (old_month, at_its_end) =
        seat.bills.month(kiro::domain::usage::YearMonth::of(effective_at - chrono::Duration::days(1)), seat.held());
    assert_eq!((old_month.highest_tier, at_its_end.map(|h| h.0)), (Some(Tier::Power), Some(Tier::Power)));
    let (_, sub) = ctx.api("GET", &format!("/subscriptions/USER/{u}"), None).await;
    assert_eq!(sub["tier"], "PRO");
    assert!(sub.get("pendingTier").is_none(), "{sub}");
}

#[tokio::test]
async fn the_revoke_guard_halts_mass_cancellation_until_forced() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("vanishing").await;
    let extra = ctx.dir.group("growing").await;
    let mut memberships = Vec::new();
    for u in users(&ctx, 4).await {
        memberships.push(ctx.dir.add(&g, &u).await);
    }
    ctx.subscribe("GROUP", &g, "PRO").await;
    ctx.subscribe("GROUP", &extra, "POWER").await;
    for m in &memberships {
        ctx.dir.remove(m).await; // e.g. a broken SCIM sync empties the group
    }
    let newcomer = ctx.dir.user("newcomer").await;
    ctx.dir.add(&extra, &newcomer).await;

    let halted = ctx.audit("repair", false, NOW).await;
    assert_eq!((halted["halted"].as_bool(), halted["canceled"].as_u64()), (Some(true), Some(0)), "{halted}");
    assert_eq!(halted["granted"], 1, "grants still apply when halted");
    assert_eq!(halted["cancelsWithheld"], 4);
    assert_eq!(ctx.seat(&newcomer).await.unwrap().status, SeatStatus::Pending);

    let forced = ctx.audit("repair", true, NOW).await;
    assert_eq!((forced["halted"].as_bool(), forced["canceled"].as_u64()), (Some(false), Some(4)), "{forced}");
}

#[tokio::test]
async fn a_half_granted_group_is_completed_and_reports_are_readable() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("half").await;
    let members = users(&ctx, 5).await;
    for u in &members {
        ctx.dir.add(&g, u).await;
    }
    // The POST stored the subscription, then its function died before any grant.
    let principal = Principal::Group(kiro::domain::GroupId::parse("g", &g).unwrap());
    let now = chrono::Utc::now();
    ctx.store()
        .create_subscription(&Subscription::new(principal, "half".into(), Tier::ProPlus, "test", now))
        .await
        .unwrap();

    let report = ctx.audit("repair", false, NOW).await;
    assert_eq!(report["granted"], 5);
    for u in &members {
        assert_eq!(ctx.seat(u).await.unwrap().tier, Tier::ProPlus);
    }
    let (_, sub) = ctx.api("GET", &format!("/subscriptions/GROUP/{g}"), None).await;
    assert_eq!(sub["seats"], 5);

    let (status, list) = ctx.api("GET", "/audits", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["auditId"], report["auditId"]);
    let (status, one) = ctx.api("GET", &format!("/audits/{}", report["auditId"].as_str().unwrap()), None).await;
    assert_eq!((status, one["granted"].as_u64()), (200, Some(5)));
    let (status, _) = ctx.api("GET", "/audits/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_audit_cut_into_invocations_continues_from_its_checkpoint() {
    let mut stack = kiro_tests::Stack::new().await;
    stack.sync.audit_units_per_invocation = Some(1);
    let ctx = Ctx(stack);
    let (eng, ops) = (ctx.dir.group("eng").await, ctx.dir.group("ops").await);
    let members = users(&ctx, 6).await;
    let mut memberships = Vec::new();
    for u in &members[..4] {
        memberships.push(ctx.dir.add(&eng, u).await);
    }
    ctx.subscribe("GROUP", &eng, "PRO").await;
    ctx.subscribe("GROUP", &ops, "POWER").await;
    // Silently: one leaves eng, one joins ops.
    ctx.dir.remove(&memberships[0]).await;
    ctx.dir.add(&ops, &members[5]).await;
    ctx.sink.clear();

    let mut raw = fixture("cloudtrail/scheduled-audit.json");
    raw["time"] = json!(NOW);
    let tick: EventBridgeEvent<Value> = serde_json::from_value(raw).unwrap();
    let sink = ctx.sink.clone();
    let (report, invocations) = kiro_tests::audit_to_completion(&ctx.sync, tick, || sink.events()).await;
    // Two groups, a page of seats, the changes, two re-syncs, the names: one unit each.
    assert!(invocations >= 6, "{invocations} invocations");
    assert_eq!(report["invocations"], json!(invocations));
    assert_eq!((report["granted"].as_u64(), report["canceled"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["startedAt"], "2026-11-26T10:00:00.000Z", "continuations keep the first envelope's clock");
    assert_eq!(ctx.seat(&members[5]).await.unwrap().tier, Tier::Power);
    assert_eq!(ctx.seat(&members[0]).await.unwrap().status, SeatStatus::Canceled);
    let continuations = ctx.sink.events().iter().filter(|e| e.detail_type == "Audit Requested").count();
    assert_eq!(continuations as u32, invocations - 1, "one continuation per invocation but the last");
    let (status, stored) = ctx.api("GET", &format!("/audits/{}", report["auditId"].as_str().unwrap()), None).await;
    assert_eq!((status, &stored["invocations"]), (200, &json!(invocations)));
    use kiro::ports::AuditCheckpoints;
    assert_eq!(ctx.store().checkpoint_head().await.unwrap(), None, "the finished audit removed its checkpoint");
}

#[tokio::test]
async fn checkpoints_are_stored_in_parts_and_replaced_only_by_their_holder() {
    use kiro::domain::audit::AuditMode;
    use kiro::ports::{AuditCheckpoints, CheckpointHead, StoreError};
    let ctx = Ctx::new().await;
    let store = ctx.store();
    assert_eq!(store.checkpoint_head().await.unwrap(), None);
    let head = |step, lease_until_ms| CheckpointHead {
        audit_id: "a-1".into(),
        step,
        mode: AuditMode::Repair,
        force: true,
        lease_until_ms,
        lease_owner: String::new(),
        saved_at: chrono::Utc::now(),
        save_id: uuid::Uuid::new_v4().to_string(),
    };
    // Three parts (over 600 KB, with multi-byte characters on the part boundaries).
    let state: String = "{\"drift\":\"é€\"}".repeat(40_000);
    assert!(state.len() > 2 * kiro::aws::CHECKPOINT_PART_BYTES);
    let first = head(1, 0);
    store.save_checkpoint(None, &first, &state).await.unwrap();
    let read = store.checkpoint_head().await.unwrap().unwrap();
    assert_eq!((read.audit_id.as_str(), read.step, read.mode, read.force), ("a-1", 1, AuditMode::Repair, true));
    assert_eq!(store.checkpoint_state(&read).await.unwrap(), state);
    assert!(matches!(store.save_checkpoint(None, &head(1, 0), "x").await, Err(StoreError::Conflict(_))));

    let now = chrono::Utc::now().timestamp_millis();
    store.claim_checkpoint(&read, "req-a", now + 60_000, now).await.unwrap();
    for other in ["req-b", ""] {
        assert!(
            matches!(store.claim_checkpoint(&read, other, now + 60_000, now).await, Err(StoreError::Conflict(_))),
            "a live lease keeps another invocation ({other:?}) out"
        );
    }
    store.claim_checkpoint(&read, "req-a", now + 60_000, now).await.expect("Lambda's retry of req-a takes it back");
    assert_eq!(store.checkpoint_head().await.unwrap().unwrap().lease_owner, "req-a");
    let second = head(2, 0);
    store.save_checkpoint(Some(&read), &second, "{\"small\":1}").await.unwrap();
    assert!(
        matches!(store.save_checkpoint(Some(&read), &head(2, 0), "{}").await, Err(StoreError::Conflict(_))),
        "a save names the step it replaces"
    );
    let read = store.checkpoint_head().await.unwrap().unwrap();
    assert_eq!((read.step, read.lease_until_ms), (2, 0), "saving releases the lease");
    assert_eq!(read.save_id, second.save_id);
    assert_eq!(store.checkpoint_state(&read).await.unwrap(), "{\"small\":1}", "the losing save left the state alone");
    store.clear_checkpoint(&first).await.unwrap();
    assert!(store.checkpoint_head().await.unwrap().is_some(), "clearing a replaced step leaves the head");
    store.clear_checkpoint(&read).await.unwrap();
    assert_eq!(store.checkpoint_head().await.unwrap(), None);
}
