//! Fault injection: what tests make the simulator do wrong on purpose — fail the next N
//! requests (500, or 429 with `Retry-After`), stall requests and watch streams for a while,
//! answer the next watches with 410 Expired, drop every open watch. (Restarts are the
//! server's: see `ApiServer::restart`.)

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::status::ApiError;

/// How the next requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 500 `InternalError`.
    Internal,
    /// 429 `TooManyRequests` with `Retry-After: seconds`.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after: u64,
    },
}

#[derive(Debug, Default)]
struct State {
    fail_next: u64,
    failure: Option<Failure>,
    stall_until: Option<Instant>,
    expire_next_watches: u64,
}

/// The fault switches (shared by the programmatic handle and `/_sim/faults/…`).
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    drop_watches: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Mutex::new(State::default()),
            drop_watches: watch::channel(0).0,
        }
    }
}

// === impl Faults ===

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the next `count` API requests (not `/_sim/…`) with `failure`.
    pub fn fail_next(&self, count: u64, failure: Failure) {
        let mut s = self.lock();
        s.fail_next = count;
        s.failure = Some(failure);
    }

    /// Holds every API request arriving in the next `duration` (and pauses watch streams)
    /// until it is over.
    pub fn stall_for(&self, duration: Duration) {
        self.lock().stall_until = Some(Instant::now() + duration);
    }

    /// The next `count` watch requests get a 410 Expired ERROR event and end.
    pub fn expire_next_watches(&self, count: u64) {
        self.lock().expire_next_watches = count;
    }

    /// Ends every open watch stream (the connection stays usable).
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|g| *g += 1);
    }

    /// Clears every pending fault.
    pub fn clear(&self) {
        *self.lock() = State::default();
    }

    /// A receiver that changes when watches are to be dropped.
    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    /// Takes one injected failure for a request, if any is pending.
    pub fn take_failure(&self) -> Option<ApiError> {
        let mut s = self.lock();
        if s.fail_next == 0 {
            return None;
        }
        s.fail_next -= 1;
        match s.failure {
            Some(Failure::TooManyRequests { retry_after }) => {
                Some(ApiError::too_many_requests(retry_after))
            }
            Some(Failure::Internal) | None => Some(ApiError::internal("injected fault")),
        }
    }

    /// Until when requests are held (`None`: not stalled).
    pub fn stalled_until(&self) -> Option<Instant> {
        let s = self.lock();
        s.stall_until.filter(|t| *t > Instant::now())
    }

    /// Takes one forced expiry for a watch, if any is pending.
    pub fn take_watch_expiry(&self) -> bool {
        let mut s = self.lock();
        if s.expire_next_watches > 0 {
            s.expire_next_watches -= 1;
            true
        } else {
            false
        }
    }

    /// Waits while requests are stalled.
    pub async fn wait_if_stalled(&self) {
        while let Some(until) = self.stalled_until() {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_down() {
        let f = Faults::default();
        assert!(f.take_failure().is_none());
        f.fail_next(2, Failure::TooManyRequests { retry_after: 3 });
        let e = f.take_failure().unwrap();
        assert_eq!((e.code, e.retry_after), (429, Some(3)));
        assert!(f.take_failure().is_some());
        assert!(f.take_failure().is_none());
        f.expire_next_watches(1);
        assert!(f.take_watch_expiry());
        assert!(!f.take_watch_expiry());
        f.fail_next(5, Failure::Internal);
        f.clear();
        assert!(f.take_failure().is_none());
    }
}
