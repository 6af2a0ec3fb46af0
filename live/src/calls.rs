//! Call-level detectors of one model on one host and source, judged on every call whatever
//! its outcome: `down` (consecutive failed calls, [`Outage`]), `error_rate` (a Bernoulli
//! CUSUM of the failure rate, [`ErrorRate`], on the calls outside outages) and the model's
//! liveness (newest call and the
//! median gap between calls, which the `silent` check reads from the counters). Their
//! violations are filed under the model's latency series (with its source); their "baseline"
//! is the detector's reference and limit: `down` — 0 failed calls in a row, limit
//! `down_after`; `error_rate` — the in-control rate p0, limit the designed-for rate p1.

use std::collections::VecDeque;

use llmscope_model::{BaselineMode, Detector, FrozenBaseline, Point, Scope, SeriesId, Violation};
use llmscope_spc::detect::{ErrorRate, ErrorRateDesign, Outage};
use llmscope_spc::{Baseline, Transform};
use llmscope_store::StoreError;
use llmscope_store::samples::PointSelector;
use llmscope_store::violations::ViolationOp;
use uuid::Uuid;

use crate::engine::Engine;
use crate::state::{OpenEp, Pt, merge_points, points, push_resolve};

/// Gaps kept for the median interval.
const GAPS: usize = 15;

/// The last [`GAPS`] gaps between calls, in milliseconds (a fixed ring: 64 bytes per
/// model-host, no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gaps {
    ms: [u32; GAPS],
    len: u8,
    next: u8,
}

impl Gaps {
    /// Adds a gap (µs; rounded to ms, at most ~49 days).
    pub fn push(&mut self, gap_us: i64) {
        let ms = u32::try_from((gap_us / 1000).max(1)).unwrap_or(u32::MAX);
        self.ms[usize::from(self.next)] = ms;
        self.next = ((usize::from(self.next) + 1) % GAPS) as u8;
        self.len = (usize::from(self.len) + 1).min(GAPS) as u8;
    }

    /// The median gap, µs (0: fewer than 3 known).
    pub fn median_us(&self) -> i64 {
        let n = usize::from(self.len);
        if n < 3 {
            return 0;
        }
        let mut g = self.ms;
        let g = &mut g[..n];
        g.sort_unstable();
        i64::from(g[n / 2]) * 1000
    }
}
/// Calls replayed when a model is first seen by a process.
const WARMUP_CALLS: i64 = 300;

/// One call's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    /// Sample id.
    pub id: Uuid,
    /// Call start, Unix µs.
    pub ts: i64,
    /// Whether it failed (error or timeout).
    pub failed: bool,
    /// Its latency, ms.
    pub latency_ms: f64,
}

impl Call {
    fn pt(&self) -> Pt {
        Pt {
            id: self.id,
            ts: self.ts,
            value: self.latency_ms,
        }
    }
}

/// The call-level state of one model on one host and source.
#[derive(Default)]
pub struct CallState {
    /// Consecutive failures.
    pub outage: Outage,
    /// The failure-rate CUSUM.
    pub rate: ErrorRate,
    /// Its state before the current run of failed calls.
    pub before_run: ErrorRate,
    /// The open `down` episode (boxed: usually none, and a model-host's state stays small).
    pub down: Option<Box<OpenEp>>,
    /// The open `error_rate` episode.
    pub errors: Option<Box<OpenEp>>,
    /// The current run of failed calls (the last few).
    pub run: VecDeque<Pt>,
    /// Newest call judged, Unix µs.
    pub last_ts: i64,
    /// Its sample id (a call sent again is not judged twice).
    pub last_id: Uuid,
    /// The last gaps between calls.
    pub gaps: Gaps,
}

impl CallState {
    /// The median gap between calls, µs (0: fewer than 3 gaps known).
    pub fn interval_us(&self) -> i64 {
        self.gaps.median_us()
    }

    fn note_gap(&mut self, ts: i64, id: Uuid) {
        if self.last_ts > 0 && ts > self.last_ts {
            self.gaps.push(ts - self.last_ts);
        }
        if ts >= self.last_ts {
            self.last_id = if ts > self.last_ts {
                id
            } else {
                self.last_id.max(id)
            };
        }
        self.last_ts = self.last_ts.max(ts);
    }

    /// Whether `c` comes at or before the newest judged call (by time, then id).
    fn is_late(&self, c: &Call) -> bool {
        c.ts < self.last_ts || (c.ts == self.last_ts && c.id <= self.last_id)
    }

    /// Pushes one call through both detectors; `on` receives what changed.
    fn push(&mut self, c: Call, down_after: u32, d: &ErrorRateDesign, mut on: impl FnMut(Change)) {
        self.note_gap(c.ts, c.id);
        if c.failed {
            if self.run.len() == 64 {
                self.run.pop_front();
            }
            self.run.push_back(c.pt());
        }
        let o = self.outage.push(c.failed, down_after);
        if o.opened {
            on(Change::Open(Detector::Down));
        } else if o.closed {
            on(Change::Close(Detector::Down));
        } else if c.failed && self.outage.is_down() {
            on(Change::Extend(Detector::Down));
        }
        if !c.failed {
            self.run.clear();
        }
        // an outage's failed calls are the `down` detector's: the error-rate chart judges the
        // calls outside outages (its state goes back to before the run of failures that made
        // the outage), so the incident ends when the model answers again
        if c.failed && self.run.len() == 1 {
            self.before_run = self.rate;
        }
        if self.outage.is_down() {
            if o.opened && self.before_run.alarm() == self.rate.alarm() {
                self.rate = self.before_run;
            }
            return;
        }
        let r = self.rate.push(c.failed, d);
        if r.opened {
            on(Change::Open(Detector::ErrorRate));
        } else if r.closed {
            on(Change::Close(Detector::ErrorRate));
        } else if c.failed && self.rate.alarm() {
            on(Change::Extend(Detector::ErrorRate));
        }
    }

    fn slot(&mut self, d: Detector) -> &mut Option<Box<OpenEp>> {
        if d == Detector::Down {
            &mut self.down
        } else {
            &mut self.errors
        }
    }
}

/// What a call did to a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Open(Detector),
    Extend(Detector),
    Close(Detector),
}

/// A reference "baseline" for a detector without a Phase I: its centre and its limit, in the
/// detector's own units (failed calls in a row, failure rate, milliseconds of silence).
pub fn reference(center: f64, limit: f64, window: (i64, i64)) -> FrozenBaseline {
    let sigma = ((limit - center) / 3.0).abs().max(f64::MIN_POSITIVE);
    let b = Baseline::given(center, sigma, 3.0, Transform::None)
        .or_else(|_| Baseline::given(0.0, 1.0, 3.0, Transform::None));
    match b {
        Ok(b) => FrozenBaseline::new(0, Scope::Series, b, window, BaselineMode::Auto),
        // unreachable: (0, 1, 3) is a valid baseline
        Err(_) => FrozenBaseline::xbar_s(Scope::Series, center, 1.0, 1),
    }
}

impl Engine {
    /// Judges the calls (sorted by time) of one model on one host and source; returns the
    /// newest call's time and the median interval.
    pub(crate) async fn feed_calls(
        &mut self,
        key: &SeriesId,
        calls: &[Call],
        ops: &mut Vec<ViolationOp>,
    ) -> Result<(i64, i64), StoreError> {
        let Some(first) = calls.first() else {
            return Ok((0, 0));
        };
        if !self.calls.contains_key(key) {
            let st = self.warm_calls(key, first.ts, ops).await?;
            self.calls.insert(key.clone(), st);
        }
        let (down_after, design) = (self.cfg.down_after, self.error_design);
        let severity = &self.cfg.severity;
        let incidents = &mut self.incidents;
        let Some(st) = self.calls.get_mut(key) else {
            return Ok((0, 0));
        };
        for c in calls {
            if st.is_late(c) {
                continue; // late (or sent again): counted, not judged
            }
            let mut changes = Vec::new();
            st.push(*c, down_after, &design, |ch| changes.push(ch));
            for ch in changes {
                match ch {
                    Change::Open(d) => {
                        let pts: Vec<Pt> = if d == Detector::Down {
                            st.run.iter().copied().collect()
                        } else {
                            st.run.iter().rev().take(16).rev().copied().collect()
                        };
                        let pts = if pts.is_empty() { vec![c.pt()] } else { pts };
                        let opened_at = pts.first().map_or(c.ts, |p| p.ts);
                        let base = if d == Detector::Down {
                            reference(0.0, f64::from(down_after), (opened_at, opened_at))
                        } else {
                            reference(design.p0, design.p1, (opened_at, opened_at))
                        };
                        let mut v = Violation::finding(
                            key.clone(),
                            Scope::Series,
                            d,
                            0,
                            opened_at,
                            points(&pts),
                            base,
                        );
                        v.last_point_at = c.ts;
                        v.severity = severity.severity(d, 0);
                        incidents.opened(&mut v);
                        *st.slot(d) = Some(Box::new(OpenEp::of(&v, pts)));
                        ops.push(ViolationOp::Open(v));
                    }
                    Change::Extend(d) => {
                        if let Some(ep) = st.slot(d).as_mut() {
                            merge_points(&mut ep.points, &[c.pt()]);
                            ep.written = ep.points.len();
                            ops.push(ViolationOp::Extend {
                                id: ep.id.clone(),
                                last_point_at: c.ts,
                                points: Some(points(&ep.points)),
                            });
                        }
                    }
                    Change::Close(d) => {
                        if let Some(ep) = st.slot(d).take() {
                            push_resolve(*ep, key, c.ts, incidents, ops);
                        }
                    }
                }
            }
        }
        Ok((st.last_ts, st.interval_us()))
    }

    /// Rebuilds a model's call state from its last calls before `first_new` (replayed
    /// silently) and reconciles it with the open `down` and `error_rate` violations.
    async fn warm_calls(
        &mut self,
        key: &SeriesId,
        first_new: i64,
        ops: &mut Vec<ViolationOp>,
    ) -> Result<CallState, StoreError> {
        let mut st = CallState::default();
        let mut rows = self
            .store
            .recent_calls(&PointSelector::of(key), first_new, WARMUP_CALLS)
            .await?;
        rows.reverse();
        let design = self.error_design;
        for r in rows {
            let c = Call {
                id: r.id,
                ts: r.ts_us,
                failed: r.failed,
                latency_ms: r.latency_ms,
            };
            st.push(c, self.cfg.down_after, &design, |_| {});
        }
        for v in self.store.open_violations(key).await? {
            let alarmed = match v.detector {
                Detector::Down => st.outage.is_down(),
                Detector::ErrorRate => st.rate.alarm(),
                _ => continue,
            };
            if alarmed {
                let pts: Vec<Pt> = v
                    .points
                    .iter()
                    .filter_map(|p: &Point| {
                        Some(Pt {
                            id: p.id?,
                            ts: p.ts,
                            value: p.value,
                        })
                    })
                    .collect();
                *st.slot(v.detector) = Some(Box::new(OpenEp::of(&v, pts)));
            } else {
                ops.push(self.resolve_stale(v, st.last_ts));
            }
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmscope_spc::detect::design_error_rate;

    fn call(ts: i64, failed: bool) -> Call {
        Call {
            id: Uuid::nil(),
            ts,
            failed,
            latency_ms: 10.0,
        }
    }

    #[test]
    fn three_failures_open_down_and_a_success_closes_it() {
        let d = design_error_rate(0.01, 0.1, 100_000.0).unwrap();
        let mut st = CallState::default();
        let mut seen = Vec::new();
        for (i, f) in [false, true, true, true, true, false].iter().enumerate() {
            st.push(call(i as i64 * 1_000_000, *f), 3, &d, |c| seen.push((i, c)));
        }
        assert!(
            seen.contains(&(3, Change::Open(Detector::Down))),
            "{seen:?}"
        );
        assert!(seen.contains(&(4, Change::Extend(Detector::Down))));
        assert!(seen.contains(&(5, Change::Close(Detector::Down))));
        assert_eq!(st.interval_us(), 1_000_000);
    }

    #[test]
    fn references_put_the_limit_at_ucl() {
        let r = reference(0.0, 3.0, (1, 1));
        assert!((r.ucl() - 3.0).abs() < 1e-9);
        let r = reference(0.01, 0.1, (1, 1));
        assert!((r.ucl() - 0.1).abs() < 1e-9 && (r.center_original() - 0.01).abs() < 1e-12);
    }
}
