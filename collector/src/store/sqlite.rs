//! SQLite backend: embedded, WAL mode, `synchronous=FULL` (a commit survives power loss), one
//! writer. Times are Unix microseconds. Bulk inserts pass the whole batch as one JSON array
//! parameter and insert with one `INSERT … SELECT … FROM json_each(?)` per table.

use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{CallStatus, Role, SampleRow, Source, StoreError, TelemetryRow, TokenRecord};

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

const INSERT_GPUS: &str = "INSERT INTO gpu_telemetry (site, host, ts, gpu_index, uuid, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w, sm_clock_mhz, throttle_reasons)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12
FROM json_each(?1) WHERE true
ON CONFLICT (site, host, ts, gpu_index) DO NOTHING";

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
        samples: &[SampleRow],
        telemetry: &[TelemetryRow],
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
                .bind(super::now_us())
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
            let gpus: Vec<serde_json::Value> = telemetry
                .iter()
                .flat_map(|t| {
                    t.gpus.iter().map(move |g| {
                        json!([
                            t.site,
                            t.host,
                            t.ts_us,
                            g.index,
                            g.uuid,
                            g.name,
                            g.util_pct,
                            g.mem_used_bytes,
                            g.mem_total_bytes,
                            g.temp_c,
                            g.power_w,
                            g.sm_clock_mhz,
                            g.throttle_reasons
                        ])
                    })
                })
                .collect();
            if !gpus.is_empty() {
                sqlx::query(INSERT_GPUS)
                    .bind(serde_json::Value::Array(gpus).to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(site) = &t.site {
            sqlx::query(
                "INSERT INTO sites (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .bind(site)
            .bind(t.created_at_us)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO tokens (id, hash, site, role, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(&t.id)
            .bind(&t.hash)
            .bind(&t.site)
            .bind(t.role.as_str())
            .bind(&t.name)
            .bind(t.created_at_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, hash, site, role, name, created_at, revoked_at FROM tokens ORDER BY created_at DESC, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    pub(super) async fn revoke_token(&self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now_us)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    pub(super) async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, hash, site, role, name, created_at, revoked_at FROM tokens WHERE hash = ?1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token_from_row))
    }

    pub(super) async fn delete_older_than(
        &self,
        cutoff_us: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        for sql in [
            "DELETE FROM samples WHERE id IN (SELECT id FROM samples WHERE ts < ?1 LIMIT ?2)",
            "DELETE FROM telemetry WHERE (site, host, ts) IN (SELECT site, host, ts FROM telemetry WHERE ts < ?1 LIMIT ?2)",
            "DELETE FROM gpu_telemetry WHERE (site, host, ts, gpu_index) IN (SELECT site, host, ts, gpu_index FROM gpu_telemetry WHERE ts < ?1 LIMIT ?2)",
        ] {
            loop {
                let n = sqlx::query(sql)
                    .bind(cutoff_us)
                    .bind(batch)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                total += n;
                if n < batch as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    pub(super) async fn count(&self, table: &'static str) -> Result<i64, StoreError> {
        let sql = match table {
            "samples" => "SELECT COUNT(*) FROM samples",
            "telemetry" => "SELECT COUNT(*) FROM telemetry",
            _ => "SELECT COUNT(*) FROM gpu_telemetry",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }

    pub(super) async fn get_sample(&self, id: Uuid) -> Result<Option<SampleRow>, StoreError> {
        let row = sqlx::query("SELECT id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels FROM samples WHERE id = ?1")
            .bind(id.hyphenated().to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let labels: String = r.try_get("labels")?;
        let id: String = r.try_get("id")?;
        Ok(Some(SampleRow {
            id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            ts_us: r.try_get("ts")?,
            site: r.try_get("site")?,
            host: r.try_get("host")?,
            provider: r.try_get("provider")?,
            model: r.try_get("model")?,
            source: parse_source(&r.try_get::<String, _>("source")?),
            latency_ms: r.try_get("latency_ms")?,
            ttft_ms: r.try_get("ttft_ms")?,
            tokens_in: r.try_get("tokens_in")?,
            tokens_out: r.try_get("tokens_out")?,
            status: CallStatus::parse(&r.try_get::<String, _>("status")?)
                .unwrap_or(CallStatus::Error),
            http_status: r.try_get("http_status")?,
            error: r.try_get("error")?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
        }))
    }

    pub(super) async fn sample_id_counts(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, COUNT(*) AS n FROM samples GROUP BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let id = Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok((id, r.try_get("n")?))
            })
            .collect()
    }
}

pub(super) fn parse_source(s: &str) -> Source {
    match s {
        "probe" => Source::Probe,
        "proxy" => Source::Proxy,
        _ => Source::Client,
    }
}

fn token_from_row(r: &sqlx::sqlite::SqliteRow) -> TokenRecord {
    TokenRecord {
        id: r.get("id"),
        hash: r.get("hash"),
        site: r.get("site"),
        role: Role::parse(&r.get::<String, _>("role")),
        name: r.get("name"),
        created_at_us: r.get("created_at"),
        revoked_at_us: r.get("revoked_at"),
    }
}
