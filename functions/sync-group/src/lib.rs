//! `sync-group`: Identity Center membership events and the audit (contract: "Events in").
//!
//! Every CloudTrail event is a hint about one user or group: the handler asks the Identity Store
//! what is true now and moves the seats there through the same seat service `assign-tier` uses.
//! So a duplicate changes nothing, and a late "added" after the member was removed grants nothing.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use kiro::app::budget::Budget;
use kiro::app::fanout;
use kiro::app::seats::{Applied, ServiceError};
use kiro::app::{audit, membership};
use kiro::domain::Profile;
use kiro::domain::signal::{self, Signal};
use kiro::error::AppError;
use kiro::ports::{
    AuditCheckpoints, AuditStore, Directory, EventSink, MemberGroups, MembershipMap, ProfileStore, SeatNames,
    SeatStore, StoreError, SubscriptionStore,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// What the handler needs; built once in `main`.
pub struct Deps<S, D, E> {
    pub store: S,
    pub directory: D,
    pub events: E,
    /// `AUDIT_REVOKE_LIMIT_PERCENT`.
    pub revoke_limit_percent: u8,
    /// Cuts each audit invocation after this many units of work (a group read, a page of
    /// seats, a batch of changes…) instead of near the Lambda deadline: how tests and the bench
    /// exercise checkpoints. `None` in production.
    pub audit_units_per_invocation: Option<u32>,
    /// The same for a group's fan-out continuation: pages of members per invocation.
    pub fan_out_pages_per_invocation: Option<u32>,
    profile: OnceCell<Profile>,
}

impl<S, D, E> Deps<S, D, E> {
    /// The ports the membership use cases take.
    fn ports(&self) -> membership::Ports<'_, S, D, E> {
        membership::Ports { store: &self.store, directory: &self.directory, sink: &self.events }
    }

    pub fn new(store: S, directory: D, events: E, revoke_limit_percent: u8) -> Self {
        Self {
            store,
            directory,
            events,
            revoke_limit_percent,
            audit_units_per_invocation: None,
            fan_out_pages_per_invocation: None,
            profile: OnceCell::new(),
        }
    }
}

/// A failure worth a retry by EventBridge/Lambda; everything else is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A use case of the application layer failed.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

impl From<kiro::ports::DirectoryError> for SyncError {
    fn from(e: kiro::ports::DirectoryError) -> Self {
        Self::Service(e.into())
    }
}

impl From<SyncError> for Diagnostic {
    fn from(e: SyncError) -> Self {
        let throttled = match &e {
            SyncError::Service(s) => s.is_throttling(),
            SyncError::App(a) => matches!(a, AppError::Throttled(_)),
        };
        let error_type = if throttled { "Throttled" } else { "SyncFailed" };
        Diagnostic { error_type: error_type.to_owned(), error_message: kiro::error::cause_chain(&e) }
    }
}

/// Any payload Lambda hands over: an EventBridge envelope is [`handle`]d; anything else (`{}`,
/// `[]`, no `detail-type`, a `time` that is not one) is acknowledged and logged, never an error
/// (an error would be retried, then land in the dead-letter queue, for an event no retry fixes).
pub async fn handle_payload<S, D, E>(deps: &Deps<S, D, E>, event: LambdaEvent<Value>) -> Result<Value, SyncError>
where
    S: ProfileStore + SubscriptionStore + SeatStore + SeatNames + AuditStore + AuditCheckpoints + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let (payload, context) = event.into_parts();
    match serde_json::from_value::<EventBridgeEvent<Value>>(payload) {
        Ok(envelope) => handle(deps, LambdaEvent::new(envelope, context)).await,
        Err(e) => {
            // serde's message names the field and position, never the payload's values.
            tracing::warn!(why = %e, "not an EventBridge envelope; acknowledged");
            Ok(json!({"signal": "ignored", "ignored": format!("not an EventBridge envelope: {e}")}))
        }
    }
}

pub async fn handle<S, D, E>(
    deps: &Deps<S, D, E>,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, SyncError>
where
    S: ProfileStore + SubscriptionStore + SeatStore + SeatNames + AuditStore + AuditCheckpoints + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let e = &event.payload;
    let signal = signal::classify(&e.source, &e.detail_type, &e.detail);
    let kind = signal.kind();
    if let Signal::Ignore { why } = &signal {
        tracing::info!(source = %e.source, detail_type = %e.detail_type, why = %why, "event acknowledged, nothing to do");
        return Ok(json!({"signal": kind, "ignored": why}));
    }
    let Some(profile) = profile(deps).await? else {
        tracing::info!(signal = kind, "no profile yet; event acknowledged");
        return Ok(json!({"signal": kind, "ignored": "no profile exists yet"}));
    };
    if let Some(store) = signal::identity_store_of(&e.detail) {
        if store != profile.identity_store_id.as_str() {
            tracing::info!(signal = kind, "event for another identity store; acknowledged");
            return Ok(json!({"signal": kind, "ignored": "another identity store"}));
        }
    }
    let now = Utc::now();
    let applied: Applied = match signal {
        Signal::Membership { group, user } => membership::converge(&deps.ports(), profile, &group, &user, now).await?,
        Signal::MembershipDeleted { membership } => {
            membership::membership_deleted(&deps.ports(), profile, &membership, now).await?
        }
        Signal::GroupMembersChanged { group } => {
            // The lease lasts this invocation (Lambda's longest when the deadline is unknown).
            let deadline = i64::try_from(event.context.deadline).unwrap_or(0);
            let until = if deadline > 0 { deadline } else { now.timestamp_millis() + 900_000 };
            let owner = &event.context.request_id;
            membership::resync_group_coalesced(&deps.ports(), profile, &group, owner, until, now).await?
        }
        Signal::GroupDeleted { group } => membership::group_deleted(&deps.ports(), &group, now).await?,
        Signal::UserDeleted { user } => membership::user_deleted(&deps.ports(), &user, now).await?,
        Signal::Audit { mode, force, continues } => {
            // The audit's clock is the envelope's time (the schedule's tick), not the wall clock;
            // a continuation keeps the clock its audit started with.
            let invocation = event.context.request_id.clone();
            let request = audit::Request { mode, force, clock: e.time.unwrap_or(now), continues, invocation };
            let budget = match deps.audit_units_per_invocation {
                Some(units) => audit::Budget::units(units),
                None => audit::Budget::until_deadline_ms(event.context.deadline),
            };
            let audit = audit::Audit {
                store: &deps.store,
                directory: &deps.directory,
                events: &deps.events,
                revoke_limit_percent: deps.revoke_limit_percent,
            };
            return Ok(audit::run(&audit, profile, request, budget).await?.to_json());
        }
        Signal::NameSeats { users } => {
            let named =
                kiro::app::names::fill(&deps.store, &deps.directory, &profile.identity_store_id, &users).await?;
            tracing::info!(requested = users.len(), named, "seats named");
            return Ok(json!({"signal": kind, "named": named}));
        }
        Signal::FanOut { group, next_token, granted } => {
            let mut budget = match deps.fan_out_pages_per_invocation {
                Some(pages) => Budget::units(pages),
                None => Budget::until_deadline_ms(event.context.deadline),
            };
            let from = fanout::Resume { next_token, granted };
            let (store, directory, sink) = (&deps.store, &deps.directory, &deps.events);
            let store_id = &profile.identity_store_id;
            let outcome = fanout::resume(store, directory, sink, store_id, &group, from, &mut budget, now).await?;
            let Some(outcome) = outcome else {
                tracing::info!(group = %group, "fan-out continuation: the subscription is gone or done");
                return Ok(json!({"signal": kind, "ignored": "the subscription is gone or its fan-out is done"}));
            };
            tracing::info!(group = %group, state = outcome.fan_out.state.as_str(), granted = outcome.fan_out.granted, "fan-out continued");
            return Ok(json!({"signal": kind, "fanOut": outcome.fan_out, "applied": outcome.applied}));
        }
        Signal::Ignore { .. } => unreachable!("returned above"),
    };
    tracing::info!(
        signal = kind,
        granted = applied.granted,
        changed = applied.changed,
        canceled = applied.canceled,
        "event applied"
    );
    Ok(json!({"signal": kind, "applied": applied}))
}

async fn profile<S: ProfileStore, D, E>(deps: &Deps<S, D, E>) -> Result<Option<&Profile>, SyncError> {
    if let Some(p) = deps.profile.get() {
        return Ok(Some(p));
    }
    match deps.store.get_profile().await? {
        Some(p) => Ok(Some(deps.profile.get_or_init(|| async { p }).await)),
        None => Ok(None),
    }
}
