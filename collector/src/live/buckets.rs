//! Site and global X̄ charts over fixed time buckets.
//!
//! For every (site, provider, model, metric) and every (provider, model, metric) the job
//! summarises each closed bucket (default 1 minute, evaluated after a grace period) into a
//! subgroup (n, mean, sd), estimates X̄-S limits from the first `bucket_baseline` buckets and
//! then evaluates the Nelson rules on each bucket's z-score. Violations are stored like series
//! violations (scope `site` or `global`, host `*`). Exactly one collector process runs the job
//! at a time: it holds the `bucket-charts` lease in the database (renewed every run), and the
//! chart state is persisted, so another replica takes over where it stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use llmscope_spc::charts::{Subgroup, XbarSLimits};
use llmscope_spc::{EpisodeEvent, EpisodeTracker, NelsonConfig, NelsonState};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::violation_id;
use super::metric::Metric;
use crate::config::SpcConfig;
use crate::store::live::{BaselineRow, NewViolation, PointSelector, ViolationOp};
use crate::store::{Store, StoreError, now_us};

/// Name of the lease that elects the job holder.
pub const LEASE: &str = "bucket-charts";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChartState {
    /// End (exclusive) of the last evaluated bucket, Unix µs.
    done_until: i64,
    learning: Vec<Subgroup>,
    limits: Option<XbarSLimits>,
    nelson: NelsonState,
    tracker: EpisodeTracker,
    index: u64,
    /// Open episodes: rule → violation id.
    open: BTreeMap<u8, String>,
}

/// Runs [`run_once`] forever, every `bucket_interval`, while holding the lease.
pub async fn job(store: Store, cfg: SpcConfig) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(cfg.bucket_interval);
    loop {
        tick.tick().await;
        let now = now_us();
        let ttl = (cfg.bucket_interval * 3).as_micros() as i64;
        match store.try_lease(LEASE, &holder, now, now + ttl).await {
            Ok(true) => {
                if let Err(e) = run_once(&store, &cfg, now).await {
                    tracing::warn!(error = %e, "bucket charts: run failed; will retry");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "bucket charts: lease check failed"),
        }
    }
}

fn bucket_us(cfg: &SpcConfig) -> i64 {
    cfg.bucket.as_micros().max(1) as i64
}

/// Evaluates every bucket that closed before `now − grace` on every site and global chart.
/// Returns the number of buckets evaluated.
pub async fn run_once(store: &Store, cfg: &SpcConfig, now: i64) -> Result<usize, StoreError> {
    let b = bucket_us(cfg);
    let closed_until = (now - cfg.bucket_grace.as_micros() as i64).div_euclid(b) * b;
    let horizon = now - Duration::from_secs(6 * 3600).as_micros() as i64;
    let models = store.active_models(horizon).await?;
    let mut charts: BTreeMap<(String, String, String), ()> = BTreeMap::new();
    for (site, provider, model) in &models {
        charts.insert((site.clone(), provider.clone(), model.clone()), ());
        charts.insert((String::new(), provider.clone(), model.clone()), ());
    }
    let mut evaluated = 0;
    for (site, provider, model) in charts.keys() {
        let sel = PointSelector {
            site: site.clone(),
            host: String::new(),
            provider: provider.clone(),
            model: model.clone(),
        };
        for metric in Metric::ALL {
            evaluated += chart(store, cfg, &sel, metric, closed_until, horizon).await?;
        }
    }
    Ok(evaluated)
}

fn chart_key(sel: &PointSelector, metric: Metric) -> String {
    if sel.site.is_empty() {
        format!("global|{}|{}|{}", sel.provider, sel.model, metric.as_str())
    } else {
        format!(
            "site|{}|{}|{}|{}",
            sel.site,
            sel.provider,
            sel.model,
            metric.as_str()
        )
    }
}

async fn chart(
    store: &Store,
    cfg: &SpcConfig,
    sel: &PointSelector,
    metric: Metric,
    closed_until: i64,
    horizon: i64,
) -> Result<usize, StoreError> {
    let key = chart_key(sel, metric);
    let b = bucket_us(cfg);
    let mut st: ChartState = match store.bucket_state(&key).await? {
        Some(s) => serde_json::from_str(&s).unwrap_or_else(|_| fresh(horizon, b, cfg)),
        None => fresh(horizon, b, cfg),
    };
    if st.done_until >= closed_until {
        return Ok(0);
    }
    let rows = store
        .sample_points(sel, st.done_until, closed_until - 1, false, 5_000_000)
        .await?;
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for r in rows {
        if let Some(v) = metric.value(r.latency_ms, r.ttft_ms, r.tokens_out) {
            buckets
                .entry(r.ts_us.div_euclid(b) * b)
                .or_default()
                .push(v);
        }
    }
    let rules = NelsonConfig::default();
    let compiled = rules.compile_ref();
    let scope = if sel.site.is_empty() {
        "global"
    } else {
        "site"
    };
    let mut ops = Vec::new();
    let mut n = 0;
    for (start, values) in buckets {
        let Some(g) = Subgroup::from_values(&values) else {
            continue;
        };
        n += 1;
        match st.limits {
            None => {
                st.learning.push(g);
                if st.learning.len() >= cfg.bucket_baseline {
                    match XbarSLimits::estimate(&st.learning) {
                        Ok(l) => {
                            st.limits = Some(l);
                            let row = BaselineRow {
                                id: 0,
                                scope: scope.into(),
                                site: sel.site.clone(),
                                host: "*".into(),
                                provider: sel.provider.clone(),
                                model: sel.model.clone(),
                                metric: metric.as_str().into(),
                                center: l.center,
                                sigma: l.sigma,
                                k: 3.0,
                                method: "xbar_s".into(),
                                transform: "none".into(),
                                points: st.learning.iter().map(|g| i64::from(g.n)).sum(),
                                window_from: start - (st.learning.len() as i64 - 1) * b,
                                window_to: start + b,
                                mode: "auto".into(),
                                reason: format!("phase I: the first {} buckets", st.learning.len()),
                                created_by: "llmscope".into(),
                                valid_from: now_us(),
                                valid_to: None,
                            };
                            store.insert_baseline(&row).await?;
                            st.learning.clear();
                        }
                        Err(_) => {
                            st.learning.remove(0);
                        }
                    }
                }
            }
            Some(limits) => {
                let z = limits.z(&g);
                if !z.is_finite() {
                    continue;
                }
                let flags = st.nelson.push(z, &compiled.0);
                let mut events = Vec::new();
                st.tracker.push(st.index, flags, |e| events.push(e));
                st.index += 1;
                for e in events {
                    match e {
                        EpisodeEvent::Opened { rule, .. } => {
                            let id = violation_id(&key, rule.number(), start);
                            st.open.insert(rule.number(), id.clone());
                            ops.push(ViolationOp::Open(NewViolation {
                                id,
                                series_key: key.clone(),
                                scope: scope.into(),
                                site: if sel.site.is_empty() { "*".into() } else { sel.site.clone() },
                                host: "*".into(),
                                provider: sel.provider.clone(),
                                model: sel.model.clone(),
                                metric: metric.as_str().into(),
                                rule: i64::from(rule.number()),
                                opened_at: start,
                                last_point_at: start,
                                points: json!([{"bucket": start, "n": g.n, "mean": g.mean, "sd": g.sd, "z": z}]).to_string(),
                                baseline: json!({"method": "xbar_s", "center": limits.center, "sigma": limits.sigma, "bucket_us": b}).to_string(),
                                context: json!({"bucket_us": b}).to_string(),
                            }));
                        }
                        EpisodeEvent::Extended { rule, .. } => {
                            if let Some(id) = st.open.get(&rule.number()) {
                                ops.push(ViolationOp::Extend {
                                    id: id.clone(),
                                    last_point_at: start,
                                    points: None,
                                });
                            }
                        }
                        EpisodeEvent::Resolved { rule, .. } => {
                            if let Some(id) = st.open.remove(&rule.number()) {
                                ops.push(ViolationOp::Resolve {
                                    id,
                                    at: start + b,
                                    points: None,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    st.done_until = closed_until;
    if !ops.is_empty() {
        store.apply_violations(&ops, now_us()).await?;
    }
    store
        .put_bucket_state(
            &key,
            &serde_json::to_string(&st).unwrap_or_default(),
            now_us(),
        )
        .await?;
    Ok(n)
}

fn fresh(horizon: i64, b: i64, cfg: &SpcConfig) -> ChartState {
    ChartState {
        done_until: horizon.div_euclid(b) * b,
        learning: Vec::new(),
        limits: None,
        nelson: NelsonState::new(),
        tracker: EpisodeTracker::new(cfg.resolve_after),
        index: 0,
        open: BTreeMap::new(),
    }
}
