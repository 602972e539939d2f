//! What an incoming EventBridge event means for seats. CloudTrail events are hints about one user
//! or group; the handler converges on what the Identity Store says now, so this only extracts
//! *which* principal to look at. Names are never read (CloudTrail redacts them).

use serde_json::Value;

use super::audit::AuditMode;
use super::{GroupId, MembershipId, UserId};

pub const CLOUDTRAIL: &str = "AWS API Call via CloudTrail";
pub const SCHEDULED: &str = "Scheduled Event";
pub const AUDIT_REQUESTED: &str = "Audit Requested";
pub const OWN_SOURCE: &str = "kiro.subscriptions";
/// Seats granted without a user name (a group's fan-out: `ListGroupMemberships` has no names)
/// ask sync-group to name them: `{"userIds": [...]}`, at most [`MAX_NAMES_PER_REQUEST`].
pub const NAMES_REQUESTED: &str = "Seat Names Requested";
pub const MAX_NAMES_PER_REQUEST: usize = 1_000;
/// A group's fan-out that outlived its call continues: `{"groupId", "nextToken"?, "granted"}`
/// (the Identity Store's page token where it stopped, and the members granted so far).
pub const FAN_OUT_REQUESTED: &str = "Fan-out Requested";

/// The meaning of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A user joined or left a group (API `CreateGroupMembership`, console add/remove).
    Membership {
        group: GroupId,
        user: UserId,
    },
    /// `DeleteGroupMembership`: only the membership id is known.
    MembershipDeleted {
        membership: MembershipId,
    },
    /// SCIM `PatchGroup`: members changed, which ones is redacted.
    GroupMembersChanged {
        group: GroupId,
    },
    GroupDeleted {
        group: GroupId,
    },
    UserDeleted {
        user: UserId,
    },
    Audit {
        mode: AuditMode,
        force: bool,
        /// `detail.continues`: the audit whose checkpoint this request resumes (an audit that
        /// needs more than one invocation requests its own continuation this way).
        continues: Option<String>,
    },
    /// Fill the user names of these users' seats (those still without one).
    NameSeats {
        users: Vec<UserId>,
    },
    /// Continue a group's fan-out from `next_token` (from the start when `None`).
    FanOut {
        group: GroupId,
        next_token: Option<String>,
        granted: u64,
    },
    /// Acknowledged and logged, never retried.
    Ignore {
        why: String,
    },
}

impl Signal {
    /// The name logged for this signal.
    pub fn kind(&self) -> &'static str {
        match self {
            Signal::Membership { .. } => "membership",
            Signal::MembershipDeleted { .. } => "membership-deleted",
            Signal::GroupMembersChanged { .. } => "group-members-changed",
            Signal::GroupDeleted { .. } => "group-deleted",
            Signal::UserDeleted { .. } => "user-deleted",
            Signal::Audit { .. } => "audit",
            Signal::NameSeats { .. } => "name-seats",
            Signal::FanOut { .. } => "fan-out",
            Signal::Ignore { .. } => "ignored",
        }
    }
}

const IDENTITY_STORE: &str = "identitystore.amazonaws.com";
const CONSOLE: &str = "sso-directory.amazonaws.com";
const SCIM: &str = "identitystore-scim.amazonaws.com";

/// The identity store an event names, if it names one (SCIM events do not).
pub fn identity_store_of(detail: &Value) -> Option<&str> {
    detail.pointer("/requestParameters/identityStoreId").and_then(Value::as_str)
}

fn ignore(why: impl Into<String>) -> Signal {
    Signal::Ignore { why: why.into() }
}

fn text<'a>(detail: &'a Value, pointer: &str) -> Option<&'a str> {
    detail.pointer(pointer).and_then(Value::as_str)
}

/// Reads an id at `pointer` with `parse` (which also strips ARNs), or explains why not.
fn id<T>(detail: &Value, pointer: &str, parse: fn(&str, &str) -> Result<T, super::Invalid>) -> Result<T, Signal> {
    let raw = text(detail, pointer).ok_or_else(|| ignore(format!("no {pointer} in the event")))?;
    parse(pointer, raw).map_err(|e| ignore(format!("malformed id: {e}")))
}

/// The shape of the ids audits are given (UUIDs), checked before one is logged or compared.
fn is_audit_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Classifies an EventBridge envelope by its `source`, `detail-type` and `detail`.
pub fn classify(source: &str, detail_type: &str, detail: &Value) -> Signal {
    match (source, detail_type) {
        ("aws.events", SCHEDULED) => return Signal::Audit { mode: AuditMode::Repair, force: false, continues: None },
        (OWN_SOURCE, AUDIT_REQUESTED) => {
            let Some(mode) = detail.get("mode").and_then(Value::as_str).and_then(AuditMode::parse) else {
                return ignore("Audit Requested needs detail.mode \"report\" or \"repair\"");
            };
            let force = detail.get("force").and_then(Value::as_bool).unwrap_or(false);
            let continues = match detail.get("continues") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) if is_audit_id(id) => Some(id.clone()),
                Some(_) => return ignore("Audit Requested: detail.continues must be an audit id"),
            };
            return Signal::Audit { mode, force, continues };
        }
        (OWN_SOURCE, NAMES_REQUESTED) => {
            let Some(raw) = detail.get("userIds").and_then(Value::as_array) else {
                return ignore("Seat Names Requested needs detail.userIds, a list of user ids");
            };
            let users: Vec<UserId> = raw
                .iter()
                .take(MAX_NAMES_PER_REQUEST)
                .filter_map(Value::as_str)
                .filter_map(|id| UserId::parse("userIds", id).ok())
                .collect();
            if users.is_empty() {
                return ignore("Seat Names Requested: no user id in detail.userIds");
            }
            return Signal::NameSeats { users };
        }
        (OWN_SOURCE, FAN_OUT_REQUESTED) => {
            let group = match id(detail, "/groupId", GroupId::parse) {
                Ok(g) => g,
                Err(why) => return why,
            };
            let next_token = match detail.get("nextToken") {
                None | Some(Value::Null) => None,
                // Identity Store tokens are opaque and long, but not unbounded.
                Some(Value::String(t)) if !t.is_empty() && t.len() <= 8_192 => Some(t.clone()),
                Some(_) => return ignore("Fan-out Requested: detail.nextToken must be a page token"),
            };
            let granted = detail.get("granted").and_then(Value::as_u64).unwrap_or(0);
            return Signal::FanOut { group, next_token, granted };
        }
        // EventBridge refuses `PutEvents` with a source starting `aws.`: anything else calling
        // itself CloudTrail was put by someone in the account, and must not delete subscriptions.
        (source, CLOUDTRAIL) if source.starts_with("aws.") => {}
        _ => return ignore(format!("unhandled detail-type {detail_type:?} from {source:?}")),
    }
    if detail.get("errorCode").is_some_and(|e| !e.is_null()) {
        return ignore("a failed call (errorCode present)");
    }
    let event_source = text(detail, "/eventSource").unwrap_or_default();
    let event_name = text(detail, "/eventName").unwrap_or_default();
    let parsed = match (event_source, event_name) {
        (IDENTITY_STORE, "CreateGroupMembership") => (|| {
            Ok(Signal::Membership {
                group: id(detail, "/requestParameters/groupId", GroupId::parse)?,
                user: id(detail, "/requestParameters/memberId/userId", UserId::parse)?,
            })
        })(),
        (IDENTITY_STORE, "DeleteGroupMembership") => id(detail, "/requestParameters/membershipId", MembershipId::parse)
            .map(|membership| Signal::MembershipDeleted { membership }),
        (CONSOLE, "AddMemberToGroup" | "RemoveMemberFromGroup") => (|| {
            Ok(Signal::Membership {
                group: id(detail, "/requestParameters/groupId", GroupId::parse)?,
                user: id(detail, "/requestParameters/member/memberId", UserId::parse)?,
            })
        })(),
        (IDENTITY_STORE | CONSOLE, "DeleteGroup") => {
            id(detail, "/requestParameters/groupId", GroupId::parse).map(|group| Signal::GroupDeleted { group })
        }
        (IDENTITY_STORE | CONSOLE, "DeleteUser") => {
            id(detail, "/requestParameters/userId", UserId::parse).map(|user| Signal::UserDeleted { user })
        }
        (SCIM, "PatchGroup") => {
            id(detail, "/requestParameters/id", GroupId::parse).map(|group| Signal::GroupMembersChanged { group })
        }
        (SCIM, "DeleteGroup") => {
            id(detail, "/requestParameters/id", GroupId::parse).map(|group| Signal::GroupDeleted { group })
        }
        (SCIM, "DeleteUser") => {
            id(detail, "/requestParameters/id", UserId::parse).map(|user| Signal::UserDeleted { user })
        }
        _ => Err(ignore(format!("unhandled CloudTrail event {event_source}/{event_name}"))),
    };
    parsed.unwrap_or_else(|signal| signal)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const G: &str = "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e";
    const U: &str = "94482488-3041-7026-18f3-be45837cd0e4";

    fn ct(source: &str, name: &str, params: Value) -> Signal {
        classify(
            "aws.identitystore",
            CLOUDTRAIL,
            &json!({"eventSource": source, "eventName": name, "requestParameters": params}),
        )
    }

    #[test]
    fn every_contract_pair_is_recognised() {
        let group = GroupId::parse("g", G).unwrap();
        let user = UserId::parse("u", U).unwrap();
        let membership = Signal::Membership { group: group.clone(), user: user.clone() };
        assert_eq!(ct(CONSOLE, "AddMemberToGroup", json!({"groupId": G, "member": {"memberId": U}})), membership);
        assert_eq!(ct(CONSOLE, "RemoveMemberFromGroup", json!({"groupId": G, "member": {"memberId": U}})), membership);
        assert_eq!(
            ct(IDENTITY_STORE, "CreateGroupMembership", json!({"groupId": G, "memberId": {"userId": U}})),
            membership
        );
        assert!(matches!(
            ct(IDENTITY_STORE, "DeleteGroupMembership", json!({"membershipId": U})),
            Signal::MembershipDeleted { .. }
        ));
        for source in [IDENTITY_STORE, CONSOLE] {
            assert_eq!(ct(source, "DeleteGroup", json!({"groupId": G})), Signal::GroupDeleted { group: group.clone() });
            assert_eq!(ct(source, "DeleteUser", json!({"userId": U})), Signal::UserDeleted { user: user.clone() });
        }
        let arn = |kind: &str, id: &str| format!("arn:aws:identitystore:::{kind}/{id}");
        assert_eq!(
            ct(SCIM, "PatchGroup", json!({"id": arn("group", G)})),
            Signal::GroupMembersChanged { group: group.clone() }
        );
        assert_eq!(ct(SCIM, "DeleteGroup", json!({"id": arn("group", G)})), Signal::GroupDeleted { group });
        assert_eq!(ct(SCIM, "DeleteUser", json!({"id": U})), Signal::UserDeleted { user });
    }

    #[test]
    fn failed_calls_unknown_events_and_malformed_ids_are_ignored() {
        let failed = json!({"eventSource": CONSOLE, "eventName": "DeleteUser", "errorCode": "AccessDenied", "requestParameters": {"userId": U}});
        assert!(matches!(classify("aws.sso-directory", CLOUDTRAIL, &failed), Signal::Ignore { .. }));
        assert!(matches!(ct(IDENTITY_STORE, "CreateUser", json!({})), Signal::Ignore { .. }));
        assert!(matches!(
            ct(CONSOLE, "DeleteUser", json!({"userId": "HIDDEN_DUE_TO_SECURITY_REASONS"})),
            Signal::Ignore { .. }
        ));
        assert!(matches!(ct(CONSOLE, "DeleteUser", json!({})), Signal::Ignore { .. }));
        let forged = json!({"eventSource": CONSOLE, "eventName": "DeleteUser", "requestParameters": {"userId": U}});
        assert!(matches!(classify("attacker.example", CLOUDTRAIL, &forged), Signal::Ignore { .. }));
        assert!(matches!(
            classify("aws.ec2", "EC2 Instance State-change Notification", &json!({})),
            Signal::Ignore { .. }
        ));
    }

    #[test]
    fn audits_come_from_the_schedule_or_on_request() {
        assert_eq!(
            classify("aws.events", SCHEDULED, &json!({})),
            Signal::Audit { mode: AuditMode::Repair, force: false, continues: None }
        );
        assert_eq!(
            classify(OWN_SOURCE, AUDIT_REQUESTED, &json!({"mode": "repair", "force": true})),
            Signal::Audit { mode: AuditMode::Repair, force: true, continues: None }
        );
        let id = "5f0c6f8e-0c1a-4c59-9d7b-2a1f3f1f9b10";
        assert_eq!(
            classify(OWN_SOURCE, AUDIT_REQUESTED, &json!({"mode": "report", "continues": id})),
            Signal::Audit { mode: AuditMode::Report, force: false, continues: Some(id.to_owned()) }
        );
        for bad in [json!(7), json!(""), json!("a b"), json!("x".repeat(65))] {
            let detail = json!({"mode": "repair", "continues": bad});
            assert!(matches!(classify(OWN_SOURCE, AUDIT_REQUESTED, &detail), Signal::Ignore { .. }), "{detail}");
        }
        assert!(matches!(classify(OWN_SOURCE, AUDIT_REQUESTED, &json!({"mode": "nuke"})), Signal::Ignore { .. }));
        assert!(matches!(classify("someone.else", AUDIT_REQUESTED, &json!({"mode": "repair"})), Signal::Ignore { .. }));
    }

    #[test]
    fn names_requested_carries_the_user_ids_that_parse() {
        let id = "5f0c6f8e-0c1a-4c59-9d7b-2a1f3f1f9b10";
        let detail = json!({"userIds": [id, "not an id", 7]});
        assert_eq!(
            classify(OWN_SOURCE, NAMES_REQUESTED, &detail),
            Signal::NameSeats { users: vec![UserId::parse("u", id).unwrap()] }
        );
        for bad in [json!({}), json!({"userIds": "x"}), json!({"userIds": []}), json!({"userIds": ["x y"]})] {
            assert!(matches!(classify(OWN_SOURCE, NAMES_REQUESTED, &bad), Signal::Ignore { .. }), "{bad}");
        }
        let many: Vec<String> = (0..1_500).map(|i| format!("00000000-0000-0000-0000-{i:012}")).collect();
        let Signal::NameSeats { users } = classify(OWN_SOURCE, NAMES_REQUESTED, &json!({"userIds": many})) else {
            panic!("a long list is cut, not refused");
        };
        assert_eq!(users.len(), MAX_NAMES_PER_REQUEST);
    }
}
