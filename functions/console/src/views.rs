//! The console's pages: each a function of (who is looking, what to show). maud checks them at
//! compile time and escapes every value. No inline script or style: `app.js` and `app.css` are
//! served by the function itself.

use chrono::{DateTime, Datelike, Utc};
use kiro::config::{MicroUsd, Pricing};
use kiro::domain::audit::AuditReport;
use kiro::domain::session::Role;
use kiro::domain::{Profile, SeatStatus, Tier};
use maud::{DOCTYPE, Markup, html};

use crate::assets;

/// Who is looking: what the layout shows of them, and what they may do.
pub struct Viewer<'a> {
    pub user_name: &'a str,
    pub role: Role,
    pub csrf: &'a str,
}

impl Viewer<'_> {
    pub fn can_change(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Which section of the navigation is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Members,
    Audits,
    Settings,
}

fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            // For scripts that change things with JSON (`X-CSRF-Token`), as the forms do with a field.
            @if let Some(c) = csrf { meta name="csrf-token" content=(c); }
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Kiro subscriptions" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

/// A page for someone signed in: header, navigation, the notice or error, then `body`.
pub fn page(viewer: &Viewer, section: Section, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    let nav = [
        (Section::Dashboard, "/console", "Dashboard"),
        (Section::Members, "/console/users", "Users & Groups"),
        (Section::Audits, "/console/audits", "Audits"),
        (Section::Settings, "/console/settings", "Settings"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, Some(viewer.csrf)))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Kiro subscriptions" }
                    nav aria-label="Console" {
                        ul {
                            @for (s, href, label) in nav {
                                li { a href=(href) aria-current=[(s == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span { (viewer.user_name) " · " (if viewer.can_change() { "Admin" } else { "Viewer" }) }
                        form method="post" action="/console/auth/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(n) = notice { p.notice role="status" { (n) } }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not signed in (or refused): no navigation.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body {
                header.top { span.brand { "Kiro subscriptions" } }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn sign_in(message: Option<&str>) -> Markup {
    bare(
        "Kiro subscriptions console",
        html! {
            @if let Some(m) = message { p.error role="alert" { (m) } }
            p { "Manage your team's Kiro subscriptions: who holds a seat, at which tier, and what it costs." }
            p { "Sign in with your IAM Identity Center account. Members of the console's admin group can change subscriptions; members of its viewer group can look." }
            p { a.button href="/console/auth/login" { "Sign in" } }
        },
    )
}

pub fn refused(message: &str, signed_in: bool) -> Markup {
    bare(
        "Access denied",
        html! {
            p.error role="alert" { (message) }
            @if signed_in { p { a href="/console" { "Back to the console" } } }
            @else { p { a.button href="/console/auth/login" { "Sign in" } } }
        },
    )
}

pub fn error(viewer: Option<&Viewer>, message: &str, back: &str) -> Markup {
    let body = html! {
        p.error role="alert" { (message) }
        p { a href=(back) { "Back to the page you were on" } }
    };
    match viewer {
        Some(v) => page(v, Section::Dashboard, "That did not work", None, body),
        None => bare("That did not work", body),
    }
}

// ------------------------------------------------------------------------------ formatting

pub fn date(t: &DateTime<Utc>) -> String {
    t.format("%-d %b %Y").to_string()
}

pub fn usd(amount: MicroUsd) -> String {
    let cents = amount.div_ceil(10_000);
    if cents % 100 == 0 {
        format!("${}", group_digits(cents / 100))
    } else {
        format!("${}.{:02}", group_digits(cents / 100), cents % 100)
    }
}

pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn status_label(status: SeatStatus) -> &'static str {
    match status {
        SeatStatus::Pending => "Pending",
        SeatStatus::Active => "Active",
        SeatStatus::Canceled => "Canceled",
    }
}

/// When a change to `to` from `from` takes effect, in words.
pub fn effect_of_change(from: Tier, to: Tier, now: DateTime<Utc>) -> String {
    if to > from {
        "takes effect now".into()
    } else if to < from {
        format!("takes effect on {}", date(&first_of_next_month(now)))
    } else {
        "keeps the current tier (and cancels a pending downgrade)".into()
    }
}

pub fn first_of_next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc()).unwrap_or(now)
}

// ------------------------------------------------------------------------------ tier choices

/// The tier radios, submitted as `field`: names start with Pro, Pro+ or Power, with credits and
/// price.
pub fn tier_choices(
    pricing: &Pricing,
    field: &str,
    checked: Option<Tier>,
    describe: impl Fn(Tier) -> Option<String>,
) -> Markup {
    html! {
        fieldset.tiers {
            legend { "Tier" }
            @for t in Tier::ALL {
                @let id = format!("tier-{}", t.as_str());
                @let hint = format!("{id}-hint");
                div.tier {
                    input type="radio" name=(field) value=(t.as_str()) id=(id) required checked[checked == Some(t)] aria-describedby=(hint);
                    label for=(id) { strong { (t.label()) } " — " (group_digits(pricing.credits(t))) " credits a month, " (usd(pricing.price(t))) " a month" }
                    p.hint id=(hint) {
                        (tier_blurb(t))
                        @if let Some(d) = describe(t) { " " (d) }
                    }
                }
            }
        }
    }
}

fn tier_blurb(t: Tier) -> &'static str {
    match t {
        Tier::Pro => "For everyday coding with Kiro's agent.",
        Tier::ProPlus => "Twice Pro's credits, for heavier agent use.",
        Tier::Power => "The most credits, for people who run Kiro all day.",
    }
}

// ------------------------------------------------------------------------------ profile

pub struct InstanceChoice {
    pub identity_store_id: String,
    pub label: String,
}

pub fn no_profile(viewer: &Viewer, signup_open: bool, region: &str, instances: &[InstanceChoice]) -> Markup {
    let body = html! {
        p { "This account has no Kiro profile in " (region) " yet. A Kiro profile binds Kiro to your IAM Identity Center instance; then you subscribe users and groups." }
        @if viewer.can_change() {
            form method="get" action="/console" {
                input type="hidden" name="signup" value="1";
                button type="submit" { "Sign up for Kiro" }
            }
            @if signup_open {
                dialog open data-modal aria-labelledby="create-title" {
                    h2 #create-title { "Create Kiro profile" }
                    form method="post" action="/console/profile" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        p { "Region: " strong { (region) } }
                        label for="instance" { "IAM Identity Center instance" }
                        @if instances.is_empty() {
                            p.error role="alert" { "No IAM Identity Center instance was found in this account. Enable IAM Identity Center first." }
                        }
                        select #instance name="identityStoreId" required {
                            @for i in instances { option value=(i.identity_store_id) { (i.label) } }
                        }
                        label for="name" { "Name" }
                        input #name name="name" required maxlength="100" autocomplete="off";
                        label for="description" { "Description" }
                        textarea #description name="description" maxlength="256" {}
                        div.actions {
                            a.button.secondary href="/console" { "Cancel" }
                            button type="submit" disabled[instances.is_empty()] { "Enable" }
                        }
                    }
                }
            }
        } @else {
            p { "Ask a console admin to sign up for Kiro." }
        }
    };
    page(viewer, Section::Dashboard, "Welcome to Kiro", None, body)
}

pub fn settings(viewer: &Viewer, profile: &Profile, notice: Option<&str>) -> Markup {
    let body = html! {
        dl.facts {
            dt { "Profile id" } dd { (profile.profile_id) }
            dt { "Region" } dd { (profile.region) }
            dt { "IAM Identity Center store" } dd { (profile.identity_store_id.as_str()) }
            dt { "Created" } dd { (date(&profile.created_at)) }
        }
        @if viewer.can_change() {
            form method="post" action="/console/settings" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="name" { "Name" }
                input #name name="name" required maxlength="100" value=(profile.name);
                label for="description" { "Description" }
                textarea #description name="description" maxlength="256" { (profile.description) }
                div.actions { button type="submit" { "Save" } }
            }
        } @else {
            dl.facts {
                dt { "Name" } dd { (profile.name) }
                dt { "Description" } dd { (if profile.description.is_empty() { "—" } else { &profile.description }) }
            }
        }
    };
    page(viewer, Section::Settings, "Settings", notice, body)
}

// ------------------------------------------------------------------------------ audits

pub fn audit_summary(a: &AuditReport) -> String {
    let mut s = format!(
        "{} on {}: {} granted, {} changed, {} canceled",
        if a.mode.as_str() == "repair" { "Repair" } else { "Report" },
        a.started_at.format("%-d %b %Y %H:%M UTC"),
        a.granted,
        a.changed,
        a.canceled
    );
    if a.halted {
        s.push_str(&format!("; halted by the revoke guard ({} cancellations withheld)", a.cancels_withheld));
    }
    if a.principals_deleted > 0 {
        s.push_str(&format!("; {} deleted users or groups removed", a.principals_deleted));
    }
    s
}

pub fn audits(viewer: &Viewer, reports: &[AuditReport], next: Option<&str>, notice: Option<&str>) -> Markup {
    let body = html! {
        @if viewer.can_change() {
            form.card method="post" action="/console/audits" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                fieldset {
                    legend { "Audit mode" }
                    div { input #mode-report type="radio" name="mode" value="report" checked; label for="mode-report" { "Report: compare seats with IAM Identity Center, change nothing" } }
                    div { input #mode-repair type="radio" name="mode" value="repair"; label for="mode-repair" { "Repair: make seats match, apply due downgrades" } }
                }
                button type="submit" { "Run audit" }
            }
        }
        @if reports.is_empty() {
            p { "No audit has run yet. The scheduled audit runs daily." }
        } @else {
            table {
                caption { "Audit reports, newest first" }
                thead { tr { th scope="col" { "Started" } th scope="col" { "Mode" } th scope="col" { "Granted" } th scope="col" { "Changed" } th scope="col" { "Canceled" } th scope="col" { "Deleted principals" } th scope="col" { "Halted" } } }
                tbody {
                    @for a in reports {
                        tr {
                            th scope="row" { (a.started_at.format("%-d %b %Y %H:%M UTC")) }
                            td { (if a.mode.as_str() == "repair" { "Repair" } else { "Report" }) }
                            td { (a.granted) } td { (a.changed) } td { (a.canceled) } td { (a.principals_deleted) }
                            td { (if a.halted { "Yes: revoke guard" } else { "No" }) }
                        }
                    }
                }
            }
            @if let Some(n) = next { p { a href=(format!("/console/audits?nextToken={}", encode(n))) { "Older reports" } } }
        }
    };
    page(viewer, Section::Audits, "Audits", notice, body)
}

pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
