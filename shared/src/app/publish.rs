//! Publishing committed outboxes: the seat events a change wrote with its seats (one outbox item
//! per transaction, see [`crate::app::seats`]) put on the bus, then the item settled.
//!
//! In the deployed stack the table's DynamoDB stream hands each new outbox item to
//! `publish-events`, which calls [`outboxes`] with the ids of a batch of stream records, off the
//! request path. The same settling serves a writer that publishes its own outbox when no stream
//! publisher runs (tests, the in-memory fakes), and the audit's sweep of what is left
//! ([`crate::app::seats::flush_outbox`]).
//!
//! **Exactly once.** [`outboxes`] publishes what each outbox holds *now*, read consistently, not
//! what the stream record carried: an outbox already settled is gone, so a batch delivered twice,
//! a record retried after the audit's sweep took its outbox, or a retry after a partial failure
//! (the outbox keeps only the events EventBridge refused) publishes nothing twice. The one window
//! left: `PutEvents` accepted the events and the outbox could not be settled (the function died
//! or `DeleteItem` failed). The record is retried and the same events go out again, with the same
//! detail (`userId`, `version`, `updatedAt`) and the same entry `Time` — EventBridge has no
//! idempotent put — so a consumer drops a seat event whose (`userId`, `version`) it has seen.

use std::collections::{HashMap, HashSet};

use crate::ports::{EventSink, OutEvent, Outbox, Outboxes, StoreError};

/// What publishing some outboxes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Events the bus accepted.
    pub events: u64,
    /// Outboxes emptied and deleted.
    pub settled: u64,
    /// Outboxes already gone when read: published and settled before (a batch delivered again,
    /// the audit's sweep).
    pub skipped: u64,
    /// Outboxes that still hold events: the bus refused some (the outbox keeps only those), or
    /// the outbox could not be settled after its events went out (it keeps them all, and they
    /// will go out again). Whoever handed them over must hand them over again.
    pub failed: Vec<String>,
}

/// Publishes the outboxes named by `ids` (the outbox items of a batch of the table's stream):
/// reads what each still holds, puts those events on the bus and settles each outbox. An error
/// is a failure to read the outboxes: nothing was published.
pub async fn outboxes<S, E>(store: &S, sink: &E, ids: &[String]) -> Result<Published, StoreError>
where
    S: Outboxes,
    E: EventSink,
{
    let mut seen = HashSet::with_capacity(ids.len());
    let distinct: Vec<String> = ids.iter().filter(|id| seen.insert(id.as_str())).cloned().collect();
    let mut current = if distinct.is_empty() { Vec::new() } else { store.get_outboxes(&distinct).await? };
    // In the order they were handed over (the stream's: commit order), not the read's.
    let position: HashMap<&str, usize> = distinct.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    current.sort_by_key(|o| position.get(o.id.as_str()).copied().unwrap_or(usize::MAX));
    let mut published = publish_and_settle(store, sink, &current).await;
    published.skipped = (distinct.len() - current.len()) as u64;
    Ok(published)
}

/// Tries at settling an outbox whose events went out: failing now publishes them again, so it
/// gets a few more tries than the SDK's own retries.
const SETTLE_ATTEMPTS: u32 = 3;

/// Puts the events of `outboxes` on the bus, all in one call (the sink sends 10 a request), and
/// settles each outbox: deleted when all its events went out, rewritten with the ones refused
/// otherwise. Never fails as a whole: what it could not do is in [`Published::failed`], logged.
pub async fn publish_and_settle<S, E>(store: &S, sink: &E, outboxes: &[Outbox]) -> Published
where
    S: Outboxes,
    E: EventSink,
{
    let mut published = Published::default();
    if outboxes.is_empty() {
        return published;
    }
    let events: Vec<OutEvent> = outboxes.iter().flat_map(|o| o.events.iter().cloned()).collect();
    let refused: HashSet<usize> = match sink.publish(&events).await {
        Ok(refused) => refused.into_iter().collect(),
        Err(e) => {
            tracing::error!(outboxes = outboxes.len(), cause = %crate::error::cause_chain(&e), "publishing events failed; left in the outbox");
            published.failed = outboxes.iter().map(|o| o.id.clone()).collect();
            return published;
        }
    };
    let mut next = 0;
    for outbox in outboxes {
        let indexes = next..next + outbox.events.len();
        next = indexes.end;
        let remaining: Vec<OutEvent> = indexes.filter(|i| refused.contains(i)).map(|i| events[i].clone()).collect();
        published.events += (outbox.events.len() - remaining.len()) as u64;
        if !remaining.is_empty() {
            tracing::warn!(outbox = %outbox.id, refused = remaining.len(), "some events were not accepted; left in the outbox");
            published.failed.push(outbox.id.clone());
            if remaining.len() == outbox.events.len() {
                // Nothing of it went out: the outbox already holds exactly what is left.
                continue;
            }
        }
        match settle(store, &outbox.id, &remaining).await {
            Ok(()) if remaining.is_empty() => published.settled += 1,
            Ok(()) => {}
            Err(e) => {
                tracing::error!(outbox = %outbox.id, cause = %crate::error::cause_chain(&e), "settling the outbox failed; its events will be published again");
                if remaining.is_empty() {
                    published.failed.push(outbox.id.clone());
                }
            }
        }
    }
    published
}

async fn settle<S: Outboxes>(store: &S, id: &str, remaining: &[OutEvent]) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match store.settle_outbox(id, remaining).await {
            Err(_) if attempt < SETTLE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}
