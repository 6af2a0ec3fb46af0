//! `GET /api/v1/detection`: what pages and how often it would page a healthy fleet.
//!
//! For the configured detectors it reports the paging CUSUM's design (reference k, decision
//! interval h for the default Phase I, its run lengths) and, per model-host and source seen
//! by the engine, the probe rate (from the median gap between calls) and the expected false
//! alarms per day at that rate:
//! - pages: the CUSUM's designed in-control run length per model-host (`spc.arl0` points)
//!   and the error-rate chart's designed run length in calls (at the assumed in-control
//!   failure rate); `down` and silence are negligible on a healthy model;
//! - chart markers: the Nelson rules as configured for the series' site and model, by
//!   simulation ([`llmscope_spc::detect::rates`]) with a Phase I of the configured size, times
//!   the number of judged metrics.
//!
//! The fleet figure is the sum over every model-host and source. A model-host whose rate is
//! not known yet (fewer than four calls) is listed without figures.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use llmscope_live::settings::Settings;
use llmscope_model::{Metric, SeriesId, Source};
use llmscope_spc::NelsonConfig;
use llmscope_spc::detect::{Designer, Phase1, design_error_rate, rates};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiQuery, ApiResult, ApiState};

const DAY_US: f64 = 86_400_000_000.0;

/// Marker rates already simulated, by rule configuration.
fn cache() -> &'static Mutex<HashMap<String, f64>> {
    static CACHE: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Marker episodes per judged point of a chart with these rules (simulated once per
/// configuration and Phase I).
pub async fn marker_rate(st: &ApiState, rules: &NelsonConfig, resolve_after: u32) -> f64 {
    let key = format!(
        "{rules:?}|{resolve_after}|{}|{:?}",
        st.spc.baseline_points, st.spc.sigma_method
    );
    if let Some(r) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return *r;
    }
    let (cfg, n, method) = (*rules, st.spc.baseline_points, st.spc.sigma_method);
    let rate = tokio::task::spawn_blocking(move || {
        rates::marker_rate(&cfg, resolve_after, n, method, 0x5EED)
    })
    .await
    .unwrap_or(0.0);
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, rate);
    rate
}

/// Query of `/api/v1/detection`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DetectionQuery {
    site: Option<String>,
}

/// One model on one host, one source.
struct ModelHost {
    key: SeriesId,
    interval_us: i64,
    last_seen: i64,
    metrics: usize,
}

async fn detection(
    State(st): State<ApiState>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    ApiQuery(q): ApiQuery<DetectionQuery>,
) -> ApiResult<impl IntoResponse> {
    let spc = st.spc.clone();
    let designer = Designer::with_k(spc.cusum_k);
    let phase1 = Phase1 {
        mean: 0.0,
        sd: 1.0,
        phi: 0.0,
        used: spc.baseline_points,
        rejected: 0,
    };
    let design = |paging: usize| {
        designer
            .design(spc.arl0 * paging as f64, &phase1)
            .ok()
            .map(|d| {
                json!({"k": d.k, "h": d.h, "h_known": d.h_known, "phase1": d.phase1,
                    "arl0_per_series": d.arl0, "p_target": d.p_target, "p_half": d.p_half,
                    "arl_1sigma": d.arl(1.0), "arl_2sigma": d.arl(2.0)})
            })
    };
    let er = design_error_rate(
        spc.error_rate_p0,
        spc.error_rate_p0 * spc.error_rate_factor,
        spc.error_rate_arl0,
    )
    .ok();
    let mut hosts: BTreeMap<String, ModelHost> = BTreeMap::new();
    let mut metric_rows: HashMap<String, usize> = HashMap::new();
    for (key, c) in st.store.all_counters().await? {
        if key.scope != llmscope_model::Scope::Series
            || q.site.as_deref().is_some_and(|s| s != key.site)
            || !caller.may_see(&key.site)
        {
            continue;
        }
        let base = key.with_metric(Metric::LatencyMs).to_string();
        if c.ok > 0 && key.source.judged().contains(&key.metric) {
            *metric_rows.entry(base.clone()).or_default() += 1;
        }
        if key.metric == Metric::LatencyMs && c.last_seen > 0 {
            hosts.insert(
                base,
                ModelHost {
                    interval_us: c.interval_us,
                    last_seen: c.last_seen,
                    key,
                    metrics: 0,
                },
            );
        }
    }
    for (k, h) in hosts.iter_mut() {
        h.metrics = metric_rows.get(k).copied().unwrap_or(0);
    }
    let settings = Settings::from_rows(&st.store.rule_configs().await?, spc.resolve_after);
    let mut items = Vec::new();
    let (mut fleet_pages, mut fleet_markers, mut known) = (0.0, 0.0, 0usize);
    for h in hosts.values() {
        let k = &h.key;
        let eff = settings.resolve(&k.site, &k.model);
        let rate = marker_rate(&st, &eff.rules, eff.resolve_after).await;
        let mut item = json!({
            "site": k.site, "host": k.host, "provider": k.provider, "model": k.model,
            "source": k.source, "last_seen": llmscope_model::time::ms(h.last_seen),
            "judged_metrics": h.metrics,
            "paging_metrics": k.source.paging().iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "marker_arl0": if rate > 0.0 { json!(1.0 / rate) } else { Value::Null },
        });
        if h.interval_us > 0 {
            let per_day = DAY_US / h.interval_us as f64;
            let cusum = per_day / spc.arl0;
            let errors = er.map_or(0.0, |d| per_day / d.arl0);
            let markers = per_day * rate * h.metrics as f64;
            fleet_pages += cusum + errors;
            fleet_markers += markers;
            known += 1;
            item["interval_s"] = json!(h.interval_us as f64 / 1e6);
            item["calls_per_day"] = json!(per_day);
            item["false_pages_per_day"] =
                json!({"cusum": cusum, "error_rate": errors, "total": cusum + errors});
            item["false_markers_per_day"] = json!(markers);
        }
        items.push(item);
    }
    Ok(Json(json!({
        "settings": {
            "arl0": spc.arl0,
            "cusum_k": spc.cusum_k,
            "baseline_points": spc.baseline_points,
            "sigma_method": spc.sigma_method.as_str(),
            "transform": spc.transform.as_str(),
            "down_after": spc.down_after,
            "error_rate": er.map(|d| json!({"p0": d.p0, "p1": d.p1, "h": d.h, "arl0": d.arl0, "arl1": d.arl1})),
            "silent_factor": spc.silent_factor,
            "silent_min_s": spc.silent_min.as_secs_f64(),
            "silent_sources": spc.silent_sources,
            "agent_silent_after_s": spc.agent_silent_after.as_secs_f64(),
            "resolve_after": spc.resolve_after,
        },
        "design": {
            "probe": design(Source::Probe.paging().len()),
            "traffic": design(Source::Proxy.paging().len()),
        },
        "model_hosts": items,
        "fleet": {
            "model_hosts": hosts.len(),
            "with_known_rate": known,
            "false_pages_per_day": fleet_pages,
            "false_markers_per_day": fleet_markers,
        },
    })))
}

/// The detection route.
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new().route("/api/v1/detection", axum::routing::get(detection))
}
