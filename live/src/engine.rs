//! The engine task: receives the samples of each commit, groups them by series (site, host,
//! provider, model, source and metric; only the metrics judged for the source), warms series
//! it has not seen, feeds their points through [`crate::state`] (or Phase I learning) and
//! every call's outcome through [`crate::calls`], attaches contexts, assigns incidents
//! ([`crate::incidents`]), applies the violation operations in one transaction, bumps
//! counters and announces what happened as [`LiveEvent`]s. Between batches it checks for
//! silence ([`crate::silence`]). A failed batch is retried with backoff after the in-memory
//! series are dropped (they are rebuilt from the database).

use std::collections::HashMap;

/// The maps keyed by series use a fast, seeded hash (foldhash): a series key is four strings.
pub(crate) type FastHash = foldhash::fast::RandomState;
use std::sync::Arc;
use std::time::Duration;

use llmscope_model::{
    CallStatus, Evaluated, FrozenBaseline, Judged, LiveEvent, Metric, Sample, SeriesId,
    SeverityMap, SharedClock, Source,
};
use llmscope_spc::detect::{Designer, ErrorRateDesign, design_error_rate};
use llmscope_spc::{SigmaMethod, Transform};
use llmscope_store::counters::Counters;
use llmscope_store::violations::ViolationOp;
use llmscope_store::{Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::calls::{Call, CallState};
use crate::config::SpcConfig;
use crate::incidents::Incidents;
use crate::learn::Learner;
use crate::settings::{Effective, Scope, Settings};
use crate::state::{
    JudgeCtx, PendingContext, Pt, SeriesState, coalesce_extends, flush_episode_points, judge,
};

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
    /// How often rule configuration and baseline changes are picked up (0: every batch).
    pub refresh_interval: Duration,
    /// Designed in-control run length of the paging CUSUM per model and host, in points.
    pub arl0: f64,
    /// The CUSUM's reference value.
    pub cusum_k: f64,
    /// Consecutive failed calls that page `down`.
    pub down_after: u32,
    /// In-control failure rate, the rate to detect and the chart's in-control run length.
    pub error_rate: (f64, f64, f64),
    /// `silent` after this many median intervals …
    pub silent_factor: u32,
    /// … and at least this long.
    pub silent_min: Duration,
    /// The sources whose silence pages.
    pub silent_sources: Vec<Source>,
    /// `agent_silent` after this long without telemetry.
    pub agent_silent_after: Duration,
    /// How often silence is checked.
    pub silence_interval: Duration,
    /// Severity per Nelson rule and detector (`[alerts] severity`).
    pub severity: SeverityMap,
    /// Whether a warm-up evaluates points the database holds beyond the newest evaluated one
    /// (phase B: a process died between a commit and its evaluation). Off in cluster mode,
    /// where the log hands such points over again.
    pub replay_unevaluated: bool,
}

impl Default for EngineConfig {
    /// The defaults of `[spc]`.
    fn default() -> Self {
        EngineConfig::from(&SpcConfig::default())
    }
}

impl From<&SpcConfig> for EngineConfig {
    fn from(c: &SpcConfig) -> EngineConfig {
        EngineConfig {
            baseline_points: c.baseline_points,
            sigma_method: c.sigma_method,
            transform: c.transform,
            resolve_after: c.resolve_after,
            warmup_points: c.warmup_points,
            refresh_interval: c.refresh_interval,
            arl0: c.arl0,
            cusum_k: c.cusum_k,
            down_after: c.down_after,
            error_rate: (
                c.error_rate_p0,
                c.error_rate_p0 * c.error_rate_factor,
                c.error_rate_arl0,
            ),
            silent_factor: c.silent_factor,
            silent_min: c.silent_min,
            silent_sources: c.silent_sources.clone(),
            agent_silent_after: c.agent_silent_after,
            silence_interval: c.silence_interval,
            severity: SeverityMap::default(),
            replay_unevaluated: true,
        }
    }
}

/// Where the engine task takes its work from; cheap to clone.
///
/// Standalone, the ingest writer hands it every commit ([`EngineHandle::send`]). In cluster
/// mode the partition runners hand it what they read from the log and wait until it is
/// judged ([`EngineHandle::judge`]) before acknowledging the log, and tell it to forget the
/// series of a partition that moved to another replica ([`EngineHandle::forget`]). Sending
/// waits when the engine lags, which slows ingest rather than skipping evaluation.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Input>,
}

/// The engine task has stopped (the process is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the live spc engine has stopped")]
pub struct EngineStopped;

/// Selects model-hosts by (site, host, provider, model).
pub type HostFilter = Arc<dyn Fn(&str, &str, &str, &str) -> bool + Send + Sync>;

/// One unit of work of the engine task.
enum Input {
    /// Evaluate a commit.
    Commit(Committed),
    /// Evaluate, then say so.
    Judge(Committed, oneshot::Sender<()>),
    /// Drop the in-memory state of the model-hosts the filter selects, then say so.
    Forget(HostFilter, oneshot::Sender<()>),
}

impl EngineHandle {
    /// Hands a commit to the engine (waits while its queue is full).
    pub async fn send(&self, c: Committed) -> Result<(), EngineStopped> {
        self.tx
            .send(Input::Commit(c))
            .await
            .map_err(|_| EngineStopped)
    }

    /// Hands samples to the engine and waits until they are judged and the outcome is
    /// written (several callers' batches are judged together).
    pub async fn judge(&self, c: Committed) -> Result<(), EngineStopped> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Input::Judge(c, done))
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Makes the engine forget the series, call state and Phase I points of the model-hosts
    /// `which` selects (they are warmed from the database again when next seen); returns
    /// once done, so what was handed over before is judged first.
    pub async fn forget(&self, which: HostFilter) -> Result<(), EngineStopped> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Input::Forget(which, done))
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }
}

/// Most samples judged together when [`EngineHandle::judge`] calls are coalesced.
const JUDGE_MAX_SAMPLES: usize = 20_000;

/// What one commit of the ingest writer hands to the engine.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The samples committed.
    pub samples: Vec<Sample>,
    /// The agents whose telemetry was committed: (site, host, newest snapshot, Unix µs).
    pub agents: Vec<(String, String, i64)>,
}

impl Committed {
    /// The agents of a batch of telemetry snapshots, each with its newest snapshot.
    pub fn agents_of(telemetry: &[llmscope_model::Telemetry]) -> Vec<(String, String, i64)> {
        let mut m: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
        for t in telemetry {
            let e = m.entry((&t.site, &t.host)).or_insert(t.ts_us);
            *e = (*e).max(t.ts_us);
        }
        m.into_iter()
            .map(|((s, h), ts)| (s.to_owned(), h.to_owned(), ts))
            .collect()
    }
}

/// The live SPC engine.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) cfg: EngineConfig,
    pub(crate) clock: SharedClock,
    events: broadcast::Sender<LiveEvent>,
    pub(crate) series: HashMap<SeriesId, SeriesState, FastHash>,
    pub(crate) learners: HashMap<SeriesId, Learner, FastHash>,
    /// Pooled (site and global) baselines; series-scope ones live in their series' state.
    pub(crate) baselines: HashMap<SeriesId, Option<Arc<FrozenBaseline>>, FastHash>,
    settings: Settings,
    effective: HashMap<(String, String), Arc<Effective>>,
    pub(crate) settings_gen: u64,
    /// Highest baseline id known to this process (its own inserts included).
    pub(crate) known_baseline_id: i64,
    /// Bumped when another process (or the CLI) changed baselines: caches start over.
    baseline_gen: i64,
    /// When settings and baselines were last read, Unix µs.
    refreshed: Option<i64>,
    /// Designs of the paging CUSUM (shared by all series).
    pub(crate) designer: Designer,
    /// The error-rate chart's design.
    pub(crate) error_design: ErrorRateDesign,
    /// Call-level state per model, host and source (keyed by its latency series).
    pub(crate) calls: HashMap<SeriesId, CallState, FastHash>,
    /// Open incidents per model and host, with their open pages.
    pub(crate) incidents: Incidents,
    /// The model-hosts whose silence this engine judges (`None`: all).
    ownership: Option<HostFilter>,
    /// When budgets were last judged (every 30 silence checks), Unix µs.
    pub(crate) budgets_checked: Option<i64>,
}

impl Engine {
    /// A new engine over `store`, announcing on `events`.
    pub fn new(
        store: Store,
        cfg: EngineConfig,
        clock: SharedClock,
        events: broadcast::Sender<LiveEvent>,
    ) -> Engine {
        let settings = Settings::from_rows(&[], cfg.resolve_after);
        let (p0, p1, arl0) = cfg.error_rate;
        // validated with the config; the fallback keeps a hand-built config usable
        let error_design = design_error_rate(p0, p1, arl0)
            .or_else(|_| design_error_rate(0.01, 0.1, 100_000.0))
            .unwrap_or(ErrorRateDesign {
                p0: 0.01,
                p1: 0.1,
                h: 5.0,
                arl0: 0.0,
                arl1: 0.0,
            });
        Engine {
            designer: Designer::with_k(cfg.cusum_k),
            error_design,
            calls: HashMap::default(),
            incidents: Incidents::default(),
            store,
            cfg,
            clock,
            events,
            series: HashMap::default(),
            learners: HashMap::default(),
            baselines: HashMap::default(),
            settings,
            effective: HashMap::new(),
            settings_gen: 0,
            known_baseline_id: -1,
            baseline_gen: 0,
            refreshed: None,
            ownership: None,
            budgets_checked: None,
        }
    }

    /// Starts the engine task; returns the handle work is given through.
    pub fn spawn(self) -> (EngineHandle, tokio::task::JoinHandle<()>) {
        // room for start-up bursts (warm-ups, Phase I inserts) without stalling the writers;
        // what it holds when a process dies is evaluated by the next warm-up (phase B) or,
        // in cluster mode, read again from the log
        let (tx, mut rx) = mpsc::channel::<Input>(256);
        let mut engine = self;
        let task = tokio::spawn(async move {
            // the paging CUSUM's design for a full Phase I of independent points (the usual
            // case), computed off the runtime's threads before the first batch (~50 ms);
            // other Phase I sizes are designed when first needed, then cached
            let designer = engine.designer.clone();
            let (arl0, n) = (engine.cfg.arl0 * 2.0, engine.cfg.baseline_points);
            let _ = tokio::task::spawn_blocking(move || {
                designer.design(
                    arl0,
                    &llmscope_spc::detect::Phase1 {
                        mean: 0.0,
                        sd: 1.0,
                        phi: 0.0,
                        used: n,
                        rejected: 0,
                    },
                )
            })
            .await;
            let mut silence = tokio::time::interval(engine.cfg.silence_interval);
            silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // an input taken while coalescing that could not join the batch
            let mut held: Option<Input> = None;
            loop {
                let input = match held.take() {
                    Some(i) => i,
                    None => tokio::select! {
                        i = rx.recv() => match i {
                            Some(i) => i,
                            None => break,
                        },
                        _ = silence.tick() => {
                            if let Err(e) = engine.check_silence().await {
                                tracing::warn!(error = %e, "live spc: silence check failed; will retry");
                            }
                            if let Err(e) = engine.check_plans().await {
                                tracing::warn!(error = %e, "live spc: slo and budget check failed; will retry");
                            }
                            continue;
                        }
                    },
                };
                let (batch, waiting) = match input {
                    Input::Commit(c) => (c, Vec::new()),
                    Input::Forget(which, done) => {
                        engine.forget(&*which);
                        let _ = done.send(());
                        continue;
                    }
                    Input::Judge(mut c, done) => {
                        // judge what other partitions handed over meanwhile in the same pass:
                        // one evaluation transaction instead of one per partition
                        let mut waiting = vec![done];
                        while c.samples.len() < JUDGE_MAX_SAMPLES {
                            match rx.try_recv() {
                                Ok(Input::Judge(more, d)) => {
                                    c.samples.extend(more.samples);
                                    c.agents.extend(more.agents);
                                    waiting.push(d);
                                }
                                Ok(other) => {
                                    held = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        (c, waiting)
                    }
                };
                engine.process_with_retry(&batch).await;
                for d in waiting {
                    let _ = d.send(());
                }
            }
        });
        (EngineHandle { tx }, task)
    }

    /// Evaluates a batch, retrying with backoff until it succeeds; a failure may leave partial
    /// in-memory state, so the series are dropped and rebuilt from the database.
    async fn process_with_retry(&mut self, batch: &Committed) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.process_committed(batch).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "live spc: evaluation failed; retrying the batch");
                    self.series.clear();
                    self.calls.clear();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Drops the in-memory state of the model-hosts `which` selects (series, call state and
    /// Phase I points of their own baselines).
    pub fn forget(&mut self, which: &(dyn Fn(&str, &str, &str, &str) -> bool + Send + Sync)) {
        let keep = |k: &SeriesId| !which(&k.site, &k.host, &k.provider, &k.model);
        self.series.retain(|k, _| keep(k));
        self.calls.retain(|k, _| keep(k));
        self.learners
            .retain(|k, _| k.scope != llmscope_model::Scope::Series || keep(k));
    }

    /// Limits the silence check to the model-hosts `owned` selects (cluster mode: the
    /// partitions this replica owns; an agent's silence belongs to its `*`/`*` model-host).
    pub fn set_ownership(&mut self, owned: HostFilter) {
        self.ownership = Some(owned);
    }

    /// Whether this engine judges the model-host (always, outside cluster mode).
    pub(crate) fn owns(&self, site: &str, host: &str, provider: &str, model: &str) -> bool {
        self.ownership
            .as_ref()
            .is_none_or(|f| f(site, host, provider, model))
    }

    /// Active series held in memory.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    async fn refresh(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now_us();
        let every = i64::try_from(self.cfg.refresh_interval.as_micros()).unwrap_or(i64::MAX);
        if self
            .refreshed
            .is_some_and(|t| now.saturating_sub(t) < every)
        {
            return Ok(());
        }
        self.refreshed = Some(now);
        let rows = self.store.rule_configs().await?;
        self.settings = Settings::from_rows(&rows, self.cfg.resolve_after);
        self.effective.clear();
        self.settings_gen += 1;
        let max_id = self.store.baseline_generation().await?;
        if max_id > self.known_baseline_id {
            self.known_baseline_id = max_id;
            self.baseline_gen += 1;
            self.baselines.clear();
        }
        self.reload_incidents().await
    }

    pub(crate) fn effective(&mut self, site: &str, model: &str) -> Arc<Effective> {
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
    pub(crate) async fn frozen_for(
        &mut self,
        series: &SeriesId,
        scope: Scope,
    ) -> Result<Option<Arc<FrozenBaseline>>, StoreError> {
        let bkey = series.pooled(scope);
        if scope != Scope::Series {
            if let Some(b) = self.baselines.get(&bkey) {
                return Ok(b.clone());
            }
            let frozen = self.load_baseline(&bkey).await?;
            self.baselines.insert(bkey, frozen.clone());
            return Ok(frozen);
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

    /// Computes the paging CUSUM's design for a series judged against `frozen` off the
    /// runtime's threads when it is not cached yet (a design takes tens of milliseconds), so
    /// judging never blocks on it.
    pub(crate) async fn ensure_design(&self, paging_arl0: Option<f64>, frozen: &FrozenBaseline) {
        let Some(arl0) = paging_arl0 else {
            return;
        };
        let p1 = frozen.baseline.phase1();
        if frozen.bucket_us.is_some() || self.designer.is_cached(arl0, &p1) {
            return;
        }
        let d = self.designer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = d.design_or_nearest(arl0, &p1);
        })
        .await;
    }

    async fn load_baseline(
        &self,
        key: &SeriesId,
    ) -> Result<Option<Arc<FrozenBaseline>>, StoreError> {
        Ok(self
            .store
            .current_baseline(key)
            .await?
            .map(|r| Arc::new(r.frozen)))
    }

    /// Takes one commit: notes its agents' telemetry (the `agent_silent` check reads it) and
    /// evaluates its samples.
    pub async fn process_committed(&mut self, c: &Committed) -> Result<(), StoreError> {
        if !c.agents.is_empty() {
            self.store
                .note_agents(&c.agents, self.clock.now_us())
                .await?;
        }
        if c.samples.is_empty() {
            return Ok(());
        }
        self.process(&c.samples).await
    }

    /// Evaluates one committed batch (see the crate docs).
    #[tracing::instrument(name = "rule_evaluation", skip_all, fields(samples = samples.len(), series = tracing::field::Empty, opened = tracing::field::Empty))]
    pub async fn process(&mut self, samples: &[Sample]) -> Result<(), StoreError> {
        self.refresh().await?;
        // group by borrowed identity first: owned keys are built once per series per batch
        type Ident<'a> = (&'a str, &'a str, &'a str, &'a str, Source);
        // a fast hash: four strings per sample
        type Grouped<'a> = HashMap<Ident<'a>, ([Vec<Pt>; 4], Vec<Call>), FastHash>;
        let mut grouped: Grouped<'_> = HashMap::with_hasher(FastHash::default());
        for s in samples {
            // one lookup per sample, then the metrics judged for its source
            let slot = grouped
                .entry((&s.site, &s.host, &s.provider, &s.model, s.source))
                .or_default();
            let failed = s.status != CallStatus::Ok;
            slot.1.push(Call {
                id: s.id,
                ts: s.ts_us,
                failed,
                latency_ms: s.latency_ms,
            });
            if failed {
                continue;
            }
            for m in s.source.judged() {
                if let Some(v) = m.value(s.latency_ms, s.ttft_ms, s.tokens_out) {
                    slot.0[metric_index(*m)].push(Pt {
                        id: s.id,
                        ts: s.ts_us,
                        value: v,
                    });
                }
            }
        }
        let mut per: Vec<(SeriesId, Vec<Pt>)> = Vec::new();
        let mut calls: Vec<(SeriesId, Vec<Call>)> = Vec::new();
        for ((site, host, provider, model, source), (by_metric, c)) in grouped {
            let base = SeriesId::series(site, host, provider, model, Metric::LatencyMs)
                .with_source(source);
            for (m, pts) in Metric::ALL.iter().zip(by_metric) {
                if !pts.is_empty() {
                    per.push((base.with_metric(*m), pts));
                }
            }
            calls.push((base, c));
        }
        per.sort_by(|a, b| a.0.cmp(&b.0)); // a stable processing order
        calls.sort_by(|a, b| a.0.cmp(&b.0));
        tracing::Span::current().record("series", per.len());
        let mut ops = Vec::new();
        let mut contexts = Vec::new();
        let mut counters: Vec<(SeriesId, Counters)> = Vec::with_capacity(per.len() + calls.len());
        let mut judged: Vec<Option<Judged>> = Vec::with_capacity(per.len());
        for (key, mut pts) in per {
            pts.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
            let first = pts[0].ts;
            let mut feed = Vec::new();
            if !self.series.contains_key(&key) {
                feed = self.warm(&key, first, &mut ops).await?;
            }
            feed.extend(pts);
            let ok = feed.len() as i64;
            let fed = self
                .feed_series(&key, &feed, &mut ops, &mut contexts)
                .await?;
            judged.push(fed.judged);
            counters.push((
                key,
                Counters {
                    late_points: fed.late,
                    ok: ok - fed.late,
                    last_evaluated: fed.newest,
                    ..Counters::default()
                },
            ));
        }
        let evaluated = counters.len();
        let now = self.clock.now_us();
        for (key, mut c) in calls {
            c.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
            let errors = c.iter().filter(|c| c.failed).count() as i64;
            let (last_seen, interval_us) = self.feed_calls(&key, &c, &mut ops).await?;
            counters.push((
                key,
                Counters {
                    errors,
                    last_seen,
                    interval_us,
                    last_received: now,
                    ..Counters::default()
                },
            ));
        }
        crate::context::attach(&self.store, contexts, &mut ops).await?;
        // after the contexts (they point at op positions), before coalescing
        self.finish_incidents(&mut ops).await?;
        let announce = self.apply(ops, &counters).await?;
        // nobody listening is fine: events are for dashboards, metrics and the dispatcher
        if self.events.receiver_count() > 0 {
            // the keys move from the counters (the call-level entries come last, unjudged)
            let series: Vec<Evaluated> = counters
                .into_iter()
                .take(evaluated)
                .zip(judged)
                .filter(|((_, c), _)| c.ok > 0)
                .map(|((series, _), judged)| Evaluated { series, judged })
                .collect();
            let _ = self.events.send(LiveEvent::Evaluated {
                series: Arc::new(series),
                tracked: self.series.len(),
            });
            for e in announce {
                let _ = self.events.send(e);
            }
        }
        Ok(())
    }

    /// Writes violation operations (coalesced) and counters in one transaction
    /// ([`Store::commit_evaluation`]); returns the events to announce and forgets the
    /// incidents that ended.
    async fn apply(
        &mut self,
        mut ops: Vec<ViolationOp>,
        counters: &[(SeriesId, Counters)],
    ) -> Result<Vec<LiveEvent>, StoreError> {
        coalesce_extends(&mut ops);
        let mut announce = Vec::new();
        if ops.is_empty() && counters.is_empty() {
            return Ok(announce);
        }
        let report = self
            .store
            .commit_evaluation(&ops, counters, self.clock.now_us())
            .await?;
        for id in &report.opened {
            if let Some(v) = ops.iter().find_map(|op| match op {
                ViolationOp::Open(v) if &v.id == id => Some(v),
                _ => None,
            }) {
                tracing::info!(violation = %id, detector = v.detector.as_str(), severity = v.severity.as_str(), incident = v.incident.as_deref().unwrap_or(""), "violation opened");
                announce.push(LiveEvent::ViolationOpened(Arc::new(v.clone())));
            }
        }
        for r in report.resolved.iter().filter(|r| r.lead) {
            self.incidents.closed(&r.id);
        }
        for r in report.resolved {
            announce.push(LiveEvent::ViolationResolved {
                id: r.id,
                series: r.series,
                rule: r.rule,
                notifies: r.notifies,
            });
        }
        tracing::Span::current().record("opened", report.opened.len());
        Ok(announce)
    }

    /// Applies operations outside a batch (the silence check) and announces them.
    pub(crate) async fn commit(&mut self, ops: Vec<ViolationOp>) -> Result<(), StoreError> {
        let announce = self.apply(ops, &[]).await?;
        if self.events.receiver_count() > 0 {
            for e in announce {
                let _ = self.events.send(e);
            }
        }
        Ok(())
    }

    /// Evaluates the points of one series (sorted by time). One map lookup per run of judged
    /// points, no per-point copies of the key.
    async fn feed_series(
        &mut self,
        key: &SeriesId,
        pts: &[Pt],
        ops: &mut Vec<ViolationOp>,
        contexts: &mut Vec<PendingContext>,
    ) -> Result<Fed, StoreError> {
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
        let mut fed = Fed::default();
        let Some(scope) = self.series.get(key).map(|s| s.eff.scope) else {
            return Ok(fed);
        };
        let mut frozen = self.frozen_for(key, scope).await?;
        let bkey = key.pooled(scope);
        let mut i = 0;
        while i < pts.len() {
            match frozen.clone() {
                None => {
                    let p = pts[i];
                    i += 1;
                    let Some(st) = self.series.get_mut(key) else {
                        break;
                    };
                    if st.is_late(&p) {
                        fed.late += 1;
                        continue;
                    }
                    st.last_ts = p.ts;
                    fed.newest = fed.newest.max(p.ts);
                    if self.learn(&bkey, p).await? {
                        if let Some(st) = self.series.get_mut(key) {
                            st.frozen_gen = i64::MIN; // reload this series' baseline
                        }
                        frozen = self.frozen_for(key, scope).await?;
                    }
                }
                Some(f) => {
                    let paging = self.series.get(key).and_then(|s| s.paging_arl0);
                    self.ensure_design(paging, &f).await;
                    let Some(st) = self.series.get_mut(key) else {
                        break;
                    };
                    let mut cx = JudgeCtx {
                        designer: &self.designer,
                        severity: &self.cfg.severity,
                        incidents: &mut self.incidents,
                    };
                    let mut last = None;
                    while i < pts.len() {
                        let p = pts[i];
                        i += 1;
                        if st.is_late(&p) {
                            fed.late += 1;
                            continue;
                        }
                        fed.newest = fed.newest.max(p.ts);
                        judge(st, key, &f, p, &mut cx, ops, contexts);
                        last = Some(p.value);
                    }
                    flush_episode_points(st, ops);
                    if let Some(value) = last {
                        fed.judged = Some(Judged {
                            value,
                            center: f.center_original(),
                            ucl: f.ucl(),
                            lcl: f.lcl(),
                            first: !std::mem::replace(&mut st.announced, true),
                        });
                    }
                }
            }
        }
        Ok(fed)
    }
}

/// The position of a metric in [`Metric::ALL`].
fn metric_index(m: Metric) -> usize {
    Metric::ALL.iter().position(|x| *x == m).unwrap_or(0)
}

/// What feeding one series' points did.
#[derive(Default)]
struct Fed {
    /// Points older than the newest evaluated one.
    late: i64,
    /// Newest evaluated point, Unix µs.
    newest: i64,
    /// The newest judged value with its limits, if any point was judged.
    judged: Option<Judged>,
}
