//! `/api/v1/otlp/…`: the per-interval series built from OTLP GenAI metrics (issue 16) and
//! their X̄ chart.
//!
//! Each point is one export interval: its count, exact mean (sum / count), min/max when the
//! exporter sent them and p50–p99 estimated from the buckets. The chart is an X̄ chart of the
//! interval means with limits from the moving range of those means (an individuals chart of
//! subgroup averages, as Wheeler recommends when the subgroup size varies from interval to
//! interval): centre and sigma (MR̄/d2) from the first `phase1` intervals of the range, the
//! eight Nelson rules marking the rest. Its limits therefore include the interval-to-interval
//! variation of the traffic, not only the spread of single calls. Per-request values, paging
//! and incidents come from spans; these series are charted and marked, they do not page.

use std::collections::BTreeMap;

use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use axum::{Json, Router};
use llmscope_spc::{Baseline, BaselineOptions, NelsonConfig, nelson};
use llmscope_store::intervals::{Interval, IntervalKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::read::range;
use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, ms};

/// Phase I intervals when the query names none.
const DEFAULT_PHASE1: usize = 20;
/// Fewest Phase I intervals a chart is drawn from.
const MIN_PHASE1: usize = 8;
/// Most intervals one query returns.
const MAX_INTERVALS: i64 = 10_000;

/// The routes.
pub fn routes() -> Router<ApiState> {
    use axum::routing::get;
    Router::new()
        .route("/api/v1/otlp/series", get(series))
        .route("/api/v1/otlp/intervals", get(intervals))
}

fn unit(k: &IntervalKey) -> &'static str {
    if k.instrument == "gen_ai.client.token.usage" {
        "tokens"
    } else {
        "ms"
    }
}

fn key_json(k: &IntervalKey) -> Value {
    json!({
        "key": k.text(),
        "site": k.site,
        "host": k.host,
        "provider": k.provider,
        "model": k.model,
        "operation": k.operation,
        "instrument": k.instrument,
        "token_type": k.token_type,
        "unit": unit(k),
    })
}

#[derive(Deserialize)]
struct SeriesQuery {
    site: Option<String>,
    model: Option<String>,
}

/// `GET /api/v1/otlp/series`: every interval series the caller may see.
async fn series(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> ApiResult<impl IntoResponse> {
    let rows: Vec<Value> = st
        .store
        .interval_series()
        .await?
        .into_iter()
        .filter(|s| caller.may_see(&s.key.site))
        .filter(|s| q.site.as_ref().is_none_or(|x| *x == s.key.site))
        .filter(|s| q.model.as_ref().is_none_or(|x| *x == s.key.model))
        .map(|s| {
            let mut v = key_json(&s.key);
            v["intervals"] = json!(s.intervals);
            v["last"] = json!(ms(s.last_us));
            v
        })
        .collect();
    Ok(Json(rows))
}

#[derive(Deserialize)]
struct IntervalsQuery {
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
    phase1: Option<usize>,
}

/// One chart point: the intervals of one end time merged (several exporters of one series).
#[derive(Debug, Default, Clone, PartialEq)]
struct Merged {
    start_us: i64,
    end_us: i64,
    count: i64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    /// Count-weighted quantiles (exact for one exporter, an approximation for several).
    q: [Option<f64>; 4],
    errors: i64,
}

fn merge(rows: &[Interval]) -> Vec<Merged> {
    let mut by_end: BTreeMap<i64, (Merged, [f64; 4], [i64; 4])> = BTreeMap::new();
    for r in rows {
        let (m, qsum, qn) = by_end.entry(r.end_us).or_insert_with(|| {
            (
                Merged {
                    start_us: r.start_us,
                    end_us: r.end_us,
                    ..Merged::default()
                },
                [0.0; 4],
                [0; 4],
            )
        });
        if !r.error_type.is_empty() {
            m.errors += r.count;
            continue;
        }
        m.start_us = m.start_us.min(r.start_us);
        m.count += r.count;
        m.sum += r.sum;
        m.min = match (m.min, r.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.max = match (m.max, r.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for i in 0..4 {
            if let Some(v) = r.quantiles[i] {
                qsum[i] += v * r.count as f64;
                qn[i] += r.count;
            }
        }
    }
    by_end
        .into_values()
        .map(|(mut m, qsum, qn)| {
            for i in 0..4 {
                m.q[i] = (qn[i] > 0).then(|| qsum[i] / qn[i] as f64);
            }
            m
        })
        .collect()
}

/// The X̄ chart of interval means (see the module's doc), or why there is none.
fn chart(means: &[f64], phase1: usize) -> Result<(Baseline, Vec<Vec<u8>>), String> {
    if means.len() < MIN_PHASE1 {
        return Err(format!(
            "{} interval(s) with calls in range; the chart needs at least {MIN_PHASE1}",
            means.len()
        ));
    }
    let k = phase1.min(means.len());
    let b = Baseline::estimate(&means[..k], &BaselineOptions::default())
        .map_err(|e| format!("no limits from the first {k} intervals: {e}"))?;
    let flags = nelson::evaluate_values(means, &b, &NelsonConfig::default())
        .map_err(|e| format!("the rules could not be evaluated: {e}"))?;
    Ok((
        b,
        flags
            .iter()
            .map(|f| f.iter().map(|r| r.number()).collect())
            .collect(),
    ))
}

/// `GET /api/v1/otlp/intervals?key=&from=&to=&phase1=`: the series' intervals and their X̄
/// chart.
async fn intervals(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<IntervalsQuery>,
) -> ApiResult<impl IntoResponse> {
    let text = q
        .key
        .ok_or_else(|| ApiError::bad("key", "`key` is required (see /api/v1/otlp/series)"))?;
    let key = IntervalKey::parse(&text).ok_or_else(|| {
        ApiError::bad(
            "key",
            format!(
                "`{text}` is not an interval series key: otlp|site|host|provider|model|operation|instrument|token_type"
            ),
        )
    })?;
    if !caller.may_see(&key.site) {
        return Err(super::hidden("interval series"));
    }
    let phase1 = q.phase1.unwrap_or(DEFAULT_PHASE1);
    if !(MIN_PHASE1..=1000).contains(&phase1) {
        return Err(ApiError::bad(
            "phase1",
            format!("phase1 must be {MIN_PHASE1}..=1000 intervals"),
        ));
    }
    let (from, to) = range(q.from.as_deref(), q.to.as_deref(), st.now())?;
    let rows = st.store.intervals(&key, from, to, MAX_INTERVALS).await?;
    let points = merge(&rows);
    let with_calls: Vec<&Merged> = points.iter().filter(|m| m.count > 0).collect();
    let means: Vec<f64> = with_calls.iter().map(|m| m.sum / m.count as f64).collect();
    let (chart_json, flags) = match chart(&means, phase1) {
        Ok((b, flags)) => (
            json!({
                "kind": "xbar",
                "limits_from": "moving range of the interval means (MR̄/d2)",
                "center": b.center,
                "sigma": b.sigma,
                "ucl": b.ucl(),
                "lcl": b.lcl(),
                "phase1": b.points,
            }),
            flags,
        ),
        Err(why) => (json!({"kind": "xbar", "none": why}), Vec::new()),
    };
    let out: Vec<Value> = with_calls
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "start": ms(m.start_us),
                "end": ms(m.end_us),
                "count": m.count,
                "mean": m.sum / m.count as f64,
                "min": m.min,
                "max": m.max,
                "p50": m.q[0],
                "p90": m.q[1],
                "p95": m.q[2],
                "p99": m.q[3],
                "errors": m.errors,
                "rules": flags.get(i).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let errors_only: i64 = points
        .iter()
        .filter(|m| m.count == 0)
        .map(|m| m.errors)
        .sum();
    let mut body = key_json(&key);
    let newest = rows.iter().rev().find(|r| r.error_type.is_empty());
    body["kind"] = json!(newest.map(|r| r.kind.as_str()));
    body["temporality"] = json!(newest.map(|r| r.temporality.as_str()));
    body["points"] = json!(out);
    body["chart"] = chart_json;
    body["failed_calls_in_intervals_without_successes"] = json!(errors_only);
    body["truncated"] = json!(rows.len() as i64 >= MAX_INTERVALS);
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(end: i64, count: i64, sum: f64, p50: f64, error: &str) -> Interval {
        Interval {
            id: format!("{end}{error}{count}"),
            key: IntervalKey {
                site: "eu".into(),
                host: "h".into(),
                provider: "p".into(),
                model: "m".into(),
                operation: "chat".into(),
                instrument: "gen_ai.client.operation.duration".into(),
                token_type: String::new(),
            },
            error_type: error.into(),
            start_us: end - 60,
            end_us: end,
            count,
            sum,
            min: Some(1.0),
            max: Some(9.0),
            quantiles: [Some(p50), None, None, None],
            temporality: "delta".into(),
            kind: "explicit".into(),
        }
    }

    #[test]
    fn intervals_of_one_end_merge_and_errors_stay_apart() {
        let m = merge(&[
            row(100, 2, 20.0, 10.0, ""),
            row(100, 6, 30.0, 4.0, ""),
            row(100, 3, 90.0, 30.0, "timeout"),
            row(200, 1, 5.0, 5.0, ""),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].count, m[0].sum, m[0].errors), (8, 50.0, 3));
        assert_eq!(m[0].q[0], Some((2.0 * 10.0 + 6.0 * 4.0) / 8.0));
        assert_eq!(m[1].count, 1);
    }

    #[test]
    fn the_chart_marks_a_shift_of_the_interval_means() {
        let mut means: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 3)).collect();
        means.extend([130.0, 131.0]);
        let (b, flags) = chart(&means, 20).unwrap();
        assert!((b.center - 100.95).abs() < 0.1, "{}", b.center);
        assert!(flags[30].contains(&1) && flags[31].contains(&1));
        assert!(flags[..30].iter().all(|f| !f.contains(&1)));
        assert!(chart(&means[..5], 20).is_err());
    }
}
