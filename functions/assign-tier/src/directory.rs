//! `GET /directory/users|groups[?q=]`: the query in, [`kiro::app::directory`] out.

use kiro::app::directory::{self, Listing};
use kiro::domain::Profile;
use kiro::error::AppError;
use kiro::http::Reply;
use kiro::ports::{Directory, DirectorySearch};

use crate::Deps;
use crate::query::{Query, list_body};

fn listing<'a>(q: &'a Query<'_>, next_token: &'a Option<String>) -> Result<Listing<'a>, AppError> {
    let limit = q.limit()?;
    Ok(match q.search_text()? {
        Some(text) => Listing::Matching { text, limit },
        None => Listing::All { limit, next_token: next_token.as_deref() },
    })
}

pub async fn users<S, D: Directory + DirectorySearch, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let token = q.next_token();
    let page = directory::users(&deps.directory, &profile.identity_store_id, listing(q, &token)?).await?;
    Reply::json(200, &list_body(page.items, page.next_token))
}

pub async fn groups<S, D: Directory + DirectorySearch, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    q: &Query<'_>,
) -> Result<Reply, AppError> {
    let token = q.next_token();
    let page = directory::groups(&deps.directory, &profile.identity_store_id, listing(q, &token)?).await?;
    Reply::json(200, &list_body(page.items, page.next_token))
}
