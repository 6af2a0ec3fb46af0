//! Read model for the REST API: per-minute rollups of every series metric (maintained from
//! `samples` by a leader-elected job on a `received_at` watermark), the series catalogue
//! (first and last point, the last point's value), and downsampled point queries.

use llmscope_model::{Metric, SeriesId};
use sqlx::Row;

use crate::samples::PointSelector;
use crate::{Store, StoreError};

/// Every successful sample received in `($1, $2]`, once per metric it carries: its series
/// key, identity, time and value. The key text and the metric formulas come from
/// `llmscope-model`, so they are those of the engine.
pub(crate) fn values_sql(store: &Store) -> String {
    let d = store.dialect();
    let recv = format!(
        "received_at > {} AND received_at <= {}",
        store.at_us("$1"),
        store.at_us("$2")
    );
    let key = SeriesId::SQL_SERIES_KEY.replace("{metric}", "m.metric");
    format!(
        "SELECT k, site, host, provider, model, metric, source, t, v FROM (
           SELECT {key} AS k, site, host, provider, model, m.metric AS metric, source, {ts} AS t, {value} AS v
           FROM samples CROSS JOIN ({names}) m
           WHERE status = 'ok' AND {recv}) x
         WHERE v IS NOT NULL",
        ts = store.ts_us("ts"),
        value = Metric::sql_by_name("m.metric", d),
        names = Metric::sql_names(),
    )
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    /// The series.
    pub key: SeriesId,
    /// First point (µs).
    pub first_ts: i64,
    /// Last point (µs).
    pub last_ts: i64,
    /// The value of the last point (as of the last rollup run).
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
            "INSERT INTO series_catalog (series_key, site, host, provider, model, metric, source, first_ts, last_ts, last_value, touched)
             SELECT k, site, host, provider, model, metric, source, MIN(t), MAX(t), 0, $2 FROM ({values}) y GROUP BY k, site, host, provider, model, metric, source
             ON CONFLICT (series_key) DO UPDATE SET first_ts = {lo}(series_catalog.first_ts, excluded.first_ts),
               last_ts = {hi}(series_catalog.last_ts, excluded.last_ts), touched = excluded.touched"
        );
        // the value of the newest point of each series this run touched: one index seek per
        // series (samples (site, host, provider, model, ts)), not a sort of the run's samples
        let last = format!(
            "UPDATE series_catalog SET last_value = COALESCE((SELECT v FROM (
               SELECT {value} AS v FROM samples s
               WHERE s.site = series_catalog.site AND s.host = series_catalog.host AND s.provider = series_catalog.provider
                 AND s.model = series_catalog.model AND s.source = series_catalog.source AND s.status = 'ok' AND s.ts = {at}) x
               WHERE v IS NOT NULL LIMIT 1), last_value)
             WHERE touched = $1",
            value = Metric::sql_by_name("series_catalog.metric", self.dialect()),
            at = self.at_us("series_catalog.last_ts"),
        );
        let wm = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            // write first: SQLite then takes the write lock (waiting its busy timeout) instead
            // of failing to upgrade a read transaction
            sqlx::query(INIT_WM).execute(&mut *tx).await?;
            let wm: i64 = sqlx::query_scalar(WM).fetch_one(&mut *tx).await?;
            if upper > wm {
                sqlx::query(&rollup).bind(wm).bind(upper).execute(&mut *tx).await?;
                sqlx::query(&catalog).bind(wm).bind(upper).execute(&mut *tx).await?;
                sqlx::query(&last).bind(upper).execute(&mut *tx).await?;
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
        metric: Option<Metric>,
    ) -> Result<Vec<CatalogRow>, StoreError> {
        const SQL: &str = "SELECT series_key, first_ts, last_ts, last_value FROM series_catalog
            WHERE ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR model = $3) AND ($4 = '' OR metric = $4)
            ORDER BY site, model, host, provider, metric";
        let rows = with_pool!(self, p => sqlx::query(SQL)
            .bind(site.unwrap_or("")).bind(host.unwrap_or("")).bind(model.unwrap_or("")).bind(metric.map(|m| m.as_str()).unwrap_or(""))
            .fetch_all(p).await?.iter()
            .map(|r| {
                let key: String = r.try_get("series_key")?;
                Ok(CatalogRow {
                    key: key.parse().map_err(|e| StoreError::decode("series key", &key, e))?,
                    first_ts: r.try_get("first_ts")?,
                    last_ts: r.try_get("last_ts")?,
                    last_value: r.try_get("last_value")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?);
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
        key: &SeriesId,
        from: i64,
        to: i64,
        width: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        let key = key.to_string();
        const SQL: &str = "SELECT (minute - $2) / $4 AS b, CAST(SUM(n) AS BIGINT) AS n, SUM(sum) AS s, MIN(min) AS lo, MAX(max) AS hi FROM rollup_1m
            WHERE series_key = $1 AND minute >= $2 AND minute <= $3 GROUP BY (minute - $2) / $4 ORDER BY 1";
        let from_min = from.div_euclid(60_000_000) * 60_000_000;
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(&key).bind(from_min).bind(to).bind(width).fetch_all(p).await?.iter()
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
        sel: &PointSelector,
        metric: Metric,
        from: i64,
        to: i64,
        width: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        let (ts, range) = (
            self.ts_us("ts"),
            format!("ts >= {} AND ts <= {}", self.at_us("$5"), self.at_us("$6")),
        );
        let expr = metric.sql(self.dialect());
        let sql = format!(
            "SELECT (t - $5) / $7 AS b, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS mean, COUNT(*) AS n FROM (
               SELECT {ts} AS t, {expr} AS v FROM samples
               WHERE status = 'ok' AND site = $1 AND host = $2 AND provider = $3 AND model = $4 AND source = $8 AND {range}) x
             WHERE v IS NOT NULL GROUP BY (t - $5) / $7 ORDER BY 1"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql)
            .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model).bind(from).bind(to).bind(width).bind(sel.source.as_str())
            .fetch_all(p).await?.iter()
            .map(|r| {
                let b: i64 = r.try_get("b")?;
                Ok(Bucket { ts: from + b * width, min: r.try_get("lo")?, max: r.try_get("hi")?, mean: r.try_get("mean")?, count: r.try_get("n")? })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
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
}
