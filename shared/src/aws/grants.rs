//! Where a group's grant rows live, and how the store knows it without reading it first.
//!
//! A group's rows start in its own partition `GROUP#<groupId>`, beside its counter (`COUNT`). A
//! group too large for that key — a fan-out writes its rows at about 1,100 units a second,
//! DynamoDB's limit for one key is 1,000 — is *spread* before its first row is written: its
//! counter says `shards = 16`, and each row goes to `GROUP#<groupId>#<shard>`, the shard of its
//! user ([`seat_shard`]). The layout changes only while the group has no rows (the counter's
//! condition), so every row of a group is always where its counter says.
//!
//! Writers do not read the layout before each write: the store remembers the layout of the
//! groups it has read (the counter is the first item of the group's partition, and part of the
//! join's batch read), takes a group it has not read for one partition, and asserts what it
//! took in the transaction that writes the rows (a condition on the counter). A group spread
//! meanwhile by another process fails that condition: the store reads the counter and sends the
//! transaction again, once.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamo::{DynamoStore, store_error};
use super::item::{Item, n};
use super::records::{grant_count_key, grant_pk};
use crate::domain::{GroupId, UserId};
use crate::ports::{SEAT_SHARDS, StoreError, seat_shard};

/// The counter's attribute naming how many partitions the group's rows are spread over.
pub(crate) const SHARDS: &str = "shards";

/// Where a group's grant rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantLayout {
    /// In `GROUP#<groupId>`, one `Query` a page.
    One,
    /// In `GROUP#<groupId>#00`..`#15`, read one after the other.
    Spread,
}

impl GrantLayout {
    /// The layout a group's counter item records (no counter, or no `shards`: one partition).
    pub(crate) fn of_counter(counter: Option<&Item>) -> Result<Self, StoreError> {
        match counter.and_then(|item| item.get(SHARDS)) {
            None => Ok(Self::One),
            Some(AttributeValue::N(v)) if v.parse() == Ok(SEAT_SHARDS) => Ok(Self::Spread),
            Some(_) => Err(StoreError::Corrupt(format!("grant counter: attribute '{SHARDS}' is not {SEAT_SHARDS}"))),
        }
    }

    /// The partition key of `user`'s row of `group`.
    pub(crate) fn pk(self, group: &GroupId, user: &UserId) -> String {
        match self {
            Self::One => grant_pk(group),
            Self::Spread => shard_pk(group, seat_shard(user.as_str())),
        }
    }

    /// The condition on the counter that holds while the group's rows are laid out this way,
    /// with its `:shards` value when it needs one.
    pub(crate) fn condition(self) -> (&'static str, Option<AttributeValue>) {
        match self {
            Self::One => ("attribute_not_exists(shards)", None),
            Self::Spread => ("shards = :shards", Some(n(SEAT_SHARDS))),
        }
    }
}

/// `GROUP#<groupId>#<shard>`, two digits.
pub(crate) fn shard_pk(group: &GroupId, shard: usize) -> String {
    format!("{}#{shard:02}", grant_pk(group))
}

/// Groups remembered at most: a process reads far fewer; past it, it starts over.
const REMEMBERED: usize = 10_000;

/// The layouts this process has read, shared by the clones of its store.
#[derive(Debug, Default)]
pub(crate) struct Layouts(Mutex<HashMap<GroupId, GrantLayout>>);

impl Layouts {
    pub(crate) fn get(&self, group: &GroupId) -> Option<GrantLayout> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(group).copied()
    }

    pub(crate) fn learn(&self, group: &GroupId, layout: GrantLayout) {
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= REMEMBERED && !known.contains_key(group) {
            known.clear();
        }
        known.insert(group.clone(), layout);
    }

    /// What to write with: the layout read, or one partition for a group not read (asserted by
    /// the write, see the module's doc).
    pub(crate) fn assumed(&self, group: &GroupId) -> GrantLayout {
        self.get(group).unwrap_or(GrantLayout::One)
    }
}

impl DynamoStore {
    /// `group`'s counter item as it is now (a consistent `GetItem`), its layout remembered.
    pub(crate) async fn read_counter(&self, group: &GroupId) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(grant_count_key(group)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(grant count)", e))?;
        self.layouts.learn(group, GrantLayout::of_counter(out.item.as_ref())?);
        Ok(out.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::item::s;

    fn group() -> GroupId {
        GroupId::parse("g", "90676d5b4c-2a6e1ac3-7a85-4a1b-9c3a-0c2a3c1d4e5f").unwrap()
    }

    #[test]
    fn a_counter_names_its_layout_and_a_strange_one_is_refused() {
        let counter = |shards: Option<AttributeValue>| {
            let mut item = Item::from([("grants".to_owned(), n(3))]);
            item.extend(shards.map(|v| (SHARDS.to_owned(), v)));
            item
        };
        assert_eq!(GrantLayout::of_counter(None).unwrap(), GrantLayout::One);
        assert_eq!(GrantLayout::of_counter(Some(&counter(None))).unwrap(), GrantLayout::One);
        assert_eq!(GrantLayout::of_counter(Some(&counter(Some(n(16))))).unwrap(), GrantLayout::Spread);
        for strange in [n(4), s("16")] {
            assert!(matches!(GrantLayout::of_counter(Some(&counter(Some(strange)))), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn a_spread_row_is_in_its_users_shard() {
        let user = UserId::parse("u", "94482488-3041-7026-18f3-000000000001").unwrap();
        let shard = seat_shard(user.as_str());
        assert_eq!(GrantLayout::One.pk(&group(), &user), format!("GROUP#{}", group()));
        assert_eq!(GrantLayout::Spread.pk(&group(), &user), format!("GROUP#{}#{shard:02}", group()));
    }

    #[test]
    fn a_group_not_read_is_taken_for_one_partition_until_read() {
        let layouts = Layouts::default();
        assert_eq!(layouts.get(&group()), None);
        assert_eq!(layouts.assumed(&group()), GrantLayout::One);
        layouts.learn(&group(), GrantLayout::Spread);
        assert_eq!(layouts.assumed(&group()), GrantLayout::Spread);
    }
}
