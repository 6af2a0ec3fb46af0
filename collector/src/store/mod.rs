//! Storage: one interface, two backends with the same behaviour.
//!
//! - [`sqlite`]: embedded default (`sqlite://PATH`), WAL mode, `synchronous=FULL`, one writer.
//! - [`postgres`]: production (`postgres://…`); TimescaleDB hypertables with compression and a
//!   retention policy when the extension is available, plain tables with time indexes and a
//!   batched retention job otherwise.
//!
//! Bulk writes are one statement per table per commit, never one per sample: PostgreSQL
//! `INSERT … SELECT FROM UNNEST($1, $2, …)`, SQLite `INSERT … SELECT FROM json_each(?)`. Both
//! are idempotent (`ON CONFLICT DO NOTHING`) on the sample id and the telemetry key, so a
//! resent batch never duplicates. Migrations are embedded and run at connect.

/// Runs `$body` with `$p` bound to the pool of whichever backend `$store` is; each arm is
/// type-checked on its own, so one SQL text and one body serve both backends.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $p = s.pool();
                $body
            }
            Store::Postgres(s) => {
                let $p = s.pool();
                $body
            }
        }
    };
}

pub mod alerts;
pub mod api;
pub mod live;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;

use uuid::Uuid;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Synthetic canary call by the agent.
    Probe,
    /// Real traffic timed by the agent's proxy.
    Proxy,
    /// Pushed by a custom client.
    Client,
}

impl Source {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Probe => "probe",
            Source::Proxy => "proxy",
            Source::Client => "client",
        }
    }
}

/// Outcome of a model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Completed.
    Ok,
    /// Failed.
    Error,
    /// Timed out.
    Timeout,
}

impl CallStatus {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Error => "error",
            CallStatus::Timeout => "timeout",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<CallStatus> {
        match s {
            "ok" => Some(CallStatus::Ok),
            "error" => Some(CallStatus::Error),
            "timeout" => Some(CallStatus::Timeout),
            _ => None,
        }
    }
}

/// A validated sample, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    /// Idempotency key.
    pub id: Uuid,
    /// Call start, Unix microseconds.
    pub ts_us: i64,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Source.
    pub source: Source,
    /// Whole-call latency, ms.
    pub latency_ms: f64,
    /// Time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Prompt tokens.
    pub tokens_in: Option<i64>,
    /// Completion tokens.
    pub tokens_out: Option<i64>,
    /// Outcome.
    pub status: CallStatus,
    /// HTTP status.
    pub http_status: Option<i32>,
    /// Failure reason.
    pub error: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl SampleRow {
    /// The labels as a JSON object text.
    pub fn labels_json(&self) -> String {
        serde_json::to_string(&self.labels).unwrap_or_else(|_| "{}".into())
    }
}

/// A validated telemetry snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryRow {
    /// Snapshot time, Unix microseconds.
    pub ts_us: i64,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// CPU %, 0..=100.
    pub cpu_pct: f64,
    /// Memory used, bytes.
    pub mem_used_bytes: i64,
    /// Memory total, bytes.
    pub mem_total_bytes: i64,
    /// 1-minute load average.
    pub load1: f64,
    /// Per-GPU readings.
    pub gpus: Vec<GpuRow>,
}

/// One GPU's readings in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuRow {
    /// NVML index.
    pub index: i32,
    /// Device UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Utilisation %.
    pub util_pct: f64,
    /// Memory used, bytes.
    pub mem_used_bytes: i64,
    /// Memory total, bytes.
    pub mem_total_bytes: i64,
    /// Temperature, °C.
    pub temp_c: f64,
    /// Power, W.
    pub power_w: f64,
    /// SM clock, MHz.
    pub sm_clock_mhz: i32,
    /// Throttle reasons bitmask.
    pub throttle_reasons: i64,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Write samples and telemetry of one site.
    Ingest,
    /// Change configuration through the API.
    Admin,
}

impl Role {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Ingest
        }
    }
}

/// A stored token (never the secret: only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// Public id (also the token's visible prefix).
    pub id: String,
    /// Site it may write (ingest tokens).
    pub site: Option<String>,
    /// Role.
    pub role: Role,
    /// Free-form name.
    pub name: String,
    /// Creation time, Unix µs.
    pub created_at_us: i64,
    /// Revocation time, Unix µs.
    pub revoked_at_us: Option<i64>,
    #[serde(skip)]
    /// sha256 of the token, hex (internal; never serialized).
    pub hash: String,
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A database error.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is not usable.
    #[error("database url: {0}")]
    Url(String),
}

impl StoreError {
    /// Whether retrying later can succeed (connection lost, pool exhausted, I/O).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => {
                    // PostgreSQL: connection exceptions, operator intervention (shutdown),
                    // insufficient resources; SQLite: busy / locked
                    let code = d.code().unwrap_or_default();
                    code.starts_with("08")
                        || code.starts_with("57")
                        || code.starts_with("53")
                        || code == "5"
                        || code == "6"
                        || code == "517"
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// The store: SQLite or PostgreSQL behind one set of methods.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL (optionally TimescaleDB).
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Connects to `url`, creating the SQLite file and its folder if needed, and runs the
    /// migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        } else {
            Err(StoreError::Url(format!(
                "unsupported scheme in `{}`: use sqlite:// or postgres://",
                crate::config::redact_url(url)
            )))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether several writers may commit concurrently.
    pub fn concurrent_writers(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Writes samples and telemetry in one transaction, one statement per table.
    pub async fn write_batch(
        &self,
        samples: &[SampleRow],
        telemetry: &[TelemetryRow],
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.write_batch(samples, telemetry).await)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Stores a new token.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_token(t).await)
    }

    /// All tokens, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.list_tokens().await)
    }

    /// Revokes a token by id; false when no unrevoked token has that id.
    pub async fn revoke_token(&self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_token(id, now_us).await)
    }

    /// The token with this hash, revoked or not.
    pub async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.find_token(hash).await)
    }

    /// Deletes samples and telemetry older than `cutoff_us`, at most `batch` rows per
    /// statement; returns the rows deleted.
    pub async fn delete_older_than(&self, cutoff_us: i64, batch: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.delete_older_than(cutoff_us, batch).await)
    }

    /// Number of stored samples.
    pub async fn count_samples(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.count("samples").await)
    }

    /// Number of stored telemetry snapshots.
    pub async fn count_telemetry(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.count("telemetry").await)
    }

    /// Number of stored per-GPU rows.
    pub async fn count_gpu_rows(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.count("gpu_telemetry").await)
    }

    /// One sample by id.
    pub async fn get_sample(&self, id: Uuid) -> Result<Option<SampleRow>, StoreError> {
        dispatch!(self, s => s.get_sample(id).await)
    }

    /// Ids of every stored sample with how many rows each has (always 1: used by tests to
    /// prove exactly-once storage).
    pub async fn sample_id_counts(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        dispatch!(self, s => s.sample_id_counts().await)
    }

    /// Whether TimescaleDB hypertables are in use.
    pub fn timescale(&self) -> bool {
        matches!(self, Store::Postgres(p) if p.timescale())
    }
}

/// Current time as Unix microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
