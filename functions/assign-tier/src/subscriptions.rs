//! `/subscriptions`: the body and path in, [`kiro::app::subscriptions`] out.

use chrono::Utc;
use kiro::app::subscriptions::{self, Lookup, NewSubscription};
use kiro::domain::{Invalid, Principal, PrincipalType, Profile, Tier};
use kiro::error::AppError;
use kiro::http::{Reply, Request, excerpt};
use kiro::ports::{Directory, DirectorySearch, EventSink, SeatStore, SubscriptionStore};
use serde_json::{Map, Value};

use crate::Deps;
use crate::query::{Query, list_body};

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

/// A `POST /subscriptions` body, validated.
fn new_subscription(body: &Map<String, Value>) -> Result<NewSubscription, Invalid> {
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
        (None, Some(name)) if !name.trim().is_empty() && name.chars().count() <= 128 => Lookup::Name(name.to_owned()),
        (None, Some(_)) => return Err(Invalid::new(name_field, "must be 1 to 128 characters")),
        _ => {
            return Err(Invalid::new("principalId", format!("exactly one of principalId or {name_field} is required")));
        }
    };
    Ok(NewSubscription { principal_type, by, tier: tier_field(body)? })
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

pub async fn create<S, D, E>(deps: &Deps<S, D, E>, profile: &Profile, req: &Request) -> Result<Reply, AppError>
where
    S: SubscriptionStore + SeatStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let new = new_subscription(&req.json_object()?)?;
    let (ports, actor) = ((&deps.store, &deps.directory, &deps.events), req.actor());
    let created =
        subscriptions::create(ports.0, ports.1, ports.2, profile, new, &actor, Utc::now(), &mut deps.budget(req))
            .await?;
    // 202 while a group's fan-out goes on through the bus; 200 for a retry that found it done.
    let status = match (created.subscription.fan_out, created.new) {
        (Some(f), _) if !f.is_done() => 202,
        (_, true) => 201,
        (_, false) => 200,
    };
    Reply::json(status, &created.subscription)
}

pub async fn list<S: SubscriptionStore + SeatStore, D, E>(
    deps: &Deps<S, D, E>,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let page = subscriptions::list(&deps.store, q.principal_type()?, q.limit()?, q.next_token()).await?;
    Reply::json(200, &list_body(page.items, page.next_token))
}

pub async fn get<S: SubscriptionStore + SeatStore, D, E>(
    deps: &Deps<S, D, E>,
    kind: &str,
    id: &str,
) -> Result<Reply, AppError> {
    Reply::json(200, &subscriptions::get(&deps.store, &path_principal(kind, id)?).await?)
}

pub async fn update<S, D, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    req: &Request,
    kind: &str,
    id: &str,
) -> Result<Reply, AppError>
where
    S: SubscriptionStore + SeatStore,
    D: Directory,
    E: EventSink,
{
    let principal = path_principal(kind, id)?;
    let body = req.json_object()?;
    if let Some(k) = body.keys().find(|k| k.as_str() != "tier") {
        return Err(Invalid::new(k.as_str(), "cannot be changed; only 'tier' can").into());
    }
    let requested = tier_field(&body)?;
    let budget = &mut deps.budget(req);
    let (store, directory, events) = (&deps.store, &deps.directory, &deps.events);
    let sub =
        subscriptions::update(store, directory, events, profile, &principal, requested, &req.actor(), budget).await?;
    Reply::json(200, &sub)
}

pub async fn delete<S, D, E>(deps: &Deps<S, D, E>, _profile: &Profile, kind: &str, id: &str) -> Result<Reply, AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    subscriptions::delete(&deps.store, &deps.events, &path_principal(kind, id)?).await?;
    Ok(Reply::no_content())
}
