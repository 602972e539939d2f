//! How much work one Lambda invocation may still do: multi-invocation work (an audit, a group's
//! fan-out) stops between two units while the time left still covers a save and the longest
//! unit seen, and hands the rest to its continuation.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

/// Stop while this much of the invocation is left (capped at a fifth of it), plus the longest
/// unit seen: enough to save the state and request the continuation.
const RESERVE: Duration = Duration::from_secs(60);
/// Lambda's longest invocation: the lease when the deadline is unknown.
const MAX_INVOCATION: Duration = Duration::from_secs(900);
/// How much work this invocation may still do.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<(Instant, i64)>,
    reserve: Duration,
    units: Option<u32>,
    done: u32,
    longest: Duration,
}

impl Budget {
    /// Until the invocation's deadline (milliseconds since the epoch, as the Runtime API's
    /// `Lambda-Runtime-Deadline-Ms`). None is known when it is 0, or already past when the
    /// invocation starts (a runtime that does not set it; Lambda itself always does).
    pub fn until_deadline_ms(deadline_ms: u64) -> Self {
        let now_ms =
            u64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis())
                .unwrap_or(u64::MAX);
        let deadline = (deadline_ms > now_ms).then(|| {
            let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
            (Instant::now() + left, i64::try_from(deadline_ms).unwrap_or(i64::MAX))
        });
        let reserve = deadline.map_or(RESERVE, |(at, _)| RESERVE.min(at.saturating_duration_since(Instant::now()) / 5));
        Self { deadline, reserve, units: None, done: 0, longest: Duration::ZERO }
    }

    /// At most `units` units of work (at least one), whatever the clock says.
    pub fn units(units: u32) -> Self {
        Self { deadline: None, reserve: Duration::ZERO, units: Some(units.max(1)), done: 0, longest: Duration::ZERO }
    }

    /// Records one unit of work that took `took`.
    pub fn spent(&mut self, took: Duration) {
        self.spent_units(1, took);
    }

    /// Records `units` units of work done together in `took` (the longest step is what the
    /// reserve must cover).
    pub fn spent_units(&mut self, units: u32, took: Duration) {
        self.done = self.done.saturating_add(units);
        self.longest = self.longest.max(took);
    }

    /// Whether `more` units begun since the last [`spent_units`](Self::spent_units) use up a
    /// budget of units (a deadline is checked between steps, by [`exhausted`](Self::exhausted)).
    pub fn exhausted_after(&self, more: u32) -> bool {
        self.units.is_some_and(|units| self.done.saturating_add(more) >= units)
    }

    /// Whether the invocation must save and stop before another unit.
    pub fn exhausted(&self) -> bool {
        if let Some(units) = self.units {
            return self.done >= units;
        }
        self.deadline.is_some_and(|(at, _)| at.saturating_duration_since(Instant::now()) <= self.reserve + self.longest)
    }

    /// Until when this invocation holds an audit it resumes.
    pub fn lease_until_ms(&self, now: DateTime<Utc>) -> i64 {
        match self.deadline {
            Some((_, ms)) => ms,
            None => (now + MAX_INVOCATION).timestamp_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_budgets_allow_at_least_one_unit() {
        let mut b = Budget::units(0);
        assert!(!b.exhausted());
        b.spent(Duration::ZERO);
        assert!(b.exhausted());
        let mut b = Budget::units(2);
        b.spent(Duration::ZERO);
        assert!(!b.exhausted());
    }

    #[test]
    fn deadline_budgets_keep_a_reserve_and_the_longest_unit() {
        assert!(!Budget::until_deadline_ms(0).exhausted(), "no deadline: never exhausted");
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap();
        let mut b = Budget::until_deadline_ms(now_ms + 600_000);
        assert!(!b.exhausted());
        b.spent(Duration::from_secs(550));
        assert!(b.exhausted(), "60 s reserve + a 550 s unit do not fit in 600 s");
        assert!(!Budget::until_deadline_ms(now_ms - 1).exhausted(), "a deadline past at the start is no deadline");
        let mut soon = Budget::until_deadline_ms(now_ms + 50);
        std::thread::sleep(Duration::from_millis(60));
        assert!(soon.exhausted(), "the deadline passed during the invocation");
        soon.spent(Duration::ZERO);
        assert!(soon.exhausted());
        assert_eq!(Budget::until_deadline_ms(now_ms + 600_000).lease_until_ms(Utc::now()), (now_ms + 600_000) as i64);
    }
}
