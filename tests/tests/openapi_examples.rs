//! `openapi.yaml` kept honest: every operation's `x-examples` run against the real handlers
//! (`create-profile`, `assign-tier`) through the AWS SDK and moto, and each answer must have the
//! documented status and match the documented schema, so the document cannot drift from the code.
//!
//! Each example starts from a fresh world (its own table and identity store), in the state its
//! `given` names; `info.description` in the document says what each state holds.

use std::collections::{BTreeMap, BTreeSet};

use assign_tier::Deps as AssignTier;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use kiro::aws::{DynamoStore, IdentityStoreDirectory};
use kiro_tests::{Directory, RecordingSink, World, fixture, http_event_from, repo_root, status_and_json};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    let path = repo_root().join("openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("openapi.yaml is readable");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
    serde_json::to_value(yaml).expect("openapi.yaml is plain JSON-compatible YAML")
}

/// One runnable example of one operation.
struct Example {
    method: String,
    path: String,
    summary: String,
    spec: Value,
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

fn examples(doc: &Value) -> Vec<Example> {
    let mut out = Vec::new();
    for (method, path, op) in operations(doc) {
        for spec in op["x-examples"].as_array().into_iter().flatten() {
            let summary = spec["summary"].as_str().unwrap_or("(no summary)").to_owned();
            out.push(Example { method: method.clone(), path: path.clone(), summary, spec: spec.clone() });
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Parameters of an operation, path-level ones included: (in, name) → parameter.
fn parameters<'a>(doc: &'a Value, path_item: &'a Value, op: &'a Value) -> BTreeMap<(String, String), &'a Value> {
    let mut out = BTreeMap::new();
    for p in path_item["parameters"].as_array().into_iter().chain(op["parameters"].as_array()).flatten() {
        let p = resolve(doc, p);
        let key = (p["in"].as_str().expect("in").to_owned(), p["name"].as_str().expect("name").to_owned());
        out.insert(key, p);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// A small validator for the OpenAPI 3.0 schema subset the document uses.

fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, sub, value, at, errors);
    }
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let mut fail = |what: String| errors.push(format!("{at}: {what} (value {value})"));
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("{at}: schema type {other} is not handled by this validator"),
        };
        if !ok {
            fail(format!("is not of type {t}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            fail(format!("is not one of {options:?}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m)
            || schema["maxLength"].as_u64().is_some_and(|m| len > m)
        {
            fail("has a length out of range".into());
        }
        match schema["format"].as_str() {
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() || !s.ends_with('Z') => {
                fail("is not an RFC 3339 UTC time".into());
            }
            Some("uuid") if s.len() != 36 || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') => {
                fail("is not a UUID".into());
            }
            _ => {}
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) || schema["maximum"].as_f64().is_some_and(|m| n > m) {
            fail("is out of range".into());
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema["maxItems"].as_u64().is_some_and(|m| n > m) || schema["minItems"].as_u64().is_some_and(|m| n < m) {
            fail("has a number of items out of range".into());
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(doc, item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().expect("a property name");
            if !object.contains_key(name) {
                errors.push(format!("{at}: required property {name} is missing from {value}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (k, v) in object {
            match properties.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == false => {
                    errors.push(format!("{at}: property {k} is not documented"));
                }
                None => {}
            }
        }
    }
}

#[test]
fn the_validator_checks_what_the_document_relies_on() {
    let doc = json!({"components": {"schemas": {
        "T": {"type": "string", "format": "date-time"},
        "O": {"type": "object", "additionalProperties": false, "required": ["a"],
              "properties": {"a": {"type": "integer", "minimum": 0}, "t": {"$ref": "#/components/schemas/T"},
                             "e": {"type": "string", "enum": ["X"], "nullable": true}}},
    }}});
    let schema = json!({"$ref": "#/components/schemas/O"});
    let check = |v: Value| {
        let mut errors = Vec::new();
        validate(&doc, &schema, &v, "$", &mut errors);
        errors
    };
    assert!(check(json!({"a": 1, "t": "2025-06-02T14:02:11Z", "e": null})).is_empty());
    assert_eq!(check(json!({"t": "2025-06-02T14:02:11Z"})).len(), 1, "required");
    assert_eq!(check(json!({"a": -1})).len(), 1, "minimum");
    assert_eq!(check(json!({"a": 1, "t": "2025-06-02 14:02"})).len(), 1, "date-time");
    assert_eq!(check(json!({"a": 1, "z": 0})).len(), 1, "additionalProperties");
    assert_eq!(check(json!({"a": 1, "e": "Y"})).len(), 1, "enum");
    assert_eq!(check(json!({"a": "1"})).len(), 1, "type");
}

// ------------------------------------------------------------------------------------------------
// The document's shape.

#[test]
fn the_document_covers_every_route_of_the_template_with_iam_auth_and_examples() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    let scheme = &doc["components"]["securitySchemes"]["sigv4"];
    assert_eq!(
        (&scheme["type"], &scheme["in"], &scheme["name"], &scheme["x-amazon-apigateway-authtype"]),
        (&json!("apiKey"), &json!("header"), &json!("Authorization"), &json!("awsSigv4"))
    );
    assert_eq!(doc["security"], json!([{"sigv4": []}]));

    // The template's routes (template_contract.rs pins those to the contract).
    let template = kiro_tests::template::load();
    let mut routes = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
        for (_, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            // The $default route (no Path, no Method) has no path to document; the document's
            // description names it.
            if event["Type"] == "HttpApi" && !event["Properties"]["Path"].is_null() {
                let p = &event["Properties"];
                routes.insert((
                    p["Method"].as_str().expect("Method").to_uppercase(),
                    p["Path"].as_str().expect("Path").to_owned(),
                ));
            }
        }
    }
    assert!(doc["info"]["description"].as_str().unwrap_or_default().contains("`$default` route"));
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    assert_eq!(documented, routes, "operations in openapi.yaml (left) against routes in template.yaml (right)");

    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        assert!(op["security"].is_null(), "{name}: no per-operation security override");
        let responses = op["responses"].as_object().expect("responses");
        for status in ["403", "429", "500"] {
            assert!(responses.contains_key(status), "{name}: documents {status}");
        }
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        let examples = op["x-examples"].as_array().unwrap_or_else(|| panic!("{name}: has x-examples"));
        let statuses: BTreeSet<String> = examples.iter().map(|e| e["status"].to_string()).collect();
        // Every success status has an example here, but those only a retry or a big group
        // reaches, which `tests/tests/resumable.rs` drives instead.
        let elsewhere: &[(&str, &str)] = &[("POST /subscriptions", "200"), ("POST /subscriptions", "202")];
        for status in success.iter().filter(|s| !elsewhere.contains(&(name.as_str(), s.as_str()))) {
            assert!(statuses.contains(*status), "{name}: an example answers {status}");
        }
        for s in &statuses {
            assert!(responses.contains_key(s), "{name}: an example answers {s}, which is not documented");
        }
        for e in examples {
            for key in e.as_object().expect("an example is an object").keys() {
                let known = ["summary", "given", "region", "path", "query", "body", "status", "errorCode"];
                assert!(known.contains(&key.as_str()), "{name}: unknown example field {key}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Running the examples.

/// One example's world: the table, the identity store, the handlers and the ids placeholders
/// stand for.
struct Stage {
    world: World,
    sink: RecordingSink,
    ids: BTreeMap<String, String>,
}

impl Stage {
    async fn new(given: &str) -> Stage {
        let world = World::new().await;
        let sink = RecordingSink::default();
        let dir = Directory::new(&world.sdk);
        let mut ids = BTreeMap::from([("identityStoreId".to_owned(), dir.store_id.clone())]);
        for user in ["alice", "bob", "carol"] {
            ids.insert(user.to_owned(), dir.user(user).await);
        }
        for group in ["engineering", "contractors"] {
            ids.insert(group.to_owned(), dir.group(group).await);
        }
        for user in ["alice", "bob"] {
            dir.add(&ids["engineering"], &ids[user]).await;
        }
        let stage = Stage { world, sink, ids };
        match given {
            "nothing" => stage,
            "profile" => stage.with_profile(&dir).await,
            other => panic!("unknown given {other:?}"),
        }
    }

    /// A profile, alice subscribed at PRO_PLUS, engineering at PRO, carol joining engineering
    /// unannounced, and one report audit.
    async fn with_profile(mut self, dir: &Directory) -> Stage {
        let body = json!({"name": "Platform team", "identityStoreId": self.ids["identityStoreId"]});
        let (status, answer) = self.call("POST", "/profile", &Value::Null, Some(&body)).await;
        assert_eq!(status, 201, "{answer}");
        for body in [
            json!({"principalType": "USER", "principalId": self.ids["alice"], "tier": "PRO_PLUS"}),
            json!({"principalType": "GROUP", "principalId": self.ids["engineering"], "tier": "PRO"}),
        ] {
            let (status, answer) = self.call("POST", "/subscriptions", &Value::Null, Some(&body)).await;
            assert_eq!(status, 201, "{answer}");
        }
        dir.add(&self.ids["engineering"], &self.ids["carol"]).await;
        let sync = sync_group::Deps::new(self.store(), self.directory(), self.sink.clone(), 25);
        let mut raw = fixture("cloudtrail/audit-requested-report.json");
        raw["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let event: EventBridgeEvent<Value> = serde_json::from_value(raw).expect("an EventBridge envelope");
        let report = sync_group::handle(&sync, LambdaEvent::new(event, Context::default())).await.expect("the audit");
        let audit_id = report["auditId"].as_str().expect("the report has an id").to_owned();
        self.ids.insert("auditId".into(), audit_id);
        self
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(self.world.dynamo.clone(), &self.world.table)
    }

    fn directory(&self) -> IdentityStoreDirectory {
        IdentityStoreDirectory::new(aws_sdk_identitystore::Client::new(&self.world.sdk))
    }

    /// Replaces `{name}` placeholders in every string of `v`.
    fn substitute(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                let mut out = s.clone();
                while let Some(open) = out.find('{') {
                    let close = open + out[open..].find('}').unwrap_or_else(|| panic!("unclosed placeholder in {s}"));
                    let name = &out[open + 1..close];
                    let id = self.ids.get(name).unwrap_or_else(|| panic!("no id for placeholder {{{name}}} here"));
                    out.replace_range(open..=close, id);
                }
                Value::String(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.substitute(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), self.substitute(x))).collect()),
            other => other.clone(),
        }
    }

    /// Sends one request, as API Gateway would, to the function that owns the route.
    /// Answers the status, the JSON body (or `Null`) and the content type.
    async fn call(&self, method: &str, path: &str, query: &Value, body: Option<&Value>) -> (i64, Value) {
        let (status, body, _) = self.call_full(method, path, query, body, "us-east-1").await;
        (status, body)
    }

    async fn call_full(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
        region: &str,
    ) -> (i64, Value, Option<String>) {
        let params: serde_json::Map<String, Value> = query.as_object().cloned().unwrap_or_default();
        let raw_query: Vec<String> =
            params.iter().map(|(k, v)| format!("{k}={}", v.as_str().expect("query values are strings"))).collect();
        let mut raw = fixture("http/get-profile.json");
        raw["rawPath"] = json!(path);
        raw["rawQueryString"] = json!(raw_query.join("&"));
        kiro_tests::route_as_api_gateway(&mut raw, method, path);
        raw["requestContext"]["http"]["method"] = json!(method);
        raw["requestContext"]["http"]["path"] = json!(path);
        raw["queryStringParameters"] = Value::Object(params);
        if let Some(body) = body {
            raw["body"] = json!(body.to_string());
        }
        let event = http_event_from(raw);
        let resp = if path.starts_with("/profile") {
            let deps = create_profile::Deps {
                store: self.store(),
                region: region.into(),
                supported_regions: vec!["us-east-1".into(), "eu-central-1".into()],
            };
            create_profile::handle(&deps, event).await
        } else {
            let deps = AssignTier::new(self.store(), self.directory(), self.sink.clone());
            assign_tier::handle(&deps, event).await
        }
        .expect("the handler answers");
        let content_type = resp.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, body) = status_and_json(&resp);
        (status, body, content_type)
    }
}

/// Runs one example; answers what was wrong with it, if anything.
async fn run(doc: &Value, example: &Example) -> Vec<String> {
    let spec = &example.spec;
    let path_item = &doc["paths"][&example.path];
    let op = &path_item[example.method.to_lowercase()];
    let params = parameters(doc, path_item, op);
    let stage = Stage::new(spec["given"].as_str().unwrap_or("profile")).await;
    let expected = spec["status"].as_i64().expect("an example has a status");
    let success = (200..300).contains(&expected);
    let mut errors = Vec::new();

    // The request: path parameters, query, body, each as documented.
    let path_values = stage.substitute(&spec["path"]);
    let mut path = example.path.clone();
    for ((kind, name), _) in params.iter().filter(|((kind, _), _)| kind == "path") {
        let value = path_values[name.as_str()].as_str().unwrap_or_else(|| panic!("path parameter {name} ({kind})"));
        path = path.replace(&format!("{{{name}}}"), value);
    }
    assert!(!path.contains('{'), "{path}: a path parameter has no value");
    for name in path_values.as_object().into_iter().flatten().map(|(k, _)| k) {
        assert!(params.contains_key(&("path".to_owned(), name.clone())), "undocumented path parameter {name}");
    }
    let query = stage.substitute(&spec["query"]);
    for (name, value) in query.as_object().into_iter().flatten() {
        let param = params
            .get(&("query".to_owned(), name.clone()))
            .unwrap_or_else(|| panic!("query parameter {name} is not documented"));
        if success {
            let raw = value.as_str().expect("query values are strings");
            let typed = match resolve(doc, &param["schema"])["type"].as_str() {
                Some("integer") => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(raw)),
                _ => json!(raw),
            };
            validate(doc, &param["schema"], &typed, &format!("query {name}"), &mut errors);
        }
    }
    if success {
        for ((kind, name), p) in &params {
            if kind == "query" && p["required"] == true && query.get(name).is_none() {
                errors.push(format!("the required query parameter {name} is missing"));
            }
        }
    }
    let body = (!spec["body"].is_null()).then(|| stage.substitute(&spec["body"]));
    let request_schema = &op["requestBody"]["content"]["application/json"]["schema"];
    match &body {
        Some(b) if success => validate(doc, request_schema, b, "request", &mut errors),
        None if success && op["requestBody"]["required"] == true => errors.push("the request body is missing".into()),
        _ => {}
    }

    // The answer: status, content type, body as documented.
    let region = spec["region"].as_str().unwrap_or("us-east-1");
    let (status, answer, content_type) = stage.call_full(&example.method, &path, &query, body.as_ref(), region).await;
    if status != expected {
        errors.push(format!("answered {status}, documented {expected}: {answer}"));
        return errors;
    }
    let response = resolve(doc, &op["responses"][expected.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        if !answer.is_null() {
            errors.push(format!("documented without a body, answered {answer}"));
        }
    } else {
        if content_type.as_deref() != Some("application/json") {
            errors.push(format!("content-type {content_type:?}"));
        }
        validate(doc, schema, &answer, "response", &mut errors);
    }
    if let Some(code) = spec["errorCode"].as_str() {
        if answer["error"]["code"] != code {
            errors.push(format!("error code {}, documented {code}", answer["error"]["code"]));
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_documented_example_answers_as_documented() {
    let doc = document();
    let examples = examples(&doc);
    assert!(examples.len() >= operations(&doc).len(), "every operation has examples");
    // Each example has its own world, so they can run side by side.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, example) in examples.into_iter().enumerate() {
        let doc = doc.clone();
        tasks.spawn(async move {
            let errors = run(&doc, &example).await;
            (i, format!("{} {} — {}", example.method, example.path, example.summary), errors)
        });
    }
    let mut report = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (i, name, errors) = done.expect("an example ran to the end");
        if !errors.is_empty() {
            report.insert(i, format!("\n{name}:\n    {}", errors.join("\n    ")));
        }
    }
    assert!(
        report.is_empty(),
        "examples that do not answer as documented:{}",
        report.into_values().collect::<String>()
    );
}
