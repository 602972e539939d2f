//! The binaries, started as Lambda starts them: a bootstrap process that reads its
//! configuration from the environment and polls the Runtime API.

use std::process::Stdio;
use std::time::Duration;

use kiro_tests::bus::BusTap;
use kiro_tests::runtime_api::{Outcome, RuntimeApi};
use kiro_tests::stream::StreamReader;
use kiro_tests::{Moto, World, fixture, repo_root};
use serde_json::json;
use tokio::process::Command;

const BINARIES: [&str; 5] = ["create-profile", "assign-tier", "sync-group", "console", "publish-events"];

/// Builds the binaries once (cargo builds library targets for the tests, not other packages' bins).
fn binary(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.current_dir(repo_root()).args(["build", "--quiet"]);
        for b in BINARIES {
            cmd.args(["--bin", b]);
        }
        assert!(cmd.status().expect("cargo runs").success(), "building the binaries");
    });
    let target = std::env::var("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join(name)
}

fn lambda_command(name: &str, runtime_api: &str) -> Command {
    let mut cmd = Command::new(binary(name));
    kiro_tests::runtime_api::as_lambda(&mut cmd, name, runtime_api).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

#[tokio::test]
async fn each_binary_fails_fast_and_clearly_without_table_name() {
    for name in BINARIES {
        let api = RuntimeApi::start().await;
        let mut cmd = lambda_command(name, &api.address);
        let started = std::time::Instant::now();
        let child = cmd.spawn().expect("spawn");
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} did not exit without TABLE_NAME"))
            .expect("output");
        assert!(!out.status.success(), "{name} must exit non-zero");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("TABLE_NAME is not set"), "{name} said: {text}");
        assert!(started.elapsed() < Duration::from_secs(5), "{name} took {:?}", started.elapsed());
        assert!(api.first_next().is_none(), "{name} must not poll for work it cannot do");
    }
}

#[tokio::test]
async fn the_console_fails_fast_and_clearly_without_its_issuer() {
    let api = RuntimeApi::start().await;
    let child = lambda_command("console", &api.address).env("TABLE_NAME", "t").spawn().expect("spawn");
    let out =
        tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.expect("exits").expect("output");
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("CONSOLE_OIDC_ISSUER is not set"), "console said: {text}");
    assert!(api.first_next().is_none());
}

#[tokio::test]
async fn each_binary_serves_invocations_from_the_runtime_api() {
    let world = World::new().await;
    let endpoint = Moto::get().endpoint.clone();
    let cases = [
        ("create-profile", fixture("http/get-profile.json"), json!(404), "NotFound"),
        ("assign-tier", fixture("http/list-seats.json"), json!(409), "ProfileRequired"),
    ];
    for (name, event, status, code) in cases {
        let api = RuntimeApi::start().await;
        let _child = lambda_command(name, &api.address)
            .env("TABLE_NAME", &world.table)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .spawn()
            .expect("spawn");
        api.invoke("req-1", event);
        let outcome =
            api.outcome("req-1", Duration::from_secs(20)).await.unwrap_or_else(|| panic!("{name} answered nothing"));
        let Outcome::Response(resp) = outcome else { panic!("{name} failed: {outcome:?}") };
        assert_eq!(resp["statusCode"], status, "{name}: {resp}");
        assert_eq!(resp["headers"]["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["requestId"], "req-1");
    }

    // The console answers a browser without a session with its Sign in page, before it has ever
    // called its issuer (which is not there at all here).
    let api = RuntimeApi::start().await;
    let _child = lambda_command("console", &api.address)
        .env("TABLE_NAME", &world.table)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("CONSOLE_OIDC_ISSUER", "http://127.0.0.1:9/issuer")
        .env("CONSOLE_OIDC_CLIENT_ID", "console-client")
        .spawn()
        .expect("spawn");
    api.invoke("req-c", fixture("http/console-home.json"));
    let outcome = api.outcome("req-c", Duration::from_secs(20)).await.expect("console answered");
    let Outcome::Response(page) = outcome else { panic!("console failed: {outcome:?}") };
    assert_eq!(page["statusCode"], 200, "{page}");
    assert_eq!(page["headers"]["content-type"], "text/html; charset=utf-8");
    assert!(page["body"].as_str().unwrap().contains(">Sign in</a>"), "{page}");
    assert!(page["headers"]["content-security-policy"].as_str().unwrap().contains("frame-ancestors 'none'"));

    let api = RuntimeApi::start().await;
    let _child = lambda_command("sync-group", &api.address)
        .env("TABLE_NAME", &world.table)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .spawn()
        .expect("spawn");
    api.invoke("req-2", fixture("cloudtrail/identitystore-create-group-membership-failed.json"));
    let outcome = api.outcome("req-2", Duration::from_secs(20)).await.expect("sync-group answered");
    assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    // Payloads that are not envelopes are acknowledged, not failed (which Lambda would retry).
    let mut bad_time = fixture("cloudtrail/scheduled-audit.json");
    bad_time["time"] = json!("yesterday");
    let mut no_detail_type = fixture("cloudtrail/scheduled-audit.json");
    no_detail_type.as_object_mut().unwrap().remove("detail-type");
    for (n, payload) in [json!({}), json!([]), bad_time, no_detail_type].into_iter().enumerate() {
        let id = format!("req-bad-{n}");
        api.invoke(&id, payload.clone());
        let outcome = api.outcome(&id, Duration::from_secs(20)).await.expect("sync-group answered");
        let Outcome::Response(answer) = outcome else { panic!("{payload} failed: {outcome:?}") };
        assert_eq!(answer["signal"], "ignored", "{payload}: {answer}");
    }
    // With a profile, the schedule's audit: the runtime's deadline (30 s away) leaves the small
    // audit whole, answered as its report in one invocation.
    let dir = kiro_tests::Directory::new(&world.sdk);
    kiro_tests::create_test_profile(&world, &dir.store_id).await;
    api.invoke("req-3", fixture("cloudtrail/scheduled-audit.json"));
    let outcome = api.outcome("req-3", Duration::from_secs(20)).await.expect("sync-group answered");
    let Outcome::Response(report) = outcome else { panic!("the audit failed: {outcome:?}") };
    assert_eq!(
        (&report["mode"], &report["invocations"], &report["halted"]),
        (&json!("repair"), &json!(1), &json!(false))
    );
    assert!(api.init_errors().is_empty());
}

/// The deployed path of a seat event, binaries only: assign-tier commits the change and its
/// outbox and publishes nothing; the table's stream (moto's, read as the template's event source
/// reads it) hands the outbox to publish-events, which puts the event on the bus; the same batch
/// delivered again puts nothing. The bus is read back through a queue.
#[tokio::test]
async fn a_seat_change_reaches_the_bus_through_the_stream_and_publish_events() {
    let world = World::new().await;
    let endpoint = Moto::get().endpoint.clone();
    let dir = kiro_tests::Directory::new(&world.sdk);
    kiro_tests::create_test_profile(&world, &dir.store_id).await;
    let carol = dir.user("carol").await;
    let tap = BusTap::new(&world.sdk).await;
    let start = |name: &str, api: &RuntimeApi| {
        lambda_command(name, &api.address)
            .env("TABLE_NAME", &world.table)
            .env("EVENT_BUS_NAME", &tap.bus)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .spawn()
            .expect("spawn")
    };

    // assign-tier: POST /subscriptions for carol
    let api = RuntimeApi::start().await;
    let _assign = start("assign-tier", &api);
    let mut request = fixture("http/subscribe-user.json");
    request["body"] = json!(json!({"principalType": "USER", "principalId": carol, "tier": "POWER"}).to_string());
    api.invoke("req-sub", request);
    let Some(Outcome::Response(answer)) = api.outcome("req-sub", Duration::from_secs(20)).await else {
        panic!("assign-tier did not answer");
    };
    assert_eq!(answer["statusCode"], 201, "{answer}");
    assert!(tap.received(0, Duration::from_millis(300)).await.is_empty(), "assign-tier put no seat event itself");

    // publish-events, fed the stream's batch
    let mut reader = StreamReader::new(&world.sdk, &world.table).await;
    let batch = reader.next_batch().await.expect("the stream has the outbox's record");
    assert_eq!(batch.len(), 1, "one new outbox, the other records filtered out: {}", batch.event);
    let publisher = RuntimeApi::start().await;
    let _publish = start("publish-events", &publisher);
    for attempt in ["req-pub-1", "req-pub-2"] {
        publisher.invoke(attempt, batch.event.clone());
        let outcome = publisher.outcome(attempt, Duration::from_secs(20)).await.expect("publish-events answered");
        let Outcome::Response(answer) = outcome else { panic!("publish-events failed: {outcome:?}") };
        assert_eq!(answer, json!({"batchItemFailures": []}), "{attempt}");
    }
    let events = tap.received(1, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 1, "one event, though the batch came twice: {events:?}");
    let e = &events[0];
    assert_eq!((e["source"].as_str(), e["detail-type"].as_str()), (Some("kiro.subscriptions"), Some("Seat Granted")));
    assert_eq!((e["detail"]["userId"].as_str(), &e["detail"]["version"]), (Some(carol.as_str()), &json!(1)));
    assert!(publisher.init_errors().is_empty());
}
