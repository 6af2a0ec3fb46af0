//! Collector configuration: TOML file, then `LLMSCOPE_…` environment variables, then flags
//! (later sources win).
//!
//! Every key of the file can also be set from the environment: top-level keys as
//! `LLMSCOPE_<KEY>` (`LLMSCOPE_DATABASE_URL`), keys of a section as
//! `LLMSCOPE_<SECTION>_<KEY>` (`LLMSCOPE_INGEST_MAX_ITEMS_PER_BATCH`). Unknown keys in the file
//! are errors that name the key and the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use llmscope_cluster::ClusterConfig;
pub use llmscope_live::{BaselinePolicy, SpcConfig};
pub use llmscope_model::Secret;
pub use llmscope_store::redact_url;

/// Default gRPC listen address.
pub const DEFAULT_GRPC_LISTEN: &str = "0.0.0.0:7070";
/// Default HTTP listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:8080";
/// Default OTLP/gRPC listen address of a loaded configuration.
pub const DEFAULT_OTLP_GRPC_LISTEN: &str = "0.0.0.0:4317";
/// Default OTLP/HTTP listen address of a loaded configuration.
pub const DEFAULT_OTLP_HTTP_LISTEN: &str = "0.0.0.0:4318";
/// Default database: embedded SQLite under `./llmscope-data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./llmscope-data/llmscope.db";

/// The SLOs, prices and budgets of a configuration file, checked.
pub type Plans = (
    Vec<llmscope_model::plan::Slo>,
    Vec<llmscope_model::plan::Price>,
    Vec<llmscope_model::plan::Budget>,
);

/// The whole collector configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the gRPC ingest server listens on.
    pub grpc_listen: SocketAddr,
    /// Address the HTTP server (health, API, dashboard) listens on.
    pub http_listen: SocketAddr,
    /// The OTLP/gRPC receiver's own address (OTLP is also served on `grpc_listen`), or `off`.
    /// A loaded configuration defaults to `0.0.0.0:4317`; `Config::default()` (embedding,
    /// tests) to `off`.
    #[serde(default = "default_otlp_grpc")]
    pub otlp_grpc_listen: String,
    /// The OTLP/HTTP receiver's own address (`/v1/traces` is also served on `http_listen`),
    /// or `off`. A loaded configuration defaults to `0.0.0.0:4318`; `Config::default()` to
    /// `off`.
    #[serde(default = "default_otlp_http")]
    pub otlp_http_listen: String,
    /// `sqlite://PATH` (embedded, one machine) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// Maximum database connections in the pool.
    pub database_max_connections: u32,
    /// Accept ingest without a token (any site). Logged as a warning at start.
    pub insecure_no_auth: bool,
    /// How long samples and telemetry are kept, e.g. `30d`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the retention job runs (plain tables only; TimescaleDB uses its policy).
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// How long the hourly and daily rollups, hourly usage and SLO minutes are kept, e.g.
    /// `400d` (independent of `retention`, so a year of trends outlives the raw samples).
    #[serde(with = "humantime_serde")]
    pub rollup_retention: Duration,
    /// Service level objectives (`[[slo]]`, read-only through the API).
    pub slo: Vec<llmscope_model::plan::Slo>,
    /// Prices per provider and model (`[[price]]`).
    pub price: Vec<llmscope_model::plan::Price>,
    /// Monthly budgets (`[[budget]]`).
    pub budget: Vec<llmscope_model::plan::Budget>,
    /// Ingest limits and group-commit tuning.
    pub ingest: IngestConfig,
    /// TLS for both listeners.
    pub tls: TlsConfig,
    /// The live SPC engine.
    pub spc: SpcConfig,
    /// Alert delivery.
    pub alerts: llmscope_alert::AlertsConfig,
    /// The REST API's read model.
    pub api: ApiConfig,
    /// An admin token for the REST API besides those made with `token create --admin`
    /// (prefer the `LLMSCOPE_ADMIN_TOKEN` environment variable; only its hash is kept).
    pub admin_token: Option<Secret>,
    /// Most series exported as `llmscope_series_*` gauges on `/metrics` (0: none); further
    /// series are counted in `llmscope_series_gauges_dropped_total`.
    pub metrics_series_cap: usize,
    /// Cluster mode on NATS JetStream (several replicas on one PostgreSQL).
    pub cluster: ClusterConfig,
    /// Who may read and change what: sign-in, sessions, the audit log, OpenID Connect.
    pub auth: crate::access::AuthConfig,
}

/// `[api]`: the read model behind the REST API and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// How often minute rollups and the series catalogue are brought up to date.
    #[serde(with = "humantime_serde")]
    pub rollup_interval: Duration,
    /// Samples are rolled up once they have been received this long (lets slow commits land).
    #[serde(with = "humantime_serde")]
    pub rollup_lag: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            rollup_interval: Duration::from_secs(5),
            rollup_lag: Duration::from_secs(5),
        }
    }
}

/// Ingest limits and group-commit tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Most items (samples + telemetry) one request may carry.
    pub max_items_per_batch: usize,
    /// Largest encoded request accepted, bytes.
    pub max_message_bytes: usize,
    /// How far in the future a timestamp may be (clock skew allowance).
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Batches waiting for a commit before producers are slowed down (backpressure).
    pub queue_capacity: usize,
    /// Most samples one commit coalesces.
    pub commit_max_rows: usize,
    /// Concurrent committing writers (PostgreSQL; SQLite always uses one).
    pub writers: usize,
    /// Unacked batches one stream may have in flight.
    pub stream_window: usize,
}

/// TLS certificate files (PEM). Setting `cert` and `key` turns TLS on for gRPC and HTTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Server certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// Server private key, PEM.
    pub key: Option<PathBuf>,
    /// CA bundle, PEM: when set, clients must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

fn default_otlp_grpc() -> String {
    DEFAULT_OTLP_GRPC_LISTEN.into()
}

fn default_otlp_http() -> String {
    DEFAULT_OTLP_HTTP_LISTEN.into()
}

/// `off` (or empty): `None`; else the address, or an error naming `key`.
fn listen_or_off(key: &str, v: &str) -> Result<Option<SocketAddr>, String> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("`{key}` must be an address like 0.0.0.0:4317 or `off`, got `{v}`"))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_listen: DEFAULT_GRPC_LISTEN.parse().expect("valid constant"),
            http_listen: DEFAULT_HTTP_LISTEN.parse().expect("valid constant"),
            otlp_grpc_listen: "off".into(),
            otlp_http_listen: "off".into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            database_max_connections: 8,
            insecure_no_auth: false,
            retention: Duration::from_secs(30 * 86_400),
            retention_interval: Duration::from_secs(3_600),
            rollup_retention: Duration::from_secs(400 * 86_400),
            slo: Vec::new(),
            price: Vec::new(),
            budget: Vec::new(),
            ingest: IngestConfig::default(),
            tls: TlsConfig::default(),
            spc: SpcConfig::default(),
            alerts: llmscope_alert::AlertsConfig::default(),
            api: ApiConfig::default(),
            admin_token: None,
            metrics_series_cap: crate::metrics::DEFAULT_SERIES_CAP,
            cluster: ClusterConfig::default(),
            auth: crate::access::AuthConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_items_per_batch: 10_000,
            max_message_bytes: 16 * 1024 * 1024,
            max_future_skew: Duration::from_secs(300),
            queue_capacity: 64,
            commit_max_rows: 20_000,
            writers: 2,
            stream_window: 16,
        }
    }
}

/// A configuration error; the message names the source and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid, or has unknown keys.
    #[error("config file {path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong (names the key and line).
        msg: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {msg}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        msg: String,
    },
    /// A combination of settings is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Sections whose keys map to `LLMSCOPE_<SECTION>_<KEY>`.
const SECTIONS: &[&str] = &["ingest", "tls", "spc", "alerts", "api", "cluster", "auth"];
/// Short names of `[cluster]` keys in the environment: `LLMSCOPE_NATS_URL` is
/// `LLMSCOPE_CLUSTER_NATS_URL` (the longer form wins when both are set).
const ALIASES: &[(&str, &str)] = &[
    ("LLMSCOPE_NATS_URL", "LLMSCOPE_CLUSTER_NATS_URL"),
    ("LLMSCOPE_NATS_PREFIX", "LLMSCOPE_CLUSTER_NATS_PREFIX"),
];
/// Environment variables with the prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "LLMSCOPE_CONFIG",
    "LLMSCOPE_LOG",
    // used by scripts/run-local.sh, not by the collector
    "LLMSCOPE_DATA",
];

/// Values given on the command line (flags), applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--grpc-listen`.
    pub grpc_listen: Option<SocketAddr>,
    /// `--http-listen`.
    pub http_listen: Option<SocketAddr>,
    /// `--otlp-grpc-listen` (`off` to disable).
    pub otlp_grpc_listen: Option<String>,
    /// `--otlp-http-listen` (`off` to disable).
    pub otlp_http_listen: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--insecure-no-auth`.
    pub insecure_no_auth: bool,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-client-ca`.
    pub tls_client_ca: Option<PathBuf>,
    /// `--nats-url`.
    pub nats_url: Option<String>,
    /// `--nats-prefix`.
    pub nats_prefix: Option<String>,
}

impl Config {
    /// Loads the file (if any), applies the environment (`vars`, usually `std::env::vars()`),
    /// then the flags, and validates the result.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let path_str = file.map(|p| p.display().to_string()).unwrap_or_default();
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: path_str.clone(),
                    source,
                })?;
                let value: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path_str.clone(),
                    msg: one_line(&e.to_string()),
                })?;
                // check the file on its own first, so unknown keys are blamed on the file
                Config::deserialize(toml::Value::Table(value.clone())).map_err(|e| {
                    ConfigError::File {
                        path: path_str.clone(),
                        msg: file_error(&text, &e.to_string()),
                    }
                })?;
                value
            }
            None => toml::Table::new(),
        };
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("LLMSCOPE_") && !NOT_CONFIG.contains(&k.as_str()))
            .filter(|(k, _)| !k.starts_with("LLMSCOPE_TEST_"))
            .collect();
        for (short, long) in ALIASES {
            let has_long = vars.iter().any(|(k, _)| k == long);
            if let Some(i) = vars.iter().position(|(k, _)| k == short) {
                if has_long {
                    vars.remove(i);
                } else {
                    vars[i].0 = (*long).to_owned();
                }
            }
        }
        vars.sort();
        for (var, raw) in vars {
            let key = var["LLMSCOPE_".len()..].to_ascii_lowercase();
            let (section, name) = match SECTIONS.iter().find(|s| key.starts_with(&format!("{s}_")))
            {
                Some(s) => (Some(*s), key[s.len() + 1..].to_owned()),
                None => (None, key.clone()),
            };
            let value = parse_env_value(&raw);
            let mut probe = toml::Table::new();
            match section {
                Some(s) => {
                    let mut inner = toml::Table::new();
                    inner.insert(name.clone(), value.clone());
                    probe.insert(s.to_owned(), toml::Value::Table(inner));
                }
                None => {
                    probe.insert(name.clone(), value.clone());
                }
            }
            if let Err(e) = Config::deserialize(toml::Value::Table(probe)) {
                let msg = e.message().to_owned();
                if msg.starts_with("unknown field") {
                    tracing::warn!(var = %var, "ignoring environment variable that is not a configuration key");
                    continue;
                }
                return Err(ConfigError::Env { var, msg });
            }
            match section {
                Some(s) => {
                    let entry = table
                        .entry(s.to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if let toml::Value::Table(t) = entry {
                        t.insert(name, value);
                    }
                }
                None => {
                    table.insert(name, value);
                }
            }
        }
        let mut cfg = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid(one_line(&e.to_string())))?;
        if let Some(v) = flags.grpc_listen {
            cfg.grpc_listen = v;
        }
        if let Some(v) = flags.http_listen {
            cfg.http_listen = v;
        }
        if let Some(v) = &flags.otlp_grpc_listen {
            cfg.otlp_grpc_listen = v.clone();
        }
        if let Some(v) = &flags.otlp_http_listen {
            cfg.otlp_http_listen = v.clone();
        }
        if let Some(v) = &flags.database_url {
            cfg.database_url = v.clone();
        }
        if flags.insecure_no_auth {
            cfg.insecure_no_auth = true;
        }
        if let Some(v) = &flags.tls_cert {
            cfg.tls.cert = Some(v.clone());
        }
        if let Some(v) = &flags.tls_key {
            cfg.tls.key = Some(v.clone());
        }
        if let Some(v) = &flags.tls_client_ca {
            cfg.tls.client_ca = Some(v.clone());
        }
        if let Some(v) = &flags.nats_url {
            cfg.cluster.nats_url = Some(v.clone());
        }
        if let Some(v) = &flags.nats_prefix {
            cfg.cluster.nats_prefix = v.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The OTLP/gRPC listener's address (`None`: off). Valid after [`Config::validate`].
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        listen_or_off("otlp_grpc_listen", &self.otlp_grpc_listen)
            .ok()
            .flatten()
    }

    /// The OTLP/HTTP listener's address (`None`: off). Valid after [`Config::validate`].
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        listen_or_off("otlp_http_listen", &self.otlp_http_listen)
            .ok()
            .flatten()
    }

    /// The `[[slo]]`, `[[price]]` and `[[budget]]` tables with their ids and origin set,
    /// checked; the error names the table entry and field (`slo[1].objective`).
    pub fn plans(&self) -> Result<Plans, String> {
        use llmscope_model::plan::{ORIGIN_CONFIG, stable_id};
        let at = |t: &str, i: usize, (f, m): (&str, String)| format!("`{t}[{i}].{f}` {m}");
        let mut slos = self.slo.clone();
        for (i, s) in slos.iter_mut().enumerate() {
            s.validate().map_err(|e| at("slo", i, e))?;
            s.id = stable_id("slo", &s.name);
            s.origin = ORIGIN_CONFIG.into();
        }
        let mut prices = self.price.clone();
        for (i, p) in prices.iter_mut().enumerate() {
            p.validate().map_err(|e| at("price", i, e))?;
            p.origin = ORIGIN_CONFIG.into();
        }
        let mut budgets = self.budget.clone();
        for (i, b) in budgets.iter_mut().enumerate() {
            b.validate().map_err(|e| at("budget", i, e))?;
            b.id = stable_id("budget", &b.name);
            b.origin = ORIGIN_CONFIG.into();
        }
        for (t, names) in [
            (
                "slo",
                slos.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ),
            ("budget", budgets.iter().map(|b| b.name.as_str()).collect()),
            (
                "price",
                prices.iter().map(|p| p.model.as_str()).collect::<Vec<_>>(),
            ),
        ] {
            for (i, n) in names.iter().enumerate() {
                let dup = if t == "price" {
                    prices[..i]
                        .iter()
                        .any(|p| p.model == *n && p.provider == prices[i].provider)
                } else {
                    names[..i].contains(n)
                };
                if dup {
                    return Err(format!("`{t}[{i}]` repeats an earlier entry (`{n}`)"));
                }
            }
        }
        Ok((slos, prices, budgets))
    }

    fn check_plans(&self) -> Result<(), String> {
        self.plans().map(|_| ())
    }

    /// Checks combinations and ranges; messages quote the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("otlp_grpc_listen", &self.otlp_grpc_listen),
            ("otlp_http_listen", &self.otlp_http_listen),
        ] {
            listen_or_off(key, v).map_err(ConfigError::Invalid)?;
        }
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad(format!(
                "`database_url` must start with sqlite:, postgres:// or postgresql://, got `{}`",
                redact_url(&self.database_url)
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("`tls.cert` and `tls.key` must be set together".into());
        }
        if self.tls.client_ca.is_some() && self.tls.cert.is_none() {
            return bad("`tls.client_ca` requires `tls.cert` and `tls.key` to be set".into());
        }
        if self.ingest.max_items_per_batch == 0 {
            return bad("`ingest.max_items_per_batch` must be at least 1".into());
        }
        if self.ingest.queue_capacity == 0
            || self.ingest.writers == 0
            || self.ingest.stream_window == 0
        {
            return bad("`ingest.queue_capacity`, `ingest.writers` and `ingest.stream_window` must be at least 1".into());
        }
        if self.ingest.max_message_bytes < 1024 {
            return bad("`ingest.max_message_bytes` must be at least 1024".into());
        }
        if self.retention < Duration::from_secs(3_600) {
            return bad("`retention` must be at least 1h".into());
        }
        if self.rollup_retention < Duration::from_secs(2 * 86_400) {
            return bad("`rollup_retention` must be at least 2d".into());
        }
        self.check_plans().map_err(ConfigError::Invalid)?;
        self.alerts
            .validate(llmscope_model::now_us())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.spc
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.database_max_connections == 0 {
            return bad("`database_max_connections` must be at least 1".into());
        }
        self.cluster
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.auth.validate().map_err(ConfigError::Invalid)?;
        if self.cluster.enabled() && self.database_url.starts_with("sqlite:") {
            return bad(format!(
                "`cluster.nats_url` is set but `database_url` is SQLite (`{}`): cluster mode runs replicas on one PostgreSQL database (postgres://…); SQLite serves one collector without NATS",
                redact_url(&self.database_url)
            ));
        }
        Ok(())
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    toml::Value::String(raw.to_owned())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Rewrites serde's "unknown field `x`, expected one of …" into a message naming the key and,
/// when it can be found, its line.
fn file_error(text: &str, msg: &str) -> String {
    let msg = one_line(msg);
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        let key = &rest[..end];
        let line = text
            .lines()
            .position(|l| {
                let t = l.trim_start();
                t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
            })
            .map(|i| format!(" (line {})", i + 1))
            .unwrap_or_default();
        return format!(
            "unknown key `{key}`{line}; {}",
            &rest[end + 1..].trim_start_matches(", ")
        );
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.grpc_listen.to_string(), "0.0.0.0:7070");
        assert_eq!(c.http_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        assert!(!c.insecure_no_auth);
        // the OTLP receivers' own listeners: on in a loaded configuration, off when embedded
        assert_eq!(
            c.otlp_grpc_addr().map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:4317")
        );
        assert_eq!(
            c.otlp_http_addr().map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:4318")
        );
        assert_eq!(Config::default().otlp_grpc_addr(), None);
        let off = Config::load(
            None,
            env(&[("LLMSCOPE_OTLP_GRPC_LISTEN", "off")]),
            &Overrides {
                otlp_http_listen: Some("127.0.0.1:0".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(off.otlp_grpc_addr(), None);
        assert_eq!(
            off.otlp_http_addr().map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:0")
        );
        let msg = Config::load(
            None,
            env(&[("LLMSCOPE_OTLP_HTTP_LISTEN", "everywhere")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("otlp_http_listen") && msg.contains("everywhere"),
            "{msg}"
        );
    }

    #[test]
    fn file_then_env_then_flags() {
        let f = file(
            "grpc_listen = \"127.0.0.1:1\"\nhttp_listen = \"127.0.0.1:2\"\nretention = \"7d\"\n[ingest]\nmax_items_per_batch = 5\n",
        );
        let e = env(&[
            ("LLMSCOPE_HTTP_LISTEN", "127.0.0.1:3"),
            ("LLMSCOPE_INGEST_MAX_ITEMS_PER_BATCH", "6"),
            ("LLMSCOPE_TEST_DATABASE_URL", "ignored"),
            ("LLMSCOPE_NOT_A_KEY", "warned and ignored"),
        ]);
        let flags = Overrides {
            grpc_listen: Some("127.0.0.1:9".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(Some(f.path()), e, &flags).unwrap();
        assert_eq!(c.grpc_listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.http_listen.to_string(), "127.0.0.1:3");
        assert_eq!(c.ingest.max_items_per_batch, 6);
        assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let f = file("grpc_listen = \"127.0.0.1:1\"\ngrpc_lisen = \"x\"\n");
        let e = Config::load(Some(f.path()), env(&[]), &Overrides::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(msg.contains("unknown key `grpc_lisen` (line 2)"), "{msg}");
        let f = file("[ingest]\nwriterz = 3\n");
        let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unknown key `writerz`"), "{msg}");
    }

    #[test]
    fn detector_settings_are_validated_naming_the_key() {
        let bad = |text: &str, want: &[&str]| {
            let f = file(text);
            let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(want.iter().all(|w| msg.contains(w)), "{text}: {msg}");
        };
        bad(
            "[spc]\nbaseline_points = 30\narl0 = 10000000\n",
            &["`spc.arl0`", "`spc.baseline_points` = 30"],
        );
        bad("[spc]\ncusum_k = 7\n", &["`spc.cusum_k`"]);
        bad("[spc]\narl0 = 10\n", &["`spc.arl0`", "from 100"]);
        bad("[spc]\ndown_after = 0\n", &["`spc.down_after`"]);
        bad(
            "[spc]\nerror_rate_factor = 1\n",
            &["`spc.error_rate_factor`"],
        );
        bad(
            "[spc]\nsilent_sources = [\"radio\"]\n",
            &["spc.silent_sources", "radio"],
        );
        bad(
            "[alerts]\nseverity = { \"cusum\" = \"loud\" }\n",
            &["alerts.severity", "`cusum` = `loud`"],
        );
        bad(
            "[alerts]\nseverity = { \"9\" = \"error\" }\n",
            &["alerts.severity", "`9`"],
        );
        // the defaults and the quick start's config are valid
        let qs = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/quick-start/collector.toml"
        ));
        let c = Config::load(Some(qs), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.spc.baseline_points, 80);
    }

    #[test]
    fn bad_values_are_explained() {
        let f = file("retention = \"forever\"\n");
        let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("config file") && msg.contains("retention"),
            "{msg}"
        );
        let msg = Config::load(
            None,
            env(&[("LLMSCOPE_GRPC_LISTEN", "nope")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("environment variable LLMSCOPE_GRPC_LISTEN"),
            "{msg}"
        );
        let flags = Overrides {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        let msg = Config::load(None, env(&[]), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`tls.cert` and `tls.key` must be set together"),
            "{msg}"
        );
        let flags = Overrides {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        let msg = Config::load(None, env(&[]), &flags)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("database_url"), "{msg}");
        let f = file("not toml [");
        assert!(Config::load(Some(f.path()), env(&[]), &Overrides::default()).is_err());
    }

    #[test]
    fn alert_channels_are_validated() {
        let f = file(
            "[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\nsecret_env = \"LLMSCOPE_TEST_NO_SUCH_VAR\"\n",
        );
        let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("alerts.channels[0] (`ops`)") && msg.contains("LLMSCOPE_TEST_NO_SUCH_VAR"),
            "{msg}"
        );
        let f = file(
            "[[alerts.channels]]\nname = \"ops\"\nkind = \"carrier-pigeon\"\nurl = \"https://x\"\n",
        );
        let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(
                "`kind` `carrier-pigeon` is not supported; use webhook, slack, pagerduty, email"
            ),
            "{msg}"
        );
        let f = file(
            "[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://x\"\nretries = 3\n",
        );
        let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("retries"), "{msg}");
        let f = file(
            "[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://x\"\nsecret = \"s\"\n",
        );
        let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.alerts.channel_rows().unwrap()[0].secret, "s");
        assert!(!format!("{c:?}").contains("\"s\""), "Debug hides secrets");
    }

    #[test]
    fn cluster_mode_from_file_environment_and_flags() {
        let pg = "postgres://u@h/db";
        // off by default; the short environment names of the issue work, the long ones win
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert!(!c.cluster.enabled());
        let e = env(&[
            ("LLMSCOPE_DATABASE_URL", pg),
            ("LLMSCOPE_NATS_URL", "nats://a:4222"),
            ("LLMSCOPE_NATS_PREFIX", "prod"),
        ]);
        let c = Config::load(None, e, &Overrides::default()).unwrap();
        assert_eq!(c.cluster.nats_url.as_deref(), Some("nats://a:4222"));
        assert_eq!(c.cluster.nats_prefix, "prod");
        let e = env(&[
            ("LLMSCOPE_DATABASE_URL", pg),
            ("LLMSCOPE_NATS_URL", "nats://short:4222"),
            ("LLMSCOPE_CLUSTER_NATS_URL", "nats://long:4222"),
            ("LLMSCOPE_CLUSTER_PARTITIONS", "16"),
        ]);
        let c = Config::load(None, e, &Overrides::default()).unwrap();
        assert_eq!(c.cluster.nats_url.as_deref(), Some("nats://long:4222"));
        assert_eq!(c.cluster.partitions, 16);
        // file, then flags
        let f = file(&format!(
            "database_url = \"{pg}\"\n[cluster]\nnats_url = \"nats://file:4222\"\nlease_ttl = \"10s\"\n"
        ));
        let flags = Overrides {
            nats_url: Some("nats://flag:4222".into()),
            nats_prefix: Some("blue".into()),
            ..Default::default()
        };
        let c = Config::load(Some(f.path()), env(&[]), &flags).unwrap();
        assert_eq!(c.cluster.nats_url.as_deref(), Some("nats://flag:4222"));
        assert_eq!(c.cluster.nats_prefix, "blue");
        assert_eq!(c.cluster.lease_ttl, Duration::from_secs(10));
        // bad values name the key; cluster mode needs PostgreSQL
        let bad = |text: &str, flags: &Overrides, want: &[&str]| {
            let f = file(text);
            let msg = Config::load(Some(f.path()), env(&[]), flags)
                .unwrap_err()
                .to_string();
            assert!(want.iter().all(|w| msg.contains(w)), "{text}: {msg}");
        };
        let pgfile = format!("database_url = \"{pg}\"\n");
        bad(
            &format!("{pgfile}[cluster]\nnats_url = \"nats://a:4222\"\nnats_prefix = \"a.b\"\n"),
            &Overrides::default(),
            &["`cluster.nats_prefix`", "a.b"],
        );
        bad(
            &format!("{pgfile}[cluster]\nnats_url = \"nats://a:4222\"\npartitions = 5000\n"),
            &Overrides::default(),
            &["`cluster.partitions`"],
        );
        bad(
            "[cluster]\nnats_urls = \"nats://a:4222\"\n",
            &Overrides::default(),
            &["unknown key `nats_urls`"],
        );
        bad(
            "",
            &Overrides {
                nats_url: Some("nats://a:4222".into()),
                ..Default::default()
            },
            &["`cluster.nats_url`", "SQLite", "PostgreSQL"],
        );
    }

    #[test]
    fn routes_silences_and_email_are_validated() {
        let ops = "[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://x\"\n";
        let bad = |extra: &str, want: &str| {
            let f = file(&format!("{ops}{extra}"));
            let msg = Config::load(Some(f.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(want), "{extra} → {msg}");
        };
        bad(
            "[[alerts.routes]]\nchannels = [\"nope\"]\n",
            "alerts.routes[0]: channel `nope` is not declared",
        );
        bad(
            "[[alerts.routes]]\nchannels = [\"ops\"]\nmatchers = { colour = \"red\" }\n",
            "alerts.routes[0]: unknown label `colour`",
        );
        bad(
            "[[alerts.silences]]\nid = \"x\"\nmatchers = { model = \"m\" }\nends_at = \"tomorrow\"\ncomment = \"c\"\n",
            "alerts.silences[0] (`x`): `ends_at`: `tomorrow` is not an RFC 3339 time",
        );
        bad(
            "[alerts]\ngroup_by = [\"colour\"]\n",
            "alerts.group_by: unknown label `colour`",
        );
        bad(
            "[alerts]\ndefault_channels = [\"nope\"]\n",
            "alerts.default_channels: channel `nope`",
        );
        bad(
            "[[alerts.channels]]\nname = \"mail\"\nkind = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"not an address\"\nto = [\"a@example.com\"]\n",
            "alerts.channels[1] (`mail`): `from` `not an address` is not an email address",
        );
        bad(
            "[[alerts.channels]]\nname = \"mail\"\nkind = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\ntls = \"sometimes\"\n",
            "`tls` must be starttls, implicit or none",
        );
        let f = file(&format!(
            "{ops}[alerts]\ngroup_wait = \"5s\"\n[[alerts.routes]]\nchannels = [\"ops\"]\nmatchers = {{ rule = 1, model = \"~llama.*\" }}\ncontinue = true\n[[alerts.silences]]\nid = \"rollout\"\nmatchers = {{ model = \"m\" }}\nends_at = \"2099-01-01T00:00:00Z\"\ncomment = \"deploy\"\n"
        ));
        let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.alerts.group_wait, Duration::from_secs(5));
        let r = c.alerts.route_rows().unwrap();
        assert!(r[0].continue_matching && r[0].matchers["rule"] == 1);
        assert_eq!(
            c.alerts.silence_rows(0).unwrap()[0].ends_at,
            4_070_908_800_000_000
        );
    }
}
