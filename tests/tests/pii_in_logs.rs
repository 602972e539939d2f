//! No personal data in the logs, proven: the functions' own log output (the production
//! subscriber, at its default level) is captured through flows that carry user names, display
//! names, e-mails and group names — subscribing by name, directory search (a 200-character `q`
//! too), membership events, naming seats, an audit, errors — and none of them appears.
//! One test in its own process: the subscriber is global.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kiro_tests::{Stack, fixture};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> lambda_runtime::tracing::subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn names_emails_and_searches_never_reach_the_logs() {
    let logs = Captured::default();
    lambda_runtime::tracing::init_default_subscriber_with_writer(logs.clone());

    let stack = Stack::new().await;
    // Distinctive personal data: a user name, its display name and e-mail (the helper derives
    // them), a group's display name.
    let user_name = "zelda.quixote";
    let alice = stack.dir.user(user_name).await;
    let group_name = "Project Zanzibar Payroll";
    let group = stack.dir.group(group_name).await;
    let secrets = [
        user_name.to_owned(),
        format!("{user_name} display"),
        format!("{user_name}@example.com"),
        group_name.to_owned(),
    ];

    // Subscribing by name, a group whose member then joins, searching, errors.
    let by_name = json!({"principalType": "USER", "userName": user_name, "tier": "PRO"});
    assert_eq!(stack.api("POST", "/subscriptions", Some(by_name)).await.0, 201);
    let group_by_name = json!({"principalType": "GROUP", "displayName": group_name, "tier": "POWER"});
    assert_eq!(stack.api("POST", "/subscriptions", Some(group_by_name)).await.0, 201);
    let membership = stack.dir.add(&group, &alice).await;
    let mut event = fixture("cloudtrail/identitystore-create-group-membership.json");
    event["detail"]["requestParameters"] =
        json!({"identityStoreId": stack.dir.store_id, "groupId": group, "memberId": {"userId": alice}});
    event["detail"]["responseElements"] = json!({"membershipId": membership});
    let payload: aws_lambda_events::eventbridge::EventBridgeEvent<Value> = serde_json::from_value(event).unwrap();
    sync_group::handle(&stack.sync, LambdaEvent::new(payload, kiro_tests::invocation("m"))).await.unwrap();
    let long_q = "q".repeat(200);
    for path in [
        "/directory/users?q=zelda.quixote".to_owned(),
        "/directory/users?q=zelda.quixote@example.com".to_owned(),
        "/directory/groups?q=Project%20Zanzibar%20Payroll".to_owned(),
        format!("/directory/users?q={long_q}"),
    ] {
        let (status, body) = stack.api("GET", &path, None).await;
        assert!(status == 200 || status == 400, "{path}: {status} {body}");
    }
    let missing = json!({"principalType": "USER", "userName": "nobody.zelda.quixote", "tier": "PRO"});
    assert_eq!(stack.api("POST", "/subscriptions", Some(missing)).await.0, 404);
    let bad = json!({"principalType": "GROUP", "displayName": group_name, "tier": "GOLD"});
    assert_eq!(stack.api("POST", "/subscriptions", Some(bad)).await.0, 400);
    // The audit (it names seats from the directory) and a payload that is not an envelope.
    let mut audit = fixture("cloudtrail/scheduled-audit.json");
    audit["time"] = json!("2026-11-26T10:00:00Z");
    let audit: aws_lambda_events::eventbridge::EventBridgeEvent<Value> = serde_json::from_value(audit).unwrap();
    sync_group::handle(&stack.sync, LambdaEvent::new(audit, kiro_tests::invocation("a"))).await.unwrap();
    let junk = LambdaEvent::new(json!({"userName": user_name}), kiro_tests::invocation("j"));
    sync_group::handle_payload(&stack.sync, junk).await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 10, "the flows logged (so the capture works): {text}");
    for secret in secrets.iter().map(String::as_str).chain([long_q.as_str()]) {
        assert!(!text.contains(secret), "{secret:?} reached the logs:\n{text}");
    }
}
