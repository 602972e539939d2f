//! Finding principals to subscribe in the profile's Identity Store.
//!
//! Without a search text, the directory page by page (`ListUsers` / `ListGroups`, `limit` per
//! page, the service's own `nextToken`). With one, an exact user name or group display name is
//! always found (`GetUserId` / `GetGroupId`, one request); partial, case-insensitive matches
//! come from reading `ListUsers` / `ListGroups` pages of 100, at most [`SCAN_PAGES`] of them:
//! Identity Store has no substring search, and at its 20 requests/s a 200,000-user directory
//! would take 100 s to read in full.

use crate::domain::IdentityStoreId;
use crate::error::AppError;
use crate::ports::{Directory, DirectoryGroup, DirectorySearch, DirectoryUser, Page};

/// Pages of 100 read for partial matches: up to 1,000 principals.
pub const SCAN_PAGES: usize = 10;

/// A page read for partial matches.
const SCAN_PAGE: usize = 100;

/// The longest `userName` Identity Store keeps: a longer text cannot be one, and `GetUserId`
/// would refuse it as invalid.
const MAX_USER_NAME: usize = 128;

/// What to list: everything page by page, or the matches of a search text (one page, no token).
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    All { limit: usize, next_token: Option<&'a str> },
    Matching { text: &'a str, limit: usize },
}

fn matches(q: &str, fields: &[Option<&str>]) -> bool {
    let q = q.to_lowercase();
    fields.iter().flatten().any(|f| f.to_lowercase().contains(&q))
}

pub async fn users<D: Directory + DirectorySearch>(
    directory: &D,
    store: &IdentityStoreId,
    listing: Listing<'_>,
) -> Result<Page<DirectoryUser>, AppError> {
    let (text, limit) = match listing {
        Listing::All { limit, next_token } => {
            return Ok(directory.list_users(store, limit, next_token.map(str::to_owned)).await?);
        }
        Listing::Matching { text, limit } => (text, limit),
    };
    let mut exact = None;
    if text.chars().count() <= MAX_USER_NAME
        && let Some(id) = directory.user_id_by_name(store, text).await?
    {
        exact = directory.describe_user(store, &id).await?;
    }
    let pages = |token| directory.list_users(store, SCAN_PAGE, token);
    let hit = |u: &DirectoryUser| matches(text, &[Some(&u.user_name), Some(&u.display_name), u.email.as_deref()]);
    search(exact, limit, pages, hit, |a, b| a.user_id == b.user_id).await
}

pub async fn groups<D: DirectorySearch>(
    directory: &D,
    store: &IdentityStoreId,
    listing: Listing<'_>,
) -> Result<Page<DirectoryGroup>, AppError> {
    let (text, limit) = match listing {
        Listing::All { limit, next_token } => {
            return Ok(directory.list_groups(store, limit, next_token.map(str::to_owned)).await?);
        }
        Listing::Matching { text, limit } => (text, limit),
    };
    let mut exact = None;
    if let Some(id) = directory.group_id_by_name(store, text).await? {
        exact = directory.describe_group(store, &id).await?;
    }
    let pages = |token| directory.list_groups(store, SCAN_PAGE, token);
    let hit = |g: &DirectoryGroup| matches(text, &[Some(&g.display_name)]);
    search(exact, limit, pages, hit, |a, b| a.group_id == b.group_id).await
}

/// The exact match first, then partial matches from at most [`SCAN_PAGES`] pages, each
/// principal once, up to `limit`; one page, no token.
async fn search<T, F, Fut>(
    exact: Option<T>,
    limit: usize,
    mut page: F,
    hit: impl Fn(&T) -> bool,
    same: impl Fn(&T, &T) -> bool,
) -> Result<Page<T>, AppError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, crate::ports::DirectoryError>>,
{
    let mut found: Vec<T> = exact.into_iter().collect();
    let mut token = None;
    for _ in 0..SCAN_PAGES {
        if found.len() >= limit {
            break;
        }
        let p = page(token).await?;
        for item in p.items {
            if hit(&item) && !found.iter().any(|f| same(f, &item)) {
                found.push(item);
            }
        }
        token = p.next_token;
        if token.is_none() {
            break;
        }
    }
    found.truncate(limit);
    Ok(Page { items: found, next_token: None })
}
