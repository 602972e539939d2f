//! The deployment's one Kiro profile: create it (once, in a supported Region), read it, rename it.

use chrono::{DateTime, Utc};

use crate::domain::{NewProfile, Profile, ProfilePatch};
use crate::error::AppError;
use crate::ports::{ProfileAdmin, ProfileStore, StoreError};

/// Where profiles may be created: the function's own Region and `SUPPORTED_REGIONS`.
#[derive(Debug, Clone)]
pub struct Placement {
    pub region: String,
    pub supported_regions: Vec<String>,
}

impl Placement {
    /// `UnsupportedRegion` unless this Region is one of the supported ones.
    pub fn check(&self) -> Result<(), AppError> {
        if self.supported_regions.contains(&self.region) {
            return Ok(());
        }
        Err(AppError::UnsupportedRegion { region: self.region.clone(), supported: self.supported_regions.clone() })
    }
}

/// Creates the profile in this Region; `UnsupportedRegion` outside the supported ones,
/// `ProfileAlreadyExists` for a second one.
pub async fn create<S: ProfileAdmin>(
    store: &S,
    placement: &Placement,
    new: NewProfile,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Profile, AppError> {
    placement.check()?;
    let profile = new.into_profile(uuid::Uuid::new_v4().to_string(), placement.region.clone(), actor, now);
    match store.create_profile(&profile).await {
        Ok(()) => {
            tracing::info!(profile_id = %profile.profile_id, "profile created");
            Ok(profile)
        }
        Err(StoreError::Conflict(_)) => Err(AppError::ProfileAlreadyExists),
        Err(e) => Err(e.into()),
    }
}

/// The profile, or `NotFound`.
pub async fn get<S: ProfileStore>(store: &S) -> Result<Profile, AppError> {
    store.get_profile().await?.ok_or_else(no_profile)
}

/// Applies `patch`; an empty patch answers the profile as it is, like an idempotent AWS update.
pub async fn update<S: ProfileStore + ProfileAdmin>(
    store: &S,
    patch: &ProfilePatch,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Profile, AppError> {
    let profile =
        if patch.is_empty() { store.get_profile().await? } else { store.update_profile(patch, actor, now).await? };
    profile.ok_or_else(no_profile)
}

fn no_profile() -> AppError {
    AppError::NotFound("no profile exists in this deployment; create one with POST /profile".into())
}
