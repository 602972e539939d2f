//! `SubscriptionStore` and `SeatStore` on the table.
//!
//! | item | pk | sk | gsi1pk | gsi1sk |
//! |---|---|---|---|---|
//! | subscription | `SUB#<TYPE>#<id>` | `SUB` | `SUBS` | `<TYPE>#<id>` |
//! | seat | `SEAT#<userId>` | `SEAT` | `SEATS` | `<userId>` |
//! | group grant (a seat holding the group as source) | `GROUP#<groupId>` | `MEMBER#<userId>` | `MSHIP#<membershipId>` | `MSHIP` |
//! | outbox (events committed, not yet published) | `OUTBOX` | `<time>#<uuid>` | | |

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, Select, TransactWriteItem,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::dynamo::{DynamoStore, store_error};
use super::item::{Item, Reader, key, n, s, t};
use crate::domain::seat::{SeatStatus, SourceKey, Sources};
use crate::domain::{GroupId, MembershipId, Principal, PrincipalType, Seat, Subscription, Tier, UserId};
use crate::ports::{Commit, OutEvent, Outbox, Page, SeatFilter, SeatNames, SeatStore, StoreError, SubscriptionStore};

const SUBS: &str = "SUBS";
const SEATS: &str = "SEATS";
const OUTBOX: &str = "OUTBOX";
const GSI1: &str = "gsi1";

fn sub_pk(p: &Principal) -> String {
    format!("SUB#{}#{}", p.principal_type().as_str(), p.id())
}

fn sub_gsi_sk(p: &Principal) -> String {
    format!("{}#{}", p.principal_type().as_str(), p.id())
}

fn seat_pk(u: &UserId) -> String {
    format!("SEAT#{u}")
}

fn grant_key(g: &GroupId, u: &UserId) -> (String, String) {
    (format!("GROUP#{g}"), format!("MEMBER#{u}"))
}

pub fn encode_token(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_token(token: &str) -> Result<String, StoreError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or(StoreError::InvalidToken)
}

/// A token is a key this list itself answered: anything else (another list's token, a forged
/// position) is [`StoreError::InvalidToken`], never a query from an arbitrary key.
fn decode_token_of(token: &str, is_key: impl Fn(&str) -> bool) -> Result<String, StoreError> {
    decode_token(token).ok().filter(|sk| is_key(sk)).ok_or(StoreError::InvalidToken)
}

/// `<TYPE>#<id>`, the gsi1sk of a subscription.
fn is_subscription_key(sk: &str) -> bool {
    sk.split_once('#').is_some_and(|(kind, id)| {
        PrincipalType::parse("principalType", kind)
            .and_then(|t| Principal::parse(t, "principalId", id))
            .is_ok_and(|p| p.id() == id)
    })
}

/// `<userId>`, the gsi1sk of a seat.
fn is_seat_key(sk: &str) -> bool {
    UserId::parse("userId", sk).is_ok_and(|u| u.as_str() == sk)
}

/// `MEMBER#<userId>`, the sort key of a group grant row.
fn is_grant_key(sk: &str) -> bool {
    sk.strip_prefix("MEMBER#").is_some_and(is_seat_key)
}

/// `<startedAt>#<auditId>`, the gsi1sk of an audit report.
fn is_audit_key(sk: &str) -> bool {
    sk.split_once('#').is_some_and(|(at, id)| {
        crate::time::parse(at).is_some() && id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    })
}

fn source_attr(key: &SourceKey) -> String {
    match key {
        SourceKey::Direct => "DIRECT".to_owned(),
        SourceKey::Group(g) => format!("GROUP#{g}"),
    }
}

fn sources_item(sources: &Sources) -> AttributeValue {
    AttributeValue::M(sources.iter().map(|(k, tier)| (source_attr(k), s(tier.as_str()))).collect())
}

fn sources_from(item: &Item) -> Result<Sources, StoreError> {
    let corrupt = || StoreError::Corrupt("seat item: attribute 'sources' is malformed".into());
    let Some(AttributeValue::M(map)) = item.get("sources") else {
        return Err(corrupt());
    };
    map.iter()
        .map(|(k, v)| {
            let tier: Tier = v.as_s().ok().and_then(|t| t.parse().ok()).ok_or_else(corrupt)?;
            let key = match k.strip_prefix("GROUP#") {
                None if k == "DIRECT" => SourceKey::Direct,
                Some(g) => SourceKey::Group(GroupId::parse("sources", g).map_err(|_| corrupt())?),
                None => return Err(corrupt()),
            };
            Ok((key, tier))
        })
        .collect()
}

fn seat_item(seat: &Seat) -> Item {
    let mut item = key(seat_pk(&seat.user_id), "SEAT");
    item.extend([
        ("entity".to_owned(), s("Seat")),
        ("gsi1pk".to_owned(), s(SEATS)),
        ("gsi1sk".to_owned(), s(seat.user_id.as_str())),
        ("userId".to_owned(), s(seat.user_id.as_str())),
        ("sources".to_owned(), sources_item(&seat.sources)),
        ("tier".to_owned(), s(seat.tier.as_str())),
        ("status".to_owned(), s(seat.status.as_str())),
        ("grantedAt".to_owned(), t(&seat.granted_at)),
        ("updatedAt".to_owned(), t(&seat.updated_at)),
        ("version".to_owned(), n(seat.version)),
    ]);
    if let Some(name) = &seat.user_name {
        item.insert("userName".to_owned(), s(name));
    }
    if let Some(at) = &seat.canceled_at {
        item.insert("canceledAt".to_owned(), t(at));
    }
    item
}

fn seat_from(item: &Item) -> Result<Seat, StoreError> {
    let r = Reader::new(item, "seat");
    Ok(Seat {
        user_id: r.parsed("userId", |v| UserId::parse("userId", v))?,
        user_name: r.opt_str("userName")?.map(str::to_owned),
        sources: sources_from(item)?,
        tier: r.parsed("tier", str::parse::<Tier>)?,
        status: r.parsed("status", |v| match v {
            "ACTIVE" => Ok(SeatStatus::Active),
            "CANCELED" => Ok(SeatStatus::Canceled),
            _ => Err(()),
        })?,
        granted_at: r.time("grantedAt")?,
        updated_at: r.time("updatedAt")?,
        canceled_at: r.opt_time("canceledAt")?,
        version: r.u64("version")?,
    })
}

fn subscription_item(sub: &Subscription) -> Item {
    let mut item = key(sub_pk(&sub.principal), "SUB");
    item.extend([
        ("entity".to_owned(), s("Subscription")),
        ("gsi1pk".to_owned(), s(SUBS)),
        ("gsi1sk".to_owned(), s(sub_gsi_sk(&sub.principal))),
        ("principalType".to_owned(), s(sub.principal_type.as_str())),
        ("principalId".to_owned(), s(&sub.principal_id)),
        ("displayName".to_owned(), s(&sub.display_name)),
        ("tier".to_owned(), s(sub.tier.as_str())),
        ("createdAt".to_owned(), t(&sub.created_at)),
        ("updatedAt".to_owned(), t(&sub.updated_at)),
        ("updatedBy".to_owned(), s(&sub.updated_by)),
    ]);
    if let (Some(tier), Some(at)) = (sub.pending_tier, sub.pending_tier_effective_at) {
        item.insert("pendingTier".to_owned(), s(tier.as_str()));
        item.insert("pendingTierEffectiveAt".to_owned(), t(&at));
    }
    item
}

fn subscription_from(item: &Item) -> Result<Subscription, StoreError> {
    let r = Reader::new(item, "subscription");
    let principal_type = r.parsed("principalType", |v| PrincipalType::parse("principalType", v))?;
    let principal = r.parsed("principalId", |v| Principal::parse(principal_type, "principalId", v))?;
    Ok(Subscription {
        principal_type,
        principal_id: principal.id().to_owned(),
        principal,
        display_name: r.str("displayName")?.to_owned(),
        tier: r.parsed("tier", str::parse::<Tier>)?,
        pending_tier: r.opt_str("pendingTier")?.map(str::parse::<Tier>).transpose().map_err(|_| {
            StoreError::Corrupt("subscription item: attribute 'pendingTier' has an unexpected value".into())
        })?,
        pending_tier_effective_at: r.opt_time("pendingTierEffectiveAt")?,
        seats: 0,
        created_at: r.time("createdAt")?,
        updated_at: r.time("updatedAt")?,
        updated_by: r.str("updatedBy")?.to_owned(),
    })
}

fn outbox_from(item: &Item) -> Result<Outbox, StoreError> {
    let r = Reader::new(item, "outbox");
    let events: Vec<OutEvent> = serde_json::from_str(r.str("events")?)
        .map_err(|_| StoreError::Corrupt("outbox item: attribute 'events' is malformed".into()))?;
    Ok(Outbox { id: r.str("sk")?.to_owned(), events })
}

fn outbox_item(id: &str, events: &[OutEvent]) -> Result<Item, StoreError> {
    let json = serde_json::to_string(events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut item = key(OUTBOX, id);
    item.extend([("entity".to_owned(), s("Outbox")), ("events".to_owned(), s(json))]);
    Ok(item)
}

impl DynamoStore {
    /// Runs a query on `gsi1` for one partition, from `start` (a gsi1sk value) on, and keeps the
    /// items `keep` accepts until `limit`. The token is the gsi1sk of the last item answered, so a
    /// page is never cut between the items a filter skipped and the next page.
    #[allow(clippy::too_many_arguments)] // one private helper serving both list routes
    async fn gsi1_page<T>(
        &self,
        partition: &str,
        prefix: Option<&str>,
        limit: usize,
        next_token: Option<String>,
        table_pk: impl Fn(&str) -> String,
        table_sk: &str,
        is_key: fn(&str) -> bool,
        convert: impl Fn(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut start = match next_token {
            Some(token) => {
                let sk = decode_token_of(&token, is_key)?;
                if prefix.is_some_and(|p| !sk.starts_with(p)) {
                    return Err(StoreError::InvalidToken);
                }
                Some(sk)
            }
            None => None,
        };
        let mut items = Vec::new();
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .expression_attribute_values(":pk", s(partition))
                .limit(100);
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("gsi1pk = :pk"),
            };
            if let Some(sk) = &start {
                let mut esk = key(table_pk(sk), table_sk);
                esk.insert("gsi1pk".to_owned(), s(partition));
                esk.insert("gsi1sk".to_owned(), s(sk.as_str()));
                q = q.set_exclusive_start_key(Some(esk));
            }
            let out = q.send().await.map_err(|e| store_error("Query(gsi1)", e))?;
            for item in out.items() {
                let sk = Reader::new(item, "index").str("gsi1sk")?.to_owned();
                if let Some(v) = convert(item)? {
                    items.push(v);
                    if items.len() == limit {
                        return Ok(Page { items, next_token: Some(encode_token(&sk)) });
                    }
                }
                start = Some(sk);
            }
            if out.last_evaluated_key().is_none() {
                return Ok(Page { items, next_token: None });
            }
        }
    }
}

impl SubscriptionStore for DynamoStore {
    async fn get_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(sub_pk(principal), "SUB")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(subscription)", e))?;
        out.item.as_ref().map(subscription_from).transpose()
    }

    async fn list_subscriptions(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Subscription>, StoreError> {
        let prefix = principal_type.map(|t| format!("{}#", t.as_str()));
        self.gsi1_page(
            SUBS,
            prefix.as_deref(),
            limit,
            next_token,
            |sk| format!("SUB#{sk}"),
            "SUB",
            is_subscription_key,
            |item| subscription_from(item).map(Some),
        )
        .await
    }

    async fn create_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(subscription_item(sub)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error("PutItem(subscription)", e))?;
        Ok(())
    }

    async fn update_subscription(&self, sub: &Subscription, expected_tier: Tier) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(subscription_item(sub)))
            .condition_expression("attribute_exists(pk) AND tier = :expected")
            .expression_attribute_values(":expected", s(expected_tier.as_str()))
            .send()
            .await
            .map_err(|e| store_error("PutItem(subscription)", e))?;
        Ok(())
    }

    async fn delete_subscription(&self, principal: &Principal) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(sub_pk(principal), "SUB")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem(subscription)", e))?;
        out.attributes.as_ref().map(subscription_from).transpose()
    }

    async fn count_granted(&self, group: &GroupId) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
                .expression_attribute_values(":pk", s(format!("GROUP#{group}")))
                .expression_attribute_values(":member", s("MEMBER#"))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query(count grants)", e))?;
            count += u64::try_from(out.count()).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(count),
            }
        }
    }

    async fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<(UserId, Option<MembershipId>)>, StoreError> {
        let pk = format!("GROUP#{group}");
        let start = next_token.map(|t| decode_token_of(&t, is_grant_key)).transpose()?.map(|sk| key(pk.clone(), sk));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":member", s("MEMBER#"))
            .consistent_read(true)
            .limit(i32::try_from(crate::ports::GRANTS_PAGE).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(grants)", e))?;
        let items = out
            .items()
            .iter()
            .map(|item| {
                let r = Reader::new(item, "grant");
                let user = r.parsed("userId", |v| UserId::parse("userId", v))?;
                let membership = r.opt_str("membershipId")?.and_then(|m| MembershipId::parse("membershipId", m).ok());
                Ok((user, membership))
            })
            .collect::<Result<_, StoreError>>()?;
        let next_token =
            out.last_evaluated_key().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }

    async fn membership(&self, membership_id: &MembershipId) -> Result<Option<(GroupId, UserId)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(format!("MSHIP#{membership_id}")))
            .limit(1)
            .send()
            .await
            .map_err(|e| store_error("Query(membership)", e))?;
        out.items()
            .first()
            .map(|item| {
                let r = Reader::new(item, "grant");
                Ok((
                    r.parsed("groupId", |v| GroupId::parse("groupId", v))?,
                    r.parsed("userId", |v| UserId::parse("userId", v))?,
                ))
            })
            .transpose()
    }
}

impl SeatStore for DynamoStore {
    async fn get_seats(&self, users: &[UserId]) -> Result<Vec<Seat>, StoreError> {
        let mut seats = Vec::with_capacity(users.len());
        for chunk in users.chunks(100) {
            let keys: Vec<Item> = chunk.iter().map(|u| key(seat_pk(u), "SEAT")).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Aws { operation: "BatchGetItem(seats)", source: e.into() })?,
            );
            let mut attempt = 0u32;
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem(seats)", e))?;
                for item in out.responses.as_ref().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    seats.push(seat_from(item)?);
                }
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
                if request.is_some() {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
                }
            }
        }
        Ok(seats)
    }

    async fn list_seats(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<Seat>, StoreError> {
        self.gsi1_page(
            SEATS,
            None,
            limit,
            next_token,
            |sk| format!("SEAT#{sk}"),
            "SEAT",
            is_seat_key,
            |item| {
                let seat = seat_from(item)?;
                let keep =
                    filter.tier.is_none_or(|t| t == seat.tier) && filter.status.is_none_or(|st| st == seat.status);
                Ok(keep.then_some(seat))
            },
        )
        .await
    }

    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(commit.item_count());
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Aws {
            operation: "TransactWriteItems",
            source: e.into(),
        };
        for w in &commit.seats {
            let mut put = Put::builder().table_name(&self.table).set_item(Some(seat_item(&w.seat)));
            put = match w.expected_version {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
            for (group, membership) in &w.grants_added {
                let (pk, sk) = grant_key(group, &w.seat.user_id);
                let mut item = key(pk, sk);
                item.extend([
                    ("entity".to_owned(), s("GroupGrant")),
                    ("groupId".to_owned(), s(group.as_str())),
                    ("userId".to_owned(), s(w.seat.user_id.as_str())),
                ]);
                if let Some(m) = membership {
                    item.extend([
                        ("membershipId".to_owned(), s(m.as_str())),
                        ("gsi1pk".to_owned(), s(format!("MSHIP#{m}"))),
                        ("gsi1sk".to_owned(), s("MSHIP")),
                    ]);
                }
                let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(build)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            for group in &w.grants_removed {
                let (pk, sk) = grant_key(group, &w.seat.user_id);
                let delete =
                    Delete::builder().table_name(&self.table).set_key(Some(key(pk, sk))).build().map_err(build)?;
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
        }
        for g in &commit.guards {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(sub_pk(&g.principal), "SUB")))
                .condition_expression("attribute_exists(pk) AND tier = :t")
                .expression_attribute_values(":t", s(g.tier.as_str()))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for p in &commit.absent {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(sub_pk(p), "SUB")))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        if let Some(outbox) = &commit.outbox {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(outbox_item(&outbox.id, &outbox.events)?))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        if items.is_empty() {
            return Ok(());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = super::error_code(&e);
                if matches!(code, Some("TransactionCanceledException") | Some("TransactionConflictException")) {
                    let reasons: Vec<String> = e
                        .as_service_error()
                        .and_then(|se| match se {
                            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                                Some(c.cancellation_reasons().iter().filter_map(|r| r.code().map(str::to_owned)).collect())
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    let throttled =
                        reasons.iter().any(|r| r == "ThrottlingError" || r == "ProvisionedThroughputExceeded");
                    if throttled {
                        return Err(StoreError::Throttled { operation: "TransactWriteItems", source: Box::new(e) });
                    }
                    return Err(StoreError::Conflict("TransactWriteItems"));
                }
                Err(store_error("TransactWriteItems", e))
            }
        }
    }

    async fn pending_outboxes(&self, limit: usize) -> Result<Vec<Outbox>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(OUTBOX))
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(100))
            .send()
            .await
            .map_err(|e| store_error("Query(outbox)", e))?;
        out.items().iter().map(outbox_from).collect()
    }

    async fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
        if remaining.is_empty() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(OUTBOX, id)))
                .send()
                .await
                .map_err(|e| store_error("DeleteItem(outbox)", e))?;
        } else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(outbox_item(id, remaining)?))
                .send()
                .await
                .map_err(|e| store_error("PutItem(outbox)", e))?;
        }
        Ok(())
    }
}

impl SeatNames for DynamoStore {
    async fn set_user_name(&self, user: &UserId, user_name: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(seat_pk(user), "SEAT")))
            .update_expression("SET userName = :name")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":name", s(user_name))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(seat name)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Audit reports: `AUDIT#<id>` / `AUDIT`, listed newest first through `gsi1` (`AUDITS`,
/// `<startedAt>#<id>`), kept 90 days (TTL).
const AUDITS: &str = "AUDITS";
const AUDIT_RETENTION_DAYS: i64 = 90;

fn audit_from(item: &Item) -> Result<crate::domain::audit::AuditReport, StoreError> {
    serde_json::from_str(Reader::new(item, "audit").str("report")?)
        .map_err(|_| StoreError::Corrupt("audit item: attribute 'report' is malformed".into()))
}

impl crate::ports::AuditStore for DynamoStore {
    async fn put_audit(&self, report: &crate::domain::audit::AuditReport) -> Result<(), StoreError> {
        let json = serde_json::to_string(report).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expires = report.finished_at + chrono::Duration::days(AUDIT_RETENTION_DAYS);
        let mut item = key(format!("AUDIT#{}", report.audit_id), "AUDIT");
        item.extend([
            ("entity".to_owned(), s("Audit")),
            ("gsi1pk".to_owned(), s(AUDITS)),
            ("gsi1sk".to_owned(), s(format!("{}#{}", crate::time::format(&report.started_at), report.audit_id))),
            ("report".to_owned(), s(json)),
            ("expiresAt".to_owned(), n(expires.timestamp())),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem(audit)", e))?;
        Ok(())
    }

    async fn get_audit(&self, audit_id: &str) -> Result<Option<crate::domain::audit::AuditReport>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("AUDIT#{audit_id}"), "AUDIT")))
            .send()
            .await
            .map_err(|e| store_error("GetItem(audit)", e))?;
        out.item.as_ref().map(audit_from).transpose()
    }

    async fn list_audits(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<crate::domain::audit::AuditReport>, StoreError> {
        let start = match next_token {
            Some(t) => {
                let sk = decode_token_of(&t, is_audit_key)?;
                let id = sk.rsplit('#').next().ok_or(StoreError::InvalidToken)?.to_owned();
                let mut esk = key(format!("AUDIT#{id}"), "AUDIT");
                esk.insert("gsi1pk".to_owned(), s(AUDITS));
                esk.insert("gsi1sk".to_owned(), s(sk));
                Some(esk)
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(AUDITS))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(50))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query(audits)", e))?;
        let items = out.items().iter().map(audit_from).collect::<Result<Vec<_>, _>>()?;
        let next_token = out
            .last_evaluated_key()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }
}

impl crate::ports::MembershipMap for DynamoStore {
    async fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> Result<(), StoreError> {
        let (pk, sk) = grant_key(group, user);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("SET membershipId = :m, gsi1pk = :g, gsi1sk = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":m", s(membership_id.as_str()))
            .expression_attribute_values(":g", s(format!("MSHIP#{membership_id}")))
            .expression_attribute_values(":s", s("MSHIP"))
            .send()
            .await;
        match result.map_err(|e| store_error("UpdateItem(grant)", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
