//! Read endpoints: inventory (sites, hosts, models, series, overview), points of a series
//! (downsampled past `max_points`, every flagged point kept), telemetry and compare.

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use llmscope_model::time::{MAX_US, MIN_US, parse_time};
use llmscope_model::{BaselineRecord, Metric, Scope, SeriesId};
use llmscope_store::read::{Bucket, CatalogRow};
use llmscope_store::samples::{PointRow, PointSelector};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, ms};

/// Parses a time parameter: Unix milliseconds or RFC 3339 → µs (1970 to 9999).
pub fn time_param(field: &str, v: Option<&str>, default: i64) -> ApiResult<i64> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => parse_time(s).map_err(|e| ApiError::bad(field, e)),
    }
}

/// `from`/`to` as µs (defaults: the hour before `now`), validated.
pub fn range(from: Option<&str>, to: Option<&str>, now: i64) -> ApiResult<(i64, i64)> {
    let to = time_param("to", to, now.clamp(MIN_US, MAX_US))?;
    let from = time_param("from", from, to.saturating_sub(3_600_000_000).max(MIN_US))?;
    if from >= to {
        return Err(ApiError::bad("from", "`from` must be before `to`"));
    }
    Ok((from, to))
}

/// Parses a series key parameter (one host's series); the error says what a key looks like.
pub fn parse_key(s: &str) -> ApiResult<SeriesId> {
    let id: SeriesId = s
        .parse()
        .map_err(|e| ApiError::bad("key", format!("{e}")))?;
    if id.scope != Scope::Series {
        return Err(ApiError::bad(
            "key",
            format!(
                "`{s}` is a pooled chart; points are read per series: series|site|host|provider|model|metric"
            ),
        ));
    }
    Ok(id)
}

/// A metric filter parameter.
pub fn parse_metric(field: &str, m: &str) -> ApiResult<Metric> {
    m.parse().map_err(|_| {
        ApiError::bad(
            field,
            format!("unknown metric `{m}`; use {}", Metric::names()),
        )
    })
}

fn baselines_by_key(rows: &[BaselineRecord]) -> HashMap<&SeriesId, &BaselineRecord> {
    rows.iter()
        .filter(|b| b.key.scope == Scope::Series)
        .map(|b| (&b.key, b))
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

async fn sites(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
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
        let e = out.entry(c.key.site.clone()).or_default();
        e.0.insert(c.key.host.clone());
        e.1.insert(format!("{}/{}", c.key.provider, c.key.model));
    }
    for (key, n) in open {
        if key.scope != Scope::Global {
            out.entry(key.site).or_default().2 += n;
        }
    }
    Ok(Json(
        out.into_iter()
            .filter(|(name, _)| caller.may_see(name))
            .map(|(name, (h, m, n))| json!({"name": name, "hosts": h.len(), "models": m.len(), "open_violations": n}))
            .collect::<Vec<_>>(),
    ))
}

async fn hosts(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<impl IntoResponse> {
    let mut last: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in st
        .store
        .catalog(opt(&f.site), None, None, None)
        .await?
        .into_iter()
        .filter(|c| caller.may_see(&c.key.site))
    {
        let e = last.entry((c.key.site, c.key.host)).or_insert(0);
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
    Extension(caller): Extension<Caller>,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<impl IntoResponse> {
    let mut set = std::collections::BTreeSet::new();
    for c in st
        .store
        .catalog(opt(&f.site), None, None, None)
        .await?
        .into_iter()
        .filter(|c| caller.may_see(&c.key.site))
    {
        set.insert((c.key.site, c.key.provider, c.key.model));
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

async fn series_rows(st: &ApiState, caller: &Caller, f: &Filters) -> ApiResult<Vec<Value>> {
    let metric = opt(&f.metric)
        .map(|m| parse_metric("metric", m))
        .transpose()?;
    let catalog = st
        .store
        .catalog(opt(&f.site), opt(&f.host), opt(&f.model), metric)
        .await?;
    let baselines = st.store.list_baselines(true).await?;
    let by_key = baselines_by_key(&baselines);
    let open: HashMap<SeriesId, i64> = st.store.open_counts().await?.into_iter().collect();
    let mut sparks: HashMap<String, Vec<f64>> = HashMap::new();
    for (k, _, v) in st.store.sparks(3_600_000_000).await? {
        sparks.entry(k).or_default().push(v);
    }
    Ok(catalog
        .iter()
        .filter(|c| caller.may_see(&c.key.site))
        .map(|c: &CatalogRow| {
            let k = &c.key;
            let n = open.get(k).copied().unwrap_or(0);
            let b = by_key.get(k);
            let spark = sparks.get(&k.to_string()).cloned().unwrap_or_default();
            json!({"key": k, "site": k.site, "host": k.host, "provider": k.provider, "model": k.model, "metric": k.metric, "source": k.source,
                "status": status(n, b.is_some()), "open_violations": n, "last_value": c.last_value, "last_ts": ms(c.last_ts),
                "first_ts": ms(c.first_ts), "baseline": b, "spark": spark})
        })
        .collect())
}

async fn series(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(series_rows(&st, &caller, &f).await?))
}

async fn overview(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<impl IntoResponse> {
    let rows = series_rows(
        &st,
        &caller,
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

/// The points response of one series (404 for a series of a site `caller` may not see).
pub async fn points_of(
    st: &ApiState,
    caller: &Caller,
    key: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> ApiResult<Value> {
    let k = parse_key(key)?;
    if !caller.may_see(&k.site) {
        return Err(super::hidden(&format!("series `{key}`")));
    }
    let sel = PointSelector::of(&k);
    let baseline = st.store.current_baseline(&k).await?;
    // flagged points: the qualifying points of the rule markers overlapping the range; the
    // other detectors' episodes (the paging CUSUM's alarm) are spans, `alarms`
    let mut flagged: BTreeMap<i64, (f64, Vec<u8>, String)> = BTreeMap::new();
    let mut alarms = Vec::new();
    for v in st.store.violations_overlapping(&k, from, to).await? {
        if v.detector != llmscope_model::Detector::Nelson {
            alarms.push(
                json!({"violation_id": v.id, "incident_id": v.incident, "detector": v.detector,
                "severity": v.severity, "title": v.title(), "from": ms(v.opened_at),
                "to": v.resolved_at.map(ms), "last_point_at": ms(v.last_point_at)}),
            );
            continue;
        }
        for p in v.points.iter().filter(|p| p.ts >= from && p.ts <= to) {
            let e = flagged
                .entry(p.ts)
                .or_insert_with(|| (p.value, Vec::new(), v.id.clone()));
            if !e.1.contains(&v.rule) {
                e.1.push(v.rule);
            }
        }
    }
    let raw = st
        .store
        .sample_points(&sel, from, to, false, max_points as i64 + 1)
        .await?;
    let value = |p: &PointRow| p.value(k.metric);
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
            st.store.rollup_buckets(&k, from, to, width).await?
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
        "baseline": baseline, "downsampled": downsampled,
        "points": points, "buckets": buckets, "flagged": flagged, "alarms": alarms}),
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
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PointsQuery>,
) -> ApiResult<impl IntoResponse> {
    let key = q
        .key
        .ok_or_else(|| ApiError::bad("key", "`key` (the series key) is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref(), st.now())?;
    Ok(Json(
        points_of(&st, &caller, &key, from, to, max_points(q.max_points)?).await?,
    ))
}

async fn compare(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
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
    let (from, to) = range(get("from"), get("to"), st.now())?;
    let mp = match get("max_points") {
        None => max_points(None)?,
        Some(s) => max_points(Some(s.parse().map_err(|_| {
            ApiError::bad(
                "max_points",
                "`max_points` must be a whole number from 10 to 10000",
            )
        })?))?,
    };
    let mut out = Vec::new();
    for k in keys {
        out.push(points_of(&st, &caller, k, from, to, mp).await?);
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

/// Per bucket: how many values and their sum, for each field (a missing field — `null`, a
/// reading the device does not support — is not counted: the mean is over what was read).
type Buckets<const N: usize> = BTreeMap<i64, [(usize, f64); N]>;

fn add_fields<const N: usize>(b: &mut [(usize, f64); N], v: &Value, fields: &[&str; N]) {
    for (slot, k) in b.iter_mut().zip(fields) {
        if let Some(x) = v[*k].as_f64() {
            slot.0 += 1;
            slot.1 += x;
        }
    }
}

fn bucket_points<const N: usize>(
    buckets: &Buckets<N>,
    fields: &[&str; N],
    from: i64,
    width: i64,
) -> Vec<Value> {
    buckets
        .iter()
        .map(|(b, sums)| {
            let mut o = serde_json::Map::new();
            o.insert("ts".into(), json!(ms(from + b * width)));
            for ((n, sum), k) in sums.iter().zip(fields) {
                o.insert(
                    (*k).into(),
                    if *n == 0 {
                        Value::Null
                    } else {
                        json!(sum / *n as f64)
                    },
                );
            }
            Value::Object(o)
        })
        .collect()
}

const HOST_FIELDS: [&str; 4] = ["cpu_pct", "mem_used_bytes", "mem_total_bytes", "load1"];
const GPU_FIELDS: [&str; 5] = [
    "util_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "temp_c",
    "power_w",
];
const MIG_FIELDS: [&str; 2] = ["mem_used_bytes", "mem_total_bytes"];

/// Telemetry of a host, bucketed to at most `max_points` (mean per bucket): the host, each
/// GPU (with the XID errors and the newest ECC counts in the range), each MIG instance, and
/// each model-server gauge (`server`: per target, model and metric).
pub async fn telemetry_of(
    st: &ApiState,
    site: &str,
    host: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> ApiResult<Value> {
    let rows = telemetry_rows(st, site, host, from, to).await?;
    Ok(bucket_telemetry(&rows, site, host, from, to, max_points))
}

/// The host's snapshots in `[from, to]` (at most 2 000 000).
pub async fn telemetry_rows(
    st: &ApiState,
    site: &str,
    host: &str,
    from: i64,
    to: i64,
) -> ApiResult<Vec<llmscope_store::samples::Snapshot>> {
    Ok(st
        .store
        .telemetry_range(site, host, from, to, 2_000_000)
        .await?)
}

/// [`telemetry_of`] over snapshots already read.
pub fn bucket_telemetry(
    rows: &[llmscope_store::samples::Snapshot],
    site: &str,
    host: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> Value {
    let width = ((to - from) / max_points as i64).max(1);
    let mut hostb: Buckets<4> = BTreeMap::new();
    /// Per GPU: name, uuid, buckets, XID errors seen (ts, code), newest ECC counts.
    #[derive(Default)]
    struct PerGpu {
        name: String,
        uuid: String,
        buckets: Buckets<5>,
        xids: Vec<Value>,
        ecc: (Value, Value),
    }
    let mut gpus: BTreeMap<i64, PerGpu> = BTreeMap::new();
    let mut migs: BTreeMap<(i64, i64), (String, String, Buckets<2>)> = BTreeMap::new();
    let mut server: BTreeMap<(String, String, String), Buckets<1>> = BTreeMap::new();
    for (t, v) in rows {
        let b = (t - from) / width;
        add_fields(hostb.entry(b).or_default(), v, &HOST_FIELDS);
        for g in v["gpus"].as_array().into_iter().flatten() {
            let idx = g["index"].as_i64().unwrap_or(0);
            let ge = gpus.entry(idx).or_insert_with(|| PerGpu {
                name: g["name"].as_str().unwrap_or("").to_owned(),
                uuid: g["uuid"].as_str().unwrap_or("").to_owned(),
                ..PerGpu::default()
            });
            add_fields(ge.buckets.entry(b).or_default(), g, &GPU_FIELDS);
            for x in g["xid_errors"].as_array().into_iter().flatten() {
                ge.xids.push(json!({"ts": ms(*t), "xid": x}));
            }
            if !g["ecc_corrected_volatile"].is_null() || !g["ecc_uncorrected_volatile"].is_null() {
                ge.ecc = (
                    g["ecc_corrected_volatile"].clone(),
                    g["ecc_uncorrected_volatile"].clone(),
                );
            }
        }
        for g in v["mig_instances"].as_array().into_iter().flatten() {
            let key = (
                g["index"].as_i64().unwrap_or(0),
                g["mig_index"].as_i64().unwrap_or(0),
            );
            let me = migs.entry(key).or_insert_with(|| {
                (
                    g["name"].as_str().unwrap_or("").to_owned(),
                    g["uuid"].as_str().unwrap_or("").to_owned(),
                    BTreeMap::new(),
                )
            });
            add_fields(me.2.entry(b).or_default(), g, &MIG_FIELDS);
        }
        for m in v["server_metrics"].as_array().into_iter().flatten() {
            let key = (
                m["target"].as_str().unwrap_or("").to_owned(),
                m["model"].as_str().unwrap_or("").to_owned(),
                m["metric"].as_str().unwrap_or("").to_owned(),
            );
            add_fields(
                server.entry(key).or_default().entry(b).or_default(),
                m,
                &["value"],
            );
        }
    }
    let gpu_list: Vec<Value> = gpus
        .into_iter()
        .map(|(idx, g)| {
            json!({"gpu_index": idx, "name": g.name, "uuid": g.uuid,
                   "points": bucket_points(&g.buckets, &GPU_FIELDS, from, width),
                   "xid_errors": g.xids,
                   "ecc_corrected_volatile": g.ecc.0, "ecc_uncorrected_volatile": g.ecc.1})
        })
        .collect();
    let mig_list: Vec<Value> = migs
        .into_iter()
        .map(|((idx, mig), (name, uuid, bs))| {
            json!({"gpu_index": idx, "mig_index": mig, "name": name, "uuid": uuid,
                   "points": bucket_points(&bs, &MIG_FIELDS, from, width)})
        })
        .collect();
    let server_list: Vec<Value> = server
        .into_iter()
        .map(|((target, model, metric), bs)| {
            json!({"target": target, "model": model, "metric": metric,
                   "points": bucket_points(&bs, &["value"], from, width)})
        })
        .collect();
    json!({"site": site, "host_name": host,
           "host": bucket_points(&hostb, &HOST_FIELDS, from, width),
           "gpus": gpu_list, "mig_instances": mig_list, "server": server_list})
}

/// The model-server gauges of the newest snapshot at or before `at_us` (within 5 minutes),
/// from snapshots already read in time order: what the server said when a violation began.
pub fn server_metrics_at(rows: &[llmscope_store::samples::Snapshot], at_us: i64) -> Value {
    rows.iter()
        .rev()
        .filter(|(t, _)| *t <= at_us && *t >= at_us.saturating_sub(300_000_000))
        .find(|(_, v)| {
            v["server_metrics"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .map(|(t, v)| json!({"ts": ms(*t), "metrics": v["server_metrics"].clone()}))
        .unwrap_or(Value::Null)
}

async fn telemetry(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<TelemetryQuery>,
) -> ApiResult<impl IntoResponse> {
    let site = q
        .site
        .ok_or_else(|| ApiError::bad("site", "`site` is required"))?;
    if !caller.may_see(&site) {
        return Err(super::hidden(&format!("site `{site}`")));
    }
    let host = q
        .host
        .ok_or_else(|| ApiError::bad("host", "`host` is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref(), st.now())?;
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
