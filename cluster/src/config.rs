//! `[cluster]`: cluster mode on NATS JetStream. Unset `nats_url` means no cluster mode: one
//! collector, which refuses to start next to another live one on the same database.

use std::path::PathBuf;
use std::time::Duration;

use llmscope_model::Secret;
use serde::{Deserialize, Serialize};

/// Default prefix of every stream, subject, consumer and bucket name.
pub const DEFAULT_PREFIX: &str = "llmscope";
/// Default number of partitions of the log.
pub const DEFAULT_PARTITIONS: u16 = 64;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated, e.g. `nats://nats:4222` (also `--nats-url`,
    /// `LLMSCOPE_NATS_URL`). Set: cluster mode, required for more than one replica.
    pub nats_url: Option<String>,
    /// Prefix of every stream, subject, consumer and KV bucket name (also `--nats-prefix`,
    /// `LLMSCOPE_NATS_PREFIX`), so several installations share one NATS. Letters, digits,
    /// `-` and `_`.
    pub nats_prefix: String,
    /// Partitions of the log: a model on a host belongs to one, whose owner judges it. Fixed
    /// for a prefix (a replica configured otherwise refuses to start).
    pub partitions: u16,
    /// Replicas of the stream and buckets in a NATS cluster; 0: automatic (3 when the server
    /// is part of a cluster, 1 on a single server).
    pub stream_replicas: usize,
    /// Most bytes the log holds before ingest is refused (backpressure instead of loss); items
    /// leave it once stored and judged. JetStream reserves this much of its file storage when
    /// the stream is created (default 1 GiB: about 7 million samples waiting).
    pub log_max_bytes: i64,
    /// A replica that stops renewing its leases loses its partitions after this long.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// This replica's name in leases and `/api/v1/cluster`; default: host name + a random
    /// suffix (new at every start).
    pub replica_id: Option<String>,
    /// How long the start waits for NATS before giving up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// NATS credentials file (`.creds`: JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// NATS user (with `password`).
    pub user: Option<String>,
    /// NATS password (prefer `LLMSCOPE_CLUSTER_PASSWORD`).
    pub password: Option<Secret>,
    /// NATS token (prefer `LLMSCOPE_CLUSTER_TOKEN`).
    pub token: Option<Secret>,
    /// CA bundle (PEM) that the NATS server's certificate must chain to.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS servers that require one (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Refuse a NATS connection without TLS.
    pub require_tls: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: None,
            nats_prefix: DEFAULT_PREFIX.into(),
            partitions: DEFAULT_PARTITIONS,
            stream_replicas: 0,
            log_max_bytes: 1024 * 1024 * 1024,
            lease_ttl: Duration::from_secs(6),
            replica_id: None,
            connect_timeout: Duration::from_secs(30),
            credentials_file: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
        }
    }
}

/// What is wrong with `[cluster]`; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`cluster.{key}`: {message}")]
pub struct ClusterConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> Result<(), ClusterConfigError> {
    Err(ClusterConfigError {
        key,
        message: message.into(),
    })
}

/// Whether `s` is a usable name part: 1..=32 of letters, digits, `-` and `_`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterConfig {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        self.nats_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }

    /// The server URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nats_url
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        if !valid_name(&self.nats_prefix) {
            return err(
                "nats_prefix",
                format!(
                    "`{}` is not usable: 1 to 32 letters, digits, `-` or `_` (it starts every stream, subject and bucket name)",
                    self.nats_prefix
                ),
            );
        }
        for u in self.urls() {
            let rest = u
                .strip_prefix("nats://")
                .or_else(|| u.strip_prefix("tls://"))
                .unwrap_or(&u);
            let host_port = rest.rsplit('@').next().unwrap_or(rest);
            let ok = !host_port.is_empty()
                && !host_port.contains('/')
                && host_port
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return err(
                    "nats_url",
                    format!(
                        "`{}` is not a NATS server address; use nats://HOST:PORT (tls://… for TLS), several separated by commas",
                        redact(&u)
                    ),
                );
            }
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return err(
                "partitions",
                format!("must be from 1 to 1024, got {}", self.partitions),
            );
        }
        if self.stream_replicas > 5 {
            return err(
                "stream_replicas",
                format!(
                    "must be 0 (automatic) or 1 to 5 (JetStream's limit), got {}",
                    self.stream_replicas
                ),
            );
        }
        if self.log_max_bytes < 1024 * 1024 {
            return err("log_max_bytes", "must be at least 1 MiB (1048576)");
        }
        if self.lease_ttl < Duration::from_secs(2) || self.lease_ttl > Duration::from_secs(300) {
            return err(
                "lease_ttl",
                format!(
                    "must be from 2s to 5m, got {}",
                    humantime::format_duration(self.lease_ttl)
                ),
            );
        }
        if let Some(id) = &self.replica_id
            && !valid_name(id)
        {
            return err(
                "replica_id",
                format!("`{id}` is not usable: 1 to 32 letters, digits, `-` or `_`"),
            );
        }
        if self.connect_timeout.is_zero() {
            return err("connect_timeout", "must be more than 0s");
        }
        if self.user.is_some() != self.password.is_some() {
            return err(
                if self.user.is_some() {
                    "password"
                } else {
                    "user"
                },
                "`cluster.user` and `cluster.password` must be set together",
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return err(
                if self.tls_cert.is_some() {
                    "tls_key"
                } else {
                    "tls_cert"
                },
                "`cluster.tls_cert` and `cluster.tls_key` must be set together",
            );
        }
        for (key, path) in [
            ("credentials_file", &self.credentials_file),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return err(key, format!("{} is not a readable file", p.display()));
            }
        }
        Ok(())
    }
}

/// `url` without a password or token in it, for logs and errors.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ClusterConfig)) -> Result<(), ClusterConfigError> {
        let mut c = ClusterConfig {
            nats_url: Some("nats://127.0.0.1:4222".into()),
            ..ClusterConfig::default()
        };
        f(&mut c);
        c.validate()
    }

    #[test]
    fn defaults_are_valid_and_off() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        assert!(c.validate().is_ok());
        assert!(with(|_| {}).is_ok());
        assert!(
            with(|c| c.nats_url = Some("nats://a:4222, tls://user:pw@b:4223,c".into())).is_ok()
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = with(|c| c.nats_prefix = "a.b".into()).unwrap_err();
        assert_eq!(e.key, "nats_prefix");
        assert!(e.to_string().starts_with("`cluster.nats_prefix`"), "{e}");
        let e = with(|c| c.nats_url = Some("nats://u:secret@host:99999".into())).unwrap_err();
        assert_eq!(e.key, "nats_url");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(with(|c| c.partitions = 0).unwrap_err().key, "partitions");
        assert_eq!(
            with(|c| c.lease_ttl = Duration::from_secs(1))
                .unwrap_err()
                .key,
            "lease_ttl"
        );
        assert_eq!(
            with(|c| c.user = Some("u".into())).unwrap_err().key,
            "password"
        );
        assert_eq!(
            with(|c| c.tls_ca = Some("/no/such/ca.pem".into()))
                .unwrap_err()
                .key,
            "tls_ca"
        );
        assert_eq!(
            with(|c| c.replica_id = Some("has space".into()))
                .unwrap_err()
                .key,
            "replica_id"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("nats://u:pw@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("tok@h:4222"), "***@h:4222");
        assert_eq!(redact("nats://h:4222"), "nats://h:4222");
    }
}
