//! Re-baselining: estimate a new baseline from a chosen time range for one series, or every
//! series of a model, host or site (after a deployment, a hardware change). The new row is
//! stored with its window and method (`manual`), the old one is closed, not deleted. Running
//! engines pick it up within seconds; points after the window are judged against it.
//!
//! Also the optional `rolling` mode: every `rolling_interval`, series-scope baselines are
//! re-estimated from their last `rolling_points` points — only for series with no open
//! violation, so a degradation never becomes the new normal.

use std::time::Duration;

use llmscope_model::{
    BaselineMode, BaselineRecord, FrozenBaseline, Metric, Scope, SeriesId, Source,
};
use llmscope_spc::{Baseline, BaselineOptions, SigmaMethod, Transform};
use llmscope_store::audit::Audit;
use llmscope_store::samples::PointSelector;
use llmscope_store::{Store, StoreError};

/// What to re-baseline; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Site.
    pub site: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Metric.
    pub metric: Option<Metric>,
    /// Source (probe, proxy, client, otlp).
    pub source: Option<Source>,
}

/// Outcome per series.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// A new baseline was stored.
    Set(BaselineRecord),
    /// Not enough usable points in the range, or no variation.
    Skipped {
        /// The series.
        series: SeriesId,
        /// Why.
        reason: String,
    },
}

/// A re-baselining request: which series, from which samples, how, who and why.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Which series.
    pub selector: &'a Selector,
    /// Window start, Unix µs.
    pub from_us: i64,
    /// Window end, Unix µs.
    pub to_us: i64,
    /// Sigma estimator.
    pub method: SigmaMethod,
    /// Transform.
    pub transform: Transform,
    /// Why (stored with the baseline).
    pub reason: &'a str,
    /// Who (stored with the baseline).
    pub by: &'a str,
    /// Now, Unix µs (the new baselines' `valid_from`).
    pub now_us: i64,
    /// The audit entry each new baseline is written with (its target becomes the series).
    pub audit: Option<&'a Audit>,
}

/// Re-baselines every matching series from the samples in `[from_us, to_us]`.
pub async fn rebaseline(store: &Store, req: &Request<'_>) -> Result<Vec<Outcome>, StoreError> {
    let (sel, from_us, to_us) = (req.selector, req.from_us, req.to_us);
    let mut out = Vec::new();
    for (site, host, provider, model, source) in store.series_in_range(from_us, to_us).await? {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if !(matches(&sel.site, &site)
            && matches(&sel.host, &host)
            && matches(&sel.provider, &provider)
            && matches(&sel.model, &model)
            && sel.source.is_none_or(|s| s == source))
        {
            continue;
        }
        let points = store
            .sample_points(
                &PointSelector {
                    site: site.clone(),
                    host: host.clone(),
                    provider: provider.clone(),
                    model: model.clone(),
                    source,
                },
                from_us,
                to_us,
                false,
                100_000,
            )
            .await?;
        for metric in source.judged().iter().copied() {
            if sel.metric.is_some_and(|m| m != metric) {
                continue;
            }
            let series =
                SeriesId::series(&site, &host, &provider, &model, metric).with_source(source);
            let values: Vec<f64> = points.iter().filter_map(|p| p.value(metric)).collect();
            if values.is_empty() {
                continue;
            }
            let opts = BaselineOptions {
                method: req.method,
                transform: req.transform,
                k: llmscope_spc::baseline::DEFAULT_K,
            };
            match Baseline::estimate(&values, &opts) {
                Ok(b) => {
                    let mut row = BaselineRecord {
                        key: series,
                        frozen: FrozenBaseline::new(
                            0,
                            Scope::Series,
                            b,
                            (from_us, to_us),
                            BaselineMode::Manual,
                        ),
                        reason: req.reason.into(),
                        created_by: req.by.into(),
                        valid_from: req.now_us,
                        valid_to: None,
                    };
                    let entry = req.audit.map(|a| {
                        a.with("baseline.set", format!("series:{}", row.key)).change(
                            None,
                            Some(format!(
                                "{{\"center\":{},\"sigma\":{},\"from_us\":{from_us},\"to_us\":{to_us},\"reason\":{}}}",
                                row.frozen.baseline.center,
                                row.frozen.baseline.sigma,
                                serde_json::Value::String(row.reason.clone())
                            )),
                        )
                    });
                    row.frozen.id = store.insert_baseline(&row, entry.as_ref()).await?;
                    out.push(Outcome::Set(row));
                }
                Err(e) => out.push(Outcome::Skipped {
                    series,
                    reason: e.to_string(),
                }),
            }
        }
    }
    Ok(out)
}

/// The rolling-baseline job (one process at a time, lease `rolling-baselines`).
pub async fn rolling_job(
    store: Store,
    every: Duration,
    points: usize,
    method: SigmaMethod,
    transform: Transform,
    clock: llmscope_model::SharedClock,
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = clock.now_us();
        match store
            .try_lease(
                "rolling-baselines",
                &holder,
                now,
                now + every.as_micros() as i64 * 2,
            )
            .await
        {
            Ok(true) => {
                if let Err(e) = roll_once(&store, points, method, transform, now).await {
                    tracing::warn!(error = %e, "rolling baselines failed; will retry");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "rolling baselines: lease check failed"),
        }
    }
}

/// Re-estimates every current series-scope baseline from its last `points` points, skipping
/// series with open violations. Returns how many were updated.
pub async fn roll_once(
    store: &Store,
    points: usize,
    method: SigmaMethod,
    transform: Transform,
    now_us: i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for b in store.list_baselines(true).await? {
        if b.key.scope != Scope::Series || !store.open_violations(&b.key).await?.is_empty() {
            continue;
        }
        let mut rows = store
            .sample_points(
                &PointSelector::of(&b.key),
                b.frozen.window_to.saturating_add(1),
                now_us,
                true,
                points as i64,
            )
            .await?;
        rows.reverse();
        let values: Vec<f64> = rows.iter().filter_map(|p| p.value(b.key.metric)).collect();
        if values.len() < points.clamp(2, 20) {
            continue;
        }
        let Ok(est) = Baseline::estimate(
            &values,
            &BaselineOptions {
                method,
                transform,
                k: b.frozen.baseline.k,
            },
        ) else {
            continue;
        };
        let window = (
            rows.first().map_or(b.frozen.window_from, |r| r.ts_us),
            rows.last().map_or(b.frozen.window_to, |r| r.ts_us),
        );
        let row = BaselineRecord {
            frozen: FrozenBaseline::new(0, Scope::Series, est, window, BaselineMode::Rolling),
            reason: format!("rolling: the last {} points", values.len()),
            created_by: "llmscope".into(),
            valid_from: now_us,
            valid_to: None,
            key: b.key,
        };
        store.insert_baseline(&row, None).await?;
        n += 1;
    }
    Ok(n)
}
