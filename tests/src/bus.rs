//! An event bus in moto whose `kiro.subscriptions` events are read back: a rule sends them to a
//! queue, as a consumer's rule would, and the test reads the queue.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde_json::Value;

/// A fresh bus, and a queue receiving everything the stack puts on it.
pub struct BusTap {
    pub bus: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl BusTap {
    pub async fn new(sdk: &SdkConfig) -> BusTap {
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let bus = crate::unique("bus");
        events.create_event_bus().name(&bus).send().await.expect("CreateEventBus");
        let queue_url =
            sqs.create_queue().queue_name(&bus).send().await.expect("CreateQueue").queue_url.expect("a url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("the queue's ARN");
        let pattern = serde_json::json!({"source": [kiro::domain::signal::OWN_SOURCE]}).to_string();
        events.put_rule().name(&bus).event_bus_name(&bus).event_pattern(pattern).send().await.expect("PutRule");
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build().expect("a target");
        events.put_targets().rule(&bus).event_bus_name(&bus).targets(target).send().await.expect("PutTargets");
        BusTap { bus, sqs, queue_url }
    }

    /// The envelopes delivered so far, waiting up to `wait` for at least `at_least` of them (and
    /// a moment more for any further one), each read once.
    pub async fn received(&self, at_least: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut envelopes = Vec::new();
        let mut quiet_rounds = 0;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = out.messages.unwrap_or_default();
            quiet_rounds = if messages.is_empty() { quiet_rounds + 1 } else { 0 };
            for m in messages {
                envelopes.push(serde_json::from_str(m.body().unwrap_or("null")).expect("an EventBridge envelope"));
                if let Some(handle) = m.receipt_handle() {
                    self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await.ok();
                }
            }
            if (envelopes.len() >= at_least && quiet_rounds >= 2) || Instant::now() > deadline {
                return envelopes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
