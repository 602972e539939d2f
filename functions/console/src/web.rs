//! What the console answers: HTML pages, redirects, small JSON and CSV bodies, assets — each with
//! the contract's security headers — and the one place its errors become pages.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use kiro::error::AppError;
use maud::Markup;

/// No inline script or style, nothing from another origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// An answer under construction.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub cookies: Vec<String>,
}

impl Reply {
    pub fn html(status: u16, page: Markup) -> Self {
        Self::text(status, "text/html; charset=utf-8", page.into_string())
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Self {
        Self { status, content_type, body, headers: vec![("cache-control", "no-store".into())], cookies: vec![] }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::text(status, "application/json", value.to_string())
    }

    /// `303 See Other`: after a POST, the browser GETs the page that shows its outcome.
    pub fn see_other(location: impl Into<String>) -> Self {
        let mut r = Self::text(303, "text/plain; charset=utf-8", String::new());
        r.headers.push(("location", location.into()));
        r
    }

    /// `302 Found` to another origin (the issuer).
    pub fn found(location: impl Into<String>) -> Self {
        let mut r = Self::text(302, "text/plain; charset=utf-8", String::new());
        r.headers.push(("location", location.into()));
        r
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    pub fn cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }

    pub fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.insert(n, v);
            }
        };
        put("content-type", self.content_type);
        put("content-security-policy", CONTENT_SECURITY_POLICY);
        put("x-content-type-options", "nosniff");
        put("referrer-policy", "same-origin");
        put("x-frame-options", "DENY");
        for (name, value) in &self.headers {
            put(name, value);
        }
        let mut out = ApiGatewayV2httpResponse::default();
        out.status_code = i64::from(self.status);
        out.headers = headers;
        out.cookies = self.cookies;
        out.body = Some(Body::Text(self.body));
        out
    }
}

/// A cookie the console sets: `HttpOnly; Secure; SameSite=Lax`, scoped to `path`.
pub fn cookie(name: &str, value: &str, path: &str, max_age_seconds: i64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; Secure; SameSite=Lax")
}

/// What an admin reads when something went wrong: plain words, never a cause chain.
pub fn plain_message(err: &AppError) -> String {
    match err {
        AppError::PrincipalNotFound(_) => {
            "That user or group is not in IAM Identity Center any more (it may have just been deleted). Search again and pick another.".into()
        }
        AppError::SubscriptionExists(_) => {
            "It already has a plan at another tier. Use Change plan on its row instead.".into()
        }
        AppError::ProfileRequired => "Create the Kiro profile first (Sign up for Kiro on the Dashboard).".into(),
        AppError::ProfileAlreadyExists => "A Kiro profile already exists in this account and Region.".into(),
        AppError::Throttled(_) => {
            "AWS is throttling requests right now. Nothing was changed by the part that failed; try again in a minute.".into()
        }
        AppError::Internal(_) => "Something went wrong on our side. Nothing was left half-done; try again.".into(),
        AppError::UnsupportedRegion { region, supported } => {
            format!("Kiro profiles cannot be created in {region}. Supported Regions: {}.", supported.join(", "))
        }
        other => other.to_string(),
    }
}
