//! Warm-up: the first sight of a series in this process rebuilds its state from the
//! database. Its last points up to the newest evaluated one are replayed silently (phase A)
//! to rebuild rule and episode state; open violations are reconciled with the database;
//! points committed later but never evaluated (a process died in between) are returned to be
//! evaluated normally (phase B).

use llmscope_model::{Detector, SeriesId};
use llmscope_spc::EpisodeEvent;
use llmscope_store::StoreError;
use llmscope_store::samples::PointSelector;
use llmscope_store::violations::ViolationOp;

use crate::engine::Engine;
use crate::state::OpenEp;
use crate::state::{Pt, SeriesState};

impl Engine {
    /// Warms `key` (first seen with a point at `first_new`); returns the points committed
    /// earlier but not yet evaluated, to evaluate before the new ones.
    pub(crate) async fn warm(
        &mut self,
        key: &SeriesId,
        first_new: i64,
        ops: &mut Vec<ViolationOp>,
    ) -> Result<Vec<Pt>, StoreError> {
        let eff = self.effective(&key.site, &key.model);
        let scope = eff.scope;
        let mut fresh = SeriesState::new(eff.clone(), self.settings_gen);
        let paging = key.source.paging();
        if paging.contains(&key.metric) {
            fresh.paging_arl0 = Some(self.cfg.arl0 * paging.len() as f64);
        }
        self.series.insert(key.clone(), fresh);
        let Some(frozen) = self.frozen_for(key, scope).await? else {
            return Ok(Vec::new());
        };
        let Some(mut st) = self.series.remove(key) else {
            return Ok(Vec::new());
        };
        self.ensure_design(st.paging_arl0, &frozen).await;
        st.follow(&frozen, &self.designer);
        let last_eval = self.store.counters(key).await?.last_evaluated;
        let rows = self
            .store
            .sample_points(
                &PointSelector::of(key),
                frozen.window_to.saturating_add(1),
                first_new.saturating_sub(1),
                true,
                self.cfg.warmup_points as i64 * 2,
            )
            .await?;
        let mut pts: Vec<Pt> = rows
            .iter()
            .filter_map(|r| {
                Some(Pt {
                    id: r.id,
                    ts: r.ts_us,
                    value: r.value(key.metric)?,
                })
            })
            .take(self.cfg.warmup_points)
            .collect();
        pts.reverse();
        // phase A: silent replay of what was evaluated before
        for p in pts.iter().filter(|p| p.ts <= last_eval) {
            let Ok(z) = frozen.z(p.value) else {
                continue;
            };
            let events = st.step(*p, z);
            st.last_ts = p.ts;
            if let Some(step) = st.monitor.as_mut().and_then(|m| m.push(p.value)) {
                if step.opened.is_some() {
                    let id = llmscope_model::finding_id(key, Detector::Cusum, 0, p.ts);
                    st.cusum = Some(Box::new(OpenEp {
                        rule: 0,
                        id,
                        points: vec![*p],
                        written: 1,
                        page: self.cfg.severity.severity(Detector::Cusum, 0).is_page(),
                        incident: None,
                    }));
                } else if step.closed.is_some() {
                    st.cusum = None;
                }
            }
            for e in events {
                match e {
                    EpisodeEvent::Opened { rule, .. } => {
                        let n = rule.number();
                        let points = st.rule_window(rule);
                        st.hold_episode(OpenEp {
                            rule: n,
                            id: llmscope_model::violation_id(key, n, p.ts),
                            written: points.len(),
                            points,
                            page: self.cfg.severity.severity(Detector::Nelson, n).is_page(),
                            incident: None,
                        });
                    }
                    EpisodeEvent::Extended { rule, .. } => {
                        st.extend_episode(rule);
                    }
                    EpisodeEvent::Resolved { rule, .. } => {
                        st.close_episode(rule);
                    }
                }
            }
        }
        // reconcile with what the database says is open
        for v in self.store.open_violations(key).await? {
            let held = match v.detector {
                Detector::Nelson => st.open.iter_mut().find(|e| e.rule == v.rule),
                Detector::Cusum => st.cusum.as_deref_mut(),
                _ => continue, // call-level detectors: crate::calls
            };
            match held {
                Some(ep) => {
                    ep.id = v.id.clone();
                    ep.page = v.severity.is_page();
                    ep.incident = v.incident.clone();
                }
                None => ops.push(self.resolve_stale(v, st.last_ts)),
            }
        }
        self.series.insert(key.clone(), st);
        // phase B: committed but never evaluated (a process died in between)
        if !self.cfg.replay_unevaluated {
            return Ok(Vec::new());
        }
        Ok(pts.into_iter().filter(|p| p.ts > last_eval).collect())
    }
}

impl Engine {
    /// Resolves a violation the database holds open but the replayed state does not (its
    /// episode ended while no process was judging); a page leaves its incident.
    pub(crate) fn resolve_stale(
        &mut self,
        v: llmscope_model::Violation,
        last_ts: i64,
    ) -> ViolationOp {
        if v.severity.is_page() {
            self.incidents.page_resolved(&v.series, &v.id);
        }
        ViolationOp::Resolve {
            points: None,
            at: last_ts.max(v.last_point_at),
            id: v.id,
            series: v.series,
            rule: v.rule,
        }
    }
}
