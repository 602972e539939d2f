//! Ingesting one of Kiro's daily user activity report files (contract: "Activity").
//!
//! Two passes over the object, pinned to the event's ETag: the first validates the whole file
//! and stores nothing (a file that is not UTF-8 CSV, or lacks `Date` or `UserId`, is rejected
//! whole, wherever the fault is, and lists the file's days); the second streams the rows into
//! the table 25 at a time (`BatchWriteItem`; a repeated key within the file keeps its last row),
//! then records each user's latest activity on their seat, activating `PENDING` seats. A row with
//! nothing in it (a user listed for a day they did not use Kiro) is written only when it may
//! replace earlier figures: its day was imported before, or the file had the key earlier. Memory
//! holds a few batches and the file's keys (one per user in a daily file), whatever its size.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::app::seats;
use crate::domain::UserId;
use crate::domain::activity::{self, ActivityKey, Figures, ReadError, ReportDay};
use crate::domain::import::{ImportReport, ImportStatus, ObjectRef};
use crate::error::AppError;
use crate::ports::{
    ACTIVITY_BATCH, ActivityReads, ActivityStore, EventSink, ObjectError, ReportObjects, SeatStore, StoreError,
};

/// Batches of rows in flight between the reading thread and the writes.
const BATCHES_IN_FLIGHT: usize = 4;

/// Imports `object` and stores its ImportReport (also answered). Failures that a retry may cure
/// (the table, S3) are errors; everything about the file itself is in the report.
pub async fn ingest<S, E, O>(
    store: &S,
    sink: &E,
    objects: &O,
    object: ObjectRef,
    now: DateTime<Utc>,
) -> Result<ImportReport, AppError>
where
    S: ActivityStore + SeatStore,
    E: EventSink,
    O: ReportObjects,
{
    if store.import_seen(&object).await? {
        return record(store, ImportReport::empty(&object, ImportStatus::Duplicate, None, now)).await;
    }
    let rejected = |reason: String| ImportReport::empty(&object, ImportStatus::Rejected, Some(reason), now);

    // First pass: the whole file must read, or nothing of it is stored.
    let reader = match open(objects, &object).await? {
        Ok(reader) => reader,
        Err(reason) => return record(store, rejected(reason)).await,
    };
    let surveyed = tokio::task::spawn_blocking(move || activity::survey(reader)).await.map_err(AppError::internal)?;
    let days = match surveyed {
        Ok((_, days)) => days,
        Err(ReadError::Rejected(why)) => return record(store, rejected(why.to_string())).await,
        Err(e) => return Err(AppError::internal(format!("reading the report failed: {e}"))),
    };
    // The days no earlier import stored figures for: their rows with nothing in them (Kiro lists
    // every subscribed user, idle or not) replace nothing, so they are not written. Marked before
    // any row is stored, so a later file for the same day writes all of its rows.
    let first: HashSet<ReportDay> = match days {
        Some(days) => store.first_imports_of(&days.into_iter().collect::<Vec<_>>()).await?.into_iter().collect(),
        None => HashSet::new(),
    };

    // Second pass: the same bytes (same ETag), streamed into the table.
    let reader = match open(objects, &object).await? {
        Ok(reader) => reader,
        Err(reason) => return record(store, rejected(reason)).await,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(ActivityKey, Figures)>>(BATCHES_IN_FLIGHT);
    let reading = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(ACTIVITY_BATCH);
        let send = |batch: &mut Vec<(ActivityKey, Figures)>| {
            let mut full = std::mem::replace(batch, Vec::with_capacity(ACTIVITY_BATCH));
            activity::dedupe(&mut full);
            tx.blocking_send(full).map_err(|_| "the writer stopped")
        };
        let summary = activity::read_report(reader, |key, figures| {
            batch.push((key, figures));
            if batch.len() == ACTIVITY_BATCH { send(&mut batch) } else { Ok(()) }
        })?;
        if !batch.is_empty() {
            send(&mut batch).map_err(ReadError::Caller)?;
        }
        Ok::<_, ReadError<&'static str>>(summary)
    });
    // Each key of the file with whether its last row is activity: a row that a later row of the
    // same key replaces (even in a later batch) is not activity. One entry per key: a daily file
    // has one date and one client type, so this is one per user.
    let mut keys: HashMap<ActivityKey, bool> = HashMap::new();
    // The rows to write, gathered into full batches of distinct keys.
    let mut pending: Vec<(ActivityKey, Figures)> = Vec::with_capacity(2 * ACTIVITY_BATCH);
    let mut written: Result<(), StoreError> = Ok(());
    'reading: while let Some(batch) = rx.recv().await {
        // A row with nothing in it is kept only if it may replace something: a row of a day an
        // earlier import stored, or an earlier row of this file (a previous batch's).
        pending.extend(batch.into_iter().filter(|(key, figures)| {
            let earlier = keys.insert(key.clone(), figures.is_activity()).is_some();
            earlier || !figures.is_nothing() || !first.contains(&(key.date, key.client_type.clone()))
        }));
        activity::dedupe(&mut pending);
        while pending.len() >= ACTIVITY_BATCH {
            let rest = pending.split_off(ACTIVITY_BATCH);
            // One batch at a time, in file order: a later row of a key lands after the earlier one.
            written = store.put_activity(&pending).await;
            pending = rest;
            if written.is_err() {
                break 'reading;
            }
        }
    }
    drop(rx); // stops the reading thread if a write failed
    written?;
    store.put_activity(&pending).await?;
    let summary = match reading.await.map_err(AppError::internal)? {
        Ok(summary) => summary,
        Err(e) => return Err(AppError::internal(format!("reading the report failed: {e}"))),
    };

    // Each user in the file, and the date of the latest activity of those who used Kiro.
    let mut users: HashMap<UserId, Option<NaiveDate>> = HashMap::new();
    for (key, activity) in keys {
        let latest = users.entry(key.user_id).or_default();
        if activity {
            *latest = (*latest).max(Some(key.date));
        }
    }
    let user_count = users.len() as u64;
    let active: Vec<(UserId, NaiveDate)> = users.into_iter().filter_map(|(u, d)| d.map(|d| (u, d))).collect();
    let applied = seats::record_activity(store, sink, active, now).await?;
    let report = ImportReport {
        rows: summary.rows,
        users: user_count,
        activated: applied.activated,
        unknown_users: applied.unknown,
        rejected_rows: summary.rejected_rows,
        ..ImportReport::empty(&object, ImportStatus::Imported, None, now)
    };
    tracing::info!(
        rows = report.rows,
        users = report.users,
        activated = report.activated,
        rejected_rows = report.rejected_rows,
        "activity report imported"
    );
    record(store, report).await
}

/// The object as a blocking reader, or why it cannot be imported (gone, or replaced since).
async fn open<O: ReportObjects>(
    objects: &O,
    object: &ObjectRef,
) -> Result<Result<Box<dyn std::io::Read + Send>, String>, AppError> {
    match objects.open(object).await {
        Ok(reader) => Ok(Ok(reader)),
        Err(ObjectError::Gone) => Ok(Err(
            "the object cannot be read at the version the event named: deleted or expired, replaced by a newer upload (which has its own event), or S3 denied the read"
                .to_owned(),
        )),
        Err(e) => Err(AppError::internal(e)),
    }
}

/// Stores the report. Another delivery of the same object that recorded its import first makes
/// this one a duplicate.
async fn record<S: ActivityStore>(store: &S, report: ImportReport) -> Result<ImportReport, AppError> {
    match store.record_import(&report).await {
        Ok(()) => Ok(report),
        Err(StoreError::Conflict(_)) => {
            let duplicate = ImportReport::empty(&report.object(), ImportStatus::Duplicate, None, report.imported_at);
            store.record_import(&duplicate).await?;
            Ok(duplicate)
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /activity/imports`: the reports, newest first.
pub async fn imports<S: ActivityReads>(
    store: &S,
    limit: usize,
    next_token: Option<String>,
) -> Result<crate::ports::Page<ImportReport>, AppError> {
    Ok(store.list_imports(limit, next_token).await?)
}
