//! [`MemorySink`]: an in-memory event bus for [`EventSink`].

use std::sync::{Mutex, MutexGuard};

use kiro::ports::{EventSink, OutEvent, SinkError};

/// `PutEvents` takes at most 10 entries, so the EventBridge sink sends one request per 10.
const PUT_EVENTS_ENTRIES: usize = 10;

fn is_name_request(e: &OutEvent) -> bool {
    e.detail_type == kiro::domain::signal::NAMES_REQUESTED
}

/// An in-memory event bus: records every event it accepts, in order.
///
/// A failed publish ([`fail_next`](Self::fail_next)) records nothing of its call, where the
/// EventBridge sink may already have sent the chunks of 10 before the one that failed.
///
/// By default ([`MemorySink::default`]) a writer publishes its own outbox right after its commit:
/// it stands in for the deployed stack, whose stream publisher puts the events out moments later,
/// so a test reads [`events`](Self::events) right after a call. [`MemorySink::streamed`] is the
/// deployed mode itself: writers leave their outboxes to `kiro::app::publish::outboxes`, which a
/// test calls as the stream would.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<SinkState>,
    /// Writers leave seat events to the stream's publisher
    /// ([`EventSink::publishes_seat_events_inline`] is `false`).
    streamed: bool,
}

#[derive(Debug, Default)]
struct SinkState {
    events: Vec<OutEvent>,
    requests: u64,
    fail_next: usize,
    reject_next_entries: usize,
}

impl MemorySink {
    /// A sink whose writers leave the seat events of their outboxes to the stream's publisher,
    /// as the functions' sink does in the deployed stack.
    pub fn streamed() -> Self {
        Self { streamed: true, ..Self::default() }
    }

    /// Every event accepted so far, in order.
    /// The events accepted so far, but for `Seat Names Requested` (the stack's request to
    /// itself to name seats, see [`name_requests`](Self::name_requests)).
    pub fn events(&self) -> Vec<OutEvent> {
        self.state().events.iter().filter(|e| !is_name_request(e)).cloned().collect()
    }

    /// The `Seat Names Requested` events accepted so far.
    pub fn name_requests(&self) -> Vec<OutEvent> {
        self.state().events.iter().filter(|e| is_name_request(e)).cloned().collect()
    }

    /// Forgets the events accepted so far.
    pub fn clear(&self) {
        self.state().events.clear();
    }

    /// The `PutEvents` requests the EventBridge sink would have sent: one per 10 entries, one for
    /// a failed call.
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    pub fn reset_requests(&self) {
        self.state().requests = 0;
    }

    /// Makes the next `n` non-empty publishes fail with [`SinkError`], accepting none of their events.
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// Makes the next `n` entries published be answered as failed (their indexes returned) and not
    /// recorded, as `PutEvents` entries with an error code.
    pub fn reject_next_entries(&self, n: usize) {
        self.state().reject_next_entries = n;
    }

    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_now(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.state();
        if state.fail_next > 0 {
            state.fail_next -= 1;
            state.requests += 1;
            return Err(SinkError::Aws("failure injected by MemorySink::fail_next".into()));
        }
        state.requests += events.len().div_ceil(PUT_EVENTS_ENTRIES) as u64;
        let mut failed = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if state.reject_next_entries > 0 {
                state.reject_next_entries -= 1;
                failed.push(i);
            } else {
                state.events.push(event.clone());
            }
        }
        Ok(failed)
    }
}

impl EventSink for MemorySink {
    async fn publish(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
        MemorySink::publish_now(self, events)
    }

    fn publishes_seat_events_inline(&self) -> bool {
        !self.streamed
    }
}
