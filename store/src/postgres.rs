//! PostgreSQL backend. Bulk inserts bind one array per column and insert with
//! `INSERT … SELECT FROM UNNEST(…)` — one statement per table per commit, whatever the batch
//! size. When the `timescaledb` extension is available, [`PgStore::setup_timescale`] turns the
//! time-series tables into hypertables with compression and a retention policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use llmscope_model::{Sample, Telemetry};

use crate::StoreError;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    timescale: Arc<AtomicBool>,
}

const INSERT_SAMPLES: &str = "INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels)
SELECT t.id, 'epoch'::timestamptz + t.ts_us * interval '1 microsecond', t.site, t.host, t.provider, t.model, t.source, t.latency_ms, t.ttft_ms, t.tokens_in, t.tokens_out, t.status, t.http_status, t.error, t.labels::jsonb
FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::int8[], $11::int8[], $12::text[], $13::int4[], $14::text[], $15::text[])
  AS t(id, ts_us, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels)
ON CONFLICT DO NOTHING";

const INSERT_TELEMETRY: &str = "INSERT INTO telemetry (site, host, ts, cpu_pct, mem_used_bytes, mem_total_bytes, load1)
SELECT t.site, t.host, 'epoch'::timestamptz + t.ts_us * interval '1 microsecond', t.cpu_pct, t.mem_used, t.mem_total, t.load1
FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::float8[], $5::int8[], $6::int8[], $7::float8[])
  AS t(site, host, ts_us, cpu_pct, mem_used, mem_total, load1)
ON CONFLICT DO NOTHING";

const INSERT_GPUS: &str = "INSERT INTO gpu_telemetry (site, host, ts, gpu_index, uuid, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w, sm_clock_mhz, throttle_reasons, ecc_corrected_volatile, ecc_uncorrected_volatile, xid_errors)
SELECT v->>0, v->>1, 'epoch'::timestamptz + (v->>2)::int8 * interval '1 microsecond', (v->>3)::int4, v->>4, v->>5, (v->>6)::float8, (v->>7)::int8, (v->>8)::int8, (v->>9)::float8, (v->>10)::float8, (v->>11)::int4, (v->>12)::int8, (v->>13)::int8, (v->>14)::int8, v->>15
FROM json_array_elements($1::json) AS v
ON CONFLICT DO NOTHING";

const INSERT_MIGS: &str = "INSERT INTO mig_telemetry (site, host, ts, gpu_index, mig_index, uuid, name, mem_used_bytes, mem_total_bytes)
SELECT v->>0, v->>1, 'epoch'::timestamptz + (v->>2)::int8 * interval '1 microsecond', (v->>3)::int4, (v->>4)::int4, v->>5, v->>6, (v->>7)::int8, (v->>8)::int8
FROM json_array_elements($1::json) AS v
ON CONFLICT DO NOTHING";

const INSERT_SERVER_METRICS: &str = "INSERT INTO server_metrics (site, host, ts, target, model, metric, value)
SELECT v->>0, v->>1, 'epoch'::timestamptz + (v->>2)::int8 * interval '1 microsecond', v->>3, v->>4, v->>5, (v->>6)::float8
FROM json_array_elements($1::json) AS v
ON CONFLICT DO NOTHING";

impl PgStore {
    /// Connects and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            timescale: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The connection pool (for modules that add their own tables).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether hypertables are in use.
    pub fn timescale(&self) -> bool {
        self.timescale.load(Ordering::Relaxed)
    }

    /// When the `timescaledb` extension is available, creates it and converts the time-series
    /// tables into hypertables with compression (after 7 days) and a retention policy.
    /// Returns whether TimescaleDB is now in use. Without the extension it does nothing.
    pub async fn setup_timescale(&self, retention: Duration) -> Result<bool, StoreError> {
        let available: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
                .fetch_optional(&self.pool)
                .await?;
        if available.is_none() {
            return Ok(false);
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .execute(&self.pool)
            .await?;
        let secs = retention.as_secs().max(3_600);
        for (table, segment) in [
            ("samples", "site, host, provider, model"),
            ("telemetry", "site, host"),
            ("gpu_telemetry", "site, host, gpu_index"),
            ("mig_telemetry", "site, host, gpu_index, mig_index"),
            ("server_metrics", "site, host, target, model, metric"),
        ] {
            let stmts = [
                format!(
                    "SELECT create_hypertable('{table}', 'ts', if_not_exists => TRUE, migrate_data => TRUE)"
                ),
                format!(
                    "ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = '{segment}')"
                ),
                format!(
                    "SELECT add_compression_policy('{table}', INTERVAL '7 days', if_not_exists => TRUE)"
                ),
                format!(
                    "SELECT add_retention_policy('{table}', INTERVAL '{secs} seconds', if_not_exists => TRUE)"
                ),
            ];
            for sql in stmts {
                sqlx::query(&sql).execute(&self.pool).await?;
            }
        }
        self.timescale.store(true, Ordering::Relaxed);
        Ok(true)
    }

    pub(super) async fn write_batch(
        &self,
        samples: &[Sample],
        telemetry: &[Telemetry],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !samples.is_empty() {
            let n = samples.len();
            let mut id = Vec::with_capacity(n);
            let mut ts = Vec::with_capacity(n);
            let mut site = Vec::with_capacity(n);
            let mut host = Vec::with_capacity(n);
            let mut provider = Vec::with_capacity(n);
            let mut model = Vec::with_capacity(n);
            let mut source = Vec::with_capacity(n);
            let mut latency = Vec::with_capacity(n);
            let mut ttft = Vec::with_capacity(n);
            let mut tin = Vec::with_capacity(n);
            let mut tout = Vec::with_capacity(n);
            let mut status = Vec::with_capacity(n);
            let mut http = Vec::with_capacity(n);
            let mut error = Vec::with_capacity(n);
            let mut labels = Vec::with_capacity(n);
            for s in samples {
                id.push(s.id);
                ts.push(s.ts_us);
                site.push(s.site.as_str());
                host.push(s.host.as_str());
                provider.push(s.provider.as_str());
                model.push(s.model.as_str());
                source.push(s.source.as_str());
                latency.push(s.latency_ms);
                ttft.push(s.ttft_ms);
                tin.push(s.tokens_in);
                tout.push(s.tokens_out);
                status.push(s.status.as_str());
                http.push(s.http_status);
                error.push(s.error.as_deref());
                labels.push(s.labels_json());
            }
            sqlx::query(INSERT_SAMPLES)
                .bind(id)
                .bind(ts)
                .bind(site)
                .bind(host)
                .bind(provider)
                .bind(model)
                .bind(source)
                .bind(latency)
                .bind(ttft)
                .bind(tin)
                .bind(tout)
                .bind(status)
                .bind(http)
                .bind(error)
                .bind(labels)
                .execute(&mut *tx)
                .await?;
        }
        if !telemetry.is_empty() {
            let site: Vec<&str> = telemetry.iter().map(|t| t.site.as_str()).collect();
            let host: Vec<&str> = telemetry.iter().map(|t| t.host.as_str()).collect();
            let ts: Vec<i64> = telemetry.iter().map(|t| t.ts_us).collect();
            let cpu: Vec<f64> = telemetry.iter().map(|t| t.cpu_pct).collect();
            let used: Vec<i64> = telemetry.iter().map(|t| t.mem_used_bytes).collect();
            let total: Vec<i64> = telemetry.iter().map(|t| t.mem_total_bytes).collect();
            let load: Vec<f64> = telemetry.iter().map(|t| t.load1).collect();
            sqlx::query(INSERT_TELEMETRY)
                .bind(site)
                .bind(host)
                .bind(ts)
                .bind(cpu)
                .bind(used)
                .bind(total)
                .bind(load)
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
