//! `GET /directory/users|groups[?q=]`: find principals to subscribe.
//!
//! Without `q`, the directory page by page (`ListUsers` / `ListGroups`, `limit` per page, the
//! service's own `nextToken`). With `q`, an exact user name or group display name is always found
//! (`GetUserId` / `GetGroupId`, one request); partial, case-insensitive matches come from reading
//! `ListUsers` / `ListGroups` pages of 100, at most [`SCAN_PAGES`] of them: Identity Store has no
//! substring search, and at its 20 requests/s a 200,000-user directory would take 100 s to read
//! in full.

use kiro::domain::Profile;
use kiro::error::AppError;
use kiro::http::Reply;
use kiro::ports::{Directory, DirectoryGroup, DirectorySearch, DirectoryUser};

use crate::Deps;
use crate::query::{Query, list_body};

/// Pages of 100 read for partial matches: up to 1,000 principals.
pub const SCAN_PAGES: usize = 10;

/// A page read for partial matches.
const SCAN_PAGE: usize = 100;

/// The longest `userName` Identity Store keeps: a longer `q` cannot be one, and `GetUserId`
/// would refuse it as invalid.
const MAX_USER_NAME: usize = 128;

fn matches(q: &str, fields: &[Option<&str>]) -> bool {
    let q = q.to_lowercase();
    fields.iter().flatten().any(|f| f.to_lowercase().contains(&q))
}

pub async fn users<S, D: Directory + DirectorySearch, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let (text, limit) = (q.search_text()?, q.limit()?);
    let store = &profile.identity_store_id;
    let Some(text) = text else {
        let page = deps.directory.list_users(store, limit, q.next_token()).await?;
        return Reply::json(200, &list_body(page.items, page.next_token));
    };
    let mut found: Vec<DirectoryUser> = Vec::new();
    if text.chars().count() <= MAX_USER_NAME
        && let Some(id) = deps.directory.user_id_by_name(store, text).await?
    {
        found.extend(deps.directory.describe_user(store, &id).await?);
    }
    let mut token = None;
    for _ in 0..SCAN_PAGES {
        if found.len() >= limit {
            break;
        }
        let page = deps.directory.list_users(store, SCAN_PAGE, token).await?;
        for u in page.items {
            let hit = matches(text, &[Some(&u.user_name), Some(&u.display_name), u.email.as_deref()]);
            if hit && !found.iter().any(|f| f.user_id == u.user_id) {
                found.push(u);
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    found.truncate(limit);
    Reply::json(200, &list_body(found, None))
}

pub async fn groups<S, D: Directory + DirectorySearch, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let (text, limit) = (q.search_text()?, q.limit()?);
    let store = &profile.identity_store_id;
    let Some(text) = text else {
        let page = deps.directory.list_groups(store, limit, q.next_token()).await?;
        return Reply::json(200, &list_body(page.items, page.next_token));
    };
    let mut found: Vec<DirectoryGroup> = Vec::new();
    if let Some(id) = deps.directory.group_id_by_name(store, text).await? {
        found.extend(deps.directory.describe_group(store, &id).await?);
    }
    let mut token = None;
    for _ in 0..SCAN_PAGES {
        if found.len() >= limit {
            break;
        }
        let page = deps.directory.list_groups(store, SCAN_PAGE, token).await?;
        for g in page.items {
            if matches(text, &[Some(&g.display_name)]) && !found.iter().any(|f| f.group_id == g.group_id) {
                found.push(g);
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    found.truncate(limit);
    Reply::json(200, &list_body(found, None))
}
