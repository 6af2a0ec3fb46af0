//! Read endpoints: inventory (sites, hosts, models, series, overview), points of a series
//! (downsampled past `max_points`, every flagged point kept), telemetry and compare.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, ApiState, ms};
use crate::live::Metric;
use crate::live::engine::SeriesKey;
use crate::store::api::{Bucket, CatalogRow};
use crate::store::live::{BaselineRow, PointSelector};
use crate::store::now_us;

/// Parses a time parameter: Unix milliseconds or RFC 3339 → µs.
pub fn time_param(field: &str, v: Option<&str>, default: i64) -> ApiResult<i64> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => crate::alert::parse_time(s).map_err(|e| ApiError::bad(field, e)),
    }
}

/// `from`/`to` as µs (defaults: the last hour), validated.
pub fn range(from: Option<&str>, to: Option<&str>) -> ApiResult<(i64, i64)> {
    let to = time_param("to", to, now_us())?;
    let from = time_param("from", from, to - 3_600_000_000)?;
    if from >= to {
        return Err(ApiError::bad("from", "`from` must be before `to`"));
    }
    Ok((from, to))
}

/// Parses a series key parameter; the error says what a key looks like.
pub fn parse_key(s: &str) -> ApiResult<SeriesKey> {
    SeriesKey::parse(s).ok_or_else(|| {
        ApiError::bad(
            "key",
            format!(
                "`{s}` is not a series key: series|site|host|provider|model|metric, the metric one of latency_ms, ttft_ms, tpot_ms, tokens_per_s"
            ),
        )
    })
}

/// Baseline JSON with limits in original units (centre and sigma on the transformed scale).
pub fn baseline_json(b: &BaselineRow) -> Value {
    let (lcl, ucl, center_orig) = if b.transform == "log" {
        (
            (b.center - b.k * b.sigma).exp(),
            (b.center + b.k * b.sigma).exp(),
            b.center.exp(),
        )
    } else {
        (b.center - b.k * b.sigma, b.center + b.k * b.sigma, b.center)
    };
    json!({"id": b.id, "scope": b.scope, "center": b.center, "center_original": center_orig, "sigma": b.sigma, "k": b.k,
        "ucl": ucl, "lcl": lcl, "transform": b.transform, "method": b.method, "points": b.points, "mode": b.mode,
        "window_from": ms(b.window_from), "window_to": ms(b.window_to), "valid_from": ms(b.valid_from),
        "valid_to": b.valid_to.map(ms), "reason": b.reason, "created_by": b.created_by,
        "site": b.site, "host": b.host, "provider": b.provider, "model": b.model, "metric": b.metric})
}

fn baselines_by_key(rows: &[BaselineRow]) -> HashMap<String, &BaselineRow> {
    rows.iter()
        .filter(|b| b.scope == "series")
        .map(|b| {
            (
                format!(
                    "series|{}|{}|{}|{}|{}",
                    b.site, b.host, b.provider, b.model, b.metric
                ),
                b,
            )
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct Filters {
    site: Option<String>,
    host: Option<String>,
    model: Option<String>,
    metric: Option<String>,
}

fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

async fn sites(State(st): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let catalog = st.store.catalog(None, None, None, None).await?;
    let open = st.store.open_counts().await?;
    let mut out: BTreeMap<
        String,
        (
            std::collections::BTreeSet<String>,
            std::collections::BTreeSet<String>,
            i64,
        ),
    > = BTreeMap::new();
    for (name, _) in st.store.sites().await? {
        out.entry(name).or_default();
    }
    for c in &catalog {
        let e = out.entry(c.site.clone()).or_default();
        e.0.insert(c.host.clone());
        e.1.insert(format!("{}/{}", c.provider, c.model));
    }
    for (key, n) in open {
        if let Some(site) = key.split('|').nth(1) {
            out.entry(site.to_owned()).or_default().2 += n;
        }
    }
    Ok(Json(
        out.into_iter()
            .map(|(name, (h, m, n))| json!({"name": name, "hosts": h.len(), "models": m.len(), "open_violations": n}))
            .collect::<Vec<_>>(),
    ))
}

async fn hosts(
    State(st): State<ApiState>,
    Query(f): Query<Filters>,
) -> ApiResult<impl IntoResponse> {
    let mut last: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in st.store.catalog(opt(&f.site), None, None, None).await? {
        let e = last.entry((c.site, c.host)).or_insert(0);
        *e = (*e).max(c.last_ts);
    }
    Ok(Json(
        last.into_iter()
            .map(|((site, host), t)| json!({"site": site, "host": host, "last_seen": ms(t)}))
            .collect::<Vec<_>>(),
    ))
}

async fn models(
    State(st): State<ApiState>,
    Query(f): Query<Filters>,
) -> ApiResult<impl IntoResponse> {
    let mut set = std::collections::BTreeSet::new();
    for c in st.store.catalog(opt(&f.site), None, None, None).await? {
        set.insert((c.site, c.provider, c.model));
    }
    Ok(Json(
        set.into_iter()
            .map(|(s, p, m)| json!({"site": s, "provider": p, "model": m}))
            .collect::<Vec<_>>(),
    ))
}

fn status(open: i64, has_baseline: bool) -> &'static str {
    if open > 0 {
        "violation"
    } else if has_baseline {
        "in_control"
    } else {
        "learning"
    }
}

async fn series_rows(st: &ApiState, f: &Filters) -> ApiResult<Vec<Value>> {
    if let Some(m) = opt(&f.metric)
        && Metric::parse(m).is_none()
    {
        return Err(ApiError::bad(
            "metric",
            format!("unknown metric `{m}`; use latency_ms, ttft_ms, tpot_ms or tokens_per_s"),
        ));
    }
    let catalog = st
        .store
        .catalog(opt(&f.site), opt(&f.host), opt(&f.model), opt(&f.metric))
        .await?;
    let baselines = st.store.list_baselines(true).await?;
    let by_key = baselines_by_key(&baselines);
    let open: HashMap<String, i64> = st.store.open_counts().await?.into_iter().collect();
    let mut sparks: HashMap<String, Vec<f64>> = HashMap::new();
    for (k, _, v) in st.store.sparks(3_600_000_000).await? {
        sparks.entry(k).or_default().push(v);
    }
    Ok(catalog
        .iter()
        .map(|c: &CatalogRow| {
            let n = open.get(&c.key).copied().unwrap_or(0);
            let b = by_key.get(&c.key);
            json!({"key": c.key, "site": c.site, "host": c.host, "provider": c.provider, "model": c.model, "metric": c.metric,
                "status": status(n, b.is_some()), "open_violations": n, "last_value": c.last_value, "last_ts": ms(c.last_ts),
                "first_ts": ms(c.first_ts), "baseline": b.map(|b| baseline_json(b)), "spark": sparks.get(&c.key).cloned().unwrap_or_default()})
        })
        .collect())
}

async fn series(
    State(st): State<ApiState>,
    Query(f): Query<Filters>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(series_rows(&st, &f).await?))
}

async fn overview(
    State(st): State<ApiState>,
    Query(f): Query<Filters>,
) -> ApiResult<impl IntoResponse> {
    let rows = series_rows(
        &st,
        &Filters {
            site: f.site.clone(),
            ..Filters::default()
        },
    )
    .await?;
    let mut sites = std::collections::BTreeSet::new();
    let mut models = std::collections::BTreeSet::new();
    /// (open violations, series, any baselined, latency sparkline) per site × model.
    type Cell = (i64, usize, bool, Vec<f64>);
    let mut cells: BTreeMap<(String, String, String), Cell> = BTreeMap::new();
    for r in &rows {
        let (site, provider, model) = (
            r["site"].as_str().unwrap_or("").to_owned(),
            r["provider"].as_str().unwrap_or("").to_owned(),
            r["model"].as_str().unwrap_or("").to_owned(),
        );
        sites.insert(site.clone());
        models.insert(format!("{provider}/{model}"));
        let e = cells.entry((site, provider, model)).or_default();
        e.0 += r["open_violations"].as_i64().unwrap_or(0);
        e.1 += 1;
        e.2 |= !r["baseline"].is_null();
        if e.3.is_empty() && r["metric"] == "latency_ms" {
            e.3 = serde_json::from_value(r["spark"].clone()).unwrap_or_default();
        }
    }
    let cells: Vec<Value> = cells
        .into_iter()
        .map(|((site, provider, model), (open, n, baselined, spark))| {
            json!({"site": site, "provider": provider, "model": model, "status": status(open, baselined),
                "open_violations": open, "series": n, "spark": spark})
        })
        .collect();
    Ok(Json(
        json!({"sites": sites, "models": models, "cells": cells}),
    ))
}

#[derive(Deserialize)]
struct PointsQuery {
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
    max_points: Option<usize>,
}

/// The points response of one series.
pub async fn points_of(
    st: &ApiState,
    key: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> ApiResult<Value> {
    let k = parse_key(key)?;
    let sel = PointSelector {
        site: k.site.clone(),
        host: k.host.clone(),
        provider: k.provider.clone(),
        model: k.model.clone(),
    };
    let baseline = st
        .store
        .current_baseline(
            "series",
            &k.site,
            &k.host,
            &k.provider,
            &k.model,
            k.metric.as_str(),
        )
        .await?;
    // flagged points: the qualifying points of violations overlapping the range
    let mut flagged: BTreeMap<i64, (f64, Vec<i64>, String)> = BTreeMap::new();
    for v in st.store.violations_overlapping(key, from, to).await? {
        for p in v.points.as_array().into_iter().flatten() {
            let (Some(ts), Some(val)) = (p["ts"].as_i64(), p["value"].as_f64()) else {
                continue;
            };
            if ts < from || ts > to {
                continue;
            }
            let e = flagged
                .entry(ts)
                .or_insert_with(|| (val, Vec::new(), v.id.clone()));
            if !e.1.contains(&v.rule) {
                e.1.push(v.rule);
            }
        }
    }
    let raw = st
        .store
        .sample_points(&sel, from, to, false, max_points as i64 + 1)
        .await?;
    let value =
        |p: &crate::store::live::PointRow| k.metric.value(p.latency_ms, p.ttft_ms, p.tokens_out);
    let (points, buckets, downsampled) = if raw.len() <= max_points {
        let pts: Vec<Value> = raw
            .iter()
            .filter_map(|p| {
                let v = value(p)?;
                let flags = flagged
                    .get(&p.ts_us)
                    .map(|f| f.1.clone())
                    .unwrap_or_default();
                Some(json!({"ts": ms(p.ts_us), "value": v, "flags": flags}))
            })
            .collect();
        (pts, Vec::new(), false)
    } else {
        let width = ((to - from) / max_points as i64).max(1);
        let buckets: Vec<Bucket> = if width >= 60_000_000 {
            // minute rollups, plus what the rollup job has not reached yet
            st.store.rollup_buckets(&k.text(), from, to, width).await?
        } else {
            st.store
                .raw_buckets(&sel, k.metric, from, to, width)
                .await?
        };
        let b: Vec<Value> = buckets
            .iter()
            .map(|b| json!({"ts": ms(b.ts), "min": b.min, "max": b.max, "mean": b.mean, "count": b.count}))
            .collect();
        (Vec::new(), b, true)
    };
    let flagged: Vec<Value> = flagged
        .into_iter()
        .map(|(ts, (v, rules, id))| json!({"ts": ms(ts), "value": v, "rules": rules, "violation_id": id}))
        .collect();
    Ok(
        json!({"key": key, "metric": k.metric.as_str(), "from": ms(from), "to": ms(to),
        "baseline": baseline.as_ref().map(baseline_json), "downsampled": downsampled,
        "points": points, "buckets": buckets, "flagged": flagged}),
    )
}

fn max_points(v: Option<usize>) -> ApiResult<usize> {
    let n = v.unwrap_or(2000);
    if !(10..=10_000).contains(&n) {
        return Err(ApiError::bad(
            "max_points",
            "`max_points` must be from 10 to 10000",
        ));
    }
    Ok(n)
}

async fn points(
    State(st): State<ApiState>,
    Query(q): Query<PointsQuery>,
) -> ApiResult<impl IntoResponse> {
    let key = q
        .key
        .ok_or_else(|| ApiError::bad("key", "`key` (the series key) is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    Ok(Json(
        points_of(&st, &key, from, to, max_points(q.max_points)?).await?,
    ))
}

async fn compare(
    State(st): State<ApiState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<impl IntoResponse> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad("query", e.to_string()))?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let keys: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == "key")
        .map(|(_, v)| v.as_str())
        .collect();
    if keys.is_empty() || keys.len() > 12 {
        return Err(ApiError::bad("key", "give 1 to 12 `key` parameters"));
    }
    let (from, to) = range(get("from"), get("to"))?;
    let mp = max_points(get("max_points").and_then(|s| s.parse().ok()))?;
    let mut out = Vec::new();
    for k in keys {
        out.push(points_of(&st, k, from, to, mp).await?);
    }
    Ok(Json(json!({"series": out})))
}

#[derive(Deserialize)]
struct TelemetryQuery {
    site: Option<String>,
    host: Option<String>,
    from: Option<String>,
    to: Option<String>,
    max_points: Option<usize>,
}

/// Telemetry of a host, bucketed to at most `max_points` (mean per bucket).
pub async fn telemetry_of(
    st: &ApiState,
    site: &str,
    host: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> ApiResult<Value> {
    let rows = st
        .store
        .telemetry_range(site, host, from, to, 2_000_000)
        .await?;
    let width = ((to - from) / max_points as i64).max(1);
    // bucket means of the host snapshot and of each GPU
    let mut hostb: BTreeMap<i64, (usize, [f64; 4])> = BTreeMap::new();
    /// Per bucket: samples and sums of util, mem used, mem total, temperature, power.
    type GpuBuckets = BTreeMap<i64, (usize, [f64; 5])>;
    let mut gpus: BTreeMap<i64, (String, GpuBuckets)> = BTreeMap::new();
    for (t, v) in &rows {
        let b = (t - from) / width;
        let e = hostb.entry(b).or_default();
        e.0 += 1;
        for (i, k) in ["cpu_pct", "mem_used_bytes", "mem_total_bytes", "load1"]
            .iter()
            .enumerate()
        {
            e.1[i] += v[k].as_f64().unwrap_or(0.0);
        }
        for g in v["gpus"].as_array().into_iter().flatten() {
            let idx = g["index"].as_i64().unwrap_or(0);
            let ge = gpus
                .entry(idx)
                .or_insert_with(|| (g["name"].as_str().unwrap_or("").to_owned(), BTreeMap::new()));
            let s = ge.1.entry(b).or_default();
            s.0 += 1;
            for (i, k) in [
                "util_pct",
                "mem_used_bytes",
                "mem_total_bytes",
                "temp_c",
                "power_w",
            ]
            .iter()
            .enumerate()
            {
                s.1[i] += g[k].as_f64().unwrap_or(0.0);
            }
        }
    }
    let host_pts: Vec<Value> = hostb
        .iter()
        .map(|(b, (n, s))| {
            let n = *n as f64;
            json!({"ts": ms(from + b * width), "cpu_pct": s[0] / n, "mem_used_bytes": s[1] / n, "mem_total_bytes": s[2] / n, "load1": s[3] / n})
        })
        .collect();
    let gpu_list: Vec<Value> = gpus
        .into_iter()
        .map(|(idx, (name, bs))| {
            let pts: Vec<Value> = bs
                .iter()
                .map(|(b, (n, s))| {
                    let n = *n as f64;
                    json!({"ts": ms(from + b * width), "util_pct": s[0] / n, "mem_used_bytes": s[1] / n, "mem_total_bytes": s[2] / n, "temp_c": s[3] / n, "power_w": s[4] / n})
                })
                .collect();
            json!({"gpu_index": idx, "name": name, "points": pts})
        })
        .collect();
    Ok(json!({"site": site, "host_name": host, "host": host_pts, "gpus": gpu_list}))
}

async fn telemetry(
    State(st): State<ApiState>,
    Query(q): Query<TelemetryQuery>,
) -> ApiResult<impl IntoResponse> {
    let site = q
        .site
        .ok_or_else(|| ApiError::bad("site", "`site` is required"))?;
    let host = q
        .host
        .ok_or_else(|| ApiError::bad("host", "`host` is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    Ok(Json(
        telemetry_of(&st, &site, &host, from, to, max_points(q.max_points)?).await?,
    ))
}

/// The read routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/models", get(models))
        .route("/api/v1/series", get(series))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/series/points", get(points))
        .route("/api/v1/telemetry", get(telemetry))
        .route("/api/v1/compare", get(compare))
}
