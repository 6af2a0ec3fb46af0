//! Read model for the REST API: per-minute rollups of every series metric (maintained from
//! `samples` by a leader-elected job on a `received_at` watermark), the series catalogue,
//! downsampled point queries, violation search with keyset pagination, and exports.

use sqlx::Row;

use super::{Store, StoreError};

/// The four metric expressions over a `samples` row, per backend (same as `Metric::value`).
fn values_sql(store: &Store) -> String {
    let (greatest, ts, recv) = match store {
        Store::Sqlite(_) => ("MAX", "ts", "received_at > $1 AND received_at <= $2"),
        Store::Postgres(_) => (
            "GREATEST",
            "(extract(epoch from ts) * 1000000)::int8",
            "received_at > 'epoch'::timestamptz + $1 * interval '1 microsecond' AND received_at <= 'epoch'::timestamptz + $2 * interval '1 microsecond'",
        ),
    };
    format!(
        "SELECT k, site, host, provider, model, metric, t, v FROM (
           SELECT 'series|' || site || '|' || host || '|' || provider || '|' || model || '|' || m.metric AS k,
                  site, host, provider, model, m.metric AS metric, {ts} AS t,
                  CASE m.metric WHEN 'latency_ms' THEN latency_ms WHEN 'ttft_ms' THEN ttft_ms
                    WHEN 'tpot_ms' THEN CASE WHEN ttft_ms IS NOT NULL AND tokens_out IS NOT NULL THEN (latency_ms - ttft_ms) / {greatest}(tokens_out - 1, 1) END
                    WHEN 'tokens_per_s' THEN CASE WHEN ttft_ms IS NOT NULL AND tokens_out > 0 AND latency_ms > ttft_ms THEN tokens_out / ((latency_ms - ttft_ms) / 1000.0) END
                  END AS v
           FROM samples CROSS JOIN (SELECT 'latency_ms' AS metric UNION ALL SELECT 'ttft_ms' UNION ALL SELECT 'tpot_ms' UNION ALL SELECT 'tokens_per_s') m
           WHERE status = 'ok' AND {recv}) x
         WHERE v IS NOT NULL"
    )
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    /// `series|site|host|provider|model|metric`.
    pub key: String,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: String,
    /// First point (µs).
    pub first_ts: i64,
    /// Last point (µs).
    pub last_ts: i64,
    /// Mean of the latest minute.
    pub last_value: f64,
}

/// One bucket of a downsampled series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Bucket start (µs).
    pub ts: i64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Points in the bucket.
    pub count: i64,
}

/// Filters of a violation search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViolationFilter {
    /// Site.
    pub site: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Metric.
    pub metric: Option<String>,
    /// Rule number.
    pub rule: Option<i64>,
    /// `open`, `resolved` or `acknowledged`.
    pub status: Option<String>,
    /// Opened at or after (µs).
    pub from: Option<i64>,
    /// Opened at or before (µs).
    pub to: Option<i64>,
    /// Series key.
    pub key: Option<String>,
}

impl Store {
    /// Rolls up samples received in `(watermark, upper]` into `rollup_1m` and the catalogue
    /// and moves the watermark, in one transaction; returns the new watermark.
    pub async fn rollup_once(&self, upper: i64) -> Result<i64, StoreError> {
        const INIT_WM: &str = "INSERT INTO rollup_state (name, watermark) VALUES ('rollup_1m', 0) ON CONFLICT (name) DO NOTHING";
        const WM: &str = "SELECT watermark FROM rollup_state WHERE name = 'rollup_1m'";
        const SET_WM: &str = "INSERT INTO rollup_state (name, watermark) VALUES ('rollup_1m', $1) ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark";
        let (lo, hi) = match self {
            Store::Sqlite(_) => ("MIN", "MAX"),
            Store::Postgres(_) => ("LEAST", "GREATEST"),
        };
        let values = values_sql(self);
        let rollup = format!(
            "INSERT INTO rollup_1m (series_key, minute, n, sum, min, max)
             SELECT k, (t / 60000000) * 60000000, COUNT(*), SUM(v), MIN(v), MAX(v) FROM ({values}) y GROUP BY k, (t / 60000000) * 60000000
             ON CONFLICT (series_key, minute) DO UPDATE SET n = rollup_1m.n + excluded.n, sum = rollup_1m.sum + excluded.sum,
               min = {lo}(rollup_1m.min, excluded.min), max = {hi}(rollup_1m.max, excluded.max)"
        );
        let catalog = format!(
            "INSERT INTO series_catalog (series_key, site, host, provider, model, metric, first_ts, last_ts, last_value)
             SELECT k, site, host, provider, model, metric, MIN(t), MAX(t), 0 FROM ({values}) y GROUP BY k, site, host, provider, model, metric
             ON CONFLICT (series_key) DO UPDATE SET first_ts = {lo}(series_catalog.first_ts, excluded.first_ts), last_ts = {hi}(series_catalog.last_ts, excluded.last_ts)"
        );
        let last = match self {
            Store::Sqlite(_) => {
                "UPDATE series_catalog SET last_value = (SELECT r.sum / r.n FROM rollup_1m r WHERE r.series_key = series_catalog.series_key ORDER BY r.minute DESC LIMIT 1) WHERE last_ts > $1"
            }
            Store::Postgres(_) => {
                "UPDATE series_catalog c SET last_value = (SELECT r.sum / r.n FROM rollup_1m r WHERE r.series_key = c.series_key ORDER BY r.minute DESC LIMIT 1) WHERE c.last_ts > $1"
            }
        };
        let wm = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            // write first: SQLite then takes the write lock (waiting its busy timeout) instead
            // of failing to upgrade a read transaction
            sqlx::query(INIT_WM).execute(&mut *tx).await?;
            let wm: i64 = sqlx::query_scalar(WM).fetch_one(&mut *tx).await?;
            if upper > wm {
                sqlx::query(&rollup).bind(wm).bind(upper).execute(&mut *tx).await?;
                sqlx::query(&catalog).bind(wm).bind(upper).execute(&mut *tx).await?;
                // the latest minute's mean of series that got points in the last hour
                sqlx::query(last).bind(upper - 3_600_000_000).execute(&mut *tx).await?;
                sqlx::query(SET_WM).bind(upper).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            wm.max(upper)
        });
        Ok(wm)
    }

    /// The series catalogue, optionally filtered.
    pub async fn catalog(
        &self,
        site: Option<&str>,
        host: Option<&str>,
        model: Option<&str>,
        metric: Option<&str>,
    ) -> Result<Vec<CatalogRow>, StoreError> {
        const SQL: &str = "SELECT series_key, site, host, provider, model, metric, first_ts, last_ts, last_value FROM series_catalog
            WHERE ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR model = $3) AND ($4 = '' OR metric = $4)
            ORDER BY site, model, host, provider, metric";
        let rows = with_pool!(self, p => sqlx::query(SQL)
            .bind(site.unwrap_or("")).bind(host.unwrap_or("")).bind(model.unwrap_or("")).bind(metric.unwrap_or(""))
            .fetch_all(p).await?.iter()
            .map(|r| Ok(CatalogRow {
                key: r.try_get("series_key")?,
                site: r.try_get("site")?,
                host: r.try_get("host")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                metric: r.try_get("metric")?,
                first_ts: r.try_get("first_ts")?,
                last_ts: r.try_get("last_ts")?,
                last_value: r.try_get("last_value")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Per-minute means of each series' last hour of data (up to `window` µs before its
    /// last point) for sparklines: (key, minute, mean), oldest first.
    pub async fn sparks(&self, window: i64) -> Result<Vec<(String, i64, f64)>, StoreError> {
        const SQL: &str = "SELECT r.series_key, r.minute, r.sum / r.n AS mean FROM rollup_1m r JOIN series_catalog c ON c.series_key = r.series_key
            WHERE r.minute >= c.last_ts - $1 ORDER BY r.series_key, r.minute";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(window).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("series_key")?, r.try_get("minute")?, r.try_get("mean")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Buckets of `width` µs over `[from, to]` from the minute rollups (width ≥ 1 minute).
    pub async fn rollup_buckets(
        &self,
        key: &str,
        from: i64,
        to: i64,
        width: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        const SQL: &str = "SELECT (minute - $2) / $4 AS b, CAST(SUM(n) AS BIGINT) AS n, SUM(sum) AS s, MIN(min) AS lo, MAX(max) AS hi FROM rollup_1m
            WHERE series_key = $1 AND minute >= $2 AND minute <= $3 GROUP BY (minute - $2) / $4 ORDER BY 1";
        let from_min = from.div_euclid(60_000_000) * 60_000_000;
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(key).bind(from_min).bind(to).bind(width).fetch_all(p).await?.iter()
            .map(|r| {
                let b: i64 = r.try_get("b")?;
                let n: i64 = r.try_get("n")?;
                let s: f64 = r.try_get("s")?;
                Ok(Bucket { ts: from_min + b * width, min: r.try_get("lo")?, max: r.try_get("hi")?, mean: s / n.max(1) as f64, count: n })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Buckets of `width` µs over `[from, to]` aggregated from the raw samples in SQL (for
    /// ranges too short for the minute rollups).
    pub async fn raw_buckets(
        &self,
        sel: &super::live::PointSelector,
        metric: crate::live::Metric,
        from: i64,
        to: i64,
        width: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        use crate::live::Metric;
        let (greatest, ts, range) = match self {
            Store::Sqlite(_) => ("MAX", "ts", "ts >= $5 AND ts <= $6"),
            Store::Postgres(_) => (
                "GREATEST",
                "(extract(epoch from ts) * 1000000)::int8",
                "ts >= 'epoch'::timestamptz + $5 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $6 * interval '1 microsecond'",
            ),
        };
        let expr = match metric {
            Metric::LatencyMs => "latency_ms".to_owned(),
            Metric::TtftMs => "ttft_ms".to_owned(),
            Metric::TpotMs => format!(
                "CASE WHEN ttft_ms IS NOT NULL AND tokens_out IS NOT NULL THEN (latency_ms - ttft_ms) / {greatest}(tokens_out - 1, 1) END"
            ),
            Metric::TokensPerS => "CASE WHEN ttft_ms IS NOT NULL AND tokens_out > 0 AND latency_ms > ttft_ms THEN tokens_out / ((latency_ms - ttft_ms) / 1000.0) END".to_owned(),
        };
        let sql = format!(
            "SELECT (t - $5) / $7 AS b, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS mean, COUNT(*) AS n FROM (
               SELECT {ts} AS t, {expr} AS v FROM samples
               WHERE status = 'ok' AND site = $1 AND host = $2 AND provider = $3 AND model = $4 AND {range}) x
             WHERE v IS NOT NULL GROUP BY (t - $5) / $7 ORDER BY 1"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql)
            .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model).bind(from).bind(to).bind(width)
            .fetch_all(p).await?.iter()
            .map(|r| {
                let b: i64 = r.try_get("b")?;
                Ok(Bucket { ts: from + b * width, min: r.try_get("lo")?, max: r.try_get("hi")?, mean: r.try_get("mean")?, count: r.try_get("n")? })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Open-violation counts per series key.
    pub async fn open_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT series_key, COUNT(*) AS n FROM violations WHERE status = 'open' GROUP BY series_key";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("series_key")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Violations of a series overlapping `[from, to]` (for flagged points).
    pub async fn violations_overlapping(
        &self,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<super::live::ViolationRow>, StoreError> {
        let f = ViolationFilter {
            key: Some(key.to_owned()),
            ..ViolationFilter::default()
        };
        let mut out = self.search_violations(&f, None, 10_000).await?;
        out.retain(|v| v.opened_at <= to && v.last_point_at >= from);
        Ok(out)
    }

    /// Violations matching `f`, newest first, after the keyset `cursor` (opened_at, id).
    pub async fn search_violations(
        &self,
        f: &ViolationFilter,
        cursor: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<super::live::ViolationRow>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM violations WHERE 1 = 1",
            super::live::VIOLATION_COLS
        );
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // binds: all text params first ($1..), then integers
        let mut text_conds: Vec<String> = Vec::new();
        for (col, v) in [
            ("site", &f.site),
            ("host", &f.host),
            ("model", &f.model),
            ("metric", &f.metric),
            ("series_key", &f.key),
        ] {
            if let Some(v) = v {
                texts.push(v.clone());
                text_conds.push(format!("{col} = ${}", texts.len()));
            }
        }
        match f.status.as_deref() {
            Some("open") => text_conds.push("status = 'open'".into()),
            Some("resolved") => text_conds.push("status = 'resolved'".into()),
            Some("acknowledged") => text_conds.push("acked_at IS NOT NULL".into()),
            _ => {}
        }
        let cursor_id = cursor.as_ref().map(|c| c.1.clone());
        if let Some(id) = &cursor_id {
            texts.push(id.clone());
        }
        let id_param = texts.len();
        for c in text_conds {
            sql.push_str(" AND ");
            sql.push_str(&c);
        }
        let n0 = texts.len();
        let mut int_cond = |sql: &mut String, cond: &str, v: i64| {
            ints.push(v);
            sql.push_str(&cond.replace('?', &format!("${}", n0 + ints.len())));
        };
        if let Some(r) = f.rule {
            int_cond(&mut sql, " AND rule = ?", r);
        }
        if let Some(t) = f.from {
            int_cond(&mut sql, " AND opened_at >= ?", t);
        }
        if let Some(t) = f.to {
            int_cond(&mut sql, " AND opened_at <= ?", t);
        }
        if let Some((at, _)) = &cursor {
            ints.push(*at);
            let p = n0 + ints.len();
            sql.push_str(&format!(
                " AND (opened_at < ${p} OR (opened_at = ${p} AND id < ${id_param}))"
            ));
        }
        ints.push(limit);
        sql.push_str(&format!(
            " ORDER BY opened_at DESC, id DESC LIMIT ${}",
            n0 + ints.len()
        ));
        let rows = with_pool!(self, p => {
            let mut q = sqlx::query(&sql);
            for t in &texts {
                q = q.bind(t);
            }
            for i in &ints {
                q = q.bind(*i);
            }
            q.fetch_all(p).await?.iter().map(super::live::violation_from).collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Resolves a violation by hand (writes its `resolved` outbox row); false when it was not
    /// open.
    pub async fn resolve_violation(
        &self,
        id: &str,
        by: &str,
        note: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .apply_violations(
                &[super::live::ViolationOp::Resolve {
                    id: id.to_owned(),
                    at: now,
                    points: None,
                }],
                now,
            )
            .await?;
        if r.resolved.is_empty() {
            return Ok(false);
        }
        const NOTE: &str = "UPDATE violations SET acked_by = COALESCE(acked_by, $1), acked_at = COALESCE(acked_at, $2), ack_note = COALESCE(ack_note, $3) WHERE id = $4";
        with_pool!(self, p => {
            sqlx::query(NOTE).bind(by).bind(now).bind(format!("resolved by hand: {note}")).bind(id).execute(p).await?;
        });
        Ok(true)
    }

    /// Deletes minute rollups older than `cutoff` and catalogue entries whose last point is
    /// older; returns how many rows went.
    pub async fn prune_rollups(&self, cutoff: i64) -> Result<u64, StoreError> {
        const ROLLUPS: &str = "DELETE FROM rollup_1m WHERE minute < $1";
        const CATALOG: &str = "DELETE FROM series_catalog WHERE last_ts < $1";
        let n = with_pool!(self, p => {
            let a = sqlx::query(ROLLUPS).bind(cutoff).execute(p).await?.rows_affected();
            let b = sqlx::query(CATALOG).bind(cutoff).execute(p).await?.rows_affected();
            a + b
        });
        Ok(n)
    }

    /// Registered sites: (name, created_at µs).
    pub async fn sites(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = match self {
            Store::Sqlite(_) => "SELECT name, created_at FROM sites ORDER BY name",
            Store::Postgres(_) => {
                "SELECT name, (extract(epoch from created_at) * 1000000)::int8 AS created_at FROM sites ORDER BY name"
            }
        };
        let rows = with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Registers a site; false when it exists.
    pub async fn insert_site(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let sql = match self {
            Store::Sqlite(_) => {
                "INSERT INTO sites (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            }
            Store::Postgres(_) => {
                "INSERT INTO sites (name, created_at) VALUES ($1, 'epoch'::timestamptz + $2 * interval '1 microsecond') ON CONFLICT DO NOTHING"
            }
        };
        let n = with_pool!(self, p => sqlx::query(sql).bind(name).bind(now).execute(p).await?.rows_affected());
        Ok(n > 0)
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
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let (ts, cond) = match self {
            Store::Sqlite(_) => ("ts", "ts >= $4 AND ts <= $5"),
            Store::Postgres(_) => (
                "(extract(epoch from ts) * 1000000)::int8",
                "ts >= 'epoch'::timestamptz + $4 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $5 * interval '1 microsecond'",
            ),
        };
        let id = match self {
            Store::Sqlite(_) => "id",
            Store::Postgres(_) => "id::text",
        };
        let sql = format!(
            "SELECT {id} AS id, {ts} AS ts_us, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error
             FROM samples WHERE ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR model = $3) AND {cond} ORDER BY ts LIMIT $6"
        );
        let opt_f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let opt_i = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        let rows = with_pool!(self, p => sqlx::query(&sql)
            .bind(site.unwrap_or("")).bind(host.unwrap_or("")).bind(model.unwrap_or("")).bind(from).bind(to).bind(limit)
            .fetch_all(p).await?.iter()
            .map(|r| Ok(vec![
                r.try_get::<String, _>("id")?,
                r.try_get::<i64, _>("ts_us")?.to_string(),
                r.try_get::<String, _>("site")?,
                r.try_get::<String, _>("host")?,
                r.try_get::<String, _>("provider")?,
                r.try_get::<String, _>("model")?,
                r.try_get::<String, _>("source")?,
                r.try_get::<f64, _>("latency_ms")?.to_string(),
                opt_f(r.try_get("ttft_ms")?),
                opt_i(r.try_get("tokens_in")?),
                opt_i(r.try_get("tokens_out")?),
                r.try_get::<String, _>("status")?,
                opt_i(r.try_get::<Option<i64>, _>("http_status").or_else(|_| r.try_get::<Option<i32>, _>("http_status").map(|v| v.map(i64::from)))?),
                r.try_get::<Option<String>, _>("error")?.unwrap_or_default(),
            ]))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Whether any ingest token exists (first-run detection).
    pub async fn has_ingest_tokens(&self) -> Result<bool, StoreError> {
        Ok(self
            .list_tokens()
            .await?
            .iter()
            .any(|t| t.role == super::Role::Ingest && t.revoked_at_us.is_none()))
    }
}
