//! Per-series counters: late points, failed calls, judged points and the newest evaluated
//! point (which warm-up uses to tell replayed points from never-evaluated ones); on a
//! model's latency series also its liveness (newest call of any outcome and the median gap
//! between calls), which the `silent` detector reads.

use std::collections::BTreeMap;

use llmscope_model::SeriesId;
use sqlx::Row;

use crate::violations::{ApplyReport, ViolationOp};
use crate::{Store, StoreError};

/// The counters' upsert clause (both backends): counts add up, times keep the newest, the
/// interval the latest estimate.
const UPSERT: &str = " ON CONFLICT (series_key) DO UPDATE SET late_points = series_counters.late_points + excluded.late_points,
              errors = series_counters.errors + excluded.errors, ok = series_counters.ok + excluded.ok,
              last_evaluated = CASE WHEN excluded.last_evaluated > series_counters.last_evaluated THEN excluded.last_evaluated ELSE series_counters.last_evaluated END,
              last_seen = CASE WHEN excluded.last_seen > series_counters.last_seen THEN excluded.last_seen ELSE series_counters.last_seen END,
              interval_us = CASE WHEN excluded.interval_us > 0 THEN excluded.interval_us ELSE series_counters.interval_us END,
              last_received = CASE WHEN excluded.last_received > series_counters.last_received THEN excluded.last_received ELSE series_counters.last_received END";

/// A series' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Points older than the newest evaluated one (stored, not evaluated).
    pub late_points: i64,
    /// Failed calls.
    pub errors: i64,
    /// Evaluated points.
    pub ok: i64,
    /// Newest evaluated point, Unix µs (0: none).
    pub last_evaluated: i64,
    /// Newest call of any outcome, Unix µs (0: not tracked on this series).
    pub last_seen: i64,
    /// Median gap between calls, µs, as last estimated (0: unknown).
    pub interval_us: i64,
    /// When the newest call was received, Unix µs on the engine's clock (0: not tracked).
    pub last_received: i64,
}

impl Counters {
    /// Adds another delta (the newest evaluated point is the maximum).
    pub fn add(&mut self, d: &Counters) {
        self.late_points += d.late_points;
        self.errors += d.errors;
        self.ok += d.ok;
        self.last_evaluated = self.last_evaluated.max(d.last_evaluated);
        self.last_seen = self.last_seen.max(d.last_seen);
        self.last_received = self.last_received.max(d.last_received);
        if d.interval_us > 0 {
            self.interval_us = d.interval_us;
        }
    }
}

impl Store {
    /// Adds to per-series counters; one statement for the whole batch (duplicate keys are
    /// merged first).
    pub async fn bump_counters(&self, deltas: &[(SeriesId, Counters)]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let merged = merge(deltas);
        match self {
            Store::Sqlite(s) => {
                let rows: Vec<serde_json::Value> = merged
                    .iter()
                    .map(|(k, c)| {
                        serde_json::json!([
                            k,
                            c.late_points,
                            c.errors,
                            c.ok,
                            c.last_evaluated,
                            c.last_seen,
                            c.interval_us,
                            c.last_received
                        ])
                    })
                    .collect();
                let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated, last_seen, interval_us, last_received)
                    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7 FROM json_each($1) WHERE true{UPSERT}");
                sqlx::query(&sql)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .execute(s.pool())
                    .await?;
            }
            Store::Postgres(p) => {
                let mut c = p.pool().acquire().await?;
                bump_pg(&mut c, &merged).await?;
            }
        }
        Ok(())
    }

    /// What the engine writes for one evaluated batch — its violation operations and its
    /// counters — in one transaction. This is derived data: after a crash the engine
    /// re-evaluates from the samples every point past a series' `last_evaluated` (and violation
    /// ids are deterministic), so on PostgreSQL the commit does not wait for the WAL flush
    /// (`synchronous_commit = off` for this transaction only; the samples' own commits, and
    /// every change made through the API, stay synchronous).
    pub async fn commit_evaluation(
        &self,
        ops: &[ViolationOp],
        deltas: &[(SeriesId, Counters)],
        now_us: i64,
    ) -> Result<ApplyReport, StoreError> {
        match self {
            Store::Postgres(p) => {
                let mut tx = p.pool().begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                let report = if ops.is_empty() {
                    ApplyReport::default()
                } else {
                    crate::violations::apply_pg_tx(&mut tx, ops, now_us).await?
                };
                bump_pg(&mut tx, &merge(deltas)).await?;
                tx.commit().await?;
                Ok(report)
            }
            Store::Sqlite(_) => {
                let report = if ops.is_empty() {
                    ApplyReport::default()
                } else {
                    self.apply_violations(ops, now_us).await?
                };
                self.bump_counters(deltas).await?;
                Ok(report)
            }
        }
    }

    /// A series' counters (zero when it has none).
    pub async fn counters(&self, series: &SeriesId) -> Result<Counters, StoreError> {
        const SQL: &str = "SELECT late_points, errors, ok, last_evaluated, last_seen, interval_us, last_received FROM series_counters WHERE series_key = $1";
        let key = series.to_string();
        let r = with_pool!(self, p => sqlx::query(SQL).bind(&key).fetch_optional(p).await?
            .map(|r| counters_of(&r)).transpose()?);
        Ok(r.unwrap_or_default())
    }

    /// Models that may have gone silent: the latency series whose newest call is older than
    /// `max(factor × interval, floor_us)` before `now`, at most `max_age_us` ago (older ones
    /// were silent before and are not looked at again), and none of whose calls was received
    /// within that time either (old samples being replayed are a sign of life); (series,
    /// newest call, interval).
    pub async fn quiet_series(
        &self,
        now: i64,
        factor: i64,
        floor_us: i64,
        max_age_us: i64,
    ) -> Result<Vec<(SeriesId, i64, i64)>, StoreError> {
        const SQL: &str = "SELECT series_key, last_seen, interval_us FROM series_counters
            WHERE last_seen > $1 AND last_seen < $2 - (CASE WHEN interval_us * $3 > $4 THEN interval_us * $3 ELSE $4 END)
              AND last_received < $2 - (CASE WHEN interval_us * $3 > $4 THEN interval_us * $3 ELSE $4 END)";
        let rows = with_pool!(self, p => sqlx::query(SQL)
            .bind(now.saturating_sub(max_age_us)).bind(now).bind(factor).bind(floor_us)
            .fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get::<String, _>("series_key")?, r.try_get::<i64, _>("last_seen")?, r.try_get::<i64, _>("interval_us")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows
            .into_iter()
            .filter_map(|(k, t, i)| Some((k.parse().ok()?, t, i)))
            .collect())
    }

    /// The newest call of the model of a latency series (0: none known).
    pub async fn last_seen(&self, series: &SeriesId) -> Result<i64, StoreError> {
        Ok(self.counters(series).await?.last_seen)
    }

    /// Every series' counters, by key (the detection view's probe rates).
    pub async fn all_counters(&self) -> Result<Vec<(SeriesId, Counters)>, StoreError> {
        const SQL: &str = "SELECT series_key, late_points, errors, ok, last_evaluated, last_seen, interval_us, last_received FROM series_counters";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get::<String, _>("series_key")?, counters_of(r)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows
            .into_iter()
            .filter_map(|(k, c)| Some((k.parse().ok()?, c)))
            .collect())
    }
}

/// The deltas by series key (duplicate keys merged).
fn merge(deltas: &[(SeriesId, Counters)]) -> BTreeMap<String, Counters> {
    let mut merged: BTreeMap<String, Counters> = BTreeMap::new();
    for (k, d) in deltas {
        merged.entry(k.to_string()).or_default().add(d);
    }
    merged
}

/// The counters upsert on PostgreSQL, one statement.
async fn bump_pg(
    c: &mut sqlx::PgConnection,
    merged: &BTreeMap<String, Counters>,
) -> Result<(), StoreError> {
    if merged.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = merged.keys().map(String::as_str).collect();
    let col = |f: fn(&Counters) -> i64| merged.values().map(f).collect::<Vec<i64>>();
    let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated, last_seen, interval_us, last_received)
        SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[]){UPSERT}");
    sqlx::query(&sql)
        .bind(keys)
        .bind(col(|c| c.late_points))
        .bind(col(|c| c.errors))
        .bind(col(|c| c.ok))
        .bind(col(|c| c.last_evaluated))
        .bind(col(|c| c.last_seen))
        .bind(col(|c| c.interval_us))
        .bind(col(|c| c.last_received))
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The counters of a `series_counters` row (either backend).
fn counters_of<R: Row>(r: &R) -> Result<Counters, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Counters {
        late_points: r.try_get("late_points")?,
        errors: r.try_get("errors")?,
        ok: r.try_get("ok")?,
        last_evaluated: r.try_get("last_evaluated")?,
        last_seen: r.try_get("last_seen")?,
        interval_us: r.try_get("interval_us")?,
        last_received: r.try_get("last_received")?,
    })
}
