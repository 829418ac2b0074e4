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

/// Text an event holds that is often fixed (a type, an outcome, a reason): a `&'static str`
/// there costs no allocation on the request path.
pub type Text = std::borrow::Cow<'static, str>;

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
    pub event_type: Text,
    /// The account concerned.
    pub account_id: Option<String>,
    /// The credential concerned (id only).
    pub credential_id: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// One of [`outcomes`].
    pub outcome: Text,
    /// The detailed reason (never a secret).
    pub reason: Option<Text>,
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

/// The two per-request types are stored packed: successful authentications (the audit writer's
/// batches) and refresh-token rotations (the refresh writer's). The events of one type and
/// account that one batch holds (with no other kind of event between them) share every field but
/// `id`, `time`, `request_id`, `source_ip`, `user_agent` and, when several of the account's
/// credentials are in the batch, `credential_id` (and [`same_pack`] also asks for one outcome and
/// reason); they become one row whose `pack` column holds those fields of each event
/// (docs/audit.md, "Packed events"). Every other event is a row of its own.
pub fn packable(e: &impl EventFields) -> bool {
    matches!(
        e.event_type(),
        types::AUTH_SUCCEEDED | types::OAUTH_TOKEN_REFRESHED
    )
}

/// Whether two packable events share every field a pack stores once. Their credentials may
/// differ: a pack of one credential stores it once, in its row; a pack of several stores each
/// event's (format 2).
pub fn same_pack(a: &impl EventFields, b: &impl EventFields) -> bool {
    a.event_type() == b.event_type()
        && a.account_id() == b.account_id()
        && a.outcome() == b.outcome()
        && a.reason() == b.reason()
}

/// Whether the events of a pack share one credential (or all have none), which its row's column
/// then holds; otherwise the pack holds each event's (format 2) and the column is empty.
pub fn one_credential<E: EventFields>(events: &[&E]) -> bool {
    events.split_first().is_none_or(|(first, rest)| {
        rest.iter()
            .all(|e| e.credential_id() == first.credential_id())
    })
}

/// Read access to an event's fields, whether it is a whole [`AuditEvent`] or an [`Entry`] as
/// the request path queued it (a compact [`Success`] renders its id and source address only
/// when asked).
pub trait EventFields {
    /// The event as a whole; borrowed when it already is one.
    fn event(&self) -> std::borrow::Cow<'_, AuditEvent>;
    /// `event_type`.
    fn event_type(&self) -> &str;
    /// `time`.
    fn time(&self) -> i64;
    /// `request_id`.
    fn request_id(&self) -> &str;
    /// `account_id`.
    fn account_id(&self) -> Option<&str>;
    /// `credential_id`.
    fn credential_id(&self) -> Option<&str>;
    /// `user_agent`.
    fn user_agent(&self) -> Option<&str>;
    /// `outcome`.
    fn outcome(&self) -> &str;
    /// `reason`.
    fn reason(&self) -> Option<&str>;
    /// Replaces `out` with the event's id.
    fn write_id(&self, out: &mut String);
    /// Replaces `out` with the source address; `false` (and `out` empty) when there is none.
    fn write_source_ip(&self, out: &mut String) -> bool;
}

impl EventFields for AuditEvent {
    fn event(&self) -> std::borrow::Cow<'_, AuditEvent> {
        std::borrow::Cow::Borrowed(self)
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn time(&self) -> i64 {
        self.time
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }
    fn credential_id(&self) -> Option<&str> {
        self.credential_id.as_deref()
    }
    fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    fn outcome(&self) -> &str {
        &self.outcome
    }
    fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    fn write_id(&self, out: &mut String) {
        out.clear();
        out.push_str(&self.id);
    }
    fn write_source_ip(&self, out: &mut String) -> bool {
        out.clear();
        match &self.source_ip {
            Some(ip) => {
                out.push_str(ip);
                true
            }
            None => false,
        }
    }
}

/// A request id: ASCII, at most [`RequestId::MAX`] bytes, kept inline so copying it allocates
/// nothing (the request path copies it into its response header, its audit context and its
/// events).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::MAX],
}

impl RequestId {
    /// Longest request id.
    pub const MAX: usize = 22;
    /// The command line's.
    pub const CLI: RequestId = RequestId::fixed("cli");
    /// Background work's.
    pub const INTERNAL: RequestId = RequestId::fixed("internal");
    /// Outside any request.
    pub const NONE: RequestId = RequestId::fixed("-");

    /// `s` as a request id; `None` unless it is printable ASCII of at most [`RequestId::MAX`]
    /// bytes.
    pub fn new(s: &str) -> Option<RequestId> {
        if s.len() > Self::MAX || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0u8; Self::MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(RequestId {
            len: s.len() as u8,
            bytes,
        })
    }

    /// A generated id: `N` base62 characters (or any printable ASCII), no check needed at run
    /// time beyond the length, which the type fixes.
    pub fn from_ascii<const N: usize>(bytes: [u8; N]) -> RequestId {
        const { assert!(N <= RequestId::MAX, "request id too long") };
        let mut out = [b'-'; Self::MAX];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = if b.is_ascii_graphic() { b } else { b'-' };
        }
        RequestId {
            len: N as u8,
            bytes: out,
        }
    }

    /// A fixed id, checked at compile time when used in a constant ([`RequestId::CLI`]…).
    pub const fn fixed(s: &'static str) -> RequestId {
        let b = s.as_bytes();
        assert!(b.len() <= Self::MAX, "request id too long");
        let mut bytes = [0u8; Self::MAX];
        let mut i = 0;
        while i < b.len() {
            assert!(b[i].is_ascii_graphic(), "request id not printable ASCII");
            bytes[i] = b[i];
            i += 1;
        }
        RequestId {
            len: b.len() as u8,
            bytes,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // only printable ASCII is ever stored
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("-")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RequestId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Who a successful authentication was for: one per verified credential, shared by all its
/// successes (the server's verification cache entry), so queuing a success copies a pointer.
pub trait Subject: std::fmt::Debug + Send + Sync {
    /// The account.
    fn account_id(&self) -> &str;
    /// The credential (id only).
    fn credential_id(&self) -> &str;
    /// The reason its successes record: the credential's kind.
    fn kind(&self) -> &'static str;
}

/// An `auth.succeeded` event as the request path queues it: fixed-size fields and shared
/// pointers, nothing allocated. What it renders to ([`EventFields::event`]) is exactly the
/// event it stands for; the writer packs it without rendering more than its id and address.
#[derive(Debug, Clone)]
pub struct Success {
    /// The id's per-process sequence number.
    pub seq: u64,
    /// The id's per-process tag.
    pub tag: &'static str,
    /// Unix seconds, UTC.
    pub time: i64,
    /// The request.
    pub request_id: RequestId,
    /// Source address.
    pub ip: Option<std::net::IpAddr>,
    /// User agent.
    pub user_agent: Option<std::sync::Arc<str>>,
    /// The credential and its account.
    pub subject: std::sync::Arc<dyn Subject>,
}

/// An event id: `evt_`, the time (at least 9 hex digits), the per-process sequence number (at
/// least 10), the per-process tag — so ids of one process sort in sequence order, and two
/// processes never collide.
pub fn write_event_id(out: &mut String, time: i64, seq: u64, tag: &str) {
    out.clear();
    out.reserve(4 + 9 + 10 + tag.len());
    out.push_str("evt_");
    push_hex(out, time.max(0) as u64, 9);
    push_hex(out, seq, 10);
    out.push_str(tag);
}

/// Appends `v` in lowercase hex, zero-padded to at least `width` digits (what `{:0width$x}`
/// writes, without the formatting machinery: one of these per request).
fn push_hex(out: &mut String, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - v.leading_zeros() as usize / 4).max(1);
    for _ in digits..width {
        out.push('0');
    }
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// An address as text (what `Display` writes), IPv4 without the formatting machinery.
pub fn write_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
        }
        std::net::IpAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

/// [`write_ip`] into a new string.
pub fn ip_string(ip: std::net::IpAddr) -> String {
    let mut s = String::with_capacity(15);
    write_ip(&mut s, ip);
    s
}

impl EventFields for Success {
    fn event(&self) -> std::borrow::Cow<'_, AuditEvent> {
        let mut id = String::new();
        self.write_id(&mut id);
        std::borrow::Cow::Owned(AuditEvent {
            id,
            time: self.time,
            request_id: self.request_id.as_str().to_owned(),
            event_type: types::AUTH_SUCCEEDED.into(),
            account_id: Some(self.subject.account_id().to_owned()),
            credential_id: Some(self.subject.credential_id().to_owned()),
            source_ip: self.ip.map(ip_string),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            outcome: outcomes::SUCCESS.into(),
            reason: Some(self.subject.kind().into()),
        })
    }
    fn event_type(&self) -> &str {
        types::AUTH_SUCCEEDED
    }
    fn time(&self) -> i64 {
        self.time
    }
    fn request_id(&self) -> &str {
        self.request_id.as_str()
    }
    fn account_id(&self) -> Option<&str> {
        Some(self.subject.account_id())
    }
    fn credential_id(&self) -> Option<&str> {
        Some(self.subject.credential_id())
    }
    fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    fn outcome(&self) -> &str {
        outcomes::SUCCESS
    }
    fn reason(&self) -> Option<&str> {
        Some(self.subject.kind())
    }
    fn write_id(&self, out: &mut String) {
        write_event_id(out, self.time, self.seq, self.tag);
    }
    fn write_source_ip(&self, out: &mut String) -> bool {
        out.clear();
        match self.ip {
            Some(ip) => {
                write_ip(out, ip);
                true
            }
            None => false,
        }
    }
}

/// What the audit queue carries: a whole event, or a success in compact form.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Any event.
    Event(Box<AuditEvent>),
    /// A successful authentication.
    Success(Success),
}

impl From<AuditEvent> for Entry {
    fn from(e: AuditEvent) -> Entry {
        Entry::Event(Box::new(e))
    }
}

macro_rules! either {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            Entry::Event($e) => {
                let $e: &AuditEvent = $e;
                $body
            }
            Entry::Success($e) => $body,
        }
    };
}

impl EventFields for Entry {
    fn event(&self) -> std::borrow::Cow<'_, AuditEvent> {
        either!(self, e => e.event())
    }
    fn event_type(&self) -> &str {
        either!(self, e => e.event_type())
    }
    fn time(&self) -> i64 {
        either!(self, e => e.time())
    }
    fn request_id(&self) -> &str {
        either!(self, e => e.request_id())
    }
    fn account_id(&self) -> Option<&str> {
        either!(self, e => e.account_id())
    }
    fn credential_id(&self) -> Option<&str> {
        either!(self, e => e.credential_id())
    }
    fn user_agent(&self) -> Option<&str> {
        either!(self, e => e.user_agent())
    }
    fn outcome(&self) -> &str {
        either!(self, e => e.outcome())
    }
    fn reason(&self) -> Option<&str> {
        either!(self, e => e.reason())
    }
    fn write_id(&self, out: &mut String) {
        either!(self, e => e.write_id(out))
    }
    fn write_source_ip(&self, out: &mut String) -> bool {
        either!(self, e => e.write_source_ip(out))
    }
}

/// Format 1: the events share their row's credential. Format 2: each event also names its own
/// credential (an index into the pack's string table) and the row's credential is empty.
const PACK_VERSION: u8 = 1;
const PACK_VERSION_CREDENTIALS: u8 = 2;

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
/// times relative to `base_time`. Source addresses, user agents and credentials are stored once
/// per pack. When the events do not all share one credential ([`one_credential`]), the pack is
/// format 2 and names each event's credential.
pub fn encode_pack<E: EventFields>(events: &[&E], base_time: i64) -> Vec<u8> {
    use std::borrow::Cow;
    /// The string table shared by addresses, user agents and credentials (index 0 is "none").
    #[derive(Default)]
    struct Table<'a> {
        strings: Vec<Cow<'a, str>>,
        seen: foldhash::HashMap<Cow<'a, str>, u64>,
    }
    impl<'a> Table<'a> {
        /// `v`'s index; `last` is the field's previous value and index: consecutive events
        /// mostly repeat it, so it is compared before the table is hashed.
        fn index(
            &mut self,
            last: &mut Option<(Cow<'a, str>, u64)>,
            v: Option<Cow<'a, str>>,
        ) -> u64 {
            let Some(v) = v else { return 0 };
            if let Some((l, i)) = last {
                if *l == v {
                    return *i;
                }
            }
            let i = match self.seen.get(&*v) {
                Some(&i) => i,
                None => {
                    self.strings.push(v.clone());
                    let i = self.strings.len() as u64;
                    self.seen.insert(v.clone(), i);
                    i
                }
            };
            *last = Some((v, i));
            i
        }
    }
    let mut table = Table::default();
    let (mut last_ip, mut last_ua, mut last_credential) = (None, None, None);
    let mut refs: Vec<(u64, u64, u64)> = Vec::with_capacity(events.len());
    let per_event_credential = !one_credential(events);
    let mut ip_text = String::new();
    for e in events {
        let ip = if e.write_source_ip(&mut ip_text) {
            // rendered into the scratch buffer: owned only when the table keeps it
            match &last_ip {
                Some((l, i)) if *l == ip_text.as_str() => *i,
                _ => table.index(&mut last_ip, Some(Cow::Owned(ip_text.clone()))),
            }
        } else {
            0
        };
        let ua = table.index(&mut last_ua, e.user_agent().map(Cow::Borrowed));
        let credential = if per_event_credential {
            table.index(&mut last_credential, e.credential_id().map(Cow::Borrowed))
        } else {
            0
        };
        refs.push((ip, ua, credential));
    }
    let strings = table.strings;
    let mut out = Vec::with_capacity(8 + events.len() * 64);
    out.push(if per_event_credential {
        PACK_VERSION_CREDENTIALS
    } else {
        PACK_VERSION
    });
    put_varint(&mut out, strings.len() as u64);
    for s in &strings {
        put_str(&mut out, s);
    }
    put_varint(&mut out, events.len() as u64);
    let (mut id, mut prev_id) = (String::new(), String::new());
    let mut request_id = "";
    for (e, (ip, ua, credential)) in events.iter().zip(refs) {
        e.write_id(&mut id);
        put_after(&mut out, &prev_id, &id);
        std::mem::swap(&mut id, &mut prev_id);
        let delta = e.time().wrapping_sub(base_time);
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        put_after(&mut out, request_id, e.request_id());
        request_id = e.request_id();
        put_varint(&mut out, ip);
        put_varint(&mut out, ua);
        if per_event_credential {
            put_varint(&mut out, credential);
        }
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
/// and user agent are ignored; its credential is every event's in format 1 and must be empty in
/// format 2). `None` if the bytes are not a pack this version wrote.
pub fn decode_pack(head: &AuditEvent, base_time: i64, bytes: &[u8]) -> Option<Vec<AuditEvent>> {
    let mut r = Reader(bytes);
    let per_event_credential = match r.byte()? {
        PACK_VERSION => false,
        PACK_VERSION_CREDENTIALS if head.credential_id.is_none() => true,
        _ => return None,
    };
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
        let credential_id = if per_event_credential {
            pick(r.varint()?)?
        } else {
            head.credential_id.clone()
        };
        out.push(AuditEvent {
            id,
            time: base_time.wrapping_add(delta),
            request_id,
            source_ip,
            user_agent,
            credential_id,
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
    fn a_pack_of_several_credentials_names_each_events() {
        let events: Vec<AuditEvent> = (0..30)
            .map(|i| AuditEvent {
                credential_id: match i % 5 {
                    0 | 1 => Some("key_1".into()),
                    2 => Some("key_22".into()),
                    3 => None,
                    _ => Some("10.0.0.1".into()),
                },
                ..ok(i, (i % 2 == 0).then_some("10.0.0.1"), Some("curl/8"))
            })
            .collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        assert!(!one_credential(&refs));
        let bytes = encode_pack(&refs, 999);
        assert_eq!(bytes[0], 2, "format 2");
        let head = AuditEvent {
            credential_id: None,
            ..events[0].clone()
        };
        assert_eq!(decode_pack(&head, 999, &bytes).unwrap(), events);
        // a format-2 pack under a row that claims one credential is not ours
        assert_eq!(decode_pack(&events[0], 999, &bytes), None);
        // a pack of one credential stays format 1, its bytes as before
        let one: Vec<&AuditEvent> = refs
            .iter()
            .copied()
            .filter(|e| e.credential_id.as_deref() == Some("key_1"))
            .collect();
        assert!(one_credential(&one));
        assert_eq!(encode_pack(&one, 999)[0], 1);
        // truncated: refused, not invented
        assert_eq!(decode_pack(&head, 999, &bytes[..bytes.len() - 1]), None);
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
    fn ids_and_addresses_render_as_the_formatting_machinery_would() {
        for (v, width) in [
            (0u64, 9),
            (0x6a1b_2c3d, 9),
            (u64::MAX, 9),
            (5, 10),
            (1 << 40, 10),
        ] {
            let mut s = String::from("junk");
            push_hex(&mut s, v, width);
            assert_eq!(s, format!("junk{v:0width$x}"));
        }
        let mut id = String::from("old");
        write_event_id(&mut id, 1_790_000_000, 42, "aB3xYz");
        assert_eq!(id, format!("evt_{:09x}{:010x}aB3xYz", 1_790_000_000, 42));
        write_event_id(&mut id, -5, 0, "t");
        assert_eq!(id, "evt_0000000000000000000t");
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.255.9",
            "255.255.255.255",
            "::1",
            "2001:db8::5",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            write_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn request_ids_hold_short_printable_ascii_only() {
        let id = RequestId::new("req_0123456789abcdef").unwrap();
        assert_eq!(id.as_str(), "req_0123456789abcdef");
        assert_eq!(
            format!("{id} {id:?}"),
            "req_0123456789abcdef \"req_0123456789abcdef\""
        );
        assert_eq!(RequestId::CLI.as_str(), "cli");
        assert_eq!(RequestId::from_ascii(*b"req_abc").as_str(), "req_abc");
        assert_eq!(RequestId::from_ascii(*b"a b\n").as_str(), "a-b-");
        assert!(RequestId::new(&"x".repeat(RequestId::MAX)).is_some());
        assert!(RequestId::new(&"x".repeat(RequestId::MAX + 1)).is_none());
        assert!(RequestId::new("a b").is_none());
        assert!(RequestId::new("é").is_none());
        assert!(RequestId::new("a\nb").is_none());
    }

    #[derive(Debug)]
    struct Key(&'static str);
    impl Subject for Key {
        fn account_id(&self) -> &str {
            "acct_1"
        }
        fn credential_id(&self) -> &str {
            self.0
        }
        fn kind(&self) -> &'static str {
            "api_key"
        }
    }

    #[test]
    fn compact_successes_pack_exactly_as_the_events_they_stand_for() {
        let key: std::sync::Arc<dyn Subject> = std::sync::Arc::new(Key("key_1"));
        let entries: Vec<Entry> = (0..40u64)
            .map(|i| {
                Entry::Success(Success {
                    seq: 7_000 + i * 3,
                    tag: "aB3xYz",
                    time: 1_000 + (i as i64) / 3,
                    request_id: RequestId::new(&format!("req_{:016x}", i * 7919)).unwrap(),
                    ip: (i % 4 != 0).then(|| {
                        if i % 2 == 0 {
                            "10.0.0.1"
                        } else {
                            "2001:db8::1"
                        }
                        .parse()
                        .unwrap()
                    }),
                    user_agent: (i % 5 != 0).then(|| std::sync::Arc::from("curl/8 ünïcode")),
                    subject: key.clone(),
                })
            })
            .collect();
        let events: Vec<AuditEvent> = entries.iter().map(|e| e.event().into_owned()).collect();
        assert!(events
            .iter()
            .all(|e| packable(e) && same_pack(e, &events[0])));
        assert!(entries.iter().all(|e| same_pack(e, &events[0])));
        assert_eq!(
            events[3].id,
            format!("evt_{:09x}{:010x}aB3xYz", 1_001, 7_009)
        );
        assert_eq!(events[3].reason.as_deref(), Some("api_key"));
        let compact = encode_pack(&entries.iter().collect::<Vec<_>>(), 990);
        let whole = encode_pack(&events.iter().collect::<Vec<_>>(), 990);
        assert_eq!(
            compact, whole,
            "the stored bytes do not depend on the queued form"
        );
        assert_eq!(decode_pack(&events[0], 990, &compact).unwrap(), events);
        // another credential of the account shares the pack, which then names each event's
        let other = Entry::Success(Success {
            subject: std::sync::Arc::new(Key("key_2")),
            ..match &entries[0] {
                Entry::Success(s) => s.clone(),
                Entry::Event(_) => unreachable!(),
            }
        });
        assert!(same_pack(&other, &entries[0]));
        assert!(same_pack(&Entry::from(events[1].clone()), &entries[2]));
        let mixed: Vec<&Entry> = entries.iter().chain([&other]).collect();
        assert!(!one_credential(&mixed));
        let bytes = encode_pack(&mixed, 990);
        assert_eq!(bytes[0], 2);
        let head = AuditEvent {
            credential_id: None,
            ..events[0].clone()
        };
        let back = decode_pack(&head, 990, &bytes).unwrap();
        let want: Vec<AuditEvent> = mixed.iter().map(|e| e.event().into_owned()).collect();
        assert_eq!(back, want);
        assert_eq!(back[40].credential_id.as_deref(), Some("key_2"));
    }

    /// Events whose pack bytes were produced by the encoder as it stood before compact
    /// successes (commit 789e69f): addresses and user agents that repeat apart and equal each
    /// other, none, IPv6, unicode, a short request id, times before the base.
    fn golden_events() -> Vec<AuditEvent> {
        let ips = [
            Some("203.0.113.7"),
            Some("2001:db8::1"),
            None,
            Some("203.0.113.7"),
            Some("10.0.0.1"),
            Some("curl/8.5.0"),
        ];
        let uas = [
            Some("curl/8.5.0"),
            Some("203.0.113.7"),
            None,
            Some("ünïcode/1 ✓"),
            Some("curl/8.5.0"),
            Some("10.0.0.1"),
        ];
        (0..12i64)
            .map(|i| AuditEvent {
                id: format!("evt_{:09x}{:010x}aB3xYz", 1_790_000_000 + i / 4, 77 + i * 5),
                time: 1_790_000_000 + i / 4 - (i % 3),
                request_id: if i == 5 {
                    "cli".to_owned()
                } else {
                    format!("req_{:016x}", (i as u64) * 0x9e37_79b9)
                },
                event_type: types::AUTH_SUCCEEDED.into(),
                account_id: Some("acct_1".into()),
                credential_id: Some("key_1".into()),
                source_ip: ips[(i as usize) % ips.len()].map(str::to_owned),
                user_agent: uas[(i as usize * 7) % uas.len()].map(str::to_owned),
                outcome: outcomes::SUCCESS.into(),
                reason: Some("api_key".into()),
            })
            .collect()
    }

    const GOLDEN_PACK: &str = concat!(
        "01050b3230332e302e3131332e370a6375726c2f382e352e300b323030313a6462383a3a310fc3bc6ec3af63",
        "6f64652f3120e29c930831302e302e302e310c00001d6576745f303661623133623830303030303030303034",
        "6461423378597a040000147265715f3030303030303030303030303030303001021506023532020c00083965",
        "333737396239030116060137000b0009313363366566333732000016060163040c0008646161363664326201",
        "040c060b3130303030303030303631040b000932373864646536653405021606013602000003636c69020516",
        "060162060000147265715f3030303030303033623534636461353601021506023730040b0009343533383435",
        "34306603010c060b3230303030303030303735040c00086631626263646338000016060161080b0009353866",
        "663334373831010416060166060b000936326532616331336105021506023834040c00086363363233616633",
        "0205",
    );

    #[test]
    fn the_pack_format_is_unchanged() {
        let events = golden_events();
        let bytes = encode_pack(&events.iter().collect::<Vec<_>>(), 1_789_999_998);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_PACK);
        assert_eq!(
            decode_pack(&events[0], 1_789_999_998, &bytes).unwrap(),
            events
        );
        // the same events queued compactly (those whose source is an address) pack alike
        let key: std::sync::Arc<dyn Subject> = std::sync::Arc::new(Key("key_1"));
        let (compact, whole): (Vec<Entry>, Vec<&AuditEvent>) = events
            .iter()
            .filter_map(|e| {
                let ip = match e.source_ip.as_deref() {
                    Some(s) => Some(s.parse().ok()?),
                    None => None,
                };
                let (time, seq) = (e.time, u64::from_str_radix(&e.id[13..23], 16).ok()?);
                let s = Success {
                    seq,
                    tag: "aB3xYz",
                    time,
                    request_id: RequestId::new(&e.request_id)?,
                    ip,
                    user_agent: e.user_agent.as_deref().map(std::sync::Arc::from),
                    subject: key.clone(),
                };
                Some((Entry::Success(s), e))
            })
            .unzip();
        assert_eq!(compact.len(), 10);
        let rendered: Vec<AuditEvent> = compact.iter().map(|e| e.event().into_owned()).collect();
        // ids carry the event's own time, as the writer's ids do
        for (r, w) in rendered.iter().zip(&whole) {
            assert_eq!(r.id[..4], w.id[..4]);
            assert_eq!(r.source_ip, w.source_ip);
            assert_eq!(r.user_agent, w.user_agent);
            assert_eq!(r.request_id, w.request_id);
        }
        assert_eq!(
            encode_pack(&compact.iter().collect::<Vec<_>>(), 1_789_999_998),
            encode_pack(&rendered.iter().collect::<Vec<_>>(), 1_789_999_998)
        );
    }

    #[test]
    fn every_ipv4_address_renders_as_display_does() {
        let mut s = String::new();
        for a in 0..=255u8 {
            for b in [0u8, 1, 9, 10, 99, 100, 199, 200, 255] {
                let ip = std::net::IpAddr::from([a, b, 255 - a, a / 3]);
                s.clear();
                write_ip(&mut s, ip);
                assert_eq!(s, ip.to_string());
            }
        }
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
