//! Connect-retry backoff with jitter, from a seeded generator so the machine stays pure.

use std::time::Duration;

/// How long the peer may take to send its OPEN after ours (RFC 4271 §8.2.2 suggests 4 min).
pub const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);

/// `base · 2^failures`, capped at `max` (and at least `base`).
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.min(20))
        .min(max.max(base))
}

/// SplitMix64: a tiny deterministic generator, enough to spread reconnects.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `d` scaled by a factor drawn from `[0.75, 1]` (RFC 4271 §10).
    pub fn apply(&mut self, d: Duration) -> Duration {
        // 53 random bits give a uniform f64 in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.75 + 0.25 * unit)
    }
}
