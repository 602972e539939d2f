//! API Gateway HTTP API (payload 2.0) requests in, contract-shaped responses out.
//! [`AppError`] → response happens here and nowhere else.

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use base64::Engine;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

pub use crate::domain::invalid::excerpt;
use crate::error::{AppError, cause_chain};

/// API Gateway's catch-all route key.
pub const DEFAULT_ROUTE: &str = "$default";

/// Bodies larger than this are refused before parsing (API Gateway itself allows 10 MB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A successful answer: status and optional JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    pub fn json(status: u16, body: &impl Serialize) -> Result<Self, AppError> {
        let body = serde_json::to_value(body).map_err(AppError::internal)?;
        Ok(Self { status, body: Some(body) })
    }

    pub fn no_content() -> Self {
        Self { status: 204, body: None }
    }
}

/// A function's routes as data: API Gateway's route key (`GET /seats/{userId}`, exactly as the
/// template declares it) and what answers it. The template contract test compares these tables
/// with `template.yaml` and the contract.
pub type Routes<E> = [(&'static str, E)];

/// An incoming request with the parts handlers use, already decoded.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// API Gateway's route key: a declared route (`PUT /subscriptions/{principalType}/{principalId}`)
    /// or `$default`.
    pub route_key: String,
    pub request_id: String,
    /// The invocation's deadline, milliseconds since the epoch (0 when unknown).
    pub deadline_ms: u64,
    /// Query parameters as the client sent them. `aws_lambda_events` splits API Gateway's
    /// comma-joined values apart again; joined back, `q=Doe, Jane` stays one search and
    /// `tier=PRO&tier=POWER` is the one unknown value `PRO,POWER`, not silently `PRO`.
    query: BTreeMap<String, String>,
    raw: ApiGatewayV2httpRequest,
}

/// The path parameters of a routed request, by the names its route key gives them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// A parameter the route declares. API Gateway always sends those; a route table that names
    /// one its key does not is a bug, answered 500.
    pub fn get(&self, name: &str) -> Result<&str, AppError> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| AppError::internal(format!("the route has no path parameter {name}")))
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl Request {
    pub fn new(raw: ApiGatewayV2httpRequest, request_id: String) -> Self {
        let method = raw.request_context.http.method.as_str().to_owned();
        let route_key = raw.route_key.clone().unwrap_or_else(|| DEFAULT_ROUTE.to_owned());
        let mut query = BTreeMap::<String, String>::new();
        for (name, value) in raw.query_string_parameters.iter() {
            query
                .entry(name.to_owned())
                .and_modify(|joined| {
                    joined.push(',');
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        Self { method, route_key, request_id, deadline_ms: 0, query, raw }
    }

    /// What answers this request in `routes`, with its path parameters.
    ///
    /// A declared route key is taken as API Gateway routed it, with its `pathParameters`. A
    /// request that arrives on `$default` (API Gateway sends there what no route matched; a proxy
    /// route, a custom domain mapping or a hand-made test event may send anything) is matched by
    /// its path against the same table, so it is served the same way or refused with `NotFound`.
    pub fn route<E: Copy>(&self, routes: &Routes<E>) -> Result<(E, Params), AppError> {
        if let Some((_, endpoint)) = routes.iter().find(|(key, _)| *key == self.route_key) {
            let params = self.raw.path_parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            return Ok((*endpoint, Params(params)));
        }
        let path = self.path();
        routes
            .iter()
            .find_map(|(key, endpoint)| match_route(key, &self.method, &path).map(|params| (*endpoint, params)))
            .ok_or_else(|| AppError::NotFound(format!("no route for {} {}", excerpt(&self.method), excerpt(&path))))
    }

    /// The request's path, its stage prefix removed.
    /// The request's body as bytes (decoded when API Gateway base64-encoded it), at most
    /// [`MAX_BODY_BYTES`].
    pub fn body_bytes(&self) -> Result<Vec<u8>, AppError> {
        let raw = self.raw.body.as_deref().unwrap_or("");
        let bytes = if self.raw.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| AppError::BadRequest("the body is not valid base64".into()))?
        } else {
            raw.as_bytes().to_vec()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(AppError::BadRequest(format!("the body is larger than {MAX_BODY_BYTES} bytes")));
        }
        Ok(bytes)
    }

    /// A request header (names are case-insensitive), when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first header whose (lower-case) name contains `needle`, when text.
    pub fn header_containing(&self, needle: &str) -> Option<&str> {
        self.raw.headers.iter().find(|(name, _)| name.as_str().contains(needle)).and_then(|(_, v)| v.to_str().ok())
    }

    /// The value of the cookie `name`: payload 2.0 sends cookies in `cookies`; a `Cookie` header
    /// (a hand-made event) is read too.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.header("cookie").map(|h| h.split(';').map(str::to_owned).collect::<Vec<_>>());
        let all = self.raw.cookies.iter().flatten().cloned().chain(header.into_iter().flatten());
        all.filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The host the client called (`requestContext.domainName`).
    pub fn domain_name(&self) -> Option<&str> {
        self.raw.request_context.domain_name.as_deref().filter(|d| !d.is_empty())
    }

    /// The raw query string, as sent.
    pub fn raw_query(&self) -> &str {
        self.raw.raw_query_string.as_deref().unwrap_or("")
    }

    /// The path the client called, without the stage.
    pub fn path(&self) -> String {
        let raw = &self.raw;
        let path = raw.raw_path.clone().or_else(|| raw.request_context.http.path.clone()).unwrap_or_default();
        strip_stage(&path, raw.request_context.stage.as_deref()).to_owned()
    }

    /// The caller recorded as the actor of a change: the IAM principal, or `anonymous`.
    pub fn actor(&self) -> String {
        self.raw
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone())
            .filter(|arn| !arn.is_empty())
            .unwrap_or_else(|| "anonymous".to_owned())
    }

    /// A query parameter's value as sent (API Gateway joins repeats with commas).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The body as a JSON object, or `BadRequest` saying why not.
    pub fn json_object(&self) -> Result<Map<String, Value>, AppError> {
        let raw = self.raw.body.as_deref().unwrap_or("");
        let bytes = if self.raw.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| AppError::BadRequest("the body is not valid base64".into()))?
        } else {
            raw.as_bytes().to_vec()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(AppError::BadRequest(format!("the body is larger than {MAX_BODY_BYTES} bytes")));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AppError::BadRequest("a JSON object body is required".into()));
        }
        match serde_json::from_slice::<Strict>(&bytes) {
            Ok(Strict(Value::Object(map))) => Ok(map),
            Ok(_) => Err(AppError::BadRequest("the body must be a JSON object".into())),
            // A data error is the one `Strict` raises; everything else is syntax.
            Err(e) if e.is_data() => {
                Err(AppError::BadRequest("the body repeats a key; each key may appear once".into()))
            }
            Err(_) => Err(AppError::BadRequest("the body is not valid JSON".into())),
        }
    }
}

/// A JSON value whose objects, at any depth, have no duplicate keys. `serde_json::Value` keeps the
/// last of two equal keys; a proxy or a WAF in front may have read the first, so such a body is
/// ambiguous and refused whole.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Runs `route` on the request and turns its outcome into the API Gateway response.
/// Errors are logged here once, with their whole cause chain, and answered in the contract's shape.
pub async fn serve<F, Fut>(event: LambdaEvent<ApiGatewayV2httpRequest>, route: F) -> ApiGatewayV2httpResponse
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Reply, AppError>>,
{
    let request_id = event.context.request_id.clone();
    let mut request = Request::new(event.payload, request_id.clone());
    request.deadline_ms = event.context.deadline;
    // The route key, not the path: a path carries user and group ids.
    let (method, route_name) = (request.method.clone(), request.route_key.clone());
    match route(request).await {
        Ok(reply) => {
            tracing::info!(%method, route = %route_name, status = reply.status, "answered");
            response(reply.status, reply.body)
        }
        Err(err) => {
            let status = err.status();
            if status >= 500 || status == 429 {
                tracing::error!(%method, route = %route_name, status, code = err.code(), cause = %cause_chain(&err), "request failed");
            } else {
                tracing::info!(%method, route = %route_name, status, code = err.code(), "request refused");
            }
            error_response(&err, &request_id)
        }
    }
}

/// The contract's error body.
pub fn error_response(err: &AppError, request_id: &str) -> ApiGatewayV2httpResponse {
    let body = json!({"error": {"code": err.code(), "message": err.to_string(), "requestId": request_id}});
    response(err.status(), Some(body))
}

fn response(status: u16, body: Option<Value>) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(status);
    if let Some(body) = body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        out.body = Some(Body::Text(body.to_string()));
    }
    out.headers = headers;
    out
}

fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    }
}

/// The path parameters of `path` if `method` and `path` match `route_key` (`GET /seats/{userId}`);
/// segments are compared percent-decoded, as API Gateway does.
pub fn match_route(route_key: &str, method: &str, path: &str) -> Option<Params> {
    let (route_method, template) = route_key.split_once(' ')?;
    // Methods are case-sensitive (RFC 9110): `get` is not `GET`.
    if route_method != method {
        return None;
    }
    let wanted: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    if wanted.len() != got.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (want, seg) in wanted.iter().zip(got) {
        match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) => {
                params.insert(name.to_owned(), seg);
            }
            None if *want == seg => {}
            None => return None,
        }
    }
    Some(Params(params))
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Invalid;

    #[test]
    fn every_error_has_the_contract_status_and_code() {
        let cases: Vec<(AppError, u16, &str)> = vec![
            (AppError::BadRequest("x".into()), 400, "BadRequest"),
            (Invalid::missing("name").into(), 400, "ValidationError"),
            (AppError::UnsupportedRegion { region: "r".into(), supported: vec![] }, 400, "UnsupportedRegion"),
            (AppError::NotFound("x".into()), 404, "NotFound"),
            (AppError::PrincipalNotFound("x".into()), 404, "PrincipalNotFound"),
            (AppError::Forbidden("x".into()), 403, "Forbidden"),
            (AppError::ProfileAlreadyExists, 409, "ProfileAlreadyExists"),
            (AppError::ProfileRequired, 409, "ProfileRequired"),
            (AppError::SubscriptionExists("x".into()), 409, "SubscriptionExists"),
            (AppError::Throttled("t".into()), 429, "Throttled"),
            (AppError::internal("secret detail"), 500, "InternalError"),
        ];
        for (err, status, code) in cases {
            let resp = error_response(&err, "req-1");
            assert_eq!(resp.status_code, i64::from(status));
            assert_eq!(resp.headers.get(CONTENT_TYPE).unwrap(), "application/json");
            let Some(Body::Text(text)) = resp.body else { panic!("no body") };
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["requestId"], "req-1");
            assert!(!text.contains("secret detail"), "internal causes never reach the client");
        }
    }

    #[test]
    fn stage_prefix_is_removed_only_for_named_stages() {
        assert_eq!(strip_stage("/prod/profile", Some("prod")), "/profile");
        assert_eq!(strip_stage("/profile", Some("$default")), "/profile");
        assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
        assert_eq!(strip_stage("/profile", None), "/profile");
    }

    fn routed(route_key: &str, method: &str, path: &str, params: &[(&str, &str)]) -> Request {
        let mut raw = ApiGatewayV2httpRequest::default();
        raw.route_key = Some(route_key.to_owned());
        raw.raw_path = Some(path.to_owned());
        raw.request_context.http.method = method.parse().unwrap();
        raw.request_context.stage = Some("prod".to_owned());
        raw.path_parameters = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Request::new(raw, "r".into())
    }

    const TABLE: &Routes<u8> = &[("GET /seats", 1), ("GET /seats/{userId}", 2), ("PUT /s/{a}/{b}", 3)];

    #[test]
    fn a_declared_route_key_is_taken_with_its_path_parameters() {
        // The path is not read again: API Gateway has routed it.
        let (e, p) = routed("GET /seats/{userId}", "GET", "/ignored", &[("userId", "u 1")]).route(TABLE).unwrap();
        assert_eq!((e, p.get("userId").unwrap()), (2, "u 1"));
        let err = p.get("other").unwrap_err();
        assert_eq!(err.code(), "InternalError");
    }

    #[test]
    fn a_default_route_request_is_matched_by_its_path_against_the_same_table() {
        let (e, p) = routed("$default", "PUT", "/prod/s/GROUP/g%2F1", &[]).route(TABLE).unwrap();
        assert_eq!((e, p.into_map()), (3, [("a".into(), "GROUP".into()), ("b".into(), "g/1".into())].into()));
        assert_eq!(routed("$default", "GET", "/seats/", &[]).route(TABLE).unwrap().0, 1);
        for (method, path) in
            [("POST", "/seats"), ("get", "/seats"), ("GET", "/seats/u/x"), ("GET", "/"), ("PUT", "/s/a")]
        {
            let err = routed("$default", method, path, &[]).route(TABLE).unwrap_err();
            assert_eq!(err.code(), "NotFound", "{method} {path}");
            assert!(err.to_string().starts_with(&format!("no route for {method} {path}")), "{err}");
        }
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    fn body(text: &str) -> Request {
        let mut raw = ApiGatewayV2httpRequest::default();
        raw.body = Some(text.to_owned());
        Request::new(raw, "r".into())
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(body(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#).json_object().is_ok());
        for text in [r#"{"a": 1, "a": 1}"#, r#"{"a": {"b": 1, "b": 2}}"#, r#"{"a": [{"b": 1, "b": 2}]}"#] {
            let err = body(text).json_object().unwrap_err();
            assert_eq!((err.code(), err.to_string().contains("repeats a key")), ("BadRequest", true), "{text}");
        }
        let err = body(r#"{"a": 1"#).json_object().unwrap_err();
        assert_eq!(err.to_string(), "the body is not valid JSON");
    }
}
