//! The collector's own metrics, exposed in Prometheus text format at `GET /metrics`.
//!
//! One process-wide registry ([`metrics()`]); the ingest path records into it directly, the
//! live SPC engine's [`LiveEvent`]s reach it through [`follow`], the alert dispatcher's
//! outcomes through [`DeliveryMetrics`], and [`router`] serves it. Names (the Grafana dashboards
//! in `deploy/grafana/dashboards` query exactly these):
//!
//! - `llmscope_ingest_items_total{kind,outcome}`: items acknowledged, `kind` = `sample`,
//!   `telemetry` or `gpu` (GPU readings inside telemetry snapshots), `outcome` = `accepted`
//!   or `rejected`; counted when the batch's ack is ready (after the commit).
//! - `llmscope_ingest_rejected_items_total{reason}`: rejected items by the field that failed
//!   validation (`latency_ms`, `ts_unix_nanos`, `site`, `labels`, `gpus.util_pct`, …).
//! - `llmscope_ingest_batch_duration_seconds`: request received → rows committed.
//! - `llmscope_ingest_queue_depth`: batches waiting for a commit.
//! - `llmscope_violations_total{site,model,metric,rule,detector,severity}`: violations opened
//!   by this process (`rule` 0 for a paging detector; `severity` critical/error are pages).
//! - `llmscope_open_violations{site}`: open violations in the database (refreshed
//!   periodically, see [`refresh_from_store`]).
//! - `llmscope_alert_deliveries_total{channel,outcome}`: notifications per delivery outcome
//!   (`delivered`, `retry`, `dead`, `suppressed`, `repeated`, `repeat_failed`).
//! - `llmscope_alert_outbox_depth`: outbox rows and notifications not yet sent.
//! - `llmscope_series_value|center|ucl|lcl{site,host,provider,model,metric}`: the last
//!   evaluated point of each series and its baseline, for the first
//!   [`DEFAULT_SERIES_CAP`] (configurable) series; further series are counted in
//!   `llmscope_series_gauges_dropped_total` and not exported.
//! - `llmscope_series_tracked`: series the engine holds in memory.
//! - `llmscope_cluster_nats_connected`, `llmscope_cluster_partitions_owned`: cluster mode,
//!   whether NATS is reachable and how many partitions this replica judges.
//! - `llmscope_cluster_log_messages_total{stage}`: log messages `stored` (storage consumer),
//!   `judged` (partition owners), `caught_up` (read from the stream on a takeover or a
//!   delivery gap), `stored_on_takeover`, `unreadable`.
//! - `llmscope_cluster_takeovers_total`: partitions this replica took.
//! - `llmscope_cluster_log_pending_messages`: messages in the log not yet both stored and
//!   judged (refreshed every 5 s).
//! - `llmscope_build_info{version}`: always 1.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use llmscope_proto::wire::{ItemKind, Rejection};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use llmscope_alert::DeliveryObserver;
use llmscope_model::{DeliveryOutcome, LiveEvent, SeriesId};
use llmscope_store::{Store, StoreError};
use tokio::sync::broadcast;

/// Series exported as gauges unless `metrics_series_cap` says otherwise.
pub const DEFAULT_SERIES_CAP: usize = 1000;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Fixed2 = [(&'static str, &'static str); 2];
type Dynamic = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every collector metric.
pub struct CollectorMetrics {
    registry: Registry,
    /// Items acknowledged by kind and outcome.
    pub ingest_items: Family<Fixed2, Counter>,
    /// Rejected items by reason.
    pub ingest_rejected: Family<Dynamic, Counter>,
    /// Request received → committed, seconds.
    pub ingest_batch_duration: Histogram,
    /// Batches waiting for a commit.
    pub ingest_queue_depth: Gauge<i64, AtomicI64>,
    /// Violations opened by this process.
    pub violations: Family<Dynamic, Counter>,
    /// Open violations per site (from the database).
    pub open_violations: Family<Dynamic, Gauge<i64, AtomicI64>>,
    /// Notifications per channel and delivery outcome.
    pub alert_deliveries: Family<Dynamic, Counter>,
    /// Outbox rows and notifications not yet sent (from the database).
    pub alert_outbox_depth: Gauge<i64, AtomicI64>,
    series_value: Family<Dynamic, FloatGauge>,
    series_center: Family<Dynamic, FloatGauge>,
    series_ucl: Family<Dynamic, FloatGauge>,
    series_lcl: Family<Dynamic, FloatGauge>,
    /// Series not exported as gauges because of the cap.
    pub series_dropped: Counter,
    /// Series the engine holds.
    pub series_tracked: Gauge<i64, AtomicI64>,
    /// Cluster mode: NATS reachable (1) or not (0).
    pub cluster_connected: Gauge<i64, AtomicI64>,
    /// Cluster mode: partitions this replica owns.
    pub cluster_owned: Gauge<i64, AtomicI64>,
    /// Cluster mode: log messages by stage.
    pub cluster_messages: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Cluster mode: partitions taken.
    pub cluster_takeovers: Counter,
    /// Cluster mode: log messages not yet both stored and judged.
    pub cluster_log_pending: Gauge<i64, AtomicI64>,
    /// OTLP spans received, by outcome (`sample`, or why they were ignored).
    pub otlp_spans: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// OTLP metric data points by outcome.
    pub otlp_points: Family<Vec<(&'static str, &'static str)>, Counter>,
    series_cap: AtomicUsize,
    series_admitted: Mutex<HashSet<Dynamic>>,
    open_sites: Mutex<HashSet<String>>,
}

/// A family listed (`# HELP`, `# TYPE`) even before it has a series, so every name the
/// dashboards use is visible from the first scrape.
#[derive(Debug)]
struct Listed<M>(M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

fn batch_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
    .into_iter()
}

/// Registers each `name, help => metric;` in the registry `$r`.
macro_rules! register {
    ($r:expr, $($name:literal, $help:literal => $metric:expr;)*) => {
        $($r.register($name, $help, $metric);)*
    };
}

impl CollectorMetrics {
    fn new() -> CollectorMetrics {
        let mut r = Registry::default();
        let m = CollectorMetrics {
            registry: Registry::default(),
            ingest_items: Family::default(),
            ingest_rejected: Family::default(),
            ingest_batch_duration: Histogram::new(batch_buckets()),
            ingest_queue_depth: Gauge::default(),
            violations: Family::default(),
            open_violations: Family::default(),
            alert_deliveries: Family::default(),
            alert_outbox_depth: Gauge::default(),
            series_value: Family::default(),
            series_center: Family::default(),
            series_ucl: Family::default(),
            series_lcl: Family::default(),
            series_dropped: Counter::default(),
            series_tracked: Gauge::default(),
            cluster_connected: Gauge::default(),
            cluster_owned: Gauge::default(),
            cluster_messages: Family::default(),
            cluster_takeovers: Counter::default(),
            cluster_log_pending: Gauge::default(),
            otlp_spans: Family::default(),
            otlp_points: Family::default(),
            series_cap: AtomicUsize::new(DEFAULT_SERIES_CAP),
            series_admitted: Mutex::new(HashSet::new()),
            open_sites: Mutex::new(HashSet::new()),
        };
        // name, help => metric: every name the Grafana dashboards query
        register!(r,
            "llmscope_build", "Build information" => Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
            "llmscope_ingest_items", "Ingested items by kind (sample, telemetry, gpu) and outcome (accepted, rejected)" => Listed(m.ingest_items.clone());
            "llmscope_ingest_rejected_items", "Rejected items by the field that failed validation" => Listed(m.ingest_rejected.clone());
            "llmscope_ingest_batch_duration_seconds", "Ingest batch latency: request received to rows committed" => m.ingest_batch_duration.clone();
            "llmscope_ingest_queue_depth", "Batches waiting for a commit" => m.ingest_queue_depth.clone();
            "llmscope_violations", "Violations opened by this process, by site, model, metric and rule" => Listed(m.violations.clone());
            "llmscope_open_violations", "Open violations per site (refreshed from the database)" => Listed(m.open_violations.clone());
            "llmscope_alert_deliveries", "Notifications by channel and delivery outcome" => Listed(m.alert_deliveries.clone());
            "llmscope_alert_outbox_depth", "Outbox rows and notifications not yet sent (refreshed from the database)" => m.alert_outbox_depth.clone();
            "llmscope_series_value", "Last evaluated value of a series" => Listed(m.series_value.clone());
            "llmscope_series_center", "Centre line of the baseline judging a series" => Listed(m.series_center.clone());
            "llmscope_series_ucl", "Upper control limit of the baseline judging a series" => Listed(m.series_ucl.clone());
            "llmscope_series_lcl", "Lower control limit of the baseline judging a series" => Listed(m.series_lcl.clone());
            "llmscope_series_gauges_dropped", "Series not exported as gauges because of metrics_series_cap" => m.series_dropped.clone();
            "llmscope_series_tracked", "Series the live SPC engine holds in memory" => m.series_tracked.clone();
            "llmscope_cluster_nats_connected", "Cluster mode: whether NATS is reachable (1) or not (0)" => m.cluster_connected.clone();
            "llmscope_cluster_partitions_owned", "Cluster mode: partitions this replica judges" => m.cluster_owned.clone();
            "llmscope_cluster_log_messages", "Cluster mode: log messages by stage (stored, judged, caught_up, stored_on_takeover, unreadable)" => Listed(m.cluster_messages.clone());
            "llmscope_cluster_takeovers", "Cluster mode: partitions this replica took over" => m.cluster_takeovers.clone();
            "llmscope_cluster_log_pending_messages", "Cluster mode: log messages not yet both stored and judged" => m.cluster_log_pending.clone();
            "llmscope_otlp_spans", "OTLP spans received by outcome: sample (a model call), or ignored with its reason (not_genai, operation, no_model, bad_times)" => Listed(m.otlp_spans.clone());
            "llmscope_otlp_metric_points", "OTLP metric data points received by outcome: interval (stored), rejected, or ignored with its reason (not_genai, not_histogram, unit, no_model, bad_times, no_sum, empty, reference, stale)" => Listed(m.otlp_points.clone());
        );
        CollectorMetrics { registry: r, ..m }
    }

    /// The exposition text (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

static METRICS: LazyLock<CollectorMetrics> = LazyLock::new(CollectorMetrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static CollectorMetrics {
    &METRICS
}

/// The exposition text of the process-wide metrics.
pub fn render() -> String {
    METRICS.render()
}

/// `GET /metrics`.
pub fn router() -> Router {
    Router::new().route("/metrics", get(metrics_text))
}

async fn metrics_text() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// Sets how many series get gauges (`metrics_series_cap`); 0 exports none. Series already
/// exported stay.
pub fn set_series_cap(cap: usize) {
    METRICS.series_cap.store(cap, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- ingest ----

/// What one validated request contributes to the ingest counters, recorded once its ack is
/// ready (so a batch retried after a failed commit is not counted twice).
#[derive(Debug, Default, Clone)]
pub struct IngestTally {
    /// Samples accepted.
    pub samples: u64,
    /// Telemetry snapshots accepted.
    pub telemetry: u64,
    /// GPU readings in accepted snapshots.
    pub gpus: u64,
    /// GPU readings in rejected snapshots.
    pub rejected_gpus: u64,
    /// (kind, reason) of each rejected item.
    pub rejected: Vec<(&'static str, String)>,
}

/// The reason label of a rejection: its field with indexes and label keys taken out, so
/// the label set stays small (`labels.team` → `labels`, `gpus[3].temp_c` → `gpus.temp_c`).
pub fn reason_code(field: &str) -> String {
    if field.starts_with("labels") {
        return "labels".into();
    }
    let mut out = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if in_index => {}
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => out.push(c),
            _ => {}
        }
    }
    if out.is_empty() {
        "other".into()
    } else {
        out.chars().take(64).collect()
    }
}

impl IngestTally {
    /// Adds the rejections of a request.
    pub fn reject_all(&mut self, rejected: &[Rejection]) {
        self.rejected.extend(rejected.iter().map(|r| {
            let kind = if r.kind == ItemKind::Telemetry as i32 {
                "telemetry"
            } else {
                "sample"
            };
            (kind, reason_code(&r.field))
        }));
    }

    /// Records the tally and the batch's latency.
    pub fn record(&self, elapsed: Duration) {
        let m = &*METRICS;
        m.ingest_batch_duration.observe(elapsed.as_secs_f64());
        let mut rejected = [0u64; 2];
        for (kind, reason) in &self.rejected {
            rejected[usize::from(*kind == "telemetry")] += 1;
            m.ingest_rejected
                .get_or_create(&vec![("reason", reason.clone())])
                .inc();
        }
        for (kind, outcome, n) in [
            ("sample", "accepted", self.samples),
            ("telemetry", "accepted", self.telemetry),
            ("gpu", "accepted", self.gpus),
            ("sample", "rejected", rejected[0]),
            ("telemetry", "rejected", rejected[1]),
            ("gpu", "rejected", self.rejected_gpus),
        ] {
            // create every series, zero included, so rates exist from the first scrape
            m.ingest_items
                .get_or_create(&[("kind", kind), ("outcome", outcome)])
                .inc_by(n);
        }
    }
}

/// Counts one OTLP export's spans: `samples` mapped to samples, and the ignored ones by
/// reason.
pub fn otlp_spans(samples: u64, ignored: impl Iterator<Item = (&'static str, u64)>) {
    let m = metrics();
    m.otlp_spans
        .get_or_create(&vec![("outcome", "sample")])
        .inc_by(samples);
    for (why, n) in ignored {
        m.otlp_spans
            .get_or_create(&vec![("outcome", why)])
            .inc_by(n);
    }
}

/// Counts one OTLP metrics export's data points: stored as intervals, rejected, and ignored
/// by reason.
pub fn otlp_points(
    intervals: u64,
    rejected: u64,
    ignored: impl Iterator<Item = (&'static str, u64)>,
) {
    let m = metrics();
    let f = &m.otlp_points;
    f.get_or_create(&vec![("outcome", "interval")])
        .inc_by(intervals);
    f.get_or_create(&vec![("outcome", "rejected")])
        .inc_by(rejected);
    for (why, n) in ignored {
        f.get_or_create(&vec![("outcome", why)]).inc_by(n);
    }
}

/// Sets the ingest queue depth.
pub fn set_queue_depth(batches: usize) {
    METRICS
        .ingest_queue_depth
        .set(i64::try_from(batches).unwrap_or(i64::MAX));
}

// ---- live SPC ----

/// Handles on one series' gauges (cheap to update: atomic stores).
#[derive(Debug, Clone)]
pub struct SeriesGauges {
    value: FloatGauge,
    center: FloatGauge,
    ucl: FloatGauge,
    lcl: FloatGauge,
}

impl SeriesGauges {
    /// Sets the last value and the limits it was judged against (original units).
    pub fn set(&self, value: f64, center: f64, ucl: f64, lcl: f64) {
        self.value.set(value);
        self.center.set(center);
        self.ucl.set(ucl);
        self.lcl.set(lcl);
    }
}

/// The gauges of a series, or `None` when the cap is reached (the series is then counted
/// in `llmscope_series_gauges_dropped_total`). Ask once per series and keep the handles.
pub fn series_gauges(id: &SeriesId) -> Option<SeriesGauges> {
    let m = &*METRICS;
    let labels: Dynamic = vec![
        ("site", id.site.clone()),
        ("host", id.host.clone()),
        ("provider", id.provider.clone()),
        ("model", id.model.clone()),
        ("metric", id.metric.as_str().to_owned()),
    ];
    let cap = m.series_cap.load(Ordering::Relaxed);
    if !admit(&mut lock(&m.series_admitted), &labels, cap) {
        m.series_dropped.inc();
        return None;
    }
    Some(SeriesGauges {
        value: m.series_value.get_or_create_owned(&labels),
        center: m.series_center.get_or_create_owned(&labels),
        ucl: m.series_ucl.get_or_create_owned(&labels),
        lcl: m.series_lcl.get_or_create_owned(&labels),
    })
}

/// Whether a series may have gauges: it has them already, or fewer than `cap` series do.
fn admit(admitted: &mut HashSet<Dynamic>, labels: &Dynamic, cap: usize) -> bool {
    if admitted.contains(labels) {
        return true;
    }
    if admitted.len() >= cap {
        return false;
    }
    admitted.insert(labels.clone());
    true
}

/// Sets the number of series the engine holds.
pub fn set_series_tracked(n: usize) {
    METRICS
        .series_tracked
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// Counts a violation opened by this process.
pub fn violation_opened(v: &llmscope_model::Violation) {
    let s = &v.series;
    METRICS
        .violations
        .get_or_create(&vec![
            ("site", s.site_label().to_owned()),
            ("model", s.model.clone()),
            ("metric", s.metric.as_str().to_owned()),
            ("rule", v.rule.to_string()),
            ("detector", v.detector.as_str().to_owned()),
            ("severity", v.severity.as_str().to_owned()),
        ])
        .inc();
}

// ---- alerts ----

/// Counts the alert dispatcher's delivery outcomes by channel.
pub struct DeliveryMetrics;

impl DeliveryObserver for DeliveryMetrics {
    fn outcome(&self, channel: &str, outcome: DeliveryOutcome, n: u64) {
        METRICS
            .alert_deliveries
            .get_or_create(&vec![
                ("channel", channel.to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc_by(n);
    }
}

/// How often the gauges read from the database are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// Soonest refresh after a change in this process.
pub const REFRESH_AFTER_CHANGE: Duration = Duration::from_secs(1);

/// When to run [`refresh_from_store`]: every [`REFRESH_EVERY`], and within about
/// [`REFRESH_AFTER_CHANGE`] of a violation opening or resolving in this process.
#[derive(Debug, Default)]
pub struct RefreshSchedule {
    last: Option<std::time::Instant>,
    changed: bool,
}

impl RefreshSchedule {
    /// Whether to refresh now; `changed` says a violation changed since the last call.
    pub fn due(&mut self, changed: bool) -> bool {
        self.changed |= changed;
        let due = match self.last {
            None => true,
            Some(t) => {
                let age = t.elapsed();
                age >= REFRESH_EVERY || (self.changed && age >= REFRESH_AFTER_CHANGE)
            }
        };
        if due {
            self.last = Some(std::time::Instant::now());
            self.changed = false;
        }
        due
    }
}

/// Refreshes the gauges read from the database: the outbox depth and open violations per
/// site (sites whose violations all resolved go to 0).
pub async fn refresh_from_store(store: &Store) -> Result<(), StoreError> {
    let m = &*METRICS;
    let pending = store.pending_notifications().await?;
    m.alert_outbox_depth.set(pending);
    let open = store.open_violations_by_site().await?;
    let mut seen = lock(&m.open_sites);
    let now: HashSet<String> = open.iter().map(|(s, _)| s.clone()).collect();
    for gone in seen.difference(&now) {
        m.open_violations
            .get_or_create(&vec![("site", gone.clone())])
            .set(0);
    }
    for (site, n) in open {
        m.open_violations
            .get_or_create(&vec![("site", site.clone())])
            .set(n);
        seen.insert(site);
    }
    Ok(())
}

/// Follows the live events of this process until the sender is gone: per-series gauges
/// and the tracked-series gauge from `Evaluated`, the violations counter from
/// `ViolationOpened`; refreshes the gauges read from the database every [`REFRESH_EVERY`]
/// and soon after a violation changed.
pub async fn follow(store: Store, mut events: broadcast::Receiver<LiveEvent>) {
    // gauges of the admitted series (at most the cap); a series is admitted or counted as
    // dropped on its first judged point
    let mut gauges: std::collections::HashMap<SeriesId, SeriesGauges> =
        std::collections::HashMap::new();
    let mut schedule = RefreshSchedule::default();
    // after missing events, series whose first point was missed are admitted while there is room
    let mut lagged = false;
    let mut tick = tokio::time::interval(REFRESH_AFTER_CHANGE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            _ = tick.tick() => false,
            e = events.recv() => match e {
                Ok(LiveEvent::Evaluated { series, tracked }) => {
                    set_series_tracked(tracked);
                    for e in series.iter() {
                        let Some(j) = e.judged else { continue };
                        let room = gauges.len() < METRICS.series_cap.load(Ordering::Relaxed);
                        if (j.first || (lagged && room))
                            && !gauges.contains_key(&e.series)
                            && let Some(g) = series_gauges(&e.series)
                        {
                            gauges.insert(e.series.clone(), g);
                        }
                        if let Some(g) = gauges.get(&e.series) {
                            g.set(j.value, j.center, j.ucl, j.lcl);
                        }
                    }
                    false
                }
                Ok(LiveEvent::ViolationOpened(v)) => {
                    violation_opened(&v);
                    true
                }
                Ok(LiveEvent::ViolationResolved { .. }) => true,
                Ok(LiveEvent::ViolationAcknowledged { .. }) => false,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    lagged = true;
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if schedule.due(changed)
            && let Err(e) = refresh_from_store(&store).await
        {
            tracing::debug!(error = %e, "metrics: refreshing the gauges read from the database failed");
        }
    }
}

/// Cluster mode: copies the cluster's counters into the metrics every second.
pub async fn follow_cluster(c: llmscope_cluster::Cluster) {
    let m = metrics();
    let mut seen = [0u64; 6];
    let mut ticks = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        m.cluster_connected.set(i64::from(c.nats.connected()));
        m.cluster_owned.set(c.ownership.owned().len() as i64);
        let (p, s) = (&c.partition_stats, &c.storage_stats);
        let now = [
            s.stored.load(Ordering::Relaxed),
            p.judged.load(Ordering::Relaxed),
            p.caught_up.load(Ordering::Relaxed),
            p.stored_on_takeover.load(Ordering::Relaxed),
            s.unreadable.load(Ordering::Relaxed),
            p.takeovers.load(Ordering::Relaxed),
        ];
        let stages = [
            "stored",
            "judged",
            "caught_up",
            "stored_on_takeover",
            "unreadable",
        ];
        for (i, stage) in stages.iter().enumerate() {
            m.cluster_messages
                .get_or_create(&vec![("stage", *stage)])
                .inc_by(now[i].saturating_sub(seen[i]));
        }
        m.cluster_takeovers.inc_by(now[5].saturating_sub(seen[5]));
        seen = now;
        ticks += 1;
        if ticks % 5 == 1
            && let Ok(stream) = c.nats.stream().await
            && let Ok(info) = stream.get_info().await
        {
            m.cluster_log_pending
                .set(i64::try_from(info.state.messages).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_stable() {
        assert_eq!(reason_code("latency_ms"), "latency_ms");
        assert_eq!(reason_code("labels.team"), "labels");
        assert_eq!(reason_code("labels"), "labels");
        assert_eq!(reason_code("gpus[12].util_pct"), "gpus.util_pct");
        assert_eq!(reason_code("\"x\""), "x");
        assert_eq!(reason_code(""), "other");
    }

    #[test]
    fn every_family_is_exposed_with_its_dashboard_name() {
        let mut t = IngestTally {
            samples: 3,
            gpus: 2,
            ..Default::default()
        };
        t.rejected.push(("sample", "latency_ms".into()));
        t.record(Duration::from_millis(3));
        let text = render();
        for name in [
            "llmscope_build_info{version=\"",
            "llmscope_ingest_items_total{kind=\"sample\",outcome=\"accepted\"}",
            "llmscope_ingest_items_total{kind=\"gpu\",outcome=\"rejected\"}",
            "llmscope_ingest_rejected_items_total{reason=\"latency_ms\"}",
            "llmscope_ingest_batch_duration_seconds_bucket",
            "# TYPE llmscope_ingest_queue_depth gauge",
            "# TYPE llmscope_violations counter",
            "# TYPE llmscope_open_violations gauge",
            "# TYPE llmscope_alert_deliveries counter",
            "llmscope_alert_outbox_depth ",
            "# TYPE llmscope_series_value gauge",
            "# TYPE llmscope_series_center gauge",
            "# TYPE llmscope_series_ucl gauge",
            "# TYPE llmscope_series_lcl gauge",
            "llmscope_series_gauges_dropped_total ",
            "llmscope_series_tracked ",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn the_cap_admits_known_series_and_refuses_new_ones() {
        let key = |h: &str| -> Dynamic { vec![("host", h.to_owned())] };
        let mut set = HashSet::new();
        assert!(admit(&mut set, &key("a"), 2));
        assert!(admit(&mut set, &key("b"), 2));
        assert!(!admit(&mut set, &key("c"), 2));
        assert!(
            admit(&mut set, &key("a"), 2),
            "a known series keeps its gauges"
        );
        assert!(
            !admit(&mut HashSet::new(), &key("a"), 0),
            "cap 0 exports none"
        );
    }

    #[test]
    fn series_gauges_are_exported_with_their_labels() {
        let id = SeriesId::series(
            "gauge-test",
            "h",
            "p",
            "m",
            llmscope_model::Metric::LatencyMs,
        );
        let g = series_gauges(&id).unwrap();
        g.set(1.0, 2.0, 3.0, 0.5);
        let text = render();
        assert!(
            text.contains("llmscope_series_ucl{site=\"gauge-test\",host=\"h\",provider=\"p\",model=\"m\",metric=\"latency_ms\"} 3.0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_router_serves_the_text() {
        use tower::ServiceExt;
        let resp = router()
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("llmscope_build_info"));
        assert!(text.ends_with("# EOF\n"));
    }
}
