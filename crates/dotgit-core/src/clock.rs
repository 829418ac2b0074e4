//! Time as an input: every rule takes `now` from a [`Clock`], so tests move time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of the current time, in whole seconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Whole seconds, rounded down (as `OffsetDateTime::now_utc().unix_timestamp()`, without
    /// building a calendar date on the way: an authenticated request reads the clock).
    fn now(&self) -> i64 {
        unix_seconds(std::time::SystemTime::now())
    }
}

/// Seconds since the Unix epoch of `t`, rounded down (towards the past before 1970 too).
fn unix_seconds(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -(whole.saturating_add(i64::from(d.subsec_nanos() > 0)))
        }
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `start` (seconds since the epoch).
    pub fn new(start: i64) -> Self {
        Self(AtomicI64::new(start))
    }
    /// Moves the clock forward (or back, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// Sets the clock to an absolute time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Formats a Unix timestamp as RFC 3339 UTC (`2026-11-29T15:25:00Z`).
pub fn rfc3339(ts: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(7_200);
        assert_eq!(c.now(), 8_200);
    }

    #[test]
    fn system_seconds_round_down_like_the_calendar_clock() {
        use std::time::{Duration, UNIX_EPOCH};
        for (t, secs) in [
            (UNIX_EPOCH, 0),
            (
                UNIX_EPOCH + Duration::from_millis(1_795_000_000_999),
                1_795_000_000,
            ),
            (UNIX_EPOCH - Duration::from_millis(1), -1),
            (UNIX_EPOCH - Duration::from_secs(2), -2),
            (UNIX_EPOCH - Duration::from_millis(2_500), -3),
        ] {
            assert_eq!(unix_seconds(t), secs, "{t:?}");
            assert_eq!(OffsetDateTime::from(t).unix_timestamp(), secs, "{t:?}");
        }
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let now = SystemClock.now();
        let after = OffsetDateTime::now_utc().unix_timestamp();
        assert!((before..=after).contains(&now), "{before} {now} {after}");
    }

    #[test]
    fn rfc3339_round_trips() {
        let s = rfc3339(1_795_000_000);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse_rfc3339(&s), Some(1_795_000_000));
    }
}
