//! Audit events (SPEC §4 "Audit", §6 audit event): what happened, when, to which account and
//! credential (by id — never a secret), from where, with which outcome and detailed reason.
//!
//! What must hold: events are append-only and chained — each stored event carries
//! `hash = SHA-256(prev_hash ‖ canonical(event))`, so changing, removing or reordering a stored
//! event breaks every later link and `dotgit audit verify` finds it.

use sha2::{Digest, Sha256};

/// Event types.
pub mod types {
    /// A credential was accepted.
    pub const AUTH_SUCCEEDED: &str = "auth.succeeded";
    /// A credential was refused (the reason says why).
    pub const AUTH_FAILED: &str = "auth.failed";
    /// A valid credential of a suspended account was refused.
    pub const AUTH_SUSPENDED: &str = "auth.suspended";
    /// A valid credential lacked the scope a route needs.
    pub const SCOPE_DENIED: &str = "scope.denied";
    /// A source crossed the failed-authentication limit.
    pub const RATE_LIMIT_TRIPPED: &str = "rate_limit.tripped";
    /// A credential used up its hourly request budget.
    pub const BUDGET_EXHAUSTED: &str = "rate_limit.budget_exhausted";
    /// Account created.
    pub const ACCOUNT_CREATED: &str = "account.created";
    /// Account suspended.
    pub const ACCOUNT_SUSPENDED: &str = "account.suspended";
    /// Suspension lifted.
    pub const ACCOUNT_UNSUSPENDED: &str = "account.unsuspended";
    /// Account security settings changed.
    pub const ACCOUNT_SETTINGS_CHANGED: &str = "account.settings_changed";
    /// API key issued.
    pub const API_KEY_CREATED: &str = "api_key.created";
    /// API key rotated (the event names the old key; the reason names the new one).
    pub const API_KEY_ROTATED: &str = "api_key.rotated";
    /// API key revoked.
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    /// API key reached its expiry.
    pub const API_KEY_EXPIRED: &str = "api_key.expired";
    /// JWT public key registered.
    pub const JWT_KEY_REGISTERED: &str = "jwt_key.registered";
    /// JWT public key deleted.
    pub const JWT_KEY_DELETED: &str = "jwt_key.deleted";
    /// A credential was used from a network it was never used from before.
    pub const ANOMALY_NEW_NETWORK: &str = "anomaly.new_network";
    /// Many failed attempts against one account's credentials in a short window.
    pub const ANOMALY_FAILURE_BURST: &str = "anomaly.failure_burst";
    /// A revoked or expired credential was presented: it may have leaked.
    pub const ANOMALY_REVOKED_CREDENTIAL_USED: &str = "anomaly.revoked_credential_used";
    /// A credential unused for 30+ days became active.
    pub const ANOMALY_DORMANT_CREDENTIAL_ACTIVE: &str = "anomaly.dormant_credential_active";
    /// A rotated OAuth refresh token was presented again.
    pub const ANOMALY_REFRESH_TOKEN_REUSE: &str = "anomaly.refresh_token_reuse";
    /// A user approved an OAuth app (an authorization code was issued).
    pub const OAUTH_AUTHORIZED: &str = "oauth.authorized";
    /// An authorization code was exchanged for tokens (a grant began).
    pub const OAUTH_CODE_REDEEMED: &str = "oauth.code_redeemed";
    /// An authorization code was presented a second time; its grant was revoked.
    pub const OAUTH_CODE_REPLAYED: &str = "oauth.code_replayed";
    /// A refresh token was rotated.
    pub const OAUTH_TOKEN_REFRESHED: &str = "oauth.token_refreshed";
    /// A rotated refresh token was presented again; its grant was revoked.
    pub const OAUTH_REFRESH_REUSE_DETECTED: &str = "oauth.refresh_reuse_detected";
    /// A client revoked a token (RFC 7009).
    pub const OAUTH_TOKEN_REVOKED: &str = "oauth.token_revoked";
    /// A user revoked an app's authorization.
    pub const OAUTH_AUTHORIZATION_REVOKED: &str = "oauth.authorization_revoked";
    /// An OAuth app was registered.
    pub const OAUTH_APP_CREATED: &str = "oauth_app.created";
    /// An OAuth app's client secret was replaced.
    pub const OAUTH_APP_SECRET_ROTATED: &str = "oauth_app.secret_rotated";
    /// An OAuth app was deleted.
    pub const OAUTH_APP_DELETED: &str = "oauth_app.deleted";
    /// A password sign-in succeeded.
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    /// A password sign-in failed.
    pub const LOGIN_FAILED: &str = "login.failed";
}

/// The outcome an event of this type records.
pub fn outcome_of(event_type: &str) -> &'static str {
    if event_type.starts_with("anomaly.") {
        outcomes::DETECTED
    } else if event_type.ends_with("_replayed")
        || event_type.ends_with("_reuse_detected")
        || event_type.ends_with(".failed")
    {
        outcomes::FAILURE
    } else {
        outcomes::SUCCESS
    }
}

/// Outcomes.
pub mod outcomes {
    /// Allowed / done.
    pub const SUCCESS: &str = "success";
    /// Refused.
    pub const FAILURE: &str = "failure";
    /// Noticed (anomalies).
    pub const DETECTED: &str = "detected";
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Opaque id.
    pub id: String,
    /// Unix seconds, UTC.
    pub time: i64,
    /// The request that caused it (`cli` for the command line, `internal` for background work).
    pub request_id: String,
    /// One of [`types`].
    pub event_type: String,
    /// The account concerned.
    pub account_id: Option<String>,
    /// The credential concerned (id only).
    pub credential_id: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// One of [`outcomes`].
    pub outcome: String,
    /// The detailed reason (never a secret).
    pub reason: Option<String>,
}

/// The chain link of `e` after `prev_hash` (hex SHA-256 over length-prefixed fields, so no two
/// different events serialize alike).
pub fn chain_hash(prev_hash: &str, e: &AuditEvent) -> String {
    let mut h = Sha256::new();
    let mut field = |s: Option<&str>| match s {
        None => h.update(b"-"),
        Some(v) => {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    };
    field(Some(prev_hash));
    field(Some(&e.id));
    field(Some(&e.time.to_string()));
    field(Some(&e.request_id));
    field(Some(&e.event_type));
    field(e.account_id.as_deref());
    field(e.credential_id.as_deref());
    field(e.source_ip.as_deref());
    field(e.user_agent.as_deref());
    field(Some(&e.outcome));
    field(e.reason.as_deref());
    hex(&h.finalize())
}

/// Successful authentications are stored packed: the events of one credential that one batch of
/// the audit writer holds (with no other kind of event between them) share every field but
/// `id`, `time`, `request_id`, `source_ip` and `user_agent`, and become one row whose `pack`
/// column holds those five fields of each event (docs/audit.md, "Packed events"). Only this type
/// is packed; every other event is a row of its own.
pub fn packable(e: &AuditEvent) -> bool {
    e.event_type == types::AUTH_SUCCEEDED
}

/// Whether two packable events share every field a pack stores once.
pub fn same_pack(a: &AuditEvent, b: &AuditEvent) -> bool {
    a.event_type == b.event_type
        && a.account_id == b.account_id
        && a.credential_id == b.credential_id
        && a.outcome == b.outcome
        && a.reason == b.reason
}

const PACK_VERSION: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// `s` as the lengths of the prefix and the suffix it shares with `prev`, and what lies between:
/// the ids and request ids of one process differ in a few characters from one event to the next.
fn put_after(out: &mut Vec<u8>, prev: &str, s: &str) {
    let mut head = prev
        .bytes()
        .zip(s.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let most = prev.len().min(s.len()) - head;
    let mut tail = prev
        .bytes()
        .rev()
        .zip(s.bytes().rev())
        .take(most)
        .take_while(|(a, b)| a == b)
        .count();
    while !s.is_char_boundary(s.len() - tail) || !prev.is_char_boundary(prev.len() - tail) {
        tail -= 1;
    }
    put_varint(out, head as u64);
    put_varint(out, tail as u64);
    put_str(out, &s[head..s.len() - tail]);
}

/// Encodes the per-event fields of `events` (which all satisfy [`same_pack`] with the first),
/// times relative to `base_time`. Source addresses and user agents are stored once per pack.
pub fn encode_pack(events: &[&AuditEvent], base_time: i64) -> Vec<u8> {
    fn index<'a>(
        strings: &mut Vec<&'a str>,
        seen: &mut std::collections::HashMap<&'a str, u64>,
        v: Option<&'a str>,
    ) -> u64 {
        let Some(v) = v else { return 0 };
        *seen.entry(v).or_insert_with(|| {
            strings.push(v);
            strings.len() as u64
        })
    }
    let mut strings: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut refs: Vec<(u64, u64)> = Vec::with_capacity(events.len());
    for e in events {
        let ip = index(&mut strings, &mut seen, e.source_ip.as_deref());
        refs.push((ip, index(&mut strings, &mut seen, e.user_agent.as_deref())));
    }
    let mut out = Vec::with_capacity(8 + events.len() * 64);
    out.push(PACK_VERSION);
    put_varint(&mut out, strings.len() as u64);
    for s in &strings {
        put_str(&mut out, s);
    }
    put_varint(&mut out, events.len() as u64);
    let (mut id, mut request_id) = ("", "");
    for (e, (ip, ua)) in events.iter().zip(refs) {
        put_after(&mut out, id, &e.id);
        id = &e.id;
        let delta = e.time.wrapping_sub(base_time);
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        put_after(&mut out, request_id, &e.request_id);
        request_id = &e.request_id;
        put_varint(&mut out, ip);
        put_varint(&mut out, ua);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A string written by `put_after` following `prev`.
    fn after(&mut self, prev: &str) -> Option<String> {
        let head = usize::try_from(self.varint()?).ok()?;
        let tail = usize::try_from(self.varint()?).ok()?;
        if head.checked_add(tail)? > prev.len() {
            return None;
        }
        let (head, tail) = (prev.get(..head)?, prev.get(prev.len() - tail..)?);
        let middle = self.str()?;
        let mut s = String::with_capacity(head.len() + middle.len() + tail.len());
        s.push_str(head);
        s.push_str(middle);
        s.push_str(tail);
        Some(s)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }
}

/// The events of a pack: `head` carries the shared fields (its own id, time, request id, source
/// and user agent are ignored). `None` if the bytes are not a pack this version wrote.
pub fn decode_pack(head: &AuditEvent, base_time: i64, bytes: &[u8]) -> Option<Vec<AuditEvent>> {
    let mut r = Reader(bytes);
    if r.byte()? != PACK_VERSION {
        return None;
    }
    let n_strings = usize::try_from(r.varint()?).ok()?;
    if n_strings > bytes.len() {
        return None;
    }
    let mut strings = Vec::with_capacity(n_strings);
    for _ in 0..n_strings {
        strings.push(r.str()?);
    }
    let n = usize::try_from(r.varint()?).ok()?;
    // every event takes at least nine bytes: a count larger than that is not ours
    if n > bytes.len() / 9 {
        return None;
    }
    let pick = |i: u64| -> Option<Option<String>> {
        match i {
            0 => Some(None),
            i => strings
                .get(usize::try_from(i - 1).ok()?)
                .map(|s| Some((*s).to_owned())),
        }
    };
    let mut out: Vec<AuditEvent> = Vec::with_capacity(n);
    for _ in 0..n {
        let (prev_id, prev_request) = out
            .last()
            .map_or(("", ""), |e| (e.id.as_str(), e.request_id.as_str()));
        let id = r.after(prev_id)?;
        let z = r.varint()?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let request_id = r.after(prev_request)?;
        let source_ip = pick(r.varint()?)?;
        let user_agent = pick(r.varint()?)?;
        out.push(AuditEvent {
            id,
            time: base_time.wrapping_add(delta),
            request_id,
            source_ip,
            user_agent,
            ..head.clone()
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(out)
}

/// The chain link of a packed row after `prev_hash`: the shared fields, the time range and the
/// pack's bytes, under a tag no single event's link starts with.
pub fn pack_hash(prev_hash: &str, head: &AuditEvent, time_last: i64, pack: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut field = |s: Option<&[u8]>| match s {
        None => h.update(b"-"),
        Some(v) => {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
    };
    field(Some(prev_hash.as_bytes()));
    field(Some(b"pack/1"));
    field(Some(head.id.as_bytes()));
    field(Some(&head.time.to_be_bytes()));
    field(Some(&time_last.to_be_bytes()));
    field(Some(head.event_type.as_bytes()));
    field(head.account_id.as_deref().map(str::as_bytes));
    field(head.credential_id.as_deref().map(str::as_bytes));
    field(Some(head.outcome.as_bytes()));
    field(head.reason.as_deref().map(str::as_bytes));
    field(Some(pack));
    hex(&h.finalize())
}

fn hex(d: &[u8]) -> String {
    let mut out = String::with_capacity(d.len() * 2);
    for b in d {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> AuditEvent {
        AuditEvent {
            id: "evt_1".into(),
            time: 1,
            request_id: "req_1".into(),
            event_type: types::AUTH_FAILED.into(),
            account_id: None,
            credential_id: Some("key_1".into()),
            source_ip: Some("127.0.0.1".into()),
            user_agent: None,
            outcome: outcomes::FAILURE.into(),
            reason: Some("revoked credential".into()),
        }
    }

    #[test]
    fn any_field_change_changes_the_link() {
        let base = chain_hash(GENESIS_HASH, &ev());
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(GENESIS_HASH, &ev()));
        let mut e = ev();
        e.reason = Some("revoked credentia".into());
        assert_ne!(base, chain_hash(GENESIS_HASH, &e));
        let mut e = ev();
        e.account_id = Some(String::new());
        assert_ne!(
            base,
            chain_hash(GENESIS_HASH, &e),
            "empty differs from absent"
        );
        assert_ne!(base, chain_hash(&base, &ev()), "the previous link is bound");
    }

    fn ok(i: i64, ip: Option<&str>, ua: Option<&str>) -> AuditEvent {
        AuditEvent {
            id: format!("evt_{:09x}{:010x}aB3xYz", 1_000 + i / 3, 7_000 + i * 3),
            time: 1_000 + i / 3 - 2,
            request_id: format!("req_aB3xYz{:010x}", 90 + i * 7),
            event_type: types::AUTH_SUCCEEDED.into(),
            account_id: Some("acct_1".into()),
            credential_id: Some("key_1".into()),
            source_ip: ip.map(str::to_owned),
            user_agent: ua.map(str::to_owned),
            outcome: outcomes::SUCCESS.into(),
            reason: Some("api_key".into()),
        }
    }

    #[test]
    fn a_pack_gives_back_its_events() {
        let events: Vec<AuditEvent> = (0..50)
            .map(|i| {
                ok(
                    i,
                    (i % 4 != 0).then_some(if i % 2 == 0 { "10.0.0.1" } else { "::1" }),
                    (i % 5 != 0).then_some("curl/8 ünïcode"),
                )
            })
            .collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        let bytes = encode_pack(&refs, 999);
        assert!(bytes.len() < 50 * 20, "{} bytes", bytes.len());
        let back = decode_pack(&events[7], 999, &bytes).expect("decodes");
        assert_eq!(back, events);
    }

    #[test]
    fn shared_prefixes_and_suffixes_respect_characters() {
        let ids = [
            "é", "è", "aéb", "aèb", "aèb", "", "x", "éé", "éè", "ab", "abab", "b",
        ];
        let events: Vec<AuditEvent> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| AuditEvent {
                id: (*id).to_owned(),
                request_id: ids[ids.len() - 1 - i].to_owned(),
                ..ok(i as i64, None, None)
            })
            .collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        let bytes = encode_pack(&refs, 0);
        assert_eq!(decode_pack(&events[0], 0, &bytes), Some(events));
    }

    #[test]
    fn a_damaged_pack_is_refused_not_misread() {
        let events: Vec<AuditEvent> = (0..5).map(|i| ok(i, Some("10.0.0.1"), None)).collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        let bytes = encode_pack(&refs, 1_000);
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_pack(&events[0], 1_000, &bytes[..cut]),
                None,
                "cut {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_pack(&events[0], 1_000, &longer), None);
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(decode_pack(&events[0], 1_000, &version), None);
        // arbitrary bytes never panic
        for seed in 0..2_000u32 {
            let junk: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i) & 0xff) as u8)
                .collect();
            let _ = decode_pack(&events[0], 0, &junk);
        }
    }

    #[test]
    fn a_pack_link_binds_every_byte_and_shared_field() {
        let events: Vec<AuditEvent> = (0..3).map(|i| ok(i, Some("10.0.0.1"), None)).collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        let bytes = encode_pack(&refs, 1_000);
        let base = pack_hash(GENESIS_HASH, &events[0], 1_001, &bytes);
        assert_eq!(base, pack_hash(GENESIS_HASH, &events[0], 1_001, &bytes));
        assert_ne!(base, pack_hash(GENESIS_HASH, &events[0], 1_002, &bytes));
        let mut flipped = bytes.clone();
        flipped[3] ^= 1;
        assert_ne!(base, pack_hash(GENESIS_HASH, &events[0], 1_001, &flipped));
        let mut other = events[0].clone();
        other.credential_id = Some("key_2".into());
        assert_ne!(base, pack_hash(GENESIS_HASH, &other, 1_001, &bytes));
        assert_ne!(base, chain_hash(GENESIS_HASH, &events[0]));
    }
}
