//! Rate limits (SPEC §4): failed authentications per source IP in a fixed window (over the limit,
//! the source gets 429 until the window ends), and a request budget per credential per hour,
//! reported in `X-RateLimit-*`. Class C state: in memory, lost on restart by design.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;

/// Outcome of a budget check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The hourly limit.
    pub limit: u32,
    /// Requests left in this window (after this one).
    pub remaining: u32,
    /// When the window resets (Unix seconds).
    pub reset: i64,
    /// Whether this request is over budget.
    pub exceeded: bool,
    /// Whether this is the first request over budget in the window (the trip to record).
    pub first_exceeded: bool,
}

#[derive(Debug)]
struct Window {
    start: i64,
    count: u32,
}

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    failure_limit: u32,
    failure_window: i64,
    budget: u32,
    failures: Mutex<HashMap<IpAddr, Window>>,
    usage: Mutex<HashMap<String, Window>>,
}

impl Limiter {
    /// A limiter with these settings.
    pub fn new(failure_limit: u32, failure_window: u64, budget_per_hour: u32) -> Self {
        Limiter {
            failure_limit,
            failure_window: i64::try_from(failure_window).unwrap_or(i64::MAX),
            budget: budget_per_hour,
            failures: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// If `ip` has used up its failures, the seconds until it may try again.
    pub fn blocked(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let map = self.failures.lock();
        let w = map.get(&ip)?;
        let end = w.start.saturating_add(self.failure_window);
        (w.count >= self.failure_limit && now < end).then(|| (end - now).unsigned_abs())
    }

    /// Counts a failed authentication from `ip`; `true` if this one used up the budget (the
    /// trip, reported once per window).
    pub fn record_failure(&self, ip: IpAddr, now: i64) -> bool {
        let mut map = self.failures.lock();
        let w = map.entry(ip).or_insert(Window {
            start: now,
            count: 0,
        });
        if now >= w.start.saturating_add(self.failure_window) {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        w.count == self.failure_limit
    }

    /// Spends one request of `credential_id`'s hourly budget.
    pub fn spend(&self, credential_id: &str, now: i64) -> Budget {
        let window_start = now - now.rem_euclid(3600);
        let mut map = self.usage.lock();
        let w = match map.get_mut(credential_id) {
            Some(w) => w,
            None => map.entry(credential_id.to_owned()).or_insert(Window {
                start: window_start,
                count: 0,
            }),
        };
        if w.start != window_start {
            *w = Window {
                start: window_start,
                count: 0,
            };
        }
        let exceeded = w.count >= self.budget;
        // count one past the budget, so the first refusal in a window is told apart
        let first_exceeded = exceeded && w.count == self.budget;
        if w.count <= self.budget {
            w.count = w.count.saturating_add(1);
        }
        Budget {
            limit: self.budget,
            remaining: self.budget.saturating_sub(w.count),
            reset: window_start + 3600,
            exceeded,
            first_exceeded,
        }
    }

    /// Forgets windows that have ended (called periodically).
    pub fn prune(&self, now: i64) {
        let fw = self.failure_window;
        self.failures
            .lock()
            .retain(|_, w| now < w.start.saturating_add(fw));
        let hour = now - now.rem_euclid(3600);
        self.usage.lock().retain(|_, w| w.start == hour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_trip_at_the_limit_and_clear_after_the_window() {
        let l = Limiter::new(3, 300, 10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..3 {
            assert_eq!(l.blocked(ip, 1000), None);
            assert_eq!(l.record_failure(ip, 1000), i == 2, "trips on the third");
        }
        assert_eq!(l.blocked(ip, 1000), Some(300));
        assert_eq!(l.blocked(ip, 1299), Some(1));
        assert_eq!(l.blocked(ip, 1300), None);
        assert_eq!(l.blocked("192.0.2.2".parse().unwrap(), 1000), None);
    }

    #[test]
    fn budget_counts_down_and_resets_on_the_hour() {
        let l = Limiter::new(3, 300, 2);
        let b = l.spend("k", 7200);
        assert_eq!((b.remaining, b.reset, b.exceeded), (1, 10800, false));
        assert_eq!(l.spend("k", 7300).remaining, 0);
        let over = l.spend("k", 7400);
        assert!(over.exceeded && over.first_exceeded);
        let again = l.spend("k", 7401);
        assert!(again.exceeded && !again.first_exceeded);
        assert!(!l.spend("k", 10800).exceeded);
    }
}
