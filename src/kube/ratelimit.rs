//! A token bucket bounding the request rate to the API server (client-go's default is 5 per
//! second with bursts of 10). Written by hand: it is twenty lines, and `governor` would bring a
//! dependency tree for them.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The bucket's arithmetic, with time passed in: pure.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket refilling at `rate` tokens per second up to `burst`.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate: if rate > 0.0 { rate } else { 1.0 },
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token at `now`, returning how long the caller must wait before using it (zero
    /// when one was available). Tokens may go negative: callers queue up in order.
    pub fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// An async token bucket shared by every request of one client.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// `qps` requests per second on average, bursts of `burst`.
    pub fn new(qps: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            bucket: Mutex::new(Bucket::new(qps, burst, Instant::now())),
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) {
        let wait = self.bucket.lock().await.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(5.0, 10, t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        // The 11th waits one period, the 12th two.
        assert_eq!(b.take(t0), Duration::from_millis(200));
        assert_eq!(b.take(t0), Duration::from_millis(400));
        // After a long pause the bucket is full again, never more.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..10 {
            assert_eq!(b.take(later), Duration::ZERO);
        }
        assert!(b.take(later) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_bounds_requests_per_second() {
        let limiter = RateLimiter::new(5.0, 10);
        let start = Instant::now();
        for _ in 0..60 {
            limiter.acquire().await;
        }
        // 10 at once, then 50 at 5/s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_secs(11),
            "{took:?}"
        );
    }
}
