//! Phase I: the first `baseline_points` successful points of a series (pooled over hosts for
//! the `site` and `global` scopes) estimate its baseline, which is stored with its window
//! and method and then frozen.

use std::collections::HashSet;

use llmscope_model::{BaselineMode, BaselineRecord, FrozenBaseline, SeriesId};
use llmscope_spc::{Baseline, BaselineOptions};
use llmscope_store::StoreError;
use llmscope_store::samples::PointSelector;
use uuid::Uuid;

use crate::engine::Engine;
use crate::state::Pt;

/// The Phase I points collected for one baseline key.
#[derive(Default)]
pub struct Learner {
    /// Whether the points already stored were read (once per process).
    pub seeded: bool,
    /// Points taken, by sample id and time (a point is taken once).
    pub ids: HashSet<(Uuid, i64)>,
    /// (ts, value) of the points taken.
    pub points: Vec<(i64, f64)>,
    /// Failed estimates so far.
    pub failures: u32,
}

impl Engine {
    /// Adds a Phase I point for the baseline `key`; estimates and stores the baseline once
    /// there are enough. Returns whether a baseline was stored.
    pub(crate) async fn learn(&mut self, key: &SeriesId, p: Pt) -> Result<bool, StoreError> {
        let need = self.cfg.baseline_points.max(2);
        let now = self.clock.now_us();
        if !self.learners.get(key).is_some_and(|l| l.seeded) {
            let rows = self
                .store
                .sample_points(
                    &PointSelector::of(key),
                    0,
                    now.saturating_add(86_400_000_000),
                    false,
                    need as i64 * 2,
                )
                .await?;
            let l = self.learners.entry(key.clone()).or_default();
            l.seeded = true;
            for r in rows {
                if let Some(v) = r.value(key.metric)
                    && l.points.len() < need
                    && l.ids.insert((r.id, r.ts_us))
                {
                    l.points.push((r.ts_us, v));
                }
            }
        }
        let l = self.learners.entry(key.clone()).or_default();
        if l.points.len() < need && l.ids.insert((p.id, p.ts)) {
            l.points.push((p.ts, p.value));
        }
        if l.points.len() < need {
            return Ok(false);
        }
        l.points.sort_by_key(|x| x.0);
        let values: Vec<f64> = l.points.iter().map(|x| x.1).collect();
        let opts = BaselineOptions {
            method: self.cfg.sigma_method,
            transform: self.cfg.transform,
            k: llmscope_spc::baseline::DEFAULT_K,
        };
        match Baseline::estimate(&values, &opts) {
            Ok(b) => {
                let window = (
                    l.points.first().map_or(0, |x| x.0),
                    l.points.last().map_or(0, |x| x.0),
                );
                let record = BaselineRecord {
                    key: key.clone(),
                    frozen: FrozenBaseline::new(0, key.scope, b, window, BaselineMode::Auto),
                    reason: format!("phase I: the first {} successful points", values.len()),
                    created_by: "llmscope".into(),
                    valid_from: now,
                    valid_to: None,
                };
                let id = self.store.insert_learned_baseline(&record).await?;
                tracing::info!(scope = key.scope.as_str(), site = %key.site, host = %key.host, model = %key.model, metric = key.metric.as_str(), center = b.center, sigma = b.sigma, "baseline estimated");
                self.learners.remove(key);
                self.baselines.remove(key);
                self.known_baseline_id = self.known_baseline_id.max(id);
                Ok(true)
            }
            Err(e) => {
                l.failures += 1;
                if l.failures == 1 {
                    tracing::warn!(metric = key.metric.as_str(), model = %key.model, error = %e, "cannot estimate a baseline yet; collecting more points");
                }
                // slide the window: keep the newer half and wait for more points
                let keep = l.points.split_off(l.points.len() / 2);
                l.points = keep;
                Ok(false)
            }
        }
    }
}
