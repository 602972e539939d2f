//! `/subscriptions`: create, read, re-tier and remove subscriptions, and move the seats they grant.

use chrono::Utc;
use kiro::app::seats::{self, ServiceError, UserChange};
use kiro::domain::subscription::tier_change;
use kiro::domain::{
    CancelReason, Invalid, Principal, PrincipalType, Profile, SeatChange, SourceKey, SourceOp, Subscription, Tier,
    TierChange, UserId,
};
use kiro::error::AppError;
use kiro::http::{Reply, Request, excerpt};
use kiro::ports::{Directory, DirectorySearch, EventSink, ProfileStore, SeatStore, StoreError, SubscriptionStore};
use serde_json::{Map, Value};

use crate::Deps;
use crate::query::{Query, list_body};

/// A validated `POST /subscriptions` body.
struct NewSubscription {
    principal_type: PrincipalType,
    by: Lookup,
    tier: Tier,
}

enum Lookup {
    Id(Principal),
    Name(String),
}

fn str_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Invalid> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid::new(field, "must be a string")),
    }
}

fn tier_field(body: &Map<String, Value>) -> Result<Tier, Invalid> {
    let raw = str_field(body, "tier")?.ok_or_else(|| Invalid::missing("tier"))?;
    raw.parse().map_err(|_| Invalid::new("tier", "must be one of PRO, PRO_PLUS, POWER"))
}

impl NewSubscription {
    fn from_json(body: &Map<String, Value>) -> Result<Self, Invalid> {
        let known = ["principalType", "principalId", "userName", "displayName", "tier"];
        if let Some(k) = body.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Invalid::new(k.as_str(), "is not a known field"));
        }
        let raw_type = str_field(body, "principalType")?.ok_or_else(|| Invalid::missing("principalType"))?;
        let principal_type = PrincipalType::parse("principalType", raw_type)?;
        let (name_field, wrong_name_field) = match principal_type {
            PrincipalType::User => ("userName", "displayName"),
            PrincipalType::Group => ("displayName", "userName"),
        };
        if body.get(wrong_name_field).is_some() {
            return Err(Invalid::new(
                wrong_name_field,
                format!("is not used for {raw_type}; use {name_field} or principalId"),
            ));
        }
        let id = str_field(body, "principalId")?;
        let name = str_field(body, name_field)?;
        let by = match (id, name) {
            (Some(id), None) => Lookup::Id(Principal::parse(principal_type, "principalId", id)?),
            (None, Some(name)) if !name.trim().is_empty() && name.chars().count() <= 128 => {
                Lookup::Name(name.to_owned())
            }
            (None, Some(_)) => return Err(Invalid::new(name_field, "must be 1 to 128 characters")),
            _ => {
                return Err(Invalid::new(
                    "principalId",
                    format!("exactly one of principalId or {name_field} is required"),
                ));
            }
        };
        Ok(Self { principal_type, by, tier: tier_field(body)? })
    }
}

/// A principal from the path, or `NotFound` saying what the path takes: a malformed type or id
/// names no subscription (the most common slip: a name where the id goes, which POST accepts).
fn path_principal(kind: &str, id: &str) -> Result<Principal, AppError> {
    let Ok(principal_type) = PrincipalType::parse("principalType", kind) else {
        return Err(AppError::NotFound(format!(
            "no subscription for {} {}: the principal type in the path is USER or GROUP, in capitals",
            excerpt(kind),
            excerpt(id)
        )));
    };
    Principal::parse(principal_type, "principalId", id).map_err(|_| {
        let name = match principal_type {
            PrincipalType::User => "userName",
            PrincipalType::Group => "displayName",
        };
        AppError::NotFound(format!(
            "no subscription for {} {}: the path takes the Identity Store id, not the {name} \
             (GET /subscriptions lists them with their ids)",
            principal_type.as_str(),
            excerpt(id)
        ))
    })
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

/// Fills `seats` for a page of subscriptions: one `BatchGetItem` for all the direct ones (does
/// the user's seat hold its direct source?) and a count of grants per group.
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
    for sub in &mut subs {
        sub.seats = match &sub.principal {
            Principal::Group(g) => store.count_granted(g).await?,
            Principal::User(u) => u64::from(direct.contains(u)),
        };
    }
    Ok(subs)
}

pub async fn create<S, D, E>(deps: &Deps<S, D, E>, profile: &Profile, req: &Request) -> Result<Reply, AppError>
where
    S: ProfileStore + SubscriptionStore + SeatStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let new = NewSubscription::from_json(&req.json_object()?)?;
    let (principal, display_name, user_name) = resolve(&deps.directory, profile, new.principal_type, new.by).await?;
    let now = Utc::now();
    let sub = Subscription::new(principal.clone(), display_name, new.tier, &req.actor(), now);
    match deps.store.create_subscription(&sub).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::SubscriptionExists(format!(
                "{} {} already has a subscription; change its tier with PUT /subscriptions/{}/{}",
                principal.principal_type().as_str(),
                principal.id(),
                principal.principal_type().as_str(),
                principal.id()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let applied = match &principal {
        Principal::User(u) => {
            let mut change = UserChange::new(
                u.clone(),
                SeatChange::one(SourceOp::Set(principal.source_key(), new.tier), CancelReason::Unsubscribed),
            );
            change.user_name = user_name;
            seats::apply_changes(&deps.store, &deps.events, vec![change], now).await?
        }
        Principal::Group(g) => {
            seats::grant_group_members(
                &deps.store,
                &deps.directory,
                &deps.events,
                &profile.identity_store_id,
                g,
                new.tier,
                now,
            )
            .await?
        }
    };
    tracing::info!(principal_type = principal.principal_type().as_str(), principal_id = principal.id(), tier = %new.tier, granted = applied.granted, changed = applied.changed, "subscription created");
    Reply::json(201, &with_seats(&deps.store, sub).await?)
}

pub async fn list<S: SubscriptionStore + SeatStore, D, E>(
    deps: &Deps<S, D, E>,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let page = deps.store.list_subscriptions(q.principal_type()?, q.limit()?, q.next_token()).await?;
    let items = counted(&deps.store, page.items).await?;
    Reply::json(200, &list_body(items, page.next_token))
}

pub async fn get<S: SubscriptionStore + SeatStore, D, E>(
    deps: &Deps<S, D, E>,
    kind: &str,
    id: &str,
) -> Result<Reply, AppError> {
    let principal = path_principal(kind, id)?;
    let sub = deps.store.get_subscription(&principal).await?.ok_or_else(|| no_subscription(&principal))?;
    Reply::json(200, &with_seats(&deps.store, sub).await?)
}

fn no_subscription(p: &Principal) -> AppError {
    AppError::NotFound(format!("no subscription for {} {}", p.principal_type().as_str(), p.id()))
}

pub async fn update<S, D, E>(
    deps: &Deps<S, D, E>,
    _profile: &Profile,
    req: &Request,
    kind: &str,
    id: &str,
) -> Result<Reply, AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    let principal = path_principal(kind, id)?;
    let body = req.json_object()?;
    if let Some(k) = body.keys().find(|k| k.as_str() != "tier") {
        return Err(Invalid::new(k.as_str(), "cannot be changed; only 'tier' can").into());
    }
    let requested = tier_field(&body)?;
    // The tier guard makes a concurrent change lose cleanly; re-read and decide again.
    for _ in 0..5 {
        let current = deps.store.get_subscription(&principal).await?.ok_or_else(|| no_subscription(&principal))?;
        let now = Utc::now();
        let mut next = Subscription { updated_at: now, updated_by: req.actor(), ..current.clone() };
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
        match deps.store.update_subscription(&next, current.tier).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        if let TierChange::Upgrade { to } = change {
            retier(deps, &principal, to, now).await?;
        }
        return Reply::json(200, &with_seats(&deps.store, next).await?);
    }
    Err(AppError::internal("the subscription kept changing concurrently; retry"))
}

/// Moves every seat the subscription is a source of to its new tier.
async fn retier<S: SubscriptionStore + SeatStore, D, E: EventSink>(
    deps: &Deps<S, D, E>,
    principal: &Principal,
    tier: Tier,
    now: chrono::DateTime<Utc>,
) -> Result<(), ServiceError> {
    let op = SourceOp::Set(principal.source_key(), tier);
    match principal {
        Principal::User(u) => {
            seats::apply_changes(
                &deps.store,
                &deps.events,
                vec![UserChange::new(u.clone(), SeatChange::one(op, CancelReason::Unsubscribed))],
                now,
            )
            .await?
        }
        Principal::Group(g) => {
            seats::change_group_grants(&deps.store, &deps.events, g, op, CancelReason::Unsubscribed, now).await?
        }
    };
    Ok(())
}

pub async fn delete<S, D, E>(deps: &Deps<S, D, E>, _profile: &Profile, kind: &str, id: &str) -> Result<Reply, AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    let principal = path_principal(kind, id)?;
    deps.store.delete_subscription(&principal).await?.ok_or_else(|| no_subscription(&principal))?;
    let now = Utc::now();
    let op = SourceOp::Unsubscribed(principal.source_key());
    let applied = match &principal {
        Principal::User(u) => {
            seats::apply_changes(
                &deps.store,
                &deps.events,
                vec![UserChange::new(u.clone(), SeatChange::one(op, CancelReason::Unsubscribed))],
                now,
            )
            .await?
        }
        Principal::Group(g) => {
            seats::change_group_grants(&deps.store, &deps.events, g, op, CancelReason::Unsubscribed, now).await?
        }
    };
    tracing::info!(
        principal_type = principal.principal_type().as_str(),
        principal_id = principal.id(),
        canceled = applied.canceled,
        changed = applied.changed,
        "subscription deleted"
    );
    Ok(Reply::no_content())
}
