//! The Kiro profile: one per deployment, bound to one Identity Center instance.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{IdentityStoreId, Invalid};
use crate::time::rfc3339;

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub profile_id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub identity_store_id: IdentityStoreId,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Who created it (the IAM principal, or `anonymous`); stored, not part of the answer.
    #[serde(skip)]
    pub created_by: String,
    /// Who last changed it; stored, not part of the answer.
    #[serde(skip)]
    pub updated_by: String,
}

/// A validated `POST /profile` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProfile {
    pub name: String,
    pub description: String,
    pub identity_store_id: IdentityStoreId,
}

/// A validated `PATCH /profile` body: only what the caller set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

impl NewProfile {
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Invalid> {
        reject_unknown(body, &["name", "description", "identityStoreId"])?;
        let name = name(body.get("name").ok_or_else(|| Invalid::missing("name"))?)?;
        let description = match body.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(v) => description(v)?,
        };
        let identity_store_id = match body.get("identityStoreId") {
            None | Some(Value::Null) => return Err(Invalid::missing("identityStoreId")),
            Some(Value::String(s)) => IdentityStoreId::parse("identityStoreId", s)?,
            Some(_) => return Err(Invalid::new("identityStoreId", "must be a string")),
        };
        Ok(Self { name, description, identity_store_id })
    }

    pub fn into_profile(self, profile_id: String, region: String, actor: &str, now: DateTime<Utc>) -> Profile {
        Profile {
            profile_id,
            name: self.name,
            description: self.description,
            region,
            identity_store_id: self.identity_store_id,
            created_at: now,
            updated_at: now,
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
        }
    }
}

impl ProfilePatch {
    /// Only `name` and `description` may change; any other field is a `ValidationError` naming it.
    /// A `null` description clears it; a `null` name is invalid (a profile always has one).
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Invalid> {
        if let Some(other) = body.keys().find(|k| !matches!(k.as_str(), "name" | "description")) {
            return Err(Invalid::new(other.as_str(), "cannot be changed; only 'name' and 'description' can"));
        }
        Ok(Self {
            name: body.get("name").map(name).transpose()?,
            description: match body.get("description") {
                None => None,
                Some(Value::Null) => Some(String::new()),
                Some(v) => Some(description(v)?),
            },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none()
    }
}

fn reject_unknown(body: &Map<String, Value>, known: &[&str]) -> Result<(), Invalid> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Invalid::new(k.as_str(), "is not a known field")),
        None => Ok(()),
    }
}

fn name(v: &Value) -> Result<String, Invalid> {
    let s = v.as_str().ok_or_else(|| Invalid::new("name", "must be a string"))?;
    let len = s.chars().count();
    if s.trim().is_empty() || len > NAME_MAX {
        return Err(Invalid::new("name", format!("must be 1 to {NAME_MAX} characters, not blank")));
    }
    Ok(s.to_owned())
}

fn description(v: &Value) -> Result<String, Invalid> {
    let s = v.as_str().ok_or_else(|| Invalid::new("description", "must be a string"))?;
    if s.chars().count() > DESCRIPTION_MAX {
        return Err(Invalid::new("description", format!("must be at most {DESCRIPTION_MAX} characters")));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn field_of(body: Value) -> String {
        NewProfile::from_json(&obj(body)).unwrap_err().field
    }

    #[test]
    fn a_complete_body_is_accepted() {
        let p = NewProfile::from_json(&obj(
            json!({"name": "Platform", "description": "d", "identityStoreId": "d-1234567890"}),
        ))
        .unwrap();
        assert_eq!((p.name.as_str(), p.description.as_str()), ("Platform", "d"));
        assert_eq!(p.identity_store_id.as_str(), "d-1234567890");
    }

    #[test]
    fn description_is_optional() {
        let p = NewProfile::from_json(&obj(json!({"name": "P", "identityStoreId": "d-1234567890"}))).unwrap();
        assert_eq!(p.description, "");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let ok_id = "d-1234567890";
        assert_eq!(field_of(json!({"identityStoreId": ok_id})), "name");
        assert_eq!(field_of(json!({"name": "", "identityStoreId": ok_id})), "name");
        assert_eq!(field_of(json!({"name": "   ", "identityStoreId": ok_id})), "name");
        assert_eq!(field_of(json!({"name": 7, "identityStoreId": ok_id})), "name");
        assert_eq!(field_of(json!({"name": "x".repeat(101), "identityStoreId": ok_id})), "name");
        assert_eq!(
            field_of(json!({"name": "n", "description": "x".repeat(257), "identityStoreId": ok_id})),
            "description"
        );
        assert_eq!(field_of(json!({"name": "n", "description": false, "identityStoreId": ok_id})), "description");
        assert_eq!(field_of(json!({"name": "n"})), "identityStoreId");
        assert_eq!(field_of(json!({"name": "n", "identityStoreId": "d-12"})), "identityStoreId");
        assert_eq!(field_of(json!({"name": "n", "identityStoreId": 1})), "identityStoreId");
        assert_eq!(field_of(json!({"name": "n", "identityStoreId": ok_id, "region": "us-east-1"})), "region");
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let name = "é".repeat(100);
        assert!(NewProfile::from_json(&obj(json!({"name": name, "identityStoreId": "d-1234567890"}))).is_ok());
    }

    #[test]
    fn patch_takes_only_name_and_description() {
        let p = ProfilePatch::from_json(&obj(json!({"name": "New"}))).unwrap();
        assert_eq!(p, ProfilePatch { name: Some("New".into()), description: None });
        let p = ProfilePatch::from_json(&obj(json!({"description": null}))).unwrap();
        assert_eq!(p.description.as_deref(), Some(""));
        assert_eq!(
            ProfilePatch::from_json(&obj(json!({"identityStoreId": "d-1234567890"}))).unwrap_err().field,
            "identityStoreId"
        );
        assert_eq!(ProfilePatch::from_json(&obj(json!({"name": null}))).unwrap_err().field, "name");
        assert!(ProfilePatch::from_json(&obj(json!({}))).unwrap().is_empty());
    }
}
