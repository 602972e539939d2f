//! `create-profile`: `POST /profile`, `GET /profile`, `PATCH /profile`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::Utc;
use kiro::app::profile::{self, Placement};
use kiro::domain::{NewProfile, ProfilePatch};
use kiro::error::AppError;
use kiro::http::{self, Reply, Request, Routes};
use kiro::ports::{ProfileAdmin, ProfileStore};
use lambda_runtime::LambdaEvent;

/// What the handler needs; built once in `main`.
pub struct Deps<S> {
    pub store: S,
    /// The function's own Region (`AWS_REGION`): where a new profile lives.
    pub region: String,
    /// `SUPPORTED_REGIONS`.
    pub supported_regions: Vec<String>,
}

pub async fn handle<S: ProfileStore + ProfileAdmin>(
    deps: &Deps<S>,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error> {
    Ok(http::serve(event, |req| route(deps, req)).await)
}

/// What answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Create,
    Get,
    Update,
}

/// The routes this function answers, by API Gateway route key.
pub const ROUTES: &Routes<Endpoint> =
    &[("POST /profile", Endpoint::Create), ("GET /profile", Endpoint::Get), ("PATCH /profile", Endpoint::Update)];

async fn route<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>, req: Request) -> Result<Reply, AppError> {
    match req.route(ROUTES)?.0 {
        Endpoint::Create => create(deps, &req).await,
        Endpoint::Get => get(deps).await,
        Endpoint::Update => update(deps, &req).await,
    }
}

async fn create<S: ProfileAdmin>(deps: &Deps<S>, req: &Request) -> Result<Reply, AppError> {
    let body = req.json_object()?;
    let placement = Placement { region: deps.region.clone(), supported_regions: deps.supported_regions.clone() };
    // The Region before the body: in an unsupported Region nothing else matters.
    placement.check()?;
    let profile =
        profile::create(&deps.store, &placement, NewProfile::from_json(&body)?, &req.actor(), Utc::now()).await?;
    Reply::json(201, &profile)
}

async fn get<S: ProfileStore>(deps: &Deps<S>) -> Result<Reply, AppError> {
    Reply::json(200, &profile::get(&deps.store).await?)
}

async fn update<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>, req: &Request) -> Result<Reply, AppError> {
    let patch = ProfilePatch::from_json(&req.json_object()?)?;
    Reply::json(200, &profile::update(&deps.store, &patch, &req.actor(), Utc::now()).await?)
}
