//! What ingesting one of Kiro's activity report files did: its ImportReport.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::time::rfc3339;

/// The S3 object an `Object Created` event names, at the version the event saw (its ETag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub etag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImportStatus {
    Imported,
    Rejected,
    /// The same (bucket, key, ETag) was imported (or rejected) before: nothing read or changed.
    Duplicate,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Imported => "IMPORTED",
            ImportStatus::Rejected => "REJECTED",
            ImportStatus::Duplicate => "DUPLICATE",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [ImportStatus::Imported, ImportStatus::Rejected, ImportStatus::Duplicate]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// The contract's ImportReport: one per delivered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub status: ImportStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Data rows (header excluded, skipped rows included).
    pub rows: u64,
    /// Distinct user ids among the stored rows.
    pub users: u64,
    /// Seats this file made `ACTIVE`.
    pub activated: u64,
    /// Users with activity in the file who have no seat at all.
    pub unknown_users: u64,
    pub rejected_rows: u64,
    #[serde(with = "rfc3339")]
    pub imported_at: DateTime<Utc>,
}

impl ImportReport {
    /// A report that read nothing: a duplicate, or a file rejected whole.
    pub fn empty(object: &ObjectRef, status: ImportStatus, reason: Option<String>, now: DateTime<Utc>) -> Self {
        Self {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: object.etag.clone(),
            status,
            reason,
            rows: 0,
            users: 0,
            activated: 0,
            unknown_users: 0,
            rejected_rows: 0,
            imported_at: now,
        }
    }

    pub fn object(&self) -> ObjectRef {
        ObjectRef { bucket: self.bucket.clone(), key: self.key.clone(), etag: self.etag.clone() }
    }
}
