//! Capacity headroom (`GET /api/v1/capacity`): per model on each host, the served output
//! tokens/s per hour (from `usage_1h`) against the hour's probe TTFT p95 (`rollup_1h`) and
//! the host's mean GPU utilisation (raw telemetry), each fitted with a Theil–Sen line. The
//! load at which the fitted p95 reaches the SLO, or the fitted utilisation reaches 100 %,
//! over the busiest hour's load is the headroom. Assumptions (stated in the response):
//! latency and utilisation grow linearly with load within and a little beyond the range
//! seen; the model mix and prompt lengths stay as they were; a site's load is spread evenly,
//! so a site's headroom is its tightest host's.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use llmscope_model::{Metric, SeriesId, Source};
use serde::Deserialize;
use serde_json::{Value, json};

use super::violations::{csv, csv_response};
use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller};

const HOUR: i64 = 3_600_000_000;

/// Per site and model: summed peak load, the tightest headroom, the hosts.
type SiteAcc = (f64, Option<f64>, Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CapacityQuery {
    /// Days of hours to fit (1..=30, default 7; GPU readings come from raw telemetry).
    days: Option<i64>,
    site: Option<String>,
    /// TTFT limit in ms (default: the tightest `ttft_ms` SLO covering the model).
    slo_ms: Option<f64>,
    format: Option<String>,
}

#[derive(Default)]
struct Hours {
    load: BTreeMap<i64, f64>,
    p95: BTreeMap<i64, f64>,
}

/// A line fitted to hourly pairs (x = load): slope, intercept, and whether the slope's 95 %
/// interval lies above zero.
fn fit(pairs: &[(f64, f64)]) -> Option<(f64, f64, bool)> {
    if pairs.len() < 6 {
        return None;
    }
    let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(hi > lo * 1.05 && hi > 0.0) {
        return None; // no spread in load: nothing to learn from
    }
    let t = llmscope_spc::trend::theil_sen(&x, &y).ok()?;
    Some((t.slope, t.intercept, t.slope_ci[0] > 0.0))
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// `GET /api/v1/capacity?days=7[&site=][&slo_ms=][&format=csv]`
pub(super) async fn capacity(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<CapacityQuery>,
) -> ApiResult<Response> {
    let csv_out = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(ApiError::bad("format", format!("`{f}` is not json or csv"))),
    };
    let days = q.days.unwrap_or(7);
    if !(1..=30).contains(&days) {
        return Err(ApiError::bad("days", "`days` must be from 1 to 30"));
    }
    if let Some(s) = q.slo_ms
        && !(s.is_finite() && s > 0.0)
    {
        return Err(ApiError::bad("slo_ms", "`slo_ms` must be a time in ms > 0"));
    }
    if let Some(s) = &q.site
        && !caller.may_see(s)
    {
        return Err(super::hidden(&format!("site `{s}`")));
    }
    let now = st.now();
    let from = (now - days * 86_400_000_000).div_euclid(HOUR) * HOUR;
    let site = q.site.as_deref();
    // (site, host, provider, model) -> hours
    let mut models: BTreeMap<(String, String, String, String), Hours> = BTreeMap::new();
    for u in st.store.usage(from, now, site).await? {
        if !caller.may_see(&u.site) {
            continue;
        }
        let h = models
            .entry((u.site, u.host, u.provider, u.model))
            .or_default();
        *h.load.entry(u.hour).or_default() += u.tokens_out as f64 / 3600.0;
    }
    for (key, hour, p95, _) in st.store.hourly_p95(Metric::TtftMs, from, site).await? {
        let Ok(k) = key.parse::<SeriesId>() else {
            continue;
        };
        if k.source != Source::Probe {
            continue;
        }
        if let Some(h) = models.get_mut(&(k.site, k.host, k.provider, k.model)) {
            h.p95.insert(hour, p95);
        }
    }
    let mut util: BTreeMap<(String, String), BTreeMap<i64, f64>> = BTreeMap::new();
    for (s, host, hour, u) in st.store.gpu_util_hourly(from, site).await? {
        util.entry((s, host)).or_default().insert(hour, u);
    }
    let slos = st.store.slos().await?;
    let mut hosts = Vec::new();
    for ((s, host, provider, model), h) in &models {
        let limit = q.slo_ms.or_else(|| {
            slos.iter()
                .filter(|o| {
                    o.metric == "ttft_ms"
                        && (o.site.is_empty() || o.site == *s)
                        && (o.model.is_empty() || o.model == *model)
                })
                .filter_map(|o| o.threshold)
                .reduce(f64::min)
        });
        let recent: Vec<f64> = h
            .load
            .range(now - 86_400_000_000..)
            .map(|(_, v)| *v)
            .collect();
        let peak = if recent.is_empty() {
            h.load.values().copied().fold(0.0, f64::max)
        } else {
            recent.iter().copied().fold(0.0, f64::max)
        };
        let lat_pairs: Vec<(f64, f64)> = h
            .load
            .iter()
            .filter_map(|(t, l)| h.p95.get(t).map(|p| (*l, *p)))
            .collect();
        let u = util.get(&(s.clone(), host.clone()));
        let util_pairs: Vec<(f64, f64)> = u
            .map(|u| {
                h.load
                    .iter()
                    .filter_map(|(t, l)| u.get(t).map(|x| (*l, *x)))
                    .collect()
            })
            .unwrap_or_default();
        let lat = fit(&lat_pairs);
        let gpu = fit(&util_pairs);
        let at_slo = match (lat, limit) {
            (Some((a, b, true)), Some(l)) => Some(((l - b) / a).max(0.0)),
            _ => None,
        };
        let at_full = match gpu {
            Some((a, b, true)) => Some(((100.0 - b) / a).max(0.0)),
            _ => None,
        };
        let bound = match (at_slo, at_full) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let headroom = bound
            .filter(|_| peak > 0.0)
            .map(|b| (b / peak - 1.0) * 100.0);
        let limited_by = match (at_slo, at_full) {
            (Some(x), Some(y)) if y < x => "gpu",
            (Some(_), _) => "slo",
            (None, Some(_)) => "gpu",
            _ => "",
        };
        let peak_util = u.and_then(|u| {
            h.load
                .iter()
                .filter(|(_, l)| **l >= peak)
                .find_map(|(t, _)| u.get(t).copied())
        });
        hosts.push(json!({
            "site": s, "host": host, "provider": provider, "model": model,
            "hours": h.load.len(), "peak_tokens_per_s": peak,
            "mean_tokens_per_s": h.load.values().sum::<f64>() / h.load.len().max(1) as f64,
            "slo_ttft_ms": limit, "ttft_p95_fit": lat.map(|(a, b, sig)| json!({"ms_per_token_per_s": a, "intercept_ms": b, "rises_with_load": sig})),
            "gpu_util_fit": gpu.map(|(a, b, sig)| json!({"pct_per_token_per_s": a, "intercept_pct": b, "rises_with_load": sig})),
            "gpu_util_at_peak": peak_util,
            "tokens_per_s_at_slo": at_slo, "tokens_per_s_at_full_gpu": at_full,
            "headroom_pct": headroom, "limited_by": limited_by,
            "summary": match headroom {
                Some(p) if limited_by == "slo" => format!("{host} can take about {p:.0} % more load before TTFT p95 crosses {} ms", limit.unwrap_or_default()),
                Some(p) => format!("{host} can take about {p:.0} % more load before its GPUs are fully used"),
                None if lat_pairs.len() < 6 => format!("{host}: too few hours with both load and TTFT ({} of 6 needed)", lat_pairs.len()),
                None => format!("{host}: latency and GPU use do not rise measurably with load in the range seen; no headroom estimate"),
            },
        }));
    }
    // sites: load summed over hosts, headroom of the tightest host
    let mut sites: BTreeMap<(String, String, String), SiteAcc> = BTreeMap::new();
    for hst in &hosts {
        let k = (
            hst["site"].as_str().unwrap_or_default().to_owned(),
            hst["provider"].as_str().unwrap_or_default().to_owned(),
            hst["model"].as_str().unwrap_or_default().to_owned(),
        );
        let e = sites.entry(k).or_insert((0.0, None, Vec::new()));
        e.0 += hst["peak_tokens_per_s"].as_f64().unwrap_or(0.0);
        if let Some(p) = hst["headroom_pct"].as_f64() {
            e.1 = Some(e.1.map_or(p, |x: f64| x.min(p)));
        }
        e.2.push(hst["host"].as_str().unwrap_or_default().to_owned());
    }
    let site_rows: Vec<Value> = sites
        .into_iter()
        .map(|((s, p, m), (load, head, hs))| {
            json!({"site": s, "provider": p, "model": m, "hosts": hs, "peak_tokens_per_s": load, "headroom_pct": head,
                   "summary": match head {
                       Some(h) => format!("site {s} can take about {h:.0} % more {m} load (its tightest host's headroom)"),
                       None => format!("site {s}: no headroom estimate for {m} yet"),
                   }})
        })
        .collect();
    if csv_out {
        let rows = hosts.iter().map(|h| {
            let f = |k: &str| super::plan::cell(h, k);
            vec![
                f("site"),
                f("host"),
                f("provider"),
                f("model"),
                f("hours"),
                f("peak_tokens_per_s"),
                f("slo_ttft_ms"),
                opt(h["tokens_per_s_at_slo"].as_f64()),
                opt(h["tokens_per_s_at_full_gpu"].as_f64()),
                opt(h["headroom_pct"].as_f64()),
                f("limited_by"),
            ]
        });
        let body = csv(
            &[
                "site",
                "host",
                "provider",
                "model",
                "hours",
                "peak_tokens_per_s",
                "slo_ttft_ms",
                "tokens_per_s_at_slo",
                "tokens_per_s_at_full_gpu",
                "headroom_pct",
                "limited_by",
            ],
            rows,
        );
        return Ok(csv_response("capacity.csv", body).into_response());
    }
    Ok(Json(json!({
        "days": days, "hosts": hosts, "sites": site_rows,
        "assumptions": [
            "load is output tokens/s per hour (all sources); latency is the hour's probe TTFT p95; utilisation the host's mean GPU use",
            "latency and GPU use grow linearly with load (Theil–Sen fits over the hours seen; a fit counts only when its 95 % interval is above zero)",
            "headroom is over the busiest hour of the last 24 h; the model mix and prompt lengths stay as they were",
            "a site spreads load evenly over its hosts, so its headroom is its tightest host's",
        ],
    })).into_response())
}
