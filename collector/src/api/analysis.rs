//! Answers for capacity planners (issue 18, first part): an A/B verdict between two series
//! or two periods of one series (`GET /api/v1/abtest`), and process capability against an
//! SLO limit (`GET /api/v1/capability`). The statistics are the spc crate's
//! ([`llmscope_spc::compare`], [`llmscope_spc::capability`]), checked against scipy there.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use llmscope_model::{Metric, SeriesId};
use llmscope_store::samples::PointSelector;
use serde::Deserialize;
use serde_json::{Value, json};

use super::read::{parse_key, range};
use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller};

/// Most points read per side.
const MAX_POINTS: i64 = 5_000_000;

async fn values(
    st: &ApiState,
    caller: &Caller,
    field: &str,
    key: &str,
    from: i64,
    to: i64,
) -> ApiResult<(SeriesId, Vec<f64>)> {
    let k = parse_key(key).map_err(|e| e.at(field))?;
    if !caller.may_see(&k.site) {
        return Err(super::hidden(&format!("series `{key}`")));
    }
    let v = st
        .store
        .metric_values(&PointSelector::of(&k), k.metric, from, to, MAX_POINTS + 1)
        .await?;
    if v.len() as i64 > MAX_POINTS {
        return Err(ApiError::bad(
            field,
            format!("more than {MAX_POINTS} points in the range; choose a shorter one"),
        ));
    }
    let v: Vec<f64> = v
        .into_iter()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    Ok((k, v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbQuery {
    a: Option<String>,
    b: Option<String>,
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
    a_from: Option<String>,
    a_to: Option<String>,
    b_from: Option<String>,
    b_to: Option<String>,
}

/// `GET /api/v1/abtest?a=KEY&b=KEY&from=&to=` or, before/after on one series,
/// `?key=KEY&a_from=&a_to=&b_from=&b_to=`.
async fn abtest(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AbQuery>,
) -> ApiResult<impl IntoResponse> {
    let now = st.now();
    let ((ka, a), (kb, b), periods) = match (&q.a, &q.b, &q.key) {
        (Some(a), Some(b), None) => {
            let (from, to) = range(q.from.as_deref(), q.to.as_deref(), now)?;
            let ra = values(&st, &caller, "a", a, from, to).await?;
            let rb = values(&st, &caller, "b", b, from, to).await?;
            if ra.0.metric != rb.0.metric {
                return Err(ApiError::bad(
                    "b",
                    format!(
                        "a is {} and b is {}: compare one metric",
                        ra.0.metric.as_str(),
                        rb.0.metric.as_str()
                    ),
                ));
            }
            (
                ra,
                rb,
                json!({"from": super::ms(from), "to": super::ms(to)}),
            )
        }
        (None, None, Some(key)) => {
            let need = |v: &Option<String>, f: &str| {
                v.as_deref()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad(f, format!("`{f}` is required with `key`")))
            };
            let (af, at) = (need(&q.a_from, "a_from")?, need(&q.a_to, "a_to")?);
            let (bf, bt) = (need(&q.b_from, "b_from")?, need(&q.b_to, "b_to")?);
            let (a_from, a_to) = range(Some(&af), Some(&at), now).map_err(|e| e.at("a_from"))?;
            let (b_from, b_to) = range(Some(&bf), Some(&bt), now).map_err(|e| e.at("b_from"))?;
            let ra = values(&st, &caller, "key", key, a_from, a_to).await?;
            let rb = values(&st, &caller, "key", key, b_from, b_to).await?;
            (
                ra,
                rb,
                json!({"a": {"from": super::ms(a_from), "to": super::ms(a_to)},
                       "b": {"from": super::ms(b_from), "to": super::ms(b_to)}}),
            )
        }
        _ => {
            return Err(ApiError::bad(
                "a",
                "give `a` and `b` (two series over one range) or `key` with `a_from`, `a_to`, `b_from`, `b_to` (one series, two periods)",
            ));
        }
    };
    for (field, v) in [("a", &a), ("b", &b)] {
        if v.len() < 3 {
            return Err(ApiError::bad(
                field,
                format!(
                    "{field} has {} points in its range; at least 3 are needed",
                    v.len()
                ),
            ));
        }
    }
    let metric = ka.metric;
    let t = tokio::task::spawn_blocking(move || llmscope_spc::compare::ab_test(&a, &b))
        .await
        .map_err(|e| ApiError::bad("a", format!("the comparison failed: {e}")))?
        .map_err(|e| ApiError::bad("a", e.to_string()))?;
    let what = metric_words(metric);
    Ok(Json(json!({
        "a": ka.to_string(), "b": kb.to_string(), "metric": metric.as_str(), "periods": periods,
        "n_a": t.n_a, "n_b": t.n_b,
        "welch": {"t": t.welch.t, "df": t.welch.df, "p_value": t.welch.p_value, "scale": "ln"},
        "mann_whitney": {"u": t.mann_whitney.u, "z": t.mann_whitney.z, "p_value": t.mann_whitney.p_value},
        "hodges_lehmann": {"shift": t.hodges_lehmann.estimate, "ci": t.hodges_lehmann.ci, "unit": unit(metric)},
        "ratio": {"estimate": t.ratio.estimate, "ci": t.ratio.ci, "of": "geometric mean of b / geometric mean of a"},
        "effective_n": {"a": t.ess[0], "b": t.ess[1]},
        "lag1": {"a": t.lag1[0], "b": t.lag1[1]},
        "warning": t.warning,
        "verdict": llmscope_spc::compare::verdict(what, &t),
    })))
}

fn metric_words(m: Metric) -> &'static str {
    match m {
        Metric::LatencyMs => "latency",
        Metric::TtftMs => "TTFT",
        Metric::TpotMs => "time per output token",
        Metric::TokensPerS => "tokens/s",
    }
}

fn unit(m: Metric) -> &'static str {
    match m {
        Metric::TokensPerS => "tokens/s",
        _ => "ms",
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilityQuery {
    key: String,
    from: Option<String>,
    to: Option<String>,
    /// Upper specification limit (the SLO), in the metric's unit.
    usl: f64,
    /// Optional lower limit.
    lsl: Option<f64>,
    /// Histogram bins.
    bins: Option<usize>,
}

/// `GET /api/v1/capability?key=&from=&to=&usl=[&lsl=]` — on the ln scale (times are
/// right-skewed; the response says so).
async fn capability(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<CapabilityQuery>,
) -> ApiResult<impl IntoResponse> {
    let (from, to) = range(q.from.as_deref(), q.to.as_deref(), st.now())?;
    if !(q.usl.is_finite() && q.usl > 0.0) {
        return Err(ApiError::bad(
            "usl",
            "`usl` must be a number > 0 (the SLO limit)",
        ));
    }
    if let Some(l) = q.lsl
        && !(l.is_finite() && l > 0.0 && l < q.usl)
    {
        return Err(ApiError::bad("lsl", "`lsl` must be > 0 and below `usl`"));
    }
    let bins = q.bins.unwrap_or(40);
    if !(5..=200).contains(&bins) {
        return Err(ApiError::bad("bins", "`bins` must be from 5 to 200"));
    }
    let (k, v) = values(&st, &caller, "key", &q.key, from, to).await?;
    if k.metric == Metric::TokensPerS {
        return Err(ApiError::bad(
            "key",
            "capability is computed against an upper limit of a time metric; tokens_per_s is not supported",
        ));
    }
    let ln: Vec<f64> = v.iter().map(|x| x.ln()).collect();
    let (usl, lsl) = (q.usl.ln(), q.lsl.map(f64::ln));
    let c = llmscope_spc::capability::capability(&ln, usl, lsl)
        .map_err(|e| ApiError::bad("key", e.to_string()))?;
    // histogram of the ln values with the fitted normal's expected counts
    let (lo, hi) = ln
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let (lo, hi) = (lo.min(usl), hi.max(usl));
    let width = ((hi - lo) / bins as f64).max(1e-12);
    let mut counts = vec![0u64; bins];
    for x in &ln {
        let i = (((x - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let n = ln.len() as f64;
    let fitted: Vec<f64> = (0..bins)
        .map(|i| {
            let (a, b) = (lo + i as f64 * width, lo + (i + 1) as f64 * width);
            let cdf = |x: f64| llmscope_spc::special::norm_cdf((x - c.mean) / c.sigma_overall);
            n * (cdf(b) - cdf(a))
        })
        .collect();
    let edges: Vec<f64> = (0..=bins).map(|i| (lo + i as f64 * width).exp()).collect();
    let interval =
        |i: &llmscope_spc::compare::Interval| json!({"estimate": i.estimate, "ci": i.ci});
    Ok(Json(json!({
        "key": k.to_string(), "metric": k.metric.as_str(), "n": c.n,
        "scale": "ln", "usl": q.usl, "lsl": q.lsl,
        "mean": c.mean.exp(), "sigma_within_ln": c.sigma_within, "sigma_overall_ln": c.sigma_overall,
        "cp": c.cp.as_ref().map(interval), "cpk": interval(&c.cpk),
        "pp": c.pp.as_ref().map(interval), "ppk": interval(&c.ppk),
        "ppk_percentile": if c.ppk_percentile.is_finite() { json!(c.ppk_percentile) } else { Value::Null },
        "above_usl": c.above_usl,
        "histogram": {"edges": edges, "counts": counts, "fitted": fitted},
        "note": "computed on ln(values) against ln(limits): latency is right-skewed; Cpk is the one-sided Cpu against the upper limit unless lsl is given",
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendQuery {
    key: String,
    /// Days back from now (whole UTC days), 3..=400.
    days: Option<i64>,
    /// Limit the daily p95 is compared with (the SLO), in the metric's unit.
    slo: Option<f64>,
    /// Days to forecast, 1..=365.
    horizon: Option<usize>,
    /// `json` (default) or `csv` (the daily rows).
    format: Option<String>,
}

const DAY_US: i64 = 86_400_000_000;

/// `GET /api/v1/trend?key=&days=30[&slo=][&horizon=90][&format=csv]` — the daily p95 (and
/// p50, p99, mean) of a series from the daily rollups (kept 400 days, quantiles within
/// 0.5 %), its Theil–Sen slope per day with Sen's 95 % interval, Holt's linear-trend forecast
/// with a 95 % prediction interval ("p95 reaches the SLO in about N days at this trend"), and
/// the incidents and re-baselines of its model on its host in the range, to mark on the line.
async fn trend(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<TrendQuery>,
) -> ApiResult<axum::response::Response> {
    let csv_out = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(ApiError::bad("format", format!("`{f}` is not json or csv"))),
    };
    let days = q.days.unwrap_or(30);
    if !(3..=400).contains(&days) {
        return Err(ApiError::bad("days", "`days` must be from 3 to 400"));
    }
    let horizon = q.horizon.unwrap_or(90);
    if !(1..=365).contains(&horizon) {
        return Err(ApiError::bad("horizon", "`horizon` must be from 1 to 365"));
    }
    if let Some(s) = q.slo
        && !(s.is_finite() && s > 0.0)
    {
        return Err(ApiError::bad("slo", "`slo` must be a number > 0"));
    }
    let now = st.now();
    let today = now.div_euclid(DAY_US) * DAY_US;
    let from = today - (days - 1) * DAY_US;
    let k = parse_key(&q.key)?;
    if !caller.may_see(&k.site) {
        return Err(super::hidden(&format!("series `{}`", q.key)));
    }
    let rows = st.store.long_rows(&k.to_string(), true, from, now).await?;
    if csv_out {
        let body = super::violations::csv(
            &["day_ms", "n", "mean", "min", "max", "p50", "p95", "p99"],
            rows.iter().map(|r| {
                vec![
                    super::ms(r.ts).to_string(),
                    r.n.to_string(),
                    r.mean.to_string(),
                    r.min.to_string(),
                    r.max.to_string(),
                    r.p50.to_string(),
                    r.p95.to_string(),
                    r.p99.to_string(),
                ]
            }),
        );
        return Ok(super::violations::csv_response("trend.csv", body).into_response());
    }
    // what to mark on the line: incidents of this model on this host, re-baselines of the series
    let filter = llmscope_store::violations::ViolationFilter {
        site: Some(k.site.clone()),
        host: (k.host != "*").then(|| k.host.clone()),
        model: Some(k.model.clone()),
        leads_only: true,
        from: Some(from),
        ..Default::default()
    };
    let incidents: Vec<Value> = st
        .store
        .search_violations(&filter, None, 500)
        .await?
        .iter()
        .filter(|v| v.series.provider == k.provider)
        .map(|v| json!({"id": v.id, "at": super::ms(v.opened_at), "resolved_at": v.resolved_at.map(super::ms),
                        "title": v.title(), "detector": v.detector.as_str(), "severity": v.severity.as_str()}))
        .collect();
    let rebaselines: Vec<Value> = st
        .store
        .list_baselines(false)
        .await?
        .iter()
        .filter(|b| b.key == k && b.valid_from >= from)
        .map(|b| json!({"at": super::ms(b.valid_from), "reason": b.reason, "by": b.created_by}))
        .collect();
    let slo = q.slo;
    let mut out = tokio::task::spawn_blocking(move || {
        let mut daily = Vec::new();
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for r in &rows {
            let d = r.ts.div_euclid(DAY_US);
            daily.push(json!({"day": super::ms(r.ts), "n": r.n, "mean": r.mean, "p50": r.p50, "p95": r.p95, "p99": r.p99,
                              "min": r.min, "max": r.max}));
            xs.push(d as f64);
            ys.push(r.p95);
        }
        let theil = llmscope_spc::trend::theil_sen(&xs, &ys).ok().map(|t| {
            json!({"slope_per_day": t.slope, "slope_ci": t.slope_ci, "intercept_at_epoch_day": t.intercept})
        });
        // Holt on consecutive days only (a gap would bend the trend): the days since the last gap
        let run_start = xs
            .windows(2)
            .rposition(|w| w[1] - w[0] > 1.0)
            .map(|i| i + 1)
            .unwrap_or(0);
        let holt = llmscope_spc::trend::Holt::fit(&ys[run_start..]).ok();
        let last_day = xs.last().copied().unwrap_or(0.0) as i64;
        let forecast: Vec<Value> = holt
            .map(|h| {
                (1..=horizon)
                    .map(|s| {
                        let f = h.forecast(s);
                        json!({"day": super::ms((last_day + s as i64) * DAY_US), "p95": f.value, "interval": f.interval})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let days_to_slo = match (holt, slo) {
            (Some(h), Some(limit)) => h.steps_to(limit, 3650).map(|d| json!(d)).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let words = match (&days_to_slo, slo, holt) {
            (Value::Number(n), Some(limit), Some(_)) if n.as_u64() == Some(0) => {
                format!("p95 is already at or above {limit} (the SLO)")
            }
            (Value::Number(n), Some(limit), Some(_)) => {
                format!("at this trend p95 reaches {limit} (the SLO) in about {n} days")
            }
            (_, Some(limit), Some(h)) if h.trend <= 0.0 => {
                format!("p95 is not rising: it does not reach {limit} at this trend")
            }
            (_, Some(limit), Some(_)) => format!("p95 does not reach {limit} within 10 years at this trend"),
            (_, _, None) => "too few consecutive days for a forecast (4 needed)".to_owned(),
            (_, None, Some(_)) => "give `slo` for the days until the limit".to_owned(),
        };
        json!({"daily": daily, "theil_sen": theil, "holt": holt.map(|h| json!({"alpha": h.alpha, "beta": h.beta, "level": h.level, "trend_per_day": h.trend, "sigma": h.sigma})),
               "forecast": forecast, "slo": slo, "days_to_slo": days_to_slo, "summary": words})
    })
    .await
    .map_err(|e| ApiError::bad("key", format!("the trend failed: {e}")))?;
    out["key"] = json!(k.to_string());
    out["metric"] = json!(k.metric.as_str());
    out["incidents"] = json!(incidents);
    out["rebaselines"] = json!(rebaselines);
    out["source"] = json!(
        "daily rollups (kept `rollup_retention`, 400 days by default, whatever the raw samples' retention); quantiles from a mergeable sketch, within 0.5 %"
    );
    Ok(Json(out).into_response())
}

/// The analysis routes.
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/api/v1/abtest", axum::routing::get(abtest))
        .route("/api/v1/capability", axum::routing::get(capability))
        .route("/api/v1/trend", axum::routing::get(trend))
}
