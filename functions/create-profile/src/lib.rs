//! `create-profile`: `POST /profile`, `GET /profile`, `PATCH /profile`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::Utc;
use kiro::domain::{NewProfile, ProfilePatch};
use kiro::error::AppError;
use kiro::http::{self, Reply, Request};
use kiro::ports::{ProfileAdmin, ProfileStore, StoreError};
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

async fn route<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>, req: Request) -> Result<Reply, AppError> {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["profile"]) => create(deps, &req).await,
        ("GET", ["profile"]) => get(deps).await,
        ("PATCH", ["profile"]) => update(deps, &req).await,
        _ => Err(AppError::NotFound(format!(
            "no route for {} /{}",
            http::excerpt(&req.method),
            http::excerpt(&req.segments.join("/"))
        ))),
    }
}

async fn create<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>, req: &Request) -> Result<Reply, AppError> {
    let body = req.json_object()?;
    if !deps.supported_regions.contains(&deps.region) {
        return Err(AppError::UnsupportedRegion {
            region: deps.region.clone(),
            supported: deps.supported_regions.clone(),
        });
    }
    let new = NewProfile::from_json(&body)?;
    let profile = new.into_profile(uuid::Uuid::new_v4().to_string(), deps.region.clone(), &req.actor(), Utc::now());
    match deps.store.create_profile(&profile).await {
        Ok(()) => {
            tracing::info!(profile_id = %profile.profile_id, "profile created");
            Reply::json(201, &profile)
        }
        Err(StoreError::Conflict(_)) => Err(AppError::ProfileAlreadyExists),
        Err(e) => Err(e.into()),
    }
}

async fn get<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>) -> Result<Reply, AppError> {
    match deps.store.get_profile().await? {
        Some(profile) => Reply::json(200, &profile),
        None => Err(no_profile()),
    }
}

async fn update<S: ProfileStore + ProfileAdmin>(deps: &Deps<S>, req: &Request) -> Result<Reply, AppError> {
    let patch = ProfilePatch::from_json(&req.json_object()?)?;
    let profile = if patch.is_empty() {
        // Nothing to change: answer the profile as it is, like an idempotent AWS update.
        deps.store.get_profile().await?
    } else {
        deps.store.update_profile(&patch, &req.actor(), Utc::now()).await?
    };
    match profile {
        Some(profile) => Reply::json(200, &profile),
        None => Err(no_profile()),
    }
}

fn no_profile() -> AppError {
    AppError::NotFound("no profile exists in this deployment; create one with POST /profile".into())
}
