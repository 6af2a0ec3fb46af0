//! The long horizon (issue 18): hourly and daily rollups of every series metric with
//! quantiles from a mergeable sketch ([`llmscope_spc::sketch`]), calls and tokens per model,
//! host and hour (`usage_1h`), and good and bad calls per SLO and minute (`slo_minutes`).
//!
//! One pass fills all three from the samples received since its watermark (`long` in
//! `rollup_state`), at most [`CHUNK_US`] of arrival time per transaction, so a first run over
//! an existing database catches up in bounded steps and a late batch (an agent replaying its
//! buffer) folds into the hours and days it belongs to. These tables keep their own
//! retention (`rollup_retention`, 400 days by default), so a year of daily p95 outlives the
//! raw samples.

use std::collections::HashMap;

use futures::TryStreamExt;
use llmscope_model::plan::Usage;
use llmscope_spc::sketch::Sketch;
use sqlx::Row;

use crate::{Store, StoreError};

/// An hour in µs.
pub const HOUR_US: i64 = 3_600_000_000;
/// A day in µs.
pub const DAY_US: i64 = 86_400_000_000;
/// Arrival time one transaction of the pass covers at most.
pub const CHUNK_US: i64 = HOUR_US;
/// Steps one [`Store::rollup_long`] call takes at most.
pub const MAX_STEPS: usize = 24;
/// Hours older than this lose their sketch (their quantiles stay).
pub const HOUR_SKETCH_KEEP_US: i64 = 2 * DAY_US;

/// One hourly or daily rollup row.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRow {
    /// Start of the hour or day (µs).
    pub ts: i64,
    /// Points.
    pub n: i64,
    /// Mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Median (within 0.5 %).
    pub p50: f64,
    /// 95th percentile (within 0.5 %).
    pub p95: f64,
    /// 99th percentile (within 0.5 %).
    pub p99: f64,
}

#[derive(Default)]
struct Acc {
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
    sketch: Sketch,
    /// the stored row had no sketch (an hour older than two days): keep its quantiles
    kept: Option<[f64; 3]>,
}

impl Acc {
    fn add(&mut self, v: f64) {
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
        self.sketch.add(v);
    }

    fn fold(&mut self, n: i64, sum: f64, min: f64, max: f64, sketch: Option<Sketch>, q: [f64; 3]) {
        if self.n == 0 {
            (self.min, self.max) = (min, max);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.n += n;
        self.sum += sum;
        match sketch {
            Some(s) => self.sketch.merge(&s),
            None => self.kept = Some(q),
        }
    }

    fn quantiles(&self) -> [f64; 3] {
        if let Some(q) = self.kept {
            return q;
        }
        let q = |p| {
            self.sketch
                .quantile(p)
                .unwrap_or(self.sum / self.n.max(1) as f64)
        };
        [q(0.5), q(0.95), q(0.99)]
    }
}

type Groups = HashMap<(String, i64), Acc>;

impl Store {
    /// Runs the long-horizon pass over samples received up to `upper` (µs), in steps of at
    /// most [`CHUNK_US`] of arrival time and at most [`MAX_STEPS`] steps (a first run over a
    /// month of history goes on at the next call); returns the new watermark.
    pub async fn rollup_long(&self, upper: i64) -> Result<i64, StoreError> {
        let mut wm = 0;
        for _ in 0..MAX_STEPS {
            let (w, done) = self.rollup_long_step(upper).await?;
            wm = w;
            if done {
                break;
            }
        }
        Ok(wm)
    }

    /// One transaction of the pass; `true` when caught up with `upper`.
    async fn rollup_long_step(&self, upper: i64) -> Result<(i64, bool), StoreError> {
        const INIT: &str = "INSERT INTO rollup_state (name, watermark) VALUES ('long', 0) ON CONFLICT (name) DO NOTHING";
        let wm_sql = match self {
            Store::Sqlite(_) => "SELECT watermark FROM rollup_state WHERE name = 'long'",
            // serialises with SLO back-fills, which take the same row
            Store::Postgres(_) => {
                "SELECT watermark FROM rollup_state WHERE name = 'long' FOR UPDATE"
            }
        };
        const SET: &str = "UPDATE rollup_state SET watermark = $1 WHERE name = 'long'";
        let first = format!(
            "SELECT MIN({}) FROM samples WHERE received_at > {}",
            self.ts_us("received_at"),
            self.at_us("$1")
        );
        let usage = self.usage_sql();
        let slo = self.slo_sql();
        let values = crate::read::values_sql(self);
        let out = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(INIT).execute(&mut *tx).await?;
            let wm: i64 = sqlx::query_scalar(wm_sql).fetch_one(&mut *tx).await?;
            let next: Option<i64> = sqlx::query_scalar(&first).bind(wm).fetch_one(&mut *tx).await?;
            let (hi, done) = match next {
                Some(f) if f <= upper => {
                    let hi = (f - 1).saturating_add(CHUNK_US).min(upper);
                    (hi, hi >= upper)
                }
                _ => (upper.max(wm), true),
            };
            if hi > wm {
                if next.is_some_and(|f| f <= hi) {
                    sqlx::query(&usage).bind(wm).bind(hi).execute(&mut *tx).await?;
                    sqlx::query(&slo).bind(wm).bind(hi).execute(&mut *tx).await?;
                    let (mut hours, mut days) = (Groups::new(), Groups::new());
                    {
                        let mut rows = sqlx::query(&values).bind(wm).bind(hi).fetch(&mut *tx);
                        while let Some(r) = rows.try_next().await? {
                            let k: String = r.try_get("k")?;
                            let t: i64 = r.try_get("t")?;
                            let v: f64 = r.try_get("v")?;
                            if !v.is_finite() {
                                continue;
                            }
                            hours.entry((k.clone(), t.div_euclid(HOUR_US) * HOUR_US)).or_default().add(v);
                            days.entry((k, t.div_euclid(DAY_US) * DAY_US)).or_default().add(v);
                        }
                    }
                    for (table, col, groups) in [("rollup_1h", "hour", &mut hours), ("rollup_1d", "day", &mut days)] {
                        let mut periods: Vec<i64> = groups.keys().map(|(_, t)| *t).collect();
                        periods.sort_unstable();
                        periods.dedup();
                        for t in periods {
                            let sql = format!("SELECT series_key, n, sum, min, max, p50, p95, p99, sketch FROM {table} WHERE {col} = $1");
                            let stored = sqlx::query(&sql).bind(t).fetch_all(&mut *tx).await?;
                            for r in stored {
                                let k: String = r.try_get("series_key")?;
                                if let Some(acc) = groups.get_mut(&(k, t)) {
                                    let text: Option<String> = r.try_get("sketch")?;
                                    let sketch = text.map(|s| Sketch::decode(&s).map_err(|e| StoreError::decode("sketch", &s, e))).transpose()?;
                                    acc.fold(r.try_get("n")?, r.try_get("sum")?, r.try_get("min")?, r.try_get("max")?, sketch,
                                             [r.try_get("p50")?, r.try_get("p95")?, r.try_get("p99")?]);
                                }
                            }
                        }
                        let rows: Vec<_> = groups.drain().collect();
                        for chunk in rows.chunks(500) {
                            let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO {table} (series_key, {col}, n, sum, min, max, p50, p95, p99, sketch) "));
                            qb.push_values(chunk, |mut b, ((k, t), a)| {
                                let [p50, p95, p99] = a.quantiles();
                                let sketch = if a.kept.is_some() { None } else { Some(a.sketch.encode()) };
                                b.push_bind(k.as_str()).push_bind(*t).push_bind(a.n).push_bind(a.sum).push_bind(a.min).push_bind(a.max)
                                    .push_bind(p50).push_bind(p95).push_bind(p99).push_bind(sketch);
                            });
                            qb.push(format!(" ON CONFLICT (series_key, {col}) DO UPDATE SET n = excluded.n, sum = excluded.sum, min = excluded.min, max = excluded.max, p50 = excluded.p50, p95 = excluded.p95, p99 = excluded.p99, sketch = excluded.sketch"));
                            qb.build().execute(&mut *tx).await?;
                        }
                    }
                }
                sqlx::query(SET).bind(hi).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            (wm.max(hi), done)
        });
        Ok(out)
    }

    /// Calls, failures and tokens per (site, host, provider, model, source, hour) of the
    /// samples received in `($1, $2]`, added to `usage_1h`.
    fn usage_sql(&self) -> String {
        format!(
            "INSERT INTO usage_1h (site, host, provider, model, source, hour, calls, errors, tokens_in, tokens_out)
             SELECT site, host, provider, model, source, (t / {HOUR_US}) * {HOUR_US}, COUNT(*),
                    SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0)
             FROM (SELECT site, host, provider, model, source, status, tokens_in, tokens_out, {ts} AS t FROM samples
                   WHERE received_at > {lo} AND received_at <= {hi}) x
             GROUP BY site, host, provider, model, source, (t / {HOUR_US}) * {HOUR_US}
             ON CONFLICT (site, host, provider, model, source, hour) DO UPDATE SET calls = usage_1h.calls + excluded.calls,
               errors = usage_1h.errors + excluded.errors, tokens_in = usage_1h.tokens_in + excluded.tokens_in,
               tokens_out = usage_1h.tokens_out + excluded.tokens_out",
            ts = self.ts_us("ts"),
            lo = self.at_us("$1"),
            hi = self.at_us("$2"),
        )
    }

    /// Good and bad calls per SLO and minute of the samples received in `($1, $2]` (a time
    /// SLO counts successful calls with a value, bad above the threshold; an `errors` SLO
    /// counts every call, bad when it failed), added to `slo_minutes`.
    fn slo_sql(&self) -> String {
        let recv = format!(
            "received_at > {} AND received_at <= {}",
            self.at_us("$1"),
            self.at_us("$2")
        );
        self.slo_count_sql(&recv, "")
    }

    /// The `slo_minutes` upsert over the samples matching `samples_where`, for the SLOs
    /// matching `slo_where` (`AND …` or empty).
    pub(crate) fn slo_count_sql(&self, samples_where: &str, slo_where: &str) -> String {
        let ts = self.ts_us("ts");
        let value = llmscope_model::Metric::sql_by_name("o.metric", self.dialect());
        format!(
            "INSERT INTO slo_minutes (slo_id, minute, total, bad)
             SELECT id, minute, SUM(total), SUM(bad) FROM (
               SELECT o.id AS id, (x.t / 60000000) * 60000000 AS minute,
                 CASE WHEN o.metric = 'errors' THEN 1 WHEN x.status = 'ok' AND {value} IS NOT NULL THEN 1 ELSE 0 END AS total,
                 CASE WHEN o.metric = 'errors' THEN (CASE WHEN x.status <> 'ok' THEN 1 ELSE 0 END)
                      WHEN x.status = 'ok' AND {value} > o.threshold THEN 1 ELSE 0 END AS bad
               FROM (SELECT site, model, source, status, latency_ms, ttft_ms, tokens_out, {ts} AS t FROM samples
                     WHERE {samples_where}) x
               JOIN slos o ON (o.site = '' OR o.site = x.site) AND (o.model = '' OR o.model = x.model)
                          AND (o.source = '' OR o.source = x.source) {slo_where}) y
             GROUP BY id, minute HAVING SUM(total) > 0
             ON CONFLICT (slo_id, minute) DO UPDATE SET total = slo_minutes.total + excluded.total, bad = slo_minutes.bad + excluded.bad"
        )
    }

    /// Daily (`daily = true`) or hourly rollups of one series over `[from, to]`, oldest first.
    pub async fn long_rows(
        &self,
        key: &str,
        daily: bool,
        from: i64,
        to: i64,
    ) -> Result<Vec<LongRow>, StoreError> {
        let (table, col) = if daily {
            ("rollup_1d", "day")
        } else {
            ("rollup_1h", "hour")
        };
        let sql = format!(
            "SELECT {col} AS ts, n, sum, min, max, p50, p95, p99 FROM {table} WHERE series_key = $1 AND {col} >= $2 AND {col} <= $3 ORDER BY {col}"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(key).bind(from).bind(to).fetch_all(p).await?.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                let sum: f64 = r.try_get("sum")?;
                Ok(LongRow { ts: r.try_get("ts")?, n, mean: sum / n.max(1) as f64, min: r.try_get("min")?, max: r.try_get("max")?,
                             p50: r.try_get("p50")?, p95: r.try_get("p95")?, p99: r.try_get("p99")? })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Usage rows with `hour` in `[from, to]`, optionally of one site.
    pub async fn usage(
        &self,
        from: i64,
        to: i64,
        site: Option<&str>,
    ) -> Result<Vec<Usage>, StoreError> {
        const SQL: &str = "SELECT site, host, provider, model, source, hour, calls, errors, tokens_in, tokens_out FROM usage_1h
            WHERE hour >= $1 AND hour <= $2 AND ($3 = '' OR site = $3) ORDER BY hour, site, model, host";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(from).bind(to).bind(site.unwrap_or("")).fetch_all(p).await?.iter()
            .map(|r| Ok(Usage {
                site: r.try_get("site")?, host: r.try_get("host")?, provider: r.try_get("provider")?, model: r.try_get("model")?,
                source: r.try_get("source")?, hour: r.try_get("hour")?, calls: r.try_get("calls")?, errors: r.try_get("errors")?,
                tokens_in: r.try_get("tokens_in")?, tokens_out: r.try_get("tokens_out")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Deletes long-horizon rows older than `cutoff` (hourly and daily rollups, usage, SLO
    /// minutes) and drops the sketches of hours older than `now - 2 days`; returns the rows
    /// changed.
    pub async fn prune_long(&self, cutoff: i64, now: i64) -> Result<u64, StoreError> {
        let stmts = [
            ("DELETE FROM rollup_1h WHERE hour < $1", cutoff),
            ("DELETE FROM rollup_1d WHERE day < $1", cutoff),
            ("DELETE FROM usage_1h WHERE hour < $1", cutoff),
            ("DELETE FROM slo_minutes WHERE minute < $1", cutoff),
            (
                "DELETE FROM slo_minutes WHERE slo_id NOT IN (SELECT id FROM slos)",
                0,
            ),
            (
                "UPDATE rollup_1h SET sketch = NULL WHERE hour < $1 AND sketch IS NOT NULL",
                now - HOUR_SKETCH_KEEP_US,
            ),
        ];
        let n = with_pool!(self, p => {
            let mut n = 0;
            for (sql, arg) in stmts {
                let q = sqlx::query(sql);
                let q = if sql.contains("$1") { q.bind(arg) } else { q };
                n += q.execute(p).await?.rows_affected();
            }
            n
        });
        Ok(n)
    }
}

impl Store {
    /// Mean GPU utilisation per host and hour from `[from, now]` of the raw telemetry (all
    /// GPUs of a host averaged; hosts without GPU readings have none): (site, host, hour, %).
    pub async fn gpu_util_hourly(
        &self,
        from: i64,
        site: Option<&str>,
    ) -> Result<Vec<(String, String, i64, f64)>, StoreError> {
        let sql = format!(
            "SELECT site, host, hour, AVG(util_pct) AS u FROM (
               SELECT site, host, ({ts} / {HOUR_US}) * {HOUR_US} AS hour, util_pct FROM gpu_telemetry
               WHERE ts >= {at} AND ($2 = '' OR site = $2) AND util_pct IS NOT NULL) x
             GROUP BY site, host, hour ORDER BY site, host, hour",
            ts = self.ts_us("ts"),
            at = self.at_us("$1"),
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(from).bind(site.unwrap_or("")).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("host")?, r.try_get("hour")?, r.try_get("u")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Hourly p95 of every host-level probe series of `metric` since `from`:
    /// (series key, hour, p95, n).
    pub async fn hourly_p95(
        &self,
        metric: llmscope_model::Metric,
        from: i64,
        site: Option<&str>,
    ) -> Result<Vec<(String, i64, f64, i64)>, StoreError> {
        const SQL: &str = "SELECT series_key, hour, p95, n FROM rollup_1h WHERE hour >= $1 AND series_key LIKE $2 ORDER BY series_key, hour";
        let pattern = format!("series|{}|%|{}", site.unwrap_or("%"), metric.as_str());
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(from).bind(&pattern).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("series_key")?, r.try_get("hour")?, r.try_get("p95")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }
}
