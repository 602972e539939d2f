//! `GET /usage` and `GET /usage/users`: seats, activity and the month's estimated cost.
//!
//! The month's figures are the sum of the stored activity rows dated in it
//! (`USAGE#<month>#<shard>`, read shard by shard with the shard's seats).
//! What each seat held during the month is its bill row of that month ([`Bills`], kept on the
//! seat and written with every change of it, for the last 13 months): the highest tier it held
//! and whether it was `ACTIVE` at some instant. Kiro's own bill is the reference; this is an
//! estimate (prices and credits are this stack's configuration), and the README says so.
//!
//! [`Bills`]: crate::domain::usage::Bills

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::domain::activity::{ActivityKey, Figures};
use crate::domain::seat::start_of;
use crate::domain::tier::Pricing;
use crate::domain::usage::{BillMonth, Held, MilliCredits, UsageSummary, UserMonth, YearMonth, suggested_tier};
use crate::domain::{PrincipalType, Seat, SeatStatus, Tier, UserId};
use crate::error::AppError;
use crate::ports::{ActivityReads, Page, SEAT_SHARDS, SeatFilter, SeatStore, SubscriptionStore};

/// One user's activity in a month.
#[derive(Debug, Clone, Copy, Default)]
struct Month {
    credits: MilliCredits,
    overage: MilliCredits,
    messages: u64,
}

/// Millionths (the report's exact numbers) to thousandths, rounded half up.
fn milli(micros: u64) -> MilliCredits {
    micros.saturating_add(500) / 1_000
}

/// The figures of activity rows, added up by user.
fn add_up(rows: Vec<(ActivityKey, Figures)>, by_user: &mut HashMap<UserId, Month>) {
    for (key, figures) in rows {
        let m = by_user.entry(key.user_id).or_default();
        m.credits = m.credits.saturating_add(milli(figures.credits_used.micros()));
        m.overage = m.overage.saturating_add(milli(figures.overage_credits_used.micros()));
        m.messages = m.messages.saturating_add(figures.total_messages.micros().div_ceil(1_000_000));
    }
}

/// The month's figures of one shard's users, added up by user.
async fn shard_activity<S: ActivityReads>(
    store: &S,
    month: YearMonth,
    shard: usize,
) -> Result<HashMap<UserId, Month>, AppError> {
    let mut by_user: HashMap<UserId, Month> = HashMap::new();
    let mut token = None;
    loop {
        let page = store.month_activity(&month.to_string(), shard, token).await?;
        add_up(page.items, &mut by_user);
        token = page.next_token;
        if token.is_none() {
            return Ok(by_user);
        }
    }
}

/// The summary of one shard's seats: its users' month, then its seats, page by page. A seat's
/// activity rows are in its user's shard, so a shard adds up on its own.
async fn shard_summary<S>(
    store: &S,
    shard: usize,
    month: YearMonth,
    pricing: &Pricing,
    now: DateTime<Utc>,
) -> Result<UsageSummary, AppError>
where
    S: SeatStore + ActivityReads,
{
    let activity = shard_activity(store, month, shard).await?;
    let mut summary = UsageSummary::new(month);
    let mut token = None;
    loop {
        let page = store.shard_seats(shard, token).await?;
        for seat in page.items {
            let (bill, at_end) = held(&seat, month, now);
            if bill.is_none() {
                continue;
            }
            let m = activity.get(&seat.user_id).copied().unwrap_or_default();
            let user = UserMonth { held_now: at_end, bill, credits_used: m.credits, overage_credits: m.overage };
            summary.add(&user, pricing);
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(summary);
        }
    }
}

/// Shards the summary reads at once: about an eighth of the Queries' latency in a row, and half
/// the month's users' figures in memory at most.
const SHARDS_AT_ONCE: usize = SEAT_SHARDS / 2;

/// The seat's bill for `month` (`None` when it held no seat in it) and what it held at the
/// month's end (now, for the current month).
fn held(seat: &Seat, month: YearMonth, now: DateTime<Utc>) -> (Option<BillMonth>, Held) {
    if seat.bills.rows().is_empty() {
        return unbilled(seat, month, now);
    }
    let (bill, at_end) = seat.bills.month(month, seat.held());
    (bill.highest_tier.is_some().then_some(bill), at_end)
}

/// [`held`] for a seat stored before bills were kept: read from the seat as it is now (its tier,
/// when it was granted, activated and canceled), as if it had held its tier since its grant.
fn unbilled(seat: &Seat, month: YearMonth, now: DateTime<Utc>) -> (Option<BillMonth>, Held) {
    let (start, end) = (month.first_instant(), month.next().first_instant());
    let end_or_now = end.min(now);
    if seat.granted_at >= end_or_now || seat.canceled_at.is_some_and(|c| c < start) {
        return (None, None);
    }
    let active = seat.activated_at.is_some_and(|a| a < end_or_now);
    let during = Some((seat.tier, active));
    let canceled_by_end = seat.status == SeatStatus::Canceled && seat.canceled_at.is_some_and(|c| c < end_or_now);
    (Some(BillMonth::steady(month, during)), if canceled_by_end { None } else { during })
}

/// The contract's Usage summary.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    #[serde(flatten)]
    pub summary: UsageSummary,
    pub groups: Vec<GroupUsage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupUsage {
    pub group_id: String,
    pub display_name: String,
    pub tier: Tier,
    pub seats: u64,
}

/// `GET /usage?month=`: every seat and the month's activity, added up shard by shard
/// (eight at once), then the groups' seat counts.
pub async fn summary<S>(store: &S, month: YearMonth, pricing: &Pricing, now: DateTime<Utc>) -> Result<Usage, AppError>
where
    S: SeatStore + SubscriptionStore + ActivityReads,
{
    // The futures are made first (none runs until polled): a closure borrowing its argument
    // inside the stream fails the `Send` future's higher-ranked lifetime check.
    let shards: Vec<_> = (0..SEAT_SHARDS).map(|shard| shard_summary(store, shard, month, pricing, now)).collect();
    let parts: Vec<UsageSummary> =
        futures_util::stream::iter(shards).buffer_unordered(SHARDS_AT_ONCE).try_collect().await?;
    let mut summary = UsageSummary::new(month);
    for part in &parts {
        summary.merge(part);
    }
    let mut groups = Vec::new();
    let mut token = None;
    loop {
        let page = crate::app::subscriptions::list(store, Some(PrincipalType::Group), 100, token).await?;
        groups.extend(page.items.into_iter().map(|s| GroupUsage {
            group_id: s.principal.id().to_owned(),
            display_name: s.display_name,
            tier: s.tier,
            seats: s.seats,
        }));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(Usage { summary, groups })
}

/// One user's line of `GET /usage/users`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUsage {
    pub user_id: UserId,
    pub user_name: String,
    pub tier: Tier,
    pub status: SeatStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_date: Option<NaiveDate>,
    #[serde(with = "crate::time::rfc3339")]
    pub granted_at: DateTime<Utc>,
    pub credits_used: f64,
    pub overage_credits_used: f64,
    pub messages: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_tier: Option<Tier>,
}

/// Which users `GET /usage/users` keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersFilter {
    pub tier: Option<Tier>,
    pub status: Option<SeatStatus>,
    /// Held now, and idle (latest activity, or the grant when never used since) more than this
    /// many days before today: the reclaim list.
    pub inactive_days: Option<u32>,
}

/// Reads of the seats' list one page of `GET /usage/users` makes at most: a filter that matches
/// few seats answers short pages (perhaps empty) with a token, as `GET /seats` does, instead of
/// reading every seat in one request.
const SEAT_READS_PER_PAGE: usize = 10;

impl UsersFilter {
    /// Whether `GET /usage/users` lists `seat` for `month`: it held a seat in the month or holds
    /// one now, and the filters keep it.
    fn keeps(&self, seat: &Seat, month: YearMonth, now: DateTime<Utc>) -> bool {
        let (bill, _) = held(seat, month, now);
        if bill.is_none() && !seat.holds() {
            return false;
        }
        if self.tier.is_some_and(|t| t != seat.tier) || self.status.is_some_and(|s| s != seat.status) {
            return false;
        }
        match self.inactive_days {
            None => true,
            Some(days) => {
                let idle_since = match seat.last_active_date.map(start_of) {
                    Some(active) if active >= seat.granted_at => active,
                    _ => seat.granted_at,
                };
                seat.holds() && now - idle_since > Duration::days(i64::from(days))
            }
        }
    }
}

/// `GET /usage/users`: every user holding a seat now or during the month, in the seats' list
/// order ([`seat_position`]), a page at a time.
///
/// The page walks [`SeatStore::list_seats`] from the token on, the tier and status filters read
/// with the index, asking each time for as many seats as the page still lacks: every seat of an
/// answer is then considered, so the store's token is where the page stopped, and it is the
/// page's token as it is (validated by the store, opaque here). At most `SEAT_READS_PER_PAGE`
/// reads; then only the page's users' month is read.
///
/// [`seat_position`]: crate::ports::seat_position
pub async fn users<S>(
    store: &S,
    month: YearMonth,
    filter: UsersFilter,
    pricing: &Pricing,
    limit: usize,
    next_token: Option<String>,
    now: DateTime<Utc>,
) -> Result<Page<UserUsage>, AppError>
where
    S: SeatStore + ActivityReads,
{
    let limit = limit.max(1);
    let on_index = SeatFilter { tier: filter.tier, status: filter.status };
    let (mut seats, mut token) = (Vec::with_capacity(limit), next_token);
    for _ in 0..SEAT_READS_PER_PAGE {
        let wanted = limit - seats.len();
        let page = store.list_seats(on_index, wanted, token).await?;
        // Short with a token: the store spent its own bound of reads; answer what was found.
        let short = page.items.len() < wanted;
        seats.extend(page.items.into_iter().filter(|seat| filter.keeps(seat, month, now)));
        token = page.next_token;
        if token.is_none() || short || seats.len() >= limit {
            break;
        }
    }
    let users: Vec<UserId> = seats.iter().map(|s| s.user_id.clone()).collect();
    let mut activity = HashMap::new();
    if !users.is_empty() {
        add_up(store.users_month_activity(&month.to_string(), &users).await?, &mut activity);
    }
    let items = seats
        .into_iter()
        .map(|seat| {
            let m = activity.get(&seat.user_id).copied().unwrap_or_default();
            UserUsage {
                user_name: seat.user_name.unwrap_or_default(),
                tier: seat.tier,
                status: seat.status,
                last_active_date: seat.last_active_date,
                granted_at: seat.granted_at,
                credits_used: m.credits as f64 / 1_000.0,
                overage_credits_used: m.overage as f64 / 1_000.0,
                messages: m.messages,
                suggested_tier: suggested_tier(seat.tier, m.credits, pricing),
                user_id: seat.user_id,
            }
        })
        .collect();
    Ok(Page { items, next_token: token })
}
