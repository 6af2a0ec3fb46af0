//! Violations: search with keyset pagination, one violation with its context, acknowledge,
//! resolve, and CSV export of any filter.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use llmscope_model::{LiveEvent, Scope, Violation, ViolationStatus, rule_title};
use llmscope_store::samples::PointSelector;
use llmscope_store::violations::ViolationFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, ms, parse_body};
use crate::access::snapshot;

/// A violation with its detail: the wire shape plus the ±10-point window around the
/// trigger (`context.points`: the points before, the qualifying points and the 10 after,
/// by time, once each) and the host's telemetry around it.
fn detail(v: &Violation, after: &[Value]) -> Value {
    let mut o = serde_json::to_value(v).unwrap_or_default();
    let before: Vec<Value> = v
        .context
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    let mut window: std::collections::BTreeMap<i64, Value> = std::collections::BTreeMap::new();
    let points: Vec<Value> = v
        .points
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    for p in before.iter().chain(points.iter()).chain(after.iter()) {
        if let (Some(t), Some(val)) = (p["ts"].as_i64(), p["value"].as_f64()) {
            window
                .entry(t)
                .or_insert_with(|| json!({"ts": t, "value": val}));
        }
    }
    o["context"] = json!({"points": window.into_values().collect::<Vec<_>>(),
        "before": before, "after": after});
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
    detector: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    incident: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A text-enum query parameter, validated and put back in its canonical text (the error
/// names the parameter and lists the choices).
fn parse_opt<T>(field: &str, v: Option<String>) -> ApiResult<Option<String>>
where
    T: std::str::FromStr + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    v.map(|v| {
        v.parse::<T>()
            .map(|t| t.to_string())
            .map_err(|e| ApiError::bad(field, e.to_string()))
    })
    .transpose()
}

/// The filter of a list query for `caller` (errors name the parameter; a site-limited
/// caller's filter keeps to its sites).
pub fn filter(q: &ListQuery, caller: &Caller) -> ApiResult<ViolationFilter> {
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
    let metric = match o(&q.metric) {
        Some(m) => Some(super::read::parse_metric("metric", &m)?.as_str().to_owned()),
        None => None,
    };
    let key = match o(&q.key) {
        Some(k) => Some(
            k.parse()
                .map_err(|e| ApiError::bad("key", format!("{e}")))?,
        ),
        None => None,
    };
    let detector = parse_opt::<llmscope_model::Detector>("detector", o(&q.detector))?;
    let source = parse_opt::<llmscope_model::Source>("source", o(&q.source))?;
    let severity = parse_opt::<llmscope_model::Severity>("severity", o(&q.severity))?;
    Ok(ViolationFilter {
        site: o(&q.site),
        host: o(&q.host),
        model: o(&q.model),
        metric,
        rule,
        detector,
        source,
        incident: o(&q.incident),
        severity,
        leads_only: false,
        status,
        from,
        to,
        key,
        sites: caller.site_limit().map(<[String]>::to_vec),
    })
}

/// One page of violations matching `f` (keyset pagination on the query's `cursor` and
/// `limit`) and the next cursor.
pub async fn page(
    st: &ApiState,
    f: &ViolationFilter,
    q: &ListQuery,
) -> ApiResult<(Vec<Violation>, Option<String>)> {
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
    let mut rows = st.store.search_violations(f, cursor, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|v| format!("{}:{}", v.opened_at, v.id))
    } else {
        None
    };
    Ok((rows, next))
}

async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let f = filter(&q, &caller)?;
    let (rows, next) = page(&st, &f, &q).await?;
    Ok(Json(json!({
        "items": rows.iter().map(Violation::summary).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no violation with id `{id}`"))
}

/// The violation `id` if `caller` may see its site (else 404, as if it did not exist).
pub async fn find(st: &ApiState, caller: &Caller, id: &str) -> ApiResult<Violation> {
    st.store
        .get_violation(id)
        .await?
        .filter(|v| caller.site_limit().is_none() || caller.may_see(&v.series.site))
        .ok_or_else(|| not_found(id))
}

async fn one(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let mut v = find(&st, &caller, &id).await?;
    // the engine stores the 10 points before a page's trigger (a marker's come from the
    // samples, as long as they are kept); the 10 after it come from the samples
    let mut after = Vec::new();
    if v.scope == Scope::Series && v.series.scope == Scope::Series && v.context.is_empty() {
        let mut rows = st
            .store
            .sample_points(
                &PointSelector::of(&v.series),
                v.opened_at.saturating_sub(86_400_000_000),
                v.opened_at,
                true,
                40,
            )
            .await?;
        rows.reverse();
        v.context = rows
            .iter()
            .filter_map(|r| {
                Some(llmscope_model::ContextPoint {
                    point: llmscope_model::Point::sample(r.id, r.ts_us, r.value(v.series.metric)?),
                    telemetry: None,
                })
            })
            .rev()
            .take(11)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
    }
    if v.scope == Scope::Series && v.series.scope == Scope::Series {
        let rows = st
            .store
            .sample_points(
                &PointSelector::of(&v.series),
                v.opened_at.saturating_add(1),
                st.now().saturating_add(86_400_000_000),
                false,
                40,
            )
            .await?;
        after = rows
            .iter()
            .filter_map(|r| {
                let value = r.value(v.series.metric)?;
                Some(json!({"ts": ms(r.ts_us), "value": value}))
            })
            .take(10)
            .collect();
    }
    let mut o = detail(&v, &after);
    // telemetry of the host around the violation (±5 minutes), read once for the charts
    // and for what the model server said when the episode began
    let (from, to) = (
        v.opened_at.saturating_sub(300_000_000),
        v.last_point_at.saturating_add(300_000_000),
    );
    let rows = super::read::telemetry_rows(&st, &v.series.site, &v.series.host, from, to).await?;
    let t = super::read::bucket_telemetry(&rows, &v.series.site, &v.series.host, from, to, 60);
    o["context"]["telemetry"] = if t["host"].as_array().is_some_and(|a| !a.is_empty()) {
        t
    } else {
        Value::Null
    };
    // "queue depth when the shift began"
    o["context"]["server_at_open"] = super::read::server_metrics_at(&rows, v.opened_at);
    Ok(Json(o))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// Recorded with a token without a user; a signed-in user is recorded as themselves.
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: Option<String>,
}

fn change_body(body: &[u8]) -> ApiResult<AckBody> {
    if body.is_empty() {
        return Ok(AckBody::default());
    }
    parse_body(body)
}

async fn ack(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b = change_body(&body)?;
    let before = find(&st, &caller, &id).await?;
    let by = super::admin::recorded_as(&caller, &b.by);
    let note = b.note.as_deref().unwrap_or("");
    let entry = st
        .audit(&caller, "violation.ack", format!("violation:{id}"))
        .change(
            snapshot(&before.summary()),
            snapshot(&serde_json::json!({"acked_by": by, "note": note})),
        );
    if !st
        .store
        .ack_violation(&id, &by, note, st.now(), Some(&entry))
        .await?
    {
        return Err(not_found(&id));
    }
    let v = find(&st, &caller, &id).await?;
    st.announce(LiveEvent::ViolationAcknowledged {
        id: v.id.clone(),
        series: v.series.clone(),
        rule: v.rule,
    });
    Ok(Json(v.summary()))
}

async fn resolve(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b = change_body(&body)?;
    let v = find(&st, &caller, &id).await?;
    if v.status != ViolationStatus::Open {
        return Err(ApiError::conflict(format!(
            "violation `{id}` is already resolved"
        )));
    }
    let by = super::admin::recorded_as(&caller, &b.by);
    let note = b.note.as_deref().unwrap_or("");
    let entry = st
        .audit(&caller, "violation.resolve", format!("violation:{id}"))
        .change(
            snapshot(&v.summary()),
            snapshot(&serde_json::json!({"status": "resolved", "by": by, "note": note})),
        );
    if st
        .store
        .resolve_violation(&v, &by, note, st.now(), Some(&entry))
        .await?
    {
        // wakes the dispatcher: the `resolved` outbox row is waiting
        st.announce(LiveEvent::ViolationResolved {
            id: v.id.clone(),
            series: v.series.clone(),
            rule: v.rule,
            // resolving by hand: wake the dispatcher whatever it was (cheap, and rare)
            notifies: true,
        });
    }
    Ok(Json(find(&st, &caller, &id).await?.summary()))
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

/// A Unix µs time as RFC 3339 (ms, UTC).
pub fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

async fn export(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let f = filter(&q, &caller)?;
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
            let s = &v.series;
            let ack = v.ack.as_ref();
            vec![
                v.id.clone(),
                v.display_status().to_owned(),
                s.site_label().to_owned(),
                s.host_label().to_owned(),
                s.provider.clone(),
                s.model.clone(),
                s.metric.to_string(),
                v.rule.to_string(),
                rule_title(v.rule).to_owned(),
                rfc3339(v.opened_at),
                rfc3339(v.last_point_at),
                v.resolved_at.map(rfc3339).unwrap_or_default(),
                ack.map(|a| a.by.clone()).unwrap_or_default(),
                ack.map(|a| rfc3339(a.at)).unwrap_or_default(),
                ack.map(|a| a.note.clone()).unwrap_or_default(),
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
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SamplesQuery>,
) -> ApiResult<impl IntoResponse> {
    let (from, to) = super::read::range(q.from.as_deref(), q.to.as_deref(), st.now())?;
    let o = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    // a site-limited caller exports its sites: the one asked for, or each of them
    let sites: Vec<Option<String>> = match (o(&q.site), caller.site_limit()) {
        (Some(s), Some(_)) if !caller.may_see(&s) => Vec::new(),
        (Some(s), _) => vec![Some(s)],
        (None, Some(limit)) => limit.iter().cloned().map(Some).collect(),
        (None, None) => vec![None],
    };
    let mut rows = Vec::new();
    for site in sites {
        rows.extend(
            st.store
                .export_samples(
                    site.as_deref(),
                    o(&q.host).as_deref(),
                    o(&q.model).as_deref(),
                    from,
                    to,
                    1_000_000,
                )
                .await?,
        );
    }
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
        rows.into_iter().map(|r| {
            let opt = |v: Option<String>| v.unwrap_or_default();
            vec![
                r.id.to_string(),
                rfc3339(r.ts_us),
                r.site,
                r.host,
                r.provider,
                r.model,
                r.source.to_string(),
                r.latency_ms.to_string(),
                opt(r.ttft_ms.map(|x| x.to_string())),
                opt(r.tokens_in.map(|x| x.to_string())),
                opt(r.tokens_out.map(|x| x.to_string())),
                r.status.to_string(),
                opt(r.http_status.map(|x| x.to_string())),
                opt(r.error),
            ]
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
