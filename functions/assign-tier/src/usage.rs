//! `GET /usage` and `GET /usage/users`: the query in, [`kiro::app::usage`] out.

use chrono::Utc;
use kiro::app::usage::{self, UsersFilter};
use kiro::domain::Invalid;
use kiro::domain::usage::YearMonth;
use kiro::error::AppError;
use kiro::http::Reply;
use kiro::ports::{ActivityReads, SeatStore, SubscriptionStore};

use crate::Deps;
use crate::query::{Query, list_body};

/// `month`: `YYYY-MM`, default the current UTC month; anything else is `BadRequest`.
fn month(q: &Query<'_>) -> Result<YearMonth, AppError> {
    match q.raw("month") {
        None => Ok(YearMonth::of(Utc::now())),
        Some(raw) => raw
            .parse::<YearMonth>()
            .map_err(|_| AppError::BadRequest(format!("month {raw:?} is not a month: use YYYY-MM, such as 2026-12"))),
    }
}

pub async fn summary<S, D, E>(deps: &Deps<S, D, E>, q: &Query<'_>) -> Result<Reply, AppError>
where
    S: SeatStore + SubscriptionStore + ActivityReads,
{
    let usage = usage::summary(&deps.store, month(q)?, &deps.pricing, Utc::now()).await?;
    Reply::json(200, &usage)
}

pub async fn users<S, D, E>(deps: &Deps<S, D, E>, q: &Query<'_>) -> Result<Reply, AppError>
where
    S: SeatStore + ActivityReads,
{
    let inactive_days = match q.raw("inactiveDays") {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<u32>()
                .ok()
                .filter(|d| *d <= 3650)
                .ok_or_else(|| Invalid::new("inactiveDays", "must be a whole number of days from 0 to 3650"))?,
        ),
    };
    let filter = UsersFilter { tier: q.tier()?, status: q.status()?, inactive_days };
    let page =
        usage::users(&deps.store, month(q)?, filter, &deps.pricing, q.limit()?, q.next_token(), Utc::now()).await?;
    Reply::json(200, &list_body(page.items, page.next_token))
}
