//! The audit: make every seat match the subscriptions and the directory, now.
//!
//! It reads each subscribed group's members (pages of 100) and every direct subscription, walks
//! the seats once (pages of 100), and changes only the seats that differ, in the same batched
//! transactions as every other seat change. A due pending downgrade is applied first. The revoke
//! guard withholds every removal when a repair would cancel more than the allowed share of
//! active seats, unless forced.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use kiro::domain::audit::{self, Action, AuditReport, Finding, FindingRecord, MAX_FINDINGS, MAX_NAMES_PER_AUDIT};
use kiro::domain::signal::AuditMode;
use kiro::domain::subscription::due_downgrade;
use kiro::domain::{GroupId, MembershipId, Principal, Profile, SeatChange, SourceKey, Sources, Subscription, UserId};
use kiro::ports::{
    AuditStore, Directory, EventSink, MembershipMap, OutEvent, SeatFilter, SeatStore, StoreError, SubscriptionStore,
};
use kiro::seats::{self, UserChange};

use crate::{Deps, SyncError};

pub async fn run<S, D, E>(
    deps: &Deps<S, D, E>,
    profile: &Profile,
    mode: AuditMode,
    force: bool,
    clock: DateTime<Utc>,
) -> Result<AuditReport, SyncError>
where
    S: SubscriptionStore + SeatStore + AuditStore + MembershipMap,
    D: Directory,
    E: EventSink,
{
    let wall = std::time::Instant::now();
    let repair = mode == AuditMode::Repair;
    if repair {
        let sent = seats::flush_outbox(&deps.store, &deps.events).await?;
        if sent > 0 {
            tracing::info!(sent, "published events left in the outbox");
        }
    }

    // Subscriptions, with due downgrades applied (or, in report mode, as they would be).
    let mut subs = all_subscriptions(&deps.store).await?;
    let mut downgrades_due = 0;
    for sub in &mut subs {
        if let Some(tier) = due_downgrade(sub, clock) {
            downgrades_due += 1;
            let expected = sub.tier;
            sub.tier = tier;
            sub.pending_tier = None;
            sub.pending_tier_effective_at = None;
            sub.updated_at = clock;
            sub.updated_by = "audit".to_owned();
            if repair {
                match deps.store.update_subscription(sub, expected).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    let subscribed: std::collections::HashSet<Principal> = subs.iter().map(|s| s.principal.clone()).collect();

    // What every seat should hold.
    let mut desired: HashMap<UserId, Sources> = HashMap::new();
    let mut memberships: HashMap<(GroupId, UserId), MembershipId> = HashMap::new();
    for sub in &subs {
        match &sub.principal {
            Principal::User(u) => {
                desired.entry(u.clone()).or_default().insert(SourceKey::Direct, sub.tier);
            }
            Principal::Group(g) => {
                let mut token = None;
                loop {
                    let page = deps.directory.group_memberships(&profile.identity_store_id, g, token).await?;
                    for m in page.items {
                        desired.entry(m.user_id.clone()).or_default().insert(SourceKey::Group(g.clone()), sub.tier);
                        memberships.insert((g.clone(), m.user_id), m.membership_id);
                    }
                    token = page.next_token;
                    if token.is_none() {
                        break;
                    }
                }
            }
        }
    }

    // One pass over the seats: what differs.
    let mut changes: Vec<(UserId, SeatChange, Finding)> = Vec::new();
    let mut active_seats = 0u64;
    let mut nameless: Vec<UserId> = Vec::new();
    let mut token = None;
    loop {
        let page = deps.store.list_seats(SeatFilter::default(), 100, token).await?;
        for seat in &page.items {
            active_seats += u64::from(seat.is_active());
            if seat.is_active() && seat.user_name.is_none() && nameless.len() < MAX_NAMES_PER_AUDIT {
                nameless.push(seat.user_id.clone());
            }
            let want = desired.remove(&seat.user_id).unwrap_or_default();
            if let Some(change) =
                audit::diff(Some(seat), &want).map(|c| follow_subscriptions(c, &seat.user_id, &subscribed))
            {
                if let Some(finding) = audit::classify(&seat.user_id, Some(seat), &change, clock) {
                    changes.push((seat.user_id.clone(), change, finding));
                }
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    for (user, want) in desired {
        if let Some(change) = audit::diff(None, &want).map(|c| follow_subscriptions(c, &user, &subscribed)) {
            if let Some(finding) = audit::classify(&user, None, &change, clock) {
                changes.push((user, change, finding));
            }
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));

    let cancels = changes.iter().filter(|(_, _, f)| f.action == Action::Cancel).count() as u64;
    let halted = audit::halts(cancels, active_seats, deps.revoke_limit_percent, force);
    if halted {
        tracing::warn!(
            cancels,
            active_seats,
            limit_percent = deps.revoke_limit_percent,
            "revoke guard: cancellations withheld"
        );
        changes = changes
            .into_iter()
            .filter_map(|(u, change, finding)| {
                let kept = audit::without_removals(&change)?;
                let finding = if finding.action == Action::Cancel { None } else { Some(finding) };
                finding.map(|f| (u, kept, f))
            })
            .collect();
    }

    // Seats this repair grants have no name yet either; those it cancels need none.
    let canceling: std::collections::HashSet<&UserId> =
        changes.iter().filter(|(_, _, f)| f.action == Action::Cancel).map(|(u, _, _)| u).collect();
    nameless.retain(|u| !canceling.contains(u));
    let granting = changes.iter().filter(|(_, _, f)| f.action == Action::Grant).map(|(u, _, _)| u.clone());
    nameless.extend(granting.take(MAX_NAMES_PER_AUDIT.saturating_sub(nameless.len())));

    let counted = |a: Action| changes.iter().filter(|(_, _, f)| f.action == a).count() as u64;
    let (mut granted, mut changed, mut canceled) =
        (counted(Action::Grant), counted(Action::Change), counted(Action::Cancel));
    let findings: Vec<FindingRecord> =
        changes.iter().take(MAX_FINDINGS).map(|(_, _, f)| FindingRecord::from(f)).collect();
    let findings_truncated = changes.len() > MAX_FINDINGS;
    let touched_groups: std::collections::BTreeSet<GroupId> = changes
        .iter()
        .flat_map(|(_, change, _)| change.ops.iter())
        .filter_map(|op| match op.key() {
            SourceKey::Group(g) if subscribed.contains(&Principal::Group(g.clone())) => Some(g.clone()),
            _ => None,
        })
        .collect();
    if repair && !changes.is_empty() {
        let batch = changes
            .into_iter()
            .map(|(user, change, _)| {
                let groups: BTreeMap<GroupId, MembershipId> = change
                    .ops
                    .iter()
                    .filter_map(|op| match op.key() {
                        SourceKey::Group(g) => {
                            memberships.get(&(g.clone(), user.clone())).map(|m| (g.clone(), m.clone()))
                        }
                        SourceKey::Direct => None,
                    })
                    .collect();
                UserChange { user, change, memberships: groups, user_name: None }
            })
            .collect();
        let mut applied = seats::apply_changes(&deps.store, &deps.events, batch, clock).await?;
        // The members were read before these writes: re-read each group the repair touched and
        // undo what went stale meanwhile (a member removed, or added, while the audit ran).
        if !halted {
            // (The re-sync also refreshes those groups' membership map.)
            for g in &touched_groups {
                applied.add(crate::membership::resync_group(deps, profile, g, clock).await?);
            }
        }
        (granted, changed, canceled) = (applied.granted, applied.changed, applied.canceled);
    }

    // Seats granted through a group carry no name (ListGroupMemberships has none): fill them here,
    // off the request path.
    let mut names_filled = 0;
    if repair {
        for user in &nameless {
            if let Some(u) = deps.directory.describe_user(&profile.identity_store_id, user).await? {
                deps.store.set_user_name(user, &u.user_name).await?;
                names_filled += 1;
            }
        }
    }

    // The membership map of the groups the repair did not re-sync.
    if repair {
        for sub in &subs {
            if let Principal::Group(g) = &sub.principal {
                if halted || !touched_groups.contains(g) {
                    refresh_membership_map(&deps.store, g, &memberships).await?;
                }
            }
        }
    }

    let elapsed = chrono::Duration::from_std(wall.elapsed()).unwrap_or_default();
    let report = AuditReport {
        mode,
        granted,
        changed,
        canceled,
        halted,
        started_at: clock,
        finished_at: clock + elapsed,
        audit_id: uuid::Uuid::new_v4().to_string(),
        active_seats,
        downgrades_due,
        cancels_withheld: if halted { cancels } else { 0 },
        names_filled,
        findings,
        findings_truncated,
    };
    deps.store.put_audit(&report).await?;
    let detail = serde_json::to_value(&report).unwrap_or_default();
    let event = OutEvent { detail_type: "Audit Completed".to_owned(), detail };
    if let Err(e) = deps.events.publish(std::slice::from_ref(&event)).await {
        tracing::error!(cause = %kiro::http::cause_chain(&e), "publishing Audit Completed failed; the report is stored");
    }
    tracing::info!(audit_id = %report.audit_id, mode = ?mode, granted, changed, canceled, halted, "audit finished");
    Ok(report)
}

async fn all_subscriptions<S: SubscriptionStore>(store: &S) -> Result<Vec<Subscription>, StoreError> {
    kiro::ports::all_pages(|token| store.list_subscriptions(None, 100, token)).await
}

/// Records current membership ids on the group's grants where they are missing or stale, so a
/// later `DeleteGroupMembership` resolves without a resync.
async fn refresh_membership_map<S: SubscriptionStore + MembershipMap>(
    store: &S,
    group: &GroupId,
    memberships: &HashMap<(GroupId, UserId), MembershipId>,
) -> Result<(), StoreError> {
    for (user, recorded) in kiro::ports::all_pages(|token| store.granted_users(group, token)).await? {
        if let Some(current) = memberships.get(&(group.clone(), user.clone())) {
            if recorded.as_ref() != Some(current) {
                store.refresh_membership(group, &user, current).await?;
            }
        }
    }
    Ok(())
}

/// A source whose subscription is gone is removed only while it stays gone (`Unsubscribed`), so
/// a subscription created while the audit runs keeps the source it grants.
fn follow_subscriptions(
    mut change: SeatChange,
    user: &UserId,
    subscribed: &std::collections::HashSet<Principal>,
) -> SeatChange {
    for op in &mut change.ops {
        if let kiro::domain::SourceOp::Remove(k) = op {
            let principal = match k {
                SourceKey::Direct => Principal::User(user.clone()),
                SourceKey::Group(g) => Principal::Group(g.clone()),
            };
            if !subscribed.contains(&principal) {
                *op = kiro::domain::SourceOp::Unsubscribed(k.clone());
            }
        }
    }
    change
}
