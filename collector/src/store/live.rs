//! Persistence of the live SPC engine: baselines (with history), rule configuration, violations
//! with their outbox rows, per-series counters, bucket-chart state and leases.
//!
//! These tables keep times as Unix microseconds on both backends, so one SQL text serves
//! SQLite and PostgreSQL (`$n` placeholders, first used in ascending order). Only queries on
//! the ingest tables (`samples`, `telemetry`), whose time columns differ, have two variants.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError};

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
}

/// One successful sample, with what the derived metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    /// Sample id.
    pub id: String,
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

const POINTS_SQLITE: &str = "SELECT id, ts AS ts_us, site, host, latency_ms, ttft_ms, tokens_out FROM samples
 WHERE status = 'ok' AND ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND provider = $3 AND model = $4
   AND ts >= $5 AND ts <= $6";
const POINTS_PG: &str = "SELECT id::text AS id, (extract(epoch from ts) * 1000000)::int8 AS ts_us, site, host, latency_ms, ttft_ms, tokens_out FROM samples
 WHERE status = 'ok' AND ($1 = '' OR site = $1) AND ($2 = '' OR host = $2) AND provider = $3 AND model = $4
   AND ts >= 'epoch'::timestamptz + $5 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $6 * interval '1 microsecond'";

/// A stored baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    /// Row id (0 before insert).
    pub id: i64,
    /// `series`, `site`, `global` or `bucket`.
    pub scope: String,
    /// Site ('' for global).
    pub site: String,
    /// Host ('' unless scope is series).
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: String,
    /// Centre (transformed scale).
    pub center: f64,
    /// Sigma (transformed scale).
    pub sigma: f64,
    /// Limit width in sigmas.
    pub k: f64,
    /// `mrbar`, `median`, `given` or `xbar_s`.
    pub method: String,
    /// `none` or `log`.
    pub transform: String,
    /// Points in the window.
    pub points: i64,
    /// Window start, Unix µs.
    pub window_from: i64,
    /// Window end, Unix µs.
    pub window_to: i64,
    /// `auto`, `rolling` or `manual`.
    pub mode: String,
    /// Why it was set.
    pub reason: String,
    /// Who set it.
    pub created_by: String,
    /// In force from, Unix µs.
    pub valid_from: i64,
    /// Replaced at (None = current).
    pub valid_to: Option<i64>,
}

/// A violation to open, extend or resolve.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ViolationOp {
    /// Insert (ON CONFLICT DO NOTHING) and, if this insert won, its `opened` outbox row.
    Open(NewViolation),
    /// The rule fired again inside the episode.
    Extend {
        /// Violation id.
        id: String,
        /// Last flagged point.
        last_point_at: i64,
        /// Points JSON (the whole union so far), when it changed enough to be rewritten.
        points: Option<String>,
    },
    /// Quiet for `resolve_after` points: resolve (once) and enqueue `resolved`.
    Resolve {
        /// Violation id.
        id: String,
        /// Resolution time, Unix µs.
        at: i64,
        /// Final points JSON.
        points: Option<String>,
    },
}

/// A violation row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewViolation {
    /// Deterministic id (UUIDv5 of the unique key).
    pub id: String,
    /// `series|site|host|provider|model|metric` or the chart key.
    pub series_key: String,
    /// `series`, `site` or `global`.
    pub scope: String,
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
    /// Rule number.
    pub rule: i64,
    /// First flagged point, Unix µs.
    pub opened_at: i64,
    /// Last flagged point.
    pub last_point_at: i64,
    /// JSON points.
    pub points: String,
    /// JSON frozen baseline.
    pub baseline: String,
    /// JSON context.
    pub context: String,
}

/// A stored violation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViolationRow {
    /// Id.
    pub id: String,
    /// Series key.
    pub series_key: String,
    /// Scope.
    pub scope: String,
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
    /// Rule.
    pub rule: i64,
    /// Opened at.
    pub opened_at: i64,
    /// Last flagged point.
    pub last_point_at: i64,
    /// Resolved at.
    pub resolved_at: Option<i64>,
    /// `open` or `resolved`.
    pub status: String,
    /// Points (JSON).
    pub points: serde_json::Value,
    /// Frozen baseline (JSON).
    pub baseline: serde_json::Value,
    /// Context (JSON).
    pub context: serde_json::Value,
    /// Who acknowledged.
    pub acked_by: Option<String>,
    /// When.
    pub acked_at: Option<i64>,
    /// Note.
    pub ack_note: Option<String>,
}

/// What a batch of violation operations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Violations this call inserted (it won the insert).
    pub opened: Vec<String>,
    /// Violations this call resolved.
    pub resolved: Vec<String>,
}

pub(crate) const VIOLATION_COLS: &str = "id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, resolved_at, status, points, baseline, context, acked_by, acked_at, ack_note";

/// The `opened` outbox payload: what a notification needs without another query.
fn opened_payload(v: &NewViolation) -> String {
    let parse =
        |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or(serde_json::Value::Null);
    let violation = serde_json::json!({
        "series_key": v.series_key,
        "scope": v.scope,
        "site": v.site,
        "host": v.host,
        "provider": v.provider,
        "model": v.model,
        "metric": v.metric,
        "rule": v.rule,
        "opened_at": v.opened_at,
        "baseline": parse(&v.baseline),
        "points": parse(&v.points),
    });
    outbox_payload("opened", &v.id, &violation.to_string())
}

fn outbox_payload(event: &str, id: &str, extra: &str) -> String {
    format!("{{\"event\":\"{event}\",\"violation_id\":\"{id}\",\"violation\":{extra}}}")
}

impl Store {
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
        let order = if newest_first {
            " ORDER BY ts DESC, id DESC LIMIT $7"
        } else {
            " ORDER BY ts ASC, id ASC LIMIT $7"
        };
        let sql = match self {
            Store::Sqlite(_) => format!("{POINTS_SQLITE}{order}"),
            Store::Postgres(_) => format!("{POINTS_PG}{order}"),
        };
        let rows = with_pool!(self, p => sqlx::query(&sql)
            .bind(&sel.site).bind(&sel.host).bind(&sel.provider).bind(&sel.model)
            .bind(from_us).bind(to_us).bind(limit)
            .fetch_all(p).await?
            .iter()
            .map(|r| Ok(PointRow {
                id: r.try_get("id")?,
                ts_us: r.try_get("ts_us")?,
                site: r.try_get("site")?,
                host: r.try_get("host")?,
                latency_ms: r.try_get("latency_ms")?,
                ttft_ms: r.try_get("ttft_ms")?,
                tokens_out: r.try_get("tokens_out")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The current baseline for a key.
    pub async fn current_baseline(
        &self,
        scope: &str,
        site: &str,
        host: &str,
        provider: &str,
        model: &str,
        metric: &str,
    ) -> Result<Option<BaselineRow>, StoreError> {
        const SQL: &str = "SELECT * FROM baselines WHERE scope = $1 AND site = $2 AND host = $3 AND provider = $4 AND model = $5 AND metric = $6 AND valid_to IS NULL ORDER BY id DESC LIMIT 1";
        let row = with_pool!(self, p => {
            let r = sqlx::query(SQL).bind(scope).bind(site).bind(host).bind(provider).bind(model).bind(metric).fetch_optional(p).await?;
            r.map(|r| baseline_from(&r)).transpose()?
        });
        Ok(row)
    }

    /// Stores a new baseline, closing the one it replaces (history is kept).
    pub async fn insert_baseline(&self, b: &BaselineRow) -> Result<i64, StoreError> {
        const CLOSE: &str = "UPDATE baselines SET valid_to = $1 WHERE scope = $2 AND site = $3 AND host = $4 AND provider = $5 AND model = $6 AND metric = $7 AND valid_to IS NULL";
        const INSERT: &str = "INSERT INTO baselines (scope, site, host, provider, model, metric, center, sigma, k, method, transform, points, window_from, window_to, mode, reason, created_by, valid_from)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id";
        let id = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(CLOSE).bind(b.valid_from).bind(&b.scope).bind(&b.site).bind(&b.host).bind(&b.provider).bind(&b.model).bind(&b.metric).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(&b.scope).bind(&b.site).bind(&b.host).bind(&b.provider).bind(&b.model).bind(&b.metric)
                .bind(b.center).bind(b.sigma).bind(b.k).bind(&b.method).bind(&b.transform).bind(b.points)
                .bind(b.window_from).bind(b.window_to).bind(&b.mode).bind(&b.reason).bind(&b.created_by).bind(b.valid_from)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Baselines, newest first; `current_only` hides replaced ones.
    pub async fn list_baselines(&self, current_only: bool) -> Result<Vec<BaselineRow>, StoreError> {
        let sql = if current_only {
            "SELECT * FROM baselines WHERE valid_to IS NULL ORDER BY site, host, provider, model, metric, id DESC"
        } else {
            "SELECT * FROM baselines ORDER BY site, host, provider, model, metric, id DESC"
        };
        let rows = with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter().map(baseline_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Every rule configuration row: (scope kind, scope value, settings JSON).
    pub async fn rule_configs(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        const SQL: &str = "SELECT scope_kind, scope_value, settings FROM rule_configs";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("scope_kind")?, r.try_get("scope_value")?, r.try_get("settings")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Sets the settings of one scope (history kept).
    pub async fn set_rule_config(
        &self,
        kind: &str,
        value: &str,
        settings: &str,
        by: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        const UPSERT: &str = "INSERT INTO rule_configs (scope_kind, scope_value, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (scope_kind, scope_value) DO UPDATE SET settings = excluded.settings, updated_by = excluded.updated_by, updated_at = excluded.updated_at";
        const HIST: &str = "INSERT INTO rule_config_history (scope_kind, scope_value, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(UPSERT).bind(kind).bind(value).bind(settings).bind(by).bind(at).execute(&mut *tx).await?;
            sqlx::query(HIST).bind(kind).bind(value).bind(settings).bind(by).bind(at).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Applies violation operations in one transaction. An `Open` whose insert wins (no row
    /// with the same key yet) writes its `opened` outbox row in the same transaction; a
    /// `Resolve` that flips an open violation writes `resolved`. Replicas racing on the same
    /// episode therefore produce one row and one notification per event.
    pub async fn apply_violations(
        &self,
        ops: &[ViolationOp],
        now_us: i64,
    ) -> Result<ApplyReport, StoreError> {
        let report = match self {
            Store::Postgres(pg) => apply_violations_pg(pg.pool(), ops, now_us).await?,
            Store::Sqlite(_) => self.apply_violations_sqlite(ops, now_us).await?,
        };
        if !report.opened.is_empty() || !report.resolved.is_empty() {
            crate::alert::wake(); // the dispatcher in this process need not wait for its tick
        }
        // live dashboards: one event per opened or resolved violation, with its series
        for id in &report.opened {
            let open = ops.iter().find_map(|o| match o {
                ViolationOp::Open(v) if v.id == *id => Some(v),
                _ => None,
            });
            if let Some(v) = open {
                crate::api::events::publish(
                    "violation",
                    serde_json::json!({"id": id, "event": "opened", "key": v.series_key, "rule": v.rule}),
                );
            }
        }
        for id in report
            .resolved
            .iter()
            .filter(|_| crate::api::events::listening())
        {
            if let Some(v) = self.get_violation(id).await? {
                crate::api::events::publish(
                    "violation",
                    serde_json::json!({"id": id, "event": "resolved", "key": v.series_key, "rule": v.rule}),
                );
            }
        }
        Ok(report)
    }

    async fn apply_violations_sqlite(
        &self,
        ops: &[ViolationOp],
        now_us: i64,
    ) -> Result<ApplyReport, StoreError> {
        const INSERT: &str = "INSERT INTO violations (id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, status, points, baseline, context)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13, $14) ON CONFLICT DO NOTHING";
        const OUTBOX: &str = "INSERT INTO outbox (violation_id, event, payload, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        const EXTEND: &str = "UPDATE violations SET last_point_at = $1, points = COALESCE($2, points) WHERE id = $3 AND status = 'open' AND last_point_at < $4";
        const RESOLVE: &str = "UPDATE violations SET status = 'resolved', resolved_at = $1, points = COALESCE($2, points) WHERE id = $3 AND status = 'open'";
        let mut report = ApplyReport::default();
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for op in ops {
                match op {
                    ViolationOp::Open(v) => {
                        let n = sqlx::query(INSERT)
                            .bind(&v.id).bind(&v.series_key).bind(&v.scope).bind(&v.site).bind(&v.host).bind(&v.provider)
                            .bind(&v.model).bind(&v.metric).bind(v.rule).bind(v.opened_at).bind(v.last_point_at)
                            .bind(&v.points).bind(&v.baseline).bind(&v.context)
                            .execute(&mut *tx).await?.rows_affected();
                        if n > 0 {
                            sqlx::query(OUTBOX).bind(&v.id).bind("opened").bind(opened_payload(v)).bind(now_us).execute(&mut *tx).await?;
                            report.opened.push(v.id.clone());
                        }
                    }
                    ViolationOp::Extend { id, last_point_at, points } => {
                        sqlx::query(EXTEND).bind(*last_point_at).bind(points).bind(id).bind(*last_point_at).execute(&mut *tx).await?;
                    }
                    ViolationOp::Resolve { id, at, points } => {
                        let n = sqlx::query(RESOLVE).bind(*at).bind(points).bind(id).execute(&mut *tx).await?.rows_affected();
                        if n > 0 {
                            sqlx::query(OUTBOX).bind(id).bind("resolved").bind(outbox_payload("resolved", id, "{}")).bind(now_us).execute(&mut *tx).await?;
                            report.resolved.push(id.clone());
                        }
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Violations, newest first; optional status filter.
    pub async fn list_violations(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ViolationRow>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE ($1 = '' OR status = $1) ORDER BY opened_at DESC, rule LIMIT $2"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(status.unwrap_or("")).bind(limit).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// One violation by id.
    pub async fn get_violation(&self, id: &str) -> Result<Option<ViolationRow>, StoreError> {
        let sql = format!("SELECT {VIOLATION_COLS} FROM violations WHERE id = $1");
        let row = with_pool!(self, p => sqlx::query(&sql).bind(id).fetch_optional(p).await?.as_ref().map(violation_from).transpose()?);
        Ok(row)
    }

    /// Open violations of one series.
    pub async fn open_violations(&self, series_key: &str) -> Result<Vec<ViolationRow>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE series_key = $1 AND status = 'open'"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(series_key).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Open violations per site (for the `llmscope_open_violations` gauge).
    pub async fn open_violations_by_site(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str =
            "SELECT site, COUNT(*) AS n FROM violations WHERE status = 'open' GROUP BY site";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Acknowledges a violation; false when there is no such violation.
    pub async fn ack_violation(
        &self,
        id: &str,
        by: &str,
        note: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE violations SET acked_by = $1, ack_note = $2, acked_at = $3 WHERE id = $4";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(by).bind(note).bind(at).bind(id).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Outbox rows as (violation id, event), oldest first.
    pub async fn outbox_events(&self) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT violation_id, event FROM outbox ORDER BY id";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("violation_id")?, r.try_get("event")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Adds to per-series counters: (key, late points, errors, ok points, newest evaluated ts).
    /// One statement for the whole batch (duplicate keys are merged first).
    pub async fn bump_counters(
        &self,
        deltas: &[(String, i64, i64, i64, i64)],
    ) -> Result<(), StoreError> {
        const UPDATE: &str = " ON CONFLICT (series_key) DO UPDATE SET late_points = series_counters.late_points + excluded.late_points,
              errors = series_counters.errors + excluded.errors, ok = series_counters.ok + excluded.ok,
              last_evaluated = CASE WHEN excluded.last_evaluated > series_counters.last_evaluated THEN excluded.last_evaluated ELSE series_counters.last_evaluated END";
        if deltas.is_empty() {
            return Ok(());
        }
        let mut merged: std::collections::BTreeMap<&str, (i64, i64, i64, i64)> =
            std::collections::BTreeMap::new();
        for (k, late, err, ok, last) in deltas {
            let e = merged.entry(k.as_str()).or_default();
            e.0 += late;
            e.1 += err;
            e.2 += ok;
            e.3 = e.3.max(*last);
        }
        match self {
            Store::Sqlite(s) => {
                let rows: Vec<serde_json::Value> = merged
                    .iter()
                    .map(|(k, (a, b, c, d))| serde_json::json!([k, a, b, c, d]))
                    .collect();
                let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated)
                    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each($1) WHERE true{UPDATE}");
                sqlx::query(&sql)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .execute(s.pool())
                    .await?;
            }
            Store::Postgres(p) => {
                let keys: Vec<&str> = merged.keys().copied().collect();
                let col = |f: fn(&(i64, i64, i64, i64)) -> i64| {
                    merged.values().map(f).collect::<Vec<i64>>()
                };
                let sql = format!("INSERT INTO series_counters (series_key, late_points, errors, ok, last_evaluated)
                    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]){UPDATE}");
                sqlx::query(&sql)
                    .bind(keys)
                    .bind(col(|v| v.0))
                    .bind(col(|v| v.1))
                    .bind(col(|v| v.2))
                    .bind(col(|v| v.3))
                    .execute(p.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// (late points, errors, ok points, newest evaluated ts) of a series.
    pub async fn counters(&self, series_key: &str) -> Result<(i64, i64, i64, i64), StoreError> {
        const SQL: &str = "SELECT late_points, errors, ok, last_evaluated FROM series_counters WHERE series_key = $1";
        let r = with_pool!(self, p => sqlx::query(SQL).bind(series_key).fetch_optional(p).await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("late_points")?, r.try_get("errors")?, r.try_get("ok")?, r.try_get("last_evaluated")?))).transpose()?);
        Ok(r.unwrap_or((0, 0, 0, 0)))
    }

    /// Highest baseline id (changes whenever a baseline is set anywhere).
    pub async fn baseline_generation(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COALESCE(MAX(id), 0) FROM baselines";
        let g: i64 = with_pool!(self, p => sqlx::query_scalar(SQL).fetch_one(p).await?);
        Ok(g)
    }

    /// The host's telemetry snapshots (with their GPUs) in `[from_us, to_us]`, oldest first,
    /// at most `limit`, as (ts, JSON). Two queries, whatever the number of snapshots.
    pub async fn telemetry_range(
        &self,
        site: &str,
        host: &str,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
        let (snap, gpus) = match self {
            Store::Sqlite(_) => (
                "SELECT ts AS ts_us, cpu_pct, mem_used_bytes, mem_total_bytes, load1 FROM telemetry WHERE site = $1 AND host = $2 AND ts >= $3 AND ts <= $4 ORDER BY ts LIMIT $5",
                "SELECT ts AS ts_us, gpu_index, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w FROM gpu_telemetry WHERE site = $1 AND host = $2 AND ts >= $3 AND ts <= $4 ORDER BY ts, gpu_index LIMIT $5",
            ),
            Store::Postgres(_) => (
                "SELECT (extract(epoch from ts) * 1000000)::int8 AS ts_us, cpu_pct, mem_used_bytes, mem_total_bytes, load1 FROM telemetry WHERE site = $1 AND host = $2 AND ts >= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $4 * interval '1 microsecond' ORDER BY ts LIMIT $5",
                "SELECT (extract(epoch from ts) * 1000000)::int8 AS ts_us, gpu_index::int8 AS gpu_index, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c, power_w FROM gpu_telemetry WHERE site = $1 AND host = $2 AND ts >= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $4 * interval '1 microsecond' ORDER BY ts, gpu_index LIMIT $5",
            ),
        };
        let out = with_pool!(self, p => {
            let snaps = sqlx::query(snap).bind(site).bind(host).bind(from_us).bind(to_us).bind(limit).fetch_all(p).await?;
            if snaps.is_empty() {
                return Ok(Vec::new());
            }
            let g = sqlx::query(gpus).bind(site).bind(host).bind(from_us).bind(to_us).bind(limit * 16).fetch_all(p).await?;
            let mut by_ts: std::collections::BTreeMap<i64, Vec<serde_json::Value>> = std::collections::BTreeMap::new();
            for r in &g {
                by_ts.entry(r.try_get("ts_us")?).or_default().push(serde_json::json!({
                    "index": r.try_get::<i64, _>("gpu_index")?,
                    "name": r.try_get::<String, _>("name")?,
                    "util_pct": r.try_get::<f64, _>("util_pct")?,
                    "mem_used_bytes": r.try_get::<i64, _>("mem_used_bytes")?,
                    "mem_total_bytes": r.try_get::<i64, _>("mem_total_bytes")?,
                    "temp_c": r.try_get::<f64, _>("temp_c")?,
                    "power_w": r.try_get::<f64, _>("power_w")?,
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
                    "gpus": by_ts.remove(&t).unwrap_or_default(),
                })));
            }
            v
        });
        Ok(out)
    }

    /// Takes or renews the lease `name` for `holder` until `expires_at`; false when another
    /// holder's lease is still valid at `now`.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE leases.holder = excluded.holder OR leases.expires_at < $4";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(name).bind(holder).bind(expires_at).bind(now).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Saved state of a bucket chart.
    pub async fn bucket_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT state FROM bucket_charts WHERE chart_key = $1";
        let s = with_pool!(self, p => sqlx::query_scalar(SQL).bind(key).fetch_optional(p).await?);
        Ok(s)
    }

    /// Saves the state of a bucket chart.
    pub async fn put_bucket_state(
        &self,
        key: &str,
        state: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO bucket_charts (chart_key, state, updated_at) VALUES ($1, $2, $3)
            ON CONFLICT (chart_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(key).bind(state).bind(at).execute(p).await?;
        });
        Ok(())
    }

    /// Distinct (site, host, provider, model) with samples in `[from_us, to_us]`.
    pub async fn series_in_range(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let sql = match self {
            Store::Sqlite(_) => {
                "SELECT DISTINCT site, host, provider, model FROM samples WHERE ts >= $1 AND ts <= $2 ORDER BY 1, 2, 3, 4"
            }
            Store::Postgres(_) => {
                "SELECT DISTINCT site, host, provider, model FROM samples WHERE ts >= 'epoch'::timestamptz + $1 * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + $2 * interval '1 microsecond' ORDER BY 1, 2, 3, 4"
            }
        };
        let rows = with_pool!(self, p => sqlx::query(sql).bind(from_us).bind(to_us).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("host")?, r.try_get("provider")?, r.try_get("model")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Distinct (site, provider, model) with samples since `since_us`.
    pub async fn active_models(
        &self,
        since_us: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql = match self {
            Store::Sqlite(_) => "SELECT DISTINCT site, provider, model FROM samples WHERE ts >= $1",
            Store::Postgres(_) => {
                "SELECT DISTINCT site, provider, model FROM samples WHERE ts >= 'epoch'::timestamptz + $1 * interval '1 microsecond'"
            }
        };
        let rows = with_pool!(self, p => sqlx::query(sql).bind(since_us).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("site")?, r.try_get("provider")?, r.try_get("model")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }
}

fn baseline_from<R: Row>(r: &R) -> Result<BaselineRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
{
    Ok(BaselineRow {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        site: r.try_get("site")?,
        host: r.try_get("host")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        metric: r.try_get("metric")?,
        center: r.try_get("center")?,
        sigma: r.try_get("sigma")?,
        k: r.try_get("k")?,
        method: r.try_get("method")?,
        transform: r.try_get("transform")?,
        points: r.try_get("points")?,
        window_from: r.try_get("window_from")?,
        window_to: r.try_get("window_to")?,
        mode: r.try_get("mode")?,
        reason: r.try_get("reason")?,
        created_by: r.try_get("created_by")?,
        valid_from: r.try_get("valid_from")?,
        valid_to: r.try_get("valid_to")?,
    })
}

pub(crate) fn violation_from<R: Row>(r: &R) -> Result<ViolationRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
{
    let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
    Ok(ViolationRow {
        id: r.try_get("id")?,
        series_key: r.try_get("series_key")?,
        scope: r.try_get("scope")?,
        site: r.try_get("site")?,
        host: r.try_get("host")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        metric: r.try_get("metric")?,
        rule: r.try_get("rule")?,
        opened_at: r.try_get("opened_at")?,
        last_point_at: r.try_get("last_point_at")?,
        resolved_at: r.try_get("resolved_at")?,
        status: r.try_get("status")?,
        points: json(r.try_get("points")?),
        baseline: json(r.try_get("baseline")?),
        context: json(r.try_get("context")?),
        acked_by: r.try_get("acked_by")?,
        acked_at: r.try_get("acked_at")?,
        ack_note: r.try_get("ack_note")?,
    })
}

/// PostgreSQL: the same operations in at most five statements, whatever their number
/// (opens, their outbox rows, extends, resolves, their outbox rows), in one transaction.
/// Grouping by kind keeps the per-violation order (open → extend → resolve) of one batch.
async fn apply_violations_pg(
    pool: &sqlx::PgPool,
    ops: &[ViolationOp],
    now_us: i64,
) -> Result<ApplyReport, StoreError> {
    const OPEN: &str = "INSERT INTO violations (id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, status, points, baseline, context)
        SELECT id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, 'open', points, baseline, context
        FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[])
          AS t(id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, points, baseline, context)
        ON CONFLICT DO NOTHING RETURNING id";
    const OUTBOX: &str = "INSERT INTO outbox (violation_id, event, payload, created_at)
        SELECT id, $2, payload, $4 FROM UNNEST($1::text[], $3::text[]) AS t(id, payload) ON CONFLICT DO NOTHING";
    const EXTEND: &str =
        "UPDATE violations v SET last_point_at = u.lp, points = COALESCE(u.pts, v.points)
        FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, lp, pts)
        WHERE v.id = u.id AND v.status = 'open' AND v.last_point_at < u.lp";
    const RESOLVE: &str = "UPDATE violations v SET status = 'resolved', resolved_at = u.at, points = COALESCE(u.pts, v.points)
        FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, at, pts)
        WHERE v.id = u.id AND v.status = 'open' RETURNING v.id";
    let mut report = ApplyReport::default();
    let opens: Vec<&NewViolation> = ops
        .iter()
        .filter_map(|o| {
            if let ViolationOp::Open(v) = o {
                Some(v)
            } else {
                None
            }
        })
        .collect();
    let mut tx = pool.begin().await?;
    if !opens.is_empty() {
        let col = |f: fn(&NewViolation) -> &str| opens.iter().map(|v| f(v)).collect::<Vec<&str>>();
        let num = |f: fn(&NewViolation) -> i64| opens.iter().map(|v| f(v)).collect::<Vec<i64>>();
        let won: Vec<String> = sqlx::query_scalar(OPEN)
            .bind(col(|v| &v.id))
            .bind(col(|v| &v.series_key))
            .bind(col(|v| &v.scope))
            .bind(col(|v| &v.site))
            .bind(col(|v| &v.host))
            .bind(col(|v| &v.provider))
            .bind(col(|v| &v.model))
            .bind(col(|v| &v.metric))
            .bind(num(|v| v.rule))
            .bind(num(|v| v.opened_at))
            .bind(num(|v| v.last_point_at))
            .bind(col(|v| &v.points))
            .bind(col(|v| &v.baseline))
            .bind(col(|v| &v.context))
            .fetch_all(&mut *tx)
            .await?;
        if !won.is_empty() {
            let payloads: Vec<String> = won
                .iter()
                .filter_map(|id| opens.iter().find(|v| &v.id == id))
                .map(|v| opened_payload(v))
                .collect();
            sqlx::query(OUTBOX)
                .bind(&won)
                .bind("opened")
                .bind(payloads)
                .bind(now_us)
                .execute(&mut *tx)
                .await?;
        }
        report.opened = won;
    }
    let (mut eid, mut elp, mut epts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rid, mut rat, mut rpts) = (Vec::new(), Vec::new(), Vec::new());
    for op in ops {
        match op {
            ViolationOp::Extend {
                id,
                last_point_at,
                points,
            } => {
                // one row per violation: a join with duplicates would update it arbitrarily
                match eid.iter().position(|e| *e == id.as_str()) {
                    Some(k) if elp[k] >= *last_point_at => {}
                    Some(k) => {
                        elp[k] = *last_point_at;
                        if points.is_some() {
                            epts[k] = points.as_deref();
                        }
                    }
                    None => {
                        eid.push(id.as_str());
                        elp.push(*last_point_at);
                        epts.push(points.as_deref());
                    }
                }
            }
            ViolationOp::Resolve { id, at, points } => {
                rid.push(id.as_str());
                rat.push(*at);
                rpts.push(points.as_deref());
            }
            ViolationOp::Open(_) => {}
        }
    }
    if !eid.is_empty() {
        sqlx::query(EXTEND)
            .bind(eid)
            .bind(elp)
            .bind(epts)
            .execute(&mut *tx)
            .await?;
    }
    if !rid.is_empty() {
        let resolved: Vec<String> = sqlx::query_scalar(RESOLVE)
            .bind(rid)
            .bind(rat)
            .bind(rpts)
            .fetch_all(&mut *tx)
            .await?;
        if !resolved.is_empty() {
            let payloads: Vec<String> = resolved
                .iter()
                .map(|id| outbox_payload("resolved", id, "{}"))
                .collect();
            sqlx::query(OUTBOX)
                .bind(&resolved)
                .bind("resolved")
                .bind(payloads)
                .bind(now_us)
                .execute(&mut *tx)
                .await?;
        }
        report.resolved = resolved;
    }
    tx.commit().await?;
    Ok(report)
}
