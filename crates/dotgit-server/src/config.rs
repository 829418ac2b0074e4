//! Settings (SPEC §6): every setting is a TOML key in `--config FILE` and an environment variable
//! `DOTGIT_<KEY>`; command-line flags win over the environment, which wins over the file.
//! Unknown keys are refused so a typo never silently falls back to a default.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, TLS certificate and secrets live.
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Optional plain-HTTP listener that answers 403 `https_required`.
    pub http_listen: Option<SocketAddr>,
    /// The public base URL (default `https://<listen>`); the default JWT audience and OAuth issuer.
    pub public_url: Option<String>,
    /// The `aud` customer JWTs must carry (default: the public URL).
    pub audience: Option<String>,
    /// TLS certificate chain (PEM); default: a self-signed one made in the data dir.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Failed authentications per source per window before 429.
    pub auth_failure_limit: u32,
    /// Length of the failed-authentication window.
    pub auth_failure_window_seconds: u64,
    /// Requests per credential per hour.
    pub request_budget_per_hour: u32,
    /// Override for credentials of free-plan accounts.
    pub request_budget_per_hour_free: Option<u32>,
    /// Override for credentials of pro-plan accounts.
    pub request_budget_per_hour_pro: Option<u32>,
    /// Override for credentials of enterprise-plan accounts.
    pub request_budget_per_hour_enterprise: Option<u32>,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// How often the server polls for changes made by other nodes or the CLI (milliseconds).
    pub invalidation_poll_ms: u64,
    /// Record every successful authentication in the audit log (failures are always recorded).
    pub audit_auth_success: bool,
    /// Verified credentials (API keys, OAuth tokens, repeated JWTs) kept in memory; 0 turns the
    /// cache off so every request verifies from scratch (for measuring that path).
    pub verification_cache_capacity: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("dotgit-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            http_listen: None,
            public_url: None,
            audience: None,
            tls_cert: None,
            tls_key: None,
            auth_failure_limit: 20,
            auth_failure_window_seconds: 300,
            request_budget_per_hour: 5000,
            request_budget_per_hour_free: None,
            request_budget_per_hour_pro: None,
            request_budget_per_hour_enterprise: None,
            trusted_proxies: Vec::new(),
            invalidation_poll_ms: 250,
            audit_auth_success: true,
            verification_cache_capacity: 100_000,
        }
    }
}

/// Keys a deployment may set, for the environment overlay.
pub const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "http_listen",
    "public_url",
    "audience",
    "tls_cert",
    "tls_key",
    "auth_failure_limit",
    "auth_failure_window_seconds",
    "request_budget_per_hour",
    "request_budget_per_hour_free",
    "request_budget_per_hour_pro",
    "request_budget_per_hour_enterprise",
    "trusted_proxies",
    "invalidation_poll_ms",
    "audit_auth_success",
    "verification_cache_capacity",
];

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The settings are not valid.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads settings: defaults, then `file`, then `DOTGIT_*` from `env`, then `flags`
    /// (key/value pairs from the command line).
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        }
        for (k, v) in env {
            let Some(key) = k.strip_prefix("DOTGIT_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if KEYS.contains(&key.as_str()) {
                table.insert(key, scalar(&v, key_is_list(&k)));
            }
        }
        for (k, v) in flags {
            table.insert((*k).to_owned(), scalar(v, false));
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.auth_failure_limit == 0 {
            return Err(ConfigError::Invalid(
                "auth_failure_limit must be at least 1".into(),
            ));
        }
        if self.auth_failure_window_seconds == 0 {
            return Err(ConfigError::Invalid(
                "auth_failure_window_seconds must be at least 1".into(),
            ));
        }
        for (name, v) in [
            (
                "request_budget_per_hour",
                Some(self.request_budget_per_hour),
            ),
            (
                "request_budget_per_hour_free",
                self.request_budget_per_hour_free,
            ),
            (
                "request_budget_per_hour_pro",
                self.request_budget_per_hour_pro,
            ),
            (
                "request_budget_per_hour_enterprise",
                self.request_budget_per_hour_enterprise,
            ),
        ] {
            if v == Some(0) {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        for p in &self.trusted_proxies {
            crate::net::Cidr::parse(p).ok_or_else(|| {
                ConfigError::Invalid(format!("trusted_proxies: `{p}` is not a CIDR"))
            })?;
        }
        if let Some(u) = &self.public_url {
            if !u.starts_with("https://") {
                return Err(ConfigError::Invalid(
                    "public_url must start with https://".into(),
                ));
            }
        }
        Ok(())
    }

    /// The hourly request budget of a credential of an account on `plan`.
    pub fn budget_for(&self, plan: dotgit_core::Plan) -> u32 {
        let o = match plan {
            dotgit_core::Plan::Free => self.request_budget_per_hour_free,
            dotgit_core::Plan::Pro => self.request_budget_per_hour_pro,
            dotgit_core::Plan::Enterprise => self.request_budget_per_hour_enterprise,
        };
        o.unwrap_or(self.request_budget_per_hour)
    }

    /// The audience customer JWTs must name.
    pub fn audience(&self) -> String {
        self.audience.clone().unwrap_or_else(|| self.public_url())
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("https://{}", self.listen),
        }
    }
}

fn key_is_list(env_key: &str) -> bool {
    env_key == "DOTGIT_TRUSTED_PROXIES"
}

/// An environment or flag value as TOML: integers stay integers, lists split on commas.
fn scalar(v: &str, list: bool) -> toml::Value {
    if list {
        return toml::Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        );
    }
    match (v.parse::<i64>(), v) {
        (Ok(i), _) => toml::Value::Integer(i),
        (_, "true") => toml::Value::Boolean(true),
        (_, "false") => toml::Value::Boolean(false),
        _ => toml::Value::String(v.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flags_over_env_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "auth_failure_limit = 5\nrequest_budget_per_hour = 10\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = vec![
            ("DOTGIT_REQUEST_BUDGET_PER_HOUR".to_owned(), "20".to_owned()),
            (
                "DOTGIT_TRUSTED_PROXIES".to_owned(),
                "10.0.0.0/8, ::1/128".to_owned(),
            ),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let cfg = Config::load(
            Some(&f),
            env.into_iter(),
            &[("listen", "127.0.0.1:2".to_owned())],
        )
        .unwrap();
        assert_eq!(cfg.auth_failure_limit, 5);
        assert_eq!(cfg.request_budget_per_hour, 20);
        assert_eq!(cfg.listen.port(), 2);
        assert_eq!(cfg.trusted_proxies, vec!["10.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "auth_failure_limt = 5\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty(), &[]).is_err());
        let bad = vec![("DOTGIT_TRUSTED_PROXIES".to_owned(), "nonsense".to_owned())];
        assert!(Config::load(None, bad.into_iter(), &[]).is_err());
    }
}
