//! When to try a failed batch again (DESIGN.md §7): exponential backoff
//! from `base`, capped, with jitter so devices that failed together do not
//! retry together; at most `max_attempts`.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` failures
    /// (1-based): `base · 2^(attempt-1)`, capped, then jittered into its upper
    /// half ("equal jitter"), so the delay still grows with every attempt.
    /// `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether `attempts` failures use up the budget.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(300),
    };

    #[test]
    fn delays_grow_then_stop_at_the_cap() {
        let at = |n, u| P.delay(n, u).as_millis();
        assert_eq!(at(1, 0.0), 500);
        assert_eq!(at(1, 0.999_999), 999);
        assert_eq!(at(2, 0.0), 1000);
        assert_eq!(at(3, 0.0), 2000);
        // Until the cap, even the smallest jitter of a later attempt is at
        // least the largest of the one before it.
        for n in 1..9 {
            assert!(at(n + 1, 0.0) >= at(n, 0.999_999), "attempt {n}");
        }
        for n in 1..40 {
            assert!(
                at(n, 0.999_999) < 300_000,
                "attempt {n} stays under the cap"
            );
        }
        assert_eq!(at(20, 0.999_999), 299_999);
        assert_eq!(at(u32::MAX, 0.0), 150_000);
    }

    #[test]
    fn the_budget_is_max_attempts() {
        assert!(!P.exhausted(4));
        assert!(P.exhausted(5));
    }
}
