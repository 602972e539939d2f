//! `assign-tier`: subscriptions, seats and directory search (contract: "Subscriptions and seats").

mod directory;
mod query;
mod subscriptions;
mod usage;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use kiro::app::budget::Budget;
use kiro::app::queries;
use kiro::domain::audit::AuditMode;
use kiro::domain::{Invalid, Profile};
use kiro::error::AppError;
use kiro::http::{self, Reply, Request, Routes};
use kiro::ports::{
    ActivityReads, ApiStore, AuditStore, Directory, DirectorySearch, EventSink, ProfileStore, SeatStore,
    SubscriptionStore,
};
use lambda_runtime::LambdaEvent;
use tokio::sync::OnceCell;

use crate::query::Query;

/// What the handler needs; built once in `main`.
pub struct Deps<S, D, E> {
    pub store: S,
    pub directory: D,
    pub events: E,
    /// Cuts a group's fan-out after this many pages of members, as if the deadline had come,
    /// instead of near the Lambda deadline: how tests exercise the 202 path. `None` in production.
    pub fan_out_pages_per_call: Option<u32>,
    /// `TIER_PRICES_USD`, `TIER_CREDITS`, `OVERAGE_PRICE_USD` (the usage routes).
    pub pricing: kiro::config::Pricing,
    /// The profile never moves to another Identity Store and is never deleted, so once read it is
    /// kept for the life of the execution environment.
    profile: OnceCell<Profile>,
}

impl<S, D, E> Deps<S, D, E> {
    pub fn new(store: S, directory: D, events: E) -> Self {
        let pricing = kiro::config::pricing(|_| None).expect("the contract's default pricing reads");
        Self { store, directory, events, fan_out_pages_per_call: None, pricing, profile: OnceCell::new() }
    }

    /// The work this request may do before it answers: until the invocation's deadline, less a
    /// reserve (API Gateway's own limit is 30 s; the function's timeout, 29 s, comes first).
    fn budget(&self, req: &Request) -> Budget {
        match self.fan_out_pages_per_call {
            Some(pages) => Budget::units(pages),
            None => Budget::until_deadline_ms(req.deadline_ms),
        }
    }
}

impl<S: ProfileStore, D, E> Deps<S, D, E> {
    /// The deployment's profile, or `ProfileRequired`.
    async fn profile(&self) -> Result<&Profile, AppError> {
        if let Some(p) = self.profile.get() {
            return Ok(p);
        }
        let profile = self.store.get_profile().await?.ok_or(AppError::ProfileRequired)?;
        Ok(self.profile.get_or_init(|| async { profile }).await)
    }
}

pub async fn handle<S, D, E>(
    deps: &Deps<S, D, E>,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error>
where
    S: ProfileStore + SubscriptionStore + SeatStore + AuditStore + ActivityReads,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    Ok(http::serve(event, |req| route(deps, req)).await)
}

/// What answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    CreateSubscription,
    ListSubscriptions,
    GetSubscription,
    UpdateSubscription,
    DeleteSubscription,
    ListSeats,
    GetSeat,
    SearchUsers,
    SearchGroups,
    RequestAudit,
    ListAudits,
    GetAudit,
    Usage,
    UsageUsers,
    ListImports,
}

/// The routes this function answers, by API Gateway route key; `$default` (anything else) is
/// answered `NotFound`.
pub const ROUTES: &Routes<Endpoint> = &[
    ("POST /subscriptions", Endpoint::CreateSubscription),
    ("GET /subscriptions", Endpoint::ListSubscriptions),
    ("GET /subscriptions/{principalType}/{principalId}", Endpoint::GetSubscription),
    ("PUT /subscriptions/{principalType}/{principalId}", Endpoint::UpdateSubscription),
    ("DELETE /subscriptions/{principalType}/{principalId}", Endpoint::DeleteSubscription),
    ("GET /seats", Endpoint::ListSeats),
    ("GET /seats/{userId}", Endpoint::GetSeat),
    ("GET /directory/users", Endpoint::SearchUsers),
    ("GET /directory/groups", Endpoint::SearchGroups),
    ("POST /audits", Endpoint::RequestAudit),
    ("GET /audits", Endpoint::ListAudits),
    ("GET /audits/{auditId}", Endpoint::GetAudit),
    ("GET /usage", Endpoint::Usage),
    ("GET /usage/users", Endpoint::UsageUsers),
    ("GET /activity/imports", Endpoint::ListImports),
];

async fn route<S, D, E>(deps: &Deps<S, D, E>, req: Request) -> Result<Reply, AppError>
where
    S: ApiStore + ActivityReads,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    use Endpoint::*;
    let (endpoint, path) = req.route(ROUTES).map_err(|e| match e {
        // `$default` is the whole API's catch-all: name what the API serves.
        AppError::NotFound(m) => AppError::NotFound(format!(
            "{m}; the API serves /profile, /subscriptions, /seats, /directory/users, /directory/groups, /audits, /usage and /activity/imports"
        )),
        other => other,
    })?;
    // Everything but the audit reports needs the profile (`ProfileRequired` before one exists).
    let profile = || deps.profile();
    let principal = || Ok::<_, AppError>((path.get("principalType")?, path.get("principalId")?));
    match endpoint {
        CreateSubscription => subscriptions::create(deps, profile().await?, &req).await,
        ListSubscriptions => {
            profile().await?;
            subscriptions::list(deps, &Query::of(&req)?).await
        }
        GetSubscription => {
            profile().await?;
            let (kind, id) = principal()?;
            subscriptions::get(deps, kind, id).await
        }
        UpdateSubscription => {
            let (kind, id) = principal()?;
            subscriptions::update(deps, profile().await?, &req, kind, id).await
        }
        DeleteSubscription => {
            let (kind, id) = principal()?;
            subscriptions::delete(deps, profile().await?, kind, id).await
        }
        ListSeats => {
            profile().await?;
            seats_list(deps, &Query::of(&req)?).await
        }
        GetSeat => seat_get(deps, profile().await?, path.get("userId")?).await,
        SearchUsers => directory::users(deps, profile().await?, &Query::of(&req)?).await,
        SearchGroups => directory::groups(deps, profile().await?, &Query::of(&req)?).await,
        RequestAudit => audit_request(deps, &req).await,
        ListAudits => audits_list(deps, &Query::of(&req)?).await,
        GetAudit => audit_get(deps, path.get("auditId")?).await,
        Usage => {
            profile().await?;
            usage::summary(deps, &Query::of(&req)?).await
        }
        UsageUsers => {
            profile().await?;
            usage::users(deps, &Query::of(&req)?).await
        }
        ListImports => {
            let q = Query::of(&req)?;
            let page = kiro::app::activity::imports(&deps.store, q.limit()?, q.next_token()).await?;
            Reply::json(200, &query::list_body(page.items, page.next_token))
        }
    }
}

async fn seats_list<S: SeatStore, D, E>(deps: &Deps<S, D, E>, q: &Query<'_>) -> Result<Reply, AppError> {
    let filter = kiro::ports::SeatFilter { tier: q.tier()?, status: q.status()? };
    let page = queries::seats(&deps.store, filter, q.limit()?, q.next_token()).await?;
    let items: Vec<_> = page.items.iter().map(|s| s.view()).collect();
    Reply::json(200, &query::list_body(items, page.next_token))
}

async fn seat_get<S: SeatStore, D: Directory, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    user: &str,
) -> Result<Reply, AppError> {
    Reply::json(200, &queries::seat(&deps.store, &deps.directory, &profile.identity_store_id, user).await?.view())
}

/// `GET /audits`: the stored audit reports, newest first.
async fn audits_list<S: AuditStore, D, E>(deps: &Deps<S, D, E>, q: &Query<'_>) -> Result<Reply, AppError> {
    let page = queries::audits(&deps.store, q.limit()?, q.next_token()).await?;
    Reply::json(200, &query::list_body(page.items, page.next_token))
}

/// `POST /audits`: `{"mode": "report" | "repair", "force"?: bool}`; 202 once requested.
async fn audit_request<S, D, E: EventSink>(deps: &Deps<S, D, E>, req: &Request) -> Result<Reply, AppError> {
    let body = req.json_object()?;
    if let Some(k) = body.keys().find(|k| !["mode", "force"].contains(&k.as_str())) {
        return Err(Invalid::new(k.as_str(), "is not a known field").into());
    }
    let mode = match body.get("mode") {
        None | Some(serde_json::Value::Null) => return Err(Invalid::missing("mode").into()),
        Some(v) => {
            v.as_str().and_then(AuditMode::parse).ok_or_else(|| Invalid::new("mode", "must be report or repair"))?
        }
    };
    let force = match body.get("force") {
        None | Some(serde_json::Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(|| Invalid::new("force", "must be true or false"))?,
    };
    kiro::app::audit::request(&deps.events, mode, force, &req.actor()).await?;
    Reply::json(202, &serde_json::json!({"requested": true, "mode": mode, "force": force}))
}

/// `GET /audits/{auditId}`: one report.
async fn audit_get<S: AuditStore, D, E>(deps: &Deps<S, D, E>, id: &str) -> Result<Reply, AppError> {
    Reply::json(200, &queries::audit(&deps.store, id).await?)
}
