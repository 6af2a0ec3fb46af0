//! Re-baselining: estimate a new baseline from a chosen time range for one series, or every
//! series of a model, host or site (after a deployment, a hardware change). The new row is
//! stored with its window and method (`manual`), the old one is closed, not deleted. Running
//! engines pick it up within seconds; points after the window are judged against it.
//!
//! Also the optional `rolling` mode: every `rolling_interval`, series-scope baselines are
//! re-estimated from their last `rolling_points` points — only for series with no open
//! violation, so a degradation never becomes the new normal.

use std::time::Duration;

use llmscope_spc::{Baseline, BaselineOptions, SigmaMethod, Transform};

use super::metric::Metric;
use crate::store::live::{BaselineRow, PointSelector};
use crate::store::{Store, StoreError, now_us};

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
}

/// Outcome per series.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// A new baseline was stored.
    Set(BaselineRow),
    /// Not enough usable points in the range, or no variation.
    Skipped {
        /// Series key.
        series: String,
        /// Why.
        reason: String,
    },
}

/// Re-baselines every matching series from the samples in `[from_us, to_us]`.
#[allow(clippy::too_many_arguments)]
pub async fn rebaseline(
    store: &Store,
    sel: &Selector,
    from_us: i64,
    to_us: i64,
    method: SigmaMethod,
    transform: Transform,
    reason: &str,
    by: &str,
) -> Result<Vec<Outcome>, StoreError> {
    let mut out = Vec::new();
    for (site, host, provider, model) in store.series_in_range(from_us, to_us).await? {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if !(matches(&sel.site, &site)
            && matches(&sel.host, &host)
            && matches(&sel.provider, &provider)
            && matches(&sel.model, &model))
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
                },
                from_us,
                to_us,
                false,
                100_000,
            )
            .await?;
        for metric in Metric::ALL {
            if sel.metric.is_some_and(|m| m != metric) {
                continue;
            }
            let series = format!(
                "series|{site}|{host}|{provider}|{model}|{}",
                metric.as_str()
            );
            let values: Vec<f64> = points
                .iter()
                .filter_map(|p| metric.value(p.latency_ms, p.ttft_ms, p.tokens_out))
                .collect();
            if values.is_empty() {
                continue;
            }
            let opts = BaselineOptions {
                method,
                transform,
                k: 3.0,
            };
            match Baseline::estimate(&values, &opts) {
                Ok(b) => {
                    let row = BaselineRow {
                        id: 0,
                        scope: "series".into(),
                        site: site.clone(),
                        host: host.clone(),
                        provider: provider.clone(),
                        model: model.clone(),
                        metric: metric.as_str().into(),
                        center: b.center,
                        sigma: b.sigma,
                        k: b.k,
                        method: b.method.as_str().into(),
                        transform: b.transform.as_str().into(),
                        points: values.len() as i64,
                        window_from: from_us,
                        window_to: to_us,
                        mode: "manual".into(),
                        reason: reason.into(),
                        created_by: by.into(),
                        valid_from: now_us(),
                        valid_to: None,
                    };
                    let id = store.insert_baseline(&row).await?;
                    out.push(Outcome::Set(BaselineRow { id, ..row }));
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
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = now_us();
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
                if let Err(e) = roll_once(&store, points, method, transform).await {
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
) -> Result<usize, StoreError> {
    let mut n = 0;
    for b in store.list_baselines(true).await? {
        if b.scope != "series" {
            continue;
        }
        let key = format!(
            "series|{}|{}|{}|{}|{}",
            b.site, b.host, b.provider, b.model, b.metric
        );
        if !store.open_violations(&key).await?.is_empty() {
            continue;
        }
        let Some(metric) = Metric::parse(&b.metric) else {
            continue;
        };
        let sel = PointSelector {
            site: b.site.clone(),
            host: b.host.clone(),
            provider: b.provider.clone(),
            model: b.model.clone(),
        };
        let mut rows = store
            .sample_points(&sel, b.window_to + 1, now_us(), true, points as i64)
            .await?;
        rows.reverse();
        let values: Vec<f64> = rows
            .iter()
            .filter_map(|p| metric.value(p.latency_ms, p.ttft_ms, p.tokens_out))
            .collect();
        if values.len() < points.clamp(2, 20) {
            continue;
        }
        let Ok(est) = Baseline::estimate(
            &values,
            &BaselineOptions {
                method,
                transform,
                k: b.k,
            },
        ) else {
            continue;
        };
        let row = BaselineRow {
            id: 0,
            center: est.center,
            sigma: est.sigma,
            method: est.method.as_str().into(),
            transform: est.transform.as_str().into(),
            points: values.len() as i64,
            window_from: rows.first().map_or(b.window_from, |r| r.ts_us),
            window_to: rows.last().map_or(b.window_to, |r| r.ts_us),
            mode: "rolling".into(),
            reason: format!("rolling: the last {} points", values.len()),
            created_by: "llmscope".into(),
            valid_from: now_us(),
            valid_to: None,
            ..b
        };
        store.insert_baseline(&row).await?;
        n += 1;
    }
    Ok(n)
}
