//! Client-side pacing: Identity Store allows 20 requests per second per API, so a long read
//! (an audit, a large fan-out) spreads its calls instead of bursting into throttling. Throttling
//! that happens anyway is retried with backoff by the SDK.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn per_second(requests: u32) -> Self {
        Self { interval: Duration::from_secs(1) / requests.max(1), next: Mutex::new(None) }
    }

    /// Waits for this caller's slot: at most `requests` slots a second, first come first served.
    pub async fn wait(&self) {
        let delay = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot - now
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn forty_calls_at_twenty_a_second_take_two_seconds() {
        let pacer = Pacer::per_second(20);
        let start = Instant::now();
        for _ in 0..40 {
            pacer.wait().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1950) && elapsed < Duration::from_millis(2000), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_lets_the_first_call_through_at_once() {
        let pacer = Pacer::per_second(20);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        pacer.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
