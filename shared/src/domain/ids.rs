//! Identifiers of IAM Identity Center. `parse` is the only way in; the rest of the code never
//! re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// `d-` followed by 10 lowercase hex digits, or a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdentityStoreId(String);

impl IdentityStoreId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let short = raw.strip_prefix("d-").is_some_and(|hex| hex.len() == 10 && hex.bytes().all(is_lower_hex));
        if short || is_uuid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(field, "must be 'd-' followed by 10 lowercase hex digits, or a UUID"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! directory_id {
    ($(#[$doc:meta])* $name:ident, $arn_kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts the bare id or its ARN (`arn:aws:identitystore:::
            #[doc = $arn_kind]
            /// /<id>`), and keeps the bare id.
            pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
                let bare = strip_arn(raw, $arn_kind);
                if is_directory_id(bare) {
                    Ok(Self(bare.to_owned()))
                } else {
                    Err(Invalid::new(
                        field,
                        concat!("must be an Identity Store ", $arn_kind, " id (a UUID, optionally prefixed by 10 hex digits and '-')"),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

directory_id!(
    /// An Identity Store user id.
    UserId,
    "user"
);
directory_id!(
    /// An Identity Store group id.
    GroupId,
    "group"
);
directory_id!(
    /// An Identity Store group membership id.
    MembershipId,
    "membership"
);

impl fmt::Display for IdentityStoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `arn:aws:identitystore:::user/<id>` (any partition, account or region) → `<id>`.
fn strip_arn<'a>(raw: &'a str, kind: &str) -> &'a str {
    if raw.starts_with("arn:") {
        if let Some((resource_kind, id)) = raw.rsplit(':').next().and_then(|r| r.split_once('/')) {
            if resource_kind == kind {
                return id;
            }
        }
    }
    raw
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The Identity Store API's pattern: `([0-9a-f]{10}-|)[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-…-[A-Fa-f0-9]{12}`.
fn is_directory_id(s: &str) -> bool {
    let uuid = match s.len() {
        36 => s,
        47 if s.as_bytes()[10] == b'-' && s.as_bytes()[..10].iter().all(|b| is_lower_hex(*b)) => &s[11..],
        _ => return false,
    };
    is_uuid(uuid)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_store_ids_take_both_documented_shapes() {
        assert!(IdentityStoreId::parse("f", "d-1234567890").is_ok());
        assert!(IdentityStoreId::parse("f", "d-abcdef0123").is_ok());
        assert!(IdentityStoreId::parse("f", "9a4f3c2e-1b2d-4e5f-8a9b-0c1d2e3f4a5b").is_ok());
        for bad in ["", "d-123456789", "d-12345678901", "d-ABCDEF0123", "x-1234567890", "9a4f3c2e"] {
            let err = IdentityStoreId::parse("identityStoreId", bad).unwrap_err();
            assert_eq!(err.field, "identityStoreId", "{bad}");
        }
    }

    #[test]
    fn user_ids_accept_both_id_shapes_and_arns() {
        let plain = "94482488-3041-7026-18f3-be45837cd0e4";
        let prefixed = "906722b4f5-94482488-3041-7026-18f3-be45837cd0e4";
        assert_eq!(UserId::parse("u", plain).unwrap().as_str(), plain);
        assert_eq!(UserId::parse("u", prefixed).unwrap().as_str(), prefixed);
        let arn = format!("arn:aws:identitystore:::user/{plain}");
        assert_eq!(UserId::parse("u", &arn).unwrap().as_str(), plain);
        assert!(UserId::parse("u", &format!("arn:aws:identitystore:::group/{plain}")).is_err());
        assert!(UserId::parse("u", "alice").is_err());
        assert!(UserId::parse("u", "../../etc/passwd").is_err());
    }

    #[test]
    fn group_arns_are_normalised() {
        let id = "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e";
        let arn = format!("arn:aws:identitystore:::group/{id}");
        assert_eq!(GroupId::parse("g", &arn).unwrap().as_str(), id);
    }
}
