//! One timed model call ([`Sample`]) and one host snapshot ([`Telemetry`]) (ARCHITECTURE §3).

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::metric::Metric;
use crate::series::SeriesId;

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Synthetic canary call by the agent.
    Probe,
    /// Real traffic timed by the agent's proxy.
    Proxy,
    /// Pushed by a custom client.
    Client,
    /// Received as OpenTelemetry spans.
    Otlp,
}

crate::text_enum!(Source, "source", { Probe => "probe", Proxy => "proxy", Client => "client", Otlp => "otlp" });

/// Outcome of a model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// Completed.
    Ok,
    /// Failed.
    Error,
    /// Timed out.
    Timeout,
}

crate::text_enum!(CallStatus, "call status", { Ok => "ok", Error => "error", Timeout => "timeout" });

/// A validated sample: one timed model call.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Idempotency key (UUIDv7 set by the producer).
    pub id: Uuid,
    /// Call start, Unix microseconds.
    pub ts_us: i64,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider (`ollama`, `openai`, …).
    pub provider: String,
    /// Model.
    pub model: String,
    /// Source.
    pub source: Source,
    /// Whole-call latency, ms.
    pub latency_ms: f64,
    /// Time to first token, ms (streaming only).
    pub ttft_ms: Option<f64>,
    /// Prompt tokens.
    pub tokens_in: Option<i64>,
    /// Completion tokens.
    pub tokens_out: Option<i64>,
    /// Outcome.
    pub status: CallStatus,
    /// HTTP status.
    pub http_status: Option<i32>,
    /// Failure reason.
    pub error: Option<String>,
    /// Labels (small and bounded).
    pub labels: BTreeMap<String, String>,
}

impl Sample {
    /// The labels as a JSON object text.
    pub fn labels_json(&self) -> String {
        serde_json::to_string(&self.labels).unwrap_or_else(|_| "{}".into())
    }

    /// The value of `metric` for this call: `None` for failed calls and metrics the call does
    /// not carry.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        if self.status != CallStatus::Ok {
            return None;
        }
        metric.value(self.latency_ms, self.ttft_ms, self.tokens_out)
    }

    /// The id of this call's series for `metric`.
    pub fn series(&self, metric: Metric) -> SeriesId {
        SeriesId::series(&self.site, &self.host, &self.provider, &self.model, metric)
            .with_source(self.source)
    }
}

/// A validated host snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Snapshot time, Unix microseconds.
    pub ts_us: i64,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// CPU %, 0..=100.
    pub cpu_pct: f64,
    /// Memory used, bytes.
    pub mem_used_bytes: i64,
    /// Memory total, bytes.
    pub mem_total_bytes: i64,
    /// 1-minute load average.
    pub load1: f64,
    /// Per-GPU readings (whole GPUs and MIG instances).
    pub gpus: Vec<Gpu>,
    /// Gauges read from the host's model servers.
    pub server_metrics: Vec<ServerMetric>,
}

/// One GPU's (or MIG instance's) readings in a snapshot; `None` where the device does not
/// support a field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gpu {
    /// NVML index (of the parent GPU for a MIG instance).
    pub index: i32,
    /// MIG instance index under its GPU, for a MIG instance.
    pub mig_index: Option<i32>,
    /// Device UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Utilisation %.
    pub util_pct: Option<f64>,
    /// Memory used, bytes.
    pub mem_used_bytes: Option<i64>,
    /// Memory total, bytes.
    pub mem_total_bytes: Option<i64>,
    /// Temperature, °C.
    pub temp_c: Option<f64>,
    /// Power, W.
    pub power_w: Option<f64>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<i32>,
    /// Throttle reasons bitmask.
    pub throttle_reasons: Option<i64>,
    /// Corrected ECC errors since the driver loaded.
    pub ecc_corrected_volatile: Option<i64>,
    /// Uncorrected ECC errors since the driver loaded.
    pub ecc_uncorrected_volatile: Option<i64>,
    /// XID error codes reported since the previous snapshot.
    pub xid_errors: Vec<i32>,
}

/// One gauge read from a model server (vLLM `/metrics`, Ollama `/api/ps`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetric {
    /// The agent target it was read from.
    pub target: String,
    /// Model, empty for a server-wide value.
    pub model: String,
    /// Metric name (`requests_waiting`, `kv_cache_usage_pct`, …).
    pub metric: String,
    /// Value, finite and >= 0.
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_errors_list_the_choices() {
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>(), Ok(*s));
        }
        let e = "carrier".parse::<Source>().unwrap_err().to_string();
        assert_eq!(
            e,
            "`carrier` is not a valid source; use one of probe, proxy, client, otlp"
        );
        assert_eq!(
            serde_json::to_string(&CallStatus::Timeout).unwrap(),
            "\"timeout\""
        );
        let back: CallStatus = serde_json::from_str("\"error\"").unwrap();
        assert_eq!(back, CallStatus::Error);
    }
}
