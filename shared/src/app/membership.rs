//! Converging seats on group membership, from the events that hint at a change (sync-group's
//! membership signals, and the audit's re-sync of the groups it touched).

use std::collections::{BTreeMap, HashMap};

use crate::app::seats::{self, Applied, UserChange};
use crate::domain::{
    CancelReason, GroupId, MembershipId, Principal, PrincipalType, Profile, SeatChange, SourceKey, SourceOp, UserId,
};
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
    S: SubscriptionStore + SeatStore,
    D: Directory + MemberGroups,
    E: EventSink,
{
    let principal = Principal::Group(group.clone());
    let Some(sub) = ports.store.get_subscription(&principal).await? else {
        return Ok(Applied::default());
    };
    let store_id = &profile.identity_store_id;
    // A user the directory no longer has was deleted (its DeleteUser event may come later).
    let Some(mut membership) = gone_is_none(member_of(ports, profile, group, user).await)? else {
        return user_deleted(ports, user, now).await;
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
        let applied = seats::apply_changes(ports.store, ports.sink, vec![change], now).await?;
        total.add(applied);
        if applied.unchanged == 1 {
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
/// the seat was granted. An unknown id can only concern a subscribed group whose map is stale,
/// so those groups (and no others) are resynced.
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
        return converge(ports, profile, &group, &user, now).await;
    }
    tracing::info!(membership = %membership, "unknown membership id; resyncing the subscribed groups");
    let subs = all_pages(|token| ports.store.list_subscriptions(Some(PrincipalType::Group), 100, token)).await?;
    let mut total = Applied::default();
    for sub in subs {
        if let Principal::Group(g) = &sub.principal {
            total.add(resync_group(ports, profile, g, now).await?);
        }
    }
    Ok(total)
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
