//! When to send gratuitous ARP / unsolicited NA for an address newly announced on an
//! interface — pure: times are plain [`Duration`]s since any fixed origin.
//!
//! A takeover is announced at once and repeated at [`SPACING`] for [`BURST`] (t = 0, 1.1, 2.2,
//! 3.3, 4.4 s): one frame can be lost, and a client ignores a reply-form gratuitous ARP for
//! `locktime` (1 s) after its entry last changed, so a single frame is not enough. After the
//! burst an optional refresh repeats it every `refresh`, for switches that age out MAC tables.
//! A schedule that fires late (a busy node) sends once and skips the repeats it missed rather
//! than sending them back to back.

use std::time::Duration;

/// Spacing of the repeats after a takeover.
pub const SPACING: Duration = Duration::from_millis(1100);
/// How long the repeats go on.
pub const BURST: Duration = Duration::from_secs(5);

/// Number of sends in a burst: every multiple of [`SPACING`] below [`BURST`] (5: 0 … 4.4 s).
pub const BURST_SENDS: u32 = burst_sends();

const fn burst_sends() -> u32 {
    let mut n = 0u32;
    while (SPACING.as_millis() * n as u128) < BURST.as_millis() {
        n += 1;
    }
    n
}

/// The announcements of one address on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    start: Duration,
    /// Index of the next send: `0..BURST_SENDS` are the burst, then refreshes.
    step: u64,
    refresh: Option<Duration>,
}

impl Schedule {
    /// A schedule starting at `now` (its first send is due at once). A zero `refresh` is off.
    pub fn new(now: Duration, refresh: Option<Duration>) -> Schedule {
        Schedule {
            start: now,
            step: 0,
            refresh: refresh.filter(|r| !r.is_zero()),
        }
    }

    /// When send number `step` is due; `None` after the burst when there is no refresh.
    fn time_of(&self, step: u64) -> Option<Duration> {
        let burst = u64::from(BURST_SENDS);
        if step < burst {
            return Some(self.start + mul(SPACING, step));
        }
        let refresh = self.refresh?;
        Some(self.start + mul(SPACING, burst - 1) + mul(refresh, step - (burst - 1)))
    }

    /// When the next send is due (`None`: nothing more to send).
    pub fn next_due(&self) -> Option<Duration> {
        self.time_of(self.step)
    }

    /// Whether a send is due at `now`. If so, it counts as sent: the schedule moves past every
    /// send due at or before `now` (missed repeats are skipped, not sent in a row).
    pub fn fire(&mut self, now: Duration) -> bool {
        match self.next_due() {
            Some(due) if due <= now => {}
            _ => return false,
        }
        let burst = u64::from(BURST_SENDS);
        // Skip within the burst one step at a time (at most BURST_SENDS steps)…
        while self.step < burst && self.time_of(self.step + 1).is_some_and(|t| t <= now) {
            self.step += 1;
        }
        // …and over missed refreshes arithmetically (a refresh could be far behind).
        if self.step >= burst {
            if let (Some(refresh), Some(due)) = (self.refresh, self.time_of(self.step)) {
                let late = now.saturating_sub(due).as_nanos() / refresh.as_nanos().max(1);
                self.step += u64::try_from(late).unwrap_or(u64::MAX / 2);
            }
        }
        self.step += 1;
        true
    }

    /// Whether the first send (t = 0) has happened.
    pub fn started(&self) -> bool {
        self.step > 0
    }
}

fn mul(d: Duration, n: u64) -> Duration {
    d.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives a schedule with a clock ticking every `tick` up to `until`; returns the send times.
    fn run(mut s: Schedule, tick: Duration, until: Duration) -> Vec<Duration> {
        let mut sent = Vec::new();
        let mut now = Duration::ZERO;
        while now <= until {
            if s.fire(now) {
                sent.push(now);
            }
            now += tick;
        }
        sent
    }

    #[test]
    fn a_burst_is_five_sends_at_1_1_s_spacing_within_5_s() {
        assert_eq!(BURST_SENDS, 5);
        let sent = run(Schedule::new(ms(0), None), ms(10), ms(20_000));
        assert_eq!(sent, [ms(0), ms(1100), ms(2200), ms(3300), ms(4400)]);
    }

    #[test]
    fn the_first_send_is_due_at_once_and_nothing_after_the_burst() {
        let mut s = Schedule::new(ms(7000), None);
        assert_eq!(s.next_due(), Some(ms(7000)));
        assert!(!s.started());
        assert!(!s.fire(ms(6999)));
        assert!(s.fire(ms(7000)));
        assert!(s.started());
        assert!(!s.fire(ms(7000)), "the same send never fires twice");
        assert_eq!(s.next_due(), Some(ms(8100)));
        for t in [8100, 9200, 10_300, 11_400] {
            assert!(s.fire(ms(t)));
        }
        assert_eq!(s.next_due(), None);
        assert!(!s.fire(ms(1_000_000)));
    }

    #[test]
    fn refresh_follows_the_burst() {
        let sent = run(Schedule::new(ms(0), Some(ms(30_000))), ms(100), ms(100_000));
        assert_eq!(
            sent,
            [
                ms(0),
                ms(1100),
                ms(2200),
                ms(3300),
                ms(4400),
                ms(34_400),
                ms(64_400),
                ms(94_400)
            ]
        );
    }

    #[test]
    fn a_zero_refresh_is_off() {
        let sent = run(
            Schedule::new(ms(0), Some(Duration::ZERO)),
            ms(100),
            ms(60_000),
        );
        assert_eq!(sent.len(), 5);
    }

    #[test]
    fn a_late_clock_sends_once_and_skips_what_it_missed() {
        let mut s = Schedule::new(ms(0), None);
        assert!(s.fire(ms(0)));
        // Woken only at 3.5 s: one send, the next is the 4.4 s one.
        assert!(s.fire(ms(3500)));
        assert!(!s.fire(ms(3500)));
        assert_eq!(s.next_due(), Some(ms(4400)));

        let mut r = Schedule::new(ms(0), Some(ms(1000)));
        assert!(r.fire(ms(0)));
        assert!(r.fire(ms(1_000_000)));
        assert!(!r.fire(ms(1_000_000)));
        let next = r.next_due().unwrap();
        assert!(next > ms(1_000_000) && next <= ms(1_001_000), "{next:?}");
    }

    #[test]
    fn a_first_fire_that_is_late_still_sends_once() {
        let mut s = Schedule::new(ms(100), None);
        assert!(s.fire(ms(2500)));
        assert!(!s.fire(ms(2500)));
        assert_eq!(s.next_due(), Some(ms(3400)));
    }
}
