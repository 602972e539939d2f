//! Converging seats on group membership, from the events that hint at a change (sync-group's
//! membership signals, and the audit's re-sync of the groups it touched).

use std::collections::{BTreeMap, HashMap};

use crate::app::seats::{self, Applied, UserChange};
use crate::domain::{CancelReason, GroupId, MembershipId, Principal, Profile, SeatChange, SourceKey, SourceOp, UserId};
use crate::ports::{
    Directory, DirectoryError, EventSink, MemberGroups, MembershipMap, SeatStore, SubscriptionStore, all_pages,
};
use chrono::{DateTime, Utc};

use crate::error::AppError;

/// The ports a membership change reads and writes.
pub struct Ports<'a, S, D, E> {
    pub store: &'a S,
    pub directory: &'a D,
    pub sink: &'a E,
}

/// A write made from a directory read can land after a newer write made from a newer read; after
/// writing, re-read and converge again until the directory agrees with what was written.
const MAX_CONVERGE_ROUNDS: usize = 4;

/// `user` joined or left `group`: move the group's source on their seat to what the directory
/// says now. Groups nobody subscribed cost one read.
pub async fn converge<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    converge_from(ports, profile, group, user, Start::Read, now).await
}

/// Where [`converge_from`] starts.
enum Start {
    /// From the directory's answer now (a join, or a leave whose event names the pair).
    Read,
    /// From a removal the directory itself reported, the membership it named being the very one
    /// the grant recorded: written first, verified after (one directory read fewer).
    Removed,
}

async fn converge_from<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    user: &UserId,
    start: Start,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let principal = Principal::Group(group.clone());
    // The group's subscription and the user's seat in one read: the seat is what the first round
    // changes (its version guards the write, so a change meanwhile is caught and read again).
    let users = std::slice::from_ref(user);
    let (sub, seat) = ports.store.get_subscription_and_seats(&principal, users).await?;
    let Some(sub) = sub else {
        return Ok(Applied::default());
    };
    let mut read = Some(seats::SeatsRead::new(users, seat));
    let store_id = &profile.identity_store_id;
    let mut membership = match start {
        // A user the directory no longer has was deleted (its DeleteUser event may come later).
        Start::Read => match gone_is_none(member_of(ports, profile, group, user).await)? {
            Some(membership) => membership,
            None => return user_deleted(ports, user, now).await,
        },
        Start::Removed => None,
    };
    let mut total = Applied::default();
    for _ in 0..MAX_CONVERGE_ROUNDS {
        let change = match &membership {
            Some(m) => UserChange {
                user: user.clone(),
                change: SeatChange::one(
                    SourceOp::Set(SourceKey::Group(group.clone()), sub.tier),
                    CancelReason::LeftGroup,
                ),
                memberships: BTreeMap::from([(group.clone(), m.clone())]),
                user_name: None,
            },
            None => UserChange::new(
                user.clone(),
                SeatChange::one(SourceOp::Remove(SourceKey::Group(group.clone())), CancelReason::LeftGroup),
            ),
        };
        let applied = seats::apply_changes_read(ports.store, ports.sink, vec![change], read.take(), now).await?;
        total.add(applied);
        if applied.unchanged == 1 {
            // Already held: keep the membership map current (a member removed and added again
            // has a new id), so the removal that follows resolves without a re-sync.
            if let Some(m) = &membership {
                ports.store.refresh_membership(group, user, m).await?;
            }
            return Ok(total);
        }
        let Some(again) = gone_is_none(ports.directory.user_memberships(store_id, user).await)? else {
            total.add(user_deleted(ports, user, now).await?);
            return Ok(total);
        };
        let now_member = again.into_iter().find(|m| &m.group_id == group).map(|m| m.membership_id);
        if now_member.is_some() == membership.is_some() {
            return Ok(total);
        }
        membership = now_member;
    }
    tracing::warn!(group = %group, user = %user, "membership kept changing while converging; the next event or the audit finishes it");
    Ok(total)
}

async fn member_of<S, D: Directory + MemberGroups, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    user: &UserId,
) -> Result<Option<MembershipId>, DirectoryError> {
    let memberships = ports.directory.user_memberships(&profile.identity_store_id, user).await?;
    Ok(memberships.into_iter().find(|m| &m.group_id == group).map(|m| m.membership_id))
}

/// A directory answer, or `None` when the principal it is of no longer exists (deleted).
pub(crate) fn gone_is_none<T>(read: Result<T, DirectoryError>) -> Result<Option<T>, DirectoryError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(DirectoryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `DeleteGroupMembership` names only the membership: resolve it through the map recorded when
/// the seat was granted (one `Query`). The grant still recording that very id, the removal is
/// written without asking the directory first, and verified after like any other round: a
/// member added back meanwhile (a new membership id, its event not yet here) gets the seat back
/// in the same invocation — a cancel and a grant, never a seat lost. Four requests: the `Query`,
/// the read, the commit, the directory's answer after.
pub async fn membership_deleted<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    membership: &MembershipId,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    if let Some((group, user)) = ports.store.membership(membership).await? {
        return converge_from(ports, profile, &group, &user, Start::Removed, now).await;
    }
    // Every path that grants a group source records the membership id (the fan-out, joins, the
    // audit and re-syncs refresh it), so an id no grant recorded is a removal from a group nobody
    // subscribed: one lookup, nothing to do. (A removal racing a re-add of the same member can
    // leave a grant with the older id; the next audit repairs that seat.)
    tracing::info!("membership id no grant recorded: a group nobody subscribed; acknowledged");
    Ok(Applied::default())
}

/// Makes the seats a group grants match its current members (SCIM `PatchGroup`, whose members are
/// redacted): grant the members without the source, remove it from those who left. Like
/// [`converge`], it reads again after writing and repeats until a round changes nothing, so a
/// decision made on a read that went stale meanwhile is undone.
pub async fn resync_group<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let mut total = Applied::default();
    for _ in 0..MAX_CONVERGE_ROUNDS {
        let Some(sub) = ports.store.get_subscription(&Principal::Group(group.clone())).await? else {
            return Ok(total);
        };
        let Some(changes) = group_diff(ports, profile, group, sub.tier).await? else {
            // The group is gone from the directory: deleted, whether or not its event came.
            total.add(group_deleted(ports, group, now).await?);
            return Ok(total);
        };
        if changes.is_empty() {
            return Ok(total);
        }
        total.add(seats::apply_changes(ports.store, ports.sink, changes, now).await?);
    }
    tracing::warn!(group = %group, "group kept changing while resyncing; the next event or the audit finishes it");
    Ok(total)
}

/// Rounds one invocation re-syncs a group while requests keep coming; beyond, the event fails
/// (`Throttled`) and its retry, later, holds the lease again.
const MAX_RESYNC_ROUNDS: usize = 8;

/// A group's members changed without saying which (SCIM `PatchGroup`): [`resync_group`], one
/// re-sync of a group at a time. A request while one runs makes that one go round once more —
/// its next round reads the directory after the request came — so a burst of N events for a
/// group costs two re-syncs, not N, and none is dropped. `owner` is the invocation (Lambda's
/// retry keeps it); `until_ms` its deadline.
pub async fn resync_group_coalesced<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    owner: &str,
    until_ms: i64,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore + MembershipMap,
    D: Directory + MemberGroups,
    E: EventSink,
{
    if !ports.store.begin_resync(group, owner, until_ms, Utc::now().timestamp_millis()).await? {
        tracing::info!(group = %group, "a re-sync of this group is running; it goes round once more");
        return Ok(Applied::default());
    }
    let mut total = Applied::default();
    for _ in 0..MAX_RESYNC_ROUNDS {
        total.add(resync_group(ports, profile, group, now).await?);
        if !ports.store.end_resync(group, owner).await? {
            return Ok(total);
        }
    }
    Err(AppError::Throttled(
        format!("group {group} kept changing through {MAX_RESYNC_ROUNDS} re-syncs; retried later").into(),
    ))
}

/// The changes that make the group's grants match its members as the directory lists them now.
async fn group_diff<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    profile: &Profile,
    group: &GroupId,
    tier: crate::domain::Tier,
) -> Result<Option<Vec<UserChange>>, AppError>
where
    S: SubscriptionStore + MembershipMap,
    D: Directory + MemberGroups,
{
    // Grants first, members second: a member added after the member read has its own event.
    let granted: HashMap<UserId, Option<MembershipId>> =
        all_pages(|token| ports.store.granted_users(group, token)).await?.into_iter().collect();
    let store = &profile.identity_store_id;
    let Some(members) = gone_is_none(all_pages(|token| ports.directory.group_memberships(store, group, token)).await)?
    else {
        return Ok(None);
    };
    let members: HashMap<UserId, MembershipId> = members.into_iter().map(|m| (m.user_id, m.membership_id)).collect();
    // Keep the membership map current while both lists are at hand: a later
    // DeleteGroupMembership then resolves without a resync.
    for (user, recorded) in &granted {
        if let Some(current) = members.get(user).filter(|m| recorded.as_ref() != Some(*m)) {
            ports.store.refresh_membership(group, user, current).await?;
        }
    }
    let key = SourceKey::Group(group.clone());
    let mut changes: Vec<UserChange> = members
        .iter()
        .filter(|(u, _)| !granted.contains_key(*u))
        .map(|(u, m)| UserChange {
            user: u.clone(),
            change: SeatChange::one(SourceOp::Set(key.clone(), tier), CancelReason::LeftGroup),
            memberships: BTreeMap::from([(group.clone(), m.clone())]),
            user_name: None,
        })
        .collect();
    changes.extend(
        granted.keys().filter(|u| !members.contains_key(*u)).map(|u| {
            UserChange::new(u.clone(), SeatChange::one(SourceOp::Remove(key.clone()), CancelReason::LeftGroup))
        }),
    );
    changes.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(Some(changes))
}

/// A deleted group: its subscription goes, and every seat it granted loses it (`GROUP_DELETED`).
/// Driven by the grant rows, not by the subscription: a redelivered event finishes what a first
/// delivery cut short after the subscription went. A group nobody subscribed costs two requests.
pub async fn group_deleted<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    group: &GroupId,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    let principal = Principal::Group(group.clone());
    ports.store.delete_subscription(&principal).await?;
    let key = SourceKey::Group(group.clone());
    Ok(seats::change_group_grants(
        ports.store,
        ports.sink,
        group,
        SourceOp::Unsubscribed(key),
        CancelReason::GroupDeleted,
        now,
    )
    .await?)
}

/// A deleted user: their direct subscription goes and their seat is canceled (`USER_DELETED`).
pub async fn user_deleted<S, D, E>(
    ports: &Ports<'_, S, D, E>,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<Applied, AppError>
where
    S: SubscriptionStore + SeatStore,
    E: EventSink,
{
    ports.store.delete_subscription(&Principal::User(user.clone())).await?;
    let Some(seat) = ports.store.get_seats(std::slice::from_ref(user)).await?.into_iter().next() else {
        return Ok(Applied::default());
    };
    let ops = seat.sources.keys().cloned().map(SourceOp::Remove).collect();
    let change = UserChange::new(user.clone(), SeatChange::new(ops, CancelReason::UserDeleted));
    Ok(seats::apply_changes(ports.store, ports.sink, vec![change], now).await?)
}
