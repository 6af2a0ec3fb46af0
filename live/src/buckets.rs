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

use llmscope_model::{
    BaselineRecord, FrozenBaseline, LiveEvent, Metric, Point, SeriesId, SharedClock, Violation,
};
use llmscope_spc::charts::{Subgroup, XbarSLimits};
use llmscope_spc::{EpisodeEvent, EpisodeTracker, NelsonConfig, NelsonState};
use llmscope_store::samples::PointSelector;
use llmscope_store::violations::ViolationOp;
use llmscope_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::config::SpcConfig;

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

/// Runs [`run_once`] forever, every `bucket_interval`, while holding the lease; announces
/// the violations it opens and resolves on `events`.
pub async fn job(
    store: Store,
    cfg: SpcConfig,
    clock: SharedClock,
    events: broadcast::Sender<LiveEvent>,
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(cfg.bucket_interval);
    loop {
        tick.tick().await;
        let now = clock.now_us();
        let ttl = (cfg.bucket_interval * 3).as_micros() as i64;
        match store.try_lease(LEASE, &holder, now, now + ttl).await {
            Ok(true) => match run_once(&store, &cfg, now).await {
                Ok(out) => {
                    for e in out.events {
                        let _ = events.send(e);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "bucket charts: run failed; will retry"),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "bucket charts: lease check failed"),
        }
    }
}

fn bucket_us(cfg: &SpcConfig) -> i64 {
    cfg.bucket.as_micros().max(1) as i64
}

/// What one run of the bucket charts did.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Buckets evaluated.
    pub buckets: usize,
    /// Violations opened and resolved, to announce.
    pub events: Vec<LiveEvent>,
}

/// Evaluates every bucket that closed before `now − grace` on every site and global chart.
pub async fn run_once(store: &Store, cfg: &SpcConfig, now: i64) -> Result<RunOutcome, StoreError> {
    let b = bucket_us(cfg);
    let closed_until = (now - cfg.bucket_grace.as_micros() as i64).div_euclid(b) * b;
    let horizon = now - Duration::from_secs(6 * 3600).as_micros() as i64;
    let models = store.active_models(horizon).await?;
    let mut charts: BTreeMap<(String, String, String), ()> = BTreeMap::new();
    for (site, provider, model) in &models {
        charts.insert((site.clone(), provider.clone(), model.clone()), ());
        charts.insert((String::new(), provider.clone(), model.clone()), ());
    }
    let mut out = RunOutcome::default();
    for (site, provider, model) in charts.keys() {
        for metric in Metric::ALL {
            let key = if site.is_empty() {
                SeriesId::global_chart(provider, model, *metric)
            } else {
                SeriesId::site_chart(site, provider, model, *metric)
            };
            out.buckets += chart(
                store,
                cfg,
                &key,
                closed_until,
                horizon,
                now,
                &mut out.events,
            )
            .await?;
        }
    }
    Ok(out)
}

async fn chart(
    store: &Store,
    cfg: &SpcConfig,
    id: &SeriesId,
    closed_until: i64,
    horizon: i64,
    now: i64,
    events: &mut Vec<LiveEvent>,
) -> Result<usize, StoreError> {
    let key = id.to_string();
    let (sel, metric, scope) = (PointSelector::of(id), id.metric, id.scope);
    let b = bucket_us(cfg);
    let mut st: ChartState = match store.bucket_state(&key).await? {
        Some(s) => serde_json::from_str(&s).unwrap_or_else(|_| fresh(horizon, b, cfg)),
        None => fresh(horizon, b, cfg),
    };
    if st.done_until >= closed_until {
        return Ok(0);
    }
    let rows = store
        .sample_points(&sel, st.done_until, closed_until - 1, false, 5_000_000)
        .await?;
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for r in rows {
        if let Some(v) = r.value(metric) {
            buckets
                .entry(r.ts_us.div_euclid(b) * b)
                .or_default()
                .push(v);
        }
    }
    let rules = NelsonConfig::default();
    let compiled = rules.compile_ref();
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
                            let mut frozen = FrozenBaseline::xbar_s(scope, l.center, l.sigma, b);
                            frozen.baseline.points = st.learning.iter().map(|g| g.n as usize).sum();
                            frozen.window_from = start - (st.learning.len() as i64 - 1) * b;
                            frozen.window_to = start + b;
                            let row = BaselineRecord {
                                key: id.clone(),
                                frozen,
                                reason: format!("phase I: the first {} buckets", st.learning.len()),
                                created_by: "llmscope".into(),
                                valid_from: now,
                                valid_to: None,
                            };
                            store.insert_baseline(&row, None).await?;
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
                            let point = Point {
                                id: None,
                                ts: start,
                                value: g.mean,
                                n: Some(g.n),
                                sd: Some(g.sd),
                                z: Some(z),
                            };
                            let v = Violation::open(
                                id.clone(),
                                scope,
                                rule.number(),
                                start,
                                vec![point],
                                FrozenBaseline::xbar_s(scope, limits.center, limits.sigma, b),
                            );
                            st.open.insert(rule.number(), v.id.clone());
                            ops.push(ViolationOp::Open(v));
                        }
                        EpisodeEvent::Extended { rule, .. } => {
                            if let Some(vid) = st.open.get(&rule.number()) {
                                ops.push(ViolationOp::Extend {
                                    id: vid.clone(),
                                    last_point_at: start,
                                    points: None,
                                });
                            }
                        }
                        EpisodeEvent::Resolved { rule, .. } => {
                            if let Some(vid) = st.open.remove(&rule.number()) {
                                ops.push(ViolationOp::Resolve {
                                    id: vid,
                                    series: id.clone(),
                                    rule: rule.number(),
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
        let report = store.apply_violations(&ops, now).await?;
        for opened in &report.opened {
            if let Some(v) = ops.iter().find_map(|o| match o {
                ViolationOp::Open(v) if &v.id == opened => Some(v),
                _ => None,
            }) {
                events.push(LiveEvent::ViolationOpened(std::sync::Arc::new(v.clone())));
            }
        }
        events.extend(
            report
                .resolved
                .into_iter()
                .map(|r| LiveEvent::ViolationResolved {
                    id: r.id,
                    series: r.series,
                    rule: r.rule,
                    notifies: r.notifies,
                }),
        );
    }
    store
        .put_bucket_state(&key, &serde_json::to_string(&st).unwrap_or_default(), now)
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
