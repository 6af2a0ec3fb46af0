//! Violations: search with keyset pagination, one violation with its context, acknowledge,
//! resolve, and CSV export of any filter.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use llmscope_spc::{NelsonConfig, Rule};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, ApiState, ms, parse_body, require_admin};
use crate::store::api::ViolationFilter;
use crate::store::live::ViolationRow;
use crate::store::now_us;

/// Short rule names.
pub fn rule_name(rule: i64) -> &'static str {
    match rule {
        1 => "Beyond 3σ",
        2 => "Shift (same side)",
        3 => "Trend",
        4 => "Oscillation",
        5 => "2 of 3 beyond 2σ",
        6 => "4 of 5 beyond 1σ",
        7 => "Hugging the centre",
        8 => "Avoiding the centre",
        _ => "Unknown rule",
    }
}

/// A violation for the API (times in ms, rule explained in plain words).
pub fn violation_json(v: &ViolationRow, detail: bool) -> Value {
    let text = u8::try_from(v.rule)
        .ok()
        .and_then(Rule::from_number)
        .map(|r| r.explain(&NelsonConfig::default()))
        .unwrap_or_default();
    let status = if v.status == "open" && v.acked_at.is_some() {
        "acknowledged"
    } else {
        v.status.as_str()
    };
    let mut o = json!({"id": v.id, "key": v.series_key, "scope": v.scope, "site": v.site, "host": v.host,
        "provider": v.provider, "model": v.model, "metric": v.metric, "rule": v.rule,
        "rule_name": rule_name(v.rule), "rule_text": text, "opened_at": ms(v.opened_at),
        "last_point_at": ms(v.last_point_at), "resolved_at": v.resolved_at.map(ms), "status": status,
        "acked_by": v.acked_by, "acked_at": v.acked_at.map(ms), "ack_note": v.ack_note});
    if detail {
        let pts = |a: &Value| -> Value {
            Value::Array(
                a.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let mut p = p.clone();
                        if let Some(t) = p["ts"].as_i64() {
                            p["ts"] = json!(ms(t));
                        }
                        p
                    })
                    .collect(),
            )
        };
        o["points"] = pts(&v.points);
        let mut b = v.baseline.clone();
        if b.is_object()
            && b.get("ucl").is_none()
            && let (Some(c), Some(s)) = (b["center"].as_f64(), b["sigma"].as_f64())
        {
            let k = b["k"].as_f64().unwrap_or(3.0);
            let log = b["transform"] == "log";
            let f = |x: f64| if log { x.exp() } else { x };
            b["ucl"] = json!(f(c + k * s));
            b["lcl"] = json!(f(c - k * s));
        }
        o["baseline"] = b;
        // the ±10-point window: before, the qualifying points, after (by time, once each)
        let mut window: std::collections::BTreeMap<i64, Value> = std::collections::BTreeMap::new();
        for part in [
            &v.context["before"],
            &v.points,
            &v.context["after"],
            &v.context["points"],
        ] {
            for p in part.as_array().into_iter().flatten() {
                if let (Some(t), Some(val)) = (p["ts"].as_i64(), p["value"].as_f64()) {
                    window
                        .entry(t)
                        .or_insert_with(|| json!({"ts": ms(t), "value": val}));
                }
            }
        }
        o["context"] = json!({"points": window.into_values().collect::<Vec<_>>(),
            "before": pts(&v.context["before"]), "after": pts(&v.context["after"])});
    }
    o
}

/// Query parameters of the violation list and CSV.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    site: Option<String>,
    host: Option<String>,
    model: Option<String>,
    metric: Option<String>,
    rule: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    key: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn filter(q: &ListQuery) -> ApiResult<ViolationFilter> {
    let o = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let rule = match o(&q.rule) {
        None => None,
        Some(r) => Some(
            r.parse::<i64>()
                .ok()
                .filter(|r| (1..=8).contains(r))
                .ok_or_else(|| ApiError::bad("rule", format!("`rule` must be 1..8, got `{r}`")))?,
        ),
    };
    let status = o(&q.status);
    if let Some(s) = &status
        && !matches!(s.as_str(), "open" | "resolved" | "acknowledged")
    {
        return Err(ApiError::bad(
            "status",
            "`status` must be open, resolved or acknowledged",
        ));
    }
    let from = match o(&q.from) {
        Some(t) => Some(super::read::time_param("from", Some(&t), 0)?),
        None => None,
    };
    let to = match o(&q.to) {
        Some(t) => Some(super::read::time_param("to", Some(&t), 0)?),
        None => None,
    };
    Ok(ViolationFilter {
        site: o(&q.site),
        host: o(&q.host),
        model: o(&q.model),
        metric: o(&q.metric),
        rule,
        status,
        from,
        to,
        key: o(&q.key),
    })
}

async fn list(
    State(st): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let f = filter(&q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "`limit` must be from 1 to 1000"));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let (t, id) = c
                .split_once(':')
                .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| ApiError::bad("cursor", "`cursor` is not one this API returned"))?;
            Some((t, id))
        }
    };
    let mut rows = st.store.search_violations(&f, cursor, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|v| format!("{}:{}", v.opened_at, v.id))
    } else {
        None
    };
    Ok(Json(json!({
        "items": rows.iter().map(|v| violation_json(v, false)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no violation with id `{id}`"))
}

async fn find(st: &ApiState, id: &str) -> ApiResult<ViolationRow> {
    st.store
        .get_violation(id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn one(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let v = find(&st, &id).await?;
    let mut o = violation_json(&v, true);
    // the engine stores the 10 points before the trigger; the 10 after it come from the samples
    if v.scope == "series"
        && let Some(metric) = crate::live::Metric::parse(&v.metric)
    {
        let sel = crate::store::live::PointSelector {
            site: v.site.clone(),
            host: v.host.clone(),
            provider: v.provider.clone(),
            model: v.model.clone(),
        };
        let rows = st
            .store
            .sample_points(&sel, v.opened_at + 1, now_us() + 86_400_000_000, false, 40)
            .await?;
        let after: Vec<Value> = rows
            .iter()
            .filter_map(|r| {
                let value = metric.value(r.latency_ms, r.ttft_ms, r.tokens_out)?;
                Some(json!({"ts": ms(r.ts_us), "value": value}))
            })
            .take(10)
            .collect();
        let mut window: std::collections::BTreeMap<i64, Value> = std::collections::BTreeMap::new();
        for p in o["context"]["points"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(after.iter())
        {
            if let Some(t) = p["ts"].as_i64() {
                window.entry(t).or_insert_with(|| p.clone());
            }
        }
        o["context"]["points"] = Value::Array(window.into_values().collect());
        if o["context"]["after"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            o["context"]["after"] = Value::Array(after);
        }
    }
    // telemetry of the host around the violation (±5 minutes)
    let t = super::read::telemetry_of(
        &st,
        &v.site,
        &v.host,
        v.opened_at - 300_000_000,
        v.last_point_at + 300_000_000,
        60,
    )
    .await?;
    if t["host"].as_array().is_some_and(|a| !a.is_empty()) {
        o["context"]["telemetry"] = t;
    } else if o["context"].get("telemetry").is_none() {
        o["context"]["telemetry"] = Value::Null;
    }
    Ok(Json(o))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    note: Option<String>,
}

async fn ack(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    require_admin(&st, &headers).await?;
    let b: AckBody = parse_body(&body)?;
    if b.by.trim().is_empty() {
        return Err(ApiError::bad("by", "`by` must name who acknowledges"));
    }
    if !st
        .store
        .ack_violation(&id, &b.by, b.note.as_deref().unwrap_or(""), now_us())
        .await?
    {
        return Err(not_found(&id));
    }
    let v = find(&st, &id).await?;
    super::events::publish(
        "violation",
        json!({"id": id, "event": "acknowledged", "key": v.series_key, "rule": v.rule}),
    );
    Ok(Json(violation_json(&v, false)))
}

async fn resolve(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    require_admin(&st, &headers).await?;
    let b: AckBody = parse_body(&body)?;
    if b.by.trim().is_empty() {
        return Err(ApiError::bad("by", "`by` must name who resolves"));
    }
    let v = find(&st, &id).await?;
    if v.status != "open" {
        return Err(ApiError::conflict(format!(
            "violation `{id}` is already resolved"
        )));
    }
    st.store
        .resolve_violation(&id, &b.by, b.note.as_deref().unwrap_or(""), now_us())
        .await?;
    // the store publishes the `resolved` event with the outbox row
    Ok(Json(violation_json(&find(&st, &id).await?, false)))
}

/// A CSV cell: quoted when needed, and neutralised against formula injection (a leading
/// `=`, `+`, `-`, `@`, tab or CR gets a `'` in front).
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A CSV document from a header and rows.
pub fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A CSV attachment response.
pub fn csv_response(name: &str, body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

async fn export(
    State(st): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let f = filter(&q)?;
    let rows = st.store.search_violations(&f, None, 100_000).await?;
    let body = csv(
        &[
            "id",
            "status",
            "site",
            "host",
            "provider",
            "model",
            "metric",
            "rule",
            "rule_name",
            "opened_at",
            "last_point_at",
            "resolved_at",
            "acked_by",
            "acked_at",
            "ack_note",
        ],
        rows.iter().map(|v| {
            let j = violation_json(v, false);
            vec![
                v.id.clone(),
                j["status"].as_str().unwrap_or("").to_owned(),
                v.site.clone(),
                v.host.clone(),
                v.provider.clone(),
                v.model.clone(),
                v.metric.clone(),
                v.rule.to_string(),
                rule_name(v.rule).to_owned(),
                rfc3339(v.opened_at),
                rfc3339(v.last_point_at),
                v.resolved_at.map(rfc3339).unwrap_or_default(),
                v.acked_by.clone().unwrap_or_default(),
                v.acked_at.map(rfc3339).unwrap_or_default(),
                v.ack_note.clone().unwrap_or_default(),
            ]
        }),
    );
    Ok(csv_response("violations.csv", body))
}

#[derive(Deserialize)]
struct SamplesQuery {
    site: Option<String>,
    host: Option<String>,
    model: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn samples_csv(
    State(st): State<ApiState>,
    Query(q): Query<SamplesQuery>,
) -> ApiResult<impl IntoResponse> {
    let (from, to) = super::read::range(q.from.as_deref(), q.to.as_deref())?;
    let o = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let rows = st
        .store
        .export_samples(
            o(&q.site).as_deref(),
            o(&q.host).as_deref(),
            o(&q.model).as_deref(),
            from,
            to,
            1_000_000,
        )
        .await?;
    let body = csv(
        &[
            "id",
            "ts",
            "site",
            "host",
            "provider",
            "model",
            "source",
            "latency_ms",
            "ttft_ms",
            "tokens_in",
            "tokens_out",
            "status",
            "http_status",
            "error",
        ],
        rows.into_iter().map(|mut r| {
            if let Some(t) = r.get(1).and_then(|t| t.parse::<i64>().ok()) {
                r[1] = rfc3339(t);
            }
            r
        }),
    );
    Ok(csv_response("samples.csv", body))
}

/// The violation routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/violations", get(list))
        .route("/api/v1/violations.csv", get(export))
        .route("/api/v1/samples.csv", get(samples_csv))
        .route("/api/v1/violations/{id}", get(one))
        .route("/api/v1/violations/{id}/ack", post(ack))
        .route("/api/v1/violations/{id}/resolve", post(resolve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_neutralised() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@sum"), "'@sum");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(
            csv(&["a", "b"], vec![vec!["1".into(), "x\ny".into()]]),
            "a,b\n1,\"x\ny\"\n"
        );
    }
}
