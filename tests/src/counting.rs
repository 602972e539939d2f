//! Counts the AWS requests the SDK clients send (every attempt, retries included), by operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Requests sent and not yet answered, and the most there were at once since the last reset.
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl RequestCounter {
    /// `Service.Operation` → requests, since the last reset.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("lock").clone()
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().expect("lock").values().sum()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("lock").clear();
        self.most_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most requests that were in flight at once since the last reset.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    /// The three clients, each counting into this counter.
    pub fn clients(
        &self,
        sdk: &SdkConfig,
    ) -> (aws_sdk_dynamodb::Client, aws_sdk_identitystore::Client, aws_sdk_eventbridge::Client) {
        let d = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(self.clone()).build();
        let i = aws_sdk_identitystore::config::Builder::from(sdk).interceptor(self.clone()).build();
        let e = aws_sdk_eventbridge::config::Builder::from(sdk).interceptor(self.clone()).build();
        (
            aws_sdk_dynamodb::Client::from_conf(d),
            aws_sdk_identitystore::Client::from_conf(i),
            aws_sdk_eventbridge::Client::from_conf(e),
        )
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key =
            cfg.load::<Metadata>().map_or_else(|| "unknown".to_owned(), |m| format!("{}.{}", m.service(), m.name()));
        *self.counts.lock().expect("lock").entry(key).or_default() += 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Every attempt ends here (one that failed before it was sent would end a count too
        // early: none does where this is read).
        let _ = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        Ok(())
    }
}
