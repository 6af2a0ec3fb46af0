//! The per-series engine task (see the module docs of [`crate::live`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmscope_spc::{
    Baseline, BaselineOptions, EpisodeEvent, EpisodeTracker, NelsonState, SigmaMethod, Transform,
};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::metric::Metric;
use super::settings::{Effective, Scope, Settings};
use crate::store::live::{BaselineRow, NewViolation, PointSelector, ViolationOp};
use crate::store::{CallStatus, SampleRow, Store, StoreError, now_us};

/// Most recent points kept per series (the longest default rule window is 15).
const RECENT: usize = 16;
/// Points kept per open episode (its qualifying windows).
const EPISODE_POINTS: usize = 256;
/// How often rule configuration and baseline changes are picked up.
const REFRESH: Duration = Duration::from_secs(2);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Phase I size: successful points that estimate a baseline.
    pub baseline_points: usize,
    /// Sigma estimator.
    pub sigma_method: SigmaMethod,
    /// Transform.
    pub transform: Transform,
    /// Default quiet points that resolve an episode.
    pub resolve_after: u32,
    /// Points replayed when a series is first seen by this process.
    pub warmup_points: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            baseline_points: 50,
            sigma_method: SigmaMethod::Mrbar,
            transform: Transform::None,
            resolve_after: 20,
            warmup_points: 64,
        }
    }
}

/// Identity of a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: Metric,
}

impl SeriesKey {
    /// Parses the text form `series|site|host|provider|model|metric`; `None` if it is not one.
    pub fn parse(s: &str) -> Option<SeriesKey> {
        let p: Vec<&str> = s.split('|').collect();
        match p.as_slice() {
            ["series", site, host, provider, model, metric] => Some(SeriesKey {
                site: (*site).into(),
                host: (*host).into(),
                provider: (*provider).into(),
                model: (*model).into(),
                metric: Metric::parse(metric)?,
            }),
            _ => None,
        }
    }

    /// The key stored with violations and counters.
    pub fn text(&self) -> String {
        format!(
            "series|{}|{}|{}|{}|{}",
            self.site,
            self.host,
            self.provider,
            self.model,
            self.metric.as_str()
        )
    }

    fn baseline_key(&self, scope: Scope) -> BaselineKey {
        BaselineKey {
            scope,
            site: if scope == Scope::Global {
                String::new()
            } else {
                self.site.clone()
            },
            host: if scope == Scope::Series {
                self.host.clone()
            } else {
                String::new()
            },
            provider: self.provider.clone(),
            model: self.model.clone(),
            metric: self.metric,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BaselineKey {
    scope: Scope,
    site: String,
    host: String,
    provider: String,
    model: String,
    metric: Metric,
}

impl BaselineKey {
    fn selector(&self) -> PointSelector {
        PointSelector {
            site: self.site.clone(),
            host: self.host.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
        }
    }
}

/// The parts of a stored baseline the engine needs (kept small: one per series).
struct Frozen {
    id: i64,
    b: Baseline,
    window_from: i64,
    window_to: i64,
    auto: bool,
}

impl Frozen {
    /// The frozen copy stored with a violation.
    fn json(&self, key: &SeriesKey, scope: Scope) -> String {
        json!({
            "id": self.id,
            "scope": scope.as_str(),
            "site": if scope == Scope::Global { "" } else { key.site.as_str() },
            "host": if scope == Scope::Series { key.host.as_str() } else { "" },
            "provider": key.provider,
            "model": key.model,
            "metric": key.metric.as_str(),
            "center": self.b.center,
            "sigma": self.b.sigma,
            "k": self.b.k,
            "ucl": self.b.ucl(),
            "lcl": self.b.lcl(),
            "method": self.b.method.as_str(),
            "transform": self.b.transform.as_str(),
            "points": self.b.points,
            "window_from": self.window_from,
            "window_to": self.window_to,
            "mode": if self.auto { "auto" } else { "manual" },
        })
        .to_string()
    }
}

#[derive(Default)]
struct Learner {
    seeded: bool,
    ids: HashSet<(Uuid, i64)>,
    points: Vec<(i64, f64)>,
    failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Pt {
    id: Uuid,
    ts: i64,
    value: f64,
}

struct OpenEp {
    rule: u8,
    id: String,
    points: Vec<Pt>,
    /// Points already written to the violation row.
    written: usize,
}

/// Within one batch an open episode's points are written at most every this many new points;
/// the batch's last extend of the episode always carries them (and resolution does), so the
/// cost is one rewrite per episode per batch, not per point.
const POINTS_REWRITE_EVERY: usize = 32;

struct SeriesState {
    eff: Arc<Effective>,
    settings_gen: u64,
    nelson: NelsonState,
    tracker: EpisodeTracker,
    index: u64,
    last_ts: i64,
    baseline_id: i64,
    baseline_values: (f64, f64),
    frozen: Option<Arc<Frozen>>,
    frozen_gen: i64,
    recent: VecDeque<Pt>,
    open: Vec<OpenEp>,
    /// `/metrics` gauges (None: not asked yet, or over the cap).
    gauges: Option<crate::metrics::SeriesGauges>,
    gauges_asked: bool,
}

/// Sends committed samples to the engine (the writer's commit hook).
pub type EngineHandle = mpsc::Sender<Vec<SampleRow>>;

/// The live SPC engine.
pub struct Engine {
    store: Store,
    cfg: EngineConfig,
    series: HashMap<SeriesKey, SeriesState>,
    learners: HashMap<BaselineKey, Learner>,
    baselines: HashMap<BaselineKey, Option<Arc<Frozen>>>,
    settings: Settings,
    effective: HashMap<(String, String), Arc<Effective>>,
    settings_gen: u64,
    /// Highest baseline id known to this process (its own inserts included).
    known_baseline_id: i64,
    /// Bumped when another process (or the CLI) changed baselines: caches start over.
    baseline_gen: i64,
    refreshed: Option<Instant>,
}

fn pts_json(pts: &[Pt]) -> String {
    let v: Vec<serde_json::Value> = pts
        .iter()
        .map(|p| json!({"id": p.id.to_string(), "ts": p.ts, "value": p.value}))
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// The violation id: the same on every replica for the same episode.
pub fn violation_id(series_key: &str, rule: u8, opened_at: i64) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{series_key}|{rule}|{opened_at}").as_bytes(),
    )
    .to_string()
}

struct PendingContext {
    op: usize,
    site: String,
    host: String,
    points: Vec<Pt>,
}

impl Engine {
    /// A new engine over `store`.
    pub fn new(store: Store, cfg: EngineConfig) -> Engine {
        let settings = Settings::from_rows(&[], cfg.resolve_after);
        Engine {
            store,
            cfg,
            series: HashMap::new(),
            learners: HashMap::new(),
            baselines: HashMap::new(),
            settings,
            effective: HashMap::new(),
            settings_gen: 0,
            known_baseline_id: -1,
            baseline_gen: 0,
            refreshed: None,
        }
    }

    /// Starts the engine task; returns the handle the writer sends committed samples to.
    pub fn spawn(store: Store, cfg: EngineConfig) -> (EngineHandle, tokio::task::JoinHandle<()>) {
        // room for start-up bursts (warm-ups, Phase I inserts) without stalling the writers;
        // what it holds when a process dies is evaluated by the next warm-up (phase B)
        let (tx, mut rx) = mpsc::channel::<Vec<SampleRow>>(256);
        let mut engine = Engine::new(store, cfg);
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let mut backoff = Duration::from_millis(100);
                loop {
                    match engine.process(&batch).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "live spc: evaluation failed; retrying the batch");
                            // a failure may leave partial in-memory state: rebuild from the database
                            engine.series.clear();
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        });
        (tx, task)
    }

    /// Active series held in memory.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    async fn refresh(&mut self) -> Result<(), StoreError> {
        if self.refreshed.is_some_and(|t| t.elapsed() < REFRESH) {
            return Ok(());
        }
        self.refreshed = Some(Instant::now());
        let rows = self.store.rule_configs().await?;
        let settings = Settings::from_rows(&rows, self.cfg.resolve_after);
        self.settings = settings;
        self.effective.clear();
        self.settings_gen += 1;
        let max_id = self.store.baseline_generation().await?;
        if max_id > self.known_baseline_id {
            self.known_baseline_id = max_id;
            self.baseline_gen += 1;
            self.baselines.clear();
        }
        Ok(())
    }

    fn effective(&mut self, site: &str, model: &str) -> Arc<Effective> {
        let key = (site.to_owned(), model.to_owned());
        if let Some(e) = self.effective.get(&key) {
            return e.clone();
        }
        let e = Arc::new(self.settings.resolve(site, model));
        self.effective.insert(key, e.clone());
        e
    }

    /// The baseline judging `series` under `scope`: series-scope baselines are cached in the
    /// series' own state, pooled ones in a shared map.
    async fn frozen_for(
        &mut self,
        series: &SeriesKey,
        scope: Scope,
    ) -> Result<Option<Arc<Frozen>>, StoreError> {
        let bkey = series.baseline_key(scope);
        if scope != Scope::Series {
            return self.baseline(&bkey).await;
        }
        if let Some(st) = self.series.get(series)
            && st.frozen_gen == self.baseline_gen
        {
            return Ok(st.frozen.clone());
        }
        let f = self.load_baseline(&bkey).await?;
        let generation = self.baseline_gen;
        if let Some(st) = self.series.get_mut(series) {
            st.frozen = f.clone();
            st.frozen_gen = generation;
        }
        Ok(f)
    }

    async fn baseline(&mut self, key: &BaselineKey) -> Result<Option<Arc<Frozen>>, StoreError> {
        if let Some(b) = self.baselines.get(key) {
            return Ok(b.clone());
        }
        let frozen = self.load_baseline(key).await?;
        self.baselines.insert(key.clone(), frozen.clone());
        Ok(frozen)
    }

    async fn load_baseline(&self, key: &BaselineKey) -> Result<Option<Arc<Frozen>>, StoreError> {
        let row = self
            .store
            .current_baseline(
                key.scope.as_str(),
                &key.site,
                &key.host,
                &key.provider,
                &key.model,
                key.metric.as_str(),
            )
            .await?;
        let frozen = row.map(|row| {
            let transform = if row.transform == "log" {
                Transform::Log
            } else {
                Transform::None
            };
            let b = Baseline {
                center: row.center,
                sigma: row.sigma,
                k: row.k,
                method: match row.method.as_str() {
                    "median" => SigmaMethod::Median,
                    "given" => SigmaMethod::Given,
                    _ => SigmaMethod::Mrbar,
                },
                transform,
                points: row.points as usize,
            };
            Arc::new(Frozen {
                id: row.id,
                b,
                window_from: row.window_from,
                window_to: row.window_to,
                auto: row.mode == "auto",
            })
        });
        Ok(frozen)
    }

    /// Adds a Phase I point; estimates and stores the baseline once there are enough.
    /// Returns whether a baseline was stored.
    async fn learn(&mut self, key: &BaselineKey, p: Pt) -> Result<bool, StoreError> {
        let need = self.cfg.baseline_points.max(2);
        if !self.learners.get(key).is_some_and(|l| l.seeded) {
            let rows = self
                .store
                .sample_points(
                    &key.selector(),
                    0,
                    now_us() + 86_400_000_000,
                    false,
                    need as i64 * 2,
                )
                .await?;
            let l = self.learners.entry(key.clone()).or_default();
            l.seeded = true;
            for r in rows {
                if let (Some(v), Ok(id)) = (
                    key.metric.value(r.latency_ms, r.ttft_ms, r.tokens_out),
                    Uuid::parse_str(&r.id),
                ) && l.points.len() < need
                    && l.ids.insert((id, r.ts_us))
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
            k: 3.0,
        };
        match Baseline::estimate(&values, &opts) {
            Ok(b) => {
                let row = BaselineRow {
                    id: 0,
                    scope: key.scope.as_str().into(),
                    site: key.site.clone(),
                    host: key.host.clone(),
                    provider: key.provider.clone(),
                    model: key.model.clone(),
                    metric: key.metric.as_str().into(),
                    center: b.center,
                    sigma: b.sigma,
                    k: b.k,
                    method: b.method.as_str().into(),
                    transform: b.transform.as_str().into(),
                    points: values.len() as i64,
                    window_from: l.points.first().map_or(0, |x| x.0),
                    window_to: l.points.last().map_or(0, |x| x.0),
                    mode: "auto".into(),
                    reason: format!("phase I: the first {} successful points", values.len()),
                    created_by: "llmscope".into(),
                    valid_from: now_us(),
                    valid_to: None,
                };
                let id = self.store.insert_baseline(&row).await?;
                tracing::info!(scope = key.scope.as_str(), site = %key.site, host = %key.host, model = %key.model, metric = key.metric.as_str(), center = b.center, sigma = b.sigma, "baseline estimated");
                self.learners.remove(key);
                self.baselines.remove(key);
                self.known_baseline_id = self.known_baseline_id.max(id);
                return Ok(true);
            }
            Err(e) => {
                l.failures += 1;
                if l.failures == 1 {
                    tracing::warn!(metric = key.metric.as_str(), model = %key.model, error = %e, "cannot estimate a baseline yet; collecting more points");
                }
                // slide the window: keep the newer half and wait for more points
                let keep = l.points.split_off(l.points.len() / 2);
                l.points = keep;
            }
        }
        Ok(false)
    }

    /// Evaluates one committed batch (see the module docs).
    #[tracing::instrument(name = "rule_evaluation", skip_all, fields(samples = samples.len(), series = tracing::field::Empty, opened = tracing::field::Empty))]
    pub async fn process(&mut self, samples: &[SampleRow]) -> Result<(), StoreError> {
        self.refresh().await?;
        // group by borrowed identity first: owned keys are built once per series per batch
        type Ident<'a> = (&'a str, &'a str, &'a str, &'a str);
        let mut grouped: HashMap<Ident<'_>, [Vec<Pt>; 4]> = HashMap::new();
        let mut errors: BTreeMap<String, i64> = BTreeMap::new();
        for s in samples {
            if s.status != CallStatus::Ok {
                let key = SeriesKey {
                    site: s.site.clone(),
                    host: s.host.clone(),
                    provider: s.provider.clone(),
                    model: s.model.clone(),
                    metric: Metric::LatencyMs,
                };
                *errors.entry(key.text()).or_default() += 1;
                continue;
            }
            // one lookup per sample, then the four metrics
            let slot = grouped
                .entry((&s.site, &s.host, &s.provider, &s.model))
                .or_default();
            for (k, m) in Metric::ALL.into_iter().enumerate() {
                if let Some(v) = m.value(s.latency_ms, s.ttft_ms, s.tokens_out) {
                    slot[k].push(Pt {
                        id: s.id,
                        ts: s.ts_us,
                        value: v,
                    });
                }
            }
        }
        let mut per: Vec<(SeriesKey, Vec<Pt>)> = grouped
            .into_iter()
            .flat_map(|((site, host, provider, model), by_metric)| {
                Metric::ALL
                    .into_iter()
                    .zip(by_metric)
                    .filter(|(_, pts)| !pts.is_empty())
                    .map(move |(metric, pts)| {
                        (
                            SeriesKey {
                                site: site.to_owned(),
                                host: host.to_owned(),
                                provider: provider.to_owned(),
                                model: model.to_owned(),
                                metric,
                            },
                            pts,
                        )
                    })
            })
            .collect();
        per.sort_by(|a, b| a.0.cmp(&b.0)); // a stable processing order
        tracing::Span::current().record("series", per.len());
        let mut ops = Vec::new();
        let mut contexts = Vec::new();
        let mut counters = Vec::new();
        for (key, mut pts) in per {
            pts.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
            let first = pts[0].ts;
            let mut late = 0;
            let mut feed = Vec::new();
            if !self.series.contains_key(&key) {
                feed = self.warm(&key, first, &mut ops).await?;
            }
            feed.extend(pts);
            let ok = feed.len() as i64;
            let (late_here, newest) = self
                .feed_series(&key, &feed, &mut ops, &mut contexts)
                .await?;
            late += late_here;
            counters.push((key.text(), late, 0, ok - late, newest));
        }
        for (k, n) in errors {
            counters.push((k, 0, n, 0, 0));
        }
        crate::api::events::publish_points(
            counters.iter().filter(|c| c.3 > 0).map(|c| c.0.as_str()),
        );
        // nearest telemetry for the context points: one range read per host and batch
        let mut hosts: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for c in &contexts {
            let (lo, hi) = c.points.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
                (lo.min(p.ts), hi.max(p.ts))
            });
            let e = hosts
                .entry((c.site.clone(), c.host.clone()))
                .or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
        let mut snaps: HashMap<(String, String), Vec<(i64, serde_json::Value)>> = HashMap::new();
        for ((site, host), (lo, hi)) in hosts {
            let margin = 300_000_000; // 5 minutes either side
            let t = self
                .store
                .telemetry_range(&site, &host, lo - margin, hi + margin, 100_000)
                .await?;
            snaps.insert((site, host), t);
        }
        for c in contexts {
            let t = snaps.get(&(c.site.clone(), c.host.clone()));
            let ctx: Vec<serde_json::Value> = c
                .points
                .iter()
                .map(|p| json!({"id": p.id.to_string(), "ts": p.ts, "value": p.value, "telemetry": t.and_then(|t| nearest(t, p.ts))}))
                .collect();
            if let Some(ViolationOp::Open(v)) = ops.get_mut(c.op) {
                v.context = json!({"before": ctx, "note": "the 10 points before the trigger and the trigger, each with the host's nearest telemetry (within 5 minutes)"}).to_string();
            }
        }
        // after the contexts: they point at op positions
        coalesce_extends(&mut ops);
        if !ops.is_empty() {
            let report = self.store.apply_violations(&ops, now_us()).await?;
            for id in &report.opened {
                tracing::info!(violation = %id, "violation opened");
                if let Some(v) = ops.iter().find_map(|op| match op {
                    ViolationOp::Open(v) if &v.id == id => Some(v),
                    _ => None,
                }) {
                    crate::metrics::violation_opened(&v.site, &v.model, &v.metric, v.rule);
                }
            }
            tracing::Span::current().record("opened", report.opened.len());
        }
        self.store.bump_counters(&counters).await?;
        crate::metrics::set_series_tracked(self.series.len());
        Ok(())
    }

    /// First sight of a series in this process: rebuild its state from the database. Returns
    /// the points committed earlier but not yet evaluated, to evaluate before the new ones.
    async fn warm(
        &mut self,
        key: &SeriesKey,
        first_new: i64,
        ops: &mut Vec<ViolationOp>,
    ) -> Result<Vec<Pt>, StoreError> {
        let eff = self.effective(&key.site, &key.model);
        let st = SeriesState {
            tracker: EpisodeTracker::new(eff.resolve_after),
            eff: eff.clone(),
            settings_gen: self.settings_gen,
            nelson: NelsonState::new(),
            index: 0,
            last_ts: i64::MIN,
            baseline_id: 0,
            baseline_values: (f64::NAN, f64::NAN),
            frozen: None,
            frozen_gen: i64::MIN,
            recent: VecDeque::new(),
            open: Vec::new(),
            gauges: None,
            gauges_asked: false,
        };
        let scope = eff.scope;
        self.series.insert(key.clone(), st);
        let Some(frozen) = self.frozen_for(key, scope).await? else {
            return Ok(Vec::new());
        };
        let Some(mut st) = self.series.remove(key) else {
            return Ok(Vec::new());
        };
        st.baseline_id = frozen.id;
        st.baseline_values = (frozen.b.center, frozen.b.sigma);
        let (_, _, _, last_eval) = self.store.counters(&key.text()).await?;
        let sel = PointSelector {
            site: key.site.clone(),
            host: key.host.clone(),
            provider: key.provider.clone(),
            model: key.model.clone(),
        };
        let rows = self
            .store
            .sample_points(
                &sel,
                frozen.window_to.saturating_add(1),
                first_new - 1,
                true,
                self.cfg.warmup_points as i64 * 2,
            )
            .await?;
        let mut pts: Vec<Pt> = rows
            .iter()
            .filter_map(|r| {
                let v = key.metric.value(r.latency_ms, r.ttft_ms, r.tokens_out)?;
                Some(Pt {
                    id: Uuid::parse_str(&r.id).ok()?,
                    ts: r.ts_us,
                    value: v,
                })
            })
            .take(self.cfg.warmup_points)
            .collect();
        pts.reverse();
        let series_key = key.text();
        let cfg = eff.rules;
        // phase A: silent replay of what was evaluated before
        for p in pts.iter().filter(|p| p.ts <= last_eval) {
            let Ok(z) = frozen.b.z(0, p.value) else {
                continue;
            };
            let flags = st.nelson.push(z, &eff.compiled.0);
            push_recent(&mut st.recent, *p);
            let mut events = Vec::new();
            st.tracker.push(st.index, flags, |e| events.push(e));
            st.index += 1;
            st.last_ts = p.ts;
            for e in events {
                match e {
                    EpisodeEvent::Opened { rule, .. } => {
                        let window = window_points(&st.recent, cfg.window_len(rule));
                        st.open.push(OpenEp {
                            rule: rule.number(),
                            id: violation_id(&series_key, rule.number(), p.ts),
                            written: window.len(),
                            points: window,
                        });
                    }
                    EpisodeEvent::Extended { rule, .. } => {
                        let window = window_points(&st.recent, cfg.window_len(rule));
                        if let Some(ep) = st.open.iter_mut().find(|e| e.rule == rule.number()) {
                            merge_points(&mut ep.points, &window);
                        }
                    }
                    EpisodeEvent::Resolved { rule, .. } => {
                        st.open.retain(|e| e.rule != rule.number())
                    }
                }
            }
        }
        // reconcile with what the database says is open
        let db_open = self.store.open_violations(&series_key).await?;
        for v in db_open {
            match st.open.iter_mut().find(|e| i64::from(e.rule) == v.rule) {
                Some(ep) => ep.id = v.id.clone(),
                None => ops.push(ViolationOp::Resolve {
                    points: None,
                    id: v.id.clone(),
                    at: st.last_ts.max(v.last_point_at),
                }),
            }
        }
        self.series.insert(key.clone(), st);
        // phase B: committed but never evaluated (a process died in between)
        Ok(pts.into_iter().filter(|p| p.ts > last_eval).collect())
    }

    /// Evaluates one point; false when it is late.
    /// Evaluates the points of one series (sorted by time); returns (late points, newest
    /// evaluated timestamp). One map lookup per run of judged points, no per-point copies of
    /// the key.
    async fn feed_series(
        &mut self,
        key: &SeriesKey,
        pts: &[Pt],
        ops: &mut Vec<ViolationOp>,
        contexts: &mut Vec<PendingContext>,
    ) -> Result<(i64, i64), StoreError> {
        let generation = self.settings_gen;
        if self
            .series
            .get(key)
            .is_some_and(|s| s.settings_gen != generation)
        {
            let eff = self.effective(&key.site, &key.model);
            if let Some(st) = self.series.get_mut(key) {
                st.eff = eff;
                st.settings_gen = generation;
            }
        }
        let Some(scope) = self.series.get(key).map(|s| s.eff.scope) else {
            return Ok((0, 0));
        };
        let mut frozen = self.frozen_for(key, scope).await?;
        let bkey = key.baseline_key(scope);
        let (mut late, mut newest) = (0i64, 0i64);
        let mut i = 0;
        while i < pts.len() {
            match frozen.clone() {
                None => {
                    let p = pts[i];
                    i += 1;
                    let Some(st) = self.series.get_mut(key) else {
                        break;
                    };
                    if p.ts < st.last_ts {
                        late += 1;
                        continue;
                    }
                    st.last_ts = p.ts;
                    newest = newest.max(p.ts);
                    if self.learn(&bkey, p).await? {
                        if let Some(st) = self.series.get_mut(key) {
                            st.frozen_gen = i64::MIN; // reload this series' baseline
                        }
                        frozen = self.frozen_for(key, scope).await?;
                    }
                }
                Some(f) => {
                    let Some(st) = self.series.get_mut(key) else {
                        break;
                    };
                    let mut last = None;
                    while i < pts.len() {
                        let p = pts[i];
                        i += 1;
                        if p.ts < st.last_ts {
                            late += 1;
                            continue;
                        }
                        newest = newest.max(p.ts);
                        judge(st, key, &f, scope, p, ops, contexts);
                        last = Some(p.value);
                    }
                    // once per batch, an open episode's new points ride on its last extend, so
                    // charts show every flagged point while an incident goes on
                    for ep in st.open.iter_mut().filter(|e| e.points.len() != e.written) {
                        let last_extend = ops.iter_mut().rev().find_map(|o| match o {
                            ViolationOp::Extend { id, points, .. } if *id == ep.id => Some(points),
                            _ => None,
                        });
                        if let Some(points) = last_extend {
                            *points = Some(pts_json(&ep.points));
                            ep.written = ep.points.len();
                        }
                    }
                    if let Some(v) = last {
                        set_gauges(st, key, &f, v);
                    }
                }
            }
        }
        Ok((late, newest))
    }
}

/// Updates the series' `/metrics` gauges (asking for them on first use).
fn set_gauges(st: &mut SeriesState, key: &SeriesKey, frozen: &Frozen, value: f64) {
    if !st.gauges_asked {
        st.gauges_asked = true;
        st.gauges = crate::metrics::series_gauges(
            &key.site,
            &key.host,
            &key.provider,
            &key.model,
            key.metric.as_str(),
        );
    }
    if let Some(g) = &st.gauges {
        g.set(
            value,
            frozen.b.center_original(),
            frozen.b.ucl(),
            frozen.b.lcl(),
        );
    }
}

/// Evaluates one point of a series that has a baseline.
fn judge(
    st: &mut SeriesState,
    key: &SeriesKey,
    frozen: &Frozen,
    scope: Scope,
    p: Pt,
    ops: &mut Vec<ViolationOp>,
    contexts: &mut Vec<PendingContext>,
) {
    st.last_ts = p.ts;
    if st.baseline_id != frozen.id {
        // a different baseline: z-scores change meaning, so the rule state starts over
        // (a replica re-reading an identical baseline keeps its state)
        if st.baseline_values != (frozen.b.center, frozen.b.sigma) {
            st.nelson = NelsonState::new();
        }
        st.baseline_id = frozen.id;
        st.baseline_values = (frozen.b.center, frozen.b.sigma);
    }
    if p.ts <= frozen.window_to {
        // a Phase I point of its own baseline is never judged by it
        return;
    }
    let Ok(z) = frozen.b.z(0, p.value) else {
        return;
    };
    let flags = st.nelson.push(z, &st.eff.compiled.0);
    push_recent(&mut st.recent, p);
    let mut events = Vec::new();
    st.tracker.push(st.index, flags, |e| events.push(e));
    st.index += 1;
    if events.is_empty() {
        return;
    }
    let series_key = key.text();
    let cfg = st.eff.rules;
    for e in events {
        match e {
            EpisodeEvent::Opened { rule, .. } => {
                let n = rule.number();
                let window = window_points(&st.recent, cfg.window_len(rule));
                let id = violation_id(&series_key, n, p.ts);
                ops.push(ViolationOp::Open(NewViolation {
                    id: id.clone(),
                    series_key: series_key.clone(),
                    scope: st.eff.scope.as_str().into(),
                    site: key.site.clone(),
                    host: key.host.clone(),
                    provider: key.provider.clone(),
                    model: key.model.clone(),
                    metric: key.metric.as_str().into(),
                    rule: i64::from(n),
                    opened_at: p.ts,
                    last_point_at: p.ts,
                    points: pts_json(&window),
                    baseline: frozen.json(key, scope),
                    context: "{}".into(),
                }));
                contexts.push(PendingContext {
                    op: ops.len() - 1,
                    site: key.site.clone(),
                    host: key.host.clone(),
                    points: st.recent.iter().rev().take(11).rev().copied().collect(),
                });
                st.open.retain(|e| e.rule != n);
                st.open.push(OpenEp {
                    rule: n,
                    id,
                    written: window.len(),
                    points: window,
                });
            }
            EpisodeEvent::Extended { rule, .. } => {
                let window = window_points(&st.recent, cfg.window_len(rule));
                if let Some(ep) = st.open.iter_mut().find(|e| e.rule == rule.number()) {
                    merge_points(&mut ep.points, &window);
                    let rewrite = ep.points.len() >= ep.written + POINTS_REWRITE_EVERY;
                    if rewrite {
                        ep.written = ep.points.len();
                    }
                    ops.push(ViolationOp::Extend {
                        id: ep.id.clone(),
                        last_point_at: p.ts,
                        points: rewrite.then(|| pts_json(&ep.points)),
                    });
                }
            }
            EpisodeEvent::Resolved { rule, .. } => {
                if let Some(pos) = st.open.iter().position(|e| e.rule == rule.number()) {
                    let ep = st.open.swap_remove(pos);
                    ops.push(ViolationOp::Resolve {
                        points: (ep.points.len() != ep.written).then(|| pts_json(&ep.points)),
                        id: ep.id,
                        at: p.ts,
                    });
                }
            }
        }
    }
}

/// The snapshot nearest to `ts` in a time-sorted list.
fn nearest(snaps: &[(i64, serde_json::Value)], ts: i64) -> Option<serde_json::Value> {
    let i = snaps.partition_point(|s| s.0 < ts);
    let best = [i.checked_sub(1), (i < snaps.len()).then_some(i)]
        .into_iter()
        .flatten()
        .min_by_key(|&j| (snaps[j].0 - ts).abs())?;
    Some(snaps[best].1.clone())
}

fn push_recent(recent: &mut VecDeque<Pt>, p: Pt) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(p);
}

fn window_points(recent: &VecDeque<Pt>, len: u32) -> Vec<Pt> {
    let n = (len as usize).min(recent.len());
    recent.iter().skip(recent.len() - n).copied().collect()
}

fn merge_points(into: &mut Vec<Pt>, window: &[Pt]) {
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
fn coalesce_extends(ops: &mut Vec<ViolationOp>) {
    let mut last: HashMap<String, usize> = HashMap::new();
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
