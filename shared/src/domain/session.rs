//! The console's sign-in: who is signed in, with which role, until when.
//!
//! A session is server-side: the browser holds only a random token; the table keeps the session
//! under the token's SHA-256, so a copy of the table cannot be replayed as cookies.

use chrono::{DateTime, Duration, Utc};

use super::UserId;

/// What a signed-in Identity Center user may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A member of `CONSOLE_ADMIN_GROUP`: may change things.
    Admin,
    /// A member of `CONSOLE_VIEWER_GROUP` only: may look.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Viewer => "VIEWER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ADMIN" => Some(Role::Admin),
            "VIEWER" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// An admin in either group is an admin.
    pub fn of(admin: bool, viewer: bool) -> Option<Self> {
        match (admin, viewer) {
            (true, _) => Some(Role::Admin),
            (false, true) => Some(Role::Viewer),
            (false, false) => None,
        }
    }
}

/// The longest a session lives, whatever happens (the contract's 12 hours).
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// How long a role is trusted before the directory is asked again (the contract's 15 minutes).
pub const ROLE_RECHECK: Duration = Duration::minutes(15);
/// How long a sign-in started at the issuer may take to come back.
pub const SIGN_IN_LIFETIME: Duration = Duration::minutes(10);

/// A signed-in console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie's token, hex: the only form in which the token is stored.
    pub token_hash: String,
    pub user_name: String,
    pub user_id: UserId,
    pub role: Role,
    /// The CSRF token every change must carry.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub role_checked_at: DateTime<Utc>,
}

impl Session {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Whether the role must be asked of the directory again before this request: always before a
    /// change, and once it is older than [`ROLE_RECHECK`].
    pub fn role_is_stale(&self, now: DateTime<Utc>, change: bool) -> bool {
        change || now - self.role_checked_at >= ROLE_RECHECK
    }

    /// The actor recorded on the changes this session makes.
    pub fn actor(&self) -> String {
        format!("console:{}", self.user_name)
    }
}

/// A sign-in in progress: sent to the issuer, not back yet. Found again by its `state`, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub state: String,
    pub nonce: String,
    /// PKCE `code_verifier` (the issuer got its S256 challenge).
    pub verifier: String,
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(checked: DateTime<Utc>) -> Session {
        Session {
            token_hash: "h".into(),
            user_name: "alice".into(),
            user_id: UserId::parse("userId", "90676d3f2c-11111111-2222-3333-4444-555555555555").unwrap(),
            role: Role::Admin,
            csrf: "c".into(),
            created_at: checked,
            expires_at: checked + SESSION_LIFETIME,
            role_checked_at: checked,
        }
    }

    #[test]
    fn a_role_is_asked_again_before_every_change_and_after_fifteen_minutes() {
        let t = Utc::now();
        let s = session(t);
        assert!(!s.role_is_stale(t + Duration::minutes(14), false));
        assert!(s.role_is_stale(t + Duration::minutes(15), false));
        assert!(s.role_is_stale(t, true), "a change always re-checks the role");
    }

    #[test]
    fn admins_win_over_viewers_and_nobody_else_gets_a_role() {
        assert_eq!(Role::of(true, true), Some(Role::Admin));
        assert_eq!(Role::of(false, true), Some(Role::Viewer));
        assert_eq!(Role::of(false, false), None);
        assert_eq!(Role::parse(Role::Viewer.as_str()), Some(Role::Viewer));
    }

    #[test]
    fn a_session_ends_at_its_expiry() {
        let t = Utc::now();
        let s = session(t);
        assert!(!s.is_expired(t + Duration::hours(11)));
        assert!(s.is_expired(t + SESSION_LIFETIME));
    }
}
