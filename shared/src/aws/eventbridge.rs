//! `EventSink` on EventBridge: `PutEvents` to `EVENT_BUS_NAME`, `Source` `kiro.subscriptions`.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::ports::{EventSink, OutEvent, SinkError};

pub const SOURCE: &str = "kiro.subscriptions";
/// PutEvents takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }
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
                        .source(SOURCE)
                        .detail_type(&e.detail_type)
                        .detail(e.detail.to_string())
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SinkError::Aws(Box::new(e)))?;
            if out.failed_entry_count() > 0 {
                let base = chunk_index * MAX_ENTRIES;
                failed.extend(
                    out.entries().iter().enumerate().filter(|(_, r)| r.error_code().is_some()).map(|(i, _)| base + i),
                );
            }
        }
        Ok(failed)
    }
}
