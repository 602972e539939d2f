//! The console's changes: each a POST that has passed the session, role and CSRF checks, calling
//! the same use cases as the JSON API, then `303 See Other` to the page that shows its outcome.

use chrono::Utc;
use kiro::app::budget::Budget;
use kiro::app::profile::{self as profiles, Placement};
use kiro::app::subscriptions::{self, Lookup, NewSubscription};
use kiro::domain::audit::AuditMode;
use kiro::domain::session::Session;
use kiro::domain::{Invalid, NewProfile, Principal, PrincipalType, Profile, ProfilePatch, Tier, TierChange};
use kiro::error::AppError;
use kiro::http::{Params, Request};
use kiro::ports::{ApiStore, Directory, DirectorySearch, EventSink, Instances, ProfileAdmin};
use serde_json::{Map, Value};

use crate::Deps;
use crate::form::Form;
use crate::web::{Reply, plain_message};

fn text_fields(form: &Form, names: &[&str]) -> Map<String, Value> {
    names.iter().filter_map(|n| form.get(n).map(|v| ((*n).to_owned(), Value::String(v.trim().to_owned())))).collect()
}

fn tier(form: &Form) -> Result<Tier, AppError> {
    let raw = form.get("tier").ok_or_else(|| Invalid::missing("tier"))?;
    Ok(raw.parse().map_err(|_| Invalid::new("tier", "must be Pro, Pro+ or Power"))?)
}

/// Create Kiro profile → Enable: binds one of the account's IAM Identity Center instances.
pub async fn create_profile<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    session: &Session,
    form: &Form,
) -> Result<Reply, AppError>
where
    // What creating the profile touches: the table's profile and the account's instances.
    S: ProfileAdmin,
    I: Instances,
{
    let chosen = form.get("identityStoreId").unwrap_or_default();
    let instances = deps.instances.list_instances().await?;
    // Picked, not typed: only a store of one of the account's instances is accepted.
    if !instances.iter().any(|i| i.identity_store_id.as_str() == chosen) {
        return Err(Invalid::new(
            "identityStoreId",
            "must be the store of one of this account's IAM Identity Center instances",
        )
        .into());
    }
    let mut body = text_fields(form, &["name", "description", "identityStoreId"]);
    if body.get("description").is_some_and(|d| d.as_str() == Some("")) {
        body.remove("description");
    }
    let placement = Placement { region: deps.region.clone(), supported_regions: deps.supported_regions.clone() };
    profiles::create(&deps.store, &placement, NewProfile::from_json(&body)?, &session.actor(), Utc::now()).await?;
    Ok(Reply::see_other("/console?done=profile"))
}

/// Settings → Save.
pub async fn save_settings<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    session: &Session,
    form: &Form,
) -> Result<Reply, AppError>
where
    S: ApiStore + ProfileAdmin,
{
    let patch = ProfilePatch::from_json(&text_fields(form, &["name", "description"]))?;
    profiles::update(&deps.store, &patch, &session.actor(), Utc::now()).await?;
    Ok(Reply::see_other("/console/settings?done=saved"))
}

/// Add user / Add group → Assign: every principal picked, at the chosen tier. Each is its own
/// subscription: one that fails leaves the others done, and the page says which is which.
pub async fn assign<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    session: &Session,
    profile: &Profile,
    form: &Form,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let kind = PrincipalType::parse("principalType", form.get("principalType").unwrap_or_default())?;
    let tier = tier(form)?;
    let mut ids = form.all("principalId");
    ids.dedup();
    if ids.is_empty() {
        return Err(AppError::BadRequest(format!(
            "Pick at least one {} before Assign.",
            if kind == PrincipalType::User { "user" } else { "group" }
        )));
    }
    if ids.len() > 50 {
        return Err(AppError::BadRequest("Pick at most 50 at a time.".into()));
    }
    let mut budget = Budget::until_deadline_ms(req.deadline_ms);
    let (mut done, mut later, mut failed) = (vec![], 0, vec![]);
    for id in ids {
        let new =
            NewSubscription { principal_type: kind, by: Lookup::Id(Principal::parse(kind, "principalId", id)?), tier };
        match subscriptions::create(
            &deps.store,
            &deps.directory,
            &deps.events,
            profile,
            new,
            &session.actor(),
            Utc::now(),
            &mut budget,
        )
        .await
        {
            Ok(created) => {
                if created.subscription.fan_out.is_some_and(|f| !f.is_done()) {
                    later += 1;
                }
                done.push(created.subscription.display_name);
            }
            Err(e) => failed.push((id.to_owned(), e)),
        }
    }
    let tab = if kind == PrincipalType::User { "/console/users" } else { "/console/groups" };
    if failed.is_empty() {
        let code = if later > 0 { "assigned-later" } else { "assigned" };
        return Ok(Reply::see_other(format!("{tab}?done={code}:{}", done.len())));
    }
    // Some failed: say what was done and what was not, in plain words.
    let mut message = String::new();
    if !done.is_empty() {
        message.push_str(&format!("Subscribed {}. ", done.join(", ")));
    }
    let (_, first) = &failed[0];
    message.push_str(&format!(
        "{} could not be subscribed: {}",
        if failed.len() == 1 { "One".to_owned() } else { failed.len().to_string() },
        plain_message(first)
    ));
    let status = first.status();
    Err(match status {
        404 => AppError::PrincipalNotFound(message),
        409 => AppError::SubscriptionExists(message),
        _ => AppError::BadRequest(message),
    })
}

fn path_principal(params: &Params) -> Result<Principal, AppError> {
    let kind = PrincipalType::parse("principalType", params.get("principalType")?)?;
    Ok(Principal::parse(kind, "principalId", params.get("principalId")?)?)
}

fn tab_of(p: &Principal) -> &'static str {
    match p {
        Principal::User(_) => "/console/users",
        Principal::Group(_) => "/console/groups",
    }
}

/// Change plan → Continue.
pub async fn change_plan<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    session: &Session,
    profile: &Profile,
    form: &Form,
    params: &Params,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
    E: EventSink,
{
    let principal = path_principal(params)?;
    let requested = tier(form)?;
    let before = subscriptions::get(&deps.store, &principal).await?;
    let mut budget = Budget::until_deadline_ms(req.deadline_ms);
    subscriptions::update(
        &deps.store,
        &deps.directory,
        &deps.events,
        profile,
        &principal,
        requested,
        &session.actor(),
        &mut budget,
    )
    .await?;
    let code = match kiro::domain::subscription::tier_change(before.tier, requested, Utc::now()) {
        TierChange::Upgrade { .. } => "upgraded",
        TierChange::ScheduleDowngrade { .. } => "downgrade",
        TierChange::KeepCurrent => "kept",
    };
    Ok(Reply::see_other(format!("{}?done={code}", tab_of(&principal))))
}

/// Deactivate plan → Unsubscribe.
pub async fn deactivate<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    session: &Session,
    params: &Params,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    E: EventSink,
{
    let principal = path_principal(params)?;
    subscriptions::delete(&deps.store, &deps.events, &principal).await?;
    tracing::info!(actor_kind = "console", principal_type = principal.principal_type().as_str(), "unsubscribed");
    let _ = session;
    Ok(Reply::see_other(format!("{}?done=unsubscribed", tab_of(&principal))))
}

/// Run audit: requested as `POST /audits` does.
pub async fn run_audit<S, D, E: EventSink, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    session: &Session,
    form: &Form,
) -> Result<Reply, AppError> {
    let mode =
        form.get("mode").and_then(AuditMode::parse).ok_or_else(|| Invalid::new("mode", "must be report or repair"))?;
    kiro::app::audit::request(&deps.events, mode, false, &session.actor()).await?;
    Ok(Reply::see_other("/console/audits?done=audit"))
}
