//! Per-series counters: late points, failed calls, judged points and the newest evaluated
//! point (which warm-up uses to tell replayed points from never-evaluated ones).

use std::collections::BTreeMap;

use llmscope_model::SeriesId;
use sqlx::Row;

use crate::{Store, StoreError};

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
}

impl Counters {
    /// Adds another delta (the newest evaluated point is the maximum).
    pub fn add(&mut self, d: &Counters) {
        self.late_points += d.late_points;
        self.errors += d.errors;
        self.ok += d.ok;
        self.last_evaluated = self.last_evaluated.max(d.last_evaluated);
    }
}

impl Store {
    /// Adds to per-series counters; one statement for the whole batch (duplicate keys are
    /// merged first).
    pub async fn bump_counters(&self, deltas: &[(SeriesId, Counters)]) -> Result<(), StoreError> {
        const UPDATE: &str = " ON CONFLICT (series_key) DO UPDATE SET late_points = series_counters.late_points + excluded.late_points,
              errors = series_counters.errors + excluded.errors, ok = series_counters.ok + excluded.ok,
              last_evaluated = CASE WHEN excluded.last_evaluated > series_counters.last_evaluated THEN excluded.last_evaluated ELSE series_counters.last_evaluated END";
        if deltas.is_empty() {
            return Ok(());
        }
        let mut merged: BTreeMap<String, Counters> = BTreeMap::new();
        for (k, d) in deltas {
            merged.entry(k.to_string()).or_default().add(d);
        }
        match self {
            Store::Sqlite(s) => {
                let rows: Vec<serde_json::Value> = merged
                    .iter()
                    .map(|(k, c)| {
                        serde_json::json!([k, c.late_points, c.errors, c.ok, c.last_evaluated])
                    })
                    .collect();
                let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated)
                    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each($1) WHERE true{UPDATE}");
                sqlx::query(&sql)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .execute(s.pool())
                    .await?;
            }
            Store::Postgres(p) => {
                let keys: Vec<&str> = merged.keys().map(String::as_str).collect();
                let col = |f: fn(&Counters) -> i64| merged.values().map(f).collect::<Vec<i64>>();
                let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated)
                    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]){UPDATE}");
                sqlx::query(&sql)
                    .bind(keys)
                    .bind(col(|c| c.late_points))
                    .bind(col(|c| c.errors))
                    .bind(col(|c| c.ok))
                    .bind(col(|c| c.last_evaluated))
                    .execute(p.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// A series' counters (zero when it has none).
    pub async fn counters(&self, series: &SeriesId) -> Result<Counters, StoreError> {
        const SQL: &str = "SELECT late_points, errors, ok, last_evaluated FROM series_counters WHERE series_key = $1";
        let key = series.to_string();
        let r = with_pool!(self, p => sqlx::query(SQL).bind(&key).fetch_optional(p).await?
            .map(|r| Ok::<_, sqlx::Error>(Counters {
                late_points: r.try_get("late_points")?,
                errors: r.try_get("errors")?,
                ok: r.try_get("ok")?,
                last_evaluated: r.try_get("last_evaluated")?,
            })).transpose()?);
        Ok(r.unwrap_or_default())
    }
}
