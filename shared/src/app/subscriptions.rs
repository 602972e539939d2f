//! Subscriptions: create, read, re-tier and remove them, and move the seats they grant.

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};

use crate::app::budget::Budget;
use crate::app::fanout::{self, Resume};
use crate::app::seats::{self, Applied, ServiceError, UserChange};
use crate::domain::subscription::tier_change;
use crate::domain::{
    CancelReason, Principal, PrincipalType, Profile, SeatChange, SourceKey, SourceOp, Subscription, Tier, TierChange,
    UserId,
};
use crate::error::AppError;
use crate::ports::{Directory, DirectorySearch, EventSink, Page, SeatStore, StoreError, SubscriptionStore};

/// How a new subscription names its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(Principal),
    /// A user's `userName` or a group's `displayName`, resolved in the Identity Store.
    Name(String),
}

/// A new subscription, as an admin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub principal_type: PrincipalType,
    pub by: Lookup,
    pub tier: Tier,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// With its seat count, and for a group its fan-out: `IN_PROGRESS` when the fan-out goes on
    /// through the bus after this call.
    pub subscription: Subscription,
    /// False for a retry: the principal already had this subscription, at this tier.
    pub new: bool,
}

/// Subscribes the principal and grants the seats it implies: the user's, or every current
/// member's of the group, as far as `budget` allows (the rest continues through the bus).
/// The same principal and tier again is a retry: it completes whatever the first call left
/// undone. `SubscriptionExists` when the principal has a subscription at another tier.
#[allow(clippy::too_many_arguments)] // the ports, the request, who and when, the time it has
pub async fn create<S, D, E>(
    store: &S,
    directory: &D,
    sink: &E,
    profile: &Profile,
    new: NewSubscription,
    actor: &str,
    now: DateTime<Utc>,
    budget: &mut Budget,
) -> Result<Created, AppError>
where
    S: SubscriptionStore + SeatStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let (principal, display_name, user_name) = resolve(directory, profile, new.principal_type, new.by).await?;
    let mut sub = Subscription::new(principal.clone(), display_name, new.tier, actor, now);
    let is_new = match store.create_subscription(&sub).await {
        Ok(()) => true,
        Err(StoreError::Conflict(_)) => match store.get_subscription(&principal).await? {
            Some(existing) if existing.tier == new.tier => {
                sub = existing;
                false
            }
            _ => {
                return Err(AppError::SubscriptionExists(format!(
                    "{} {} already has a subscription at another tier; change its tier with PUT /subscriptions/{}/{}",
                    principal.principal_type().as_str(),
                    principal.id(),
                    principal.principal_type().as_str(),
                    principal.id()
                )));
            }
        },
        Err(e) => return Err(e.into()),
    };
    let applied = match &principal {
        Principal::User(u) => {
            let mut change = UserChange::new(
                u.clone(),
                SeatChange::one(SourceOp::Set(principal.source_key(), new.tier), CancelReason::Unsubscribed),
            );
            change.user_name = user_name;
            seats::apply_changes(store, sink, vec![change], now).await?
        }
        Principal::Group(g) => {
            complete_fan_out(store, directory, sink, &profile.identity_store_id, &mut sub, g, budget, now).await?
        }
    };
    tracing::info!(principal_type = principal.principal_type().as_str(), principal_id = principal.id(), tier = %new.tier, new = is_new, granted = applied.granted, changed = applied.changed, "subscription created");
    Ok(Created { subscription: with_seats(store, sub).await?, new: is_new })
}

/// Runs the group's fan-out from its first page unless it is done (a group subscribed before
/// fan-outs were tracked counts as done), and records where it stands on `sub`.
#[allow(clippy::too_many_arguments)]
async fn complete_fan_out<S, D, E>(
    store: &S,
    directory: &D,
    sink: &E,
    identity_store: &crate::domain::IdentityStoreId,
    sub: &mut Subscription,
    group: &crate::domain::GroupId,
    budget: &mut Budget,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError>
where
    S: SubscriptionStore + SeatStore,
    D: Directory,
    E: EventSink,
{
    if sub.fan_out.is_none_or(|f| f.is_done()) {
        return Ok(Applied::default());
    }
    let outcome =
        fanout::run(store, directory, sink, identity_store, group, sub.tier, Resume::default(), budget, now).await?;
    sub.fan_out = Some(outcome.fan_out);
    Ok(outcome.applied)
}

/// A page of subscriptions, each with its seat count.
pub async fn list<S: SubscriptionStore + SeatStore>(
    store: &S,
    principal_type: Option<PrincipalType>,
    limit: usize,
    next_token: Option<String>,
) -> Result<Page<Subscription>, AppError> {
    let page = store.list_subscriptions(principal_type, limit, next_token).await?;
    Ok(Page { items: counted(store, page.items).await?, next_token: page.next_token })
}

/// One subscription with its seat count, or `NotFound`.
pub async fn get<S: SubscriptionStore + SeatStore>(store: &S, principal: &Principal) -> Result<Subscription, AppError> {
    let sub = store.get_subscription(principal).await?.ok_or_else(|| no_subscription(principal))?;
    Ok(with_seats(store, sub).await?)
}

fn no_subscription(p: &Principal) -> AppError {
    AppError::NotFound(format!("no subscription for {} {}", p.principal_type().as_str(), p.id()))
}

/// Moves the subscription to `requested`: an upgrade at once (every seat it is a source of), a
/// downgrade pending until the first of next month, the current tier clears a pending one and
/// completes a group's fan-out that was cut short.
#[allow(clippy::too_many_arguments)] // the ports, the request, who, the time it has
pub async fn update<S, D, E>(
    store: &S,
    directory: &D,
    sink: &E,
    profile: &Profile,
    principal: &Principal,
    requested: Tier,
    actor: &str,
    budget: &mut Budget,
) -> Result<Subscription, AppError>
where
    S: SubscriptionStore + SeatStore,
    D: Directory,
    E: EventSink,
{
    // The tier guard makes a concurrent change lose cleanly; re-read and decide again.
    for _ in 0..5 {
        let current = store.get_subscription(principal).await?.ok_or_else(|| no_subscription(principal))?;
        let now = Utc::now();
        let mut next = Subscription { updated_at: now, updated_by: actor.to_owned(), ..current.clone() };
        let change = tier_change(current.tier, requested, now);
        match change {
            TierChange::Upgrade { to } => {
                next.tier = to;
                next.pending_tier = None;
                next.pending_tier_effective_at = None;
            }
            TierChange::ScheduleDowngrade { to, effective_at } => {
                next.pending_tier = Some(to);
                next.pending_tier_effective_at = Some(effective_at);
            }
            TierChange::KeepCurrent => {
                next.pending_tier = None;
                next.pending_tier_effective_at = None;
            }
        }
        match store.update_subscription(&next, current.tier).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        match (change, principal) {
            (TierChange::Upgrade { to }, _) => {
                apply_to_seats(store, sink, principal, SourceOp::Set(principal.source_key(), to), now).await?;
            }
            (TierChange::KeepCurrent, Principal::Group(g)) => {
                complete_fan_out(store, directory, sink, &profile.identity_store_id, &mut next, g, budget, now).await?;
            }
            _ => {}
        }
        return Ok(with_seats(store, next).await?);
    }
    Err(AppError::internal("the subscription kept changing concurrently; retry"))
}

/// Applies `op` (the subscription's source) to every seat the subscription is a source of: the
/// user's, or each one the group grants.
async fn apply_to_seats<S: SubscriptionStore + SeatStore, E: EventSink>(
    store: &S,
    sink: &E,
    principal: &Principal,
    op: SourceOp,
    now: DateTime<Utc>,
) -> Result<Applied, ServiceError> {
    match principal {
        Principal::User(u) => {
            let change = UserChange::new(u.clone(), SeatChange::one(op, CancelReason::Unsubscribed));
            seats::apply_changes(store, sink, vec![change], now).await
        }
        Principal::Group(g) => seats::change_group_grants(store, sink, g, op, CancelReason::Unsubscribed, now).await,
    }
}

/// Removes the subscription; seats that lose their last source are canceled (`UNSUBSCRIBED`).
///
/// The clean-up is driven by the seats that still hold the source, not by the subscription: a
/// DELETE cut short after the subscription went (a timeout, throttling, a crash) is finished by
/// its retry, which finds the rest of the seats still holding it. `NotFound` once nothing is left.
pub async fn delete<S, E>(store: &S, sink: &E, principal: &Principal) -> Result<(), AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    let removed = store.delete_subscription(principal).await?;
    let now = Utc::now();
    let applied = apply_to_seats(store, sink, principal, SourceOp::Unsubscribed(principal.source_key()), now).await?;
    if removed.is_none() && applied.events() + applied.updated == 0 {
        return Err(no_subscription(principal));
    }
    tracing::info!(
        principal_type = principal.principal_type().as_str(),
        principal_id = principal.id(),
        canceled = applied.canceled,
        changed = applied.changed,
        "subscription deleted"
    );
    Ok(())
}

/// The principal and its display name, as the profile's Identity Store knows them.
async fn resolve<D: Directory + DirectorySearch>(
    directory: &D,
    profile: &Profile,
    principal_type: PrincipalType,
    by: Lookup,
) -> Result<(Principal, String, Option<String>), AppError> {
    let store = &profile.identity_store_id;
    let missing = |what: &str| AppError::PrincipalNotFound(format!("identity store {store} has no {what}"));
    let principal = match by {
        Lookup::Id(p) => p,
        Lookup::Name(name) => match principal_type {
            PrincipalType::User => Principal::User(
                directory.user_id_by_name(store, &name).await?.ok_or_else(|| missing("user with that userName"))?,
            ),
            PrincipalType::Group => Principal::Group(
                directory
                    .group_id_by_name(store, &name)
                    .await?
                    .ok_or_else(|| missing("group with that displayName"))?,
            ),
        },
    };
    match &principal {
        Principal::User(u) => {
            let user = directory.describe_user(store, u).await?.ok_or_else(|| missing(&format!("user {u}")))?;
            let display = if user.display_name.is_empty() { user.user_name.clone() } else { user.display_name };
            Ok((principal, display, Some(user.user_name)))
        }
        Principal::Group(g) => {
            let group = directory.describe_group(store, g).await?.ok_or_else(|| missing(&format!("group {g}")))?;
            Ok((principal, group.display_name, None))
        }
    }
}

/// How many seats the subscription is a source of.
async fn with_seats<S: SubscriptionStore + SeatStore>(
    store: &S,
    sub: Subscription,
) -> Result<Subscription, ServiceError> {
    Ok(counted(store, vec![sub]).await?.remove(0))
}

/// Groups whose grant counters a page reads at once: a page of 100 groups (`GET
/// /subscriptions`, the console's Groups, every group of `GET /usage`) takes about 13 round
/// trips instead of 100.
const COUNTERS_AT_ONCE: usize = 8;

/// Fills `seats` for a page of subscriptions: one `BatchGetItem` for all the direct ones (does
/// the user's seat hold its direct source?) and a count of grants per group, [`COUNTERS_AT_ONCE`]
/// groups at a time.
async fn counted<S: SubscriptionStore + SeatStore>(
    store: &S,
    mut subs: Vec<Subscription>,
) -> Result<Vec<Subscription>, ServiceError> {
    let users: Vec<UserId> = subs
        .iter()
        .filter_map(|s| match &s.principal {
            Principal::User(u) => Some(u.clone()),
            Principal::Group(_) => None,
        })
        .collect();
    let direct: std::collections::HashSet<UserId> = if users.is_empty() {
        Default::default()
    } else {
        let seats = store.get_seats(&users).await?;
        seats.into_iter().filter(|s| s.sources.contains_key(&SourceKey::Direct)).map(|s| s.user_id).collect()
    };
    // The futures are made first (none runs until polled): a closure borrowing its argument
    // inside the stream fails the `Send` future's higher-ranked lifetime check. `buffered`
    // answers in the order asked.
    let direct = &direct;
    let counts: Vec<_> = subs
        .iter()
        .map(|sub| {
            let principal = sub.principal.clone();
            async move {
                match principal {
                    Principal::Group(g) => store.count_granted(&g).await,
                    Principal::User(u) => Ok::<_, StoreError>(u64::from(direct.contains(&u))),
                }
            }
        })
        .collect();
    let counts: Vec<u64> = futures_util::stream::iter(counts).buffered(COUNTERS_AT_ONCE).try_collect().await?;
    for (sub, seats) in subs.iter_mut().zip(counts) {
        sub.seats = seats;
    }
    Ok(subs)
}
