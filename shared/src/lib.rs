//! The domain crate every Kiro subscriptions function uses.
//!
//! - [`domain`]: pure rules (tiers, ids, profiles, seats and their sources).
//! - [`ports`]: the narrow async traits the handlers need (store, directory, event sink).
//! - [`aws`]: the adapters that implement the ports with the AWS SDK.
//! - [`http`]: API Gateway request parsing and the one place errors become HTTP responses.
//! - [`config`]: typed configuration, read once from the environment.

pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod names;
pub mod ports;
pub mod seats;
pub mod time;

/// The boxed error kept as the `#[source]` of adapter errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
