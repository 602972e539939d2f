//! The console's pages in-process over the fakes with 1,000 seats: server time (the handler's
//! own, no network) and weight in bytes of each page.

use std::time::Instant;

use chrono::Utc;
use kiro::config::{ConsoleConfig, pricing};
use kiro::domain::session::{Role, SESSION_LIFETIME, Session};
use kiro::domain::{IdentityStoreId, UserId};
use kiro::ports::SessionStore;
use kiro_fakes::MemoryInstances;
use kiro_tests::fixture;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

use crate::fakes::{Fakes, IDENTITY_STORE};
use crate::report::{Row, Section};
use crate::{ms, percentile};

/// Renders of each page, after one unmeasured.
const RUNS: usize = 20;
const TOKEN: &str = "bench-console-session-token";

/// The console never calls its issuer here: every request carries a live session.
struct NoIssuer;

impl console::fetch::Fetch for NoIssuer {
    async fn get(&self, _url: &str) -> Result<console::fetch::Answer, console::fetch::FetchError> {
        Err(console::fetch::FetchError::Timeout)
    }

    async fn post_form(
        &self,
        url: &str,
        _form: &[(&str, &str)],
    ) -> Result<console::fetch::Answer, console::fetch::FetchError> {
        self.get(url).await
    }
}

fn event(path_and_query: &str) -> LambdaEvent<aws_lambda_events::apigw::ApiGatewayV2httpRequest> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut e = fixture("http/console-home.json");
    e["routeKey"] = json!("ANY /console/{proxy+}");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, serde_json::Value> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), json!(v))).collect();
    e["queryStringParameters"] = json!(params);
    e["cookies"] = json!([format!("kiro_session={TOKEN}")]);
    let mut ctx = Context::default();
    ctx.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap_or_default() + 25_000;
    LambdaEvent::new(serde_json::from_value(e).expect("an HTTP API event"), ctx)
}

pub async fn pages(seats: usize) -> Section {
    let f = Fakes::with_profile().await;
    let shard = f.directory.new_shard();
    let (group, _) = f.group_of(&shard, "engineering", seats);
    f.subscribe("GROUP", group.as_str(), "PRO").await;
    let now = Utc::now();
    let user = UserId::parse("userId", "90676d3f2c-11111111-2222-3333-4444-555555555555").expect("an id");
    let session = Session {
        token_hash: console::oidc::sha256_hex(TOKEN),
        user_name: "admin".into(),
        user_id: user,
        role: Role::Admin,
        csrf: "csrf".into(),
        created_at: now,
        expires_at: now + SESSION_LIFETIME,
        role_checked_at: now,
    };
    f.store.put_session(&session).await.expect("a session");
    let config = ConsoleConfig {
        issuer: "https://issuer.invalid".into(),
        client_id: "bench".into(),
        base_url: Some("https://console.invalid".into()),
        user_claim: "email".into(),
        admin_group: "KiroAdmins".into(),
        viewer_group: "KiroViewers".into(),
    };
    let store_id = IdentityStoreId::parse("identityStoreId", IDENTITY_STORE).expect("a store id");
    let deps = console::Deps::new(
        f.store.clone(),
        f.directory.clone(),
        f.sink.clone(),
        MemoryInstances::one(&store_id),
        NoIssuer,
        config,
        pricing(|_| None).expect("default pricing"),
        "us-east-1".into(),
        vec!["us-east-1".into()],
    );
    let mut s = Section::new(format!("Console pages, {seats} seats (console, in-memory fakes)")).note(format!(
        "The handler's own time in this process (no network; a session in the table, role fresh), median of \
         {RUNS} renders after one unmeasured; weight = the body's bytes, uncompressed (API Gateway does not \
         compress). The Dashboard reads every seat and the month's activity (16 shards, 8 at once, 1,000 a Query) for its figures; Users reads one page of 50 \
         and names their sources; Export CSV reads all {seats}."
    ));
    let pages = [
        ("Dashboard", "/console"),
        ("Users & Groups: Users (first page)", "/console/users"),
        ("Users, filtered by tier", "/console/users?tier=PRO"),
        ("Users & Groups: Groups", "/console/groups"),
        ("Add group dialog", "/console/groups?add=GROUP"),
        ("Change plan dialog", &format!("/console/groups?plan=GROUP:{}", group.as_str())),
        ("Audits", "/console/audits"),
        ("Settings", "/console/settings"),
        ("Export CSV (all seats)", "/console/users.csv"),
    ];
    for (what, path) in pages {
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        let mut status = 0;
        for run in 0..=RUNS {
            let started = Instant::now();
            let r = console::handle(&deps, event(path)).await.expect("an answer");
            let elapsed = started.elapsed();
            status = r.status_code;
            bytes = match &r.body {
                Some(aws_lambda_events::encodings::Body::Text(t)) => t.len(),
                _ => 0,
            };
            if run > 0 {
                times.push(elapsed);
            }
        }
        let p50 = percentile(&times, 50.0);
        s.push(Row::new(what, ms(p50)).detail(format!(
            "HTTP {status}; {} bytes; p90 {}",
            bytes,
            ms(percentile(&times, 90.0))
        )));
    }
    s
}
