//! The agent's own metrics, exposed in Prometheus text format at `/metrics`.
//!
//! Per-call histograms follow the OpenTelemetry GenAI semantic conventions where they fit
//! (`gen_ai.client.operation.duration`, `gen_ai.server.time_to_first_token`,
//! `gen_ai.client.token.usage`, with `gen_ai_system` and `gen_ai_request_model` labels).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::probe::{CallStatus, Outcome};

type Labels = Vec<(String, String)>;

/// A family of float gauges.
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// All agent metrics.
pub struct Metrics {
    registry: Registry,
    /// Calls by target, source and status.
    pub calls: Family<Labels, Counter>,
    /// Whole-call duration, seconds.
    pub duration: Family<Labels, Histogram>,
    /// Time to first token, seconds.
    pub ttft: Family<Labels, Histogram>,
    /// Tokens per call by type.
    pub tokens: Family<Labels, Histogram>,
    /// Bytes of the disk buffer.
    pub buffer_bytes: Gauge<i64, AtomicI64>,
    /// Records dropped because the buffer was full.
    pub buffer_dropped: Counter,
    /// Corrupt records skipped.
    pub buffer_corrupt: Counter,
    /// Records acknowledged by the collector.
    pub shipped: Counter,
    /// Records the collector rejected (with a reason in the log).
    pub rejected: Counter,
    /// 1 while a stream to the collector is open.
    pub connected: Gauge,
    /// Reconnects to the collector.
    pub reconnects: Counter,
    /// Telemetry snapshots taken.
    pub telemetry: Counter,
    /// GPU gauges under the DCGM exporter's names and labels, by field name.
    pub dcgm: Vec<(&'static str, FloatGauges)>,
    /// Buffer counters already published (the buffer counts since open; metrics follow).
    published: std::sync::Mutex<(u64, u64)>,
}

/// The GPU gauges, named and ordered as [`Metrics::set_gpus`] fills them (the DCGM
/// exporter's field names and units).
const DCGM: &[(&str, &str)] = &[
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)"),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)"),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)"),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)"),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)"),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)"),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock throttle reasons (NVML bit mask)",
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors",
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "Total number of single-bit volatile ECC errors",
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered",
    ),
];

fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
    ]
    .into_iter()
}

fn token_buckets() -> impl Iterator<Item = f64> {
    [
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
    ]
    .into_iter()
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let calls = Family::<Labels, Counter>::default();
        let duration =
            Family::<Labels, Histogram>::new_with_constructor(
                || Histogram::new(duration_buckets()),
            );
        let ttft =
            Family::<Labels, Histogram>::new_with_constructor(
                || Histogram::new(duration_buckets()),
            );
        let tokens =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(token_buckets()));
        let m = Metrics {
            calls: calls.clone(),
            duration: duration.clone(),
            ttft: ttft.clone(),
            tokens: tokens.clone(),
            buffer_bytes: Gauge::default(),
            buffer_dropped: Counter::default(),
            buffer_corrupt: Counter::default(),
            shipped: Counter::default(),
            rejected: Counter::default(),
            connected: Gauge::default(),
            reconnects: Counter::default(),
            telemetry: Counter::default(),
            dcgm: DCGM
                .iter()
                .map(|(name, _)| (*name, Family::default()))
                .collect(),
            registry: Registry::default(),
            published: std::sync::Mutex::new((0, 0)),
        };
        registry.register(
            "llmscope_agent_calls",
            "Model calls timed, by target, source and status",
            calls,
        );
        registry.register(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (whole call)",
            duration,
        );
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first content chunk",
            ttft,
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per call by gen_ai_token_type (input, output)",
            tokens,
        );
        registry.register(
            "llmscope_agent_buffer_bytes",
            "Bytes held by the disk buffer",
            m.buffer_bytes.clone(),
        );
        registry.register(
            "llmscope_agent_buffer_dropped_records",
            "Records dropped because the buffer reached its size cap",
            m.buffer_dropped.clone(),
        );
        registry.register(
            "llmscope_agent_buffer_corrupt_records",
            "Corrupt buffer records skipped",
            m.buffer_corrupt.clone(),
        );
        registry.register(
            "llmscope_agent_shipped_records",
            "Records acknowledged by the collector",
            m.shipped.clone(),
        );
        registry.register(
            "llmscope_agent_rejected_records",
            "Records the collector rejected",
            m.rejected.clone(),
        );
        registry.register(
            "llmscope_agent_collector_connected",
            "1 while a stream to the collector is open",
            m.connected.clone(),
        );
        registry.register(
            "llmscope_agent_collector_reconnects",
            "Reconnects to the collector",
            m.reconnects.clone(),
        );
        registry.register(
            "llmscope_agent_telemetry_snapshots",
            "Telemetry snapshots taken",
            m.telemetry.clone(),
        );
        for ((name, help), (_, family)) in DCGM.iter().zip(&m.dcgm) {
            registry.register(*name, *help, family.clone());
        }
        Arc::new(Metrics { registry, ..m })
    }

    /// Sets the GPU gauges from the latest readings, under the DCGM exporter's metric names
    /// and labels (`gpu`, `UUID`, `modelName`, `Hostname`; MIG instances add
    /// `GPU_I_ID`), so existing DCGM dashboards work. A field the device does not support is
    /// left out, never exported as 0.
    pub fn set_gpus(&self, host: &str, readings: &[crate::telemetry::gpu::GpuReading]) {
        const MIB: f64 = 1024.0 * 1024.0;
        for r in readings {
            let mut labels: Labels = vec![
                ("gpu".into(), r.index.to_string()),
                ("UUID".into(), r.uuid.clone()),
                ("modelName".into(), r.name.clone()),
                ("Hostname".into(), host.to_owned()),
            ];
            if let Some(i) = r.mig_index {
                labels.push(("GPU_I_ID".into(), i.to_string()));
            }
            let free = match (r.mem_total_bytes, r.mem_used_bytes) {
                (Some(t), Some(u)) => Some(t.saturating_sub(u) as f64 / MIB),
                _ => None,
            };
            let values = [
                r.util_pct,
                r.mem_used_bytes.map(|b| b as f64 / MIB),
                free,
                r.temp_c,
                r.power_w,
                r.sm_clock_mhz.map(f64::from),
                r.throttle_reasons.map(|b| b as f64),
                r.ecc_uncorrected_volatile.map(|n| n as f64),
                r.ecc_corrected_volatile.map(|n| n as f64),
                r.xid_last.map(f64::from),
            ];
            for ((_, family), v) in self.dcgm.iter().zip(values) {
                if let Some(v) = v {
                    family.get_or_create(&labels).set(v);
                }
            }
        }
    }

    /// Brings the buffer metrics up to date with the buffer's own statistics.
    pub fn sync_buffer(&self, stats: &crate::buffer::BufferStats) {
        self.buffer_bytes
            .set(i64::try_from(stats.bytes_on_disk).unwrap_or(i64::MAX));
        let mut last = self.published.lock().unwrap_or_else(|p| p.into_inner());
        self.buffer_dropped
            .inc_by(stats.dropped_records.saturating_sub(last.0));
        self.buffer_corrupt
            .inc_by(stats.corrupt_records.saturating_sub(last.1));
        *last = (
            last.0.max(stats.dropped_records),
            last.1.max(stats.corrupt_records),
        );
    }

    /// Records one finished call.
    pub fn observe_call(
        &self,
        target: &str,
        source: &str,
        provider: &str,
        model: &str,
        o: &Outcome,
    ) {
        let status = match o.status {
            CallStatus::Ok => "ok",
            CallStatus::Error => "error",
            CallStatus::Timeout => "timeout",
        };
        self.calls
            .get_or_create(&vec![
                ("target".into(), target.into()),
                ("source".into(), source.into()),
                ("status".into(), status.into()),
            ])
            .inc();
        if o.status != CallStatus::Ok {
            return;
        }
        let base: Labels = vec![
            ("target".into(), target.into()),
            ("gen_ai_system".into(), provider.into()),
            ("gen_ai_request_model".into(), model.into()),
        ];
        self.duration
            .get_or_create(&base)
            .observe(o.latency_ms / 1e3);
        if let Some(t) = o.ttft_ms {
            self.ttft.get_or_create(&base).observe(t / 1e3);
        }
        for (kind, n) in [("input", o.tokens_in), ("output", o.tokens_out)] {
            if let Some(n) = n {
                let mut l = base.clone();
                l.push(("gen_ai_token_type".into(), kind.into()));
                self.tokens.get_or_create(&l).observe(f64::from(n));
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
