//! Every kind of item the table holds: its keys and its record, converted to and from the domain
//! type here and nowhere else. The stores (`profile.rs`, `subscriptions.rs`, `seats.rs`, ...) only
//! say what to read and write.
//!
//! | item | pk | sk | gsi1pk | gsi1sk |
//! |---|---|---|---|---|
//! | profile | `PROFILE` | `PROFILE` | | |
//! | subscription | `SUB#<TYPE>#<id>` | `SUB` | `SUBS` | `<TYPE>#<id>` |
//! | seat | `SEAT#<userId>` | `SEAT` | `SEATS#<shard>` ([`seat_shard`], `00`..`15`) | `<userId>` |
//! | group grant (a seat holding the group as source) | `GROUP#<groupId>`, or `GROUP#<groupId>#<shard>` once spread ([`super::grants`]) | `MEMBER#<userId>` | `MSHIP#<membershipId>` | `MSHIP` |
//! | a group's grant counter (`grants`: the seats holding it; `shards`: 16 once spread) | `GROUP#<groupId>` | `COUNT` | | |
//! | outbox (events committed, not yet published) | `OUTBOX#<shard>` ([`outbox_shard`] of the id) | `<time>#<uuid>` | | |
//! | audit report, kept [`AUDIT_RETENTION_DAYS`] | `AUDIT#<auditId>` | `AUDIT` | `AUDITS` | `<startedAt>#<auditId>` |
//! | a group's re-sync lease (`owner`, `runningUntil`, `pending`; TTL) | `RESYNC#<groupId>` | `RESYNC` | | |
//! | activity figures of a (user, date, client type) | `ACTIVITY#<userId>` | `DAY#<date>#<clientType>` | `USAGE#<yyyy-mm>#<shard>` ([`seat_shard`] of the user) | `<userId>#<date>#<clientType>` |
//! | the latest activity of a user without a seat row | `ACTIVITY#<userId>` | `LATEST` | | |
//! | a (date, client type) some import stored figures for (`importedAt`) | `ACTIVITYDAY#<date>#<clientType>` | `DAY` | | |
//! | an imported object's marker | `IMPORTED#<bucket>#<etag>#<key>` | `MARKER` | | |
//! | an import report (TTL `expiresAt`, 400 days) | `IMPORT#<id>` | `IMPORT` | `IMPORTS` | `<importedAt>#<id>` |
//! | a console session (TTL `expiresAt`) | `SESSION#<sha256 of the cookie's token>` | `SESSION` | | |
//! | a console sign-in at the issuer (TTL `expiresAt`) | `SIGNIN#<state>` | `SIGNIN` | | |
//!
//! Audit checkpoints have their own layout, in `checkpoints.rs`.
//!
//! No index partition takes every write of a fan-out or an audit: seats are spread over
//! [`SEAT_SHARDS`] `SEATS#<shard>` partitions (DynamoDB serves about 1,000 writes a second per
//! partition key), and `list_seats` reads them in order (short ones at once), a shard's seats
//! by user id ([`crate::ports::seat_position`]), so a page costs one Query as before; outboxes over
//! [`OUTBOX_SHARDS`] `OUTBOX#<shard>` partitions, the sweep reading each; a large group's grant
//! rows over 16 `GROUP#<groupId>#<shard>` partitions ([`super::grants`]), a small group's in
//! one; a month's activity rows over 16 `USAGE#<yyyy-mm>#<shard>` partitions (a daily report
//! writes a row for each of its users). The layout changed from one `SEATS`, one `OUTBOX` and
//! one `USAGE#<yyyy-mm>` before any deployment; items written under those are not read.

use aws_sdk_dynamodb::types::AttributeValue;

use super::grants::GrantLayout;
use super::item::{Item, Reader, key, n, s, t};
use crate::domain::activity::{ActivityKey, Amount, ClientType, Figures};
use crate::domain::audit::AuditReport;
use crate::domain::import::{ImportReport, ImportStatus, ObjectRef};
use crate::domain::seat::{SeatStatus, SourceKey, Sources};
use crate::domain::session::{Role, Session, SignIn};
use crate::domain::usage::{BillMonth, BillRow, Bills, Held};
use crate::domain::{
    FanOut, FanOutState, GroupId, IdentityStoreId, MembershipId, Principal, PrincipalType, Profile, Seat, Subscription,
    Tier, UserId,
};
use crate::ports::{OutEvent, Outbox, StoreError};

pub(crate) const PROFILE: &str = "PROFILE";
pub(crate) const SUBS: &str = "SUBS";
pub(crate) const SEATS: &str = "SEATS";
pub use crate::ports::{SEAT_SHARDS, seat_shard};
pub(crate) const OUTBOX: &str = "OUTBOX";
/// The `OUTBOX#<shard>` partitions outboxes are written over.
pub const OUTBOX_SHARDS: usize = 16;
pub(crate) const AUDITS: &str = "AUDITS";
pub(crate) const GSI1: &str = "gsi1";
pub(crate) const AUDIT_RETENTION_DAYS: i64 = 90;
/// A group subscription's fan-out, updated on its own as it progresses.
pub(crate) const FAN_OUT_STATE: &str = "fanOutState";
pub(crate) const FAN_OUT_GRANTED: &str = "fanOutGranted";

pub(crate) const IMPORTS: &str = "IMPORTS";
/// Import reports are kept this long (a year of daily files and then some).
pub(crate) const IMPORT_RETENTION_DAYS: i64 = 400;

/// `ACTIVITY#<userId>`: the partition of a user's activity rows.
pub(crate) fn activity_pk(u: &UserId) -> String {
    format!("ACTIVITY#{}", u.as_str())
}

/// `DAY#<yyyy-mm>-`: what the sort keys of a user's rows dated in `month` (`YYYY-MM`) begin with.
pub(crate) fn activity_month_prefix(month: &str) -> String {
    format!("DAY#{month}-")
}

/// `USAGE#<yyyy-mm>#<shard>`: the index partition of a month's rows of the users of `shard`
/// ([`seat_shard`], two digits). A day's report of 100,000 users writes 100,000 index rows; over
/// one key they would take its 1,000 writes a second for 100 s and throttle the import's writes
/// to the table with them (an index's throttling holds back the table's writes).
pub(crate) fn usage_partition(month: &str, shard: usize) -> String {
    format!("USAGE#{month}#{shard:02}")
}

/// The `gsi1sk` of an activity row, `<userId>#<date>#<clientType>`, names its partition: the
/// user's shard.
pub(crate) fn usage_shard(gsi1sk: &str) -> usize {
    seat_shard(gsi1sk.split('#').next().unwrap_or_default())
}

/// `ACTIVITY#<userId>` / `DAY#<date>#<clientType>` from a `gsi1sk` of activity (a page token,
/// already checked by [`is_usage_key`]).
pub(crate) fn activity_key_of_usage(gsi1sk: &str) -> Item {
    let mut parts = gsi1sk.splitn(2, '#');
    let (user, day) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    key(format!("ACTIVITY#{user}"), format!("DAY#{day}"))
}

pub(crate) fn is_usage_key(gsi1sk: &str) -> bool {
    let parts: Vec<&str> = gsi1sk.splitn(3, '#').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
}

pub(crate) fn activity_key(k: &ActivityKey) -> Item {
    key(activity_pk(&k.user_id), format!("DAY#{}#{}", k.date.format("%Y-%m-%d"), k.client_type.as_str()))
}

pub(crate) fn activity_day_key((date, client_type): &crate::domain::activity::ReportDay) -> Item {
    key(format!("ACTIVITYDAY#{}#{}", date.format("%Y-%m-%d"), client_type.as_str()), "DAY")
}

pub(crate) fn latest_activity_key(u: &UserId) -> Item {
    key(format!("ACTIVITY#{}", u.as_str()), "LATEST")
}

pub(crate) fn latest_activity_item(u: &UserId, date: chrono::NaiveDate) -> Item {
    let mut item = latest_activity_key(u);
    item.insert("entity".to_owned(), s("LatestActivity"));
    item.insert("userId".to_owned(), s(u.as_str()));
    item.insert("lastActiveDate".to_owned(), s(date.format("%Y-%m-%d").to_string()));
    item
}

pub(crate) fn latest_activity_from(item: &Item) -> Result<(UserId, chrono::NaiveDate), StoreError> {
    let r = Reader::new(item, "latest activity");
    Ok((
        r.parsed("userId", |v| UserId::parse("userId", v))?,
        r.parsed("lastActiveDate", |v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"))?,
    ))
}

pub(crate) fn import_marker_key(o: &ObjectRef) -> Item {
    // The key last: S3 keys may hold any character, '#' included; bucket names and ETags do not.
    key(format!("IMPORTED#{}#{}#{}", o.bucket, o.etag, o.key), "MARKER")
}

pub(crate) fn import_key(id: &str) -> Item {
    key(format!("IMPORT#{id}"), "IMPORT")
}

pub(crate) fn is_import_key(sk: &str) -> bool {
    sk.split_once('#').is_some_and(|(at, id)| crate::time::parse(at).is_some() && !id.is_empty())
}

/// One row's figures, kept by (user, date, client type); listed by month for usage.
pub(crate) fn activity_item(k: &ActivityKey, f: &Figures) -> Item {
    let mut item = activity_key(k);
    let date = k.date.format("%Y-%m-%d").to_string();
    item.extend([
        ("entity".to_owned(), s("Activity")),
        ("gsi1pk".to_owned(), s(usage_partition(&k.date.format("%Y-%m").to_string(), seat_shard(k.user_id.as_str())))),
        ("gsi1sk".to_owned(), s(format!("{}#{date}#{}", k.user_id.as_str(), k.client_type.as_str()))),
        ("userId".to_owned(), s(k.user_id.as_str())),
        ("date".to_owned(), s(date)),
        ("clientType".to_owned(), s(k.client_type.as_str())),
        // Millionths, exact (`Amount`).
        ("creditsUsed".to_owned(), n(f.credits_used.micros())),
        ("overageCreditsUsed".to_owned(), n(f.overage_credits_used.micros())),
        ("totalMessages".to_owned(), n(f.total_messages.micros())),
        ("chatConversations".to_owned(), n(f.chat_conversations.micros())),
    ]);
    if let Some(tier) = &f.subscription_tier {
        item.insert("subscriptionTier".to_owned(), s(tier));
    }
    item
}

pub(crate) fn activity_from(item: &Item) -> Result<(ActivityKey, Figures), StoreError> {
    let r = Reader::new(item, "activity");
    let key = ActivityKey {
        user_id: r.parsed("userId", |v| UserId::parse("userId", v))?,
        date: r.parsed("date", |v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"))?,
        client_type: r.parsed("clientType", |v| ClientType::parse("clientType", v))?,
    };
    let amount = |attr: &str| r.u64(attr).map(Amount::from_micros);
    let figures = Figures {
        credits_used: amount("creditsUsed")?,
        overage_credits_used: amount("overageCreditsUsed")?,
        total_messages: amount("totalMessages")?,
        chat_conversations: amount("chatConversations")?,
        subscription_tier: r.opt_str("subscriptionTier")?.map(str::to_owned),
    };
    Ok((key, figures))
}

/// An import report under its id (`<importedAt>#<arrival>`: newest first, then by arrival).
pub(crate) fn import_item(id: &str, r: &ImportReport) -> Item {
    let mut item = import_key(id);
    item.extend([
        ("entity".to_owned(), s("ImportReport")),
        ("gsi1pk".to_owned(), s(IMPORTS)),
        ("gsi1sk".to_owned(), s(id)),
        ("bucket".to_owned(), s(&r.bucket)),
        ("key".to_owned(), s(&r.key)),
        ("etag".to_owned(), s(&r.etag)),
        ("status".to_owned(), s(r.status.as_str())),
        ("rows".to_owned(), n(r.rows)),
        ("users".to_owned(), n(r.users)),
        ("activated".to_owned(), n(r.activated)),
        ("unknownUsers".to_owned(), n(r.unknown_users)),
        ("rejectedRows".to_owned(), n(r.rejected_rows)),
        ("importedAt".to_owned(), t(&r.imported_at)),
        ("expiresAt".to_owned(), n((r.imported_at + chrono::Duration::days(IMPORT_RETENTION_DAYS)).timestamp())),
    ]);
    if let Some(reason) = &r.reason {
        item.insert("reason".to_owned(), s(reason));
    }
    item
}

pub(crate) fn import_from(item: &Item) -> Result<ImportReport, StoreError> {
    let r = Reader::new(item, "import report");
    Ok(ImportReport {
        bucket: r.str("bucket")?.to_owned(),
        key: r.str("key")?.to_owned(),
        etag: r.str("etag")?.to_owned(),
        status: r.parsed("status", |v| ImportStatus::parse(v).ok_or(()))?,
        reason: r.opt_str("reason")?.map(str::to_owned),
        rows: r.u64("rows")?,
        users: r.u64("users")?,
        activated: r.u64("activated")?,
        unknown_users: r.u64("unknownUsers")?,
        rejected_rows: r.u64("rejectedRows")?,
        imported_at: r.time("importedAt")?,
    })
}

pub(crate) fn session_key(token_hash: &str) -> Item {
    key(format!("SESSION#{token_hash}"), "SESSION")
}

pub(crate) fn sign_in_key(state: &str) -> Item {
    key(format!("SIGNIN#{state}"), "SIGNIN")
}

/// DynamoDB's TTL attribute: epoch seconds.
fn ttl(at: &chrono::DateTime<chrono::Utc>) -> AttributeValue {
    n(at.timestamp())
}

impl Record for Session {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = session_key(&self.token_hash);
        item.insert("userName".into(), s(&self.user_name));
        item.insert("userId".into(), s(self.user_id.as_str()));
        item.insert("role".into(), s(self.role.as_str()));
        item.insert("csrf".into(), s(&self.csrf));
        item.insert("createdAt".into(), t(&self.created_at));
        item.insert("validUntil".into(), t(&self.expires_at));
        item.insert("roleCheckedAt".into(), t(&self.role_checked_at));
        item.insert("expiresAt".into(), ttl(&self.expires_at));
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "session");
        let token_hash = r.str("pk")?.strip_prefix("SESSION#").unwrap_or_default().to_owned();
        Ok(Session {
            token_hash,
            user_name: r.str("userName")?.to_owned(),
            user_id: r.parsed("userId", |v| UserId::parse("userId", v))?,
            role: r.parsed("role", |v| Role::parse(v).ok_or("unknown role"))?,
            csrf: r.str("csrf")?.to_owned(),
            created_at: r.time("createdAt")?,
            expires_at: r.time("validUntil")?,
            role_checked_at: r.time("roleCheckedAt")?,
        })
    }
}

impl Record for SignIn {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = sign_in_key(&self.state);
        item.insert("nonce".into(), s(&self.nonce));
        item.insert("verifier".into(), s(&self.verifier));
        item.insert("validUntil".into(), t(&self.expires_at));
        item.insert("expiresAt".into(), ttl(&self.expires_at));
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "sign-in");
        Ok(SignIn {
            state: r.str("pk")?.strip_prefix("SIGNIN#").unwrap_or_default().to_owned(),
            nonce: r.str("nonce")?.to_owned(),
            verifier: r.str("verifier")?.to_owned(),
            expires_at: r.time("validUntil")?,
        })
    }
}

/// An item kind: how a value becomes an item (keys included) and back.
pub(crate) trait Record: Sized {
    fn to_item(&self) -> Result<Item, StoreError>;
    fn from_item(item: &Item) -> Result<Self, StoreError>;
}

pub(crate) fn profile_key() -> Item {
    key(PROFILE, PROFILE)
}

pub(crate) fn sub_pk(p: &Principal) -> String {
    format!("SUB#{}#{}", p.principal_type().as_str(), p.id())
}

pub(crate) fn sub_key(p: &Principal) -> Item {
    key(sub_pk(p), "SUB")
}

fn sub_gsi_sk(p: &Principal) -> String {
    format!("{}#{}", p.principal_type().as_str(), p.id())
}

pub(crate) fn seat_pk(u: &UserId) -> String {
    format!("SEAT#{u}")
}

/// The shard of an outbox: [`seat_shard`]'s hash, of its id (`<time>#<uuid>`).
pub fn outbox_shard(id: &str) -> usize {
    crate::ports::shard_of(id, OUTBOX_SHARDS)
}

/// `OUTBOX#<shard>`, two digits.
pub(crate) fn outbox_partition(shard: usize) -> String {
    format!("{OUTBOX}#{shard:02}")
}

pub(crate) fn outbox_key(id: &str) -> Item {
    key(outbox_partition(outbox_shard(id)), id)
}

/// `SEATS#<shard>`, two digits.
pub(crate) fn seats_partition(shard: usize) -> String {
    format!("{SEATS}#{shard:02}")
}

/// Every `SEATS#<shard>` partition, in list order: built once, read by every `list_seats`.
pub(crate) static SEATS_PARTITIONS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..SEAT_SHARDS).map(seats_partition).collect());

pub(crate) fn seat_key(u: &UserId) -> Item {
    key(seat_pk(u), "SEAT")
}

pub(crate) fn grant_pk(g: &GroupId) -> String {
    format!("GROUP#{g}")
}

pub(crate) const GRANT_SK_PREFIX: &str = "MEMBER#";

/// `user`'s grant row of `group`, in the partition `layout` puts it.
pub(crate) fn grant_key(g: &GroupId, u: &UserId, layout: GrantLayout) -> Item {
    key(layout.pk(g, u), grant_sk(u))
}

pub(crate) fn grant_sk(u: &UserId) -> String {
    format!("{GRANT_SK_PREFIX}{u}")
}

/// The counter of a group's grant rows, beside them (outside `begins_with(sk, "MEMBER#")`).
pub(crate) fn grant_count_key(g: &GroupId) -> Item {
    key(grant_pk(g), "COUNT")
}

pub(crate) fn membership_gsi_pk(m: &MembershipId) -> String {
    format!("MSHIP#{m}")
}

pub(crate) fn resync_key(g: &GroupId) -> Item {
    key(format!("RESYNC#{g}"), "RESYNC")
}

pub(crate) fn audit_key(audit_id: &str) -> Item {
    key(format!("AUDIT#{audit_id}"), "AUDIT")
}

/// `<TYPE>#<id>`, the gsi1sk of a subscription.
pub(crate) fn is_subscription_key(sk: &str) -> bool {
    sk.split_once('#').is_some_and(|(kind, id)| {
        PrincipalType::parse("principalType", kind)
            .and_then(|t| Principal::parse(t, "principalId", id))
            .is_ok_and(|p| p.id() == id)
    })
}

/// `<userId>`, the gsi1sk of a seat.
pub(crate) fn is_seat_key(sk: &str) -> bool {
    UserId::parse("userId", sk).is_ok_and(|u| u.as_str() == sk)
}

/// `MEMBER#<userId>`, the sort key of a group grant row.
pub(crate) fn is_grant_key(sk: &str) -> bool {
    sk.strip_prefix(GRANT_SK_PREFIX).is_some_and(is_seat_key)
}

/// `<startedAt>#<auditId>`, the gsi1sk of an audit report.
pub(crate) fn is_audit_key(sk: &str) -> bool {
    sk.split_once('#').is_some_and(|(at, id)| {
        crate::time::parse(at).is_some() && id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    })
}

impl Record for Profile {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = profile_key();
        item.extend([
            ("entity".to_owned(), s("Profile")),
            ("profileId".to_owned(), s(&self.profile_id)),
            ("name".to_owned(), s(&self.name)),
            ("description".to_owned(), s(&self.description)),
            ("region".to_owned(), s(&self.region)),
            ("identityStoreId".to_owned(), s(self.identity_store_id.as_str())),
            ("createdAt".to_owned(), t(&self.created_at)),
            ("updatedAt".to_owned(), t(&self.updated_at)),
            ("createdBy".to_owned(), s(&self.created_by)),
            ("updatedBy".to_owned(), s(&self.updated_by)),
        ]);
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "profile");
        Ok(Profile {
            profile_id: r.str("profileId")?.to_owned(),
            name: r.str("name")?.to_owned(),
            description: r.opt_str("description")?.unwrap_or_default().to_owned(),
            region: r.str("region")?.to_owned(),
            identity_store_id: r.parsed("identityStoreId", |v| IdentityStoreId::parse("identityStoreId", v))?,
            created_at: r.time("createdAt")?,
            updated_at: r.time("updatedAt")?,
            created_by: r.opt_str("createdBy")?.unwrap_or_default().to_owned(),
            updated_by: r.opt_str("updatedBy")?.unwrap_or_default().to_owned(),
        })
    }
}

impl Record for Subscription {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = sub_key(&self.principal);
        item.extend([
            ("entity".to_owned(), s("Subscription")),
            ("gsi1pk".to_owned(), s(SUBS)),
            ("gsi1sk".to_owned(), s(sub_gsi_sk(&self.principal))),
            ("principalType".to_owned(), s(self.principal_type.as_str())),
            ("principalId".to_owned(), s(&self.principal_id)),
            ("displayName".to_owned(), s(&self.display_name)),
            ("tier".to_owned(), s(self.tier.as_str())),
            ("createdAt".to_owned(), t(&self.created_at)),
            ("updatedAt".to_owned(), t(&self.updated_at)),
            ("updatedBy".to_owned(), s(&self.updated_by)),
        ]);
        if let (Some(tier), Some(at)) = (self.pending_tier, self.pending_tier_effective_at) {
            item.insert("pendingTier".to_owned(), s(tier.as_str()));
            item.insert("pendingTierEffectiveAt".to_owned(), t(&at));
        }
        if let Some(f) = &self.fan_out {
            item.insert(FAN_OUT_STATE.to_owned(), s(f.state.as_str()));
            item.insert(FAN_OUT_GRANTED.to_owned(), n(f.granted));
        }
        Ok(item)
    }

    /// `seats` is not stored (it is counted from the grants when asked for): it reads as 0.
    fn from_item(item: &Item) -> Result<Self, StoreError> {
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
            fan_out: match r.opt_str(FAN_OUT_STATE)? {
                None => None,
                Some(raw) => Some(FanOut {
                    state: FanOutState::parse(raw).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "subscription item: attribute '{FAN_OUT_STATE}' has an unexpected value"
                        ))
                    })?,
                    granted: r.opt_u64(FAN_OUT_GRANTED)?.unwrap_or(0),
                }),
            },
            created_at: r.time("createdAt")?,
            updated_at: r.time("updatedAt")?,
            updated_by: r.str("updatedBy")?.to_owned(),
        })
    }
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

impl Record for Seat {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = seat_key(&self.user_id);
        item.extend([
            ("entity".to_owned(), s("Seat")),
            ("gsi1pk".to_owned(), s(seats_partition(seat_shard(self.user_id.as_str())))),
            ("gsi1sk".to_owned(), s(self.user_id.as_str())),
            ("userId".to_owned(), s(self.user_id.as_str())),
            ("sources".to_owned(), sources_item(&self.sources)),
            ("tier".to_owned(), s(self.tier.as_str())),
            ("status".to_owned(), s(self.status.as_str())),
            ("grantedAt".to_owned(), t(&self.granted_at)),
            ("updatedAt".to_owned(), t(&self.updated_at)),
            ("version".to_owned(), n(self.version)),
        ]);
        if let Some(name) = &self.user_name {
            item.insert("userName".to_owned(), s(name));
        }
        if let Some(at) = &self.canceled_at {
            item.insert("canceledAt".to_owned(), t(at));
        }
        if let Some(at) = &self.activated_at {
            item.insert("activatedAt".to_owned(), t(at));
        }
        if let Some(date) = &self.last_active_date {
            item.insert("lastActiveDate".to_owned(), s(date.format("%Y-%m-%d").to_string()));
        }
        if !self.bills.rows().is_empty() {
            item.insert("bills".to_owned(), s(bills_text(&self.bills)));
        }
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "seat");
        let last_active_date = match r.opt_str("lastActiveDate")? {
            None => None,
            Some(_) => Some(r.parsed("lastActiveDate", |v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"))?),
        };
        Ok(Seat {
            user_id: r.parsed("userId", |v| UserId::parse("userId", v))?,
            user_name: r.opt_str("userName")?.map(str::to_owned),
            sources: sources_from(item)?,
            tier: r.parsed("tier", str::parse::<Tier>)?,
            status: r.parsed("status", |v| SeatStatus::parse(v).ok_or(()))?,
            granted_at: r.time("grantedAt")?,
            updated_at: r.time("updatedAt")?,
            canceled_at: r.opt_time("canceledAt")?,
            activated_at: r.opt_time("activatedAt")?,
            last_active_date,
            bills: match r.opt_str("bills")? {
                None => Bills::default(),
                Some(text) => bills_from(text)
                    .ok_or_else(|| StoreError::Corrupt("seat item: attribute 'bills' is malformed".into()))?,
            },
            version: r.u64("version")?,
        })
    }
}

/// A seat's bills, compact (13 months in about 300 bytes, one write unit with the seat): rows
/// `<yyyy-mm> <highest> <A|P> <opening>` joined by `;`, where `<highest>` is a tier or `-`, `A`
/// means the seat was `ACTIVE` in the month, and `<opening>` is `-` or `<tier>/<A|P>`.
fn bills_text(bills: &Bills) -> String {
    let held = |h: Held| {
        h.map_or("-".to_owned(), |(tier, active)| format!("{}/{}", tier.as_str(), if active { 'A' } else { 'P' }))
    };
    let rows: Vec<String> = bills
        .rows()
        .iter()
        .map(|r| {
            let highest = r.bill.highest_tier.map_or("-", Tier::as_str);
            format!("{} {highest} {} {}", r.bill.month, if r.bill.active { 'A' } else { 'P' }, held(r.opening))
        })
        .collect();
    rows.join(";")
}

fn bills_from(text: &str) -> Option<Bills> {
    let tier = |t: &str| if t == "-" { Some(None) } else { t.parse::<Tier>().ok().map(Some) };
    let flag = |f: &str| match f {
        "A" => Some(true),
        "P" => Some(false),
        _ => None,
    };
    let mut rows = Vec::new();
    for row in text.split(';') {
        let mut parts = row.split(' ');
        let (month, highest, active, opening) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let opening = match opening.split_once('/') {
            None if opening == "-" => None,
            Some((t, f)) => Some((t.parse::<Tier>().ok()?, flag(f)?)),
            None => return None,
        };
        let bill = BillMonth { month: month.parse().ok()?, highest_tier: tier(highest)?, active: flag(active)? };
        rows.push(BillRow { bill, opening });
    }
    Some(Bills::from_rows(rows))
}

/// A group grant row: the user holds a seat with the group as a source. The membership id, when
/// known, maps a `DeleteGroupMembership` (which names only the membership) back to the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub group: GroupId,
    pub user: UserId,
    pub membership: Option<MembershipId>,
    /// Which partition the row is in.
    pub layout: GrantLayout,
}

impl Record for Grant {
    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = grant_key(&self.group, &self.user, self.layout);
        item.extend([
            ("entity".to_owned(), s("GroupGrant")),
            ("groupId".to_owned(), s(self.group.as_str())),
            ("userId".to_owned(), s(self.user.as_str())),
        ]);
        if let Some(m) = &self.membership {
            item.extend([
                ("membershipId".to_owned(), s(m.as_str())),
                ("gsi1pk".to_owned(), s(membership_gsi_pk(m))),
                ("gsi1sk".to_owned(), s("MSHIP")),
            ]);
        }
        Ok(item)
    }

    /// A membership id that does not parse is read as unknown (the audit maps it again).
    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "grant");
        let group = r.parsed("groupId", |v| GroupId::parse("groupId", v))?;
        let layout = if r.str("pk")? == grant_pk(&group) { GrantLayout::One } else { GrantLayout::Spread };
        Ok(Grant {
            user: r.parsed("userId", |v| UserId::parse("userId", v))?,
            membership: r.opt_str("membershipId")?.and_then(|m| MembershipId::parse("membershipId", m).ok()),
            group,
            layout,
        })
    }
}

impl Record for Outbox {
    fn to_item(&self) -> Result<Item, StoreError> {
        let json = serde_json::to_string(&self.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut item = outbox_key(&self.id);
        item.extend([("entity".to_owned(), s("Outbox")), ("events".to_owned(), s(json))]);
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader::new(item, "outbox");
        let events: Vec<OutEvent> = serde_json::from_str(r.str("events")?)
            .map_err(|_| StoreError::Corrupt("outbox item: attribute 'events' is malformed".into()))?;
        Ok(Outbox { id: r.str("sk")?.to_owned(), events })
    }
}

/// The report is stored whole as JSON: it is only ever read whole.
impl Record for AuditReport {
    fn to_item(&self) -> Result<Item, StoreError> {
        let json = serde_json::to_string(self).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expires = self.finished_at + chrono::Duration::days(AUDIT_RETENTION_DAYS);
        let mut item = audit_key(&self.audit_id);
        item.extend([
            ("entity".to_owned(), s("Audit")),
            ("gsi1pk".to_owned(), s(AUDITS)),
            ("gsi1sk".to_owned(), s(format!("{}#{}", crate::time::format(&self.started_at), self.audit_id))),
            ("report".to_owned(), s(json)),
            ("expiresAt".to_owned(), n(expires.timestamp())),
        ]);
        Ok(item)
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        serde_json::from_str(Reader::new(item, "audit").str("report")?)
            .map_err(|_| StoreError::Corrupt("audit item: attribute 'report' is malformed".into()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::domain::audit::AuditMode;

    /// Attributes that place an item (keys, index keys, kind, expiry) rather than carry its value.
    const PLACEMENT: &[&str] = &["pk", "sk", "gsi1pk", "gsi1sk", "entity", "expiresAt"];

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    fn user(n: u8) -> UserId {
        UserId::parse("u", &format!("9067{n:04}-0000-4000-8000-000000000000")).unwrap()
    }

    fn group(n: u8) -> GroupId {
        GroupId::parse("g", &format!("a1b2{n:04}-0000-4000-8000-000000000000")).unwrap()
    }

    /// Reads back what it wrote, and reads every attribute it writes: without any one of them
    /// (placement aside) the item no longer reads as the same value. A record that writes an
    /// attribute nobody reads (as `createdBy` once was) fails here.
    fn round_trips<R: Record + PartialEq + std::fmt::Debug>(value: &R) {
        let item = value.to_item().unwrap();
        assert_eq!(&R::from_item(&item).unwrap(), value);
        for attr in item.keys().filter(|a| !PLACEMENT.contains(&a.as_str())) {
            let mut without = item.clone();
            without.remove(attr);
            let read = R::from_item(&without);
            assert!(read.as_ref().is_err() || read.as_ref().ok() != Some(value), "{attr} is written and never read");
        }
    }

    fn subscription(principal: Principal, pending: bool) -> Subscription {
        let fan_out =
            matches!(principal, Principal::Group(_)).then_some(FanOut { state: FanOutState::InProgress, granted: 40 });
        Subscription {
            principal_type: principal.principal_type(),
            principal_id: principal.id().to_owned(),
            principal,
            display_name: "engineering".into(),
            tier: Tier::Power,
            pending_tier: pending.then_some(Tier::Pro),
            pending_tier_effective_at: pending.then(|| at(0)),
            seats: 0,
            fan_out,
            created_at: at(1),
            updated_at: at(2),
            updated_by: "arn:aws:iam::111122223333:user/admin".into(),
        }
    }

    fn seat(name: bool, canceled: bool) -> Seat {
        Seat {
            user_id: user(1),
            user_name: name.then(|| "alice".to_owned()),
            sources: Sources::from([(SourceKey::Direct, Tier::Pro), (SourceKey::Group(group(2)), Tier::ProPlus)]),
            tier: Tier::ProPlus,
            status: if canceled { SeatStatus::Canceled } else { SeatStatus::Active },
            granted_at: at(1),
            updated_at: at(2),
            canceled_at: canceled.then(|| at(3)),
            activated_at: Some(at(2)),
            last_active_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 4),
            bills: Bills::from_rows(vec![
                BillRow {
                    bill: BillMonth {
                        month: "2026-01".parse().unwrap(),
                        highest_tier: Some(Tier::Power),
                        active: false,
                    },
                    opening: None,
                },
                BillRow {
                    bill: BillMonth {
                        month: "2026-03".parse().unwrap(),
                        highest_tier: Some(Tier::ProPlus),
                        active: true,
                    },
                    opening: Some((Tier::Pro, false)),
                },
                BillRow {
                    bill: BillMonth { month: "2026-04".parse().unwrap(), highest_tier: None, active: false },
                    opening: Some((Tier::ProPlus, true)),
                },
            ]),
            version: 7,
        }
    }

    fn audit_report() -> AuditReport {
        AuditReport {
            mode: AuditMode::Repair,
            granted: 1,
            changed: 2,
            canceled: 3,
            halted: false,
            started_at: at(1),
            finished_at: at(2),
            audit_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            active_seats: 10,
            downgrades_due: 0,
            cancels_withheld: 0,
            names_filled: 1,
            principals_deleted: 1,
            skipped: 1,
            skipped_users: vec!["u".into()],
            invocations: 2,
            findings: vec![],
            findings_truncated: false,
        }
    }

    #[test]
    fn every_item_kind_reads_back_what_it_wrote_and_reads_all_of_it() {
        round_trips(&Profile {
            profile_id: "p-1".into(),
            name: "Kiro".into(),
            description: "Team subscriptions".into(),
            region: "us-east-1".into(),
            identity_store_id: IdentityStoreId::parse("i", "d-1234567890").unwrap(),
            created_at: at(1),
            updated_at: at(2),
            created_by: "arn:aws:iam::111122223333:user/creator".into(),
            updated_by: "arn:aws:iam::111122223333:user/admin".into(),
        });
        for pending in [false, true] {
            round_trips(&subscription(Principal::Group(group(1)), pending));
            round_trips(&subscription(Principal::User(user(1)), pending));
        }
        for (name, canceled) in [(false, false), (true, true)] {
            round_trips(&seat(name, canceled));
        }
        for membership in [None, Some(MembershipId::parse("m", "b2c3d4e5-0000-4000-8000-000000000000").unwrap())] {
            for layout in [GrantLayout::One, GrantLayout::Spread] {
                round_trips(&Grant { group: group(1), user: user(1), membership: membership.clone(), layout });
            }
        }
        round_trips(&Outbox {
            id: "2026-12-01T00:00:00.000Z#1".into(),
            events: vec![OutEvent { detail_type: "Seat Granted".into(), detail: json!({"userId": "u"}) }],
        });
        round_trips(&audit_report());
    }

    #[test]
    fn a_seats_bills_are_compact_and_malformed_ones_are_refused() {
        let item = seat(true, false).to_item().unwrap();
        assert_eq!(item["bills"].as_s().unwrap(), "2026-01 POWER P -;2026-03 PRO_PLUS A PRO/P;2026-04 - P PRO_PLUS/A");
        for bad in ["2026-13 PRO A -", "2026-01 PRO X -", "2026-01 GOLD A -", "2026-01 PRO A PRO", "2026-01 PRO A", ""]
        {
            let mut item = item.clone();
            item.insert("bills".to_owned(), s(bad));
            assert!(matches!(Seat::from_item(&item), Err(StoreError::Corrupt(_))), "{bad:?}");
        }
    }

    /// A fan-out or an audit writing 10,000 seats spreads their index rows over every
    /// `SEATS#<shard>` partition, none taking more than twice its share, whether the user ids
    /// differ only in their last digits (as one Identity Store's tend to) or throughout.
    #[test]
    fn seat_index_rows_spread_over_the_shards_with_a_bounded_share() {
        let str_of = |item: &Item, attr: &str| item[attr].as_s().unwrap().clone();
        let sequential = |i: u32| format!("94482488-3041-7026-18f3-{i:012x}");
        let scattered = |i: u32| {
            let h = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!("{:08x}-{:04x}-4000-8000-{:012x}", h >> 32, (h >> 16) & 0xffff, h & 0xffff_ffff_ffff)
        };
        for id in [&sequential as &dyn Fn(u32) -> String, &scattered] {
            let mut rows: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
            for i in 0..10_000 {
                let seat = Seat { user_id: UserId::parse("u", &id(i)).unwrap(), ..seat(true, false) };
                let item = seat.to_item().unwrap();
                *rows.entry(item["gsi1pk"].as_s().unwrap().clone()).or_default() += 1;
            }
            let partitions = SEATS_PARTITIONS.clone();
            assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), partitions, "every shard, and only them");
            let mean = 10_000 / SEAT_SHARDS;
            assert!(rows.values().all(|&n| n <= 2 * mean), "a shard over twice its share: {rows:?}");
        }
        // Outboxes too: 10,000 commits of one second (ids of one time, uuids apart).
        let mut outboxes: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for i in 0..10_000 {
            let id = format!("2026-12-01T00:00:00.000Z#{}", scattered(i));
            let item = Outbox { id, events: vec![] }.to_item().unwrap();
            *outboxes.entry(item["pk"].as_s().unwrap().clone()).or_default() += 1;
        }
        let partitions: Vec<String> = (0..OUTBOX_SHARDS).map(outbox_partition).collect();
        assert_eq!(outboxes.keys().cloned().collect::<Vec<_>>(), partitions, "every outbox shard, and only them");
        assert!(outboxes.values().all(|&n| n <= 2 * 10_000 / OUTBOX_SHARDS), "{outboxes:?}");
        // A month's activity rows: a day's report of 10,000 users over every `USAGE#<month>#<shard>`.
        let mut usage: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for i in 0..10_000 {
            let key = ActivityKey {
                user_id: UserId::parse("u", &scattered(i)).unwrap(),
                date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                client_type: ClientType::parse("c", "KIRO_IDE").unwrap(),
            };
            let item = activity_item(&key, &Figures::default());
            let sk = str_of(&item, "gsi1sk");
            assert_eq!(
                str_of(&item, "gsi1pk"),
                usage_partition("2026-12", usage_shard(&sk)),
                "a token names its partition"
            );
            assert!(is_usage_key(&sk) && activity_key_of_usage(&sk) == activity_key(&key), "and its table key");
            *usage.entry(str_of(&item, "gsi1pk")).or_default() += 1;
        }
        let partitions: Vec<String> = (0..SEAT_SHARDS).map(|shard| usage_partition("2026-12", shard)).collect();
        assert_eq!(usage.keys().cloned().collect::<Vec<_>>(), partitions, "every usage shard, and only them");
        assert!(usage.values().all(|&n| n <= 2 * 10_000 / SEAT_SHARDS), "{usage:?}");
        // The shard is part of the stored layout: a different hash would lose every seat's row.
        assert_eq!(seats_partition(seat_shard("94482488-3041-7026-18f3-000000000001")), "SEATS#11");
        let sample = "2026-11-26T10:00:00.250Z#6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"; // events/dynamodb
        assert_eq!(outbox_key(sample)["pk"].as_s().unwrap(), "OUTBOX#05");
    }

    /// A page token is an item's list key; each list accepts exactly the keys its items get.
    #[test]
    fn each_list_accepts_the_keys_its_items_are_written_with() {
        let str_of = |item: &Item, attr: &str| item[attr].as_s().unwrap().clone();
        let sub = subscription(Principal::Group(group(1)), false).to_item().unwrap();
        let seat = seat(true, false).to_item().unwrap();
        let grant =
            Grant { group: group(1), user: user(1), membership: None, layout: GrantLayout::One }.to_item().unwrap();
        let audit = audit_report().to_item().unwrap();
        assert!(is_subscription_key(&str_of(&sub, "gsi1sk")));
        assert!(is_seat_key(&str_of(&seat, "gsi1sk")));
        assert!(is_grant_key(&str_of(&grant, "sk")));
        assert!(is_audit_key(&str_of(&audit, "gsi1sk")));
        // And none accepts another list's keys.
        assert!(!is_seat_key(&str_of(&sub, "gsi1sk")) && !is_subscription_key(&str_of(&seat, "gsi1sk")));
        assert!(!is_audit_key(&str_of(&sub, "gsi1sk")) && !is_grant_key(&str_of(&seat, "gsi1sk")));
        // Reports expire AUDIT_RETENTION_DAYS after they finish (DynamoDB TTL, epoch seconds).
        let expires = at(2) + chrono::Duration::days(AUDIT_RETENTION_DAYS);
        assert_eq!(audit["expiresAt"].as_n().unwrap(), &expires.timestamp().to_string());
    }
}
