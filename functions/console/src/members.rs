//! Users & Groups: the seats table, the subscribed groups, and their dialogs (Add user / Add
//! group, Change plan, Deactivate plan).

use chrono::{DateTime, Utc};
use kiro::config::Pricing;
use kiro::domain::{PrincipalType, SeatStatus, Tier};
use maud::{Markup, html};

use crate::views::{self, Section, Viewer, date, effect_of_change, encode, group_digits, status_label, tier_choices};

/// A subscription as a row's actions need it.
#[derive(Debug, Clone)]
pub struct Sub {
    pub kind: PrincipalType,
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub pending: Option<(Tier, DateTime<Utc>)>,
    pub seats: u64,
    pub fan_out_in_progress: Option<u64>,
    pub created_at: DateTime<Utc>,
}

impl Sub {
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// One source of a seat: where it comes from, its tier, and whether it is the one that wins.
pub struct SourceRow {
    pub label: String,
    pub tier: Tier,
    pub wins: bool,
}

pub struct SeatRow {
    pub user_name: String,
    pub tier: Tier,
    pub status: SeatStatus,
    pub sources: Vec<SourceRow>,
    pub granted_at: DateTime<Utc>,
    pub last_active: Option<String>,
    pub direct: Option<Sub>,
}

/// A principal found in the directory, to pick.
pub struct Pick {
    pub id: String,
    pub name: String,
    pub detail: String,
}

/// The Users tab's filters, as the query string carries them.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub q: String,
    pub tier: Option<Tier>,
    pub status: Option<SeatStatus>,
}

impl Filters {
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            q.append_pair("q", &self.q);
        }
        if let Some(t) = self.tier {
            q.append_pair("tier", t.as_str());
        }
        if let Some(s) = self.status {
            q.append_pair("status", s.as_str());
        }
        q.finish()
    }
}

/// The Add dialog's chosen tier in its URL: not `tier`, which is the Users table's filter.
pub const ADD_TIER: &str = "addTier";

pub enum Dialog {
    AddTier { kind: PrincipalType },
    AddSearch { kind: PrincipalType, tier: Tier, q: String, results: Vec<Pick> },
    Plan { sub: Sub },
    Deactivate { sub: Sub },
}

fn noun(kind: PrincipalType) -> &'static str {
    match kind {
        PrincipalType::User => "user",
        PrincipalType::Group => "group",
    }
}

fn tab_path(kind: PrincipalType) -> &'static str {
    match kind {
        PrincipalType::User => "/console/users",
        PrincipalType::Group => "/console/groups",
    }
}

fn tabs(current: PrincipalType) -> Markup {
    html! {
        div.tabs role="tablist" aria-label="Users and groups" {
            @for (kind, label) in [(PrincipalType::User, "Users"), (PrincipalType::Group, "Groups")] {
                a role="tab" href=(tab_path(kind)) aria-selected=(if kind == current { "true" } else { "false" }) { (label) }
            }
        }
    }
}

fn add_button(viewer: &Viewer, kind: PrincipalType) -> Markup {
    html! {
        @if viewer.can_change() {
            form.inline method="get" action=(tab_path(kind)) {
                input type="hidden" name="add" value=(kind.as_str());
                button type="submit" { "Add " (noun(kind)) }
            }
        }
    }
}

fn row_actions(viewer: &Viewer, sub: &Sub) -> Markup {
    let path = tab_path(sub.kind);
    html! {
        @if viewer.can_change() {
            div.row-actions {
                form.inline method="get" action=(path) {
                    input type="hidden" name="plan" value=(sub.key());
                    button.secondary type="submit" { "Change plan" }
                }
                form.inline method="get" action=(path) {
                    input type="hidden" name="deactivate" value=(sub.key());
                    button.danger type="submit" { "Deactivate plan" }
                }
            }
        }
    }
}

fn pending_note(sub: &Sub) -> Markup {
    html! {
        @if let Some((to, at)) = sub.pending {
            span.pending { "→ " (to.label()) " on " (date(&at)) }
        }
    }
}

#[allow(clippy::too_many_arguments)] // the page's parts, each a plain value
pub fn users(
    viewer: &Viewer,
    rows: &[SeatRow],
    filters: &Filters,
    next: Option<&str>,
    dialog: Option<Dialog>,
    pricing: &Pricing,
    notice: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let export = format!("/console/users.csv?{}", filters.query());
    let body = html! {
        (tabs(PrincipalType::User))
        div.toolbar {
            form.filters method="get" action="/console/users" role="search" {
                div { label for="filter-q" { "Find a user" } input #filter-q type="search" name="q" value=(filters.q); }
                div {
                    label for="filter-tier" { "Tier" }
                    select #filter-tier name="tier" {
                        option value="" { "Any tier" }
                        @for t in Tier::ALL { option value=(t.as_str()) selected[filters.tier == Some(t)] { (t.label()) } }
                    }
                }
                div {
                    label for="filter-status" { "Status" }
                    select #filter-status name="status" {
                        option value="" { "Any status" }
                        @for s in SeatStatus::ALL { option value=(s.as_str()) selected[filters.status == Some(s)] { (status_label(s)) } }
                    }
                }
                button.secondary type="submit" { "Apply filters" }
            }
            div.toolbar-actions {
                a.button.secondary href=(export) download { "Export CSV" }
                (add_button(viewer, PrincipalType::User))
            }
        }
        @if rows.is_empty() {
            p { "No seats match. Subscribe users or groups with Add user or Add group." }
        } @else {
            table.seats {
                caption { "Seats" }
                thead { tr {
                    th scope="col" { "User" } th scope="col" { "Tier" } th scope="col" { "Status" } th scope="col" { "Sources (highest wins)" }
                    th scope="col" { "Granted" } th scope="col" { "Last active" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            th scope="row" { (r.user_name) }
                            td { (r.tier.label()) @if let Some(d) = &r.direct { " " (pending_note(d)) } }
                            td { span class=(format!("status status-{}", r.status.as_str().to_lowercase())) { (status_label(r.status)) } }
                            td {
                                @if r.sources.is_empty() { "—" }
                                ul.sources {
                                    @for s in &r.sources {
                                        li { (s.label) " (" (s.tier.label()) ")" @if s.wins { " " strong.wins { "wins" } } }
                                    }
                                }
                            }
                            td { (date(&r.granted_at)) }
                            td { (r.last_active.as_deref().unwrap_or("Never")) }
                            td { @if let Some(d) = &r.direct { @if r.status != SeatStatus::Canceled { (row_actions(viewer, d)) } } }
                        }
                    }
                }
            }
            @if let Some(n) = next {
                p { a href=(format!("/console/users?{}&nextToken={}", filters.query(), encode(n))) { "Next page" } }
            }
        }
        @if let Some(d) = dialog { (dialog_markup(viewer, d, pricing, now)) }
    };
    views::page(viewer, Section::Members, "Users & Groups", notice, body)
}

pub fn groups(
    viewer: &Viewer,
    subs: &[Sub],
    next: Option<&str>,
    dialog: Option<Dialog>,
    pricing: &Pricing,
    notice: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let body = html! {
        (tabs(PrincipalType::Group))
        div.toolbar { div.toolbar-actions { (add_button(viewer, PrincipalType::Group)) } }
        @if subs.is_empty() {
            p { "No group is subscribed. Add group gives every member of an IAM Identity Center group a seat, and keeps it in step as people join and leave." }
        } @else {
            table {
                caption { "Subscribed groups" }
                thead { tr { th scope="col" { "Group" } th scope="col" { "Tier" } th scope="col" { "Seats" } th scope="col" { "Subscribed" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for s in subs {
                        tr {
                            th scope="row" { (s.name) }
                            td { (s.tier.label()) " " (pending_note(s)) }
                            td {
                                (group_digits(s.seats))
                                @if let Some(g) = s.fan_out_in_progress { " " span.pending { "(granting: " (group_digits(g)) " so far)" } }
                            }
                            td { (date(&s.created_at)) }
                            td { (row_actions(viewer, s)) }
                        }
                    }
                }
            }
            @if let Some(n) = next { p { a href=(format!("/console/groups?nextToken={}", encode(n))) { "Next page" } } }
        }
        @if let Some(d) = dialog { (dialog_markup(viewer, d, pricing, now)) }
    };
    views::page(viewer, Section::Members, "Users & Groups", notice, body)
}

fn dialog_markup(viewer: &Viewer, dialog: Dialog, pricing: &Pricing, now: DateTime<Utc>) -> Markup {
    match dialog {
        Dialog::AddTier { kind } => {
            let title = format!("Add {}", noun(kind));
            html! {
                dialog open data-modal aria-labelledby="dialog-title" {
                    h2 #dialog-title { (title) }
                    form method="get" action=(tab_path(kind)) {
                        input type="hidden" name="add" value=(kind.as_str());
                        p { "Choose the tier for the " (noun(kind)) "s you add. The monthly price is billed only for seats that are used." }
                        (tier_choices(pricing, ADD_TIER, Some(Tier::Pro), |_| None))
                        div.actions {
                            a.button.secondary href=(tab_path(kind)) { "Cancel" }
                            button type="submit" { "Continue" }
                        }
                    }
                }
            }
        }
        Dialog::AddSearch { kind, tier, q, results } => {
            let title = format!("Add {}", noun(kind));
            let search_label = format!("Search {}s", noun(kind));
            let endpoint = format!("/console/directory/{}s", noun(kind));
            html! {
                dialog open data-modal aria-labelledby="dialog-title" {
                    h2 #dialog-title { (title) }
                    p { "Tier: " strong { (tier.label()) } ". Search IAM Identity Center and pick one or more " (noun(kind)) "s." }
                    form.search method="get" action=(tab_path(kind)) data-suggest=(endpoint) {
                        input type="hidden" name="add" value=(kind.as_str());
                        input type="hidden" name=(ADD_TIER) value=(tier.as_str());
                        label for="principal-search" { (search_label) }
                        div.combo {
                            input #principal-search type="text" name="q" value=(q) role="combobox" autocomplete="off"
                                aria-autocomplete="list" aria-expanded="false" aria-controls="suggestions";
                            ul #suggestions role="listbox" aria-label=(format!("Matching {}s", noun(kind))) hidden {}
                        }
                        button.secondary.no-js-only type="submit" { "Search" }
                    }
                    form method="post" action="/console/subscriptions" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="principalType" value=(kind.as_str());
                        input type="hidden" name="tier" value=(tier.as_str());
                        fieldset.picked {
                            legend { "Selected" }
                            div #picked aria-live="polite" {
                                @for r in &results {
                                    div.pick {
                                        input type="checkbox" name="principalId" value=(r.id) id=(format!("pick-{}", r.id));
                                        label for=(format!("pick-{}", r.id)) { (r.name) " " span.hint { (r.detail) } }
                                    }
                                }
                            }
                            @if results.is_empty() && !q.is_empty() { p.hint { "No match for that search." } }
                        }
                        div.actions {
                            a.button.secondary href=(tab_path(kind)) { "Cancel" }
                            button type="submit" { "Assign" }
                        }
                    }
                }
            }
        }
        Dialog::Plan { sub } => html! {
            dialog open data-modal aria-labelledby="dialog-title" {
                h2 #dialog-title { "Change plan" }
                form method="post" action=(format!("/console/subscriptions/{}/{}/plan", sub.kind.as_str(), encode(&sub.id))) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    p { "Plan of " strong { (sub.name) } ", now " (sub.tier.label()) "."
                        @if let Some((to, at)) = sub.pending { " A downgrade to " (to.label()) " is pending for " (date(&at)) "." } }
                    p { "An upgrade takes effect now. A downgrade takes effect on " (date(&views::first_of_next_month(now))) ", the first of next month; until then the seats keep the current tier." }
                    (tier_choices(pricing, "tier", Some(sub.tier), |t| Some(format!("Choosing it {}.", effect_of_change(sub.tier, t, now)))))
                    div.actions {
                        a.button.secondary href=(tab_path(sub.kind)) { "Cancel" }
                        button type="submit" { "Continue" }
                    }
                }
            }
        },
        Dialog::Deactivate { sub } => html! {
            dialog open data-modal aria-labelledby="dialog-title" {
                h2 #dialog-title { "Deactivate plan" }
                form method="post" action=(format!("/console/subscriptions/{}/{}/deactivate", sub.kind.as_str(), encode(&sub.id))) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    p { "Unsubscribe " strong { (sub.name) } " from " (sub.tier.label()) "? "
                        @match sub.kind {
                            PrincipalType::User => "The user keeps a seat only through a subscribed group.",
                            PrincipalType::Group => "Its members keep a seat only through another subscription.",
                        }
                    }
                    div.actions {
                        a.button.secondary href=(tab_path(sub.kind)) { "Cancel" }
                        button.danger type="submit" { "Unsubscribe" }
                    }
                }
            }
        },
    }
}
