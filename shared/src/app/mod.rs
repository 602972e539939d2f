//! The application layer: the use cases every adapter shares (the JSON API's functions, the
//! events, the console to come). Each is a plain async function over the ports, returning
//! domain values or [`AppError`](crate::error::AppError); parsing a request and shaping an
//! answer are the adapters' part.

pub mod access;
pub mod activity;
pub mod audit;
pub mod budget;
pub mod bus;
pub mod directory;
pub mod fanout;
pub mod membership;
pub mod names;
pub mod profile;
pub mod publish;
pub mod queries;
pub mod seats;
pub mod subscriptions;
pub mod usage;
