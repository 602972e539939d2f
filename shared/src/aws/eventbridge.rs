//! `EventSink` on EventBridge: `PutEvents` to `EVENT_BUS_NAME`, `Source` `kiro.subscriptions`.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::domain::signal::OWN_SOURCE;
use crate::ports::{EventSink, OutEvent, SinkError};

/// PutEvents takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
    /// See [`EventSink::publishes_seat_events_inline`].
    seat_events_inline: bool,
}

impl EventBridgeSink {
    /// A sink that publishes whatever it is given, seat events included, as soon as they are
    /// committed (the writer publishes its own outbox).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into(), seat_events_inline: true }
    }

    /// The deployed stack's mode: the seat events a writer commits are put on the bus by
    /// `publish-events`, from the table's stream, so the writer leaves its outbox to it (two
    /// requests fewer per change: `PutEvents` and the outbox's `DeleteItem`). Everything else
    /// this sink is given still goes out at once.
    pub fn seat_events_from_stream(self) -> Self {
        Self { seat_events_inline: false, ..self }
    }
}

/// The entry's `Time`: when the seat changed (`updatedAt`), not when the event was published,
/// which for an event published late from the outbox can be much later. Other events (reports,
/// the stack's own requests) take EventBridge's time of receipt.
fn event_time(e: &OutEvent) -> Option<aws_smithy_types::DateTime> {
    let at = crate::time::parse(e.detail.get("updatedAt")?.as_str()?)?;
    Some(aws_smithy_types::DateTime::from_millis(at.timestamp_millis()))
}

impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[OutEvent]) -> Result<Vec<usize>, SinkError> {
        let mut failed = Vec::new();
        for (chunk_index, chunk) in events.chunks(MAX_ENTRIES).enumerate() {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(OWN_SOURCE)
                        .detail_type(&e.detail_type)
                        .detail(e.detail.to_string())
                        .set_time(event_time(e))
                        .build()
                })
                .collect();
            let out = match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(out) => out,
                // Nothing went out yet: the whole call failed.
                Err(e) if chunk_index == 0 => return Err(SinkError::Aws(Box::new(e))),
                // Earlier chunks were accepted: report this one and the rest as failed, so only
                // they stay in the outbox and nothing is published twice.
                Err(e) => {
                    tracing::warn!(cause = %crate::error::cause_chain(&e), "PutEvents failed part-way");
                    failed.extend(chunk_index * MAX_ENTRIES..events.len());
                    return Ok(failed);
                }
            };
            if out.failed_entry_count() > 0 {
                let base = chunk_index * MAX_ENTRIES;
                failed.extend(
                    out.entries().iter().enumerate().filter(|(_, r)| r.error_code().is_some()).map(|(i, _)| base + i),
                );
            }
        }
        Ok(failed)
    }

    fn publishes_seat_events_inline(&self) -> bool {
        self.seat_events_inline
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eventbridge::config::retry::RetryConfig;
    use aws_sdk_eventbridge::operation::put_events::{PutEventsError, PutEventsOutput};
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_sdk_eventbridge::types::error::InternalException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    use super::*;

    fn events(n: usize) -> Vec<OutEvent> {
        (0..n).map(|i| OutEvent { detail_type: "Seat Granted".into(), detail: json!({"i": i}) }).collect()
    }

    #[tokio::test]
    async fn a_failure_after_accepted_chunks_reports_only_the_rest_as_failed() {
        let ok = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .set_entries(Some(
                    (0..10)
                        .map(|i| {
                            let e = PutEventsResultEntry::builder();
                            if i == 3 { e.error_code("InternalFailure").build() } else { e.event_id("x").build() }
                        })
                        .collect(),
                ))
                .build()
        });
        let down = mock!(aws_sdk_eventbridge::Client::put_events)
            .then_error(|| PutEventsError::InternalException(InternalException::builder().build()));
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&ok, &down], |c| c
            .retry_config(RetryConfig::disabled()));
        let failed = EventBridgeSink::new(client, "bus").publish(&events(15)).await.unwrap();
        assert_eq!(failed, [3, 10, 11, 12, 13, 14], "entry 3 rejected, the second chunk never sent");
    }

    /// Contract: `PutEvents` to the bus named by `EVENT_BUS_NAME`, `Source` `kiro.subscriptions`,
    /// the detail type and the detail as JSON.
    #[tokio::test]
    async fn events_go_to_the_configured_bus_from_kiro_subscriptions() {
        let accepted = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|req| {
                req.entries().len() == 2
                    && req.entries().iter().all(|e| {
                        e.event_bus_name() == Some("team-bus")
                            && e.source() == Some("kiro.subscriptions")
                            && e.detail_type() == Some("Seat Granted")
                            && e.detail().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()).is_some()
                    })
            })
            .then_output(|| PutEventsOutput::builder().failed_entry_count(0).build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&accepted], |c| c
            .retry_config(RetryConfig::disabled()));
        let failed = EventBridgeSink::new(client, "team-bus").publish(&events(2)).await.unwrap();
        assert!(failed.is_empty());
        assert_eq!(accepted.num_calls(), 1, "the request matched the contract's shape");
    }

    /// Contract: `PutEvents` sets the entry's `Time`: a seat event's is its change's `updatedAt`
    /// (an event published late from the outbox keeps the time of its change); others have none.
    #[tokio::test]
    async fn a_seat_event_is_timed_at_its_change() {
        let timed = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|req| {
                let times: Vec<Option<i64>> =
                    req.entries().iter().map(|e| e.time().map(|t| t.to_millis().unwrap())).collect();
                times == [Some(1_767_225_600_250), None]
            })
            .then_output(|| PutEventsOutput::builder().failed_entry_count(0).build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&timed], |c| c
            .retry_config(RetryConfig::disabled()));
        let seat = OutEvent {
            detail_type: "Seat Granted".into(),
            detail: json!({"userId": "u", "version": 1, "updatedAt": "2026-01-01T00:00:00.250Z"}),
        };
        let report = OutEvent { detail_type: "Audit Completed".into(), detail: json!({"auditId": "a"}) };
        assert!(EventBridgeSink::new(client, "bus").publish(&[seat, report]).await.unwrap().is_empty());
        assert_eq!(timed.num_calls(), 1, "the entries carried the expected times");
    }

    /// The functions' sink leaves seat events to the stream's publisher; a plain one publishes them.
    #[test]
    fn the_stream_mode_is_chosen_where_the_sink_is_built() {
        let client = || {
            let conf = aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
                .build();
            Client::from_conf(conf)
        };
        assert!(EventBridgeSink::new(client(), "bus").publishes_seat_events_inline());
        assert!(!EventBridgeSink::new(client(), "bus").seat_events_from_stream().publishes_seat_events_inline());
    }

    #[tokio::test]
    async fn a_failure_before_anything_was_sent_is_an_error() {
        let down = mock!(aws_sdk_eventbridge::Client::put_events)
            .then_error(|| PutEventsError::InternalException(InternalException::builder().build()));
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&down], |c| c
            .retry_config(RetryConfig::disabled()));
        assert!(EventBridgeSink::new(client, "bus").publish(&events(3)).await.is_err());
    }
}
