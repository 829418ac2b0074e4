//! Last-use times (class C soft state, written behind): of API keys, and of each granted scope
//! of a key.
//!
//! A use is noted in memory on the request path; a background task writes what is due every
//! [`FLUSH_SECONDS`]. A time is written at the first flush after the first use that the server
//! has not yet recorded, and after that at most once every [`RESOLUTION_SECONDS`] while the key
//! keeps being used: the stored time is never more than about a minute behind the truth, and the
//! last use of a burst is always written in the end (at the latest [`RESOLUTION_SECONDS`] after
//! the previous write, or when the server stops). The API (and the dashboard, which shows the
//! API's objects) adds the times still in memory, so it answers exact times. The stored time,
//! which the anomaly rules read when they first meet a key (its 30 days of disuse), can be up to
//! about a minute old, and a crash loses at most that much of it.
//!
//! Before, every flush wrote every key used in the last 5 s: 100,000 keys in steady use cost
//! 20,000 random row writes a second. Now the same keys cost a twelfth of that
//! (docs/adr/0021-last-use-resolution.md; docs/performance-history.md, session 14).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;

/// How often the background task writes the times that are due.
pub const FLUSH_SECONDS: u64 = 5;
/// A time already written is written again at most this often while its key keeps being used.
pub const RESOLUTION_SECONDS: i64 = 60;
/// Most times written in one transaction.
pub const CHUNK: usize = 2048;

/// Pending last-use times, and when each key's time was last written.
#[derive(Debug)]
pub struct Uses<K> {
    /// Uses not yet written: key → latest use. The request path takes this lock alone.
    pending: Mutex<HashMap<K, i64, foldhash::fast::RandomState>>,
    /// Keys written less than [`RESOLUTION_SECONDS`] ago → when (the server's clock at the
    /// write). A key not here is written at the next flush.
    written: Mutex<HashMap<K, i64, foldhash::fast::RandomState>>,
}

impl<K> Default for Uses<K> {
    fn default() -> Self {
        Uses {
            pending: Mutex::new(HashMap::default()),
            written: Mutex::new(HashMap::default()),
        }
    }
}

impl<K: Eq + Hash + Clone> Uses<K> {
    /// Notes a use of `key` at `at`; `make` builds the owned key the first time.
    pub fn note<Q>(&self, key: &Q, at: i64, make: impl FnOnce() -> K)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut p = self.pending.lock();
        match p.get_mut(key) {
            Some(t) => *t = (*t).max(at),
            None => {
                p.insert(make(), at);
            }
        }
    }

    /// A use of `key` not written yet.
    pub fn pending<Q>(&self, key: &Q) -> Option<i64>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.pending.lock().get(key).copied()
    }

    /// Takes the uses to write at `now`: every pending one if `all`, else those of keys not
    /// written in the last [`RESOLUTION_SECONDS`]. The rest stay pending. Writes old enough not
    /// to matter any more are forgotten here, once a flush.
    pub fn take_due(&self, now: i64, all: bool) -> Vec<(K, i64)> {
        let mut written = self.written.lock();
        written.retain(|_, at| now - *at < RESOLUTION_SECONDS);
        let mut out = Vec::new();
        self.pending.lock().retain(|k, t| {
            let due = all
                || written
                    .get(k)
                    .is_none_or(|&at| now - at >= RESOLUTION_SECONDS);
            if due {
                out.push((k.clone(), *t));
            }
            !due
        });
        out
    }

    /// Records that `batch` was written at `now`.
    pub fn written(&self, batch: Vec<(K, i64)>, now: i64) {
        let mut w = self.written.lock();
        for (k, _) in batch {
            w.insert(k, now);
        }
    }

    /// Writes the uses due at `now` (every pending one if `all`) with `write`, in chunks of at
    /// most [`CHUNK`], each its own transaction: the audit writer shares the writer connection,
    /// and a flush of 100,000 keys in one transaction kept it waiting (docs/performance-history.md,
    /// session 14). A chunk that fails is put back with the rest, for the next flush. Returns
    /// whether any chunk was written.
    pub async fn write_due<E: std::fmt::Display, F: std::future::Future<Output = Result<(), E>>>(
        &self,
        now: i64,
        all: bool,
        what: &str,
        write: impl Fn(&[(K, i64)]) -> F,
    ) -> bool {
        let mut due = self.take_due(now, all);
        let mut wrote = false;
        while !due.is_empty() {
            let rest = due.split_off(due.len().min(CHUNK));
            let chunk = std::mem::replace(&mut due, rest);
            if let Err(e) = write(&chunk).await {
                tracing::warn!(error = %e, "could not record {what}; will retry");
                self.put_back(chunk);
                self.put_back(due);
                return wrote;
            }
            self.written(chunk, now);
            wrote = true;
        }
        wrote
    }

    /// Puts back a batch whose write failed (it is retried at the next flush).
    pub fn put_back(&self, batch: Vec<(K, i64)>) {
        let mut p = self.pending.lock();
        for (k, t) in batch {
            let e = p.entry(k).or_insert(t);
            *e = (*e).max(t);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: i64 = 1_795_953_600;

    fn take(u: &Uses<String>, now: i64) -> Vec<(String, i64)> {
        let mut v = u.take_due(now, false);
        v.sort();
        u.written(v.clone(), now);
        v
    }

    #[test]
    fn a_first_use_is_written_at_the_next_flush_and_later_ones_once_a_resolution() {
        let u = Uses::<String>::default();
        u.note("a", T, || "a".into());
        u.note("b", T + 1, || "b".into());
        assert_eq!(take(&u, T + 5), vec![("a".into(), T), ("b".into(), T + 1)]);
        // used again: kept in memory, not written, until a resolution after the last write
        u.note("a", T + 7, || "a".into());
        u.note("a", T + 30, || "a".into());
        assert_eq!(take(&u, T + 10), vec![]);
        assert_eq!(take(&u, T + 60), vec![]);
        assert_eq!(u.pending("a"), Some(T + 30));
        // a key never written before is not held back by another's write
        u.note("c", T + 61, || "c".into());
        assert_eq!(take(&u, T + 64), vec![("c".into(), T + 61)]);
        // the latest use lands once the resolution has passed, even with no use since
        assert_eq!(take(&u, T + 65), vec![("a".into(), T + 30)]);
        assert_eq!(u.pending("a"), None);
        // and a key whose write is older than the resolution is written at once again
        u.note("b", T + 200, || "b".into());
        assert_eq!(take(&u, T + 205), vec![("b".into(), T + 200)]);
    }

    #[test]
    fn all_takes_everything_and_a_failed_write_is_put_back_without_losing_a_later_use() {
        let u = Uses::<String>::default();
        u.note("a", T, || "a".into());
        assert_eq!(take(&u, T + 5).len(), 1);
        u.note("a", T + 6, || "a".into());
        assert_eq!(u.take_due(T + 10, false), vec![]);
        let all = u.take_due(T + 10, true);
        assert_eq!(all, vec![("a".into(), T + 6)]);
        // the write failed, and meanwhile a later use arrived: the later one is kept
        u.note("a", T + 11, || "a".into());
        u.put_back(all);
        assert_eq!(u.pending("a"), Some(T + 11));
        u.put_back(vec![("b".into(), T + 3)]);
        assert_eq!(u.pending("b"), Some(T + 3));
    }

    #[tokio::test]
    async fn due_uses_are_written_in_chunks_and_a_failed_chunk_is_kept_with_the_rest() {
        let u = Uses::<String>::default();
        for i in 0..(CHUNK * 2 + 1) {
            u.note(&format!("k{i}"), T, || format!("k{i}"));
        }
        let calls = std::sync::Mutex::new(Vec::new());
        let wrote = u
            .write_due(T + 5, false, "test", |c: &[(String, i64)]| {
                let mut calls = calls.lock().unwrap();
                calls.push(c.len());
                let r = if calls.len() == 2 {
                    Err("disk full")
                } else {
                    Ok(())
                };
                async move { r }
            })
            .await;
        assert!(wrote, "the first chunk was written");
        assert_eq!(*calls.lock().unwrap(), vec![CHUNK, CHUNK]);
        // the first chunk is written; the one that failed and the rest stay pending
        assert_eq!(u.written.lock().len(), CHUNK);
        assert_eq!(u.pending.lock().len(), CHUNK + 1);
        // and are written at the next flush
        let n = std::sync::Mutex::new(0);
        let write = |c: &[(String, i64)]| {
            *n.lock().unwrap() += c.len();
            async { Ok::<(), &str>(()) }
        };
        assert!(u.write_due(T + 10, false, "test", write).await);
        assert_eq!(*n.lock().unwrap(), CHUNK + 1);
        assert_eq!(u.pending.lock().len(), 0);
        // nothing due: nothing written, and the caller is told so
        assert!(!u.write_due(T + 15, false, "test", write).await);
        assert_eq!(*n.lock().unwrap(), CHUNK + 1);
    }

    #[test]
    fn the_memory_of_writes_is_pruned() {
        let u = Uses::<String>::default();
        for i in 0..100 {
            u.note(&format!("k{i}"), T, || format!("k{i}"));
        }
        assert_eq!(take(&u, T + 5).len(), 100);
        assert_eq!(u.written.lock().len(), 100);
        assert_eq!(u.take_due(T + 4 + RESOLUTION_SECONDS, false), vec![]);
        assert_eq!(u.written.lock().len(), 100);
        assert_eq!(u.take_due(T + 5 + RESOLUTION_SECONDS, false), vec![]);
        assert_eq!(u.written.lock().len(), 0);
    }
}
