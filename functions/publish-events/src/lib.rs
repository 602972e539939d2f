//! `publish-events`: puts the seat events committed in the table's outbox on the bus (contract:
//! "Deployment shape", "Events out"), off the request path.
//!
//! Every seat change commits its events with the seats, as one outbox item (`pk`
//! `OUTBOX#<shard>`), in the same transaction. The table's DynamoDB stream hands each new outbox
//! item to this function (`template.yaml`: the stream's event source filters on `INSERT`s of
//! items whose `pk` starts with `OUTBOX#`); it reads
//! what the outbox holds now, puts those events on the bus (`PutEvents`, 10 a request) and
//! settles the outbox (`DeleteItem`; `PutItem` of what the bus refused), see
//! [`kiro::app::publish`].
//!
//! **Exactly once, and what a consumer relies on.** A batch delivered twice, a retry after a
//! partial failure, a record whose outbox the audit's sweep published: each finds the outbox gone
//! or holding only what is left, and publishes nothing twice. The one window is a crash (or a
//! failed `DeleteItem`) after `PutEvents` accepted the events: the record is retried and the same
//! events go out again, equal in every field (`userId`, `version`, `updatedAt`, the entry's
//! `Time`). A seat's `version` grows with every change of it, so a consumer that drops a seat
//! event whose (`userId`, `version`) it has seen receives each change exactly once.
//!
//! **Failures.** The answer reports, as Lambda's partial batch response, the sequence number of
//! the first record whose outbox still holds events: Lambda retries from there (and, with
//! `BisectBatchOnFunctionError`, only those records); the outboxes after it that were settled are
//! found gone on the retry. An error (the table could not be read) fails the whole batch, which
//! Lambda retries, bisecting it. After its retries Lambda sends the batch's description to the
//! on-failure queue; the outboxes stay in the table, and the audit's sweep publishes them.

use std::collections::HashSet;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use kiro::app::publish;
use kiro::error::cause_chain;
use kiro::ports::{EventSink, Outboxes};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_dynamo::AttributeValue;

/// What the partitions of the outbox items start with (`OUTBOX#<shard>`,
/// `shared/src/aws/records.rs`): the stream filter's prefix.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";
/// Those partitions as the IAM policy names them (`ForAllValues:StringLike`).
pub const OUTBOX_PARTITIONS: &str = "OUTBOX#*";

/// What the handler needs; built once in `main`.
pub struct Deps<S, E> {
    pub store: S,
    pub events: E,
}

/// Why a whole batch failed: the outboxes could not be read. Lambda retries it.
#[derive(Debug)]
pub struct Failed(String);

impl From<Failed> for Diagnostic {
    fn from(f: Failed) -> Diagnostic {
        Diagnostic { error_type: "PublishFailed".into(), error_message: f.0 }
    }
}

/// What a stream record says about the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A new outbox item, by its id (its sort key).
    NewOutbox(&'a str),
    /// Anything else: another item, or an outbox rewritten (`MODIFY`) or settled (`REMOVE`).
    Other,
    /// An `INSERT` in the outbox partition without a sort key that is a string.
    Malformed,
}

/// Reads a record as the template's filter does: an `INSERT` whose key `pk` starts with
/// `OUTBOX#`.
pub fn classify(record: &EventRecord) -> Record<'_> {
    let key = |name: &str| match record.change.keys.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    if record.event_name != "INSERT" || !key("pk").is_some_and(|pk| pk.starts_with(OUTBOX_PREFIX)) {
        return Record::Other;
    }
    match key("sk") {
        Some(id) if !id.is_empty() => Record::NewOutbox(id),
        _ => Record::Malformed,
    }
}

/// Publishes the outboxes of one batch of the table's stream.
pub async fn handle<S, E>(deps: &Deps<S, E>, event: LambdaEvent<Event>) -> Result<DynamoDbEventResponse, Failed>
where
    S: Outboxes,
    E: EventSink,
{
    let records = &event.payload.records;
    // (outbox id, the record's sequence number), in the batch's order.
    let mut outboxes: Vec<(&str, Option<&str>)> = Vec::with_capacity(records.len());
    for record in records {
        let sequence = record.change.sequence_number.as_deref();
        match classify(record) {
            Record::NewOutbox(id) => outboxes.push((id, sequence)),
            Record::Other => {}
            // Not retried: no retry would read it better. Its item, if any, waits for the sweep.
            Record::Malformed => tracing::warn!(sequence, "an outbox record without an id; skipped"),
        }
    }
    if outboxes.is_empty() {
        return Ok(DynamoDbEventResponse::default());
    }
    let ids: Vec<String> = outboxes.iter().map(|(id, _)| (*id).to_owned()).collect();
    let published = publish::outboxes(&deps.store, &deps.events, &ids).await.map_err(|e| {
        tracing::error!(cause = %cause_chain(&e), "reading the outboxes failed; the batch will be retried");
        Failed(e.to_string())
    })?;
    tracing::info!(
        records = records.len(),
        outboxes = ids.len(),
        events = published.events,
        settled = published.settled,
        skipped = published.skipped,
        failed = published.failed.len(),
        "published the batch's outboxes"
    );
    let failed: HashSet<&str> = published.failed.iter().map(String::as_str).collect();
    let Some((_, sequence)) = outboxes.iter().find(|(id, _)| failed.contains(id)) else {
        return Ok(DynamoDbEventResponse::default());
    };
    // Lambda retries from the lowest sequence number reported: reporting the first record that
    // failed retries it and everything after it (whose settled outboxes are then skipped).
    let Some(sequence) = sequence else {
        return Err(Failed("a record whose outbox still holds events has no sequence number".into()));
    };
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure(sequence));
    Ok(response)
}

fn failure(sequence: &str) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence.to_owned());
    failure
}

#[cfg(test)]
mod tests;
