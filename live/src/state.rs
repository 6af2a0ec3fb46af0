//! One series' state and the judging of a point: Nelson rule state, the episode tracker, the
//! last points (for the qualifying windows of a violation) and the open episodes.

use std::collections::VecDeque;
use std::sync::Arc;

use llmscope_model::{FrozenBaseline, Point, SeriesId, Violation};
use llmscope_spc::{EpisodeEvent, EpisodeTracker, NelsonState, Rule};
use llmscope_store::violations::ViolationOp;
use uuid::Uuid;

use crate::settings::Effective;

/// Most recent points kept per series (the longest default rule window is 15).
pub const RECENT: usize = 16;
/// Points kept per open episode (its qualifying windows).
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
        }
    }

    /// Follows `frozen`: a different baseline changes what z-scores mean, so the rule state
    /// starts over (unless it has the same centre and sigma).
    pub fn follow(&mut self, frozen: &FrozenBaseline) {
        if self.baseline_id != frozen.id {
            if self.baseline_values != (frozen.baseline.center, frozen.baseline.sigma) {
                self.nelson = NelsonState::new();
            }
            self.baseline_id = frozen.id;
            self.baseline_values = (frozen.baseline.center, frozen.baseline.sigma);
        }
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

    /// Opens the episode of `rule` (replacing one still held) with its qualifying window as
    /// the first points; returns the window.
    pub fn open_episode(&mut self, rule: Rule, id: String) -> Vec<Pt> {
        let window = self.window(self.eff.rules.window_len(rule));
        let n = rule.number();
        self.open.retain(|e| e.rule != n);
        self.open.push(OpenEp {
            rule: n,
            id,
            written: window.len(),
            points: window.clone(),
        });
        window
    }

    /// Adds the newest qualifying window to the open episode of `rule`; returns the episode.
    pub fn extend_episode(&mut self, rule: Rule) -> Option<&mut OpenEp> {
        let window = self.window(self.eff.rules.window_len(rule));
        let ep = self.open.iter_mut().find(|e| e.rule == rule.number())?;
        merge_points(&mut ep.points, &window);
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
/// causes (and the contexts to attach) for the batch.
pub fn judge(
    st: &mut SeriesState,
    key: &SeriesId,
    frozen: &FrozenBaseline,
    p: Pt,
    ops: &mut Vec<ViolationOp>,
    contexts: &mut Vec<PendingContext>,
) {
    st.last_ts = p.ts;
    st.follow(frozen);
    if frozen.covers(p.ts) {
        // a Phase I point of its own baseline is never judged by it
        return;
    }
    let Ok(z) = frozen.z(p.value) else {
        return;
    };
    let events = st.step(p, z);
    if events.is_empty() {
        return;
    }
    for e in events {
        match e {
            EpisodeEvent::Opened { rule, .. } => {
                let id = llmscope_model::violation_id(key, rule.number(), p.ts);
                let window = st.open_episode(rule, id);
                let v = Violation::open(
                    key.clone(),
                    st.eff.scope,
                    rule.number(),
                    p.ts,
                    points(&window),
                    frozen.clone(),
                );
                ops.push(ViolationOp::Open(v));
                contexts.push(PendingContext {
                    op: ops.len() - 1,
                    site: key.site.clone(),
                    host: key.host.clone(),
                    points: st.recent.iter().rev().take(11).rev().copied().collect(),
                });
            }
            EpisodeEvent::Extended { rule, .. } => {
                if let Some(ep) = st.extend_episode(rule) {
                    let rewrite = ep.points.len() >= ep.written + POINTS_REWRITE_EVERY;
                    if rewrite {
                        ep.written = ep.points.len();
                    }
                    ops.push(ViolationOp::Extend {
                        id: ep.id.clone(),
                        last_point_at: p.ts,
                        points: rewrite.then(|| points(&ep.points)),
                    });
                }
            }
            EpisodeEvent::Resolved { rule, .. } => {
                if let Some(ep) = st.close_episode(rule) {
                    ops.push(ViolationOp::Resolve {
                        points: (ep.points.len() != ep.written).then(|| points(&ep.points)),
                        id: ep.id,
                        series: key.clone(),
                        rule: ep.rule,
                        at: p.ts,
                    });
                }
            }
        }
    }
}

/// Once per batch, an open episode's new points ride on its last extend, so charts show every
/// flagged point while an incident goes on.
pub fn flush_episode_points(st: &mut SeriesState, ops: &mut [ViolationOp]) {
    for ep in st.open.iter_mut().filter(|e| e.points.len() != e.written) {
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
    let last = into.last().map(|p| (p.ts, p.id));
    for p in window {
        if last.is_none_or(|l| (p.ts, p.id) > l) {
            into.push(*p);
        }
    }
    if into.len() > EPISODE_POINTS {
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
