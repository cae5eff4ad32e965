//! Nearest-rank percentiles of durations, and their printing.

use std::time::Duration;

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Smallest.
    pub min: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

/// The summary of `v` (all zero when empty).
pub fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort();
    let rank = |q: f64| {
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    let total: Duration = v.iter().sum();
    Summary {
        n: v.len(),
        min: v.first().copied().unwrap_or_default(),
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        p999: rank(0.999),
        max: v.last().copied().unwrap_or_default(),
        mean: if v.is_empty() {
            Duration::ZERO
        } else {
            total / v.len() as u32
        },
    }
}

/// A duration in the unit that reads best: µs below 10 ms, else ms, else s.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10_000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

impl Summary {
    /// `n=… min=… p50=… p90=… p99=… p99.9=… max=… mean=…`.
    pub fn line(&self) -> String {
        format!(
            "n={} min={} p50={} p90={} p99={} p99.9={} max={} mean={}",
            self.n,
            human(self.min),
            human(self.p50),
            human(self.p90),
            human(self.p99),
            human(self.p999),
            human(self.max),
            human(self.mean)
        )
    }
}
