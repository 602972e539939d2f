//! `assign-tier`: subscriptions, seats and directory search (contract: "Subscriptions and seats").

mod directory;
mod query;
mod subscriptions;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use kiro::app::queries;
use kiro::domain::Profile;
use kiro::error::AppError;
use kiro::http::{self, Reply, Request};
use kiro::ports::{
    ApiStore, AuditStore, Directory, DirectorySearch, EventSink, ProfileStore, SeatStore, SubscriptionStore,
};
use lambda_runtime::LambdaEvent;
use tokio::sync::OnceCell;

use crate::query::Query;

/// What the handler needs; built once in `main`.
pub struct Deps<S, D, E> {
    pub store: S,
    pub directory: D,
    pub events: E,
    /// The profile never moves to another Identity Store and is never deleted, so once read it is
    /// kept for the life of the execution environment.
    profile: OnceCell<Profile>,
}

impl<S, D, E> Deps<S, D, E> {
    pub fn new(store: S, directory: D, events: E) -> Self {
        Self { store, directory, events, profile: OnceCell::new() }
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
    S: ProfileStore + SubscriptionStore + SeatStore + AuditStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    Ok(http::serve(event, |req| route(deps, req)).await)
}

async fn route<S, D, E>(deps: &Deps<S, D, E>, req: Request) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let not_found = || {
        AppError::NotFound(format!(
            "no route for {} /{}; the API serves /profile, /subscriptions, /seats, /directory/users, \
             /directory/groups and /audits",
            http::excerpt(&req.method),
            http::excerpt(&req.segments.join("/"))
        ))
    };
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["audits"]) => return audits_list(deps, &Query::of(&req)?).await,
        ("GET", ["audits", id]) => return audit_get(deps, id).await,
        _ => {}
    }
    let known = matches!(segments.first(), Some(&"subscriptions" | &"seats" | &"directory"));
    if !known {
        return Err(not_found());
    }
    let profile = deps.profile().await?;
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["subscriptions"]) => subscriptions::create(deps, profile, &req).await,
        ("GET", ["subscriptions"]) => subscriptions::list(deps, &Query::of(&req)?).await,
        ("GET", ["subscriptions", kind, id]) => subscriptions::get(deps, kind, id).await,
        ("PUT", ["subscriptions", kind, id]) => subscriptions::update(deps, profile, &req, kind, id).await,
        ("DELETE", ["subscriptions", kind, id]) => subscriptions::delete(deps, profile, kind, id).await,
        ("GET", ["seats"]) => seats_list(deps, &Query::of(&req)?).await,
        ("GET", ["seats", user]) => seat_get(deps, profile, user).await,
        ("GET", ["directory", "users"]) => directory::users(deps, profile, &Query::of(&req)?).await,
        ("GET", ["directory", "groups"]) => directory::groups(deps, profile, &Query::of(&req)?).await,
        _ => Err(not_found()),
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

/// `GET /audits/{auditId}`: one report.
async fn audit_get<S: AuditStore, D, E>(deps: &Deps<S, D, E>, id: &str) -> Result<Reply, AppError> {
    Reply::json(200, &queries::audit(&deps.store, id).await?)
}
