//! `sync-group` against moto: membership events from the three channels (Identity Store API,
//! console, SCIM), built from the samples in `events/cloudtrail/` with this test's ids.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::domain::{Principal, SeatStatus, UserId};
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

    /// A sample event with its ids replaced by this test's.
    async fn deliver(&self, sample: &str, ids: &[(&str, &str)]) -> Value {
        let mut text = fixture(&format!("cloudtrail/{sample}")).to_string();
        text = text.replace("d-1234567890", &self.dir.store_id);
        for (from, to) in ids {
            text = text.replace(from, to);
        }
        let payload: EventBridgeEvent<Value> = serde_json::from_str(&text).unwrap();
        handle(&self.sync, LambdaEvent::new(payload, Context::default())).await.unwrap()
    }
}

// The ids used in the samples.
const SAMPLE_GROUP: &str = "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e";
const SAMPLE_USER: &str = "94482488-3041-7026-18f3-be45837cd0e4";
const SAMPLE_MEMBERSHIP: &str = "e4d89488-b0d1-70a5-7c2e-3f4a5b6c7d8e";

#[tokio::test]
async fn api_channel_join_then_leave() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("eng").await;
    ctx.subscribe("GROUP", &g, "PRO_PLUS").await;
    let u = ctx.dir.user("joiner").await;

    let m = ctx.dir.add(&g, &u).await;
    let ids = [(SAMPLE_GROUP, g.as_str()), (SAMPLE_USER, u.as_str()), (SAMPLE_MEMBERSHIP, m.as_str())];
    ctx.deliver("identitystore-create-group-membership.json", &ids).await;
    let seat = ctx.seat(&u).await.expect("a seat");
    assert_eq!((seat.status, seat.tier), (SeatStatus::Pending, kiro::domain::Tier::ProPlus));
    assert_eq!(ctx.sink.summary(), vec![("Seat Granted".to_owned(), u.clone())]);

    // The same CloudTrail event delivered twice: no second change, no second event.
    ctx.deliver("identitystore-create-group-membership.json", &ids).await;
    assert_eq!(ctx.sink.events().len(), 1);

    ctx.dir.remove(&m).await;
    ctx.deliver("identitystore-delete-group-membership.json", &ids).await;
    let seat = ctx.seat(&u).await.unwrap();
    assert_eq!(seat.status, SeatStatus::Canceled);
    let last = ctx.sink.events().last().cloned().unwrap();
    let stamp = json!({"version": seat.version, "updatedAt": kiro::time::format(&seat.updated_at)});
    assert_eq!(
        last.detail,
        json!({"userId": u, "previousTier": "PRO_PLUS", "reason": "LEFT_GROUP",
               "version": stamp["version"], "updatedAt": stamp["updatedAt"]})
    );
    ctx.deliver("identitystore-delete-group-membership.json", &ids).await;
    assert_eq!(ctx.sink.events().len(), 2, "a duplicate removal changes nothing");
}

#[tokio::test]
async fn console_channel_join_leave_and_a_late_add_after_removal() {
    let ctx = Ctx::new().await;
    let (low, high) = (ctx.dir.group("low").await, ctx.dir.group("high").await);
    ctx.subscribe("GROUP", &low, "PRO").await;
    ctx.subscribe("GROUP", &high, "POWER").await;
    let u = ctx.dir.user("consoler").await;
    ctx.dir.add(&low, &u).await;
    ctx.deliver("console-add-member-to-group.json", &[(SAMPLE_GROUP, low.as_str()), (SAMPLE_USER, u.as_str())]).await;
    let m_high = ctx.dir.add(&high, &u).await;
    let high_ids = [(SAMPLE_GROUP, high.as_str()), (SAMPLE_USER, u.as_str())];
    ctx.deliver("console-add-member-to-group.json", &high_ids).await;
    assert_eq!(ctx.seat(&u).await.unwrap().tier, kiro::domain::Tier::Power);

    // Leaving the higher group lowers the tier, it does not cancel.
    ctx.dir.remove(&m_high).await;
    ctx.deliver("console-remove-member-from-group.json", &high_ids).await;
    let seat = ctx.seat(&u).await.unwrap();
    assert_eq!((seat.status, seat.tier), (SeatStatus::Pending, kiro::domain::Tier::Pro));

    // The "added" event arrives late, after the removal: the directory says no, nothing changes.
    let before = ctx.sink.events().len();
    ctx.deliver("console-add-member-to-group.json", &high_ids).await;
    assert_eq!(ctx.seat(&u).await.unwrap().tier, kiro::domain::Tier::Pro);
    assert_eq!(ctx.sink.events().len(), before);
    let kinds: Vec<String> = ctx.sink.events().iter().map(|e| e.detail_type.clone()).collect();
    assert_eq!(kinds, ["Seat Granted", "Seat Tier Changed", "Seat Tier Changed"]);
}

#[tokio::test]
async fn scim_patch_group_resyncs_the_whole_group() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("okta-eng").await;
    let (stay, leave, join) = (ctx.dir.user("stay").await, ctx.dir.user("leave").await, ctx.dir.user("join").await);
    ctx.dir.add(&g, &stay).await;
    let m_leave = ctx.dir.add(&g, &leave).await;
    ctx.subscribe("GROUP", &g, "PRO").await;
    ctx.sink.clear();

    ctx.dir.remove(&m_leave).await;
    ctx.dir.add(&g, &join).await;
    ctx.deliver("scim-patch-group.json", &[(SAMPLE_GROUP, g.as_str())]).await;
    assert_eq!(ctx.seat(&join).await.unwrap().status, SeatStatus::Pending);
    assert_eq!(ctx.seat(&leave).await.unwrap().status, SeatStatus::Canceled);
    assert_eq!(ctx.seat(&stay).await.unwrap().status, SeatStatus::Pending);
    let mut summary = ctx.sink.summary();
    summary.sort();
    let mut expected = vec![("Seat Canceled".to_owned(), leave.clone()), ("Seat Granted".to_owned(), join.clone())];
    expected.sort();
    assert_eq!(summary, expected);
    ctx.deliver("scim-patch-group.json", &[(SAMPLE_GROUP, g.as_str())]).await;
    assert_eq!(ctx.sink.events().len(), 2, "a second resync finds nothing to do");
}

#[tokio::test]
async fn deleted_users_and_groups_take_their_subscriptions_and_seats() {
    for (user_sample, group_sample, user_field) in [
        ("identitystore-delete-user.json", "identitystore-delete-group.json", "userId"),
        ("console-delete-user.json", "console-delete-group.json", "userId"),
        ("scim-delete-user.json", "scim-delete-group.json", "id"),
    ] {
        let ctx = Ctx::new().await;
        let g = ctx.dir.group("doomed").await;
        let (a, b) = (ctx.dir.user("a").await, ctx.dir.user("b").await);
        ctx.dir.add(&g, &a).await;
        ctx.dir.add(&g, &b).await;
        ctx.subscribe("GROUP", &g, "PRO").await;
        let mut raw = fixture("http/subscribe-user.json");
        raw["body"] = json!(json!({"principalType": "USER", "principalId": a, "tier": "POWER"}).to_string());
        assert_eq!(assign_tier::handle(&ctx.api, kiro_tests::http_event_from(raw)).await.unwrap().status_code, 201);

        // The user's id in each sample, whatever field it sits in.
        let sample = fixture(&format!("cloudtrail/{user_sample}"));
        let sample_user =
            sample["detail"]["requestParameters"][user_field].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        ctx.deliver(user_sample, &[(sample_user.as_str(), a.as_str())]).await;
        let seat = ctx.seat(&a).await.unwrap();
        assert_eq!(seat.status, SeatStatus::Canceled, "{user_sample}");
        assert_eq!(ctx.sink.events().last().unwrap().detail["reason"], "USER_DELETED");
        let direct = Principal::User(UserId::parse("u", &a).unwrap());
        assert!(
            ctx.store().get_subscription(&direct).await.unwrap().is_none(),
            "{user_sample}: direct subscription removed"
        );

        let sample = fixture(&format!("cloudtrail/{group_sample}"));
        let field = if group_sample.starts_with("scim") { "id" } else { "groupId" };
        let sample_group =
            sample["detail"]["requestParameters"][field].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        ctx.deliver(group_sample, &[(sample_group.as_str(), g.as_str())]).await;
        assert_eq!(ctx.seat(&b).await.unwrap().status, SeatStatus::Canceled, "{group_sample}");
        assert_eq!(ctx.sink.events().last().unwrap().detail["reason"], "GROUP_DELETED");
        let group = Principal::Group(kiro::domain::GroupId::parse("g", &g).unwrap());
        assert!(ctx.store().get_subscription(&group).await.unwrap().is_none(), "{group_sample}: subscription removed");
    }
}

#[tokio::test]
async fn failed_calls_unknown_events_and_unsubscribed_groups_change_nothing() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("nobody-subscribed").await;
    let u = ctx.dir.user("someone").await;
    let m = ctx.dir.add(&g, &u).await;
    let ids = [(SAMPLE_GROUP, g.as_str()), (SAMPLE_USER, u.as_str()), (SAMPLE_MEMBERSHIP, m.as_str())];
    let out = ctx.deliver("identitystore-create-group-membership-failed.json", &ids).await;
    assert!(out["ignored"].as_str().unwrap().contains("errorCode"), "{out}");
    let out = ctx.deliver("identitystore-create-group-membership.json", &ids).await;
    assert_eq!(out["applied"]["granted"], 0);
    let mut unknown = fixture("cloudtrail/identitystore-create-group-membership.json");
    unknown["detail"]["eventName"] = json!("CreateUser");
    let payload: EventBridgeEvent<Value> = serde_json::from_value(unknown).unwrap();
    let out = handle(&ctx.sync, LambdaEvent::new(payload, Context::default())).await.unwrap();
    assert!(out["ignored"].is_string());
    assert!(ctx.seat(&u).await.is_none());
    assert!(ctx.sink.events().is_empty());
}
