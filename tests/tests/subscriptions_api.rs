//! `assign-tier` end to end against moto: DynamoDB and Identity Store through the real SDK.

use serde_json::{Value, json};

/// The shared stack, with this file's helpers on top.
struct Ctx(kiro_tests::Stack);

impl std::ops::Deref for Ctx {
    type Target = kiro_tests::Stack;

    fn deref(&self) -> &kiro_tests::Stack {
        &self.0
    }
}

impl Ctx {
    /// A world with a profile bound to a fresh directory.
    async fn new() -> Ctx {
        Ctx(kiro_tests::Stack::new().await)
    }

    async fn without_profile() -> Ctx {
        Ctx(kiro_tests::Stack::without_profile().await)
    }

    async fn seat(&self, user: &str) -> Value {
        let (status, seat) = self.api("GET", &format!("/seats/{user}"), None).await;
        assert_eq!(status, 200, "{seat}");
        seat
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn subscription_calls_before_a_profile_are_refused() {
    let ctx = Ctx::without_profile().await;
    for (method, path) in [("GET", "/subscriptions"), ("POST", "/subscriptions"), ("GET", "/seats")] {
        let (status, body) =
            ctx.api(method, path, Some(json!({"principalType": "USER", "userName": "a", "tier": "PRO"}))).await;
        assert_eq!((status, code(&body)), (409, "ProfileRequired"), "{method} {path}");
    }
}

#[tokio::test]
async fn subscribing_a_user_by_name_grants_one_seat_and_one_event() {
    let ctx = Ctx::new().await;
    let alice = ctx.dir.user("alice").await;

    let (status, sub) = ctx
        .api("POST", "/subscriptions", Some(json!({"principalType": "USER", "userName": "alice", "tier": "PRO"})))
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(
        (sub["principalId"].as_str(), sub["tier"].as_str(), sub["seats"].as_u64()),
        (Some(alice.as_str()), Some("PRO"), Some(1))
    );
    assert_eq!(sub["displayName"], "alice display");
    assert_eq!(sub["updatedBy"], "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/alice");

    let seat = ctx.seat(&alice).await;
    assert_eq!(
        (seat["status"].as_str(), seat["tier"].as_str(), seat["userName"].as_str()),
        (Some("PENDING"), Some("PRO"), Some("alice"))
    );
    assert_eq!(seat["sources"], json!([{"type": "DIRECT", "tier": "PRO"}]));
    assert_eq!(ctx.sink.summary(), vec![("Seat Granted".to_owned(), alice.clone())]);
    assert_eq!(
        ctx.sink.events()[0].detail,
        json!({"userId": alice, "tier": "PRO", "sources": [{"type": "DIRECT", "tier": "PRO"}],
               "version": 1, "updatedAt": seat["updatedAt"]})
    );

    let (status, body) = ctx
        .api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": alice, "tier": "POWER"})))
        .await;
    assert_eq!((status, code(&body)), (409, "SubscriptionExists"));
    assert_eq!(ctx.sink.events().len(), 1, "a refused request emits nothing");
}

#[tokio::test]
async fn unknown_principals_are_not_found() {
    let ctx = Ctx::new().await;
    let cases = [
        json!({"principalType": "USER", "userName": "nobody", "tier": "PRO"}),
        json!({"principalType": "GROUP", "displayName": "nobody", "tier": "PRO"}),
        json!({"principalType": "USER", "principalId": "94482488-3041-7026-18f3-be45837cd0e4", "tier": "PRO"}),
    ];
    for body in cases {
        let (status, out) = ctx.api("POST", "/subscriptions", Some(body.clone())).await;
        assert_eq!((status, code(&out)), (404, "PrincipalNotFound"), "{body}");
    }
    let (_, list) = ctx.api("GET", "/subscriptions", None).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn invalid_subscription_bodies_name_the_field() {
    let ctx = Ctx::new().await;
    let cases = [
        (json!({"userName": "a", "tier": "PRO"}), "principalType"),
        (json!({"principalType": "ROBOT", "userName": "a", "tier": "PRO"}), "principalType"),
        (json!({"principalType": "USER", "userName": "a"}), "tier"),
        (json!({"principalType": "USER", "userName": "a", "tier": "GOLD"}), "tier"),
        (json!({"principalType": "USER", "tier": "PRO"}), "principalId"),
        (json!({"principalType": "USER", "userName": "a", "principalId": "x", "tier": "PRO"}), "principalId"),
        (json!({"principalType": "USER", "displayName": "a", "tier": "PRO"}), "displayName"),
        (json!({"principalType": "USER", "principalId": "not-an-id", "tier": "PRO"}), "principalId"),
        (json!({"principalType": "USER", "userName": 5, "tier": "PRO"}), "userName"),
        (json!({"principalType": "USER", "userName": "a", "tier": "PRO", "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let (status, out) = ctx.api("POST", "/subscriptions", Some(body.clone())).await;
        assert_eq!((status, code(&out)), (400, "ValidationError"), "{body}");
        assert!(out["error"]["message"].as_str().unwrap().contains(field), "{out} should name {field}");
    }
    let (status, out) = ctx.api("POST", "/subscriptions", None).await;
    assert_eq!((status, code(&out)), (400, "BadRequest"));
}

#[tokio::test]
async fn a_group_subscription_seats_every_member_before_it_answers() {
    let ctx = Ctx::new().await;
    let group = ctx.dir.group("engineering").await;
    let mut members = Vec::new();
    for i in 0..120 {
        let u = ctx.dir.user(&format!("eng{i}")).await;
        ctx.dir.add(&group, &u).await;
        members.push(u);
    }
    let (status, sub) = ctx
        .api(
            "POST",
            "/subscriptions",
            Some(json!({"principalType": "GROUP", "displayName": "engineering", "tier": "PRO_PLUS"})),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["seats"], 120);
    assert_eq!(ctx.sink.events().len(), 120);
    let seat = ctx.seat(&members[77]).await;
    assert_eq!(seat["sources"], json!([{"type": "GROUP", "groupId": group, "tier": "PRO_PLUS"}]));
}

#[tokio::test]
async fn the_highest_of_three_sources_wins() {
    let ctx = Ctx::new().await;
    let u = ctx.dir.user("multi").await;
    let (a, b) = (ctx.dir.group("a").await, ctx.dir.group("b").await);
    ctx.dir.add(&a, &u).await;
    ctx.dir.add(&b, &u).await;
    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": u, "tier": "PRO"}))).await;
    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "GROUP", "principalId": a, "tier": "POWER"}))).await;
    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "GROUP", "principalId": b, "tier": "PRO_PLUS"})))
        .await;
    let seat = ctx.seat(&u).await;
    assert_eq!(seat["tier"], "POWER");
    assert_eq!(seat["sources"].as_array().unwrap().len(), 3);
    let kinds: Vec<String> = ctx.sink.events().iter().map(|e| e.detail_type.clone()).collect();
    assert_eq!(kinds, ["Seat Granted", "Seat Tier Changed"], "granted, then raised to POWER; PRO_PLUS changes nothing");

    let (status, _) = ctx.api("DELETE", &format!("/subscriptions/GROUP/{a}"), None).await;
    assert_eq!(status, 204);
    let seat = ctx.seat(&u).await;
    assert_eq!((seat["tier"].as_str(), seat["status"].as_str()), (Some("PRO_PLUS"), Some("PENDING")));
    let last = ctx.sink.events().last().cloned().unwrap();
    assert_eq!(last.detail_type, "Seat Tier Changed");
    assert_eq!((last.detail["fromTier"].as_str(), last.detail["toTier"].as_str()), (Some("POWER"), Some("PRO_PLUS")));
}

#[tokio::test]
async fn unsubscribe_cancels_and_resubscribe_reactivates() {
    let ctx = Ctx::new().await;
    let u = ctx.dir.user("bob").await;
    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": u, "tier": "POWER"}))).await;
    let (status, _) = ctx.api("DELETE", &format!("/subscriptions/USER/{u}"), None).await;
    assert_eq!(status, 204);
    let seat = ctx.seat(&u).await;
    assert_eq!((seat["status"].as_str(), seat["tier"].as_str()), (Some("CANCELED"), Some("POWER")));
    assert!(seat["canceledAt"].is_string());
    assert_eq!(seat["sources"], json!([]));
    let canceled = ctx.sink.events().last().cloned().unwrap();
    assert_eq!(
        canceled.detail,
        json!({"userId": u, "previousTier": "POWER", "reason": "UNSUBSCRIBED", "version": 2, "updatedAt": seat["updatedAt"]})
    );

    // A retried DELETE finds nothing and emits nothing.
    let (status, body) = ctx.api("DELETE", &format!("/subscriptions/USER/{u}"), None).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
    assert_eq!(ctx.sink.events().len(), 2);

    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": u, "tier": "PRO"}))).await;
    let seat = ctx.seat(&u).await;
    assert_eq!((seat["status"].as_str(), seat["tier"].as_str()), (Some("PENDING"), Some("PRO")));
    assert!(seat.get("canceledAt").is_none());
    assert_eq!(ctx.sink.events().last().unwrap().detail_type, "Seat Granted");
}

#[tokio::test]
async fn upgrades_apply_at_once_and_downgrades_wait_for_next_month() {
    let ctx = Ctx::new().await;
    let g = ctx.dir.group("team").await;
    let u = ctx.dir.user("carol").await;
    ctx.dir.add(&g, &u).await;
    ctx.api("POST", "/subscriptions", Some(json!({"principalType": "GROUP", "principalId": g, "tier": "PRO"}))).await;
    let path = format!("/subscriptions/GROUP/{g}");

    let (status, sub) = ctx.api("PUT", &path, Some(json!({"tier": "POWER"}))).await;
    assert_eq!((status, sub["tier"].as_str()), (200, Some("POWER")), "{sub}");
    assert_eq!(ctx.seat(&u).await["tier"], "POWER");
    assert_eq!(ctx.sink.events().len(), 2);

    // The same PUT again (a retried request) changes nothing and emits nothing.
    ctx.api("PUT", &path, Some(json!({"tier": "POWER"}))).await;
    assert_eq!(ctx.sink.events().len(), 2);

    let (_, sub) = ctx.api("PUT", &path, Some(json!({"tier": "PRO_PLUS"}))).await;
    assert_eq!((sub["tier"].as_str(), sub["pendingTier"].as_str()), (Some("POWER"), Some("PRO_PLUS")));
    let expected = kiro::time::format(&kiro::time::start_of_next_month(chrono::Utc::now()));
    assert_eq!(sub["pendingTierEffectiveAt"], expected);
    assert_eq!(ctx.seat(&u).await["tier"], "POWER", "until then the tier is unchanged");
    assert_eq!(ctx.sink.events().len(), 2);

    let (_, sub) = ctx.api("PUT", &path, Some(json!({"tier": "POWER"}))).await;
    assert!(sub.get("pendingTier").is_none() && sub.get("pendingTierEffectiveAt").is_none(), "{sub}");

    let (status, body) = ctx.api("PUT", &path, Some(json!({"tier": "MEGA"}))).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"));
    let (status, body) =
        ctx.api("PUT", "/subscriptions/GROUP/a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e", Some(json!({"tier": "PRO"}))).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
}

#[tokio::test]
async fn lists_paginate_without_duplicates_or_gaps() {
    let ctx = Ctx::new().await;
    let mut users = Vec::new();
    for i in 0..7 {
        let u = ctx.dir.user(&format!("p{i}")).await;
        let tier = if i % 2 == 0 { "PRO" } else { "POWER" };
        ctx.api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": u, "tier": tier}))).await;
        users.push(u);
    }
    for (path, expected) in [
        ("/subscriptions?limit=3", 7),
        ("/seats?limit=2", 7),
        ("/seats?limit=3&tier=PRO", 4),
        ("/subscriptions?principalType=GROUP", 0),
    ] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = match &token {
                Some(t) => format!("{path}&nextToken={t}"),
                None => path.to_owned(),
            };
            let (status, page) = ctx.api("GET", &url, None).await;
            assert_eq!(status, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                seen.push(item.get("userId").or(item.get("principalId")).unwrap().as_str().unwrap().to_owned());
            }
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (expected, expected), "{path}: {seen:?}");
    }
    let (status, body) = ctx.api("GET", "/seats?status=GONE", None).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
    let (status, body) = ctx.api("GET", "/seats?limit=0", None).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"));
    let (status, body) = ctx.api("GET", "/seats?nextToken=%%%", None).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
}

/// A direct subscription and a group grant for the same user land concurrently: both sources stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_sources_are_both_kept() {
    let ctx = std::sync::Arc::new(Ctx::new().await);
    let g = ctx.dir.group("racers").await;
    let u = ctx.dir.user("dave").await;
    ctx.dir.add(&g, &u).await;
    let (c1, c2) = (ctx.clone(), ctx.clone());
    let (u1, g2) = (u.clone(), g.clone());
    let direct = tokio::spawn(async move {
        c1.api("POST", "/subscriptions", Some(json!({"principalType": "USER", "principalId": u1, "tier": "PRO"}))).await
    });
    let group = tokio::spawn(async move {
        c2.api("POST", "/subscriptions", Some(json!({"principalType": "GROUP", "principalId": g2, "tier": "POWER"})))
            .await
    });
    assert_eq!(direct.await.unwrap().0, 201);
    assert_eq!(group.await.unwrap().0, 201);
    let seat = ctx.seat(&u).await;
    assert_eq!(seat["sources"].as_array().unwrap().len(), 2, "{seat}");
    assert_eq!(seat["tier"], "POWER");
    let events = ctx.sink.events();
    assert_eq!(events.first().unwrap().detail_type, "Seat Granted");
    assert!(events.len() <= 2, "one grant, at most one raise: {events:?}");
}

#[tokio::test]
async fn directory_search_finds_exact_and_partial_names() {
    let ctx = Ctx::new().await;
    let erin = ctx.dir.user("erin.smith").await;
    ctx.dir.user("frank").await;
    ctx.dir.group("Data Science").await;
    let (status, found) = ctx.api("GET", "/directory/users?q=erin.smith", None).await;
    assert_eq!(status, 200);
    assert_eq!(found["items"][0]["userId"], erin);
    assert_eq!(found["items"][0]["email"], "erin.smith@example.com");
    let (_, found) = ctx.api("GET", "/directory/users?q=SMITH", None).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (_, found) = ctx.api("GET", "/directory/groups?q=science", None).await;
    assert_eq!(found["items"][0]["displayName"], "Data Science");
    let (status, body) = ctx.api("GET", "/directory/users?q=  ", None).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"));
}

#[tokio::test]
async fn without_q_the_directory_is_listed_page_by_page() {
    let ctx = Ctx::new().await;
    let mut users = std::collections::BTreeSet::new();
    for name in ["dora", "emil", "fay"] {
        users.insert(ctx.dir.user(name).await);
    }
    let groups = std::collections::BTreeSet::from([ctx.dir.group("Ops").await, ctx.dir.group("QA").await]);
    for (path, id, wanted) in [("/directory/users", "userId", &users), ("/directory/groups", "groupId", &groups)] {
        let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page_path = match &token {
                // As API Gateway decodes it into queryStringParameters.
                Some(t) => format!("{path}?limit=2&nextToken={t}"),
                None => format!("{path}?limit=2"),
            };
            let (status, page) = ctx.api("GET", &page_path, None).await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2, "{page}");
            seen.extend(items.iter().map(|i| i[id].as_str().unwrap().to_owned()));
            pages += 1;
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
            assert!(pages < 100, "the listing never ends");
        }
        let distinct: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!(distinct.len(), seen.len(), "{path}: no principal twice: {seen:?}");
        assert!(wanted.is_subset(&distinct), "{path}: every principal listed: {seen:?}");
        assert!(pages >= wanted.len().div_ceil(2), "{path}: pages of at most 2");
        // A token the directory never handed out is the caller's mistake, not a failure.
        let (status, body) = ctx.api("GET", &format!("{path}?nextToken=forged"), None).await;
        assert_eq!((status, code(&body)), (400, "BadRequest"), "{path}: {body}");
    }
}

#[tokio::test]
async fn unknown_seats_and_routes_are_not_found() {
    let ctx = Ctx::new().await;
    for path in ["/seats/94482488-3041-7026-18f3-be45837cd0e4", "/seats/nobody", "/subscriptions/ROBOT/x", "/nothing"] {
        let (status, body) = ctx.api("GET", path, None).await;
        assert_eq!((status, code(&body)), (404, "NotFound"), "{path}");
    }
}

#[tokio::test]
async fn not_found_messages_say_what_the_path_takes() {
    let ctx = Ctx::new().await;
    let message = |body: &Value| body["error"]["message"].as_str().unwrap_or_default().to_owned();
    // A name where the id goes: POST accepts a displayName, the path does not.
    let (status, body) = ctx.api("PUT", "/subscriptions/GROUP/engineering", Some(json!({"tier": "PRO"}))).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
    assert!(message(&body).contains("takes the Identity Store id, not the displayName"), "{body}");
    let (status, body) = ctx.api("DELETE", "/subscriptions/USER/alice", None).await;
    assert_eq!(status, 404);
    assert!(message(&body).contains("not the userName"), "{body}");
    // A lowercase type.
    let (status, body) = ctx.api("GET", "/subscriptions/group/94482488-3041-7026-18f3-be45837cd0e4", None).await;
    assert_eq!(status, 404);
    assert!(message(&body).contains("USER or GROUP"), "{body}");
    // An unknown route names the ones there are.
    let (status, body) = ctx.api("GET", "/users", None).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
    assert!(message(&body).contains("/subscriptions"), "{body}");
    // An unknown name, said once, without a double negative.
    let body = json!({"principalType": "USER", "userName": "nobody-here", "tier": "PRO"});
    let (status, body) = ctx.api("POST", "/subscriptions", Some(body)).await;
    assert_eq!((status, code(&body)), (404, "PrincipalNotFound"));
    assert!(message(&body).contains("has no user with that userName"), "{body}");
}

/// Seats a group grants carry no name (`ListGroupMemberships` has none); the fan-out asks for
/// them on the bus, and sync-group names them: listed with their names, no audit run.
#[tokio::test]
async fn a_group_grant_names_its_seats_through_the_bus_without_an_audit() {
    let ctx = Ctx::new().await;
    let (ann, ben) = (ctx.dir.user("ann").await, ctx.dir.user("ben").await);
    let group = ctx.dir.group("Named").await;
    ctx.dir.add(&group, &ann).await;
    ctx.dir.add(&group, &ben).await;
    ctx.subscribe("GROUP", &group, "PRO").await;
    let names_of = |page: &Value| -> Vec<(String, String)> {
        let mut v: Vec<_> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["userId"].as_str().unwrap().to_owned(), s["userName"].as_str().unwrap().to_owned()))
            .collect();
        v.sort();
        v
    };
    let (_, before) = ctx.api("GET", "/seats", None).await;
    assert!(names_of(&before).iter().all(|(_, name)| name.is_empty()), "granted without names: {before}");

    let requests = ctx.sink.name_requests();
    assert_eq!(requests.len(), 1, "one request for the page of members");
    let event = kiro_tests::eventbridge("Seat Names Requested", "kiro.subscriptions", requests[0].detail.clone());
    let answer = sync_group::handle(&ctx.sync, event).await.unwrap();
    assert_eq!(answer["named"], json!(2), "{answer}");

    let (_, after) = ctx.api("GET", "/seats", None).await;
    let mut wanted = vec![(ann, "ann".to_owned()), (ben, "ben".to_owned())];
    wanted.sort();
    assert_eq!(names_of(&after), wanted);
    // Delivered again, it names nothing and reads no user.
    let again = kiro_tests::eventbridge("Seat Names Requested", "kiro.subscriptions", requests[0].detail.clone());
    assert_eq!(sync_group::handle(&ctx.sync, again).await.unwrap()["named"], json!(0));
}
