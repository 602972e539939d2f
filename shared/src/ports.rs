//! The narrow async traits the handlers depend on. Each function's handler is generic over the
//! ones it uses, which mirror its IAM policy in `template.yaml`; tests hand them fakes.

use std::future::Future;
use std::ops::Deref;

use chrono::{DateTime, NaiveDate, Utc};

use crate::BoxError;
use crate::domain::activity::{ActivityKey, Figures, ReportDay};
use crate::domain::audit::AuditReport;
use crate::domain::import::{ImportReport, ObjectRef};
use crate::domain::seat::SeatStatus;
use crate::domain::session::{Session, SignIn};
use crate::domain::{
    FanOut, GroupId, IdentityStoreId, MembershipId, Principal, PrincipalType, Profile, ProfilePatch, Seat,
    Subscription, Tier, UserId,
};

/// What can go wrong talking to the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item not in the expected state: already exists, lost a race.
    /// A domain outcome, never a 500 by itself.
    #[error("conditional write did not apply: {0}")]
    Conflict(&'static str),
    /// Throttling that survived the SDK's retries.
    #[error("DynamoDB throttled {operation} beyond retries")]
    Throttled {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("DynamoDB {operation} failed")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A request the table refuses as sent (`ValidationException`, a transaction item's
    /// `ValidationError`): it will fail the same way every time it is sent again.
    #[error("DynamoDB refused {operation}")]
    Refused {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// An item that does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// A `nextToken` this store did not hand out.
    #[error("the nextToken is not valid")]
    InvalidToken,
}

/// Grant rows per page of `granted_users`: only internal full listings read them, and a row is
/// ~150 bytes, so a page stays far below the 1 MB a DynamoDB Query answers at most.
pub const GRANTS_PAGE: usize = 1_000;

/// The deployment's one profile, as every function reads it.
pub trait ProfileStore: Send + Sync {
    fn get_profile(&self) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send;
}

/// Creating and editing the profile (`create-profile`).
pub trait ProfileAdmin: Send + Sync {
    /// Writes the profile only if none exists; [`StoreError::Conflict`] otherwise.
    fn create_profile(&self, profile: &Profile) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies the patch to the existing profile; `None` when there is no profile.
    fn update_profile(
        &self,
        patch: &ProfilePatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send;
}

/// What can go wrong reading the Identity Store.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("Identity Store throttled {operation} beyond retries")]
    Throttled {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("Identity Store {operation} failed")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A list's `nextToken` that the service refused (not one it handed out, or expired).
    #[error("Identity Store refused the nextToken of {operation}")]
    InvalidToken { operation: &'static str },
    /// The group or user a list is of no longer exists (`ResourceNotFoundException`): deleted.
    #[error("Identity Store {operation}: the group or user no longer exists")]
    NotFound { operation: &'static str },
}

/// A user as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub user_id: UserId,
    pub user_name: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A group as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryGroup {
    pub group_id: GroupId,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One user's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Membership {
    pub membership_id: MembershipId,
    pub group_id: GroupId,
    pub user_id: UserId,
}

/// A page of results and the token for the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What every function reads of the profile's Identity Store: a user, and a group's members. The
/// directory ports are read-only and split as the functions' IAM policies are.
pub trait Directory: Send + Sync {
    /// `DescribeUser`; `None` when the user does not exist.
    fn describe_user(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<DirectoryUser>, DirectoryError>> + Send;

    /// One page (up to 100) of `ListGroupMemberships` for a group.
    fn group_memberships(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Membership>, DirectoryError>> + Send;
}

/// Finding principals to subscribe, by name or page by page (`assign-tier`).
pub trait DirectorySearch: Send + Sync {
    /// `DescribeGroup`; `None` when the group does not exist.
    fn describe_group(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
    ) -> impl Future<Output = Result<Option<DirectoryGroup>, DirectoryError>> + Send;

    /// `GetUserId` by `userName` (exact); `None` when no user has it.
    fn user_id_by_name(
        &self,
        store: &IdentityStoreId,
        user_name: &str,
    ) -> impl Future<Output = Result<Option<UserId>, DirectoryError>> + Send;

    /// `GetGroupId` by `displayName` (exact); `None` when no group has it.
    fn group_id_by_name(
        &self,
        store: &IdentityStoreId,
        display_name: &str,
    ) -> impl Future<Output = Result<Option<GroupId>, DirectoryError>> + Send;

    /// One page (up to `limit`, at most 100) of `ListUsers`, unfiltered.
    fn list_users(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<DirectoryUser>, DirectoryError>> + Send;

    /// One page (up to `limit`, at most 100) of `ListGroups`, unfiltered.
    fn list_groups(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<DirectoryGroup>, DirectoryError>> + Send;
}

/// The console's sign-in state in the table: sessions, and sign-ins sent to the issuer.
pub trait SessionStore: Send + Sync {
    /// Stores a new session (or replaces it: a re-checked role, a new CSRF token).
    fn put_session(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session stored under this token hash, expired or not (the caller decides).
    fn get_session(&self, token_hash: &str) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Ends the session; ending one that is gone is not an error.
    fn delete_session(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Remembers a sign-in sent to the issuer until it comes back.
    fn put_sign_in(&self, sign_in: &SignIn) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the sign-in with this `state` out of the table: each can be completed once.
    fn take_sign_in(&self, state: &str) -> impl Future<Output = Result<Option<SignIn>, StoreError>> + Send;
}

/// Kiro's activity figures and the reports of their imports, in the table (`ingest-activity`).
pub trait ActivityStore: Send + Sync {
    /// Stores figures by (user, date, client type), replacing any stored for the same key: at
    /// most [`ACTIVITY_BATCH`] rows with distinct keys a call (one `BatchWriteItem`, its
    /// unprocessed items retried before it answers).
    fn put_activity(&self, rows: &[(ActivityKey, Figures)]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks each (date, client type) as having figures stored by an import, and answers those
    /// no import marked before: for them there are no earlier figures to replace, so a row with
    /// nothing in it need not be stored. One `UpdateItem` a day (a daily file has one).
    fn first_imports_of(&self, days: &[ReportDay]) -> impl Future<Output = Result<Vec<ReportDay>, StoreError>> + Send;

    /// Whether this object, at this ETag, was imported (or rejected) before.
    fn import_seen(&self, object: &ObjectRef) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores the report; an `IMPORTED` or `REJECTED` one also marks its object as seen, once:
    /// `Conflict` when another delivery marked it first (nothing stored then).
    fn record_import(&self, report: &ImportReport) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest activity recorded for users while they held no seat row (a `BatchGetItem` per
    /// 100 users).
    fn recorded_activity(
        &self,
        users: &[UserId],
    ) -> impl Future<Output = Result<Vec<(UserId, NaiveDate)>, StoreError>> + Send;

    /// Records the latest activity date of users who hold no seat row (a `BatchWriteItem` per 25):
    /// what their first grant reads with [`SeatStore::get_seats_with_activity`].
    fn record_unseated_activity(
        &self,
        latest: &[(UserId, NaiveDate)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What the usage routes read of the activity (`assign-tier`: reads only).
pub trait ActivityReads: Send + Sync {
    /// Import reports, newest first.
    fn list_imports(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<ImportReport>, StoreError>> + Send;

    /// A page of the figures dated in `month` (`YYYY-MM`) of the users of one shard
    /// ([`seat_shard`]), by user, date and client type, up to [`SHARD_PAGE`] a page: with
    /// [`SeatStore::shard_seats`], what the month's summary adds up, shard by shard. A token of
    /// another shard is refused.
    fn month_activity(
        &self,
        month: &str,
        shard: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(ActivityKey, Figures)>, StoreError>> + Send;

    /// The figures of `users` (distinct) dated in `month` (`YYYY-MM`): user by user in the order
    /// given, a user's by date and client type. One `Query` per user (another for each 1 MB of a
    /// user's month, which a month of daily rows does not reach), a few at a time: what a page
    /// of `GET /usage/users` reads, instead of the whole month.
    fn users_month_activity(
        &self,
        month: &str,
        users: &[UserId],
    ) -> impl Future<Output = Result<Vec<(ActivityKey, Figures)>, StoreError>> + Send;
}

/// Seats, and the latest activity recorded for the users among them without one.
pub type SeatsWithActivity = (Vec<Seat>, Vec<(UserId, NaiveDate)>);

/// Users a `BatchGetItem` of seats with their recorded activity takes (two keys each).
pub const SEATS_WITH_ACTIVITY: usize = 50;

/// Rows a `BatchWriteItem` takes.
pub const ACTIVITY_BATCH: usize = 25;

/// Why a report object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Gone, or replaced since the event (its ETag no longer matches): nothing to import.
    #[error("the object no longer exists at the version the event named")]
    Gone,
    #[error("S3 {operation} failed")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Kiro's report files (`s3:GetObject`).
pub trait ReportObjects: Send + Sync {
    /// The object's bytes at `object.etag`, as a blocking reader: read it on a blocking thread
    /// (`tokio::task::spawn_blocking`). Memory stays bounded: the body is streamed.
    fn open(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<Box<dyn std::io::Read + Send>, ObjectError>> + Send;
}

/// Where an export too large for one Lambda response goes (the console's Export CSV).
pub trait Exports: Send + Sync {
    /// Stores `body` as `name` and answers a download link valid for at most five minutes, or
    /// `None` when no place for exports is configured.
    fn publish_export(
        &self,
        name: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<Option<String>, ObjectError>> + Send;
}

/// No place for exports: large exports are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExports;

impl Exports for NoExports {
    async fn publish_export(&self, _name: &str, _body: Vec<u8>) -> Result<Option<String>, ObjectError> {
        Ok(None)
    }
}

/// A place for exports when configured (`Some`), none otherwise.
impl<X: Exports> Exports for Option<X> {
    async fn publish_export(&self, name: &str, body: Vec<u8>) -> Result<Option<String>, ObjectError> {
        match self {
            Some(x) => x.publish_export(name, body).await,
            None => Ok(None),
        }
    }
}

/// An IAM Identity Center instance of the account (`sso-admin:ListInstances`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_arn: String,
    pub identity_store_id: IdentityStoreId,
    pub name: Option<String>,
}

/// The account's IAM Identity Center instances: which Identity Store a new profile binds.
pub trait Instances: Send + Sync {
    /// Every instance, in the order the service lists them.
    fn list_instances(&self) -> impl Future<Output = Result<Vec<Instance>, DirectoryError>> + Send;
}

/// The groups one user belongs to (`sync-group`, converging on a membership event).
pub trait MemberGroups: Send + Sync {
    /// Every group the user belongs to (`ListGroupMembershipsForMember`, all pages).
    fn user_memberships(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Membership>, DirectoryError>> + Send;
}

/// Subscriptions and the group grants index (which seats a group is a source of).
pub trait SubscriptionStore: Send + Sync {
    fn get_subscription(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;

    /// A page of subscriptions, ordered by type then id.
    fn list_subscriptions(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Subscription>, StoreError>> + Send;

    /// Writes a new subscription; [`StoreError::Conflict`] when the principal already has one.
    fn create_subscription(&self, sub: &Subscription) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets tier, pending tier and `updatedAt`/`updatedBy` (nothing else: not the fan-out, which
    /// moves on its own), only if the stored tier is still `expected_tier`;
    /// [`StoreError::Conflict`] otherwise (changed or deleted meanwhile).
    fn update_subscription(
        &self,
        sub: &Subscription,
        expected_tier: Tier,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records how far the group's fan-out has come. `DONE` is final: a fan-out already done, or
    /// a subscription gone, is left as it is (no error).
    fn set_fan_out(
        &self,
        principal: &Principal,
        fan_out: FanOut,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the subscription; the removed one, or `None` if there was none.
    fn delete_subscription(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;

    /// How many seats hold `group` as a source: the counter the seat transactions keep (one
    /// read), or, for a group granted before counters were kept, a count of its grant rows.
    fn count_granted(&self, group: &GroupId) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Asks that `group`'s grant rows be spread over partitions before they are written: a
    /// group whose fan-out will write more of them than one partition key takes a second. Done
    /// only while the group has none (a group with rows keeps them where they are); a store
    /// without partitions has nothing to do.
    fn spread_grants(&self, group: &GroupId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of the users holding `group` as a source, with the membership id recorded for each.
    fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(UserId, Option<MembershipId>)>, StoreError>> + Send;

    /// The (group, user) a membership id was recorded for when its seat was granted.
    fn membership(
        &self,
        membership_id: &MembershipId,
    ) -> impl Future<Output = Result<Option<(GroupId, UserId)>, StoreError>> + Send;
}

/// Filters of `GET /seats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeatFilter {
    pub tier: Option<Tier>,
    pub status: Option<SeatStatus>,
}

/// A change to one seat, guarded by the version it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatWrite {
    pub seat: Seat,
    /// The version read; `None` when the seat must not exist yet.
    pub expected_version: Option<u64>,
    /// Group grants index rows to add (with the membership id when known) or remove.
    pub grants_added: Vec<(GroupId, Option<MembershipId>)>,
    pub grants_removed: Vec<GroupId>,
}

/// The subscription a granted source comes from must still exist with this tier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionGuard {
    pub principal: Principal,
    pub tier: Tier,
}

/// Events waiting to be published, stored atomically with the seat changes that caused them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    pub id: String,
    pub events: Vec<OutEvent>,
}

/// One atomic write: all of it or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub seats: Vec<SeatWrite>,
    pub guards: Vec<SubscriptionGuard>,
    /// Subscriptions that must not exist (a source removed because its subscription is gone).
    pub absent: Vec<Principal>,
    pub outbox: Option<Outbox>,
}

impl Commit {
    /// Items the transaction holds (DynamoDB allows 100): the seats, their grant rows, the
    /// conditions, a grant counter per group whose count moves, the outbox.
    pub fn item_count(&self) -> usize {
        let rows: usize = self.seats.iter().map(|w| 1 + w.grants_added.len() + w.grants_removed.len()).sum();
        rows + self.guards.len() + self.absent.len() + self.grant_deltas().len() + usize::from(self.outbox.is_some())
    }

    /// How the number of seats holding each group moves with this commit, for every group whose
    /// grant rows it writes (0 when as many come as go): the grant counters are kept in the same
    /// transaction, so a subscription's `seats` is read, never recounted.
    pub fn grant_deltas(&self) -> std::collections::BTreeMap<GroupId, i64> {
        let mut deltas = std::collections::BTreeMap::<GroupId, i64>::new();
        for w in &self.seats {
            for (group, _) in &w.grants_added {
                *deltas.entry(group.clone()).or_default() += 1;
            }
            for group in &w.grants_removed {
                *deltas.entry(group.clone()).or_default() -= 1;
            }
        }
        deltas
    }
}

/// Seats and the outbox. Every writer of seats also settles the outboxes it publishes itself
/// ([`Outboxes`]), and the audit's sweep finds the ones left behind ([`pending_outboxes`]).
///
/// [`pending_outboxes`]: SeatStore::pending_outboxes
pub trait SeatStore: Outboxes + Send + Sync {
    /// The seats that exist among `users` (at most 100), read consistently.
    fn get_seats(&self, users: &[UserId]) -> impl Future<Output = Result<Vec<Seat>, StoreError>> + Send;

    /// The seats among `users`, and for the users without one, the date of their latest activity
    /// recorded while they held no seat: one `BatchGetItem` per [`SEATS_WITH_ACTIVITY`] users.
    fn get_seats_with_activity(
        &self,
        users: &[UserId],
    ) -> impl Future<Output = Result<SeatsWithActivity, StoreError>> + Send;

    /// `principal`'s subscription with [`get_seats_with_activity`](Self::get_seats_with_activity)
    /// of `users`, read together, consistently: one `BatchGetItem` for up to
    /// [`SEATS_WITH_ACTIVITY`]` - 1` users (a membership event reads its group and its user at
    /// once; a table store reads the group's grant counter in it too, where its rows are).
    fn get_subscription_and_seats(
        &self,
        principal: &Principal,
        users: &[UserId],
    ) -> impl Future<Output = Result<(Option<Subscription>, SeatsWithActivity), StoreError>> + Send;

    /// Seats a page at a time, in list order ([`seat_position`]: shard by shard, a shard's by
    /// user id), so that no index partition takes every seat's write. A page holds every seat
    /// that `filter` keeps between the token it was given and its own (at most `limit`): its
    /// token resumes right after the last seat it answered or passed over, so a caller that uses
    /// whole pages can hand the token on as its own position. A filtered page reads a bounded
    /// number of seats, so it may come back short (even empty) with a token.
    fn list_seats(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Seat>, StoreError>> + Send;

    /// Every seat of one shard ([`seat_shard`]), by user id, up to [`SHARD_PAGE`] a page (one
    /// `Query`; fewer where a page reaches DynamoDB's 1 MB): a walk over every seat that reads
    /// the shards at once (the month's usage summary). A token of another shard is refused.
    fn shard_seats(
        &self,
        shard: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Seat>, StoreError>> + Send;

    /// Applies the commit atomically; [`StoreError::Conflict`] if any seat moved past its expected
    /// version or any guard failed.
    fn commit(&self, commit: &Commit) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Outboxes committed before `committed_before` (by the time their id starts with) and not
    /// settled yet, oldest first, at most `limit` (one `Query`): what a crash or a failed publish
    /// left behind, for the audit's sweep.
    fn pending_outboxes(
        &self,
        committed_before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Outbox>, StoreError>> + Send;
}

/// The outbox as its publisher sees it: outboxes read by id, and settled once published
/// (`publish-events`, fed by the table's stream; also every writer that publishes its own).
pub trait Outboxes: Send + Sync {
    /// The outboxes among `ids` (distinct, as `BatchGetItem` wants them) that still hold events,
    /// read consistently (one `BatchGetItem` per 100 ids, its unprocessed keys retried), in no
    /// particular order. An id that is gone was published and settled already.
    fn get_outboxes(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Outbox>, StoreError>> + Send;

    /// Marks an outbox published: deletes it (`DeleteItem`), or, when `remaining` holds the events
    /// that could not be published, keeps only those (`PutItem`).
    fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Names on seats (display only), filled after a grant through a group.
pub trait SeatNames: Send + Sync {
    /// Records the user's name on their seat (display only: no version change), if the seat exists.
    fn set_user_name(&self, user: &UserId, user_name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What can go wrong publishing events.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("EventBridge PutEvents failed")]
    Aws(#[source] BoxError),
}

/// An event for EventBridge (`Source` is always `kiro.subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutEvent {
    pub detail_type: String,
    pub detail: serde_json::Value,
}

/// `events:PutEvents` on the bus named by `EVENT_BUS_NAME`.
pub trait EventSink: Send + Sync {
    /// Publishes the events; answers the indexes of those that failed (empty when all went out).
    fn publish(&self, events: &[OutEvent]) -> impl Future<Output = Result<Vec<usize>, SinkError>> + Send;

    /// Who publishes the seat events a writer commits in its outbox. `true` (the default): the
    /// writer itself, right after its commit, then settles the outbox. `false`: the deployed
    /// stack's `publish-events`, fed the outbox item by the table's DynamoDB stream; the writer
    /// does nothing more after its commit, and the audit's sweep leaves young outboxes to that
    /// publisher. Events that are not seat events (continuations, name requests, reports) are
    /// put directly either way.
    fn publishes_seat_events_inline(&self) -> bool {
        true
    }
}

/// Audit reports, kept for admins to read (`GET /audits`).
pub trait AuditStore: Send + Sync {
    fn put_audit(&self, report: &AuditReport) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_audit(&self, audit_id: &str) -> impl Future<Output = Result<Option<AuditReport>, StoreError>> + Send;

    /// Newest first.
    fn list_audits(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<AuditReport>, StoreError>> + Send;
}

/// Where an unfinished audit stands: the small item read before every audit. Its state (drift
/// found so far, the walk's position) is stored beside it, in parts, under this `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointHead {
    pub audit_id: String,
    /// Bumped by every save; a save names the step it replaces.
    pub step: u32,
    pub mode: crate::domain::audit::AuditMode,
    pub force: bool,
    /// Milliseconds since the epoch until which one invocation holds the run; 0 when none does.
    pub lease_until_ms: i64,
    /// The Lambda request id of the invocation holding the run (empty when none does). Lambda
    /// retries an invocation that failed or timed out under the same request id, so the retry of
    /// an invocation that died holding the lease may take it back at once.
    pub lease_owner: String,
    pub saved_at: DateTime<Utc>,
    /// Unique to the save that wrote this head (a UUID): names its state's parts, so a save
    /// that loses the race for the head never overwrites the winner's state.
    pub save_id: String,
}

/// The checkpoint of an audit that needs more than one invocation. One run at a time: there is
/// one profile, and a second audit of the same directory would only repeat the first.
pub trait AuditCheckpoints: Send + Sync {
    fn checkpoint_head(&self) -> impl Future<Output = Result<Option<CheckpointHead>, StoreError>> + Send;

    /// The state saved with `head`.
    fn checkpoint_state(&self, head: &CheckpointHead) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Takes the lease on `head` for `owner` until `lease_until_ms`, if the head is unchanged and
    /// no lease is live at `now_ms` (or `owner`, not empty, holds it); `Conflict` otherwise.
    fn claim_checkpoint(
        &self,
        head: &CheckpointHead,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves `next` with `state`, replacing `replaces` (or creating the first checkpoint when
    /// `None`); `Conflict` when the head is no longer what the caller read.
    fn save_checkpoint(
        &self,
        replaces: Option<&CheckpointHead>,
        next: &CheckpointHead,
        state: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes `head` once its audit finished (nothing when the head has moved on).
    fn clear_checkpoint(&self, head: &CheckpointHead) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The bookkeeping of group membership: the membership id recorded on a group grant, and the
/// lease that lets one re-sync of a group run at a time.
pub trait MembershipMap: Send + Sync {
    /// Refreshes the membership id recorded on a group grant, if the grant still exists.
    fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the re-sync lease of `group` for `owner` until `until_ms`, when it is free, expired at
    /// `now_ms`, or `owner`'s already (Lambda's retry keeps the request id): `true`. When another
    /// holds it, records that the holder must re-sync once more: `false`.
    fn begin_resync(
        &self,
        group: &GroupId,
        owner: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends `owner`'s re-sync of `group`: `true` when a request came meanwhile (the lease is kept,
    /// and the owner re-syncs once more), `false` when the lease is released (or no longer its).
    fn end_resync(&self, group: &GroupId, owner: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Everything `assign-tier` keeps in the table (its handler names the ports one by one: they are
/// its IAM policy; this alias is for code that takes the whole set, such as test harnesses).
pub trait ApiStore: ProfileStore + SubscriptionStore + SeatStore + AuditStore + ActivityReads {}

impl<T: ProfileStore + SubscriptionStore + SeatStore + AuditStore + ActivityReads + ?Sized> ApiStore for T {}

/// Everything `sync-group` keeps in the table (see [`ApiStore`]).
pub trait SyncStore:
    ProfileStore + SubscriptionStore + SeatStore + SeatNames + AuditStore + AuditCheckpoints + MembershipMap
{
}

impl<T> SyncStore for T where
    T: ProfileStore
        + SubscriptionStore
        + SeatStore
        + SeatNames
        + AuditStore
        + AuditCheckpoints
        + MembershipMap
        + ?Sized
{
}

// Any pointer to a port is that port (`&T`, `Arc<T>`, `Box<T>`): handlers take their ports by
// value, and tests hand them shared fakes or borrowed adapters without wrapper types.

impl<P> ProfileStore for P
where
    P: Deref + Send + Sync,
    P::Target: ProfileStore,
{
    fn get_profile(&self) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send {
        (**self).get_profile()
    }
}

impl<P> ProfileAdmin for P
where
    P: Deref + Send + Sync,
    P::Target: ProfileAdmin,
{
    fn create_profile(&self, profile: &Profile) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_profile(profile)
    }

    fn update_profile(
        &self,
        patch: &ProfilePatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send {
        (**self).update_profile(patch, actor, now)
    }
}

impl<P> SessionStore for P
where
    P: Deref + Send + Sync,
    P::Target: SessionStore,
{
    fn put_session(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_session(session)
    }

    fn get_session(&self, token_hash: &str) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send {
        (**self).get_session(token_hash)
    }

    fn delete_session(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_session(token_hash)
    }

    fn put_sign_in(&self, sign_in: &SignIn) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_sign_in(sign_in)
    }

    fn take_sign_in(&self, state: &str) -> impl Future<Output = Result<Option<SignIn>, StoreError>> + Send {
        (**self).take_sign_in(state)
    }
}

impl<P> ActivityStore for P
where
    P: Deref + Send + Sync,
    P::Target: ActivityStore,
{
    fn put_activity(&self, rows: &[(ActivityKey, Figures)]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_activity(rows)
    }

    fn first_imports_of(&self, days: &[ReportDay]) -> impl Future<Output = Result<Vec<ReportDay>, StoreError>> + Send {
        (**self).first_imports_of(days)
    }

    fn import_seen(&self, object: &ObjectRef) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).import_seen(object)
    }

    fn record_import(&self, report: &ImportReport) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_import(report)
    }

    fn record_unseated_activity(
        &self,
        latest: &[(UserId, NaiveDate)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_unseated_activity(latest)
    }

    fn recorded_activity(
        &self,
        users: &[UserId],
    ) -> impl Future<Output = Result<Vec<(UserId, NaiveDate)>, StoreError>> + Send {
        (**self).recorded_activity(users)
    }
}

impl<P> ActivityReads for P
where
    P: Deref + Send + Sync,
    P::Target: ActivityReads,
{
    fn list_imports(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<ImportReport>, StoreError>> + Send {
        (**self).list_imports(limit, next_token)
    }

    fn month_activity(
        &self,
        month: &str,
        shard: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(ActivityKey, Figures)>, StoreError>> + Send {
        (**self).month_activity(month, shard, next_token)
    }

    fn users_month_activity(
        &self,
        month: &str,
        users: &[UserId],
    ) -> impl Future<Output = Result<Vec<(ActivityKey, Figures)>, StoreError>> + Send {
        (**self).users_month_activity(month, users)
    }
}

impl<P> ReportObjects for P
where
    P: Deref + Send + Sync,
    P::Target: ReportObjects,
{
    fn open(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<Box<dyn std::io::Read + Send>, ObjectError>> + Send {
        (**self).open(object)
    }
}

impl<P> Instances for P
where
    P: Deref + Send + Sync,
    P::Target: Instances,
{
    fn list_instances(&self) -> impl Future<Output = Result<Vec<Instance>, DirectoryError>> + Send {
        (**self).list_instances()
    }
}

impl<P> Directory for P
where
    P: Deref + Send + Sync,
    P::Target: Directory,
{
    fn describe_user(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<DirectoryUser>, DirectoryError>> + Send {
        (**self).describe_user(store, user)
    }

    fn group_memberships(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Membership>, DirectoryError>> + Send {
        (**self).group_memberships(store, group, next_token)
    }
}

impl<P> DirectorySearch for P
where
    P: Deref + Send + Sync,
    P::Target: DirectorySearch,
{
    fn describe_group(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
    ) -> impl Future<Output = Result<Option<DirectoryGroup>, DirectoryError>> + Send {
        (**self).describe_group(store, group)
    }

    fn user_id_by_name(
        &self,
        store: &IdentityStoreId,
        user_name: &str,
    ) -> impl Future<Output = Result<Option<UserId>, DirectoryError>> + Send {
        (**self).user_id_by_name(store, user_name)
    }

    fn group_id_by_name(
        &self,
        store: &IdentityStoreId,
        display_name: &str,
    ) -> impl Future<Output = Result<Option<GroupId>, DirectoryError>> + Send {
        (**self).group_id_by_name(store, display_name)
    }

    fn list_users(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<DirectoryUser>, DirectoryError>> + Send {
        (**self).list_users(store, limit, next_token)
    }

    fn list_groups(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<DirectoryGroup>, DirectoryError>> + Send {
        (**self).list_groups(store, limit, next_token)
    }
}

impl<P> MemberGroups for P
where
    P: Deref + Send + Sync,
    P::Target: MemberGroups,
{
    fn user_memberships(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Membership>, DirectoryError>> + Send {
        (**self).user_memberships(store, user)
    }
}

impl<P> SubscriptionStore for P
where
    P: Deref + Send + Sync,
    P::Target: SubscriptionStore,
{
    fn get_subscription(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send {
        (**self).get_subscription(principal)
    }

    fn list_subscriptions(
        &self,
        principal_type: Option<PrincipalType>,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Subscription>, StoreError>> + Send {
        (**self).list_subscriptions(principal_type, limit, next_token)
    }

    fn create_subscription(&self, sub: &Subscription) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_subscription(sub)
    }

    fn update_subscription(
        &self,
        sub: &Subscription,
        expected_tier: Tier,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).update_subscription(sub, expected_tier)
    }

    fn set_fan_out(
        &self,
        principal: &Principal,
        fan_out: FanOut,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set_fan_out(principal, fan_out)
    }

    fn delete_subscription(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send {
        (**self).delete_subscription(principal)
    }

    fn count_granted(&self, group: &GroupId) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).count_granted(group)
    }

    fn spread_grants(&self, group: &GroupId) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).spread_grants(group)
    }

    fn granted_users(
        &self,
        group: &GroupId,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(UserId, Option<MembershipId>)>, StoreError>> + Send {
        (**self).granted_users(group, next_token)
    }

    fn membership(
        &self,
        membership_id: &MembershipId,
    ) -> impl Future<Output = Result<Option<(GroupId, UserId)>, StoreError>> + Send {
        (**self).membership(membership_id)
    }
}

impl<P> SeatStore for P
where
    P: Deref + Send + Sync,
    P::Target: SeatStore,
{
    fn get_seats(&self, users: &[UserId]) -> impl Future<Output = Result<Vec<Seat>, StoreError>> + Send {
        (**self).get_seats(users)
    }

    fn get_seats_with_activity(
        &self,
        users: &[UserId],
    ) -> impl Future<Output = Result<SeatsWithActivity, StoreError>> + Send {
        (**self).get_seats_with_activity(users)
    }

    fn get_subscription_and_seats(
        &self,
        principal: &Principal,
        users: &[UserId],
    ) -> impl Future<Output = Result<(Option<Subscription>, SeatsWithActivity), StoreError>> + Send {
        (**self).get_subscription_and_seats(principal, users)
    }

    fn list_seats(
        &self,
        filter: SeatFilter,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Seat>, StoreError>> + Send {
        (**self).list_seats(filter, limit, next_token)
    }

    fn shard_seats(
        &self,
        shard: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Seat>, StoreError>> + Send {
        (**self).shard_seats(shard, next_token)
    }

    fn commit(&self, commit: &Commit) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).commit(commit)
    }

    fn pending_outboxes(
        &self,
        committed_before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Outbox>, StoreError>> + Send {
        (**self).pending_outboxes(committed_before, limit)
    }
}

impl<P> Outboxes for P
where
    P: Deref + Send + Sync,
    P::Target: Outboxes,
{
    fn get_outboxes(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Outbox>, StoreError>> + Send {
        (**self).get_outboxes(ids)
    }

    fn settle_outbox(&self, id: &str, remaining: &[OutEvent]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).settle_outbox(id, remaining)
    }
}

impl<P> SeatNames for P
where
    P: Deref + Send + Sync,
    P::Target: SeatNames,
{
    fn set_user_name(&self, user: &UserId, user_name: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set_user_name(user, user_name)
    }
}

impl<P> EventSink for P
where
    P: Deref + Send + Sync,
    P::Target: EventSink,
{
    fn publish(&self, events: &[OutEvent]) -> impl Future<Output = Result<Vec<usize>, SinkError>> + Send {
        (**self).publish(events)
    }

    fn publishes_seat_events_inline(&self) -> bool {
        (**self).publishes_seat_events_inline()
    }
}

impl<P> AuditStore for P
where
    P: Deref + Send + Sync,
    P::Target: AuditStore,
{
    fn put_audit(&self, report: &AuditReport) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_audit(report)
    }

    fn get_audit(&self, audit_id: &str) -> impl Future<Output = Result<Option<AuditReport>, StoreError>> + Send {
        (**self).get_audit(audit_id)
    }

    fn list_audits(
        &self,
        limit: usize,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<AuditReport>, StoreError>> + Send {
        (**self).list_audits(limit, next_token)
    }
}

impl<P> AuditCheckpoints for P
where
    P: Deref + Send + Sync,
    P::Target: AuditCheckpoints,
{
    fn checkpoint_head(&self) -> impl Future<Output = Result<Option<CheckpointHead>, StoreError>> + Send {
        (**self).checkpoint_head()
    }

    fn checkpoint_state(&self, head: &CheckpointHead) -> impl Future<Output = Result<String, StoreError>> + Send {
        (**self).checkpoint_state(head)
    }

    fn claim_checkpoint(
        &self,
        head: &CheckpointHead,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).claim_checkpoint(head, owner, lease_until_ms, now_ms)
    }

    fn save_checkpoint(
        &self,
        replaces: Option<&CheckpointHead>,
        next: &CheckpointHead,
        state: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_checkpoint(replaces, next, state)
    }

    fn clear_checkpoint(&self, head: &CheckpointHead) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear_checkpoint(head)
    }
}

impl<P> MembershipMap for P
where
    P: Deref + Send + Sync,
    P::Target: MembershipMap,
{
    fn refresh_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        membership_id: &MembershipId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).refresh_membership(group, user, membership_id)
    }

    fn begin_resync(
        &self,
        group: &GroupId,
        owner: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).begin_resync(group, owner, until_ms, now_ms)
    }

    fn end_resync(&self, group: &GroupId, owner: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).end_resync(group, owner)
    }
}

/// Every item of a paginated listing: calls `page` with each `nextToken` until the last page.
pub async fn all_pages<T, E, F, Fut>(page: F) -> Result<Vec<T>, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    let mut items = Vec::new();
    for_each_item(page, |item| items.push(item)).await?;
    Ok(items)
}

/// Hands every item of a paginated listing to `each`, a page at a time: only one page is held.
pub async fn for_each_item<T, E, F, Fut>(mut page: F, mut each: impl FnMut(T)) -> Result<(), E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    let mut token = None;
    loop {
        let p = page(token).await?;
        p.items.into_iter().for_each(&mut each);
        token = p.next_token;
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Items a page of one shard's seats or month's activity holds at most (one `Query`).
pub const SHARD_PAGE: usize = 1_000;

/// The index partitions seats are listed over: a fan-out or an audit writing 100,000 seats
/// spreads them over this many partition keys, each taking about 1/16 of the writes.
pub const SEAT_SHARDS: usize = 16;

/// The shard of `user`'s seat: FNV-1a (64 bits, folded) of the user id, stable across builds
/// and platforms, unlike `std`'s hasher. Part of the stored layout: another hash would lose
/// every seat's index row.
pub fn seat_shard(user: &str) -> usize {
    shard_of(user, SEAT_SHARDS)
}

/// `key`'s shard among `shards`.
pub fn shard_of(key: &str, shards: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    ((hash ^ (hash >> 32)) % shards as u64) as usize
}

/// Where `user`'s seat comes in [`SeatStore::list_seats`]: its shard, then its user id. A walk
/// over every seat that merges something keyed by user id (the audit's plan, usage's pages)
/// compares positions with this.
pub fn seat_position(user: &str) -> (usize, &str) {
    (seat_shard(user), user)
}
