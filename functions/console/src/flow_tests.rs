//! The console end to end in-process: real handler, in-memory ports, an issuer in memory that
//! signs real RS256 tokens. The browser suite (tests/browser) drives the same flows in Chromium
//! against the local stack and a real OpenID Connect provider.

use std::collections::HashMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use kiro::config::{ConsoleConfig, pricing};
use kiro::domain::{GroupId, IdentityStoreId, UserId};
use kiro_fakes::{MemoryDirectory, MemoryInstances, MemorySink, MemoryStore};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

use crate::oidc::pkce_challenge;
use crate::oidc::tests::{CLIENT, FakeIssuer, ISSUER, claims};
use crate::{Deps, handle};

type TestDeps<'a, X = kiro::ports::NoExports> =
    Deps<&'a MemoryStore, &'a MemoryDirectory, &'a MemorySink, MemoryInstances, &'a FakeIssuer, X>;

struct World {
    store: MemoryStore,
    directory: MemoryDirectory,
    sink: MemorySink,
    issuer: FakeIssuer,
    ids: HashMap<&'static str, UserId>,
    groups: HashMap<&'static str, GroupId>,
    admins: GroupId,
}

fn identity_store() -> IdentityStoreId {
    IdentityStoreId::parse("identityStoreId", "d-1234567890").unwrap()
}

impl World {
    fn new() -> Self {
        let directory = MemoryDirectory::default();
        let mut ids = HashMap::new();
        for name in ["alice", "bob", "carol", "dave", "erin", "mallory"] {
            ids.insert(name, directory.add_user(name, format!("{name} example"), Some(&format!("{name}@example.com"))));
        }
        let admins = directory.add_group("KiroAdmins", None);
        let viewers = directory.add_group("KiroViewers", None);
        directory.add_member(&admins, &ids["alice"]);
        directory.add_member(&viewers, &ids["bob"]);
        let mut groups = HashMap::new();
        let engineering = directory.add_group("engineering", Some("Product engineering"));
        for m in ["alice", "bob", "erin"] {
            directory.add_member(&engineering, &ids[m]);
        }
        groups.insert("engineering", engineering);
        Self {
            store: MemoryStore::default(),
            directory,
            sink: MemorySink::default(),
            issuer: FakeIssuer::new(),
            ids,
            groups,
            admins,
        }
    }

    fn deps(&self) -> TestDeps<'_> {
        let config = ConsoleConfig {
            issuer: ISSUER.into(),
            client_id: CLIENT.into(),
            base_url: Some("https://console.test".into()),
            user_claim: "preferred_username".into(),
            admin_group: "KiroAdmins".into(),
            viewer_group: "KiroViewers".into(),
        };
        Deps::new(
            &self.store,
            &self.directory,
            &self.sink,
            MemoryInstances::one(&identity_store()),
            &self.issuer,
            config,
            pricing(|_| None).unwrap(),
            "us-east-1".into(),
            vec!["us-east-1".into()],
        )
    }
}

struct Answer {
    status: i64,
    body: String,
    headers: HashMap<String, String>,
    cookies: Vec<String>,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get("location").map(String::as_str).unwrap_or_default()
    }
}

fn event(
    method: &str,
    path_and_query: &str,
    cookies: &[&str],
    body: Option<&str>,
) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let headers =
        json!({"accept": "text/html", "content-type": "application/x-www-form-urlencoded", "host": "console.test"});
    event_with(method, path_and_query, cookies, body, headers)
}

fn event_with(
    method: &str,
    path_and_query: &str,
    cookies: &[&str],
    body: Option<&str>,
    headers: serde_json::Value,
) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut qs = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        qs.insert(k.into_owned(), json!(v));
    }
    let raw = json!({
        "version": "2.0",
        "routeKey": "ANY /console/{proxy+}",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": cookies,
        "headers": headers,
        "queryStringParameters": qs,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "console.test", "requestId": "r", "routeKey": "ANY /console/{proxy+}", "stage": "$default", "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0, "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}},
        "body": body,
        "isBase64Encoded": false
    });
    let payload: ApiGatewayV2httpRequest = serde_json::from_value(raw).unwrap();
    let mut ctx = Context::default();
    ctx.deadline = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + 20_000;
    LambdaEvent::new(payload, ctx)
}

async fn call<X: kiro::ports::Exports>(
    deps: &TestDeps<'_, X>,
    method: &str,
    path: &str,
    cookies: &[&str],
    body: Option<&str>,
) -> Answer {
    let r: ApiGatewayV2httpResponse = handle(deps, event(method, path, cookies, body)).await.unwrap();
    let body = match r.body {
        Some(Body::Text(t)) => t,
        _ => String::new(),
    };
    let headers =
        r.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect();
    Answer { status: r.status_code, body, headers, cookies: r.cookies }
}

fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// `name=value` of a Set-Cookie.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Signs `user` in through the issuer; the session cookie.
async fn sign_in(w: &World, deps: &TestDeps<'_>, user: &str) -> Result<String, Answer> {
    let start = call(deps, "GET", "/console/auth/login", &[], None).await;
    assert_eq!(start.status, 302);
    let (state, nonce) = (query_param(start.location(), "state"), query_param(start.location(), "nonce"));
    let mut c = claims(chrono::Utc::now().timestamp());
    c["nonce"] = json!(nonce);
    c["preferred_username"] = json!(user);
    w.issuer.answer(&format!("{ISSUER}/token"), 200, json!({"id_token": w.issuer.token(c), "token_type": "Bearer"}));
    let back = call(
        deps,
        "GET",
        &format!("/console/auth/callback?code=c1&state={state}"),
        &[&cookie_pair(&start.cookies[0])],
        None,
    )
    .await;
    if back.status != 303 {
        return Err(back);
    }
    Ok(cookie_pair(back.cookies.iter().find(|c| c.starts_with("kiro_session=")).unwrap()))
}

/// The CSRF token a page carries.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_a_page_offers_sign_in_and_every_answer_carries_the_security_headers() {
    let w = World::new();
    let deps = w.deps();
    let page = call(&deps, "GET", "/console/users", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(">Sign in</a>"), "{}", page.body);
    for answer in [
        &page,
        &call(&deps, "GET", "/console/auth/login", &[], None).await,
        &call(&deps, "GET", "/console/nope", &[], None).await,
    ] {
        let csp = &answer.headers["content-security-policy"];
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
    let forged = call(&deps, "POST", "/console/subscriptions", &[], Some("principalType=USER")).await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn sign_in_runs_the_code_flow_with_pkce_state_and_nonce_and_keeps_the_session_server_side() {
    let w = World::new();
    let deps = w.deps();
    let start = call(&deps, "GET", "/console/auth/login", &[], None).await;
    let url = start.location();
    assert!(url.starts_with(&format!("{ISSUER}/auth?")), "{url}");
    assert_eq!(query_param(url, "response_type"), "code");
    assert_eq!(query_param(url, "client_id"), CLIENT);
    assert_eq!(query_param(url, "redirect_uri"), "https://console.test/console/auth/callback");
    assert_eq!(query_param(url, "scope"), "openid email profile");
    assert_eq!(query_param(url, "code_challenge_method"), "S256");
    let state = query_param(url, "state");
    let stored =
        kiro::ports::SessionStore::take_sign_in(&w.store, &state).await.unwrap().expect("the sign-in is remembered");
    assert_eq!(query_param(url, "code_challenge"), pkce_challenge(&stored.verifier));
    assert_eq!(query_param(url, "nonce"), stored.nonce);
    kiro::ports::SessionStore::put_sign_in(&w.store, &stored).await.unwrap();

    let session = sign_in(&w, &deps, "alice").await.unwrap_or_else(|a| panic!("{} {}", a.status, a.body));
    let set = &session;
    assert!(set.starts_with("kiro_session="));
    // The cookie's attributes, from the callback's Set-Cookie.
    let token = set.trim_start_matches("kiro_session=");
    assert!(
        kiro::ports::SessionStore::get_session(&w.store, token).await.unwrap().is_none(),
        "the table keeps a hash, not the token"
    );
    let home = call(&deps, "GET", "/console", &[&session], None).await;
    assert!(home.body.contains("Sign up for Kiro"), "{}", home.body);
    assert!(home.body.contains("alice"));
}

#[tokio::test]
async fn the_session_cookie_is_http_only_secure_and_lax() {
    let w = World::new();
    let deps = w.deps();
    let start = call(&deps, "GET", "/console/auth/login", &[], None).await;
    let (state, nonce) = (query_param(start.location(), "state"), query_param(start.location(), "nonce"));
    let mut c = claims(chrono::Utc::now().timestamp());
    c["nonce"] = json!(nonce);
    c["preferred_username"] = json!("alice");
    w.issuer.answer(&format!("{ISSUER}/token"), 200, json!({"id_token": w.issuer.token(c)}));
    let back = call(
        &deps,
        "GET",
        &format!("/console/auth/callback?code=c&state={state}"),
        &[&cookie_pair(&start.cookies[0])],
        None,
    )
    .await;
    let set = back.cookies.iter().find(|c| c.starts_with("kiro_session=")).unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Max-Age=43200"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
}

#[tokio::test]
async fn a_callback_replayed_or_from_another_browser_opens_no_session() {
    let w = World::new();
    let deps = w.deps();
    let start = call(&deps, "GET", "/console/auth/login", &[], None).await;
    let (state, nonce) = (query_param(start.location(), "state"), query_param(start.location(), "nonce"));
    let mut c = claims(chrono::Utc::now().timestamp());
    c["nonce"] = json!(nonce);
    c["preferred_username"] = json!("alice");
    w.issuer.answer(&format!("{ISSUER}/token"), 200, json!({"id_token": w.issuer.token(c)}));
    let callback = format!("/console/auth/callback?code=c&state={state}");
    let other_browser = call(&deps, "GET", &callback, &[], None).await;
    assert_eq!(other_browser.status, 400);
    let first = call(&deps, "GET", &callback, &[&cookie_pair(&start.cookies[0])], None).await;
    assert_eq!(first.status, 303);
    let replay = call(&deps, "GET", &callback, &[&cookie_pair(&start.cookies[0])], None).await;
    assert_eq!(replay.status, 400, "a sign-in completes once");
    assert_eq!(w.store.session_count(), 1);
}

#[tokio::test]
async fn someone_in_neither_console_group_is_refused_and_gets_no_session() {
    let w = World::new();
    let deps = w.deps();
    let refused = sign_in(&w, &deps, "mallory").await.unwrap_err();
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("not a member of KiroAdmins or KiroViewers"), "{}", refused.body);
    assert!(refused.cookies.iter().all(|c| !c.starts_with("kiro_session=")));
    assert_eq!(w.store.session_count(), 0);
    let unknown = sign_in(&w, &deps, "nobody").await.unwrap_err();
    assert_eq!(unknown.status, 403);
}

/// Signs alice in and creates the profile; her session cookie and a page's CSRF token.
async fn admin_with_profile(w: &World, deps: &TestDeps<'_>) -> (String, String) {
    let alice = sign_in(w, deps, "alice").await.unwrap_or_else(|a| panic!("{}", a.body));
    let dialog = call(deps, "GET", "/console?signup=1", &[&alice], None).await;
    assert!(dialog.body.contains("Create Kiro profile") && dialog.body.contains("d-1234567890"), "{}", dialog.body);
    let csrf = csrf_of(&dialog.body);
    let created = call(
        deps,
        "POST",
        "/console/profile",
        &[&alice],
        Some(&format!("csrf={csrf}&identityStoreId=d-1234567890&name=Platform+team&description=")),
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    (alice, csrf)
}

#[tokio::test]
async fn the_seed_flow_subscribes_a_group_and_users_changes_a_plan_and_deactivates_one() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let profile = kiro::ports::ProfileStore::get_profile(&w.store).await.unwrap().unwrap();
    assert_eq!((profile.name.as_str(), profile.created_by.as_str()), ("Platform team", "console:alice"));

    // Add group → Pro → engineering → Assign.
    let add = call(&deps, "GET", "/console/groups?add=GROUP", &[&alice], None).await;
    for name in ["Pro</strong>", "Pro+</strong>", "Power</strong>", "1,000 credits a month, $20 a month", "Continue"] {
        assert!(add.body.contains(name), "{name}");
    }
    let search = call(&deps, "GET", "/console/directory/groups?q=eng", &[&alice], None).await;
    assert!(search.body.contains("engineering"), "{}", search.body);
    let g = w.groups["engineering"].as_str();
    let assigned = call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=GROUP&tier=PRO&principalId={g}")),
    )
    .await;
    assert_eq!((assigned.status, assigned.location()), (303, "/console/groups?done=assigned:1"));
    let groups = call(&deps, "GET", "/console/groups?done=assigned:1", &[&alice], None).await;
    assert!(groups.body.contains("engineering") && groups.body.contains("Subscribed 1 principal."), "{}", groups.body);

    // Add user → Power → two users in one Assign.
    let (carol, dave) = (w.ids["carol"].as_str(), w.ids["dave"].as_str());
    let two = call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=USER&tier=POWER&principalId={carol}&principalId={dave}")),
    )
    .await;
    assert_eq!(two.location(), "/console/users?done=assigned:2");
    let users = call(&deps, "GET", "/console/users", &[&alice], None).await;
    for name in ["alice", "bob", "erin", "carol", "dave"] {
        assert!(users.body.contains(&format!("<th scope=\"row\">{name}</th>")), "{name} has a row");
    }
    assert!(users.body.contains("engineering (Pro)"), "why a member holds a seat is shown");

    // Change plan: an upgrade of the group takes effect now; a downgrade of carol waits.
    let dialog = call(&deps, "GET", &format!("/console/groups?plan=GROUP:{g}"), &[&alice], None).await;
    assert!(dialog.body.contains("Change plan") && dialog.body.contains("takes effect now"), "{}", dialog.body);
    let up = call(
        &deps,
        "POST",
        &format!("/console/subscriptions/GROUP/{g}/plan"),
        &[&alice],
        Some(&format!("csrf={csrf}&tier=PRO_PLUS")),
    )
    .await;
    assert_eq!(up.location(), "/console/groups?done=upgraded");
    let down = call(
        &deps,
        "POST",
        &format!("/console/subscriptions/USER/{carol}/plan"),
        &[&alice],
        Some(&format!("csrf={csrf}&tier=PRO")),
    )
    .await;
    assert_eq!(down.location(), "/console/users?done=downgrade");
    let users = call(&deps, "GET", "/console/users", &[&alice], None).await;
    assert!(
        users.body.contains("→ Pro on 1 Jan") || users.body.contains("→ Pro on "),
        "the pending downgrade is shown"
    );

    // Deactivate plan → Unsubscribe: dave's seat is canceled.
    let off = call(
        &deps,
        "POST",
        &format!("/console/subscriptions/USER/{dave}/deactivate"),
        &[&alice],
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(off.location(), "/console/users?done=unsubscribed");
    let canceled = call(&deps, "GET", "/console/users?status=CANCELED", &[&alice], None).await;
    assert!(
        canceled.body.contains("<th scope=\"row\">dave</th>") && canceled.body.contains("Canceled"),
        "{}",
        canceled.body
    );

    // Settings, audits, the dashboard and the export.
    let saved = call(
        &deps,
        "POST",
        "/console/settings",
        &[&alice],
        Some(&format!("csrf={csrf}&name=Platform&description=Kiro+for+all")),
    )
    .await;
    assert_eq!(saved.location(), "/console/settings?done=saved");
    let settings = call(&deps, "GET", "/console/settings", &[&alice], None).await;
    assert!(settings.body.contains("value=\"Platform\""), "the page shows the new name at once");
    let audit = call(&deps, "POST", "/console/audits", &[&alice], Some(&format!("csrf={csrf}&mode=report"))).await;
    assert_eq!(audit.location(), "/console/audits?done=audit");
    assert!(w.sink.events().iter().any(|e| e.detail_type == "Audit Requested"));
    let dash = call(&deps, "GET", "/console", &[&alice], None).await;
    assert!(dash.body.contains("Seats to reclaim") && dash.body.contains("engineering"), "{}", dash.body);
    let csv = call(&deps, "GET", "/console/users.csv", &[&alice], None).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.body.lines().count(), 1 + 5, "a header and the five seats: {}", csv.body);
    let actor = kiro::ports::SubscriptionStore::get_subscription(
        &w.store,
        &kiro::domain::Principal::Group(w.groups["engineering"].clone()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(actor.updated_by, "console:alice");
}

#[tokio::test]
async fn a_change_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let w = World::new();
    let deps = w.deps();
    let (alice, _) = admin_with_profile(&w, &deps).await;
    let carol = w.ids["carol"].as_str();
    for body in [
        format!("principalType=USER&tier=PRO&principalId={carol}"),
        format!("csrf=forged&principalType=USER&tier=PRO&principalId={carol}"),
    ] {
        let forged = call(&deps, "POST", "/console/subscriptions", &[&alice], Some(&body)).await;
        assert_eq!(forged.status, 403, "{body}");
    }
    let seats = kiro::ports::SeatStore::get_seats(&w.store, &[w.ids["carol"].clone()]).await.unwrap();
    assert!(seats.is_empty(), "nothing changed");
}

#[tokio::test]
async fn a_viewer_sees_no_change_controls_and_is_refused_a_change() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let g = w.groups["engineering"].as_str();
    call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=GROUP&tier=PRO&principalId={g}")),
    )
    .await;
    let bob = sign_in(&w, &deps, "bob").await.unwrap_or_else(|a| panic!("{}", a.body));
    for page in [
        "/console/users",
        "/console/groups",
        "/console/audits",
        "/console/settings",
        "/console/groups?add=GROUP",
        &format!("/console/groups?plan=GROUP:{g}"),
    ] {
        let body = call(&deps, "GET", page, &[&bob], None).await.body;
        for control in ["Add user", "Add group", "Change plan", "Deactivate plan", "Run audit", ">Save<", "<dialog"] {
            assert!(!body.contains(control), "{page} shows {control} to a viewer");
        }
    }
    let bobs_csrf = csrf_of(&call(&deps, "GET", "/console", &[&bob], None).await.body);
    let carol = w.ids["carol"].as_str();
    let refused = call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&bob],
        Some(&format!("csrf={bobs_csrf}&principalType=USER&tier=PRO&principalId={carol}")),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(kiro::ports::SeatStore::get_seats(&w.store, &[w.ids["carol"].clone()]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_removed_admin_loses_access_at_the_next_change() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    w.directory.remove_user_from_group(&w.admins, &w.ids["alice"]);
    let carol = w.ids["carol"].as_str();
    let refused = call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=USER&tier=PRO&principalId={carol}")),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("no longer a member"), "{}", refused.body);
    let after = call(&deps, "GET", "/console", &[&alice], None).await;
    assert!(after.body.contains(">Sign in</a>"), "the session has ended");
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let out = call(&deps, "POST", "/console/auth/logout", &[&alice], Some(&format!("csrf={csrf}"))).await;
    assert_eq!(out.status, 303);
    assert!(out.cookies.iter().any(|c| c.starts_with("kiro_session=;") && c.contains("Max-Age=0")));
    let reused = call(&deps, "GET", "/console/users", &[&alice], None).await;
    assert!(reused.body.contains(">Sign in</a>"), "the old cookie no longer works");
    assert_eq!(w.store.session_count(), 0);
}

#[tokio::test]
async fn a_principal_deleted_after_the_search_is_reported_in_plain_words() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let erin = w.ids["erin"].clone();
    w.directory.delete_user(&erin);
    let failed = call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=USER&tier=PRO&principalId={}", erin.as_str())),
    )
    .await;
    assert_eq!(failed.status, 404);
    assert!(
        failed.body.contains("role=\"alert\"") && failed.body.contains("not in IAM Identity Center any more"),
        "{}",
        failed.body
    );
    assert!(!failed.body.contains("identity store"), "no internal wording");
}

#[tokio::test]
async fn assets_are_served_by_the_function_with_long_cache_lifetimes() {
    let w = World::new();
    let deps = w.deps();
    for url in [crate::assets::js_url(), crate::assets::css_url()] {
        let a = call(&deps, "GET", url, &[], None).await;
        assert_eq!(a.status, 200, "{url}");
        assert!(a.headers["cache-control"].contains("immutable"));
    }
    assert_eq!(call(&deps, "GET", "/console/assets/app-000000000000.js", &[], None).await.status, 404);
}

#[tokio::test]
async fn a_script_changes_things_with_json_and_the_csrf_header_and_reads_errors_as_json() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let carol = w.ids["carol"].as_str();
    let body = format!(r#"{{"principalType": "USER", "tier": "PRO", "principalId": ["{carol}"]}}"#);
    let send = |headers: serde_json::Value| {
        let e = event_with("POST", "/console/subscriptions", &[&alice], Some(&body), headers);
        async { handle(&deps, e).await.unwrap() }
    };
    let refused = send(json!({"content-type": "application/json"})).await;
    assert_eq!(refused.status_code, 403);
    let Some(Body::Text(text)) = refused.body else { panic!("a body") };
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "Forbidden", "the contract's error shape for a script");
    let done = send(json!({"content-type": "application/json", "x-csrf-token": csrf})).await;
    assert_eq!(done.status_code, 303);
    assert_eq!(kiro::ports::SeatStore::get_seats(&w.store, &[w.ids["carol"].clone()]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_add_dialogs_tier_does_not_filter_the_table_behind_it() {
    let w = World::new();
    let deps = w.deps();
    let (alice, csrf) = admin_with_profile(&w, &deps).await;
    let g = w.groups["engineering"].as_str();
    call(
        &deps,
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=GROUP&tier=PRO&principalId={g}")),
    )
    .await;
    let step_two = call(&deps, "GET", "/console/users?add=USER&addTier=POWER", &[&alice], None).await;
    assert!(step_two.body.contains("Tier: <strong>Power</strong>"), "{}", step_two.body);
    assert!(step_two.body.contains("<th scope=\"row\">alice</th>"), "the Pro seats still show behind the dialog");
    assert!(step_two.body.contains("role=\"combobox\""));
}

/// An export place in memory: what was published, and its link.
#[derive(Default)]
struct Published(std::sync::Mutex<Vec<(String, Vec<u8>)>>);

impl kiro::ports::Exports for &Published {
    async fn publish_export(&self, name: &str, body: Vec<u8>) -> Result<Option<String>, kiro::ports::ObjectError> {
        self.0.lock().unwrap().push((name.to_owned(), body));
        Ok(Some(format!("https://exports.test/{name}?X-Amz-Expires=300")))
    }
}

#[tokio::test]
async fn an_export_too_large_for_a_response_goes_to_the_export_place_and_the_browser_to_its_link() {
    let w = World::new();
    let (alice, csrf) = admin_with_profile(&w, &w.deps()).await;
    let g = w.groups["engineering"].as_str();
    call(
        &w.deps(),
        "POST",
        "/console/subscriptions",
        &[&alice],
        Some(&format!("csrf={csrf}&principalType=GROUP&tier=PRO&principalId={g}")),
    )
    .await;

    // Without a place for exports, an export over the limit is refused in plain words.
    let mut small = w.deps();
    small.inline_export_bytes = 100;
    let refused = call(&small, "GET", "/console/users.csv", &[&alice], None).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("no export bucket is configured"), "{}", refused.body);

    // With one, the whole CSV is published and the browser sent to its five-minute link.
    let published = Published::default();
    let mut deps = w.deps().with_exports(&published);
    deps.inline_export_bytes = 100;
    let sent = call(&deps, "GET", "/console/users.csv", &[&alice], None).await;
    assert_eq!(sent.status, 303);
    assert!(sent.location().starts_with("https://exports.test/exports/"), "{}", sent.location());
    let csv = String::from_utf8(published.0.lock().unwrap()[0].1.clone()).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "the header and engineering's three seats: {csv}");
    // Under the limit, the CSV is the response itself.
    let inline = call(&w.deps(), "GET", "/console/users.csv", &[&alice], None).await;
    assert_eq!(inline.status, 200);
}
