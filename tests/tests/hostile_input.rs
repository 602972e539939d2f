//! Hostile input against `create-profile` and `assign-tier`, end to end against moto: malformed
//! and oversized bodies, wrong types, unicode edge cases, injected paths and ids, forged list
//! tokens, wrong methods. Every answer must be a contract answer: an error is 400/404/409 with the
//! contract's body, a code from its table, no Rust or SDK debug text, and at most a short excerpt
//! of what the caller sent.

use assign_tier::handle;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use kiro::aws::DynamoStore;
use kiro_tests::{fixture, http_event_from};
use serde_json::{Value, json};

/// The contract's error codes a client error may carry.
const CLIENT_CODES: &[(u16, &str)] = &[
    (400, "BadRequest"),
    (400, "ValidationError"),
    (400, "UnsupportedRegion"),
    (404, "NotFound"),
    (404, "PrincipalNotFound"),
    (409, "ProfileAlreadyExists"),
    (409, "ProfileRequired"),
    (409, "SubscriptionExists"),
];

/// Text that must never reach a client: Rust `Debug` output, SDK internals, panics.
const DEBUG_MARKERS: &[&str] = &[
    "Error {",
    "SdkError",
    "DispatchFailure",
    "ServiceError",
    "ResponseError",
    "ConstructionFailure",
    "TimeoutError",
    "panicked",
    "backtrace",
    "RUST_BACKTRACE",
    ".rs:",
    "Some(",
    "kiro::",
    "serde_json",
];

/// Longest run of caller input an error message may repeat.
const MAX_ECHO: usize = 64;
/// Longest error message at all.
const MAX_MESSAGE: usize = 400;

const USER: &str = "94482488-3041-7026-18f3-be45837cd0e4";
const GROUP: &str = "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e";

#[derive(Clone, Copy, Debug)]
enum Target {
    Profile,
    Tier,
}

#[derive(Clone, Debug)]
enum RawBody {
    None,
    Text(String),
    /// Sent with `isBase64Encoded: true`, exactly as given (so it may be invalid base64).
    Base64(String),
}

#[derive(Clone, Debug)]
enum Expect {
    /// A contract error with this status and code.
    Error(u16, &'static str),
    /// A success with this status (a boundary that must be accepted).
    Ok(u16),
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    target: Target,
    method: String,
    /// The raw path as API Gateway passes it (still percent-encoded).
    path: String,
    /// `queryStringParameters`, already decoded as API Gateway hands them over.
    query: Vec<(String, String)>,
    body: RawBody,
    expect: Expect,
    /// A `ValidationError` message must name this field.
    field: Option<&'static str>,
}

fn case(name: impl Into<String>, target: Target, method: &str, path: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        target,
        method: method.to_owned(),
        path: path.into(),
        query: Vec::new(),
        body: RawBody::None,
        expect: Expect::Error(404, "NotFound"),
        field: None,
    }
}

impl Case {
    fn text(mut self, body: impl Into<String>) -> Self {
        self.body = RawBody::Text(body.into());
        self
    }

    fn json(self, body: Value) -> Self {
        self.text(body.to_string())
    }

    fn base64(mut self, raw: impl Into<String>) -> Self {
        self.body = RawBody::Base64(raw.into());
        self
    }

    fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    fn error(mut self, status: u16, code: &'static str) -> Self {
        self.expect = Expect::Error(status, code);
        self
    }

    fn bad_request(self) -> Self {
        self.error(400, "BadRequest")
    }

    fn invalid(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self.error(400, "ValidationError")
    }

    fn not_found(self) -> Self {
        self.error(404, "NotFound")
    }

    fn ok(mut self, status: u16) -> Self {
        self.expect = Expect::Ok(status);
        self
    }

    /// Everything the caller sent, for the echo check.
    fn inputs(&self) -> Vec<&str> {
        let mut out = vec![self.path.as_str(), self.method.as_str()];
        out.extend(self.query.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
        match &self.body {
            RawBody::None => {}
            RawBody::Text(t) | RawBody::Base64(t) => out.push(t),
        }
        out
    }
}

/// Standard base64 with padding, as API Gateway encodes binary bodies (the tests crate does not
/// depend on a base64 crate for this one use).
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// URL-safe base64 without padding: the alphabet of the stores' `nextToken`.
fn token(raw: &[u8]) -> String {
    b64(raw).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// The shared stack before `POST /profile`, and create-profile on the same table: the profile
/// is created through the API like any hostile request.
struct Ctx {
    stack: kiro_tests::Stack,
    profile: create_profile::Deps<DynamoStore>,
}

impl std::ops::Deref for Ctx {
    type Target = kiro_tests::Stack;

    fn deref(&self) -> &kiro_tests::Stack {
        &self.stack
    }
}

impl Ctx {
    /// A world with a profile bound to a fresh, empty directory.
    async fn new() -> Ctx {
        let stack = kiro_tests::Stack::without_profile().await;
        let profile = create_profile::Deps {
            store: stack.store(),
            region: "us-east-1".into(),
            supported_regions: vec!["us-east-1".into()],
        };
        let ctx = Ctx { stack, profile };
        let body = json!({"name": "Test", "identityStoreId": ctx.dir.store_id});
        let (status, created) = ctx.send(&case("setup", Target::Profile, "POST", "/profile").json(body)).await;
        assert_eq!(status, 201, "{created}");
        ctx
    }

    async fn send(&self, c: &Case) -> (i64, Value) {
        let resp = self.raw(c).await;
        let body = match &resp.body {
            Some(Body::Text(t)) => {
                serde_json::from_str(t).unwrap_or_else(|e| panic!("{}: a body that is not JSON ({e}): {t}", c.name))
            }
            Some(other) => panic!("{}: a body that is not text: {other:?}", c.name),
            None => Value::Null,
        };
        (resp.status_code, body)
    }

    async fn raw(&self, c: &Case) -> ApiGatewayV2httpResponse {
        let (path, query) = (&c.path, &c.query);
        let mut raw = fixture("http/get-profile.json");
        raw["rawPath"] = json!(path);
        let query_string: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        raw["rawQueryString"] = json!(query_string.join("&"));
        raw["routeKey"] = json!("$default");
        raw["requestContext"]["routeKey"] = json!("$default");
        raw["requestContext"]["http"]["method"] = json!(c.method);
        raw["requestContext"]["http"]["path"] = json!(path);
        let mut params = serde_json::Map::new();
        for (k, v) in query {
            // API Gateway joins repeated parameters with commas.
            let joined = match params.get(k).and_then(Value::as_str) {
                Some(before) => format!("{before},{v}"),
                None => v.clone(),
            };
            params.insert(k.clone(), json!(joined));
        }
        if !params.is_empty() {
            raw["queryStringParameters"] = Value::Object(params);
        }
        match &c.body {
            RawBody::None => {}
            RawBody::Text(t) => raw["body"] = json!(t),
            RawBody::Base64(t) => {
                raw["body"] = json!(t);
                raw["isBase64Encoded"] = json!(true);
            }
        }
        let event = http_event_from(raw);
        let request_id = event.context.request_id.clone();
        let resp = match c.target {
            Target::Profile => create_profile::handle(&self.profile, event).await,
            Target::Tier => handle(&self.api, event).await,
        }
        .unwrap_or_else(|e| panic!("{}: the handler failed instead of answering: {e}", c.name));
        if let Some(Body::Text(t)) = &resp.body {
            if resp.status_code >= 400 {
                let v: Value = serde_json::from_str(t).unwrap_or_default();
                assert_eq!(v["error"]["requestId"], json!(request_id), "{}: the error names its request", c.name);
            }
        }
        resp
    }

    /// Sends every case and checks it; all failures are reported together.
    async fn run(&self, cases: &[Case]) {
        let mut failures = Vec::new();
        for c in cases {
            let resp = self.raw(c).await;
            if let Err(why) = check(c, &resp) {
                failures.push(format!("{} [{} {}]: {why}", c.name, c.method, shorten(&c.path)));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }
}

fn shorten(s: &str) -> String {
    let short: String = s.chars().take(80).collect();
    if short.len() < s.len() { format!("{short}…") } else { short }
}

/// The contract checks on one answer.
fn check(c: &Case, resp: &ApiGatewayV2httpResponse) -> Result<(), String> {
    let status = u16::try_from(resp.status_code).map_err(|_| format!("status {}", resp.status_code))?;
    let text = match &resp.body {
        Some(Body::Text(t)) => t.as_str(),
        None => "",
        Some(other) => return Err(format!("non-text body {other:?}")),
    };
    if let Expect::Ok(want) = c.expect {
        return if status == want { Ok(()) } else { Err(format!("expected {want}, got {status}: {}", shorten(text))) };
    }
    let Expect::Error(want_status, want_code) = c.expect else { unreachable!() };
    if !matches!(status, 400 | 404 | 409) {
        return Err(format!("status {status} is not a contract client error: {}", shorten(text)));
    }
    let content_type = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("content-type {content_type:?}"));
    }
    let body: Value = serde_json::from_str(text).map_err(|e| format!("error body is not JSON ({e}): {text}"))?;
    let shape_ok = body.as_object().is_some_and(|o| o.len() == 1)
        && body["error"].as_object().is_some_and(|e| {
            e.len() == 3 && e["code"].is_string() && e["message"].is_string() && e["requestId"].is_string()
        });
    if !shape_ok {
        return Err(format!("not the contract error shape: {}", shorten(text)));
    }
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if !CLIENT_CODES.contains(&(status, code)) {
        return Err(format!("{status} {code} is not in the contract's table"));
    }
    if (status, code) != (want_status, want_code) {
        return Err(format!("expected {want_status} {want_code}, got {status} {code}: {}", shorten(message)));
    }
    if message.trim().is_empty() {
        return Err("empty message".into());
    }
    if let Some(marker) = DEBUG_MARKERS.iter().find(|m| message.contains(*m)) {
        return Err(format!("message carries debug text {marker:?}: {}", shorten(message)));
    }
    if message.chars().count() > MAX_MESSAGE {
        return Err(format!("message of {} characters: {}", message.chars().count(), shorten(message)));
    }
    if let Some(echo) = longest_echo(message, &c.inputs()) {
        return Err(format!("message repeats {echo} characters of the input: {}", shorten(message)));
    }
    if let Some(field) = c.field {
        if !message.contains(field) {
            return Err(format!("ValidationError should name '{field}': {message}"));
        }
    }
    Ok(())
}

/// `Some(n)` when the message repeats more than [`MAX_ECHO`] consecutive characters of an input.
fn longest_echo(message: &str, inputs: &[&str]) -> Option<usize> {
    let chars: Vec<char> = message.chars().collect();
    if chars.len() <= MAX_ECHO {
        return None;
    }
    let windows: Vec<String> = chars.windows(MAX_ECHO + 1).map(|w| w.iter().collect()).collect();
    inputs
        .iter()
        // The 10 MB bodies are runs of one character; their first 200 KB say as much as all of it.
        .map(|i| i.char_indices().nth(200_000).map_or(*i, |(end, _)| &i[..end]))
        .any(|input| windows.iter().any(|w| input.contains(w.as_str())))
        .then_some(MAX_ECHO + 1)
}

fn profile(name: impl Into<String>, method: &str) -> Case {
    case(name, Target::Profile, method, "/profile")
}

fn tier(name: impl Into<String>, method: &str, path: impl Into<String>) -> Case {
    case(name, Target::Tier, method, path)
}

/// Bodies that are not a JSON object, each refused with `BadRequest` wherever a body is read.
fn not_an_object() -> Vec<(&'static str, RawBody)> {
    fn text(s: impl Into<String>) -> RawBody {
        RawBody::Text(s.into())
    }
    vec![
        ("no body", RawBody::None),
        ("empty body", text("")),
        ("blank body", text(" \n\t ")),
        ("truncated object", text("{")),
        ("truncated member", text(r#"{"name":"#)),
        ("unterminated string", text(r#"{"name": "abc"#)),
        ("single quotes", text("{'name': 'x'}")),
        ("missing colon", text(r#"{"name" "x"}"#)),
        ("trailing comma", text(r#"{"name": "x",}"#)),
        ("two objects", text("{} {}")),
        ("trailing garbage", text("{}x")),
        ("comment", text("{/* */}")),
        ("byte order mark", text("\u{feff}{}")),
        ("NUL byte", text("\u{0}")),
        ("NaN", text(r#"{"name": NaN}"#)),
        ("bare word", text("nul")),
        ("array", text("[]")),
        ("array of objects", text(r#"[{"name": "x"}]"#)),
        ("string", text(r#""{}""#)),
        ("number", text("42")),
        ("null", text("null")),
        ("boolean", text("true")),
        ("lone high surrogate", text(r#"{"name": "\ud800"}"#)),
        ("lone low surrogate", text(r#"{"name": "\udc00x"}"#)),
        ("reversed surrogate pair", text(r#"{"name": "\ude00\ud83d"}"#)),
        ("bad escape", text(r#"{"name": "\x41"}"#)),
        ("raw control character in a string", text("{\"name\": \"a\u{1}b\"}")),
        ("10,000 nested arrays", text("[".repeat(10_000))),
        ("10,000 nested objects", text(r#"{"a":"#.repeat(10_000))),
        ("body over 64 KiB", text(format!(r#"{{"name": "x", "description": "{}"}}"#, "x".repeat(64 * 1024)))),
        ("10 MB body", text("x".repeat(10 * 1024 * 1024))),
        ("10 MB JSON object", text(format!(r#"{{"tier": "PRO", "x": "{}"}}"#, "x".repeat(10 * 1024 * 1024)))),
        ("invalid base64", RawBody::Base64("!!! not base64 !!!".into())),
        ("base64 with a newline", RawBody::Base64(format!("{}\n", b64(b"{}")))),
        ("url-safe base64", RawBody::Base64("eyJ-fQ".into())),
        ("base64 of invalid UTF-8", RawBody::Base64(b64(&[0x7b, 0xff, 0xfe, 0x7d]))),
        ("base64 of an array", RawBody::Base64(b64(b"[]"))),
        ("base64 of 10 MB", RawBody::Base64(b64(&vec![b'{'; 10 * 1024 * 1024]))),
        (
            "base64 of 64 KiB + 1 of spaces around {}",
            RawBody::Base64(b64(format!("{{}}{}", " ".repeat(64 * 1024)).as_bytes())),
        ),
    ]
}

/// Every way to send the wrong JSON type.
fn wrong_types() -> Vec<(&'static str, Value)> {
    vec![
        ("a number", json!(1)),
        ("a float", json!(1.5)),
        ("a boolean", json!(true)),
        ("an array", json!(["PRO"])),
        ("an object", json!({"S": "PRO"})),
        ("a NoSQL operator", json!({"$ne": null})),
    ]
}

fn valid_profile() -> Value {
    json!({"name": "P", "description": "d", "identityStoreId": "d-1234567890"})
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn profile_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (what, body) in not_an_object() {
        for method in ["POST", "PATCH"] {
            let mut c = profile(format!("{method} /profile: {what}"), method).bad_request();
            c.body = body.clone();
            cases.push(c);
        }
    }
    // Wrong types, field by field.
    for (what, value) in wrong_types() {
        for field in ["name", "description", "identityStoreId"] {
            cases.push(
                profile(format!("POST {field} as {what}"), "POST")
                    .json(with(valid_profile(), field, value.clone()))
                    .invalid(field),
            );
        }
        for field in ["name", "description"] {
            cases.push(profile(format!("PATCH {field} as {what}"), "PATCH").json(json!({field: value})).invalid(field));
        }
    }
    cases.extend([
        profile("POST name null", "POST").json(with(valid_profile(), "name", Value::Null)).invalid("name"),
        profile("POST identityStoreId null", "POST")
            .json(with(valid_profile(), "identityStoreId", Value::Null))
            .invalid("identityStoreId"),
        profile("PATCH name null", "PATCH").json(json!({"name": null})).invalid("name"),
        profile("POST empty object", "POST").json(json!({})).invalid("name"),
    ]);
    // Unknown fields and fields that cannot change.
    let long_key = "k".repeat(10_000);
    cases.extend([
        profile("POST unknown field", "POST")
            .json(with(valid_profile(), "region", json!("eu-west-1")))
            .invalid("region"),
        profile("POST profileId", "POST").json(with(valid_profile(), "profileId", json!("x"))).invalid("profileId"),
        profile("POST a 10,000-character field name", "POST")
            .json(with(valid_profile(), &long_key, json!(1)))
            .error(400, "ValidationError"),
        profile("PATCH identityStoreId", "PATCH")
            .json(json!({"identityStoreId": "d-1234567890"}))
            .invalid("identityStoreId"),
        profile("PATCH createdAt", "PATCH").json(json!({"createdAt": "2020-01-01T00:00:00Z"})).invalid("createdAt"),
        profile("PATCH a 10,000-character field name", "PATCH")
            .json(json!({long_key.clone(): 1}))
            .error(400, "ValidationError"),
        profile("PATCH __proto__", "PATCH").json(json!({"__proto__": {"name": "x"}})).invalid("__proto__"),
    ]);
    // Duplicate keys: ambiguous (which one did a proxy or a WAF see?), refused whole.
    cases.extend([
        profile("POST duplicate name, invalid last", "POST")
            .text(r#"{"name": "a", "name": 5, "identityStoreId": "d-1234567890"}"#)
            .bad_request(),
        profile("POST duplicate name, valid last", "POST")
            .text(r#"{"name": 5, "name": "a", "identityStoreId": "d-1234567890"}"#)
            .bad_request(),
        profile("PATCH duplicate name", "PATCH").text(r#"{"name": "a", "name": "b"}"#).bad_request(),
        profile("PATCH duplicate key in a nested object", "PATCH")
            .text(r#"{"name": "a", "description": {"x": 1, "x": 2}}"#)
            .bad_request(),
    ]);
    // Lengths count characters; 4-byte emoji at the limits.
    let emoji = "\u{1F600}";
    cases.extend([
        profile("PATCH name of 101 emoji", "PATCH").json(json!({"name": emoji.repeat(101)})).invalid("name"),
        profile("PATCH name of 101 ASCII", "PATCH").json(json!({"name": "x".repeat(101)})).invalid("name"),
        profile("PATCH description of 257 emoji", "PATCH")
            .json(json!({"description": emoji.repeat(257)}))
            .invalid("description"),
        profile("PATCH name blank", "PATCH").json(json!({"name": ""})).invalid("name"),
        profile("PATCH name of unicode spaces", "PATCH")
            .json(json!({"name": "\u{a0}\u{2003}\u{3000}"}))
            .invalid("name"),
        profile("PATCH name of 100 emoji", "PATCH").json(json!({"name": emoji.repeat(100)})).ok(200),
        profile("PATCH description of 256 emoji", "PATCH").json(json!({"description": emoji.repeat(256)})).ok(200),
        profile("PATCH name with NUL", "PATCH").text(r#"{"name": "a\u0000b"}"#).ok(200),
        profile("PATCH name with RTL override", "PATCH").json(json!({"name": "\u{202e}gnp.exe\u{200f}"})).ok(200),
        profile("PATCH name with an escaped surrogate pair", "PATCH").text(r#"{"name": "\ud83d\ude00"}"#).ok(200),
        profile("PATCH name, valid base64 body", "PATCH").base64(b64(br#"{"name": "from base64"}"#)).ok(200),
        profile("POST with everything valid is the second profile", "POST")
            .json(valid_profile())
            .error(409, "ProfileAlreadyExists"),
        profile("POST valid body as base64", "POST")
            .base64(b64(valid_profile().to_string().as_bytes()))
            .error(409, "ProfileAlreadyExists"),
    ]);
    // Identity store ids that look like something else.
    for bad in [
        "d-123456789A",
        "d-1234567890\u{0}",
        " d-1234567890",
        "../d-1234567890",
        "d-1234567890/../x",
        "' OR '1'='1",
        "arn:aws:identitystore::111122223333:identitystore/d-1234567890",
        "arn:aws:identitystore:::user/94482488-3041-7026-18f3-be45837cd0e4",
        "",
    ] {
        cases.push(
            profile(format!("POST identityStoreId {bad:?}"), "POST")
                .json(with(valid_profile(), "identityStoreId", json!(bad)))
                .invalid("identityStoreId"),
        );
    }
    cases.push(
        profile("POST identityStoreId of 10,000 characters", "POST")
            .json(with(valid_profile(), "identityStoreId", json!("d".repeat(10_000))))
            .invalid("identityStoreId"),
    );
    // Routes: wrong methods, extra segments, traversal, trailing slashes.
    // (API Gateway only forwards valid HTTP method tokens; an invalid one never reaches a handler.)
    for method in ["DELETE", "PUT", "HEAD", "OPTIONS", "TRACE", "get", "CONNECT"] {
        cases.push(case(format!("{method:?} /profile"), Target::Profile, method, "/profile").not_found());
    }
    for path in [
        "/profile/x",
        "/profile/..",
        "/profile/../profile",
        "/../profile",
        "/profile%2F",
        "/profile%00",
        "/profile;x",
        "/PROFILE",
        "/",
        "",
        "/subscriptions",
    ] {
        cases.push(case(format!("GET {path:?}"), Target::Profile, "GET", path).not_found());
    }
    cases.push(
        case("GET a 100,000-character path", Target::Profile, "GET", format!("/{}", "a".repeat(100_000))).not_found(),
    );
    cases.extend([
        case("GET /profile/ (trailing slash)", Target::Profile, "GET", "/profile/").ok(200),
        case("GET //profile", Target::Profile, "GET", "//profile").ok(200),
        case("GET /profile with unrelated query", Target::Profile, "GET", "/profile").query("limit", "-1").ok(200),
    ]);
    cases
}

fn subscribe_cases() -> Vec<Case> {
    let post = |name: String| tier(name, "POST", "/subscriptions");
    let user = || json!({"principalType": "USER", "principalId": USER, "tier": "PRO"});
    let mut cases = Vec::new();
    for (what, body) in not_an_object() {
        let mut c = post(format!("POST /subscriptions: {what}")).bad_request();
        c.body = body.clone();
        cases.push(c);
        let mut c =
            tier(format!("PUT subscription: {what}"), "PUT", format!("/subscriptions/USER/{USER}")).bad_request();
        c.body = body;
        cases.push(c);
    }
    for (what, value) in wrong_types() {
        for field in ["principalType", "principalId", "tier"] {
            cases.push(post(format!("POST {field} as {what}")).json(with(user(), field, value.clone())).invalid(field));
        }
        cases.push(
            post(format!("POST userName as {what}"))
                .json(json!({"principalType": "USER", "userName": value, "tier": "PRO"}))
                .invalid("userName"),
        );
        cases.push(
            post(format!("POST displayName as {what}"))
                .json(json!({"principalType": "GROUP", "displayName": value, "tier": "PRO"}))
                .invalid("displayName"),
        );
        cases.push(
            tier(format!("PUT tier as {what}"), "PUT", format!("/subscriptions/GROUP/{GROUP}"))
                .json(json!({"tier": value}))
                .invalid("tier"),
        );
    }
    let long = "x".repeat(10_000);
    cases.extend([
        post("POST tier null".into()).json(with(user(), "tier", Value::Null)).invalid("tier"),
        post("POST principalType null".into())
            .json(with(user(), "principalType", Value::Null))
            .invalid("principalType"),
        post("POST tier lowercase".into()).json(with(user(), "tier", json!("pro"))).invalid("tier"),
        post("POST tier with a space".into()).json(with(user(), "tier", json!("PRO "))).invalid("tier"),
        post("POST tier of 10,000 characters".into()).json(with(user(), "tier", json!(long))).invalid("tier"),
        post("POST principalType lowercase".into())
            .json(with(user(), "principalType", json!("user")))
            .invalid("principalType"),
        post("POST principalType of 10,000 characters".into())
            .json(with(user(), "principalType", json!(long)))
            .invalid("principalType"),
        post("POST unknown field".into()).json(with(user(), "seats", json!(5))).invalid("seats"),
        post("POST updatedBy (the actor is not the caller's to set)".into())
            .json(with(user(), "updatedBy", json!("someone-else")))
            .invalid("updatedBy"),
        post("POST a 10,000-character field name".into())
            .json(with(user(), &long, json!(1)))
            .error(400, "ValidationError"),
        post("POST both id and name".into()).json(with(user(), "userName", json!("alice"))).invalid("principalId"),
        post("POST displayName for a USER".into())
            .json(json!({"principalType": "USER", "displayName": "x", "tier": "PRO"}))
            .invalid("displayName"),
        post("POST userName of 129 characters".into())
            .json(json!({"principalType": "USER", "userName": "u".repeat(129), "tier": "PRO"}))
            .invalid("userName"),
        post("POST userName of 10,000 characters".into())
            .json(json!({"principalType": "USER", "userName": long, "tier": "PRO"}))
            .invalid("userName"),
        post("POST userName blank".into())
            .json(json!({"principalType": "USER", "userName": " \t", "tier": "PRO"}))
            .invalid("userName"),
        post("POST duplicate tier".into())
            .text(format!(r#"{{"principalType": "USER", "principalId": "{USER}", "tier": "GOLD", "tier": "PRO"}}"#))
            .bad_request(),
        post("POST duplicate principalId".into())
            .text(format!(
                r#"{{"principalType": "USER", "principalId": "{USER}", "principalId": "{GROUP}", "tier": "PRO"}}"#
            ))
            .bad_request(),
        tier("PUT duplicate tier", "PUT", format!("/subscriptions/USER/{USER}"))
            .text(r#"{"tier": "PRO", "tier": "POWER"}"#)
            .bad_request(),
        tier("PUT unknown field", "PUT", format!("/subscriptions/USER/{USER}"))
            .json(json!({"tier": "PRO", "principalId": GROUP}))
            .invalid("principalId"),
        tier("PUT empty object", "PUT", format!("/subscriptions/USER/{USER}")).json(json!({})).invalid("tier"),
        tier("PUT tier unknown", "PUT", format!("/subscriptions/USER/{USER}"))
            .json(json!({"tier": "GOLD"}))
            .invalid("tier"),
        tier("PUT valid tier, no such subscription", "PUT", format!("/subscriptions/USER/{USER}"))
            .json(json!({"tier": "POWER"}))
            .not_found(),
        tier("PUT valid tier as base64", "PUT", format!("/subscriptions/USER/{USER}"))
            .base64(b64(br#"{"tier": "POWER"}"#))
            .not_found(),
    ]);
    // Ids that are not ids of the right kind.
    let ids = [
        ("not an id", "alice".to_owned()),
        ("path traversal", "../../etc/passwd".to_owned()),
        ("encoded traversal", "..%2F..%2Fetc%2Fpasswd".to_owned()),
        ("NUL", format!("{USER}\u{0}")),
        ("uppercase prefix", format!("ABCDEF0123-{USER}")),
        ("10,000 characters", long.clone()),
        ("a group ARN for a USER", format!("arn:aws:identitystore:::group/{USER}")),
        ("a membership ARN", format!("arn:aws:identitystore:::membership/{USER}")),
        ("an IAM user ARN", "arn:aws:iam::111122223333:user/alice".to_owned()),
        ("SQL", "' OR '1'='1' --".to_owned()),
        ("NoSQL", r#"{"$gt": ""}"#.to_owned()),
        ("RTL override", format!("\u{202e}{USER}")),
        ("empty", String::new()),
    ];
    for (what, id) in &ids {
        cases.push(
            post(format!("POST principalId: {what}"))
                .json(with(user(), "principalId", json!(id)))
                .invalid("principalId"),
        );
    }
    // Names that name nobody: looked up, not found (never a 500 from the lookup).
    for (what, name) in [
        ("SQL", "' OR '1'='1' --".to_owned()),
        ("NoSQL", r#"{"$ne": null}"#.to_owned()),
        ("NUL", "al\u{0}ice".to_owned()),
        ("RTL override", "\u{202e}ecila".to_owned()),
        ("128 emoji", "\u{1F600}".repeat(128)),
        ("path", "../../etc/passwd".to_owned()),
        ("wildcard", "*".to_owned()),
        ("regex", ".*".to_owned()),
    ] {
        cases.push(
            post(format!("POST userName: {what}"))
                .json(json!({"principalType": "USER", "userName": name, "tier": "PRO"}))
                .error(404, "PrincipalNotFound"),
        );
        cases.push(
            post(format!("POST displayName: {what}"))
                .json(json!({"principalType": "GROUP", "displayName": name, "tier": "PRO"}))
                .error(404, "PrincipalNotFound"),
        );
    }
    cases.push(post("POST a well-formed id nobody has".into()).json(user()).error(404, "PrincipalNotFound"));
    cases
}

fn path_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let long = "x".repeat(10_000);
    let ids = [
        "alice".to_owned(),
        "..".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%2E%2E".to_owned(),
        "%00".to_owned(),
        format!("{USER}%00"),
        format!("{USER}%2F..%2F{GROUP}"),
        "%FF%FE".to_owned(),
        "%".to_owned(),
        "%zz".to_owned(),
        format!("arn:aws:identitystore:::group%2F{USER}"),
        "arn:aws:iam::111122223333:user%2Falice".to_owned(),
        "1'%20OR%20'1'%3D'1".to_owned(),
        "%7B%22%24ne%22%3Anull%7D".to_owned(),
        "%E2%80%AE".to_owned(),
        long.clone(),
        format!("%{}", "41%".repeat(3_000)),
    ];
    for id in &ids {
        for method in ["GET", "PUT", "DELETE"] {
            let mut c = tier(
                format!("{method} subscription USER/{}", shorten(id)),
                method,
                format!("/subscriptions/USER/{id}"),
            );
            if method == "PUT" {
                c = c.json(json!({"tier": "PRO"}));
            }
            cases.push(c.not_found());
        }
        cases.push(tier(format!("GET seat {}", shorten(id)), "GET", format!("/seats/{id}")).not_found());
        cases.push(tier(format!("GET audit {}", shorten(id)), "GET", format!("/audits/{id}")).not_found());
    }
    for (method, path) in [
        ("GET", format!("/subscriptions/GROUP/arn:aws:identitystore:::user%2F{USER}")),
        ("GET", format!("/subscriptions/USER/arn:aws:identitystore:::group%2F{GROUP}")),
        ("GET", format!("/subscriptions/USER/arn:aws:identitystore:::user%2F{USER}")),
        ("GET", format!("/subscriptions/ROBOT/{USER}")),
        ("GET", format!("/subscriptions/user/{USER}")),
        ("GET", format!("/subscriptions/USER%2F{USER}")),
        ("GET", format!("/subscriptions/{long}/{USER}")),
        ("GET", format!("/subscriptions/USER/{USER}/extra")),
        ("GET", format!("/subscriptions/USER/{USER}/..")),
        ("GET", "/subscriptions/USER".to_owned()),
        ("GET", "/subscriptions/USER/".to_owned()),
        ("GET", format!("/seats/arn:aws:identitystore:::group%2F{GROUP}")),
        ("GET", format!("/seats/{USER}")),
        ("GET", format!("/seats/{USER}/x")),
        ("GET", "/seats/..%2Fsubscriptions".to_owned()),
        ("GET", "/audits/00000000-0000-0000-0000-000000000000".to_owned()),
        ("GET", "/directory".to_owned()),
        ("GET", "/directory/principals".to_owned()),
        ("GET", "/directory/users/x".to_owned()),
        ("GET", "/nothing".to_owned()),
        ("GET", "/profile".to_owned()),
        ("GET", "/".to_owned()),
        ("GET", format!("/{long}")),
        // Wrong methods on known paths.
        ("PATCH", "/subscriptions".to_owned()),
        ("PUT", "/subscriptions".to_owned()),
        ("DELETE", "/subscriptions".to_owned()),
        ("POST", format!("/subscriptions/USER/{USER}")),
        ("PATCH", format!("/subscriptions/USER/{USER}")),
        ("POST", "/seats".to_owned()),
        ("DELETE", "/seats".to_owned()),
        ("PUT", format!("/seats/{USER}")),
        ("DELETE", format!("/seats/{USER}")),
        ("POST", "/directory/users".to_owned()),
        ("DELETE", "/directory/groups".to_owned()),
        // POST /audits is a route (an audit request); PUT is not.
        ("PUT", "/audits".to_owned()),
        ("DELETE", "/audits/00000000-0000-0000-0000-000000000000".to_owned()),
        ("get", "/subscriptions".to_owned()),
        ("OPTIONS", "/subscriptions".to_owned()),
        ("HEAD", "/seats".to_owned()),
    ] {
        let mut c = tier(format!("{method:?} {}", shorten(&path)), method, path);
        if method == "POST" || method == "PUT" || method == "PATCH" {
            c = c.json(json!({"tier": "PRO"}));
        }
        cases.push(c.not_found());
    }
    cases.extend([
        tier("GET /subscriptions/ (trailing slash)", "GET", "/subscriptions/").ok(200),
        tier("GET /seats/ (trailing slash)", "GET", "/seats/").ok(200),
        tier("GET //seats", "GET", "//seats").ok(200),
    ]);
    cases
}

fn query_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let long = "x".repeat(10_000);
    for path in ["/subscriptions", "/seats", "/audits", "/directory/users", "/directory/groups"] {
        for bad in [
            "abc",
            "0",
            "-1",
            "101",
            "1.5",
            "1e2",
            "0x10",
            "99999999999999999999999999",
            "",
            " ",
            "5,6",
            "\u{0}",
            "\u{661}",
            long.as_str(),
        ] {
            let mut c =
                tier(format!("{path}?limit={}", shorten(bad)), "GET", path).query("limit", bad).invalid("limit");
            if path.starts_with("/directory") {
                c = c.query("q", "a");
            }
            cases.push(c);
        }
    }
    for (name, values) in [("principalType", vec!["ROBOT", "user", "", "USER,GROUP", "USER\u{0}", long.as_str()])] {
        for bad in values {
            cases.push(
                tier(format!("/subscriptions?{name}={}", shorten(bad)), "GET", "/subscriptions")
                    .query(name, bad)
                    .bad_request(),
            );
        }
    }
    for (name, values) in [
        ("tier", vec!["pro", "GOLD", "", "PRO,POWER", "PRO ", "\u{202e}ORP", long.as_str()]),
        ("status", vec!["active", "GONE", "", "ACTIVE,CANCELED", "ACTIVE\u{0}", long.as_str()]),
    ] {
        for bad in values {
            cases.push(tier(format!("/seats?{name}={}", shorten(bad)), "GET", "/seats").query(name, bad).bad_request());
        }
    }
    for path in ["/directory/users", "/directory/groups"] {
        cases.push(tier(format!("{path} without q: the directory's first page"), "GET", path).ok(200));
        // Longer than any userName (128): no exact lookup the service would refuse, just a search.
        for n in [129, 200, 256] {
            cases.push(tier(format!("{path}?q= {n} characters"), "GET", path).query("q", "q".repeat(n)).ok(200));
        }
        cases.push(tier(format!("{path}?q= (blank)"), "GET", path).query("q", "  ").invalid("q"));
        cases.push(tier(format!("{path}?q= 257 characters"), "GET", path).query("q", "q".repeat(257)).invalid("q"));
        cases.push(tier(format!("{path}?q= 10,000 characters"), "GET", path).query("q", long.clone()).invalid("q"));
        for q in ["' OR '1'='1", r#"{"$ne": null}"#, "*", ".*", "%", "\u{202e}x", "\u{1F600}".repeat(256).as_str()] {
            cases.push(tier(format!("{path}?q={}", shorten(q)), "GET", path).query("q", q).ok(200));
        }
    }
    // Tokens that this store never handed out.
    let forged: Vec<(String, String)> = vec![
        ("not base64".into(), "%%%".into()),
        ("padding only".into(), "====".into()),
        ("standard alphabet".into(), "a+b/".into()),
        ("base64 of invalid UTF-8".into(), token(&[0xff, 0xfe, 0xfd])),
        ("base64 of NUL".into(), token(b"\0")),
        ("base64 of a word".into(), token(b"hello")),
        ("base64 of 300 characters".into(), token("x".repeat(300).as_bytes())),
        ("base64 of 10,000 characters".into(), token(long.as_bytes())),
        ("base64 of a key with '#'".into(), token(b"SUB#USER#x")),
        ("base64 of a table key".into(), token(format!("SEAT#{USER}").as_bytes())),
        ("base64 of a JSON key".into(), token(br#"{"pk": {"S": "PROFILE"}, "sk": {"S": "PROFILE"}}"#)),
        ("base64 of NUL-padded id".into(), token(format!("{USER}\0").as_bytes())),
        ("10,000 characters".into(), "A".repeat(10_000)),
    ];
    for path in ["/subscriptions", "/seats", "/audits"] {
        for (what, t) in &forged {
            cases.push(
                tier(format!("{path}?nextToken= {what}"), "GET", path).query("nextToken", t.clone()).bad_request(),
            );
        }
    }
    // Tokens shaped like each list's own keys name a position in it, even where no item is: a page.
    let subscription_key = token(format!("GROUP#{GROUP}").as_bytes());
    cases.extend([
        tier("/subscriptions?nextToken= a subscription key", "GET", "/subscriptions")
            .query("nextToken", subscription_key.clone())
            .ok(200),
        tier("/seats?nextToken= a subscription key", "GET", "/seats")
            .query("nextToken", subscription_key.clone())
            .bad_request(),
        tier("/audits?nextToken= a subscription key", "GET", "/audits")
            .query("nextToken", subscription_key)
            .bad_request(),
        tier("/seats?nextToken= a seat key", "GET", "/seats").query("nextToken", token(USER.as_bytes())).ok(200),
        tier("/audits?nextToken= an audit key", "GET", "/audits")
            .query("nextToken", token(b"2026-11-26T10:00:00.000Z#00000000-0000-0000-0000-000000000000"))
            .ok(200),
        tier("/audits?nextToken= an audit key with a bad time", "GET", "/audits")
            .query("nextToken", token(b"yesterday#00000000-0000-0000-0000-000000000000"))
            .bad_request(),
    ]);
    for (what, t) in [
        ("a group-key token for USER", token(format!("GROUP#{GROUP}").as_bytes())),
        ("a seat token for GROUP", token(USER.as_bytes())),
    ] {
        let principal_type = if what.ends_with("USER") { "USER" } else { "GROUP" };
        cases.push(
            tier(format!("/subscriptions?principalType={principal_type}&nextToken= {what}"), "GET", "/subscriptions")
                .query("principalType", principal_type)
                .query("nextToken", t)
                .bad_request(),
        );
    }
    cases.extend([
        tier("/seats?nextToken= (empty) is the first page", "GET", "/seats").query("nextToken", "").ok(200),
        tier("/seats with an unrelated parameter", "GET", "/seats").query("foo", "bar").ok(200),
        tier("/seats?limit=100", "GET", "/seats").query("limit", "100").ok(200),
        tier("/seats?limit=1", "GET", "/seats").query("limit", "1").ok(200),
    ]);
    cases
}

#[tokio::test]
async fn profile_routes_answer_hostile_input_with_contract_errors() {
    let ctx = Ctx::new().await;
    let (_, before) = ctx.send(&profile("get", "GET")).await;
    ctx.run(&profile_cases()).await;
    let (status, after) = ctx.send(&profile("get", "GET")).await;
    assert_eq!(status, 200);
    for field in ["profileId", "identityStoreId", "region", "createdAt"] {
        assert_eq!(after[field], before[field], "no hostile request changed {field}");
    }
}

#[tokio::test]
async fn subscription_bodies_answer_hostile_input_with_contract_errors() {
    let ctx = Ctx::new().await;
    ctx.run(&subscribe_cases()).await;
    let (status, list) = ctx.send(&tier("list", "GET", "/subscriptions")).await;
    assert_eq!((status, &list["items"]), (200, &json!([])), "no hostile request created a subscription");
    assert!(ctx.sink.events().is_empty(), "no hostile request emitted an event");
}

#[tokio::test]
async fn injected_paths_ids_and_wrong_methods_are_not_found() {
    let ctx = Ctx::new().await;
    ctx.run(&path_cases()).await;
    assert!(ctx.sink.events().is_empty());
}

#[tokio::test]
async fn invalid_and_forged_query_values_are_refused() {
    let ctx = Ctx::new().await;
    // Two seats, two subscriptions and an audit-free table: real tokens exist to misuse.
    let (a, b) = (ctx.dir.user("tok-a").await, ctx.dir.user("tok-b").await);
    let g = ctx.dir.group("tok-g").await;
    for (kind, id) in [("USER", &a), ("USER", &b), ("GROUP", &g)] {
        let (status, body) = ctx
            .send(
                &tier("subscribe", "POST", "/subscriptions")
                    .json(json!({"principalType": kind, "principalId": id, "tier": "PRO"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut cases = query_cases();
    let token_of = |page: &Value| page["nextToken"].as_str().expect("a next page").to_owned();
    let (_, seats) = ctx.send(&tier("seats", "GET", "/seats").query("limit", "1")).await;
    let (_, subs) = ctx.send(&tier("subs", "GET", "/subscriptions").query("limit", "1")).await;
    let (seat_token, sub_token) = (token_of(&seats), token_of(&subs));
    cases.extend([
        tier("/subscriptions with a /seats token", "GET", "/subscriptions")
            .query("nextToken", seat_token.clone())
            .bad_request(),
        tier("/audits with a /seats token", "GET", "/audits").query("nextToken", seat_token.clone()).bad_request(),
        tier("/seats with a /subscriptions token", "GET", "/seats").query("nextToken", sub_token.clone()).bad_request(),
        tier("/audits with a /subscriptions token", "GET", "/audits")
            .query("nextToken", sub_token.clone())
            .bad_request(),
        tier("/seats with its own token", "GET", "/seats").query("nextToken", seat_token.clone()).ok(200),
        tier("/subscriptions with its own token", "GET", "/subscriptions")
            .query("nextToken", sub_token.clone())
            .ok(200),
        tier("/seats with its own token and a filter", "GET", "/seats")
            .query("nextToken", seat_token)
            .query("tier", "PRO")
            .ok(200),
    ]);
    ctx.run(&cases).await;
    assert_eq!(ctx.sink.events().len(), 2, "only the two setup grants");
}

/// Names at the edges of unicode are stored and answered exactly as sent.
#[tokio::test]
async fn unicode_names_round_trip() {
    let ctx = Ctx::new().await;
    for name in [
        "\u{1F600}".repeat(100),
        "e\u{301}".repeat(50),
        "a\u{0}b".to_owned(),
        "\u{202e}gnp.exe\u{200f}".to_owned(),
        "\u{feff}zero\u{200b}width".to_owned(),
        "\u{10FFFF}\u{E000}".to_owned(),
        "'; DROP TABLE profiles; --".to_owned(),
    ] {
        let (status, patched) = ctx.send(&profile("patch", "PATCH").json(json!({"name": name}))).await;
        assert_eq!(status, 200, "{patched}");
        let (_, got) = ctx.send(&profile("get", "GET")).await;
        assert_eq!(got["name"], json!(name));
        assert_eq!(patched["name"], json!(name));
    }
}

/// A query value with a comma is one value: `aws_lambda_events` splits API Gateway's
/// comma-joined parameters, and the search once ran on the part before the first comma.
#[tokio::test]
async fn a_search_with_a_comma_searches_for_all_of_it() {
    let ctx = Ctx::new().await;
    let both = ctx.dir.user("smith,anna").await;
    ctx.dir.user("smith").await;
    let (status, found) = ctx.send(&tier("search", "GET", "/directory/users").query("q", "smith,anna")).await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["items"].as_array().unwrap().iter().filter_map(|u| u["userId"].as_str()).collect();
    assert_eq!(ids, [both.as_str()]);
    // Repeated parameters arrive comma-joined too: `tier=PRO&tier=POWER` is not silently `PRO`.
    let (status, body) = ctx.send(&tier("seats", "GET", "/seats").query("tier", "PRO").query("tier", "POWER")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("BadRequest")), "{body}");
}
