//! The Dashboard: seats per tier and status, the groups, this month's estimate, what to reclaim,
//! and the last audit.

use kiro::config::{MicroUsd, Pricing};
use kiro::domain::audit::AuditReport;
use kiro::domain::{SeatStatus, Tier};
use maud::{Markup, html};

use crate::members::Sub;
use crate::views::{self, Section, Viewer, audit_summary, group_digits, usd};

/// Seats held now by tier and status, and canceled ones.
#[derive(Debug, Default)]
pub struct Counts {
    /// By tier in `Tier::ALL` order.
    pub pending: [u64; 3],
    pub active: [u64; 3],
    pub canceled: u64,
}

impl Counts {
    pub fn add(&mut self, tier: Tier, status: SeatStatus) {
        let i = Tier::ALL.iter().position(|t| *t == tier).unwrap_or_default();
        match status {
            SeatStatus::Pending => self.pending[i] += 1,
            SeatStatus::Active => self.active[i] += 1,
            SeatStatus::Canceled => self.canceled += 1,
        }
    }

    pub fn held(&self, i: usize) -> u64 {
        self.pending[i] + self.active[i]
    }
}

pub struct Reclaim {
    pub user_name: String,
    pub tier: Tier,
    pub idle_since: String,
}

pub struct Dashboard<'a> {
    pub profile_name: &'a str,
    pub counts: Counts,
    pub groups: Vec<Sub>,
    pub reclaim: Vec<Reclaim>,
    pub reclaim_total: u64,
    pub last_audit: Option<AuditReport>,
    /// More seats than were read: the figures cover the first ones.
    pub partial: bool,
    /// This month's estimate (`GET /usage`'s total) and its overage part.
    pub estimate: MicroUsd,
    pub overage_credits: f64,
}

pub fn page(viewer: &Viewer, d: &Dashboard, pricing: &Pricing, notice: Option<&str>) -> Markup {
    let body = html! {
        p { "Profile " strong { (d.profile_name) } "." }
        @if d.partial { p.hint { "This account has more seats than the dashboard reads at once; figures cover the first ones. The Users table lists them all." } }
        div.cards {
            section.card aria-labelledby="seats-title" {
                h2 #seats-title { "Seats" }
                table {
                    caption.visually-hidden { "Seats per tier and status" }
                    thead { tr { th scope="col" { "Tier" } th scope="col" { "Active" } th scope="col" { "Pending" } th scope="col" { "Included credits a month" } } }
                    tbody {
                        @for (i, t) in Tier::ALL.iter().enumerate() {
                            tr {
                                th scope="row" { (t.label()) }
                                td { (group_digits(d.counts.active[i])) }
                                td { (group_digits(d.counts.pending[i])) }
                                td { (group_digits(d.counts.held(i) * pricing.credits(*t))) }
                            }
                        }
                    }
                    tfoot { tr { th scope="row" { "Total" } td { (group_digits(d.counts.active.iter().sum())) } td { (group_digits(d.counts.pending.iter().sum())) } td {} } }
                }
                p { (group_digits(d.counts.canceled)) " canceled seats are kept for the record." }
            }
            section.card aria-labelledby="cost-title" {
                h2 #cost-title { "This month" }
                p.figure { (usd(d.estimate)) }
                p.hint { "Estimated by Kiro's billing rules: every seat Active this month at its highest tier, plus " (d.overage_credits) " overage credits at " (usd(pricing.overage)) " each; Pending seats cost nothing." }
            }
            section.card aria-labelledby="reclaim-title" {
                h2 #reclaim-title { "Seats to reclaim" }
                @if d.reclaim_total == 0 {
                    p { "None: every seat was granted or used within the last 30 days." }
                } @else {
                    p { (group_digits(d.reclaim_total)) " seats show no activity in 30 days." }
                    ul { @for r in &d.reclaim { li { (r.user_name) " (" (r.tier.label()) "), idle since " (r.idle_since) } } }
                }
            }
            section.card aria-labelledby="audit-title" {
                h2 #audit-title { "Last audit" }
                @match &d.last_audit {
                    Some(a) => p { (audit_summary(a)) "." },
                    None => p { "No audit has run yet." },
                }
                p { a href="/console/audits" { "All audits" } }
            }
        }
        section aria-labelledby="groups-title" {
            h2 #groups-title { "Groups" }
            @if d.groups.is_empty() { p { "No group is subscribed." } } @else {
                table {
                    caption.visually-hidden { "Seats per subscribed group" }
                    thead { tr { th scope="col" { "Group" } th scope="col" { "Tier" } th scope="col" { "Seats" } } }
                    tbody { @for g in &d.groups { tr { th scope="row" { (g.name) } td { (g.tier.label()) } td { (group_digits(g.seats)) } } } }
                }
            }
        }
    };
    views::page(viewer, Section::Dashboard, "Dashboard", notice, body)
}
