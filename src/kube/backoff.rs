//! Exponential backoff with full jitter, honouring a server's `Retry-After`. Pure: the random
//! source is passed in, so tests are deterministic.

use std::time::Duration;

/// Delays between retries: `base * 2^n` capped at `max`, each drawn uniformly from
/// `[cap/2, cap]` so a fleet of daemons does not retry in lockstep after an API outage.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, never exceeds `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The next delay. `unit` is a random number in `[0, 1)`; `retry_after` (from a 429 or
    /// 503) is a floor.
    pub fn next_delay(&mut self, unit: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        let cap = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = cap.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(floor) => jittered.max(floor),
            None => jittered,
        }
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay(0.999_999, None)).collect();
        assert!(d[0] <= Duration::from_millis(500) && d[0] >= Duration::from_millis(499));
        assert!(d[1] > d[0] && d[2] > d[1]);
        assert!(d.iter().all(|x| *x <= Duration::from_secs(30)));
        assert!(d[9] >= Duration::from_secs(29));
        b.reset();
        assert!(b.next_delay(0.0, None) == Duration::from_millis(250));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(
            b.next_delay(0.5, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
