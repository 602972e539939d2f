//! Pure rules of Kiro subscriptions: no SDK types, no I/O, no clock read behind the caller's back.

pub mod activity;
pub mod audit;
pub mod ids;
pub mod import;
pub mod invalid;
pub mod profile;
pub mod seat;
pub mod session;
pub mod signal;
pub mod subscription;
pub mod tier;
pub mod usage;

pub use ids::{GroupId, IdentityStoreId, MembershipId, UserId};
pub use invalid::Invalid;
pub use profile::{NewProfile, Profile, ProfilePatch};
pub use seat::{
    CancelReason, Seat, SeatChange, SeatEvent, SeatStatus, SourceKey, SourceOp, Sources, Transition, transition,
};
pub use subscription::{FanOut, FanOutState, Principal, PrincipalType, Subscription, TierChange};
pub use tier::Tier;
