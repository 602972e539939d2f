//! The one error type of the use cases and the one mapping to the contract's error codes
//! ([`AppError`]); `http` turns it into a response and the event functions into a
//! `Diagnostic`, nothing else decides a status or a code. [`cause_chain`] is how a failure is
//! logged, once, whole.

use crate::BoxError;
use crate::app::seats::ServiceError;
use crate::domain::Invalid;
use crate::ports::{DirectoryError, StoreError};

/// Every way a use case can fail, each with the contract's status and code (the one mapping:
/// [`status`](Self::status), [`code`](Self::code)); the message is the contract's `message`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Validation(#[from] Invalid),
    #[error("profiles can only be created in {}; this deployment runs in {region}", supported.join(", "))]
    UnsupportedRegion { region: String, supported: Vec<String> },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PrincipalNotFound(String),
    /// The console: signed in but in neither console group, a viewer's change, or a change
    /// without the session's CSRF token.
    #[error("{0}")]
    Forbidden(String),
    #[error("a profile already exists in this deployment; use PATCH /profile to change it")]
    ProfileAlreadyExists,
    #[error("no profile exists yet; create one with POST /profile first")]
    ProfileRequired,
    #[error("{0}")]
    SubscriptionExists(String),
    #[error("the request was throttled upstream and retries did not succeed; try again shortly")]
    Throttled(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Validation(_) | Self::UnsupportedRegion { .. } => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) | Self::PrincipalNotFound(_) => 404,
            Self::ProfileAlreadyExists | Self::ProfileRequired | Self::SubscriptionExists(_) => 409,
            Self::Throttled(_) => 429,
            Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::Validation(_) => "ValidationError",
            Self::UnsupportedRegion { .. } => "UnsupportedRegion",
            Self::NotFound(_) => "NotFound",
            Self::PrincipalNotFound(_) => "PrincipalNotFound",
            Self::Forbidden(_) => "Forbidden",
            Self::ProfileAlreadyExists => "ProfileAlreadyExists",
            Self::ProfileRequired => "ProfileRequired",
            Self::SubscriptionExists(_) => "SubscriptionExists",
            Self::Throttled(_) => "Throttled",
            Self::Internal(_) => "InternalError",
        }
    }

    pub fn internal(e: impl Into<BoxError>) -> Self {
        Self::Internal(e.into())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<DirectoryError> for AppError {
    fn from(e: DirectoryError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(StoreError::InvalidToken)
            | ServiceError::Directory(DirectoryError::InvalidToken { .. }) => Self::BadRequest(
                "the nextToken is not valid: pass the nextToken of the previous page, unchanged".into(),
            ),
            e if e.is_throttling() => Self::Throttled(e.into()),
            e => Self::Internal(e.into()),
        }
    }
}

/// `a: b: c` — every error in the `source()` chain, for the one log line of a failure.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
