//! Auditing (SPEC §4 "Audit"; issue "Audit trail and anomaly detection").
//!
//! Two paths, by durability class. Lifecycle and security-critical events (class A/B) are built
//! by the caller and committed by the store in the same transaction as the change they record.
//! Per-request events (authentication decisions, scope denials, rate-limit trips) go through a
//! bounded queue to one batching writer: a full queue makes the request wait (backpressure),
//! it never drops an event. What can be lost on a crash is what sits in the queue, uncommitted:
//! at most one batch in flight plus the queue (`AUDIT_QUEUE_CAPACITY` events), typically a few
//! milliseconds of traffic.
//!
//! The writer also runs the anomaly rules over what it writes (docs/audit.md), so detection costs
//! the request path nothing.

use crate::state::AppState;
use dotgit_core::audit::{
    outcomes, types, AuditEvent, Entry, EventFields, RequestId, Subject, Success, Text,
};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events the queue holds before requests wait.
pub const AUDIT_QUEUE_CAPACITY: usize = 8192;
/// Largest batch written in one transaction.
const BATCH: usize = 4096;
/// After the first event of a batch arrives, how long the writer lets more gather before it
/// commits: one transaction (one WAL sync) per few milliseconds of traffic instead of per event.
/// Part of the documented loss window.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);
/// A credential unused this long is dormant.
pub const DORMANT_SECONDS: i64 = 30 * 86_400;
/// Failed attempts against one account's credentials that make a burst…
pub const BURST_FAILURES: u32 = 10;
/// …within this window.
pub const BURST_WINDOW_SECONDS: i64 = 300;

/// Who did something, and from where: the context every event carries.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Request id (`cli` for the command line, `internal` for background work).
    pub request_id: RequestId,
    /// Source address.
    pub ip: Option<IpAddr>,
    /// User agent (truncated).
    pub user_agent: Option<Arc<str>>,
    /// The credential acting, if any (shown in reasons of lifecycle events).
    pub credential_id: Option<String>,
}

impl Actor {
    /// The command line on the server's machine.
    pub fn cli() -> Actor {
        Actor {
            request_id: RequestId::CLI,
            ip: None,
            user_agent: Some(Arc::from(format!(
                "dotgit-cli/{}",
                env!("CARGO_PKG_VERSION")
            ))),
            credential_id: None,
        }
    }

    /// The server itself (background work).
    pub fn internal() -> Actor {
        Actor {
            request_id: RequestId::INTERNAL,
            ip: None,
            user_agent: None,
            credential_id: None,
        }
    }

    /// An event by this actor. Fails only if the CSPRNG does.
    pub fn event(
        &self,
        now: i64,
        event_type: &'static str,
        account_id: Option<&str>,
        credential_id: Option<&str>,
        outcome: &'static str,
        reason: Option<impl Into<Text>>,
    ) -> AuditEvent {
        AuditEvent {
            id: event_id(now),
            time: now,
            request_id: self.request_id.as_str().to_owned(),
            event_type: event_type.into(),
            account_id: account_id.map(str::to_owned),
            credential_id: credential_id.map(str::to_owned),
            source_ip: self.ip.map(dotgit_core::audit::ip_string),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            outcome: outcome.into(),
            reason: reason.map(Into::into),
        }
    }

    /// A successful authentication of `subject`, in the compact form the queue carries.
    pub fn success(&self, now: i64, subject: Arc<dyn Subject>) -> Success {
        Success {
            seq: next_event_seq(),
            tag: process_tag(),
            time: now,
            request_id: self.request_id,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            subject,
        }
    }

    /// The event builder the OAuth store operations call inside their transactions.
    pub fn oauth_audit(
        &self,
        now: i64,
    ) -> impl Fn(&'static str, &str, &str, String) -> AuditEvent + Send + Sync + '_ {
        move |t, account, credential, reason| self.oauth_event(now, t, account, credential, reason)
    }

    /// [`Actor::oauth_audit`] owning its actor, for work that outlives the request (the refresh
    /// writer).
    pub fn into_oauth_audit(
        self,
        now: i64,
    ) -> impl Fn(&'static str, &str, &str, String) -> AuditEvent + Send + Sync + 'static {
        move |t, account, credential, reason| self.oauth_event(now, t, account, credential, reason)
    }

    fn oauth_event(
        &self,
        now: i64,
        t: &'static str,
        account: &str,
        credential: &str,
        reason: String,
    ) -> AuditEvent {
        self.event(
            now,
            t,
            Some(account),
            (!credential.is_empty()).then_some(credential),
            dotgit_core::audit::outcome_of(t),
            Some(reason),
        )
    }

    /// " by <credential>" for reasons, when a credential acted.
    pub fn by(&self) -> String {
        match &self.credential_id {
            Some(c) => format!(" by {c}"),
            None if self.request_id == "cli" => " by the command line".to_owned(),
            None => String::new(),
        }
    }
}

/// The next per-process event sequence number (ids: [`dotgit_core::audit::write_event_id`]).
fn next_event_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A new event id: time and a per-process sequence first, so ids arrive in sequence order, then
/// six random characters drawn once per process, so two processes never collide.
fn event_id(now: i64) -> String {
    let mut id = String::new();
    dotgit_core::audit::write_event_id(&mut id, now, next_event_seq(), process_tag());
    id
}

/// A new request id: 16 base62 characters from a per-thread xorshift generator seeded once from
/// the CSPRNG. Request ids label, they protect nothing, so a CSPRNG call per request (`RDRAND`,
/// ~1 % of the CPU) is not needed; unlike a counter, they do not reveal the server's traffic.
pub fn request_id() -> RequestId {
    thread_local! {
        static STATE: std::cell::Cell<(u64, u64)> = std::cell::Cell::new(seed());
    }
    fn seed() -> (u64, u64) {
        let mut b = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            // never in practice; uniqueness still holds per thread and process
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(1);
            b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
        }
        let v = u128::from_le_bytes(b);
        ((v as u64) | 1, ((v >> 64) as u64) | 1)
    }
    // xorshift128+
    let v = STATE.with(|s| {
        let (mut a, b) = s.get();
        let out = a.wrapping_add(b);
        a ^= a << 23;
        a ^= a >> 17;
        a ^= b ^ (b >> 26);
        s.set((b, a));
        (out, a.wrapping_add(b))
    });
    // eight characters from each 64-bit half (62^8 < 2^64): a division of a u64 by the constant
    // 62 is a multiplication, where one of a u128 was a call (16 of them were ~1 % of a request)
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(b"req_");
    for (half, mut n) in id[4..].chunks_exact_mut(8).zip([v.0, v.1]) {
        for b in half {
            *b = dotgit_core::credential::BASE62[(n % 62) as usize];
            n /= 62;
        }
    }
    RequestId::from_ascii(id)
}

/// Six random characters drawn once per process.
fn process_tag() -> &'static str {
    static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROCESS.get_or_init(|| {
        let mut rnd = [0u8; 16];
        aws_lc_rs::rand::fill(&mut rnd)
            .ok()
            .and_then(|()| dotgit_core::credential::random_base62(&rnd, 6))
            .unwrap_or_else(|| format!("{:06x}", std::process::id() & 0xff_ffff))
    })
}

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Successful authentications by kind: api_key, oauth_access_token, jwt.
    pub auth_success: [AtomicU64; 5],
    /// Failed authentications by kind (index 4: unknown / malformed).
    pub auth_failure: [AtomicU64; 5],
    /// Suspended-account refusals.
    pub auth_suspended: AtomicU64,
    /// Rate-limit trips (source over the failure limit, credential over budget).
    pub rate_limit_trips: AtomicU64,
    /// Requests answered 429.
    pub rate_limited_responses: AtomicU64,
    /// Events written by the batching writer.
    pub audit_events_written: AtomicU64,
    /// Anomalies detected.
    pub anomalies: AtomicU64,
    /// Request latency histogram: counts per bucket (seconds, cumulative at render time).
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Requests measured.
    pub latency_count: AtomicU64,
    /// Sum of latencies, microseconds.
    pub latency_sum_us: AtomicU64,
}

/// Upper bounds of the latency histogram buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Index of a credential kind in the per-kind counters.
pub fn kind_index(kind: Option<dotgit_core::CredentialKind>) -> usize {
    use dotgit_core::CredentialKind::*;
    match kind {
        Some(ApiKey) => 0,
        Some(OAuthAccess) | Some(OAuthRefresh) => 1,
        Some(Jwt) => 2,
        Some(Mtls) => 3,
        None => 4,
    }
}

/// Kind names in the order of [`kind_index`].
pub const KIND_NAMES: [&str; 5] = ["api_key", "oauth_access_token", "jwt", "mtls", "unknown"];

impl Metrics {
    /// Records a request's latency.
    pub fn observe_latency(&self, secs: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, queue_depth: usize) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "# HELP dotgit_authentications_total Authentication decisions by credential kind and outcome.");
        let _ = writeln!(o, "# TYPE dotgit_authentications_total counter");
        for (i, k) in KIND_NAMES.iter().enumerate() {
            let _ = writeln!(
                o,
                "dotgit_authentications_total{{kind=\"{k}\",outcome=\"success\"}} {}",
                self.auth_success[i].load(Ordering::Relaxed)
            );
            let _ = writeln!(
                o,
                "dotgit_authentications_total{{kind=\"{k}\",outcome=\"failure\"}} {}",
                self.auth_failure[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "dotgit_authentications_total{{kind=\"any\",outcome=\"suspended\"}} {}",
            self.auth_suspended.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP dotgit_rate_limit_trips_total Sources or credentials that crossed a limit."
        );
        let _ = writeln!(o, "# TYPE dotgit_rate_limit_trips_total counter");
        let _ = writeln!(
            o,
            "dotgit_rate_limit_trips_total {}",
            self.rate_limit_trips.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP dotgit_rate_limited_responses_total Requests answered 429."
        );
        let _ = writeln!(o, "# TYPE dotgit_rate_limited_responses_total counter");
        let _ = writeln!(
            o,
            "dotgit_rate_limited_responses_total {}",
            self.rate_limited_responses.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP dotgit_audit_queue_depth Audit events waiting for the batching writer."
        );
        let _ = writeln!(o, "# TYPE dotgit_audit_queue_depth gauge");
        let _ = writeln!(o, "dotgit_audit_queue_depth {queue_depth}");
        let _ = writeln!(
            o,
            "# HELP dotgit_audit_events_written_total Events committed by the batching writer."
        );
        let _ = writeln!(o, "# TYPE dotgit_audit_events_written_total counter");
        let _ = writeln!(
            o,
            "dotgit_audit_events_written_total {}",
            self.audit_events_written.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP dotgit_store_writer_lock_waits_total Times the audit or refresh writer (or the start-up move of last-use times) found the write lock of the database or its activity file taken and waited for it."
        );
        let _ = writeln!(o, "# TYPE dotgit_store_writer_lock_waits_total counter");
        let _ = writeln!(
            o,
            "dotgit_store_writer_lock_waits_total {}",
            dotgit_store::writer_lock_waits()
        );
        let _ = writeln!(o, "# HELP dotgit_anomalies_total Anomalies detected.");
        let _ = writeln!(o, "# TYPE dotgit_anomalies_total counter");
        let _ = writeln!(
            o,
            "dotgit_anomalies_total {}",
            self.anomalies.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP dotgit_request_duration_seconds Time to answer a request."
        );
        let _ = writeln!(o, "# TYPE dotgit_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "dotgit_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "dotgit_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "dotgit_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "dotgit_request_duration_seconds_count {count}");
        o
    }
}

/// The sending side of the audit queue.
#[derive(Debug)]
pub struct Auditor {
    tx: mpsc::Sender<Entry>,
}

impl Auditor {
    /// A queue and its receiving end (for [`spawn_writer`]).
    pub fn new() -> (Auditor, mpsc::Receiver<Entry>) {
        let (tx, rx) = mpsc::channel(AUDIT_QUEUE_CAPACITY);
        (Auditor { tx }, rx)
    }

    /// Queues an event; waits while the queue is full (backpressure, never a drop).
    pub async fn record(&self, e: AuditEvent) {
        self.queue(Entry::from(e)).await;
    }

    /// Queues a successful authentication (compact: nothing is allocated for it); waits while
    /// the queue is full.
    pub async fn record_success(&self, s: Success) {
        self.queue(Entry::Success(s)).await;
    }

    async fn queue(&self, e: Entry) {
        // the common case without the wait's machinery; a full queue waits for room
        let e = match self.tx.try_send(e) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(e)) => e,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit writer is gone; event not recorded");
                return;
            }
        };
        if self.tx.send(e).await.is_err() {
            tracing::error!("audit writer is gone; event not recorded");
        }
    }

    /// Events waiting.
    pub fn depth(&self) -> usize {
        AUDIT_QUEUE_CAPACITY - self.tx.capacity()
    }
}

/// The network a source belongs to for the new-network rule: /24 for IPv4, /48 for IPv6.
pub fn network_of(ip: &str) -> Option<String> {
    match ip.parse::<IpAddr>().ok().map(dotgit_core::net::canonical)? {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

/// Credentials whose memory the detector keeps before it starts over (rebuilt from the
/// database as credentials show up again).
const DETECTOR_MEMORY: usize = 200_000;

/// The anomaly rules' memory (rebuilt from the database as needed after a restart).
#[derive(Debug, Default)]
struct Detector {
    /// Networks each credential has been used from (present = loaded from the database).
    networks: foldhash::HashMap<String, HashSet<String>>,
    last_seen: foldhash::HashMap<String, i64>,
    last_source: foldhash::HashMap<String, Option<IpAddr>>,
    bursts: foldhash::HashMap<String, (i64, u32, bool)>,
    /// Networks first seen in this batch: written in the batch's transaction.
    new_networks: Vec<(String, String, i64)>,
}

impl Detector {
    /// Loads, in two queries, what the database knows of the credentials in `events` that the
    /// detector has not seen yet (their networks and last use).
    async fn prepare(&mut self, state: &AppState, events: &[Entry]) {
        if self.networks.len() > DETECTOR_MEMORY {
            self.networks.clear();
            self.last_seen.clear();
            self.last_source.clear();
        }
        if self.bursts.len() > DETECTOR_MEMORY {
            self.bursts.clear();
        }
        let mut unknown: Vec<String> = events
            .iter()
            .filter(|e| e.event_type() == types::AUTH_SUCCEEDED)
            .filter_map(|e| e.credential_id())
            .filter(|c| !self.networks.contains_key(*c))
            .map(str::to_owned)
            .collect();
        if unknown.is_empty() {
            return;
        }
        unknown.sort_unstable();
        unknown.dedup();
        match state.store.credential_memory(&unknown).await {
            Ok(known) => {
                for cred in unknown {
                    let (nets, last_use) = known.get(&cred).cloned().unwrap_or_default();
                    if let Some(t) = last_use {
                        self.last_seen.entry(cred.clone()).or_insert(t);
                    }
                    self.networks.insert(cred, nets.into_iter().collect());
                }
            }
            // without the history the rules would misfire; they start from what is in memory
            Err(err) => tracing::warn!(error = %err, "could not load credential history"),
        }
    }

    /// Anomalies `e` reveals (appended after it in the same batch).
    fn inspect(&mut self, e: &Entry) -> Vec<AuditEvent> {
        // the common case: the same credential again, from the same address, recently — no
        // rule can fire, so nothing is rendered (a compact success), allocated or looked up
        // beyond two map probes
        if e.event_type() == types::AUTH_SUCCEEDED {
            if let Some(cred) = e.credential_id() {
                let source = match e {
                    Entry::Success(ok) => ok.ip,
                    Entry::Event(ev) => ev.source_ip.as_deref().and_then(|s| s.parse().ok()),
                };
                if let (Some(last), Some(ip)) =
                    (self.last_seen.get_mut(cred), self.last_source.get(cred))
                {
                    if *ip == source && e.time() - *last < DORMANT_SECONDS {
                        *last = e.time();
                        return Vec::new();
                    }
                }
            }
        }
        self.inspect_event(&e.event())
    }

    fn inspect_event(&mut self, e: &AuditEvent) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        let anomaly = |t: &'static str, reason: String| {
            let actor = Actor {
                request_id: RequestId::new(&e.request_id).unwrap_or(RequestId::NONE),
                ip: e.source_ip.as_deref().and_then(|s| s.parse().ok()),
                user_agent: e.user_agent.as_deref().map(Arc::from),
                credential_id: None,
            };
            actor.event(
                e.time,
                t,
                e.account_id.as_deref(),
                e.credential_id.as_deref(),
                outcomes::DETECTED,
                Some(reason),
            )
        };
        match &*e.event_type {
            types::AUTH_SUCCEEDED => {
                let Some(cred) = e.credential_id.as_deref() else {
                    return out;
                };
                // (the common case never gets here: `inspect` answered it)
                let source: Option<IpAddr> = e.source_ip.as_deref().and_then(|s| s.parse().ok());
                let cred = cred.to_owned();
                if let Some(net) = e.source_ip.as_deref().and_then(network_of) {
                    let known = self.networks.entry(cred.clone()).or_default();
                    if !known.contains(&net) {
                        if !known.is_empty() {
                            let mut list: Vec<&str> = known.iter().map(String::as_str).collect();
                            list.sort_unstable();
                            out.push(anomaly(
                                types::ANOMALY_NEW_NETWORK,
                                format!("first use from {net}; known: {}", list.join(", ")),
                            ));
                        }
                        known.insert(net.clone());
                        self.new_networks.push((cred.clone(), net, e.time));
                    }
                }
                if let Some(prev) = self.last_seen.get(&cred) {
                    if e.time - prev >= DORMANT_SECONDS {
                        out.push(anomaly(
                            types::ANOMALY_DORMANT_CREDENTIAL_ACTIVE,
                            format!("unused for {} days", (e.time - prev) / 86_400),
                        ));
                    }
                }
                self.last_source.insert(cred.clone(), source);
                self.last_seen.insert(cred, e.time);
            }
            types::AUTH_FAILED | types::LOGIN_FAILED => {
                let reason = e.reason.as_deref().unwrap_or("");
                if e.credential_id.is_some()
                    && (reason.contains("revoked") || reason.contains("expired"))
                {
                    out.push(anomaly(
                        types::ANOMALY_REVOKED_CREDENTIAL_USED,
                        format!("{reason}: the credential may have leaked"),
                    ));
                }
                if let Some(account) = &e.account_id {
                    let w = self
                        .bursts
                        .entry(account.clone())
                        .or_insert((e.time, 0, false));
                    if e.time - w.0 >= BURST_WINDOW_SECONDS {
                        *w = (e.time, 0, false);
                    }
                    w.1 += 1;
                    if w.1 >= BURST_FAILURES && !w.2 {
                        w.2 = true;
                        out.push(anomaly(
                            types::ANOMALY_FAILURE_BURST,
                            format!("{} failed attempts against this account's credentials within {BURST_WINDOW_SECONDS} s", w.1),
                        ));
                    }
                }
            }
            _ => {}
        }
        out
    }
}

/// Starts the batching writer. It drains the queue and exits when every sender is gone or
/// `shutdown` fires (after writing what was queued). When the queue stays empty for
/// `AUDIT_SYNC_INTERVAL` after a write, and before it exits, it syncs what it wrote to disk.
pub fn spawn_writer(
    state: AppState,
    mut rx: mpsc::Receiver<Entry>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut detector = Detector::default();
        let mut buf: Vec<Entry> = Vec::with_capacity(BATCH);
        let mut unsynced = false;
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut buf, BATCH) => n,
                _ = tokio::time::sleep(dotgit_store::AUDIT_SYNC_INTERVAL), if unsynced => {
                    sync(&state).await;
                    unsynced = false;
                    continue;
                }
                _ = shutdown.changed() => {
                    rx.close();
                    while rx.recv_many(&mut buf, BATCH).await > 0 {
                        write_batch(&state, &mut detector, &mut buf).await;
                    }
                    break;
                }
            };
            if n == 0 {
                break;
            }
            unsynced = true;
            if buf.len() < BATCH {
                // let the batch fill for a moment, then take what came (a shutdown meanwhile is
                // seen by the `select!` above on the next turn)
                tokio::time::sleep(GATHER).await;
                while buf.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => buf.push(e),
                        Err(_) => break,
                    }
                }
            }
            write_batch(&state, &mut detector, &mut buf).await;
        }
        sync(&state).await;
    })
}

async fn sync(state: &AppState) {
    if let Err(err) = state.store.sync_audit().await {
        tracing::error!(error = %err, "syncing the audit log to disk failed");
    }
}

async fn write_batch(state: &AppState, detector: &mut Detector, buf: &mut Vec<Entry>) {
    detector.prepare(state, buf).await;
    // anomalies go right after the event that revealed them; a batch without any (nearly every
    // batch) is written as it came, without moving its events again
    let mut found: Vec<(usize, AuditEvent)> = Vec::new();
    for (i, e) in buf.iter().enumerate() {
        found.extend(detector.inspect(e).into_iter().map(|a| (i + 1, a)));
    }
    let anomalies: Vec<AuditEvent> = found.iter().map(|(_, a)| a.clone()).collect();
    let batch = if found.is_empty() {
        std::mem::take(buf)
    } else {
        let mut batch = Vec::with_capacity(buf.len() + found.len());
        let mut found = found.into_iter().peekable();
        for (i, e) in buf.drain(..).enumerate() {
            batch.push(e);
            while let Some((_, a)) = found.next_if(|(at, _)| *at == i + 1) {
                batch.push(Entry::from(a));
            }
        }
        batch
    };
    let count = batch.len() as u64;
    let batch = Arc::new(batch);
    let networks = Arc::new(std::mem::take(&mut detector.new_networks));
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match state
            .store
            .append_audit_with_networks(batch.clone(), networks.clone())
            .await
        {
            Ok(()) => break,
            Err(err) => {
                // never drop: keep the batch and retry; requests wait on the full queue meanwhile
                tracing::error!(error = %err, events = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    // the written batch's vector becomes the next batch's buffer (the store has let go of it)
    if let Ok(mut spent) = Arc::try_unwrap(batch) {
        spent.clear();
        if spent.capacity() > buf.capacity() {
            *buf = spent;
        }
    }
    state
        .metrics
        .audit_events_written
        .fetch_add(count, Ordering::Relaxed);
    state
        .metrics
        .anomalies
        .fetch_add(anomalies.len() as u64, Ordering::Relaxed);
    for a in anomalies {
        auto_revoke(state, &a).await;
    }
}

/// If the account asked for it, revokes the API key an anomaly involves.
async fn auto_revoke(state: &AppState, anomaly: &AuditEvent) {
    let (Some(account), Some(cred)) = (&anomaly.account_id, &anomaly.credential_id) else {
        return;
    };
    if !cred.starts_with("key_") {
        return;
    }
    let Ok(Some(acct)) = state.store.account_by_id(account).await else {
        return;
    };
    if !acct.anomaly_auto_revoke {
        return;
    }
    let now = state.now();
    let event = Actor::internal().event(
        now,
        types::API_KEY_REVOKED,
        Some(account),
        Some(cred),
        outcomes::SUCCESS,
        Some(format!(
            "revoked automatically after {}",
            anomaly.event_type
        )),
    );
    match state.store.revoke_api_key(account, cred, now, &event).await {
        Ok(_) => state.invalidate_local(),
        Err(err) => tracing::error!(error = %err, "automatic revocation failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_reveal_no_count() {
        let ids: Vec<String> = (0..20_000)
            .map(|_| request_id().as_str().to_owned())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids[..100] {
            let body = id.strip_prefix("req_").expect("prefix");
            assert_eq!(body.len(), 16, "{id}");
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        // every position varies (each half of the generator's output feeds eight of them)
        for pos in 4..20 {
            let seen: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
            assert!(seen.len() > 50, "position {pos}: {} characters", seen.len());
        }
        // consecutive ids share no long prefix (a counter would)
        let shared = ids[0]
            .bytes()
            .zip(ids[1].bytes())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(shared < 12, "{} / {}", ids[0], ids[1]);
    }

    #[test]
    fn events_and_compact_successes_render_alike() {
        let id = event_id(1_790_000_000);
        assert!(
            id.starts_with(&format!("evt_{:09x}", 1_790_000_000)),
            "{id}"
        );
        assert_eq!(id.len(), 4 + 9 + 10 + process_tag().len());
        // a success queued compactly stands for exactly the event `Actor::event` would build
        let actor = Actor {
            request_id: request_id(),
            ip: Some("203.0.113.9".parse().unwrap()),
            user_agent: Some(Arc::from("curl/8.5.0")),
            credential_id: None,
        };
        #[derive(Debug)]
        struct Key;
        impl Subject for Key {
            fn account_id(&self) -> &str {
                "acct_1"
            }
            fn credential_id(&self) -> &str {
                "key_1"
            }
            fn kind(&self) -> &'static str {
                "api_key"
            }
        }
        let compact = actor.success(1_790_000_000, Arc::new(Key));
        let rendered = compact.event().into_owned();
        let mut built = actor.event(
            1_790_000_000,
            types::AUTH_SUCCEEDED,
            Some("acct_1"),
            Some("key_1"),
            outcomes::SUCCESS,
            Some("api_key"),
        );
        assert_ne!(built.id, rendered.id, "every event has its own id");
        built.id = rendered.id.clone();
        assert_eq!(built, rendered);
    }

    #[test]
    fn networks() {
        assert_eq!(
            network_of("203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("::ffff:203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("2001:db8:1:2::5").as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(network_of("nope"), None);
    }
}
