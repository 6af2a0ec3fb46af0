//! The engine task: receives the samples of each commit, groups them by series, warms series
//! it has not seen, feeds their points through [`crate::state`] (or Phase I learning),
//! attaches contexts, applies the violation operations in one transaction, bumps counters and
//! announces what happened as [`LiveEvent`]s. A failed batch is retried with backoff after
//! the in-memory series are dropped (they are rebuilt from the database).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use llmscope_model::{
    CallStatus, Evaluated, FrozenBaseline, Judged, LiveEvent, Metric, Sample, SeriesId, SharedClock,
};
use llmscope_spc::{SigmaMethod, Transform};
use llmscope_store::counters::Counters;
use llmscope_store::violations::ViolationOp;
use llmscope_store::{Store, StoreError};
use tokio::sync::{broadcast, mpsc};

use crate::config::SpcConfig;
use crate::learn::Learner;
use crate::settings::{Effective, Scope, Settings};
use crate::state::{
    PendingContext, Pt, SeriesState, coalesce_extends, flush_episode_points, judge,
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
        }
    }
}

/// Sends committed samples to the engine (the writer's commit hook). Sending waits when the
/// engine lags, which slows ingest rather than skipping evaluation.
pub type EngineHandle = mpsc::Sender<Vec<Sample>>;

/// The live SPC engine.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) cfg: EngineConfig,
    pub(crate) clock: SharedClock,
    events: broadcast::Sender<LiveEvent>,
    pub(crate) series: HashMap<SeriesId, SeriesState>,
    pub(crate) learners: HashMap<SeriesId, Learner>,
    /// Pooled (site and global) baselines; series-scope ones live in their series' state.
    pub(crate) baselines: HashMap<SeriesId, Option<Arc<FrozenBaseline>>>,
    settings: Settings,
    effective: HashMap<(String, String), Arc<Effective>>,
    pub(crate) settings_gen: u64,
    /// Highest baseline id known to this process (its own inserts included).
    pub(crate) known_baseline_id: i64,
    /// Bumped when another process (or the CLI) changed baselines: caches start over.
    baseline_gen: i64,
    /// When settings and baselines were last read, Unix µs.
    refreshed: Option<i64>,
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
        Engine {
            store,
            cfg,
            clock,
            events,
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
    pub fn spawn(self) -> (EngineHandle, tokio::task::JoinHandle<()>) {
        // room for start-up bursts (warm-ups, Phase I inserts) without stalling the writers;
        // what it holds when a process dies is evaluated by the next warm-up (phase B)
        let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
        let mut engine = self;
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
        Ok(())
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

    /// Evaluates one committed batch (see the crate docs).
    #[tracing::instrument(name = "rule_evaluation", skip_all, fields(samples = samples.len(), series = tracing::field::Empty, opened = tracing::field::Empty))]
    pub async fn process(&mut self, samples: &[Sample]) -> Result<(), StoreError> {
        self.refresh().await?;
        // group by borrowed identity first: owned keys are built once per series per batch
        type Ident<'a> = (&'a str, &'a str, &'a str, &'a str);
        let mut grouped: HashMap<Ident<'_>, [Vec<Pt>; 4]> = HashMap::new();
        let mut errors: BTreeMap<SeriesId, i64> = BTreeMap::new();
        for s in samples {
            if s.status != CallStatus::Ok {
                *errors.entry(s.series(Metric::LatencyMs)).or_default() += 1;
                continue;
            }
            // one lookup per sample, then the four metrics
            let slot = grouped
                .entry((&s.site, &s.host, &s.provider, &s.model))
                .or_default();
            for (k, m) in Metric::ALL.iter().enumerate() {
                if let Some(v) = m.value(s.latency_ms, s.ttft_ms, s.tokens_out) {
                    slot[k].push(Pt {
                        id: s.id,
                        ts: s.ts_us,
                        value: v,
                    });
                }
            }
        }
        let mut per: Vec<(SeriesId, Vec<Pt>)> = grouped
            .into_iter()
            .flat_map(|((site, host, provider, model), by_metric)| {
                Metric::ALL
                    .iter()
                    .zip(by_metric)
                    .filter(|(_, pts)| !pts.is_empty())
                    .map(move |(m, pts)| (SeriesId::series(site, host, provider, model, *m), pts))
            })
            .collect();
        per.sort_by(|a, b| a.0.cmp(&b.0)); // a stable processing order
        tracing::Span::current().record("series", per.len());
        let mut ops = Vec::new();
        let mut contexts = Vec::new();
        let mut counters: Vec<(SeriesId, Counters)> = Vec::with_capacity(per.len());
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
                    errors: 0,
                    ok: ok - fed.late,
                    last_evaluated: fed.newest,
                },
            ));
        }
        for (k, n) in errors {
            counters.push((
                k,
                Counters {
                    errors: n,
                    ..Counters::default()
                },
            ));
        }
        crate::context::attach(&self.store, contexts, &mut ops).await?;
        // after the contexts: they point at op positions
        coalesce_extends(&mut ops);
        let mut announce = Vec::new();
        if !ops.is_empty() {
            let report = self
                .store
                .apply_violations(&ops, self.clock.now_us())
                .await?;
            for id in &report.opened {
                tracing::info!(violation = %id, "violation opened");
                if let Some(v) = ops.iter().find_map(|op| match op {
                    ViolationOp::Open(v) if &v.id == id => Some(v),
                    _ => None,
                }) {
                    announce.push(LiveEvent::ViolationOpened(Arc::new(v.clone())));
                }
            }
            for r in report.resolved {
                announce.push(LiveEvent::ViolationResolved {
                    id: r.id,
                    series: r.series,
                    rule: r.rule,
                });
            }
            tracing::Span::current().record("opened", report.opened.len());
        }
        self.store.bump_counters(&counters).await?;
        // nobody listening is fine: events are for dashboards, metrics and the dispatcher
        if self.events.receiver_count() > 0 {
            // the keys move from the counters (the error-only entries come last, unjudged)
            let series: Vec<Evaluated> = counters
                .into_iter()
                .zip(judged.into_iter().chain(std::iter::repeat(None)))
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
                    if p.ts < st.last_ts {
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
                    let Some(st) = self.series.get_mut(key) else {
                        break;
                    };
                    let mut last = None;
                    while i < pts.len() {
                        let p = pts[i];
                        i += 1;
                        if p.ts < st.last_ts {
                            fed.late += 1;
                            continue;
                        }
                        fed.newest = fed.newest.max(p.ts);
                        judge(st, key, &f, p, ops, contexts);
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
