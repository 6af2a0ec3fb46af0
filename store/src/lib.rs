//! Storage: one interface ([`Store`]), two backends with the same behaviour.
//!
//! **Owns** the database: connecting, the migrations of both backends (`migrations/`), and
//! every query. It speaks the domain types of `llmscope-model` and reports what a write
//! changed as a returned value ([`violations::ApplyReport`]); it never calls up — no alert
//! wake-up, no server-sent event, no metric.
//!
//! **Must not depend on** `llmscope-live`, `llmscope-alert` or the collector.
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
//!
//! Tables other than the ingest ones keep times as Unix microseconds on both backends, so one
//! SQL text (`$n` placeholders, first used in ascending order) serves SQLite and PostgreSQL;
//! queries on `samples`, `telemetry`, `tokens` and `sites`, whose time columns differ, go
//! through [`Store::ts_us`] and [`Store::at_us`].
//!
//! # Layout
//! - [`samples`]: writing batches, reading points and telemetry, exports, retention.
//! - [`tokens`]: tokens (hashed) and sites.
//! - [`users`]: users, sessions, pending OpenID Connect sign-ins.
//! - [`audit`]: the append-only audit log; every audited change writes its entry in its own
//!   transaction.
//! - [`baselines`]: baselines with history, rule configuration.
//! - [`violations`]: violations and their outbox rows (one transaction), search, acks.
//! - [`counters`]: per-series counters (late points, errors, newest evaluated point).
//! - [`leases`]: leader leases and the saved state of bucket charts.
//! - [`alerts`]: channels, notifications, groups, routes, silences, the delivery log.
//! - [`intervals`]: OTLP GenAI histogram intervals and the cumulative streams behind them.
//! - [`read`]: the API's read model (minute rollups, series catalogue).
//! - [`longterm`]: hourly and daily rollups with quantile sketches, usage per hour, SLO
//!   minutes (kept 400 days).
//! - [`plans`]: SLOs, prices, budgets and the SLO counts.
//! - [`replicas`]: collector replicas on this database and their heartbeats.
//! - `testing` (feature `testing`): throwaway databases on both backends for tests.

/// Runs `$body` with `$p` bound to the pool of whichever backend `$store` is; each arm is
/// type-checked on its own, so one SQL text and one body serve both backends.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite(s) => {
                let $p = s.pool();
                $body
            }
            $crate::Store::Postgres(s) => {
                let $p = s.pool();
                $body
            }
        }
    };
}

pub mod alerts;
pub mod audit;
pub mod baselines;
pub mod counters;
pub mod intervals;
pub mod leases;
pub mod longterm;
pub mod plans;
pub mod postgres;
pub mod read;
pub mod replicas;
pub mod samples;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod users;
pub mod violations;

pub use llmscope_model::Dialect;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    /// A stored value could not be decoded.
    #[error("stored {what} `{value}` cannot be read: {why}")]
    Decode {
        /// What was being read (`series key`, `violation points`, …).
        what: &'static str,
        /// The stored text (shortened).
        value: String,
        /// Why it failed.
        why: String,
    },
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

    pub(crate) fn decode(what: &'static str, value: &str, why: impl ToString) -> StoreError {
        StoreError::Decode {
            what,
            value: value.chars().take(120).collect(),
            why: why.to_string(),
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
                redact_url(url)
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

    /// The SQL dialect of the backend.
    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Whether several writers may commit concurrently.
    pub fn concurrent_writers(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Whether TimescaleDB hypertables are in use.
    pub fn timescale(&self) -> bool {
        matches!(self, Store::Postgres(p) if p.timescale())
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// A time column of the ingest tables (`samples`, `telemetry`, `tokens`, `sites`) as
    /// Unix µs.
    pub(crate) fn ts_us(&self, col: &str) -> String {
        match self {
            Store::Sqlite(_) => col.to_owned(),
            Store::Postgres(_) => format!("(extract(epoch from {col}) * 1000000)::int8"),
        }
    }

    /// A Unix µs parameter as a value of the ingest tables' time columns.
    pub(crate) fn at_us(&self, param: &str) -> String {
        match self {
            Store::Sqlite(_) => param.to_owned(),
            Store::Postgres(_) => {
                format!("('epoch'::timestamptz + {param} * interval '1 microsecond')")
            }
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer).
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self {
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Store::Sqlite(_) => "",
        }
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
