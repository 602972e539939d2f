//! Signing in (OpenID Connect, through `CONSOLE_OIDC_ISSUER`), sessions, roles and CSRF.

use chrono::Utc;
use kiro::app::access;
use kiro::domain::session::{Role, SESSION_LIFETIME, SIGN_IN_LIFETIME, Session, SignIn};
use kiro::error::AppError;
use kiro::http::Request;
use kiro::ports::{
    ApiStore, Directory, DirectorySearch, EventSink, Instances, MemberGroups, ProfileAdmin, SessionStore,
};

use crate::Deps;
use crate::fetch::Fetch;
use crate::form::{Form, query};
use crate::oidc::{OidcError, random_token, sha256_hex};
use crate::views;
use crate::web::{Reply, cookie};

pub const SESSION_COOKIE: &str = "kiro_session";
const SIGN_IN_COOKIE: &str = "kiro_signin";

/// Where the issuer sends the browser back.
fn redirect_uri<S, D, E, I, F, X>(deps: &Deps<S, D, E, I, F, X>, req: &Request) -> Result<String, AppError> {
    let base = match &deps.config.base_url {
        Some(b) => b.clone(),
        None => format!(
            "https://{}",
            req.domain_name()
                .ok_or_else(|| AppError::internal("the request names no domain and CONSOLE_BASE_URL is not set"))?
        ),
    };
    Ok(format!("{base}/console/auth/callback"))
}

fn oidc_failure(e: OidcError) -> AppError {
    match e {
        OidcError::Refused(_) | OidcError::InvalidToken(_) => {
            AppError::Forbidden(format!("The sign-in could not be completed: {e}. Sign in again."))
        }
        other => AppError::internal(other),
    }
}

/// `GET /console/auth/login`: remember a new sign-in and send the browser to the issuer.
pub async fn start<S, D, E, I, F, X>(deps: &Deps<S, D, E, I, F, X>, req: &Request) -> Result<Reply, AppError>
where
    S: SessionStore,
    F: Fetch,
{
    let sign_in = SignIn {
        state: random_token(24),
        nonce: random_token(24),
        verifier: random_token(48),
        expires_at: Utc::now() + SIGN_IN_LIFETIME,
    };
    let url = deps
        .relying_party
        .authorize_url(&redirect_uri(deps, req)?, &sign_in.state, &sign_in.nonce, &sign_in.verifier)
        .await
        .map_err(oidc_failure)?;
    deps.store.put_sign_in(&sign_in).await?;
    // The state is also bound to this browser: a callback carrying someone else's state (login
    // CSRF) finds no matching cookie.
    Ok(Reply::found(url).cookie(cookie(
        SIGN_IN_COOKIE,
        &sign_in.state,
        "/console/auth",
        SIGN_IN_LIFETIME.num_seconds(),
    )))
}

/// `GET /console/auth/callback`: complete the sign-in, decide the role, open a session.
pub async fn callback<S, D, E, I, F, X>(deps: &Deps<S, D, E, I, F, X>, req: &Request) -> Result<Reply, AppError>
where
    S: ApiStore + ProfileAdmin + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
{
    if let Some(error) = query(req, "error") {
        let reason = query(req, "error_description").unwrap_or(error);
        return Ok(Reply::html(
            403,
            views::sign_in(Some(&format!("The identity provider did not sign you in: {reason}."))),
        ));
    }
    let again = |m: &str| Ok(Reply::html(400, views::sign_in(Some(m))));
    let (Some(code), Some(state)) = (query(req, "code"), query(req, "state")) else {
        return again("That sign-in link is incomplete. Sign in again.");
    };
    if req.cookie(SIGN_IN_COOKIE).as_deref() != Some(state) {
        return again("That sign-in was started in another browser or has expired. Sign in again.");
    }
    let now = Utc::now();
    let Some(sign_in) = deps.store.take_sign_in(state).await?.filter(|s| s.expires_at > now) else {
        return again("That sign-in has expired or was already used. Sign in again.");
    };
    let identity = deps
        .relying_party
        .complete(
            code,
            &redirect_uri(deps, req)?,
            &sign_in.verifier,
            &sign_in.nonce,
            &deps.config.user_claim,
            now.timestamp(),
        )
        .await
        .map_err(oidc_failure)?;
    let Some(store) = deps.identity_store().await? else {
        return Err(AppError::Forbidden(
            "No IAM Identity Center instance was found in this account, so nobody can be signed in.".into(),
        ));
    };
    let Some((user_id, role)) = access::role_of(&deps.directory, &store, &deps.groups(), &identity.user_name).await?
    else {
        tracing::info!("sign-in refused: in neither console group");
        return Err(AppError::Forbidden(format!(
            "You signed in as {}, who is not a member of {} or {} in IAM Identity Center. Ask an administrator for access.",
            identity.user_name, deps.config.admin_group, deps.config.viewer_group
        )));
    };
    let token = random_token(32);
    let session = Session {
        token_hash: sha256_hex(&token),
        user_name: identity.user_name,
        user_id,
        role,
        csrf: random_token(24),
        created_at: now,
        expires_at: now + SESSION_LIFETIME,
        role_checked_at: now,
    };
    deps.store.put_session(&session).await?;
    tracing::info!(role = role.as_str(), "signed in");
    Ok(Reply::see_other("/console")
        .cookie(cookie(SESSION_COOKIE, &token, "/console", SESSION_LIFETIME.num_seconds()))
        .cookie(cookie(SIGN_IN_COOKIE, "", "/console/auth", 0)))
}

/// The request's live session, its role re-checked when due (before every change, and every
/// 15 minutes otherwise). `None` without a valid session; `Forbidden` when the user lost their role.
pub async fn session<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    change: bool,
) -> Result<Option<Session>, AppError>
where
    S: ApiStore + ProfileAdmin + SessionStore,
    D: Directory + DirectorySearch + MemberGroups,
    E: EventSink,
    I: Instances,
    F: Fetch,
{
    let Some(token) = req.cookie(SESSION_COOKIE).filter(|t| !t.is_empty() && t.len() <= 128) else { return Ok(None) };
    let hash = sha256_hex(&token);
    let Some(mut session) = deps.store.get_session(&hash).await? else { return Ok(None) };
    let now = Utc::now();
    if session.is_expired(now) {
        deps.store.delete_session(&hash).await?;
        return Ok(None);
    }
    if session.role_is_stale(now, change) {
        let store = deps.identity_store().await?;
        let role = match &store {
            Some(store) => access::role_of(&deps.directory, store, &deps.groups(), &session.user_name).await?,
            None => None,
        };
        let Some((_, role)) = role else {
            deps.store.delete_session(&hash).await?;
            tracing::info!("session ended: no longer in a console group");
            return Err(AppError::Forbidden(format!(
                "{} is no longer a member of {} or {} in IAM Identity Center, so this session has ended.",
                session.user_name, deps.config.admin_group, deps.config.viewer_group
            )));
        };
        session.role = role;
        session.role_checked_at = now;
        deps.store.put_session(&session).await?;
    }
    Ok(Some(session))
}

/// A change must carry the session's CSRF token (in a form field or a header whose name contains
/// `csrf`, as `X-CSRF-Token`) and come from an admin.
pub fn authorize_change(session: &Session, form: &Form, req: &Request, admin_only: bool) -> Result<(), AppError> {
    let sent = form.csrf().or_else(|| req.header_containing("csrf"));
    let valid = sent.is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf.as_bytes()));
    if !valid {
        return Err(AppError::Forbidden("This form has expired or did not come from the console. Reload the page and try again; nothing was changed.".into()));
    }
    if admin_only && session.role != Role::Admin {
        return Err(AppError::Forbidden("Viewers can look but not change anything. Ask a console admin.".into()));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /console/auth/logout`: ends the session on the server.
pub async fn sign_out<S: SessionStore, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    session: &Session,
) -> Result<Reply, AppError> {
    deps.store.delete_session(&session.token_hash).await?;
    tracing::info!("signed out");
    Ok(Reply::see_other("/console?signedOut=1").cookie(cookie(SESSION_COOKIE, "", "/console", 0)))
}
