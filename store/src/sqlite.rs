//! SQLite backend: embedded, WAL mode, `synchronous=FULL` (a commit survives power loss), one
//! writer. Times are Unix microseconds. Bulk inserts pass the whole batch as one JSON array
//! parameter and insert with one `INSERT … SELECT … FROM json_each(?)` per table.

use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use llmscope_model::{Sample, Telemetry};

use crate::StoreError;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

const INSERT_SAMPLES: &str = "INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels, received_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, value ->> 14, ?2
FROM json_each(?1) WHERE true
ON CONFLICT (id) DO NOTHING";

const INSERT_TELEMETRY: &str =
    "INSERT INTO telemetry (site, host, ts, cpu_pct, mem_used_bytes, mem_total_bytes, load1)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
FROM json_each(?1) WHERE true
ON CONFLICT (site, host, ts) DO NOTHING";

const INSERT_GPUS: &str = "INSERT INTO gpu_telemetry (site, host, ts, gpu_index, uuid, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w, sm_clock_mhz, throttle_reasons, ecc_corrected_volatile, ecc_uncorrected_volatile, xid_errors)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, value ->> 14, value ->> 15
FROM json_each(?1) WHERE true
ON CONFLICT (site, host, ts, gpu_index) DO NOTHING";

const INSERT_MIGS: &str = "INSERT INTO mig_telemetry (site, host, ts, gpu_index, mig_index, uuid, name, mem_used_bytes, mem_total_bytes)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8
FROM json_each(?1) WHERE true
ON CONFLICT (site, host, ts, gpu_index, mig_index) DO NOTHING";

const INSERT_SERVER_METRICS: &str =
    "INSERT INTO server_metrics (site, host, ts, target, model, metric, value)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
FROM json_each(?1) WHERE true
ON CONFLICT (site, host, ts, target, model, metric) DO NOTHING";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and migrates it.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Url(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = opts.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Url(format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool (for modules that add their own tables).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn write_batch(
        &self,
        samples: &[Sample],
        telemetry: &[Telemetry],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !samples.is_empty() {
            let rows: Vec<serde_json::Value> = samples
                .iter()
                .map(|s| {
                    json!([
                        s.id.hyphenated().to_string(),
                        s.ts_us,
                        s.site,
                        s.host,
                        s.provider,
                        s.model,
                        s.source.as_str(),
                        s.latency_ms,
                        s.ttft_ms,
                        s.tokens_in,
                        s.tokens_out,
                        s.status.as_str(),
                        s.http_status,
                        s.error,
                        s.labels_json()
                    ])
                })
                .collect();
            sqlx::query(INSERT_SAMPLES)
                .bind(serde_json::Value::Array(rows).to_string())
                .bind(llmscope_model::now_us())
                .execute(&mut *tx)
                .await?;
        }
        if !telemetry.is_empty() {
            let rows: Vec<serde_json::Value> = telemetry
                .iter()
                .map(|t| {
                    json!([
                        t.site,
                        t.host,
                        t.ts_us,
                        t.cpu_pct,
                        t.mem_used_bytes,
                        t.mem_total_bytes,
                        t.load1
                    ])
                })
                .collect();
            sqlx::query(INSERT_TELEMETRY)
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
            let (gpus, migs, server) = crate::samples::telemetry_rows(telemetry);
            for (sql, rows) in [
                (INSERT_GPUS, gpus),
                (INSERT_MIGS, migs),
                (INSERT_SERVER_METRICS, server),
            ] {
                if !rows.is_empty() {
                    sqlx::query(sql)
                        .bind(serde_json::Value::Array(rows).to_string())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
