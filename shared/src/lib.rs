//! The domain crate every Kiro subscriptions function uses.
//!
//! - [`domain`]: pure rules (tiers, ids, profiles, seats and their sources).
//! - [`app`]: the use cases, over the ports; [`error`]: their one error type.
//! - [`ports`]: the narrow async traits the handlers need (store, directory, event sink).
//! - [`aws`]: the adapters that implement the ports with the AWS SDK.
//! - [`http`]: API Gateway request parsing and the one place errors become HTTP responses.
//! - [`config`]: typed configuration, read once from the environment.

pub mod app;
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod ports;
pub mod time;

/// The boxed error kept as the `#[source]` of adapter errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
