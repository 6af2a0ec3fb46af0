//! One series' state and the judging of a point: Nelson rule state, the episode tracker, the
//! paging monitor (the designed CUSUM) when the series pages, the last points (for the
//! qualifying windows of a violation) and the open episodes.

use std::collections::VecDeque;
use std::sync::Arc;

use llmscope_model::{Detector, FrozenBaseline, Point, SeriesId, SeverityMap, Violation};
use llmscope_spc::detect::{Designer, Monitor};
use llmscope_spc::{EpisodeEvent, EpisodeTracker, NelsonState, Rule};
use llmscope_store::violations::ViolationOp;
use uuid::Uuid;

use crate::incidents::Incidents;
use crate::settings::Effective;

/// Most recent points kept per series (the longest default rule window is 15).
pub const RECENT: usize = 16;
/// Points kept per open episode (its qualifying windows): the last 256 to 512.
pub const EPISODE_POINTS: usize = 256;
/// Within one batch an open episode's points are written at most every this many new points;
/// the batch's last extend of the episode always carries them (and resolution does), so the
/// cost is one rewrite per episode per batch, not per point.
pub const POINTS_REWRITE_EVERY: usize = 32;

/// A judged point, as the engine keeps it (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pt {
    /// Sample id.
    pub id: Uuid,
    /// Call start, Unix µs.
    pub ts: i64,
    /// The metric's value.
    pub value: f64,
}

impl Pt {
    /// The violation point of this sample.
    pub fn point(&self) -> Point {
        Point::sample(self.id, self.ts, self.value)
    }
}

/// The violation points of some judged points.
pub fn points(pts: &[Pt]) -> Vec<Point> {
    pts.iter().map(Pt::point).collect()
}

/// An open episode of one rule.
pub struct OpenEp {
    /// Rule number.
    pub rule: u8,
    /// Violation id.
    pub id: String,
    /// Its qualifying points so far (the last [`EPISODE_POINTS`]).
    pub points: Vec<Pt>,
    /// Points already written to the violation row.
    pub written: usize,
    /// Whether it is a page (`critical` or `error`): it keeps its incident open.
    pub page: bool,
    /// The incident it belongs to (its lead's id), if any.
    pub incident: Option<String>,
}

impl OpenEp {
    /// The episode of violation `v`, with `points` as its points so far (all written).
    pub fn of(v: &Violation, points: Vec<Pt>) -> OpenEp {
        OpenEp {
            rule: v.rule,
            id: v.id.clone(),
            written: points.len(),
            points,
            page: v.severity.is_page(),
            incident: v.incident.clone(),
        }
    }
}

/// A series held in memory.
pub struct SeriesState {
    /// Its effective rule settings.
    pub eff: Arc<Effective>,
    /// The settings generation `eff` belongs to.
    pub settings_gen: u64,
    /// Rule state.
    pub nelson: NelsonState,
    /// Episode state.
    pub tracker: EpisodeTracker,
    /// Judged points so far.
    pub index: u64,
    /// Newest evaluated point, Unix µs.
    pub last_ts: i64,
    /// Id of the baseline the rule state belongs to.
    pub baseline_id: i64,
    /// Its centre and sigma (a replica re-reading an identical baseline keeps its state).
    pub baseline_values: (f64, f64),
    /// The series-scope baseline (cached here, one per series).
    pub frozen: Option<Arc<FrozenBaseline>>,
    /// The baseline generation `frozen` belongs to.
    pub frozen_gen: i64,
    /// The last [`RECENT`] judged points.
    pub recent: VecDeque<Pt>,
    /// Open episodes.
    pub open: Vec<OpenEp>,
    /// Whether a judged point of this series was announced.
    pub announced: bool,
    /// The per-series in-control run length its paging CUSUM is designed for (`None`: the
    /// metric does not page for its source).
    pub paging_arl0: Option<f64>,
    /// The paging monitor, built from the baseline it follows.
    pub monitor: Option<Monitor>,
    /// The open CUSUM episode.
    pub cusum: Option<Box<OpenEp>>,
}

/// What judging needs besides the series: the CUSUM designs, the severities and the open
/// incidents.
pub struct JudgeCtx<'a> {
    /// Designs of the paging CUSUM.
    pub designer: &'a Designer,
    /// Severity per rule and detector.
    pub severity: &'a SeverityMap,
    /// The open incidents (findings join them as they open).
    pub incidents: &'a mut Incidents,
}

impl SeriesState {
    /// A fresh series judged with `eff`.
    pub fn new(eff: Arc<Effective>, settings_gen: u64) -> SeriesState {
        SeriesState {
            tracker: EpisodeTracker::new(eff.resolve_after),
            eff,
            settings_gen,
            nelson: NelsonState::new(),
            index: 0,
            last_ts: i64::MIN,
            baseline_id: 0,
            baseline_values: (f64::NAN, f64::NAN),
            frozen: None,
            frozen_gen: i64::MIN,
            recent: VecDeque::new(),
            open: Vec::new(),
            announced: false,
            paging_arl0: None,
            monitor: None,
            cusum: None,
        }
    }

    /// Follows `frozen`: a different baseline changes what z-scores mean, so the rule state
    /// and the CUSUM start over (unless it has the same centre and sigma).
    pub fn follow(&mut self, frozen: &FrozenBaseline, designer: &Designer) {
        if self.baseline_id != frozen.id {
            let same = self.baseline_values == (frozen.baseline.center, frozen.baseline.sigma);
            if !same {
                self.nelson = NelsonState::new();
            }
            if !same || self.monitor.is_none() {
                self.monitor = self
                    .paging_arl0
                    .and_then(|arl0| monitor_for(frozen, arl0, designer));
            }
            self.baseline_id = frozen.id;
            self.baseline_values = (frozen.baseline.center, frozen.baseline.sigma);
        }
    }

    /// Whether `p` comes at or before the newest judged point (by time, then id): late — a
    /// point sent again (a producer's resend, a log redelivery) is never judged twice.
    pub fn is_late(&self, p: &Pt) -> bool {
        p.ts < self.last_ts
            || (p.ts == self.last_ts
                && self
                    .recent
                    .back()
                    .is_some_and(|r| r.ts == p.ts && p.id <= r.id))
    }

    /// Pushes a z-score through the rules and the tracker; returns the episode events.
    pub fn step(&mut self, p: Pt, z: f64) -> Vec<EpisodeEvent> {
        let flags = self.nelson.push(z, &self.eff.compiled.0);
        push_recent(&mut self.recent, p);
        let mut events = Vec::new();
        self.tracker.push(self.index, flags, |e| events.push(e));
        self.index += 1;
        events
    }

    /// The qualifying window of `rule` at the newest point.
    pub fn rule_window(&self, rule: Rule) -> Vec<Pt> {
        self.window(self.eff.rules.window_len(rule))
    }

    /// Holds the episode `ep` of its rule (replacing one still held).
    pub fn hold_episode(&mut self, ep: OpenEp) {
        self.open.retain(|e| e.rule != ep.rule);
        self.open.push(ep);
    }

    /// Adds the newest qualifying window to the open episode of `rule`; returns the episode.
    pub fn extend_episode(&mut self, rule: Rule) -> Option<&mut OpenEp> {
        let len = (self.eff.rules.window_len(rule) as usize).min(self.recent.len());
        let ep = self.open.iter_mut().find(|e| e.rule == rule.number())?;
        // the window's points newer than the episode's last, without building the window
        let skip = self.recent.len() - len;
        merge_points_iter(&mut ep.points, self.recent.iter().skip(skip).copied());
        Some(ep)
    }

    /// Closes the open episode of `rule`; returns it.
    pub fn close_episode(&mut self, rule: Rule) -> Option<OpenEp> {
        let pos = self.open.iter().position(|e| e.rule == rule.number())?;
        Some(self.open.swap_remove(pos))
    }

    /// The last `len` points (a rule's qualifying window).
    pub fn window(&self, len: u32) -> Vec<Pt> {
        let n = (len as usize).min(self.recent.len());
        self.recent
            .iter()
            .skip(self.recent.len() - n)
            .copied()
            .collect()
    }
}

/// The paging monitor of a series judged against `frozen`, designed for `arl0` (`None` for
/// an X̄ chart's limits, which are not a Phase I of individual points).
pub fn monitor_for(frozen: &FrozenBaseline, arl0: f64, designer: &Designer) -> Option<Monitor> {
    let b = &frozen.baseline;
    if frozen.bucket_us.is_some() {
        return None;
    }
    let phase1 = b.phase1();
    match designer.design_or_nearest(arl0, &phase1) {
        Ok(d) => Some(Monitor::from_design(phase1, b.transform, &d)),
        Err(e) => {
            tracing::warn!(error = %e, points = b.points, phi = b.phi, "no paging cusum for this baseline");
            None
        }
    }
}

/// What judging a point asks for besides violation operations: a context to attach to the
/// violation it opened.
pub struct PendingContext {
    /// Position of the `Open` operation in the batch's operations.
    pub op: usize,
    /// Site of the series.
    pub site: String,
    /// Host of the series.
    pub host: String,
    /// The 10 points before the trigger and the trigger.
    pub points: Vec<Pt>,
}

/// Evaluates one point of a series that has a baseline; pushes the violation operations it
/// causes (and the contexts to attach) for the batch: Nelson rule episodes (chart markers by
/// default) and the paging CUSUM's episodes, each joining or opening its incident as it
/// opens (see [`crate::incidents`]). The rules judge a point before the CUSUM does.
pub fn judge(
    st: &mut SeriesState,
    key: &SeriesId,
    frozen: &FrozenBaseline,
    p: Pt,
    cx: &mut JudgeCtx<'_>,
    ops: &mut Vec<ViolationOp>,
    contexts: &mut Vec<PendingContext>,
) {
    st.last_ts = p.ts;
    st.follow(frozen, cx.designer);
    if frozen.covers(p.ts) {
        // a Phase I point of its own baseline is never judged by it
        return;
    }
    let Ok(z) = frozen.z(p.value) else {
        return;
    };
    let events = st.step(p, z);
    for e in events {
        match e {
            EpisodeEvent::Opened { rule, .. } => {
                let window = st.rule_window(rule);
                let mut v = Violation::open(
                    key.clone(),
                    st.eff.scope,
                    rule.number(),
                    p.ts,
                    points(&window),
                    frozen.clone(),
                );
                v.severity = cx.severity.severity(Detector::Nelson, rule.number());
                let leads = cx.incidents.opened(&mut v);
                st.hold_episode(OpenEp::of(&v, window));
                if leads {
                    attach_open(st, &v, ops);
                }
                push_open(st, key, v, ops, contexts);
            }
            EpisodeEvent::Extended { rule, .. } => {
                if let Some(ep) = st.extend_episode(rule) {
                    push_extend(ep, p.ts, ops);
                }
            }
            EpisodeEvent::Resolved { rule, .. } => {
                if let Some(ep) = st.close_episode(rule) {
                    push_resolve(ep, key, p.ts, cx.incidents, ops);
                }
            }
        }
    }
    let Some(step) = st.monitor.as_mut().and_then(|m| m.push(p.value)) else {
        return;
    };
    if step.opened.is_some() && st.cusum.is_none() {
        let window = st.window(RECENT as u32);
        let mut v = Violation::finding(
            key.clone(),
            st.eff.scope,
            Detector::Cusum,
            0,
            p.ts,
            points(&window),
            frozen.clone(),
        );
        v.severity = cx.severity.severity(Detector::Cusum, 0);
        let leads = cx.incidents.opened(&mut v);
        st.cusum = Some(Box::new(OpenEp::of(&v, window)));
        if leads {
            attach_open(st, &v, ops);
        }
        push_open(st, key, v, ops, contexts);
    } else if step.closed.is_some() {
        if let Some(mut ep) = st.cusum.take() {
            merge_points(&mut ep.points, &[p]);
            push_resolve(*ep, key, p.ts, cx.incidents, ops);
        }
    } else if step.signal
        && let Some(ep) = st.cusum.as_mut()
    {
        // the change goes on: it signalled again
        merge_points(&mut ep.points, &[p]);
        push_extend(ep, p.ts, ops);
    }
}

/// `lead` opened a new incident: the series' open markers without an incident join it.
fn attach_open(st: &mut SeriesState, lead: &Violation, ops: &mut Vec<ViolationOp>) {
    let mut ids = Vec::new();
    for ep in st.open.iter_mut() {
        if ep.incident.is_none() && !ep.page && ep.id != lead.id {
            ep.incident = lead.incident.clone();
            ids.push(ep.id.clone());
        }
    }
    if let (false, Some(incident)) = (ids.is_empty(), lead.incident.clone()) {
        ops.push(ViolationOp::Attach { incident, ids });
    }
}

/// Pushes the opening of `v` and, for a page, the context to attach to it.
pub fn push_open(
    st: &SeriesState,
    key: &SeriesId,
    v: Violation,
    ops: &mut Vec<ViolationOp>,
    contexts: &mut Vec<PendingContext>,
) {
    // a page stores its context (the points before it with the host's telemetry, kept past
    // the samples' retention); a chart marker's is read from the samples when it is shown
    let page = v.severity.is_page();
    ops.push(ViolationOp::Open(v));
    if page {
        contexts.push(PendingContext {
            op: ops.len() - 1,
            site: key.site.clone(),
            host: key.host.clone(),
            points: st.recent.iter().rev().take(11).rev().copied().collect(),
        });
    }
}

/// Extends an open episode to `ts` (its points rewritten every [`POINTS_REWRITE_EVERY`]).
pub fn push_extend(ep: &mut OpenEp, ts: i64, ops: &mut Vec<ViolationOp>) {
    let rewrite = ep.points.len() >= ep.written + POINTS_REWRITE_EVERY;
    if rewrite {
        ep.written = ep.points.len();
    }
    ops.push(ViolationOp::Extend {
        id: ep.id.clone(),
        last_point_at: ts,
        points: rewrite.then(|| points(&ep.points)),
    });
}

/// Resolves an episode; a page leaves its incident.
pub fn push_resolve(
    ep: OpenEp,
    key: &SeriesId,
    ts: i64,
    incidents: &mut Incidents,
    ops: &mut Vec<ViolationOp>,
) {
    if ep.page {
        incidents.page_resolved(key, &ep.id);
    }
    ops.push(ViolationOp::Resolve {
        points: (ep.points.len() != ep.written).then(|| points(&ep.points)),
        id: ep.id,
        series: key.clone(),
        rule: ep.rule,
        at: ts,
    });
}

/// Once per batch, an open episode's new points ride on its last extend, so charts show every
/// flagged point while an incident goes on.
pub fn flush_episode_points(st: &mut SeriesState, ops: &mut [ViolationOp]) {
    for ep in st
        .open
        .iter_mut()
        .chain(st.cusum.as_deref_mut())
        .filter(|e| e.points.len() != e.written)
    {
        let last_extend = ops.iter_mut().rev().find_map(|o| match o {
            ViolationOp::Extend { id, points, .. } if *id == ep.id => Some(points),
            _ => None,
        });
        if let Some(p) = last_extend {
            *p = Some(points(&ep.points));
            ep.written = ep.points.len();
        }
    }
}

fn push_recent(recent: &mut VecDeque<Pt>, p: Pt) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(p);
}

/// Adds the points of `window` newer than the episode's last point (keeping the last
/// [`EPISODE_POINTS`]).
pub fn merge_points(into: &mut Vec<Pt>, window: &[Pt]) {
    merge_points_iter(into, window.iter().copied());
}

/// [`merge_points`] from an iterator. The oldest points are dropped in bulk once there are
/// twice [`EPISODE_POINTS`] (one move per [`EPISODE_POINTS`] new points, not one per point).
pub fn merge_points_iter(into: &mut Vec<Pt>, window: impl Iterator<Item = Pt>) {
    let last = into.last().map(|p| (p.ts, p.id));
    for p in window {
        if last.is_none_or(|l| (p.ts, p.id) > l) {
            into.push(p);
        }
    }
    if into.len() > 2 * EPISODE_POINTS {
        let drop = into.len() - EPISODE_POINTS;
        into.drain(..drop);
    }
}

/// Keeps only the last `Extend` per violation in a batch.
pub fn coalesce_extends(ops: &mut Vec<ViolationOp>) {
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let ViolationOp::Extend { id, .. } = op {
            last.insert(id.clone(), i);
        }
    }
    let mut i = 0;
    ops.retain(|op| {
        let keep = match op {
            ViolationOp::Extend { id, .. } => last.get(id) == Some(&i),
            _ => true,
        };
        i += 1;
        keep
    });
}
