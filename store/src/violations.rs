//! Violations and their outbox rows.
//!
//! Guarantees: notifications are per incident. A violation that opens leading an incident
//! (`incident_id` = its own id) writes its `opened` outbox row in the same transaction; only
//! the insert that wins (no row with the same deterministic id yet) writes it, so replicas
//! racing on one episode produce one row and one notification. Members of an incident write
//! no outbox rows. A lead whose own detector goes quiet while paging members of its incident
//! are still open stays open (`quiet_at` set); the incident — and its lead — resolves when its
//! last paging member does, and only the update that flips the lead writes `resolved`.
//! Violations from before incidents existed (no `incident_id`) write `resolved` when they had
//! an `opened` row. Applying operations reports what changed ([`ApplyReport`]) and calls
//! nothing else.
//!
//! Stored encoding (times in Unix µs): `points` is a JSON array of `{"id", "ts", "value"}`
//! (X̄ buckets: `{"ts", "value", "n", "sd", "z"}`; older rows `{"bucket", "mean", …}`),
//! `baseline` the frozen copy's centre, sigma, k, method, transform, points, window and mode
//! (X̄-S: `{"method": "xbar_s", "center", "sigma", "bucket_us"}`), `context`
//! `{"before": [{"id", "ts", "value", "telemetry"}]}`. [`Violation`] is the typed form every
//! other crate reads.

use llmscope_model::{
    Ack, BaselineMode, ContextPoint, Detector, FrozenBaseline, Point, Scope, SeriesId, Severity,
    Violation, ViolationStatus,
};
use llmscope_spc::{Baseline, SigmaMethod, Transform};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::{Audit, audit_in};
use crate::{Store, StoreError};

/// A violation to open, extend or resolve.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ViolationOp {
    /// Insert (`ON CONFLICT DO NOTHING`) and, if this insert won and the violation leads its
    /// incident, its `opened` outbox row.
    Open(Violation),
    /// Makes open violations without an incident members of `incident` (markers that were
    /// already open when the incident began).
    Attach {
        /// The incident (its lead's id).
        incident: String,
        /// The violations.
        ids: Vec<String>,
    },
    /// The rule fired again inside the episode.
    Extend {
        /// Violation id.
        id: String,
        /// Last flagged point.
        last_point_at: i64,
        /// The whole union of points so far, when it changed enough to be rewritten.
        points: Option<Vec<Point>>,
    },
    /// The episode is over (quiet for `resolve_after` points, the detector back to normal):
    /// resolve once — a lead only once its incident's other paging members are resolved.
    Resolve {
        /// Violation id.
        id: String,
        /// Its series.
        series: SeriesId,
        /// Its rule.
        rule: u8,
        /// Resolution time, Unix µs.
        at: i64,
        /// Final points.
        points: Option<Vec<Point>>,
    },
}

/// A violation this call resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Its id.
    pub id: String,
    /// Its series.
    pub series: SeriesId,
    /// Its rule.
    pub rule: u8,
    /// Whether it led an incident (the incident is over).
    pub lead: bool,
    /// Whether its `resolved` outbox row was due (a lead, or a violation from before
    /// incidents): the alert dispatcher has work.
    pub notifies: bool,
}

/// What a batch of violation operations changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Ids of the violations this call inserted (it won the insert).
    pub opened: Vec<String>,
    /// Violations this call resolved.
    pub resolved: Vec<Resolved>,
}

/// An open incident: the model on a host it concerns and its lead violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentKey {
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// The lead violation's id (the incident's id).
    pub lead: String,
    /// Its open pages: the lead while its own detector fires (no `quiet_at`) and the open
    /// paging members.
    pub pages: Vec<String>,
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
    /// Detector.
    pub detector: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Incident (its lead's id).
    pub incident: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Only the leads of incidents (one row per incident).
    pub leads_only: bool,
    /// `open`, `resolved` or `acknowledged`.
    pub status: Option<String>,
    /// Opened at or after (µs).
    pub from: Option<i64>,
    /// Opened at or before (µs).
    pub to: Option<i64>,
    /// Series.
    pub key: Option<SeriesId>,
    /// Only these sites (`None`: any; empty: none) — a site-limited caller's.
    pub sites: Option<Vec<String>>,
}

const VIOLATION_COLS: &str = "id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, resolved_at, status, points, baseline, context, acked_by, acked_at, ack_note, detector, severity, incident_id";

// ---- stored encoding ----

#[derive(Serialize, Deserialize)]
struct StoredPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(alias = "bucket")]
    ts: i64,
    #[serde(alias = "mean")]
    value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    z: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    telemetry: Option<serde_json::Value>,
}

impl StoredPoint {
    fn of(p: &Point, telemetry: Option<serde_json::Value>) -> StoredPoint {
        StoredPoint {
            id: p.id.map(|u| u.to_string()),
            ts: p.ts,
            value: p.value,
            n: p.n,
            sd: p.sd,
            z: p.z,
            telemetry,
        }
    }

    fn point(&self) -> Point {
        Point {
            id: self
                .id
                .as_deref()
                .and_then(|s| uuid::Uuid::parse_str(s).ok()),
            ts: self.ts,
            value: self.value,
            n: self.n,
            sd: self.sd,
            z: self.z,
        }
    }
}

/// The stored text of a violation's points.
pub fn encode_points(points: &[Point]) -> String {
    let v: Vec<StoredPoint> = points.iter().map(|p| StoredPoint::of(p, None)).collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

fn decode_points(s: &str) -> Result<Vec<Point>, StoreError> {
    let v: Vec<StoredPoint> =
        serde_json::from_str(s).map_err(|e| StoreError::decode("violation points", s, e))?;
    Ok(v.iter().map(StoredPoint::point).collect())
}

#[derive(Serialize, Deserialize)]
struct StoredBaseline {
    #[serde(default)]
    id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
    center: f64,
    sigma: f64,
    #[serde(default = "default_k")]
    k: f64,
    #[serde(default)]
    method: String,
    #[serde(default)]
    transform: String,
    #[serde(default)]
    points: usize,
    #[serde(default)]
    window_from: i64,
    #[serde(default)]
    window_to: i64,
    #[serde(default)]
    mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket_us: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    phi: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn default_k() -> f64 {
    llmscope_spc::baseline::DEFAULT_K
}

fn encode_baseline(f: &FrozenBaseline) -> String {
    let b = &f.baseline;
    serde_json::to_string(&StoredBaseline {
        id: f.id,
        scope: Some(f.scope),
        center: b.center,
        sigma: b.sigma,
        k: b.k,
        method: b.method.as_str().into(),
        transform: b.transform.as_str().into(),
        points: b.points,
        window_from: f.window_from,
        window_to: f.window_to,
        mode: f.mode.as_str().into(),
        bucket_us: f.bucket_us,
        phi: b.phi,
    })
    .unwrap_or_else(|_| "{}".into())
}

fn decode_baseline(s: &str, scope: Scope) -> Result<FrozenBaseline, StoreError> {
    let b: StoredBaseline =
        serde_json::from_str(s).map_err(|e| StoreError::decode("violation baseline", s, e))?;
    let spc = Baseline {
        center: b.center,
        sigma: b.sigma,
        k: b.k,
        method: SigmaMethod::parse(&b.method).unwrap_or(SigmaMethod::Mrbar),
        transform: Transform::parse(&b.transform).unwrap_or(Transform::None),
        points: b.points,
        phi: b.phi,
    };
    let mut f = FrozenBaseline::new(
        b.id,
        b.scope.unwrap_or(scope),
        spc,
        (b.window_from, b.window_to),
        b.mode.parse().unwrap_or(BaselineMode::Auto),
    );
    f.bucket_us = b.bucket_us;
    Ok(f)
}

#[derive(Serialize, Deserialize, Default)]
struct StoredContext {
    #[serde(default)]
    before: Vec<StoredPoint>,
}

fn encode_context(c: &[ContextPoint]) -> String {
    let ctx = StoredContext {
        before: c
            .iter()
            .map(|p| StoredPoint::of(&p.point, p.telemetry.clone()))
            .collect(),
    };
    serde_json::to_string(&ctx).unwrap_or_else(|_| "{}".into())
}

fn decode_context(s: &str) -> Vec<ContextPoint> {
    let c: StoredContext = serde_json::from_str(s).unwrap_or_default();
    c.before
        .into_iter()
        .map(|p| ContextPoint {
            point: p.point(),
            telemetry: p.telemetry,
        })
        .collect()
}

/// The column values of a violation row.
struct Encoded<'a> {
    v: &'a Violation,
    key: String,
    points: String,
    baseline: String,
    context: String,
}

impl<'a> Encoded<'a> {
    fn of(v: &'a Violation) -> Encoded<'a> {
        Encoded {
            v,
            key: v.series.to_string(),
            points: encode_points(&v.points),
            baseline: encode_baseline(&v.baseline),
            context: encode_context(&v.context),
        }
    }
}

fn violation_from<R: Row>(r: &R) -> Result<Violation, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
{
    let text = |c: &str| r.try_get::<String, _>(c);
    let key = text("series_key")?;
    let series: SeriesId = key
        .parse()
        .map_err(|e| StoreError::decode("series key", &key, e))?;
    let scope = text("scope")?;
    let scope: Scope = scope
        .parse()
        .map_err(|e| StoreError::decode("violation scope", &scope, e))?;
    let status = text("status")?;
    let acked_by: Option<String> = r.try_get("acked_by")?;
    let acked_at: Option<i64> = r.try_get("acked_at")?;
    let ack = match (acked_by, acked_at) {
        (Some(by), Some(at)) => Some(Ack {
            by,
            at,
            note: r
                .try_get::<Option<String>, _>("ack_note")?
                .unwrap_or_default(),
        }),
        _ => None,
    };
    let rule = u8::try_from(r.try_get::<i64, _>("rule")?).unwrap_or(0);
    let detector = text("detector")?;
    let detector: Detector = detector
        .parse()
        .map_err(|e| StoreError::decode("violation detector", &detector, e))?;
    let severity = text("severity")?;
    let severity = if severity.is_empty() {
        Severity::default_for(detector, rule)
    } else {
        severity
            .parse()
            .map_err(|e| StoreError::decode("violation severity", &severity, e))?
    };
    Ok(Violation {
        id: text("id")?,
        series,
        scope,
        detector,
        rule,
        severity,
        incident: r.try_get("incident_id")?,
        opened_at: r.try_get("opened_at")?,
        last_point_at: r.try_get("last_point_at")?,
        resolved_at: r.try_get("resolved_at")?,
        status: status
            .parse()
            .map_err(|e| StoreError::decode("violation status", &status, e))?,
        points: decode_points(&text("points")?)?,
        baseline: decode_baseline(&text("baseline")?, scope)?,
        context: decode_context(&text("context")?),
        ack,
    })
}

/// Resolving one violation: a member (or a violation without incident) resolves; a lead
/// only notes that its own detector went quiet (`quiet_at`), [`CLOSE_QUIET_LEADS`] decides.
/// Binds: $1 the time, $2 the final points (or NULL).
const RESOLVE_ONE: &str = "UPDATE violations SET
    status = CASE WHEN incident_id = id THEN status ELSE 'resolved' END,
    resolved_at = CASE WHEN incident_id = id THEN resolved_at ELSE $1 END,
    quiet_at = CASE WHEN incident_id = id THEN COALESCE(quiet_at, $1) ELSE quiet_at END,
    points = COALESCE($2, points)";

/// Resolves quiet leads whose incidents have no open paging member left (at the later of
/// the lead's quiet time and its last paging member's resolution: markers neither keep an
/// incident open nor extend it); the caller adds the lead filter.
const CLOSE_QUIET_LEADS: &str = "UPDATE violations SET status = 'resolved',
    resolved_at = CASE WHEN COALESCE((SELECT MAX(m.resolved_at) FROM violations m WHERE m.incident_id = violations.id AND m.id <> violations.id AND m.severity IN ('critical', 'error')), 0) > quiet_at
        THEN (SELECT MAX(m.resolved_at) FROM violations m WHERE m.incident_id = violations.id AND m.id <> violations.id AND m.severity IN ('critical', 'error')) ELSE quiet_at END
    WHERE status = 'open' AND quiet_at IS NOT NULL AND incident_id = id
      AND NOT EXISTS (SELECT 1 FROM violations m WHERE m.incident_id = violations.id AND m.id <> violations.id AND m.status = 'open' AND m.severity IN ('critical', 'error'))";

/// The `resolved` outbox row of a resolved violation that had an `opened` one (a lead, or a
/// violation from before incidents); the caller adds the id filter. Binds: $1 now.
const RESOLVED_OUTBOX: &str = "INSERT INTO outbox (violation_id, event, created_at)
    SELECT v.id, 'resolved', $1 FROM violations v
    WHERE v.status = 'resolved' AND EXISTS (SELECT 1 FROM outbox o WHERE o.violation_id = v.id AND o.event = 'opened')";

/// What resolving one violation did: (id, status after, incident, series key, rule,
/// severity — empty on rows from before incidents).
type ResolvedRow = (String, String, Option<String>, String, i64, String);

/// The common end of applying the `Resolve` operations inside the transaction `$tx` (either
/// backend), given the rows `$rows` the resolving UPDATE returned: closes the incidents left
/// without an open paging member, writes the `resolved` outbox rows of leads (and of
/// violations from before incidents) and fills `$report.resolved`.
macro_rules! finish_resolves {
    ($tx:expr, $rows:expr, $now:expr, $report:expr) => {{
        // (id, key, rule, lead, may have an `opened` row)
        let mut closed: Vec<(String, String, i64, bool, bool)> = Vec::new();
        let mut incidents: Vec<String> = Vec::new();
        for (id, status, incident, key, rule, severity) in $rows {
            if status == "resolved" {
                let lead = incident.as_deref() == Some(id.as_str());
                // rows from before incidents (no severity yet) had an `opened` row each
                let legacy = severity.is_empty();
                closed.push((id.clone(), key, rule, lead, lead || legacy));
            }
            if let Some(i) = incident {
                incidents.push(i);
            }
        }
        incidents.sort();
        incidents.dedup();
        for lead in &incidents {
            let sql = format!("{CLOSE_QUIET_LEADS} AND id = $1 RETURNING id, series_key, rule");
            for r in sqlx::query(&sql).bind(lead).fetch_all(&mut *$tx).await? {
                closed.push((
                    r.try_get("id")?,
                    r.try_get("series_key")?,
                    r.try_get("rule")?,
                    true,
                    true,
                ));
            }
        }
        closed.sort_by(|a, b| a.0.cmp(&b.0));
        closed.dedup_by(|a, b| a.0 == b.0);
        for (id, key, rule, lead, notify) in closed {
            if notify {
                let sql = format!("{RESOLVED_OUTBOX} AND v.id = $2 ON CONFLICT DO NOTHING");
                sqlx::query(&sql)
                    .bind($now)
                    .bind(&id)
                    .execute(&mut *$tx)
                    .await?;
            }
            $report.resolved.push(Resolved {
                series: key
                    .parse()
                    .map_err(|e| StoreError::decode("series key", &key, e))?,
                rule: u8::try_from(rule).unwrap_or(0),
                id,
                lead,
                notifies: notify,
            });
        }
    }};
}

/// The `Resolve` operations of a batch, once per violation: (id, at, final points).
fn resolves(ops: &[ViolationOp]) -> Vec<(&str, i64, Option<String>)> {
    let mut seen = std::collections::HashSet::new();
    ops.iter()
        .filter_map(|op| match op {
            ViolationOp::Resolve { id, at, points, .. } if seen.insert(id.as_str()) => {
                Some((id.as_str(), *at, points.as_deref().map(encode_points)))
            }
            _ => None,
        })
        .collect()
}

impl Store {
    /// Applies violation operations in one transaction (see the module docs).
    pub async fn apply_violations(
        &self,
        ops: &[ViolationOp],
        now_us: i64,
    ) -> Result<ApplyReport, StoreError> {
        match self {
            Store::Postgres(pg) => apply_pg(pg.pool(), ops, now_us).await,
            Store::Sqlite(_) => self.apply_sqlite(ops, now_us).await,
        }
    }

    async fn apply_sqlite(
        &self,
        ops: &[ViolationOp],
        now_us: i64,
    ) -> Result<ApplyReport, StoreError> {
        const INSERT: &str = "INSERT INTO violations (id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, status, points, baseline, context, source, detector, severity, incident_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING";
        const OUTBOX: &str = "INSERT INTO outbox (violation_id, event, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        const ATTACH: &str =
            "UPDATE violations SET incident_id = $1 WHERE id = $2 AND incident_id IS NULL";
        const EXTEND: &str = "UPDATE violations SET last_point_at = $1, points = COALESCE($2, points) WHERE id = $3 AND status = 'open' AND last_point_at < $4";
        let mut report = ApplyReport::default();
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for op in ops {
                match op {
                    ViolationOp::Open(v) => {
                        let e = Encoded::of(v);
                        let s = &v.series;
                        let n = sqlx::query(INSERT)
                            .bind(&v.id).bind(&e.key).bind(v.scope.as_str()).bind(s.site_label()).bind(s.host_label()).bind(&s.provider)
                            .bind(&s.model).bind(s.metric.as_str()).bind(i64::from(v.rule)).bind(v.opened_at).bind(v.last_point_at)
                            .bind(&e.points).bind(&e.baseline).bind(&e.context)
                            .bind(s.source.as_str()).bind(v.detector.as_str()).bind(v.severity.as_str()).bind(&v.incident)
                            .execute(&mut *tx).await?.rows_affected();
                        if n > 0 {
                            if v.leads() {
                                sqlx::query(OUTBOX).bind(&e.v.id).bind("opened").bind(now_us).execute(&mut *tx).await?;
                            }
                            report.opened.push(v.id.clone());
                        }
                    }
                    ViolationOp::Attach { incident, ids } => {
                        for id in ids {
                            sqlx::query(ATTACH).bind(incident).bind(id).execute(&mut *tx).await?;
                        }
                    }
                    ViolationOp::Extend { id, last_point_at, points } => {
                        let pts = points.as_deref().map(encode_points);
                        sqlx::query(EXTEND).bind(*last_point_at).bind(pts).bind(id).bind(*last_point_at).execute(&mut *tx).await?;
                    }
                    ViolationOp::Resolve { .. } => {}
                }
            }
            let mut rows: Vec<ResolvedRow> = Vec::new();
            let sql = format!("{RESOLVE_ONE} WHERE id = $3 AND status = 'open' RETURNING id, status, incident_id, series_key, rule, severity");
            for (id, at, pts) in resolves(ops) {
                if let Some(r) = sqlx::query(&sql).bind(at).bind(pts).bind(id).fetch_optional(&mut *tx).await? {
                    rows.push((r.try_get("id")?, r.try_get("status")?, r.try_get("incident_id")?, r.try_get("series_key")?, r.try_get("rule")?, r.try_get("severity")?));
                }
            }
            finish_resolves!(tx, rows, now_us, report);
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Violations, newest first; optional status filter.
    pub async fn list_violations(
        &self,
        status: Option<ViolationStatus>,
        limit: i64,
    ) -> Result<Vec<Violation>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE ($1 = '' OR status = $1) ORDER BY opened_at DESC, rule LIMIT $2"
        );
        let status = status.map(|s| s.as_str()).unwrap_or("");
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(status).bind(limit).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// One violation by id.
    pub async fn get_violation(&self, id: &str) -> Result<Option<Violation>, StoreError> {
        let sql = format!("SELECT {VIOLATION_COLS} FROM violations WHERE id = $1");
        let row = with_pool!(self, p => sqlx::query(&sql).bind(id).fetch_optional(p).await?.as_ref().map(violation_from).transpose()?);
        Ok(row)
    }

    /// Open violations of one series.
    pub async fn open_violations(&self, series: &SeriesId) -> Result<Vec<Violation>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE series_key = $1 AND status = 'open'"
        );
        let key = series.to_string();
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(&key).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
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

    /// Open-violation counts per series.
    pub async fn open_counts(&self) -> Result<Vec<(SeriesId, i64)>, StoreError> {
        const SQL: &str = "SELECT series_key, COUNT(*) AS n FROM violations WHERE status = 'open' GROUP BY series_key";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get::<String, _>("series_key")?, r.try_get::<i64, _>("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        // keys that do not parse belong to no series anyone can ask for
        Ok(rows
            .into_iter()
            .filter_map(|(k, n)| Some((k.parse().ok()?, n)))
            .collect())
    }

    /// Acknowledges a violation; false when there is no such violation.
    pub async fn ack_violation(
        &self,
        id: &str,
        by: &str,
        note: &str,
        at: i64,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE violations SET acked_by = $1, ack_note = $2, acked_at = $3 WHERE id = $4";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(by).bind(note).bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Resolves a violation by hand and records who and why; false when it was not open.
    /// Resolving an incident's lead resolves the whole incident (its open members too) and
    /// writes its `resolved` outbox row.
    pub async fn resolve_violation(
        &self,
        v: &Violation,
        by: &str,
        note: &str,
        now: i64,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const MEMBERS: &str = "UPDATE violations SET status = 'resolved', resolved_at = $1 WHERE incident_id = $2 AND id <> $2 AND status = 'open'";
        const LEAD: &str = "UPDATE violations SET status = 'resolved', resolved_at = $1 WHERE id = $2 AND status = 'open'";
        const NOTE: &str = "UPDATE violations SET acked_by = COALESCE(acked_by, $1), acked_at = COALESCE(acked_at, $2), ack_note = COALESCE(ack_note, $3) WHERE id = $4";
        if !v.leads() {
            let op = ViolationOp::Resolve {
                id: v.id.clone(),
                series: v.series.clone(),
                rule: v.rule,
                at: now,
                points: None,
            };
            if !self
                .apply_violations(&[op], now)
                .await?
                .resolved
                .iter()
                .any(|r| r.id == v.id)
            {
                return Ok(false);
            }
        } else {
            let flipped = with_pool!(self, p => {
                let mut tx = p.begin().await?;
                sqlx::query(MEMBERS).bind(now).bind(&v.id).execute(&mut *tx).await?;
                let n = sqlx::query(LEAD).bind(now).bind(&v.id).execute(&mut *tx).await?.rows_affected();
                if n > 0 {
                    let sql = format!("{RESOLVED_OUTBOX} AND v.id = $2 ON CONFLICT DO NOTHING");
                    sqlx::query(&sql).bind(now).bind(&v.id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                n > 0
            });
            if !flipped {
                return Ok(false);
            }
        }
        // who resolved it, and the audit entry, in one transaction
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(NOTE).bind(by).bind(now).bind(format!("resolved by hand: {note}")).bind(&v.id).execute(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// The lead of the open incident of a model on a host, if any (the newest).
    pub async fn open_incident(
        &self,
        site: &str,
        host: &str,
        provider: &str,
        model: &str,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT id FROM violations WHERE site = $1 AND host = $2 AND provider = $3 AND model = $4 AND status = 'open' AND incident_id = id ORDER BY opened_at DESC LIMIT 1";
        let id = with_pool!(self, p => sqlx::query_scalar::<_, String>(SQL).bind(site).bind(host).bind(provider).bind(model).fetch_optional(p).await?);
        Ok(id)
    }

    /// Every open incident: (site, host, provider, model, lead id).
    pub async fn open_incidents(&self) -> Result<Vec<IncidentKey>, StoreError> {
        const SQL: &str = "SELECT site, host, provider, model, id FROM violations WHERE status = 'open' AND incident_id = id ORDER BY opened_at";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok(IncidentKey {
                site: r.try_get("site")?,
                host: r.try_get("host")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                lead: r.try_get("id")?,
                pages: Vec::new(),
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        const PAGES: &str = "SELECT incident_id, id FROM violations WHERE status = 'open' AND incident_id IS NOT NULL
            AND severity IN ('critical', 'error') AND (id <> incident_id OR quiet_at IS NULL)";
        let pages: Vec<(String, String)> = with_pool!(self, p => sqlx::query(PAGES).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("incident_id")?, r.try_get("id")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        let mut rows = rows;
        for (incident, id) in pages {
            if let Some(k) = rows.iter_mut().find(|k| k.lead == incident) {
                k.pages.push(id);
            }
        }
        Ok(rows)
    }

    /// The violations of an incident (its lead first, then by opening time).
    pub async fn incident_members(&self, lead: &str) -> Result<Vec<Violation>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE incident_id = $1 ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END, opened_at, id"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(lead).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Open violations of a detector.
    pub async fn open_of_detector(&self, d: Detector) -> Result<Vec<Violation>, StoreError> {
        let sql = format!(
            "SELECT {VIOLATION_COLS} FROM violations WHERE status = 'open' AND detector = $1"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(d.as_str()).fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Outbox rows as (violation id, event), oldest first.
    pub async fn outbox_events(&self) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT violation_id, event FROM outbox ORDER BY id";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("violation_id")?, r.try_get("event")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Violations of a series overlapping `[from, to]` (for flagged points).
    pub async fn violations_overlapping(
        &self,
        key: &SeriesId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Violation>, StoreError> {
        let f = ViolationFilter {
            key: Some(key.clone()),
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
    ) -> Result<Vec<Violation>, StoreError> {
        let mut sql = format!("SELECT {VIOLATION_COLS} FROM violations WHERE 1 = 1");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // binds: all text params first ($1..), then integers
        let mut text_conds: Vec<String> = Vec::new();
        let key = f.key.as_ref().map(ToString::to_string);
        for (col, v) in [
            ("site", &f.site),
            ("host", &f.host),
            ("model", &f.model),
            ("metric", &f.metric),
            ("series_key", &key),
            ("detector", &f.detector),
            ("source", &f.source),
            ("incident_id", &f.incident),
            ("severity", &f.severity),
        ] {
            if let Some(v) = v {
                texts.push(v.clone());
                text_conds.push(format!("{col} = ${}", texts.len()));
            }
        }
        if let Some(sites) = &f.sites {
            if sites.is_empty() {
                text_conds.push("1 = 0".into());
            } else {
                let mut ps = Vec::new();
                for site in sites {
                    texts.push(site.clone());
                    ps.push(format!("${}", texts.len()));
                }
                text_conds.push(format!("site IN ({})", ps.join(", ")));
            }
        }
        match f.status.as_deref() {
            Some("open") => text_conds.push("status = 'open'".into()),
            Some("resolved") => text_conds.push("status = 'resolved'".into()),
            Some("acknowledged") => text_conds.push("acked_at IS NOT NULL".into()),
            _ => {}
        }
        if f.leads_only {
            text_conds.push("incident_id = id".into());
        }
        if let Some((_, id)) = &cursor {
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
            q.fetch_all(p).await?.iter().map(violation_from).collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }
}

/// PostgreSQL: opens and extends in one statement each, whatever their number (plus the
/// opens' outbox rows), then the resolves (rare) one by one, in one transaction. Grouping by
/// kind keeps the per-violation order (open → extend → resolve) of one batch.
async fn apply_pg(
    pool: &sqlx::PgPool,
    ops: &[ViolationOp],
    now_us: i64,
) -> Result<ApplyReport, StoreError> {
    let mut tx = pool.begin().await?;
    let report = apply_pg_tx(&mut tx, ops, now_us).await?;
    tx.commit().await?;
    Ok(report)
}

/// [`apply_pg`] inside a transaction the caller commits.
pub(crate) async fn apply_pg_tx(
    tx: &mut sqlx::PgConnection,
    ops: &[ViolationOp],
    now_us: i64,
) -> Result<ApplyReport, StoreError> {
    const OPEN: &str = "INSERT INTO violations (id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, status, points, baseline, context, source, detector, severity, incident_id)
        SELECT id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, 'open', points, baseline, context, source, detector, severity, incident_id
        FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])
          AS t(id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, points, baseline, context, source, detector, severity, incident_id)
        ON CONFLICT DO NOTHING RETURNING id";
    const OUTBOX: &str = "INSERT INTO outbox (violation_id, event, created_at)
        SELECT id, $2, $3 FROM UNNEST($1::text[]) AS t(id) ON CONFLICT DO NOTHING";
    const ATTACH: &str =
        "UPDATE violations SET incident_id = $1 WHERE id = ANY($2) AND incident_id IS NULL";
    const EXTEND: &str =
        "UPDATE violations v SET last_point_at = u.lp, points = COALESCE(u.pts, v.points)
        FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, lp, pts)
        WHERE v.id = u.id AND v.status = 'open' AND v.last_point_at < u.lp";
    let mut report = ApplyReport::default();
    let opens: Vec<Encoded<'_>> = ops
        .iter()
        .filter_map(|o| match o {
            ViolationOp::Open(v) => Some(Encoded::of(v)),
            _ => None,
        })
        .collect();
    if !opens.is_empty() {
        let col =
            |f: for<'e> fn(&'e Encoded<'e>) -> &'e str| opens.iter().map(f).collect::<Vec<&str>>();
        let num = |f: fn(&Encoded<'_>) -> i64| opens.iter().map(f).collect::<Vec<i64>>();
        let won: Vec<String> = sqlx::query_scalar(OPEN)
            .bind(col(|e| &e.v.id))
            .bind(col(|e| &e.key))
            .bind(col(|e| e.v.scope.as_str()))
            .bind(col(|e| e.v.series.site_label()))
            .bind(col(|e| e.v.series.host_label()))
            .bind(col(|e| &e.v.series.provider))
            .bind(col(|e| &e.v.series.model))
            .bind(col(|e| e.v.series.metric.as_str()))
            .bind(num(|e| i64::from(e.v.rule)))
            .bind(num(|e| e.v.opened_at))
            .bind(num(|e| e.v.last_point_at))
            .bind(col(|e| &e.points))
            .bind(col(|e| &e.baseline))
            .bind(col(|e| &e.context))
            .bind(col(|e| e.v.series.source.as_str()))
            .bind(col(|e| e.v.detector.as_str()))
            .bind(col(|e| e.v.severity.as_str()))
            .bind(
                opens
                    .iter()
                    .map(|e| e.v.incident.as_deref())
                    .collect::<Vec<Option<&str>>>(),
            )
            .fetch_all(&mut *tx)
            .await?;
        let leads: Vec<&str> = opens
            .iter()
            .filter(|e| e.v.leads() && won.contains(&e.v.id))
            .map(|e| e.v.id.as_str())
            .collect();
        if !leads.is_empty() {
            sqlx::query(OUTBOX)
                .bind(&leads)
                .bind("opened")
                .bind(now_us)
                .execute(&mut *tx)
                .await?;
        }
        report.opened = won;
    }
    let (mut eid, mut elp, mut epts) = (Vec::new(), Vec::new(), Vec::<Option<String>>::new());
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
                        if let Some(p) = points {
                            epts[k] = Some(encode_points(p));
                        }
                    }
                    None => {
                        eid.push(id.as_str());
                        elp.push(*last_point_at);
                        epts.push(points.as_deref().map(encode_points));
                    }
                }
            }
            ViolationOp::Attach { incident, ids } => {
                sqlx::query(ATTACH)
                    .bind(incident)
                    .bind(ids)
                    .execute(&mut *tx)
                    .await?;
            }
            ViolationOp::Resolve { .. } | ViolationOp::Open(_) => {}
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
    // every resolve in one statement (the rare leads only note `quiet_at`)
    let rs = resolves(ops);
    let mut rows: Vec<ResolvedRow> = Vec::new();
    if !rs.is_empty() {
        let bulk = "UPDATE violations v SET
            status = CASE WHEN v.incident_id = v.id THEN v.status ELSE 'resolved' END,
            resolved_at = CASE WHEN v.incident_id = v.id THEN v.resolved_at ELSE u.at END,
            quiet_at = CASE WHEN v.incident_id = v.id THEN COALESCE(v.quiet_at, u.at) ELSE v.quiet_at END,
            points = COALESCE(u.pts, v.points)
            FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, at, pts)
            WHERE v.id = u.id AND v.status = 'open'
            RETURNING v.id, v.status, v.incident_id, v.series_key, v.rule, v.severity";
        for r in sqlx::query(bulk)
            .bind(rs.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(rs.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(rs.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?
        {
            rows.push((
                r.try_get("id")?,
                r.try_get("status")?,
                r.try_get("incident_id")?,
                r.try_get("series_key")?,
                r.try_get("rule")?,
                r.try_get("severity")?,
            ));
        }
    }
    finish_resolves!(tx, rows, now_us, report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmscope_model::Metric;

    #[test]
    fn old_and_new_point_encodings_decode() {
        let old = r#"[{"bucket": 60000000, "n": 3, "mean": 12.5, "sd": 1.0, "z": 3.4}]"#;
        let p = decode_points(old).unwrap();
        assert_eq!((p[0].ts, p[0].value, p[0].n), (60_000_000, 12.5, Some(3)));
        let back = decode_points(&encode_points(&p)).unwrap();
        assert_eq!(back, p);
        let f = decode_baseline(
            r#"{"method": "xbar_s", "center": 10.0, "sigma": 2.0, "bucket_us": 60000000}"#,
            Scope::Site,
        )
        .unwrap();
        assert_eq!(f.ucl(), 16.0);
        assert_eq!(f.bucket_us, Some(60_000_000));
        assert_eq!(
            decode_baseline(&encode_baseline(&f), Scope::Site).unwrap(),
            f
        );
        let s = SeriesId::series("a", "b", "c", "d", Metric::LatencyMs);
        assert_eq!(s.to_string().parse::<SeriesId>().unwrap(), s);
    }
}
