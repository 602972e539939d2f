//! `make bench`: the figures issue 8 asks for, printed next to their targets.
//!
//! - [`requests`]: AWS requests and in-process time per operation, with the in-memory fakes of
//!   `kiro_fakes`, which count the requests the real adapters would send.
//! - [`process`]: the release binaries started as Lambda starts them: cold start, first
//!   invocation against moto, peak RSS; and the size of the artifacts.
//! - [`report`]: the tables and the verdict against each target.
//!
//! CPU per event (parsing an envelope, computing a seat change) is the criterion bench in
//! `benches/cpu.rs`.

pub mod activity;
pub mod console;
pub mod directory;
pub mod fakes;
pub mod memory;
pub mod million;
pub mod process;
pub mod report;
pub mod requests;
pub mod usage;

use std::time::Duration;

/// The `p`-th percentile (0–100) of `samples`, nearest rank; `Duration::ZERO` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with three decimals, e.g. `1.234 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Microseconds with one decimal, e.g. `12.3 µs`.
pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=20).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&samples, 90.0), Duration::from_millis(18));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(20));
        assert_eq!(percentile(&samples, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
