//! A bounded, sharded map with a time to live, for the verification cache's three maps.
//!
//! It replaced `moka`: under the introspection benchmark (1,000 tokens in turn) a moka `get` cost
//! ~0.8 µs of the core — recording each read for its eviction policy and applying those records
//! in housekeeping — against ~0.05 µs for a read lock and a hash probe here.
//!
//! What must hold: at most `capacity` entries (rounded up to whole shards); an entry older than
//! the time to live is never returned; `clear` empties every shard. Eviction is a second chance
//! sweep: a read marks its entry used; when an insert finds its shard full, one pass drops every
//! entry of that shard not used since the last pass (and every expired one) and clears the marks
//! of the rest; if every entry was used, the shard starts over. A flood of credentials seen once
//! (a scan) therefore evicts itself first and spares the ones in use; each pass is linear in the
//! shard but frees a share of it, so its cost per insert stays constant.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

struct Slot<V> {
    value: Arc<V>,
    born: Instant,
    used: AtomicBool,
}

type Shard<K, V> = RwLock<HashMap<K, Slot<V>, foldhash::fast::RandomState>>;

/// The map. `get` takes a shard's read lock; `insert` and `clear` its write lock.
pub struct Bounded<K, V> {
    shards: Box<[Shard<K, V>]>,
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
    ttl: Duration,
}

impl<K, V> std::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// A map of up to `capacity` entries (0: keeps nothing), each returned for `ttl` at most.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Bounded {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            per_shard: capacity.div_ceil(SHARDS),
            ttl,
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, k: &Q) -> &Shard<K, V> {
        let h = self.hasher.hash_one(k);
        // the top bits pick the shard; the map inside hashes again with its own seed
        &self.shards[(h >> 60) as usize % SHARDS]
    }

    /// The entry for `k`, if present and younger than the time to live.
    pub fn get<Q>(&self, k: &Q) -> Option<Arc<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_at(k, Instant::now())
    }

    fn get_at<Q>(&self, k: &Q, now: Instant) -> Option<Arc<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(k).read();
        let slot = shard.get(k)?;
        if now.saturating_duration_since(slot.born) >= self.ttl {
            return None;
        }
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    /// Inserts (or replaces) the entry for `k`, making room if its shard is full.
    pub fn insert(&self, k: K, v: Arc<V>) {
        self.insert_at(k, v, Instant::now());
    }

    fn insert_at(&self, k: K, v: Arc<V>, now: Instant) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&k).write();
        if shard.len() >= self.per_shard && !shard.contains_key(&k) {
            let ttl = self.ttl;
            shard.retain(|_, s| {
                now.saturating_duration_since(s.born) < ttl && s.used.swap(false, Ordering::Relaxed)
            });
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(
            k,
            Slot {
                value: v,
                born: now,
                used: AtomicBool::new(false),
            },
        );
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.write().clear();
        }
    }

    /// Entries held (expired ones included until they are swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn never_holds_more_than_its_capacity() {
        let m: Bounded<u64, u64> = Bounded::new(160, TTL);
        let t = Instant::now();
        for i in 0..10_000 {
            m.insert_at(i, Arc::new(i), t);
            assert!(m.len() <= 160, "{} entries after {i}", m.len());
        }
        let empty: Bounded<u64, u64> = Bounded::new(0, TTL);
        empty.insert(1, Arc::new(1));
        assert_eq!(empty.len(), 0);
        assert!(empty.get(&1).is_none());
    }

    #[test]
    fn entries_in_use_survive_a_scan() {
        let m: Bounded<u64, u64> = Bounded::new(1_600, TTL);
        let t = Instant::now();
        let hot: Vec<u64> = (0..100).collect();
        for k in &hot {
            m.insert_at(*k, Arc::new(*k), t);
        }
        // a flood of keys seen once, while the hot ones keep being read
        for i in 0..50_000u64 {
            m.insert_at(1_000_000 + i, Arc::new(i), t);
            if i % 50 == 0 {
                for k in &hot {
                    assert_eq!(
                        m.get_at(k, t).as_deref(),
                        Some(k),
                        "hot key {k} evicted at {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn expired_entries_are_not_returned() {
        let m: Bounded<&str, u32> = Bounded::new(10, TTL);
        let t = Instant::now();
        m.insert_at("a", Arc::new(1), t);
        assert_eq!(
            m.get_at("a", t + TTL - Duration::from_secs(1)).as_deref(),
            Some(&1)
        );
        assert!(m.get_at("a", t + TTL).is_none());
        // replaced entries start a new life
        m.insert_at("a", Arc::new(2), t + TTL);
        assert_eq!(
            m.get_at("a", t + TTL + Duration::from_secs(1)).as_deref(),
            Some(&2)
        );
    }

    #[test]
    fn clear_empties_every_shard() {
        let m: Bounded<u64, u64> = Bounded::new(1_000, TTL);
        for i in 0..500 {
            m.insert(i, Arc::new(i));
        }
        m.clear();
        assert_eq!(m.len(), 0);
        assert!((0..500).all(|i| m.get(&i).is_none()));
    }
}
