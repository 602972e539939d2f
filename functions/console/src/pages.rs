//! The console's dispatch (who may see what) and its pages.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use kiro::app::directory::{self, Listing};
use kiro::app::{queries, subscriptions};
use kiro::domain::seat::SourceKey;
use kiro::domain::session::Session;
use kiro::domain::{Principal, PrincipalType, Profile, Seat, SeatStatus, Subscription, Tier, UserId};
use kiro::error::AppError;
use kiro::http::{Params, Request};
use kiro::ports::{
    ApiStore, Directory, DirectorySearch, EventSink, Exports, Instances, MemberGroups, ProfileAdmin, SeatFilter,
    SessionStore,
};

use crate::dashboard::{self, Counts, Dashboard, Reclaim};
use crate::fetch::Fetch;
use crate::form::{Form, query};
use crate::members::{self, Dialog, Filters, Pick, SeatRow, SourceRow, Sub};
use crate::views::{self, InstanceChoice, Viewer};
use crate::web::Reply;
use crate::{Deps, Endpoint, actions, assets, auth, export};

/// Rows per page of the Users and Groups tables.
pub const PAGE: usize = 50;
/// The most seats the Dashboard reads for its figures (pages of 100).
const DASHBOARD_SEATS: usize = 5_000;
/// A seat unused this long is one to reclaim.
const RECLAIM_AFTER_DAYS: i64 = 30;

pub async fn serve<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    endpoint: Endpoint,
    params: Params,
) -> Result<Reply, AppError>
where
    S: ApiStore + ProfileAdmin + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
    X: Exports,
{
    match endpoint {
        Endpoint::Asset => {
            return Ok(assets::serve(&req.path())
                .unwrap_or_else(|| Reply::text(404, "text/plain; charset=utf-8", "no such asset".into())));
        }
        Endpoint::SignIn => return auth::start(deps, req).await,
        Endpoint::Callback => return auth::callback(deps, req).await,
        _ => {}
    }
    let change = req.method == "POST";
    let form = if change { Form::of(req)? } else { Form::default() };
    let Some(session) = auth::session(deps, req, change).await? else {
        if change || endpoint.is_json() || endpoint == Endpoint::UsersCsv {
            return Err(AppError::Forbidden("Sign in to the console first.".into()));
        }
        let message = query(req, "signedOut").map(|_| "You are signed out.");
        return Ok(Reply::html(200, views::sign_in(message)));
    };
    if change {
        auth::authorize_change(&session, &form, req, endpoint != Endpoint::SignOut)?;
    }
    let viewer = Viewer { user_name: &session.user_name, role: session.role, csrf: &session.csrf };
    match endpoint {
        Endpoint::SignOut => auth::sign_out(deps, &session).await,
        Endpoint::CreateProfile => actions::create_profile(deps, &session, &form).await,
        _ => {
            let Some(profile) = deps.profile().await? else {
                if change || endpoint != Endpoint::Dashboard {
                    return Ok(Reply::see_other("/console"));
                }
                return no_profile(deps, req, &viewer).await;
            };
            with_profile(deps, req, endpoint, params, &session, &viewer, &profile, &form).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn with_profile<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    endpoint: Endpoint,
    params: Params,
    session: &Session,
    viewer: &Viewer<'_>,
    profile: &Profile,
    form: &Form,
) -> Result<Reply, AppError>
where
    S: ApiStore + ProfileAdmin + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
    X: Exports,
{
    let notice = query(req, "done").and_then(notice_text);
    let notice = notice.as_deref();
    match endpoint {
        Endpoint::Dashboard => dashboard_page(deps, viewer, profile, notice).await,
        Endpoint::Users => users_page(deps, req, viewer, profile, notice).await,
        Endpoint::Groups => groups_page(deps, req, viewer, profile, notice).await,
        Endpoint::UsersCsv => export::seats_csv(deps, req, profile).await,
        Endpoint::Audits => {
            let page = queries::audits(&deps.store, PAGE, query(req, "nextToken").map(str::to_owned)).await?;
            Ok(Reply::html(200, views::audits(viewer, &page.items, page.next_token.as_deref(), notice)))
        }
        Endpoint::Settings => Ok(Reply::html(200, views::settings(viewer, profile, notice))),
        Endpoint::SearchUsers | Endpoint::SearchGroups => search(deps, req, profile, endpoint).await,
        Endpoint::RunAudit => actions::run_audit(deps, session, form).await,
        Endpoint::SaveSettings => actions::save_settings(deps, session, form).await,
        Endpoint::Assign => actions::assign(deps, req, session, profile, form).await,
        Endpoint::ChangePlan => actions::change_plan(deps, req, session, profile, form, &params).await,
        Endpoint::Deactivate => actions::deactivate(deps, session, &params).await,
        Endpoint::SignIn | Endpoint::Callback | Endpoint::SignOut | Endpoint::CreateProfile | Endpoint::Asset => {
            Err(AppError::internal("routed above"))
        }
    }
}

/// What a `done=` code after a change says.
fn notice_text(code: &str) -> Option<String> {
    let (what, n) = code.split_once(':').unwrap_or((code, "1"));
    let n: u64 = n.parse().ok()?;
    let plural = |one: &str, many: &str| if n == 1 { one.to_owned() } else { format!("{n} {many}") };
    Some(match what {
        "profile" => "Kiro is enabled: the profile was created.".into(),
        "saved" => "Settings saved.".into(),
        "assigned" => format!("Subscribed {}.", plural("1 principal", "principals")),
        "assigned-later" => format!(
            "Subscribed {}; the group's seats are still being granted and appear within minutes.",
            plural("1 principal", "principals")
        ),
        "upgraded" => "Plan upgraded: it takes effect now.".into(),
        "downgrade" => "Downgrade scheduled for the first of next month; until then the tier is unchanged.".into(),
        "kept" => "Plan unchanged (any pending downgrade was canceled).".into(),
        "unsubscribed" => "Plan deactivated: seats without another source are canceled.".into(),
        "audit" => "Audit requested. Its report appears here within a minute; reload to see it.".into(),
        _ => return None,
    })
}

async fn no_profile<S, D, E, I: Instances, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    viewer: &Viewer<'_>,
) -> Result<Reply, AppError> {
    let open = query(req, "signup").is_some() && viewer.can_change();
    let instances = if open { deps.instances.list_instances().await? } else { vec![] };
    let choices: Vec<InstanceChoice> = instances
        .into_iter()
        .map(|i| InstanceChoice {
            label: format!(
                "{} ({})",
                i.name.unwrap_or_else(|| "IAM Identity Center".into()),
                i.identity_store_id.as_str()
            ),
            identity_store_id: i.identity_store_id.as_str().to_owned(),
        })
        .collect();
    Ok(Reply::html(200, views::no_profile(viewer, open, &deps.region, &choices)))
}

// ------------------------------------------------------------------------------ subscriptions

pub fn sub_view(s: &Subscription) -> Sub {
    Sub {
        kind: s.principal.principal_type(),
        id: s.principal.id().to_owned(),
        name: s.display_name.clone(),
        tier: s.tier,
        pending: s.pending_tier.zip(s.pending_tier_effective_at),
        seats: s.seats,
        fan_out_in_progress: s.fan_out.filter(|f| !f.is_done()).map(|f| f.granted),
        created_at: s.created_at,
    }
}

/// Every group subscription's display name, by group id (all pages).
async fn group_names<S: ApiStore>(store: &S) -> Result<HashMap<String, Sub>, AppError> {
    let mut names = HashMap::new();
    let mut token = None;
    loop {
        let page = store.list_subscriptions(Some(PrincipalType::Group), 100, token).await?;
        for s in &page.items {
            names.insert(s.principal.id().to_owned(), sub_view(s));
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// `TYPE:id` from a dialog parameter, as the subscription it names.
async fn named_sub<S: ApiStore>(store: &S, raw: &str) -> Result<Sub, AppError> {
    let principal = principal_of(raw)?;
    Ok(sub_view(&subscriptions::get(store, &principal).await?))
}

pub fn principal_of(raw: &str) -> Result<Principal, AppError> {
    let (kind, id) =
        raw.split_once(':').ok_or_else(|| AppError::BadRequest("that link names no subscription".into()))?;
    let kind = PrincipalType::parse("principalType", kind)?;
    Ok(Principal::parse(kind, "principalId", id)?)
}

// ------------------------------------------------------------------------------ users & groups

pub fn filters_of(req: &Request) -> Result<Filters, AppError> {
    let tier = query(req, "tier")
        .map(|t| t.parse::<Tier>().map_err(|_| AppError::BadRequest("unknown tier".into())))
        .transpose()?;
    let status = query(req, "status")
        .map(|s| SeatStatus::parse(s).ok_or_else(|| AppError::BadRequest("unknown status".into())))
        .transpose()?;
    Ok(Filters { q: query(req, "q").unwrap_or_default().chars().take(128).collect(), tier, status })
}

/// The seats the Users table shows: a page of the table, or the matches of a name search.
pub async fn filtered_seats<S, D>(
    store: &S,
    directory: &D,
    profile: &Profile,
    f: &Filters,
    limit: usize,
    token: Option<String>,
) -> Result<(Vec<Seat>, Option<String>), AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
{
    let filter = SeatFilter { tier: f.tier, status: f.status };
    if f.q.is_empty() {
        let page = queries::seats(store, filter, limit, token).await?;
        return Ok((page.items, page.next_token));
    }
    let found =
        directory::users(directory, &profile.identity_store_id, Listing::Matching { text: &f.q, limit: 100 }).await?;
    let ids: Vec<UserId> = found.items.iter().map(|u| u.user_id.clone()).collect();
    let mut seats = if ids.is_empty() { vec![] } else { store.get_seats(&ids).await? };
    seats.retain(|s| f.tier.is_none_or(|t| s.tier == t) && f.status.is_none_or(|st| s.status == st));
    seats.sort_by(|a, b| a.user_id.as_str().cmp(b.user_id.as_str()));
    Ok((seats, None))
}

async fn seat_rows<S, D>(
    store: &S,
    directory: &D,
    profile: &Profile,
    seats: Vec<Seat>,
    groups: &HashMap<String, Sub>,
) -> Result<Vec<SeatRow>, AppError>
where
    S: ApiStore,
    D: Directory,
{
    let mut rows = Vec::with_capacity(seats.len());
    for seat in seats {
        let user_name = match &seat.user_name {
            Some(n) => n.clone(),
            None => directory
                .describe_user(&profile.identity_store_id, &seat.user_id)
                .await?
                .map(|u| u.user_name)
                .unwrap_or_else(|| "(deleted user)".into()),
        };
        let direct = if seat.sources.contains_key(&SourceKey::Direct) {
            store.get_subscription(&Principal::User(seat.user_id.clone())).await?.map(|mut s| {
                s.seats = 1;
                sub_view(&s)
            })
        } else {
            None
        };
        let sources = seat
            .sources
            .iter()
            .map(|(key, tier)| SourceRow {
                label: match key {
                    SourceKey::Direct => "Direct".to_owned(),
                    SourceKey::Group(g) => groups
                        .get(g.as_str())
                        .map(|s| s.name.clone())
                        .unwrap_or_else(|| "a group no longer subscribed".into()),
                },
                tier: *tier,
                wins: *tier == seat.tier,
            })
            .collect();
        rows.push(SeatRow {
            user_name,
            tier: seat.tier,
            status: seat.status,
            sources,
            granted_at: seat.granted_at,
            last_active: None,
            direct,
        });
    }
    Ok(rows)
}

async fn dialog_for<S, D>(
    store: &S,
    directory: &D,
    profile: &Profile,
    req: &Request,
    kind: PrincipalType,
    viewer: &Viewer<'_>,
) -> Result<Option<Dialog>, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
{
    if !viewer.can_change() {
        return Ok(None);
    }
    if let Some(raw) = query(req, "plan") {
        return Ok(Some(Dialog::Plan { sub: named_sub(store, raw).await? }));
    }
    if let Some(raw) = query(req, "deactivate") {
        return Ok(Some(Dialog::Deactivate { sub: named_sub(store, raw).await? }));
    }
    if query(req, "add").is_none() {
        return Ok(None);
    }
    let Some(tier) = query(req, members::ADD_TIER).and_then(|t| t.parse::<Tier>().ok()) else {
        return Ok(Some(Dialog::AddTier { kind }));
    };
    let q: String = query(req, "q").unwrap_or_default().chars().take(128).collect();
    let results = if q.is_empty() { vec![] } else { picks(directory, profile, kind, &q).await? };
    Ok(Some(Dialog::AddSearch { kind, tier, q, results }))
}

/// Directory matches for the Add dialog.
pub async fn picks<D: Directory + DirectorySearch>(
    directory: &D,
    profile: &Profile,
    kind: PrincipalType,
    q: &str,
) -> Result<Vec<Pick>, AppError> {
    let store = &profile.identity_store_id;
    let listing = Listing::Matching { text: q, limit: 10 };
    Ok(match kind {
        PrincipalType::User => directory::users(directory, store, listing)
            .await?
            .items
            .into_iter()
            .map(|u| Pick {
                id: u.user_id.as_str().to_owned(),
                detail: [Some(u.display_name.as_str()).filter(|d| !d.is_empty()), u.email.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", "),
                name: u.user_name,
            })
            .collect(),
        PrincipalType::Group => directory::groups(directory, store, listing)
            .await?
            .items
            .into_iter()
            .map(|g| Pick {
                id: g.group_id.as_str().to_owned(),
                name: g.display_name,
                detail: g.description.unwrap_or_default(),
            })
            .collect(),
    })
}

async fn users_page<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    viewer: &Viewer<'_>,
    profile: &Profile,
    notice: Option<&str>,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
{
    let f = filters_of(req)?;
    let (seats, next) =
        filtered_seats(&deps.store, &deps.directory, profile, &f, PAGE, query(req, "nextToken").map(str::to_owned))
            .await?;
    let groups = group_names(&deps.store).await?;
    let rows = seat_rows(&deps.store, &deps.directory, profile, seats, &groups).await?;
    let dialog = dialog_for(&deps.store, &deps.directory, profile, req, PrincipalType::User, viewer).await?;
    Ok(Reply::html(200, members::users(viewer, &rows, &f, next.as_deref(), dialog, &deps.pricing, notice, Utc::now())))
}

async fn groups_page<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    viewer: &Viewer<'_>,
    profile: &Profile,
    notice: Option<&str>,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
{
    let page =
        subscriptions::list(&deps.store, Some(PrincipalType::Group), PAGE, query(req, "nextToken").map(str::to_owned))
            .await?;
    let subs: Vec<Sub> = page.items.iter().map(sub_view).collect();
    let dialog = dialog_for(&deps.store, &deps.directory, profile, req, PrincipalType::Group, viewer).await?;
    Ok(Reply::html(
        200,
        members::groups(viewer, &subs, page.next_token.as_deref(), dialog, &deps.pricing, notice, Utc::now()),
    ))
}

/// `GET /console/directory/{users,groups}?q=`: the combobox's suggestions.
async fn search<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    profile: &Profile,
    endpoint: Endpoint,
) -> Result<Reply, AppError>
where
    D: Directory + DirectorySearch,
{
    let kind = if endpoint == Endpoint::SearchUsers { PrincipalType::User } else { PrincipalType::Group };
    let q: String = query(req, "q").unwrap_or_default().chars().take(128).collect();
    let items = if q.is_empty() { vec![] } else { picks(&deps.directory, profile, kind, &q).await? };
    let items: Vec<_> =
        items.into_iter().map(|p| serde_json::json!({"id": p.id, "name": p.name, "detail": p.detail})).collect();
    Ok(Reply::json(200, &serde_json::json!({ "items": items })))
}

// ------------------------------------------------------------------------------ dashboard

async fn dashboard_page<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    viewer: &Viewer<'_>,
    profile: &Profile,
    notice: Option<&str>,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory,
{
    let now = Utc::now();
    let mut counts = Counts::default();
    let mut reclaim = vec![];
    let mut reclaim_total = 0;
    let mut read = 0;
    let mut token = None;
    let partial = loop {
        let page = queries::seats(&deps.store, SeatFilter::default(), 100, token).await?;
        for seat in &page.items {
            counts.add(seat.tier, seat.status);
            // Held, and its latest activity (or, never used since its grant, the grant) is older
            // than the reclaim window.
            let idle_since = match seat.last_active_date.map(kiro::domain::seat::start_of) {
                Some(active) if active >= seat.granted_at => active,
                _ => seat.granted_at,
            };
            if seat.holds() && now - idle_since > Duration::days(RECLAIM_AFTER_DAYS) {
                reclaim_total += 1;
                if reclaim.len() < 10 {
                    reclaim.push(Reclaim {
                        user_name: seat.user_name.clone().unwrap_or_else(|| "(name pending)".into()),
                        tier: seat.tier,
                        idle_since: views::date(&idle_since),
                    });
                }
            }
        }
        read += page.items.len();
        token = page.next_token;
        if token.is_none() {
            break false;
        }
        if read >= DASHBOARD_SEATS {
            break true;
        }
    };
    let groups = subscriptions::list(&deps.store, Some(PrincipalType::Group), 100, None)
        .await?
        .items
        .iter()
        .map(sub_view)
        .collect();
    let last_audit = queries::audits(&deps.store, 1, None).await?.items.into_iter().next();
    let month = kiro::domain::usage::YearMonth::of(now);
    let usage = kiro::app::usage::summary(&deps.store, month, &deps.pricing, now).await?;
    let (estimate, overage_credits) =
        (usage.summary.total.estimated_cost, usage.summary.total.overage_credits_used as f64 / 1_000.0);
    let d = Dashboard {
        profile_name: &profile.name,
        counts,
        groups,
        reclaim,
        reclaim_total,
        last_audit,
        partial,
        estimate,
        overage_credits,
    };
    Ok(Reply::html(200, dashboard::page(viewer, &d, &deps.pricing, notice)))
}
