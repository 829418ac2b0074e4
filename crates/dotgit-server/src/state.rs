//! Shared server state and its background tasks: the invalidation poller (changes made by other
//! nodes or the CLI reach this node's cache within `invalidation_poll_ms`), the batched
//! `last_used_at` writer (class C: never a write per request; `crate::usage`) and limiter
//! pruning.

use crate::audit::{Auditor, Metrics};
use crate::cache::VerifyCache;
use crate::config::Config;
use crate::limiter::Limiter;
use crate::net::Cidr;
use crate::usage::Uses;
use dotgit_core::Clock;
use dotgit_store::Store;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// Shared state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// What the state holds.
#[derive(Debug)]
pub struct Inner {
    /// Storage.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
    /// Parsed `trusted_proxies`.
    pub trusted: Vec<Cidr>,
    /// Verification cache.
    pub cache: VerifyCache,
    /// Rate limits.
    pub limiter: Limiter,
    /// API keys' last uses, written behind.
    pub usage: Uses<String>,
    /// Last uses of API keys' granted scopes: (credential, granted scope) → last use.
    pub scope_usage: Uses<(String, String)>,
    /// Public base URL.
    pub public_url: String,
    /// The `aud` customer JWTs must carry.
    pub audience: String,
    /// The audit queue.
    pub auditor: Auditor,
    /// Prometheus counters.
    pub metrics: Metrics,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state and the receiving end of its audit queue (for
    /// [`crate::audit::spawn_writer`]).
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> (Self, tokio::sync::mpsc::Receiver<dotgit_core::audit::Entry>) {
        let trusted = config
            .trusted_proxies
            .iter()
            .filter_map(|c| Cidr::parse(c))
            .collect();
        let limiter = Limiter::new(
            config.auth_failure_limit,
            config.auth_failure_window_seconds,
        );
        let public_url = config.public_url();
        let audience = config.audience();
        let (auditor, audit_rx) = Auditor::new();
        let cache = VerifyCache::new(config.verification_cache_capacity);
        let state = AppState(Arc::new(Inner {
            store,
            clock,
            config,
            trusted,
            cache,
            limiter,
            usage: Uses::default(),
            scope_usage: Uses::default(),
            public_url,
            audience,
            auditor,
            metrics: Metrics::default(),
        }));
        (state, audit_rx)
    }

    /// Current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Notes that credential `id` was used at `now` (written behind).
    pub fn note_use(&self, id: &str, now: i64) {
        self.usage.note(id, now, || id.to_owned());
    }

    /// Notes that credential `id` used its granted `scope` now (written behind).
    pub fn note_scope_use(&self, id: &str, scope: String) {
        let key = (id.to_owned(), scope);
        self.scope_usage.note(&key, self.now(), || key.clone());
    }

    /// A last-use time of credential `id` not written yet.
    pub fn pending_use(&self, id: &str) -> Option<i64> {
        self.usage.pending(id)
    }

    /// Writes every pending last-use time (of credentials and of their scopes), as when the
    /// server stops.
    pub async fn flush_usage(&self) {
        self.write_usage(true).await;
    }

    /// Writes the last-use times that are due (`crate::usage`): the background task's flush.
    pub async fn flush_due_usage(&self) {
        self.write_usage(false).await;
    }

    async fn write_usage(&self, all: bool) {
        let now = self.now();
        let store = &self.store;
        let scopes = self
            .scope_usage
            .write_due(now, all, "scope usage", |chunk| {
                let rows: Vec<(String, String, i64)> = chunk
                    .iter()
                    .map(|((c, s), t)| (c.clone(), s.clone(), *t))
                    .collect();
                async move { store.touch_scope_usage(rows).await }
            })
            .await;
        let keys = self
            .usage
            .write_due(now, all, "last-used times", |chunk| {
                let rows = chunk.to_vec();
                async move { store.touch_api_keys(rows).await }
            })
            .await;
        // the times went to the activity file with the audit writer's unsynced commits: on
        // disk now, not at the writer's next pause, which may be long after traffic stops (a
        // flush that wrote nothing leaves the writer's syncs to their own schedule)
        if scopes || keys {
            if let Err(err) = store.sync_audit().await {
                tracing::error!(error = %err, "syncing the last-used times to disk failed");
            }
        }
    }

    /// After a local revocation, rotation or suspension: drop cached verifications now.
    pub fn invalidate_local(&self) {
        self.cache.invalidate_all();
    }

    /// After a change by another process or node (or when such changes cannot be seen): the
    /// request path's held snapshots first (ADR 0023), so that a lookup that refills the cleared
    /// cache reads the change, then the cached verifications.
    pub fn changed_elsewhere(&self) {
        self.store.note_change_elsewhere();
        self.cache.invalidate_all();
    }
}

/// Starts the background tasks; they stop when `shutdown` fires.
pub fn spawn_background(
    state: AppState,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seq = state.store.invalidation_head().await.unwrap_or(0);
        let poll = Duration::from_millis(state.config.invalidation_poll_ms.max(10));
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush_every =
            tokio::time::interval(Duration::from_secs(crate::usage::FLUSH_SECONDS));
        flush_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match state.store.invalidations_since(seq).await {
                        Ok(rows) if !rows.is_empty() => {
                            seq = rows.iter().map(|r| r.seq).max().unwrap_or(seq);
                            state.changed_elsewhere();
                        }
                        Ok(_) => {}
                        Err(e) => {
                            // cannot see changes from elsewhere: stop trusting the cache
                            state.changed_elsewhere();
                            tracing::warn!(error = %e, "invalidation poll failed");
                        }
                    }
                }
                _ = flush_every.tick() => {
                    state.flush_due_usage().await;
                    state.limiter.prune(state.now());
                    record_expiries(&state).await;
                    crate::oauth::purge_ended(&state).await;
                }
                _ = shutdown.changed() => {
                    state.flush_usage().await;
                    break;
                }
            }
        }
    })
}

/// Records in the audit log every API key that reached its expiry since the last sweep.
pub async fn record_expiries(state: &AppState) {
    use dotgit_core::audit::{outcomes, types};
    let now = state.now();
    let actor = crate::audit::Actor::internal();
    let result = state
        .store
        .record_expired_api_keys(now, |k| {
            actor.event(
                now,
                types::API_KEY_EXPIRED,
                Some(&k.account_id),
                Some(&k.id),
                outcomes::SUCCESS,
                Some(if k.replaced_by.is_some() {
                    "rotation grace period ended".to_owned()
                } else {
                    "expiry reached".to_owned()
                }),
            )
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record key expiries");
    }
}
