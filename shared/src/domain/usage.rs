//! Usage and billing: what Kiro bills for one seat in one month, the tier that would have cost
//! the least, and the `GET /usage` summary. Pure: every instant is the caller's.
//!
//! Kiro's rules, as the contract states them and Kiro documents them:
//! - A change to a higher tier happens at once; to a lower tier, at the beginning of the following
//!   month. An unsubscribed user is `Canceled` and keeps the plan until the end of the month.
//!   <https://kiro.dev/docs/cli/enterprise/subscription-management>
//! - Billed monthly per subscribed user; a user subscribed more than once under one profile pays
//!   once, the price of the highest tier. Included credits: Pro 1,000, Pro+ 2,000, Power 10,000;
//!   overage is opt-in. <https://kiro.dev/docs/cli/enterprise/billing>
//! - Credits are metered to the second decimal (0.01 credit), hence [`MilliCredits`].
//!   <https://kiro.dev/docs/billing/billing-related-questions>
//! - `Pending` (subscribed, not yet used: not charged), `Active` (used: charged), `Canceled`: the
//!   statuses as Amazon Q Developer's console defines them, which the contract's vocabulary
//!   follows. <https://docs.aws.amazon.com/amazonq/latest/qdeveloper-ug/q-admin-setup-subscribe-status.html>
//!
//! Not prorated: the contract bills a billed month once, in full, at the highest tier held (the
//! prorated first month Kiro's FAQ describes is for individual plans, not for seats an admin
//! assigns).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Tier;
use crate::domain::tier::{MicroUsd, Pricing};

/// Credits in thousandths: Kiro meters to 0.01 credit, so report figures are exact integers here.
pub type MilliCredits = u64;

/// What a user holds at an instant: `None` = no seat (never granted, or `CANCELED`);
/// `Some((tier, active))` = `PENDING` (`false`) or `ACTIVE` (`true`) at `tier`.
pub type Held = Option<(Tier, bool)>;

/// A calendar month in UTC, `YYYY-MM` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a month as YYYY-MM, such as 2026-01")]
pub struct InvalidMonth;

impl YearMonth {
    /// The month containing `t`.
    pub fn of(t: DateTime<Utc>) -> Self {
        Self { year: t.year(), month: t.month() }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// 1 to 12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// Midnight UTC on its first day: the month is `[first_instant, next().first_instant())`.
    pub fn first_instant(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .expect("a month built by `of` or `parse` has a first day, and midnight UTC exists on it")
    }

    pub fn next(self) -> Self {
        if self.month == 12 { Self { year: self.year + 1, month: 1 } } else { Self { month: self.month + 1, ..self } }
    }
}

impl FromStr for YearMonth {
    type Err = InvalidMonth;

    /// Exactly `YYYY-MM`, month `01` to `12`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 7 || b[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(InvalidMonth);
        }
        let year = s[..4].parse().map_err(|_| InvalidMonth)?;
        let month = s[5..].parse().map_err(|_| InvalidMonth)?;
        if !(1..=12).contains(&month) {
            return Err(InvalidMonth);
        }
        Ok(Self { year, month })
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What one user's seat did in one month: kept per (user, month), updated by [`bill_after`] on
/// every change of the seat. A month without a row is a month without a change: the seat held
/// the same thing all month ([`BillMonth::steady`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillMonth {
    pub month: YearMonth,
    /// The highest tier the seat held (`PENDING` or `ACTIVE`) at any instant of the month.
    pub highest_tier: Option<Tier>,
    /// The seat was `ACTIVE` at some instant of the month.
    pub active: bool,
}

impl BillMonth {
    /// A month in which the seat did not change: it held `held` throughout.
    pub fn steady(month: YearMonth, held: Held) -> Self {
        let mut bill = Self { month, highest_tier: None, active: false };
        bill.hold(held);
        bill
    }

    fn hold(&mut self, held: Held) {
        if let Some((tier, active)) = held {
            self.highest_tier = self.highest_tier.max(Some(tier));
            self.active |= active;
        }
    }
}

/// The row of `now`'s month after the seat changed, at `now`, from `held_before` to `held_after`.
///
/// `prev` is the user's latest stored row. Of `now`'s month, it is extended. Of an earlier month
/// (or `None`), `now`'s month starts afresh from what the seat held at its first instant: that is
/// `held_before`, since a seat only changes through a change. A change AT the first instant is
/// the exception: `held_before` then ended with the previous month and is not part of this one.
///
/// That exception is how a pending downgrade takes effect next month: the audit applies it at
/// `pendingTierEffectiveAt`, the first instant of the next month, and must pass that instant as
/// `now` (not the audit's clock, which runs later): the month it was scheduled in is billed at
/// the higher tier, the next one at the lower (unless a `PUT` to the current tier cleared it).
///
/// Changes must come in time order. An activation back-dated into an earlier month (a report of
/// the last day, ingested on the 1st) is applied at `activatedAt` to that month's row, then, for
/// each later month up to `now`'s, once more at that month's first instant with the tier then
/// held, before and after: `(tier, true)` for both.
pub fn bill_after(prev: Option<&BillMonth>, held_before: Held, held_after: Held, now: DateTime<Utc>) -> BillMonth {
    let month = YearMonth::of(now);
    let mut bill = match prev {
        Some(p) if p.month == month => *p,
        _ => BillMonth { month, highest_tier: None, active: false },
    };
    if now > month.first_instant() {
        bill.hold(held_before);
    }
    bill.hold(held_after);
    bill
}

/// How many months of [`BillRow`]s a seat keeps: a year back from the current month. An older
/// month reads as the oldest kept row's opening held all month (an estimate, said in the README).
pub const KEPT_MONTHS: usize = 13;

/// One month of a seat's billing history: its [`BillMonth`], and what the seat held before the
/// month's first change, which is what it held through every month since the previous row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillRow {
    #[serde(flatten)]
    pub bill: BillMonth,
    pub opening: Held,
}

/// A seat's billing history, kept on the seat and written with every change of it: a row per
/// month in which it changed, oldest first, at most [`KEPT_MONTHS`]. A month without a row held
/// the same thing all month ([`BillMonth::steady`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bills(Vec<BillRow>);

impl Bills {
    pub fn rows(&self) -> &[BillRow] {
        &self.0
    }

    /// Rows as stored (oldest first; only the latest [`KEPT_MONTHS`] are kept).
    pub fn from_rows(mut rows: Vec<BillRow>) -> Self {
        rows.sort_by_key(|r| r.bill.month);
        rows.dedup_by_key(|r| r.bill.month);
        if rows.len() > KEPT_MONTHS {
            rows.drain(..rows.len() - KEPT_MONTHS);
        }
        Self(rows)
    }

    /// Records a change at `at` from `before` to `after` ([`bill_after`]). Changes come in time
    /// order, but for an activation back-dated (to the date of the activity) into a month older
    /// than the latest row: every month from that one on is then `ACTIVE`.
    pub fn record(&mut self, before: Held, after: Held, at: DateTime<Utc>) {
        let month = YearMonth::of(at);
        match self.0.last() {
            Some(last) if month < last.bill.month => {
                // Active from `at` on: through every later month, from its first instant.
                for row in self.0.iter_mut().filter(|r| r.bill.month > month) {
                    row.opening = row.opening.map(|(tier, _)| (tier, true));
                    row.bill.active |= row.bill.highest_tier.is_some();
                }
                if let Some(row) = self.0.iter_mut().find(|r| r.bill.month == month) {
                    row.bill.hold(after);
                } else {
                    let at_month = self.0.partition_point(|r| r.bill.month < month);
                    let bill = bill_after(None, before, after, at);
                    self.0.insert(at_month, BillRow { bill, opening: before });
                }
            }
            Some(last) if month == last.bill.month => {
                let bill = bill_after(Some(&last.bill), before, after, at);
                if let Some(last) = self.0.last_mut() {
                    last.bill = bill;
                }
            }
            _ => self.0.push(BillRow { bill: bill_after(None, before, after, at), opening: before }),
        }
        if self.0.len() > KEPT_MONTHS {
            self.0.drain(..self.0.len() - KEPT_MONTHS);
        }
    }

    /// The seat's bill for `month`, and what it held at the month's end; `now` is what it holds
    /// now (the end of the current month is read as now).
    pub fn month(&self, month: YearMonth, now: Held) -> (BillMonth, Held) {
        let at = self.0.partition_point(|r| r.bill.month < month);
        match self.0.get(at) {
            Some(row) if row.bill.month == month => (row.bill, self.0.get(at + 1).map_or(now, |next| next.opening)),
            Some(later) => (BillMonth::steady(month, later.opening), later.opening),
            None => (BillMonth::steady(month, now), now),
        }
    }
}

/// `overage` credits at `OVERAGE_PRICE_USD`, to the nearest millionth of a dollar (half up).
/// Exact for Kiro's figures: 0.01 credit at any price in whole tenths of a cent.
pub fn overage_cost(overage: MilliCredits, pricing: &Pricing) -> MicroUsd {
    let micro = (u128::from(overage) * u128::from(pricing.overage) + 500) / 1000;
    MicroUsd::try_from(micro).unwrap_or(MicroUsd::MAX)
}

/// What Kiro bills for a month: nothing unless the seat was `ACTIVE` at some instant of it; then,
/// once, the price of the highest tier it held that month (an upgrade bills the higher tier in
/// full, a cancel still bills the month), plus the month's `Overage_Credits_Used` at
/// `OVERAGE_PRICE_USD`.
///
/// A month without an `ACTIVE` instant costs nothing, overage included: credits are spent by
/// using Kiro, and use activates a held seat, so overage in such a month was spent without a
/// seat (after a cancel, before a grant's date), outside any subscription this profile pays for.
pub fn month_cost(bill: &BillMonth, overage: MilliCredits, pricing: &Pricing) -> MicroUsd {
    match bill.highest_tier {
        Some(tier) if bill.active => pricing.price(tier).saturating_add(overage_cost(overage, pricing)),
        _ => 0,
    }
}

/// What a month with `credits_used` would cost on `tier`: its price plus the credits beyond its
/// included ones at the overage price.
pub fn tier_cost(tier: Tier, credits_used: MilliCredits, pricing: &Pricing) -> MicroUsd {
    let beyond = credits_used.saturating_sub(pricing.credits(tier).saturating_mul(1000));
    pricing.price(tier).saturating_add(overage_cost(beyond, pricing))
}

/// The tier whose [`tier_cost`] is lowest for the month's `credits_used` (overage included); ties
/// go to `current`, then to the lower tier. `None` when that is `current`.
pub fn suggested_tier(current: Tier, credits_used: MilliCredits, pricing: &Pricing) -> Option<Tier> {
    let cost = |t| tier_cost(t, credits_used, pricing);
    let mut best = current;
    for tier in Tier::ALL {
        if cost(tier) < cost(best) {
            best = tier;
        }
    }
    (best != current).then_some(best)
}

/// One user's facts for the month being summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMonth {
    /// What the seat holds now (for a past month: at its end).
    pub held_now: Held,
    /// The user's row of that month, if the seat changed in it. `None`, or a row of another
    /// month, reads as [`BillMonth::steady`] at `held_now`.
    pub bill: Option<BillMonth>,
    /// The month's `Credits_Used`, overage included.
    pub credits_used: MilliCredits,
    /// The month's `Overage_Credits_Used`.
    pub overage_credits: MilliCredits,
}

/// One tier's row of `GET /usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierUsage {
    /// Seats held now at this tier, `PENDING` and `ACTIVE`.
    pub seats: u64,
    pub pending: u64,
    pub active: u64,
    /// The included credits of those seats.
    pub credits_included: u64,
    /// Credits of the users whose highest tier of the month is this one (the row carrying their
    /// cost).
    #[serde(serialize_with = "credits_number")]
    pub credits_used: MilliCredits,
    #[serde(serialize_with = "credits_number")]
    pub overage_credits_used: MilliCredits,
    #[serde(rename = "estimatedCostUsd", serialize_with = "usd_number")]
    pub estimated_cost: MicroUsd,
}

/// The `total` of `GET /usage`: the sum of the tier rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalUsage {
    pub seats: u64,
    pub pending: u64,
    pub active: u64,
    #[serde(serialize_with = "credits_number")]
    pub credits_used: MilliCredits,
    #[serde(serialize_with = "credits_number")]
    pub overage_credits_used: MilliCredits,
    #[serde(rename = "estimatedCostUsd", serialize_with = "usd_number")]
    pub estimated_cost: MicroUsd,
}

/// `{"month", "tiers", "total"}` of `GET /usage`; the caller adds `groups` (e.g. beside it with
/// `#[serde(flatten)]`). Every tier is present, zeros included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    pub month: YearMonth,
    pub tiers: BTreeMap<Tier, TierUsage>,
    pub total: TotalUsage,
}

impl UsageSummary {
    pub fn new(month: YearMonth) -> Self {
        Self {
            month,
            tiers: Tier::ALL.into_iter().map(|t| (t, TierUsage::default())).collect(),
            total: TotalUsage::default(),
        }
    }

    pub fn from_users<'a>(month: YearMonth, users: impl IntoIterator<Item = &'a UserMonth>, pricing: &Pricing) -> Self {
        let mut summary = Self::new(month);
        for user in users {
            summary.add(user, pricing);
        }
        summary
    }

    /// Adds `other`, a summary of the same month over other users (another shard's): the
    /// summary of both sets of users together.
    pub fn merge(&mut self, other: &UsageSummary) {
        for (tier, theirs) in &other.tiers {
            let row = self.tiers.entry(*tier).or_default();
            row.seats += theirs.seats;
            row.pending += theirs.pending;
            row.active += theirs.active;
            row.credits_included = row.credits_included.saturating_add(theirs.credits_included);
            row.credits_used = row.credits_used.saturating_add(theirs.credits_used);
            row.overage_credits_used = row.overage_credits_used.saturating_add(theirs.overage_credits_used);
            row.estimated_cost = row.estimated_cost.saturating_add(theirs.estimated_cost);
        }
        let (total, theirs) = (&mut self.total, &other.total);
        total.seats += theirs.seats;
        total.pending += theirs.pending;
        total.active += theirs.active;
        total.credits_used = total.credits_used.saturating_add(theirs.credits_used);
        total.overage_credits_used = total.overage_credits_used.saturating_add(theirs.overage_credits_used);
        total.estimated_cost = total.estimated_cost.saturating_add(theirs.estimated_cost);
    }

    /// Counts one user: their seat now in the row of its tier now; their credits and whole cost
    /// in the row of the highest tier they held this month. A user who held no seat this month
    /// (activity without a seat) is in no row, nor in the total.
    pub fn add(&mut self, user: &UserMonth, pricing: &Pricing) {
        if let Some((tier, active)) = user.held_now {
            let row = self.tiers.entry(tier).or_default();
            row.seats += 1;
            row.credits_included = row.credits_included.saturating_add(pricing.credits(tier));
            self.total.seats += 1;
            if active {
                row.active += 1;
                self.total.active += 1;
            } else {
                row.pending += 1;
                self.total.pending += 1;
            }
        }
        let bill = match user.bill {
            Some(bill) if bill.month == self.month => bill,
            _ => BillMonth::steady(self.month, user.held_now),
        };
        if let Some(tier) = bill.highest_tier {
            let cost = month_cost(&bill, user.overage_credits, pricing);
            let row = self.tiers.entry(tier).or_default();
            row.credits_used = row.credits_used.saturating_add(user.credits_used);
            row.overage_credits_used = row.overage_credits_used.saturating_add(user.overage_credits);
            row.estimated_cost = row.estimated_cost.saturating_add(cost);
            self.total.credits_used = self.total.credits_used.saturating_add(user.credits_used);
            self.total.overage_credits_used = self.total.overage_credits_used.saturating_add(user.overage_credits);
            self.total.estimated_cost = self.total.estimated_cost.saturating_add(cost);
        }
    }
}

/// Credits as a JSON number, exact: `1234.5`.
fn credits_number<S: Serializer>(v: &MilliCredits, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*v as f64 / 1e3)
}

/// Dollars as a JSON number, exact to the millionth, not rounded to cents: `28.0204`. A double
/// holds any amount below a billion dollars to the millionth, and its shortest form is that
/// decimal.
fn usd_number<S: Serializer>(v: &MicroUsd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*v as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::time::{parse, start_of_next_month};

    fn at(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    fn month(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    /// A report of 30 November ingested after a change on 1 December: the activation reaches
    /// back into November, and December is active from its first instant.
    #[test]
    fn an_activation_back_dated_before_the_latest_row_activates_every_month_since() {
        let mut bills = Bills::default();
        bills.record(None, Some((Tier::Pro, false)), at("2026-11-20T10:00:00Z"));
        bills.record(Some((Tier::Pro, false)), Some((Tier::Power, false)), at("2026-12-01T02:00:00Z"));
        bills.record(Some((Tier::Pro, false)), Some((Tier::Pro, true)), at("2026-11-30T00:00:00Z"));
        let (nov, nov_end) = bills.month(month("2026-11"), Some((Tier::Power, true)));
        assert_eq!((nov.highest_tier, nov.active, nov_end), (Some(Tier::Pro), true, Some((Tier::Pro, true))));
        let (dec, _) = bills.month(month("2026-12"), Some((Tier::Power, true)));
        assert_eq!((dec.highest_tier, dec.active), (Some(Tier::Power), true));

        // Back-dated into a month without a row: one is made for it.
        let mut bills = Bills::default();
        bills.record(None, Some((Tier::Pro, false)), at("2026-10-20T10:00:00Z"));
        bills.record(Some((Tier::Pro, false)), Some((Tier::ProPlus, false)), at("2026-12-01T02:00:00Z"));
        bills.record(Some((Tier::Pro, false)), Some((Tier::Pro, true)), at("2026-11-30T00:00:00Z"));
        let months: Vec<String> = bills.rows().iter().map(|r| r.bill.month.to_string()).collect();
        assert_eq!(months, ["2026-10", "2026-11", "2026-12"]);
        assert!(!bills.month(month("2026-10"), None).0.active);
        assert!(bills.month(month("2026-11"), None).0.active);
    }

    #[test]
    fn only_the_latest_months_are_kept() {
        let mut bills = Bills::default();
        let mut m = month("2025-01");
        for _ in 0..20 {
            bills.record(Some((Tier::Pro, true)), Some((Tier::Pro, true)), m.first_instant() + Duration::days(3));
            m = m.next();
        }
        assert_eq!(bills.rows().len(), KEPT_MONTHS);
        assert_eq!(bills.rows()[0].bill.month, month("2025-08"));
    }

    /// The contract's defaults: PRO=20, PRO_PLUS=40, POWER=200; 1000/2000/10000 credits; 0.04.
    fn pricing() -> Pricing {
        Pricing { prices: [20_000_000, 40_000_000, 200_000_000], credits: [1000, 2000, 10000], overage: 40_000 }
    }

    const USD: MicroUsd = 1_000_000;

    #[test]
    fn months_parse_only_as_yyyy_mm_and_step_over_the_year() {
        let m = month("2026-12");
        assert_eq!((m.year(), m.month(), m.to_string()), (2026, 12, "2026-12".to_owned()));
        assert_eq!(m.next(), month("2027-01"));
        assert_eq!(m.first_instant(), at("2026-12-01T00:00:00Z"));
        assert_eq!(YearMonth::of(at("2027-01-31T23:59:59.999Z")), month("2027-01"));
        assert_eq!(YearMonth::of(month("2026-03").first_instant()), month("2026-03"));
        for bad in
            ["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", " 2026-01", "+026-01", "2026/01", "", "２０２６-01"]
        {
            assert_eq!(bad.parse::<YearMonth>(), Err(InvalidMonth), "{bad:?}");
        }
        assert_eq!(serde_json::to_value(m).unwrap(), json!("2026-12"));
        assert_eq!(serde_json::from_value::<YearMonth>(json!("2026-02")).unwrap(), month("2026-02"));
        assert!(serde_json::from_value::<YearMonth>(json!("2026-2")).is_err());
    }

    #[test]
    fn upgrade_mid_month_bills_the_higher_tier_in_full() {
        // Given an ACTIVE Pro seat since December, when it is upgraded to Power on 30 January,
        let dec = BillMonth::steady(month("2025-12"), Some((Tier::Pro, true)));
        let jan =
            bill_after(Some(&dec), Some((Tier::Pro, true)), Some((Tier::Power, true)), at("2026-01-30T12:00:00Z"));
        // then January is billed once, at Power's full price.
        assert_eq!(jan, BillMonth { month: month("2026-01"), highest_tier: Some(Tier::Power), active: true });
        assert_eq!(month_cost(&jan, 0, &pricing()), 200 * USD);
    }

    #[test]
    fn downgrade_takes_effect_next_month() {
        // Given an ACTIVE Power seat, downgraded to Pro on 10 January (pending: no seat change),
        // when the audit applies it at pendingTierEffectiveAt, the first instant of February,
        let jan = BillMonth::steady(month("2026-01"), Some((Tier::Power, true)));
        let effective = start_of_next_month(at("2026-01-10T09:00:00Z"));
        let feb = bill_after(Some(&jan), Some((Tier::Power, true)), Some((Tier::Pro, true)), effective);
        // then January is billed at Power and February at Pro.
        assert_eq!(month_cost(&jan, 0, &pricing()), 200 * USD);
        assert_eq!(feb, BillMonth { month: month("2026-02"), highest_tier: Some(Tier::Pro), active: true });
        assert_eq!(month_cost(&feb, 0, &pricing()), 20 * USD);
        // Passed the audit's clock instead, three hours in, February would be billed at Power.
        let late =
            bill_after(Some(&jan), Some((Tier::Power, true)), Some((Tier::Pro, true)), effective + Duration::hours(3));
        assert_eq!(late.highest_tier, Some(Tier::Power));
    }

    #[test]
    fn cancel_still_bills_the_month() {
        let nov = BillMonth::steady(month("2025-11"), Some((Tier::ProPlus, true)));
        let jan = bill_after(Some(&nov), Some((Tier::ProPlus, true)), None, at("2026-01-02T08:00:00Z"));
        assert_eq!(month_cost(&jan, 150_000, &pricing()), 40 * USD + 6 * USD, "price plus 150 overage credits");
        let feb = BillMonth::steady(month("2026-02"), None);
        assert_eq!(month_cost(&feb, 0, &pricing()), 0, "the month after the cancel costs nothing");
    }

    #[test]
    fn pending_costs_nothing() {
        // Granted Pro, raised to Power through a group, canceled: never used, never billed,
        // whatever overage a report attributes to the user.
        let jan = bill_after(None, None, Some((Tier::Pro, false)), at("2026-01-03T10:00:00Z"));
        let jan =
            bill_after(Some(&jan), Some((Tier::Pro, false)), Some((Tier::Power, false)), at("2026-01-10T10:00:00Z"));
        let jan = bill_after(Some(&jan), Some((Tier::Power, false)), None, at("2026-01-20T10:00:00Z"));
        assert_eq!(jan, BillMonth { month: month("2026-01"), highest_tier: Some(Tier::Power), active: false });
        assert_eq!(month_cost(&jan, 1_000_000, &pricing()), 0);
    }

    #[test]
    fn the_highest_tier_held_while_pending_still_prices_an_active_month() {
        // Held Power while PENDING, left the Power group (Pro at once), then used Kiro: the
        // month's highest tier held is Power.
        let jan = bill_after(None, None, Some((Tier::Power, false)), at("2026-01-05T10:00:00Z"));
        let jan =
            bill_after(Some(&jan), Some((Tier::Power, false)), Some((Tier::Pro, false)), at("2026-01-06T10:00:00Z"));
        let jan = bill_after(Some(&jan), Some((Tier::Pro, false)), Some((Tier::Pro, true)), at("2026-01-07T10:00:00Z"));
        assert_eq!(month_cost(&jan, 0, &pricing()), 200 * USD);
    }

    #[test]
    fn reactivation_in_a_later_month_bills_that_month_again() {
        let jan = bill_after(None, Some((Tier::Pro, true)), None, at("2026-01-10T00:00:00Z"));
        let feb = BillMonth::steady(month("2026-02"), None);
        let mar = bill_after(Some(&jan), None, Some((Tier::ProPlus, false)), at("2026-03-03T10:00:00Z"));
        assert_eq!(month_cost(&mar, 0, &pricing()), 0, "granted again: PENDING");
        let mar = bill_after(
            Some(&mar),
            Some((Tier::ProPlus, false)),
            Some((Tier::ProPlus, true)),
            at("2026-03-04T00:00:00Z"),
        );
        let costs = [&jan, &feb, &mar].map(|b| month_cost(b, 0, &pricing()));
        assert_eq!(costs, [20 * USD, 0, 40 * USD]);
    }

    #[test]
    fn an_activation_back_dated_into_the_previous_month_bills_both_months() {
        // Granted Pro on 31 January, used that day; the report arrives on 1 February, after an
        // upgrade at 00:30 has already opened February's row as PENDING.
        let jan = bill_after(None, None, Some((Tier::Pro, false)), at("2026-01-31T18:00:00Z"));
        let feb =
            bill_after(Some(&jan), Some((Tier::Pro, false)), Some((Tier::Power, false)), at("2026-02-01T00:30:00Z"));
        assert!(!feb.active);
        // The recipe: at activatedAt in January's row, then at February's first instant with the
        // tier then held.
        let jan = bill_after(Some(&jan), Some((Tier::Pro, false)), Some((Tier::Pro, true)), at("2026-01-31T18:00:00Z"));
        let feb =
            bill_after(Some(&feb), Some((Tier::Pro, true)), Some((Tier::Pro, true)), month("2026-02").first_instant());
        assert_eq!([&jan, &feb].map(|b| month_cost(b, 0, &pricing())), [20 * USD, 200 * USD]);
    }

    #[test]
    fn overage_is_added_exactly_and_rounded_half_up_to_the_micro_dollar() {
        let active_pro = BillMonth::steady(month("2026-01"), Some((Tier::Pro, true)));
        assert_eq!(month_cost(&active_pro, 200_510, &pricing()), 28_020_400, "20 + 200.51 × 0.04 = 28.0204");
        let odd = Pricing { overage: 1, ..pricing() };
        assert_eq!((overage_cost(499, &odd), overage_cost(500, &odd), overage_cost(1_500, &odd)), (0, 1, 2));
        let huge = Pricing { overage: MicroUsd::MAX, ..pricing() };
        assert_eq!(overage_cost(MilliCredits::MAX, &huge), MicroUsd::MAX, "saturates, never wraps");
    }

    #[test]
    fn suggested_tier_ties_go_to_the_current_tier_then_the_lower_one() {
        let p = pricing();
        let credits = |c: u64| c * 1000;
        // 1,500 credits: Pro 20 + 500 × 0.04 = 40 = Pro+; Power 200.
        assert_eq!(suggested_tier(Tier::Pro, credits(1500), &p), None);
        assert_eq!(suggested_tier(Tier::ProPlus, credits(1500), &p), None);
        assert_eq!(suggested_tier(Tier::Power, credits(1500), &p), Some(Tier::Pro));
        // 6,000 credits: Pro+ 40 + 4,000 × 0.04 = 200 = Power; Pro 220.
        assert_eq!(suggested_tier(Tier::Pro, credits(6000), &p), Some(Tier::ProPlus));
        assert_eq!(suggested_tier(Tier::Power, credits(6000), &p), None);
        // Clear winners.
        assert_eq!(suggested_tier(Tier::Power, 0, &p), Some(Tier::Pro));
        assert_eq!(suggested_tier(Tier::Pro, credits(1501), &p), Some(Tier::ProPlus));
        assert_eq!(suggested_tier(Tier::ProPlus, credits(100_000), &p), Some(Tier::Power));
    }

    #[test]
    fn the_summary_counts_seats_by_tier_now_and_costs_by_highest_tier_of_the_month() {
        let p = pricing();
        let jan = month("2026-01");
        let users = [
            // ACTIVE Pro all month, 300.25 credits.
            UserMonth { held_now: Some((Tier::Pro, true)), bill: None, credits_used: 300_250, overage_credits: 0 },
            // PENDING Pro+, granted this month.
            UserMonth {
                held_now: Some((Tier::ProPlus, false)),
                bill: Some(bill_after(None, None, Some((Tier::ProPlus, false)), at("2026-01-20T00:00:00Z"))),
                credits_used: 0,
                overage_credits: 0,
            },
            // ACTIVE Power, canceled this month, 100 overage credits: billed in the Power row.
            UserMonth {
                held_now: None,
                bill: Some(bill_after(None, Some((Tier::Power, true)), None, at("2026-01-15T00:00:00Z"))),
                credits_used: 10_100_000,
                overage_credits: 100_000,
            },
            // Upgraded Pro → Pro+ this month, still ACTIVE: a Pro+ seat, billed at Pro+.
            UserMonth {
                held_now: Some((Tier::ProPlus, true)),
                bill: Some(bill_after(
                    None,
                    Some((Tier::Pro, true)),
                    Some((Tier::ProPlus, true)),
                    at("2026-01-10T00:00:00Z"),
                )),
                credits_used: 2_500_000,
                overage_credits: 500_000,
            },
            // Left the Power group mid-month, ACTIVE at Pro now: a Pro seat, billed at Power.
            UserMonth {
                held_now: Some((Tier::Pro, true)),
                bill: Some(bill_after(
                    None,
                    Some((Tier::Power, true)),
                    Some((Tier::Pro, true)),
                    at("2026-01-12T00:00:00Z"),
                )),
                credits_used: 1_000_000,
                overage_credits: 0,
            },
            // Activity without a seat: in no row.
            UserMonth { held_now: None, bill: None, credits_used: 42_000, overage_credits: 0 },
            // A stale row of December is no row of January: steady at what is held now.
            UserMonth {
                held_now: Some((Tier::Pro, false)),
                bill: Some(BillMonth::steady(month("2025-12"), Some((Tier::Power, true)))),
                credits_used: 0,
                overage_credits: 0,
            },
        ];
        let summary = UsageSummary::from_users(jan, &users, &p);
        assert_eq!(
            serde_json::to_value(&summary).unwrap(),
            json!({
                "month": "2026-01",
                "tiers": {
                    "PRO": {"seats": 3, "pending": 1, "active": 2, "creditsIncluded": 3000, "creditsUsed": 300.25,
                            "overageCreditsUsed": 0.0, "estimatedCostUsd": 20.0},
                    "PRO_PLUS": {"seats": 2, "pending": 1, "active": 1, "creditsIncluded": 4000, "creditsUsed": 2500.0,
                                 "overageCreditsUsed": 500.0, "estimatedCostUsd": 60.0},
                    "POWER": {"seats": 0, "pending": 0, "active": 0, "creditsIncluded": 0, "creditsUsed": 11100.0,
                              "overageCreditsUsed": 100.0, "estimatedCostUsd": 404.0}
                },
                "total": {"seats": 5, "pending": 2, "active": 3, "creditsUsed": 13900.25, "overageCreditsUsed": 600.0,
                          "estimatedCostUsd": 484.0}
            })
        );
        assert_eq!(
            serde_json::to_string(&UsageSummary::new(jan)).unwrap(),
            concat!(
                r#"{"month":"2026-01","tiers":{"#,
                r#""PRO":{"seats":0,"pending":0,"active":0,"creditsIncluded":0,"creditsUsed":0.0,"overageCreditsUsed":0.0,"estimatedCostUsd":0.0},"#,
                r#""PRO_PLUS":{"seats":0,"pending":0,"active":0,"creditsIncluded":0,"creditsUsed":0.0,"overageCreditsUsed":0.0,"estimatedCostUsd":0.0},"#,
                r#""POWER":{"seats":0,"pending":0,"active":0,"creditsIncluded":0,"creditsUsed":0.0,"overageCreditsUsed":0.0,"estimatedCostUsd":0.0}},"#,
                r#""total":{"seats":0,"pending":0,"active":0,"creditsUsed":0.0,"overageCreditsUsed":0.0,"estimatedCostUsd":0.0}}"#
            ),
            "every tier present, zeros included, in tier order"
        );
    }

    // ---- The model: random histories of one user's seat, billed two ways. ----

    #[derive(Debug, Clone, Copy)]
    enum Step {
        Grant(Tier),
        /// `PUT` to this tier: up at once, down at the next month's first instant, same clears.
        Change(Tier),
        Cancel,
        /// Activity dated the UTC day of the step.
        Activity,
    }

    #[derive(Debug, Clone, Copy)]
    enum Gap {
        Seconds(i64),
        /// To the first instant of the next month.
        NextMonth,
    }

    /// One change of the seat: when, from, to.
    type Change = (DateTime<Utc>, Held, Held);

    /// A tiny seat, by the contract's vocabulary, recording every change of what it holds.
    #[derive(Default)]
    struct Sim {
        held: Held,
        granted_on: Option<chrono::NaiveDate>,
        pending: Option<(Tier, DateTime<Utc>)>,
        activity_days: Vec<chrono::NaiveDate>,
        changes: Vec<Change>,
    }

    impl Sim {
        fn set(&mut self, at: DateTime<Utc>, after: Held) {
            if after != self.held {
                self.changes.push((at, self.held, after));
                self.held = after;
            }
        }

        /// The audit applies a due downgrade at its effective instant.
        fn apply_due(&mut self, until: DateTime<Utc>) {
            if let Some((tier, effective)) = self.pending.filter(|(_, e)| *e <= until) {
                self.pending = None;
                if let Some((_, active)) = self.held {
                    self.set(effective, Some((tier, active)));
                }
            }
        }

        fn step(&mut self, at: DateTime<Utc>, step: Step) {
            self.apply_due(at);
            let today = at.date_naive();
            match (step, self.held) {
                (Step::Grant(tier), None) => {
                    self.granted_on = Some(today);
                    let used = self.activity_days.iter().any(|d| *d >= today);
                    self.set(at, Some((tier, used)));
                }
                (Step::Grant(tier) | Step::Change(tier), Some((current, active))) => {
                    if tier > current {
                        self.pending = None;
                        self.set(at, Some((tier, active)));
                    } else if tier < current {
                        self.pending = Some((tier, start_of_next_month(at)));
                    } else {
                        self.pending = None;
                    }
                }
                (Step::Change(_), None) => {}
                (Step::Cancel, _) => {
                    self.pending = None;
                    self.set(at, None);
                }
                (Step::Activity, held) => {
                    self.activity_days.push(today);
                    let granted_by_then = self.granted_on.is_some_and(|g| today >= g);
                    if let (Some((tier, false)), true) = (held, granted_by_then) {
                        self.set(at, Some((tier, true)));
                    }
                }
            }
        }
    }

    /// The direct model: every state the seat passed through in the month — what it held at the
    /// first instant (unless a change happened exactly then) and each state a change in the
    /// month led to; billed iff one is ACTIVE, at the highest tier among them.
    fn direct_cost(changes: &[Change], m: YearMonth, overage: MilliCredits, p: &Pricing) -> MicroUsd {
        let (start, end) = (m.first_instant(), m.next().first_instant());
        let mut states: Vec<Held> = Vec::new();
        if !changes.iter().any(|c| c.0 == start) {
            states.push(changes.iter().rev().find(|c| c.0 < start).and_then(|c| c.2));
        }
        states.extend(changes.iter().filter(|c| start <= c.0 && c.0 < end).map(|c| c.2));
        let held: Vec<(Tier, bool)> = states.into_iter().flatten().collect();
        if !held.iter().any(|(_, active)| *active) {
            return 0;
        }
        let top = held.iter().map(|(tier, _)| *tier).max().unwrap();
        // Prices of the test are in whole tenths of a cent: no rounding to model.
        p.price(top) + overage * (p.overage / 1000)
    }

    /// A seat's history from `offset` seconds into `first`: each step after its gap.
    fn replay(first: YearMonth, offset: i64, history: Vec<(Gap, Step)>) -> (Sim, DateTime<Utc>) {
        let mut now = first.first_instant() + Duration::seconds(offset);
        let mut sim = Sim::default();
        for (gap, step) in history {
            now = match gap {
                Gap::Seconds(s) => now + Duration::seconds(s),
                Gap::NextMonth => start_of_next_month(now),
            };
            sim.step(now, step);
        }
        (sim, now)
    }

    fn arb_tier() -> impl Strategy<Value = Tier> {
        prop::sample::select(Tier::ALL.to_vec())
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => arb_tier().prop_map(Step::Grant),
            3 => arb_tier().prop_map(Step::Change),
            1 => Just(Step::Cancel),
            3 => Just(Step::Activity),
        ]
    }

    fn arb_gap() -> impl Strategy<Value = Gap> {
        prop_oneof![
            (1i64..3_600).prop_map(Gap::Seconds),
            (3_600i64..86_400).prop_map(Gap::Seconds),
            (86_400i64..10 * 86_400).prop_map(Gap::Seconds),
            (10 * 86_400i64..40 * 86_400).prop_map(Gap::Seconds),
            Just(Gap::NextMonth),
        ]
    }

    /// Any prices — not even rising with the tier — and an overage price in tenths of a cent.
    fn arb_pricing() -> impl Strategy<Value = Pricing> {
        (prop::array::uniform3(0u64..=300_000_000), prop::array::uniform3(0u64..=20_000), 0u64..=100)
            .prop_map(|(prices, credits, tenths_of_cent)| Pricing { prices, credits, overage: tenths_of_cent * 1000 })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Replaying a seat's changes through `bill_after` bills every month as the direct model
        /// computes it from the whole history.
        #[test]
        fn bill_after_replayed_bills_every_month_as_the_history_says(
            offset in 0i64..31 * 86_400,
            history in prop::collection::vec((arb_gap(), arb_step()), 1..30),
            overage in prop::collection::vec(0u64..3_000_000, 12),
            p in arb_pricing(),
        ) {
            let first = month("2026-01");
            let (mut sim, now) = replay(first, offset, history);
            let last = YearMonth::of(now).next().next();
            sim.apply_due(last.first_instant());

            let mut rows: BTreeMap<YearMonth, BillMonth> = BTreeMap::new();
            for (at, before, after) in &sim.changes {
                let row = bill_after(rows.values().next_back(), *before, *after, *at);
                prop_assert_eq!(row.month, YearMonth::of(*at));
                rows.insert(row.month, row);
            }

            let mut m = first;
            let mut i = 0;
            while m <= last {
                let held_at_end = sim.changes.iter().rev().find(|c| c.0 < m.next().first_instant()).and_then(|c| c.2);
                let bill = rows.get(&m).copied().unwrap_or_else(|| BillMonth::steady(m, held_at_end));
                let o = overage[i % overage.len()];
                prop_assert_eq!(month_cost(&bill, o, &p), direct_cost(&sim.changes, m, o, &p), "month {}", m);
                m = m.next();
                i += 1;
            }
        }

        /// The seat's kept [`Bills`], fed every change, bill each of the last [`KEPT_MONTHS`]
        /// months as the direct model computes it, and know what the seat held at its end.
        #[test]
        fn bills_kept_on_the_seat_bill_every_kept_month_as_the_history_says(
            offset in 0i64..31 * 86_400,
            history in prop::collection::vec((arb_gap(), arb_step()), 1..40),
            o in 0u64..3_000_000,
            p in arb_pricing(),
        ) {
            let first = month("2026-01");
            let (mut sim, now) = replay(first, offset, history);
            let last = YearMonth::of(now).next();
            sim.apply_due(last.first_instant());

            let mut bills = Bills::default();
            for (at, before, after) in &sim.changes {
                bills.record(*before, *after, *at);
            }
            prop_assert!(bills.rows().len() <= KEPT_MONTHS);
            let held_now = sim.changes.last().and_then(|c| c.2);
            let oldest_kept = bills.rows().first().map_or(first, |r| r.bill.month);
            let mut m = oldest_kept;
            while m <= last {
                let held_at_end = sim.changes.iter().rev().find(|c| c.0 < m.next().first_instant()).and_then(|c| c.2);
                let (bill, at_end) = bills.month(m, held_now);
                prop_assert_eq!(month_cost(&bill, o, &p), direct_cost(&sim.changes, m, o, &p), "month {}", m);
                prop_assert_eq!(at_end, held_at_end, "held at the end of {}", m);
                m = m.next();
            }
        }

        /// The summary's total is the sum of its rows, and every seat is PENDING or ACTIVE.
        #[test]
        fn the_total_is_the_sum_of_the_rows(
            users in prop::collection::vec(
                (prop::option::of((arb_tier(), any::<bool>())), prop::option::of((prop::option::of(arb_tier()), any::<bool>())),
                 0u64..50_000_000, 0u64..5_000_000),
                0..20),
            p in arb_pricing(),
            split in any::<prop::sample::Index>(),
        ) {
            let m = month("2026-05");
            let users: Vec<UserMonth> = users.into_iter().map(|(held_now, bill, credits_used, overage_credits)| UserMonth {
                held_now,
                bill: bill.map(|(highest_tier, active)| BillMonth { month: m, highest_tier, active: active && highest_tier.is_some() }),
                credits_used,
                overage_credits,
            }).collect();
            let s = UsageSummary::from_users(m, &users, &p);
            let rows: Vec<&TierUsage> = s.tiers.values().collect();
            prop_assert_eq!(rows.len(), 3);
            let sum = |f: fn(&TierUsage) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
            prop_assert_eq!(s.total.seats, sum(|r| r.seats));
            prop_assert_eq!(s.total.pending, sum(|r| r.pending));
            prop_assert_eq!(s.total.active, sum(|r| r.active));
            prop_assert_eq!(s.total.credits_used, sum(|r| r.credits_used));
            prop_assert_eq!(s.total.overage_credits_used, sum(|r| r.overage_credits_used));
            prop_assert_eq!(s.total.estimated_cost, sum(|r| r.estimated_cost));
            prop_assert!(rows.iter().all(|r| r.seats == r.pending + r.active));
            prop_assert_eq!(s.total.seats, users.iter().filter(|u| u.held_now.is_some()).count() as u64);
            // Summaries of two parts of the users, merged: the summary of them all.
            let (a, b) = users.split_at(split.index(users.len() + 1));
            let mut merged = UsageSummary::from_users(m, a, &p);
            merged.merge(&UsageSummary::from_users(m, b, &p));
            prop_assert_eq!(merged, s);
        }

        /// Amounts and credits reach JSON as their exact decimals.
        #[test]
        fn json_numbers_are_the_exact_decimals(micro in 0u64..1_000_000_000_000_000, milli in 0u64..1_000_000_000_000) {
            let row = TierUsage { estimated_cost: micro, credits_used: milli, ..TierUsage::default() };
            let v = serde_json::to_value(&row).unwrap();
            let shown = |k: &str| v[k].to_string();
            let exact = |n: u64, places: usize| {
                let s = format!("{n:0>width$}", width = places + 1);
                let (whole, frac) = s.split_at(s.len() - places);
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() { format!("{whole}.0") } else { format!("{whole}.{frac}") }
            };
            prop_assert_eq!(shown("estimatedCostUsd"), exact(micro, 6));
            prop_assert_eq!(shown("creditsUsed"), exact(milli, 3));
        }
    }
}
