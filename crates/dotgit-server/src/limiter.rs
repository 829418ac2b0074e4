//! Rate limits (SPEC §4): failed authentications per source IP in a fixed window — over the
//! limit, the source gets 429 for a window, doubled on each repeated trip (backoff) — and a
//! request budget per credential per clock hour, reported in `X-RateLimit-*`. Class C state: in
//! memory, lost on restart by design.

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

#[derive(Debug)]
struct Source {
    start: i64,
    count: u32,
    trips: u32,
    blocked_until: i64,
}

/// How long a source's past trips still lengthen its next block.
pub const BACKOFF_MEMORY_SECONDS: i64 = 86_400;
/// The longest block.
pub const MAX_BLOCK_SECONDS: i64 = 86_400;

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    failure_limit: u32,
    failure_window: i64,
    failures: Mutex<HashMap<IpAddr, Source>>,
    /// (keys are ids of verified credentials only, so a fast hash is safe here; the failure
    /// map's keys are chosen by clients and keep the standard, seeded SipHash)
    usage: Mutex<foldhash::HashMap<String, Window>>,
}

impl Limiter {
    /// A limiter with these settings.
    pub fn new(failure_limit: u32, failure_window: u64) -> Self {
        Limiter {
            failure_limit,
            failure_window: i64::try_from(failure_window).unwrap_or(i64::MAX),
            failures: Mutex::new(HashMap::new()),
            usage: Mutex::new(foldhash::HashMap::default()),
        }
    }

    /// If `ip` is blocked, the seconds until it may try again.
    pub fn blocked(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let map = self.failures.lock();
        let s = map.get(&ip)?;
        (now < s.blocked_until).then(|| (s.blocked_until - now).unsigned_abs())
    }

    /// Counts a failed authentication from `ip`; `true` if this one used up the budget (the
    /// trip, reported once). The block lasts one window, doubled for every earlier trip of the
    /// source within the last day (backoff), at most a day.
    pub fn record_failure(&self, ip: IpAddr, now: i64) -> bool {
        let mut map = self.failures.lock();
        let s = map.entry(ip).or_insert(Source {
            start: now,
            count: 0,
            trips: 0,
            blocked_until: i64::MIN,
        });
        if now < s.blocked_until {
            return false;
        }
        if s.trips > 0 && now >= s.blocked_until.saturating_add(BACKOFF_MEMORY_SECONDS) {
            s.trips = 0;
        }
        if now >= s.start.saturating_add(self.failure_window) {
            s.start = now;
            s.count = 0;
        }
        s.count = s.count.saturating_add(1);
        if s.count < self.failure_limit {
            return false;
        }
        s.trips = s.trips.saturating_add(1);
        let factor = 1i64 << (s.trips - 1).min(20);
        let block = self
            .failure_window
            .saturating_mul(factor)
            .min(MAX_BLOCK_SECONDS.max(self.failure_window));
        s.blocked_until = now.saturating_add(block);
        s.count = 0;
        s.start = s.blocked_until;
        true
    }

    /// Spends one request of `credential_id`'s hourly budget of `limit` requests.
    pub fn spend(&self, credential_id: &str, limit: u32, now: i64) -> Budget {
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
        let exceeded = w.count >= limit;
        // count one past the budget, so the first refusal in a window is told apart
        let first_exceeded = exceeded && w.count == limit;
        if w.count <= limit {
            w.count = w.count.saturating_add(1);
        }
        Budget {
            limit,
            remaining: limit.saturating_sub(w.count),
            reset: window_start + 3600,
            exceeded,
            first_exceeded,
        }
    }

    /// Forgets windows that have ended (called periodically).
    pub fn prune(&self, now: i64) {
        let fw = self.failure_window;
        self.failures.lock().retain(|_, s| {
            now < s.start.saturating_add(fw)
                || now < s.blocked_until.saturating_add(BACKOFF_MEMORY_SECONDS)
        });
        let hour = now - now.rem_euclid(3600);
        self.usage.lock().retain(|_, w| w.start == hour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_trip_at_the_limit_and_clear_after_the_window() {
        let l = Limiter::new(3, 300);
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
    fn repeated_trips_double_the_block_up_to_a_day_and_are_forgotten_after_a_day() {
        let l = Limiter::new(2, 100);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let mut now = 0;
        for expected in [100, 200, 400, 800] {
            l.record_failure(ip, now);
            assert!(l.record_failure(ip, now));
            assert_eq!(l.blocked(ip, now), Some(expected));
            // failures while blocked do not extend the block
            assert!(!l.record_failure(ip, now + 1));
            now += expected as i64;
        }
        for _ in 0..20 {
            l.record_failure(ip, now);
            l.record_failure(ip, now);
            now += l.blocked(ip, now).unwrap() as i64;
        }
        l.record_failure(ip, now);
        l.record_failure(ip, now);
        assert_eq!(l.blocked(ip, now), Some(86_400), "capped at a day");
        now += 86_400 + 86_400;
        l.record_failure(ip, now);
        l.record_failure(ip, now);
        assert_eq!(l.blocked(ip, now), Some(100), "forgotten after a quiet day");
    }

    #[test]
    fn budget_counts_down_and_resets_on_the_hour() {
        let l = Limiter::new(3, 300);
        let b = l.spend("k", 2, 7200);
        assert_eq!((b.remaining, b.reset, b.exceeded), (1, 10800, false));
        assert_eq!(l.spend("k", 2, 7300).remaining, 0);
        let over = l.spend("k", 2, 7400);
        assert!(over.exceeded && over.first_exceeded);
        let again = l.spend("k", 2, 7401);
        assert!(again.exceeded && !again.first_exceeded);
        assert!(!l.spend("k", 2, 10800).exceeded);
    }
}
