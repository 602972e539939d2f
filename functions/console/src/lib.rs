//! `console`: the admin web console (contract: "Console"). Server-rendered pages over the same
//! application layer as the JSON API, signed in through OpenID Connect.

mod actions;
mod assets;
mod auth;
mod dashboard;
mod export;
pub mod fetch;
#[cfg(test)]
mod flow_tests;
mod form;
mod members;
pub mod oidc;
mod pages;
mod views;
mod web;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use kiro::app::access::ConsoleGroups;
use kiro::config::{ConsoleConfig, Pricing};
use kiro::domain::{IdentityStoreId, Profile};
use kiro::error::{AppError, cause_chain};
use kiro::http::{Request, Routes};
use kiro::ports::{
    ActivityReads, ApiStore, AuditStore, Directory, DirectorySearch, EventSink, Exports, Instances, MemberGroups,
    ProfileAdmin, ProfileStore, SeatStore, SessionStore, SubscriptionStore,
};
use lambda_runtime::LambdaEvent;

use crate::fetch::Fetch;
use crate::oidc::RelyingParty;
use crate::web::Reply;

/// What the console needs; built once in `main`.
pub struct Deps<S, D, E, I, F, X = kiro::ports::NoExports> {
    pub store: S,
    pub directory: D,
    pub events: E,
    pub instances: I,
    pub relying_party: RelyingParty<F>,
    pub config: ConsoleConfig,
    pub pricing: Pricing,
    /// The function's own Region: where a new profile lives.
    pub region: String,
    pub supported_regions: Vec<String>,
    /// Where an Export CSV too large for one response goes (`CONSOLE_EXPORT_BUCKET`), if anywhere.
    pub exports: X,
    /// The largest export answered in the response itself (a Lambda response is at most 6 MB).
    pub inline_export_bytes: usize,
}

impl<S, D, E, I, F: Fetch> Deps<S, D, E, I, F> {
    #[allow(clippy::too_many_arguments)] // the ports, the issuer's client, and the settings
    pub fn new(
        store: S,
        directory: D,
        events: E,
        instances: I,
        fetch: F,
        config: ConsoleConfig,
        pricing: Pricing,
        region: String,
        supported_regions: Vec<String>,
    ) -> Self {
        let relying_party = RelyingParty::new(fetch, config.issuer.clone(), config.client_id.clone());
        let (exports, inline_export_bytes) = (kiro::ports::NoExports, export::MAX_INLINE_BYTES);
        Self {
            store,
            directory,
            events,
            instances,
            relying_party,
            config,
            pricing,
            region,
            supported_regions,
            exports,
            inline_export_bytes,
        }
    }

    /// The same, with a place for large exports.
    pub fn with_exports<X: Exports>(self, exports: X) -> Deps<S, D, E, I, F, X> {
        Deps {
            store: self.store,
            directory: self.directory,
            events: self.events,
            instances: self.instances,
            relying_party: self.relying_party,
            config: self.config,
            pricing: self.pricing,
            region: self.region,
            supported_regions: self.supported_regions,
            exports,
            inline_export_bytes: self.inline_export_bytes,
        }
    }
}

impl<S, D, E, I, F, X> Deps<S, D, E, I, F, X> {
    fn groups(&self) -> ConsoleGroups {
        ConsoleGroups { admin: self.config.admin_group.clone(), viewer: self.config.viewer_group.clone() }
    }
}

impl<S, D, E, I, F, X> Deps<S, D, E, I, F, X>
where
    S: ApiStore + ProfileAdmin + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
{
    /// The deployment's profile, once it exists. Read on every request (one `GetItem`): Settings
    /// renames it, from this process or another, and the pages show its name.
    async fn profile(&self) -> Result<Option<Profile>, AppError> {
        Ok(self.store.get_profile().await?)
    }

    /// The Identity Store users sign in from: the profile's, or before a profile exists, the
    /// store of the account's (first) IAM Identity Center instance.
    async fn identity_store(&self) -> Result<Option<IdentityStoreId>, AppError> {
        if let Some(p) = self.profile().await? {
            return Ok(Some(p.identity_store_id));
        }
        Ok(self.instances.list_instances().await?.into_iter().next().map(|i| i.identity_store_id))
    }
}

/// What answers a request under `/console`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Dashboard,
    SignIn,
    Callback,
    SignOut,
    Users,
    UsersCsv,
    Groups,
    Audits,
    RunAudit,
    Settings,
    SaveSettings,
    CreateProfile,
    Assign,
    ChangePlan,
    Deactivate,
    SearchUsers,
    SearchGroups,
    Asset,
}

/// The console's pages and actions. API Gateway sends it everything under `/console` (routes
/// `ANY /console` and `ANY /console/{proxy+}`); this table is matched against the path.
pub const ROUTES: &Routes<Endpoint> = &[
    ("GET /console", Endpoint::Dashboard),
    ("GET /console/auth/login", Endpoint::SignIn),
    ("GET /console/auth/callback", Endpoint::Callback),
    ("POST /console/auth/logout", Endpoint::SignOut),
    ("GET /console/users", Endpoint::Users),
    ("GET /console/users.csv", Endpoint::UsersCsv),
    ("GET /console/groups", Endpoint::Groups),
    ("GET /console/audits", Endpoint::Audits),
    ("POST /console/audits", Endpoint::RunAudit),
    ("GET /console/settings", Endpoint::Settings),
    ("POST /console/settings", Endpoint::SaveSettings),
    ("POST /console/profile", Endpoint::CreateProfile),
    ("POST /console/subscriptions", Endpoint::Assign),
    ("POST /console/subscriptions/{principalType}/{principalId}/plan", Endpoint::ChangePlan),
    ("POST /console/subscriptions/{principalType}/{principalId}/deactivate", Endpoint::Deactivate),
    ("GET /console/directory/users", Endpoint::SearchUsers),
    ("GET /console/directory/groups", Endpoint::SearchGroups),
    ("GET /console/assets/{file}", Endpoint::Asset),
];

impl Endpoint {
    /// Answered as JSON (the search-as-you-type), not as a page.
    fn is_json(self) -> bool {
        matches!(self, Endpoint::SearchUsers | Endpoint::SearchGroups)
    }
}

pub async fn handle<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error>
where
    // The ports spelled out (not `ApiStore`): they mirror the function's IAM policy.
    S: ProfileStore + ProfileAdmin + SubscriptionStore + SeatStore + AuditStore + ActivityReads + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
    X: Exports,
{
    let request_id = event.context.request_id.clone();
    let mut req = Request::new(event.payload, request_id.clone());
    req.deadline_ms = event.context.deadline;
    let method = req.method.clone();
    let route = req.route(ROUTES);
    let (endpoint, params) = match route {
        Ok(found) => found,
        Err(_) => {
            let reply = Reply::html(404, views::error(None, "There is no such page in the console.", "/console"));
            return Ok(reply.into_response());
        }
    };
    let reply = match pages::serve(deps, &req, endpoint, params).await {
        Ok(reply) => reply,
        Err(err) => failure(&err, &req, endpoint, &request_id),
    };
    tracing::info!(%method, endpoint = ?endpoint, status = reply.status, "answered");
    Ok(reply.into_response())
}

/// The one place an error becomes the console's answer: the contract's JSON error for scripts
/// and the search box, a page in plain words for a browser.
fn failure(err: &AppError, req: &Request, endpoint: Endpoint, request_id: &str) -> Reply {
    let status = err.status();
    if status >= 500 || status == 429 {
        tracing::error!(status, code = err.code(), cause = %cause_chain(err), "console request failed");
    } else {
        tracing::info!(status, code = err.code(), "console request refused");
    }
    let wants_html = !endpoint.is_json() && req.header("accept").is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let message = web::plain_message(err);
        // Back to the console page the admin came from (same origin, under /console).
        let back = req
            .header("referer")
            .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .filter(|path| path.starts_with("/console") && !path.starts_with("/console/auth"))
            .unwrap_or("/console");
        let page = match err {
            AppError::Forbidden(_) => views::refused(&message, true),
            _ => views::error(None, &message, back),
        };
        return Reply::html(status, page);
    }
    let body = serde_json::json!({"error": {"code": err.code(), "message": err.to_string(), "requestId": request_id}});
    Reply::json(status, &body)
}
