//! Samples and telemetry: the group-commit write, point reads for the engine and the charts,
//! host telemetry, exports and retention.

use llmscope_model::{CallStatus, Metric, Sample, SeriesId, Source, Telemetry};
use sqlx::Row;
use uuid::Uuid;

use crate::{Store, StoreError};

/// Which samples a point query reads: one host, all hosts of a site, or every site.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointSelector {
    /// Site; empty = every site.
    pub site: String,
    /// Host; empty = every host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Source (probe, proxy, client, otlp): canary and real traffic are separate series.
    pub source: Source,
}

impl PointSelector {
    /// The samples of a series or pooled chart (its metric aside).
    pub fn of(id: &SeriesId) -> PointSelector {
        PointSelector {
            site: id.site.clone(),
            host: id.host.clone(),
            provider: id.provider.clone(),
            model: id.model.clone(),
            source: id.source,
        }
    }
}

/// One call's outcome (for the outage and error-rate detectors' warm-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallRow {
    /// Sample id.
    pub id: Uuid,
    /// Call start, Unix µs.
    pub ts_us: i64,
    /// Whether it failed (error or timeout).
    pub failed: bool,
    /// Its latency, ms.
    pub latency_ms: f64,
}

/// One successful sample, with what the derived metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    /// Sample id.
    pub id: Uuid,
    /// Call start, Unix µs.
    pub ts_us: i64,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Whole-call latency.
    pub latency_ms: f64,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Completion tokens.
    pub tokens_out: Option<i64>,
}

impl PointRow {
    /// The value of `metric` for this call (see [`Metric::value`]).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        metric.value(self.latency_ms, self.ttft_ms, self.tokens_out)
    }
}

/// A host's telemetry snapshot as the API and violation context show it.
pub type Snapshot = (i64, serde_json::Value);

fn uuid_col<R: Row>(r: &R, col: &str) -> Result<Uuid, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let s: String = r.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::decode("sample id", &s, e))
}

impl Store {
    /// Writes samples and telemetry in one transaction, one statement per table.
    pub async fn write_batch(
        &self,
        samples: &[Sample],
        telemetry: &[Telemetry],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.write_batch(samples, telemetry).await,
            Store::Postgres(s) => s.write_batch(samples, telemetry).await,
        }
    }

    fn id_text(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "id",
            Store::Postgres(_) => "id::text",
        }
    }

    /// Successful samples matching `sel` with `from_us <= ts <= to_us`, oldest first (or
    /// newest first with `newest_first`), at most `limit`.
    pub async fn sample_points(
        &self,
        sel: &PointSelector,
        from_us: i64,
        to_us: i64,
        newest_first: bool,
        limit: i64,
    ) -> Result<Vec<PointRow>, StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} AS id, {} AS ts_us, site, host, latency_ms, ttft_ms, tokens_out FROM samples
             WHERE status = 'ok' AND ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND provider = $3 AND model = $4
               AND ts >= {} AND ts <= {} AND source = $8 ORDER BY ts {order}, id {order} LIMIT $7",
            self.id_text(),
            self.ts_us("ts"),
            self.at_us("$5"),
            self.at_us("$6"),
        );
        let rows = with_pool!(self, p => {
            let rows = sqlx::query(&sql)
                .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model)
                .bind(from_us).bind(to_us).bind(limit).bind(sel.source.as_str())
                .fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(PointRow {
                    id: uuid_col(r, "id")?,
                    ts_us: r.try_get("ts_us")?,
                    site: r.try_get("site")?,
                    host: r.try_get("host")?,
                    latency_ms: r.try_get("latency_ms")?,
                    ttft_ms: r.try_get("ttft_ms")?,
                    tokens_out: r.try_get("tokens_out")?,
                }))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(rows)
    }

    /// The values of `metric` of the successful samples matching `sel` with
    /// `from_us <= ts <= to_us`, oldest first, at most `limit` (the A/B and capability reads:
    /// one column, no ids or names to decode).
    pub async fn metric_values(
        &self,
        sel: &PointSelector,
        metric: llmscope_model::Metric,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<f64>, StoreError> {
        let sql = format!(
            "SELECT v FROM (SELECT {expr} AS v, ts FROM samples
               WHERE status = 'ok' AND ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND provider = $3 AND model = $4
                 AND ts >= {lo} AND ts <= {hi} AND source = $7 ORDER BY ts LIMIT $8) x WHERE v IS NOT NULL",
            expr = metric.sql(self.dialect()),
            lo = self.at_us("$5"),
            hi = self.at_us("$6"),
        );
        let rows = with_pool!(self, p => {
            sqlx::query_scalar::<_, f64>(&sql)
                .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model)
                .bind(from_us).bind(to_us).bind(sel.source.as_str()).bind(limit)
                .fetch_all(p).await?
        });
        Ok(rows)
    }

    /// The last `limit` calls (any outcome) of one host's series before `before_us`, newest
    /// first.
    pub async fn recent_calls(
        &self,
        sel: &PointSelector,
        before_us: i64,
        limit: i64,
    ) -> Result<Vec<CallRow>, StoreError> {
        let sql = format!(
            "SELECT {} AS id, {} AS ts_us, status, latency_ms FROM samples
             WHERE site = $1 AND host = $2 AND provider = $3 AND model = $4 AND source = $5 AND ts < {}
             ORDER BY ts DESC, id DESC LIMIT $7",
            self.id_text(),
            self.ts_us("ts"),
            self.at_us("$6"),
        );
        let rows = with_pool!(self, p => {
            let rows = sqlx::query(&sql)
                .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model).bind(sel.source.as_str())
                .bind(before_us).bind(limit)
                .fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(CallRow {
                    id: uuid_col(r, "id")?,
                    ts_us: r.try_get("ts_us")?,
                    failed: r.try_get::<String, _>("status")? != CallStatus::Ok.as_str(),
                    latency_ms: r.try_get("latency_ms")?,
                }))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(rows)
    }

    /// Records that agents' telemetry was committed: (site, host, newest snapshot) each,
    /// received at `received_us`; one statement (the `agents` table keeps the newest of both).
    pub async fn note_agents(
        &self,
        agents: &[(String, String, i64)],
        received_us: i64,
    ) -> Result<(), StoreError> {
        if agents.is_empty() {
            return Ok(());
        }
        const UPSERT: &str = " ON CONFLICT (site, host) DO UPDATE SET
            last_seen = CASE WHEN excluded.last_seen > agents.last_seen THEN excluded.last_seen ELSE agents.last_seen END,
            last_received = CASE WHEN excluded.last_received > agents.last_received THEN excluded.last_received ELSE agents.last_received END";
        match self {
            Store::Sqlite(s) => {
                let rows: Vec<serde_json::Value> = agents
                    .iter()
                    .map(|(site, host, ts)| serde_json::json!([site, host, ts]))
                    .collect();
                let sql = format!(
                    "INSERT INTO agents (site, host, last_seen, last_received)
                     SELECT value ->> 0, value ->> 1, value ->> 2, $2 FROM json_each($1) WHERE true{UPSERT}"
                );
                sqlx::query(&sql)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .bind(received_us)
                    .execute(s.pool())
                    .await?;
            }
            Store::Postgres(p) => {
                let sql = format!(
                    "INSERT INTO agents (site, host, last_seen, last_received)
                     SELECT s, h, t, $4 FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(s, h, t){UPSERT}"
                );
                sqlx::query(&sql)
                    .bind(agents.iter().map(|a| a.0.as_str()).collect::<Vec<_>>())
                    .bind(agents.iter().map(|a| a.1.as_str()).collect::<Vec<_>>())
                    .bind(agents.iter().map(|a| a.2).collect::<Vec<_>>())
                    .bind(received_us)
                    .execute(p.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Agents whose telemetry was received at or after `since_us`: (site, host, newest
    /// snapshot, when it was received), Unix µs.
    pub async fn agents_seen(
        &self,
        since_us: i64,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        const SQL: &str =
            "SELECT site, host, last_seen, last_received FROM agents WHERE last_received >= $1";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(since_us).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("host")?, r.try_get("last_seen")?, r.try_get("last_received")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The host's telemetry snapshots (with their GPUs, MIG instances and model-server gauges)
    /// in `[from_us, to_us]`, oldest first, at most `limit`, as (ts, JSON). Four queries,
    /// whatever the number of snapshots. A GPU field the device does not support is `null`.
    pub async fn telemetry_range(
        &self,
        site: &str,
        host: &str,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let (ts, lo, hi) = (self.ts_us("ts"), self.at_us("$3"), self.at_us("$4"));
        let int8 = |c: &str| match self {
            Store::Sqlite(_) => c.to_owned(),
            Store::Postgres(_) => format!("{c}::int8 AS {c}"),
        };
        let (gpu_index, mig_index, sm_clock) =
            (int8("gpu_index"), int8("mig_index"), int8("sm_clock_mhz"));
        let window = format!("site = $1 AND host = $2 AND ts >= {lo} AND ts <= {hi}");
        let snap = format!(
            "SELECT {ts} AS ts_us, cpu_pct, mem_used_bytes, mem_total_bytes, load1 FROM telemetry WHERE {window} ORDER BY ts LIMIT $5"
        );
        let gpus = format!(
            "SELECT {ts} AS ts_us, {gpu_index}, uuid, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w, {sm_clock}, throttle_reasons, ecc_corrected_volatile, ecc_uncorrected_volatile, xid_errors FROM gpu_telemetry WHERE {window} ORDER BY ts, gpu_index LIMIT $5"
        );
        let migs = format!(
            "SELECT {ts} AS ts_us, {gpu_index}, {mig_index}, uuid, name, mem_used_bytes, mem_total_bytes FROM mig_telemetry WHERE {window} ORDER BY ts, gpu_index, mig_index LIMIT $5"
        );
        let server = format!(
            "SELECT {ts} AS ts_us, target, model, metric, value FROM server_metrics WHERE {window} ORDER BY ts, target, model, metric LIMIT $5"
        );
        let out = with_pool!(self, p => {
            let snaps = sqlx::query(&snap).bind(site).bind(host).bind(from_us).bind(to_us).bind(limit).fetch_all(p).await?;
            if snaps.is_empty() {
                return Ok(Vec::new());
            }
            let many = limit.saturating_mul(16);
            let g = sqlx::query(&gpus).bind(site).bind(host).bind(from_us).bind(to_us).bind(many).fetch_all(p).await?;
            let m = sqlx::query(&migs).bind(site).bind(host).bind(from_us).bind(to_us).bind(many).fetch_all(p).await?;
            let sm = sqlx::query(&server).bind(site).bind(host).bind(from_us).bind(to_us).bind(many).fetch_all(p).await?;
            type ByTs = std::collections::BTreeMap<i64, Vec<serde_json::Value>>;
            let (mut gpus_at, mut migs_at, mut server_at) = (ByTs::new(), ByTs::new(), ByTs::new());
            for r in &g {
                let xid: Option<String> = r.try_get("xid_errors")?;
                gpus_at.entry(r.try_get("ts_us")?).or_default().push(serde_json::json!({
                    "index": r.try_get::<i64, _>("gpu_index")?,
                    "uuid": r.try_get::<String, _>("uuid")?,
                    "name": r.try_get::<String, _>("name")?,
                    "util_pct": r.try_get::<Option<f64>, _>("util_pct")?,
                    "mem_used_bytes": r.try_get::<Option<i64>, _>("mem_used_bytes")?,
                    "mem_total_bytes": r.try_get::<Option<i64>, _>("mem_total_bytes")?,
                    "temp_c": r.try_get::<Option<f64>, _>("temp_c")?,
                    "power_w": r.try_get::<Option<f64>, _>("power_w")?,
                    "sm_clock_mhz": r.try_get::<Option<i64>, _>("sm_clock_mhz")?,
                    "throttle_reasons": r.try_get::<Option<i64>, _>("throttle_reasons")?,
                    "ecc_corrected_volatile": r.try_get::<Option<i64>, _>("ecc_corrected_volatile")?,
                    "ecc_uncorrected_volatile": r.try_get::<Option<i64>, _>("ecc_uncorrected_volatile")?,
                    "xid_errors": xid_list(xid.as_deref()),
                }));
            }
            for r in &m {
                migs_at.entry(r.try_get("ts_us")?).or_default().push(serde_json::json!({
                    "index": r.try_get::<i64, _>("gpu_index")?,
                    "mig_index": r.try_get::<i64, _>("mig_index")?,
                    "uuid": r.try_get::<String, _>("uuid")?,
                    "name": r.try_get::<String, _>("name")?,
                    "mem_used_bytes": r.try_get::<Option<i64>, _>("mem_used_bytes")?,
                    "mem_total_bytes": r.try_get::<Option<i64>, _>("mem_total_bytes")?,
                }));
            }
            for r in &sm {
                server_at.entry(r.try_get("ts_us")?).or_default().push(serde_json::json!({
                    "target": r.try_get::<String, _>("target")?,
                    "model": r.try_get::<String, _>("model")?,
                    "metric": r.try_get::<String, _>("metric")?,
                    "value": r.try_get::<f64, _>("value")?,
                }));
            }
            let mut v = Vec::with_capacity(snaps.len());
            for r in &snaps {
                let t: i64 = r.try_get("ts_us")?;
                v.push((t, serde_json::json!({
                    "ts_us": t,
                    "cpu_pct": r.try_get::<f64, _>("cpu_pct")?,
                    "mem_used_bytes": r.try_get::<i64, _>("mem_used_bytes")?,
                    "mem_total_bytes": r.try_get::<i64, _>("mem_total_bytes")?,
                    "load1": r.try_get::<f64, _>("load1")?,
                    "gpus": gpus_at.remove(&t).unwrap_or_default(),
                    "mig_instances": migs_at.remove(&t).unwrap_or_default(),
                    "server_metrics": server_at.remove(&t).unwrap_or_default(),
                })));
            }
            v
        });
        Ok(out)
    }

    /// Distinct (site, host, provider, model, source) with samples in `[from_us, to_us]`.
    pub async fn series_in_range(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(String, String, String, String, Source)>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT site, host, provider, model, source FROM samples WHERE ts >= {} AND ts <= {} ORDER BY 1, 2, 3, 4, 5",
            self.at_us("$1"),
            self.at_us("$2")
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(from_us).bind(to_us).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("host")?, r.try_get("provider")?, r.try_get("model")?, r.try_get::<String, _>("source")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        rows.into_iter()
            .map(|(a, b, c, d, src)| {
                let src = src
                    .parse()
                    .map_err(|e| StoreError::decode("sample source", &src, e))?;
                Ok((a, b, c, d, src))
            })
            .collect()
    }

    /// Distinct (site, provider, model) with samples since `since_us`.
    pub async fn active_models(
        &self,
        since_us: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT site, provider, model FROM samples WHERE ts >= {}",
            self.at_us("$1")
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(since_us).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("provider")?, r.try_get("model")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Samples for export: one row per sample, oldest first, at most `limit`.
    pub async fn export_samples(
        &self,
        site: Option<&str>,
        host: Option<&str>,
        model: Option<&str>,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Sample>, StoreError> {
        let sql = format!(
            "{} WHERE ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR model = $3) AND ts >= {} AND ts <= {} ORDER BY ts LIMIT $6",
            self.sample_select(),
            self.at_us("$4"),
            self.at_us("$5"),
        );
        let rows = with_pool!(self, p => {
            let rows = sqlx::query(&sql)
                .bind(site.unwrap_or("")).bind(host.unwrap_or("")).bind(model.unwrap_or("")).bind(from).bind(to).bind(limit)
                .fetch_all(p).await?;
            rows.iter().map(sample_from).collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(rows)
    }

    fn sample_select(&self) -> String {
        let labels = match self {
            Store::Sqlite(_) => "labels",
            Store::Postgres(_) => "labels::text AS labels",
        };
        format!(
            "SELECT {} AS id, {} AS ts_us, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, {labels} FROM samples",
            self.id_text(),
            self.ts_us("ts")
        )
    }

    /// One sample by id.
    pub async fn get_sample(&self, id: Uuid) -> Result<Option<Sample>, StoreError> {
        let cond = match self {
            Store::Sqlite(_) => "id = $1",
            Store::Postgres(_) => "id = $1::uuid",
        };
        let sql = format!("{} WHERE {cond}", self.sample_select());
        let row = with_pool!(self, p => sqlx::query(&sql).bind(id.hyphenated().to_string()).fetch_optional(p).await?
            .as_ref().map(sample_from).transpose()?);
        Ok(row)
    }

    /// Ids of every stored sample with how many rows each has (always 1: used by tests to
    /// prove exactly-once storage).
    pub async fn sample_id_counts(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let sql = format!(
            "SELECT {} AS id, COUNT(*) AS n FROM samples GROUP BY id",
            self.id_text()
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?.iter()
            .map(|r| Ok((uuid_col(r, "id")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>, StoreError>>()?);
        Ok(rows)
    }

    /// Number of stored samples.
    pub async fn count_samples(&self) -> Result<i64, StoreError> {
        self.count("SELECT COUNT(*) FROM samples").await
    }

    /// Number of stored telemetry snapshots.
    pub async fn count_telemetry(&self) -> Result<i64, StoreError> {
        self.count("SELECT COUNT(*) FROM telemetry").await
    }

    /// Number of stored per-GPU rows.
    pub async fn count_gpu_rows(&self) -> Result<i64, StoreError> {
        self.count("SELECT COUNT(*) FROM gpu_telemetry").await
    }

    async fn count(&self, sql: &'static str) -> Result<i64, StoreError> {
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(sql).fetch_one(p).await?);
        Ok(n)
    }

    /// Deletes samples and telemetry older than `cutoff_us`, at most `batch` rows per
    /// statement; returns the rows deleted.
    pub async fn delete_older_than(&self, cutoff_us: i64, batch: i64) -> Result<u64, StoreError> {
        let stmts: [&str; 5] = match self {
            Store::Sqlite(_) => [
                "DELETE FROM samples WHERE id IN (SELECT id FROM samples WHERE ts < $1 LIMIT $2)",
                "DELETE FROM telemetry WHERE (site, host, ts) IN (SELECT site, host, ts FROM telemetry WHERE ts < $1 LIMIT $2)",
                "DELETE FROM gpu_telemetry WHERE (site, host, ts, gpu_index) IN (SELECT site, host, ts, gpu_index FROM gpu_telemetry WHERE ts < $1 LIMIT $2)",
                "DELETE FROM mig_telemetry WHERE (site, host, ts, gpu_index, mig_index) IN (SELECT site, host, ts, gpu_index, mig_index FROM mig_telemetry WHERE ts < $1 LIMIT $2)",
                "DELETE FROM server_metrics WHERE (site, host, ts, target, model, metric) IN (SELECT site, host, ts, target, model, metric FROM server_metrics WHERE ts < $1 LIMIT $2)",
            ],
            Store::Postgres(_) => [
                "DELETE FROM samples WHERE ctid = ANY(ARRAY(SELECT ctid FROM samples WHERE ts < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2))",
                "DELETE FROM telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM telemetry WHERE ts < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2))",
                "DELETE FROM gpu_telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM gpu_telemetry WHERE ts < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2))",
                "DELETE FROM mig_telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM mig_telemetry WHERE ts < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2))",
                "DELETE FROM server_metrics WHERE ctid = ANY(ARRAY(SELECT ctid FROM server_metrics WHERE ts < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2))",
            ],
        };
        let mut total = 0;
        for sql in stmts {
            loop {
                let n = with_pool!(self, p => sqlx::query(sql).bind(cutoff_us).bind(batch).execute(p).await?.rows_affected());
                total += n;
                if n < batch.max(1) as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }
}

fn sample_from<R: Row>(r: &R) -> Result<Sample, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<i32>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<f64>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
{
    let text = |col: &str| r.try_get::<String, _>(col);
    let source = text("source")?;
    let status = text("status")?;
    let labels = text("labels")?;
    Ok(Sample {
        id: uuid_col(r, "id")?,
        ts_us: r.try_get("ts_us")?,
        site: text("site")?,
        host: text("host")?,
        provider: text("provider")?,
        model: text("model")?,
        source: source.parse::<Source>().unwrap_or(Source::Client),
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        tokens_in: r.try_get("tokens_in")?,
        tokens_out: r.try_get("tokens_out")?,
        status: status.parse::<CallStatus>().unwrap_or(CallStatus::Error),
        http_status: r.try_get("http_status")?,
        error: r.try_get("error")?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
    })
}

/// XID codes as stored: comma-separated, `None` when there were none.
pub(crate) fn xid_text(xids: &[i32]) -> Option<String> {
    (!xids.is_empty()).then(|| {
        xids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// XID codes as read back (unparsable parts skipped: the column is only written by
/// [`xid_text`]).
fn xid_list(text: Option<&str>) -> Vec<i64> {
    text.map(|t| t.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// Positional JSON rows for the GPU, MIG-instance and model-server tables of a batch of
/// snapshots (both backends insert them from one JSON array).
pub(crate) fn telemetry_rows(
    telemetry: &[Telemetry],
) -> (
    Vec<serde_json::Value>,
    Vec<serde_json::Value>,
    Vec<serde_json::Value>,
) {
    use serde_json::json;
    let (mut gpus, mut migs, mut server) = (Vec::new(), Vec::new(), Vec::new());
    for t in telemetry {
        for g in &t.gpus {
            match g.mig_index {
                None => gpus.push(json!([
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
                    g.throttle_reasons,
                    g.ecc_corrected_volatile,
                    g.ecc_uncorrected_volatile,
                    xid_text(&g.xid_errors)
                ])),
                Some(m) => migs.push(json!([
                    t.site,
                    t.host,
                    t.ts_us,
                    g.index,
                    m,
                    g.uuid,
                    g.name,
                    g.mem_used_bytes,
                    g.mem_total_bytes
                ])),
            }
        }
        for m in &t.server_metrics {
            server.push(json!([
                t.site, t.host, t.ts_us, m.target, m.model, m.metric, m.value
            ]));
        }
    }
    (gpus, migs, server)
}
