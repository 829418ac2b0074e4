//! OAuth tokens found by digest through a map in memory (ADR 0022).
//!
//! A token's lookup key is the SHA-256 of 30 random characters, so an index on it in SQLite
//! takes every new token at a random leaf: each refresh-token rotation dirtied two random pages
//! of `oauth_tokens`' digest index, which went to the WAL at the commit and to the database at
//! the next checkpoint, and found the presented token by descending the same index. This map
//! holds, for every stored token, the first 64 bits of its digest and its `rowid`; the table
//! (without a digest index since migration 0015) is only ever appended to and read by `rowid`.
//!
//! What must hold:
//! - The table is the truth. A rowid from here is a candidate: every read checks the row's full
//!   digest (`WHERE rowid = ? AND token_hash = ?`), so an entry left behind by a deleted row, or
//!   one whose rowid a later row reused, answers nothing.
//! - Every committed token is here before its secret leaves the server: the writers add their
//!   rows' entries after the commit and before they answer. Only this process writes tokens
//!   (the command line never does), so the map loaded once is complete from then on.
//! - The map is loaded from the table on first use (the server loads it at start), under the
//!   write lock, so an entry added at the same time is either read from the table or added
//!   after the load; adding twice is harmless.
//! - Two digests sharing their first 64 bits are both kept (`more`).
//!
//! Entries of rows deleted by the purge are removed with them; rows deleted by a cascade (an
//! account or app deleted) leave theirs until the next start. Memory: ~25 bytes a token.

use crate::{Result, StoreError};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;

/// The key of a digest: its first 64 bits. `None` for a string that is not a hex digest (it
/// matches no stored token).
fn key(token_hash: &str) -> Option<u64> {
    let head = token_hash.get(..16)?;
    if token_hash.len() != 64 {
        return None;
    }
    u64::from_str_radix(head, 16).ok()
}

/// The keys are bits of a SHA-256 already: they are their own hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only u64 keys are hashed here; fold anything else in for completeness
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Keyed<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

#[derive(Default)]
struct Map {
    first: Keyed<i64>,
    /// Further rowids of a key already in `first` (two digests with the same first 64 bits).
    more: Keyed<Vec<i64>>,
}

impl Map {
    fn insert(&mut self, k: u64, rowid: i64) {
        match self.first.get(&k) {
            None => {
                self.first.insert(k, rowid);
            }
            Some(&r) if r == rowid => {}
            Some(_) => {
                let more = self.more.entry(k).or_default();
                if !more.contains(&rowid) {
                    more.push(rowid);
                }
            }
        }
    }

    fn remove(&mut self, k: u64, rowid: i64) {
        if let Some(more) = self.more.get_mut(&k) {
            more.retain(|r| *r != rowid);
            if self.first.get(&k) == Some(&rowid) {
                match more.pop() {
                    Some(r) => {
                        self.first.insert(k, r);
                    }
                    None => {
                        self.first.remove(&k);
                    }
                }
            }
            if more.is_empty() {
                self.more.remove(&k);
            }
        } else if self.first.get(&k) == Some(&rowid) {
            self.first.remove(&k);
        }
    }

    fn candidates(&self, k: u64) -> Vec<i64> {
        let mut out = Vec::new();
        if let Some(r) = self.first.get(&k) {
            out.push(*r);
            if let Some(more) = self.more.get(&k) {
                out.extend_from_slice(more);
            }
        }
        out
    }

    fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }
}

/// The digest → rowid map of `oauth_tokens` (see the module documentation).
pub(crate) struct TokenIndex {
    path: PathBuf,
    map: RwLock<Option<Map>>,
}

impl std::fmt::Debug for TokenIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens = self.map.read().as_ref().map(Map::len);
        f.debug_struct("TokenIndex")
            .field("path", &self.path)
            .field("tokens", &tokens)
            .finish()
    }
}

impl TokenIndex {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            map: RwLock::new(None),
        }
    }

    /// Runs `f` on the loaded map, loading it first if need be.
    fn read<T>(&self, f: impl FnOnce(&Map) -> T) -> Result<T> {
        {
            let g = self.map.read();
            if let Some(m) = g.as_ref() {
                return Ok(f(m));
            }
        }
        let mut w = self.map.write();
        if w.is_none() {
            *w = Some(self.load()?);
        }
        match w.as_ref() {
            Some(m) => Ok(f(m)),
            None => Err(StoreError::Internal("the token index did not load".into())),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Map)) -> Result<()> {
        let mut w = self.map.write();
        if w.is_none() {
            *w = Some(self.load()?);
        }
        if let Some(m) = w.as_mut() {
            f(m);
        }
        Ok(())
    }

    fn load(&self) -> Result<Map> {
        crate::hot::fresh(&self.path, |c| {
            let mut st = c.prepare("SELECT rowid, token_hash FROM oauth_tokens")?;
            let mut rows = st.query([])?;
            let mut m = Map::default();
            while let Some(r) = rows.next()? {
                let rowid: i64 = r.get(0)?;
                let hash: String = r.get(1)?;
                if let Some(k) = key(&hash) {
                    m.insert(k, rowid);
                }
            }
            Ok(m)
        })
    }

    /// Loads the map now if it is not loaded (the server does so at start, so that the first
    /// token request does not wait for it). Returns how many tokens it holds.
    pub(crate) fn warm(&self) -> Result<usize> {
        self.read(Map::len)
    }

    /// The rowids a token with this digest may have (usually none or one).
    pub(crate) fn candidates(&self, token_hash: &str) -> Result<Vec<i64>> {
        match key(token_hash) {
            Some(k) => self.read(|m| m.candidates(k)),
            None => Ok(Vec::new()),
        }
    }

    /// Adds committed rows.
    pub(crate) fn insert<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>) -> Result<()> {
        self.write(|m| {
            for (hash, rowid) in rows {
                if let Some(k) = key(hash) {
                    m.insert(k, rowid);
                }
            }
        })
    }

    /// Forgets deleted rows.
    pub(crate) fn remove<'a>(&self, rows: impl IntoIterator<Item = (&'a str, i64)>) -> Result<()> {
        self.write(|m| {
            for (hash, rowid) in rows {
                if let Some(k) = key(hash) {
                    m.remove(k, rowid);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_first_64_bits_of_a_hex_digest_and_nothing_else_has_one() {
        let h = format!("{}{}", "00000000000000ff", "a".repeat(48));
        assert_eq!(key(&h), Some(255));
        assert_eq!(key("00000000000000ff"), None, "not a whole digest");
        assert_eq!(key(&format!("zz{}", &h[2..])), None, "not hex");
        assert_eq!(key(""), None);
    }

    #[test]
    fn digests_sharing_a_key_are_all_candidates_until_removed() {
        let mut m = Map::default();
        m.insert(7, 1);
        m.insert(7, 1);
        assert_eq!(m.candidates(7), vec![1]);
        m.insert(7, 2);
        m.insert(7, 3);
        assert_eq!(m.candidates(7), vec![1, 2, 3]);
        assert_eq!(m.len(), 3);
        m.remove(7, 1);
        let mut c = m.candidates(7);
        c.sort();
        assert_eq!(c, vec![2, 3]);
        m.remove(7, 3);
        assert_eq!(m.candidates(7), vec![2]);
        m.remove(7, 9);
        assert_eq!(
            m.candidates(7),
            vec![2],
            "removing another rowid leaves the entry"
        );
        m.remove(7, 2);
        assert!(m.candidates(7).is_empty());
        assert!(m.first.is_empty() && m.more.is_empty());
        assert!(m.candidates(8).is_empty());
    }
}
