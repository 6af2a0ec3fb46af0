//! Model-server metrics: per target, optionally read a vLLM server's Prometheus `/metrics`
//! or Ollama's `/api/ps` at each telemetry tick and ship what they say as gauges of the host
//! snapshot ([`v1::ServerMetric`]), so the dashboard can show queue depth, KV-cache pressure
//! and the server's own latency beside the control chart.
//!
//! The Prometheus text format is parsed with `prometheus-parse`. vLLM names its metrics like
//! recording rules (`vllm:num_requests_waiting`); that crate's name pattern (`\w+`) stops at
//! the colon and would drop them, so `vllm:` is rewritten to `vllm_` before parsing.
//!
//! Names shipped (see the protocol's `ServerMetric.metric`): `requests_running`,
//! `requests_waiting` (summed over engines), `kv_cache_usage_pct` (0..=100, mean over
//! engines), `ttft_mean_ms` and `e2e_mean_ms` (mean over the scrape interval, from the
//! histograms' `_sum`/`_count` differences), `preemptions` (in the interval), and for Ollama
//! `models_loaded` and per model `model_vram_bytes`, `model_size_bytes`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmscope_proto::v1;
use serde::{Deserialize, Serialize};

/// Which kind of model server a target's metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// vLLM's Prometheus `/metrics`.
    Vllm,
    /// Ollama's `/api/ps`.
    Ollama,
}

impl ServerKind {
    /// The default URL for a server whose API base is `base` (a trailing `/v1` is dropped:
    /// vLLM serves `/metrics` beside `/v1`, not under it).
    pub fn default_url(self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        match self {
            ServerKind::Vllm => format!("{base}/metrics"),
            ServerKind::Ollama => format!("{base}/api/ps"),
        }
    }
}

/// One model server to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeTarget {
    /// The agent target's name (shipped with every value).
    pub target: String,
    /// What it is.
    pub kind: ServerKind,
    /// Where to read.
    pub url: String,
}

/// The targets to read, shared with target discovery (which adds and removes them).
pub type ScrapeList = Arc<Mutex<Vec<ScrapeTarget>>>;

/// Histogram totals seen at the previous scrape, per (target, model, histogram).
type Totals = HashMap<(String, String, &'static str), (f64, f64)>;

/// Reads every target once per call and turns the answers into gauges.
#[derive(Debug, Default)]
pub struct Scraper {
    prev: Totals,
    prev_counters: HashMap<(String, String, &'static str), f64>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The request failed.
    #[error("{url}: {reason}")]
    Http {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The answer was not what the server kind promises.
    #[error("{url}: {reason}")]
    Format {
        /// Where.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

const HISTOGRAMS: &[(&str, &str)] = &[
    ("vllm_time_to_first_token_seconds", "ttft_mean_ms"),
    ("vllm_e2e_request_latency_seconds", "e2e_mean_ms"),
];

impl Scraper {
    /// A scraper with no history.
    pub fn new() -> Scraper {
        Scraper::default()
    }

    /// Reads every target (each within `timeout`); a target that fails is logged and left
    /// out of this snapshot.
    pub async fn scrape(
        &mut self,
        client: &reqwest::Client,
        targets: &[ScrapeTarget],
        timeout: Duration,
    ) -> Vec<v1::ServerMetric> {
        let mut out = Vec::new();
        for t in targets {
            match fetch(client, &t.url, timeout).await {
                Ok(body) => {
                    let got = match t.kind {
                        ServerKind::Vllm => Ok(self.vllm(&t.target, &body)),
                        ServerKind::Ollama => {
                            ollama_ps(&t.target, &body).map_err(|reason| ScrapeError::Format {
                                url: t.url.clone(),
                                reason,
                            })
                        }
                    };
                    match got {
                        Ok(mut m) => out.append(&mut m),
                        Err(e) => {
                            tracing::debug!(target = %t.target, error = %e, "model-server metrics unreadable")
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(target = %t.target, error = %e, "model-server metrics not read")
                }
            }
        }
        out
    }

    /// The gauges of one vLLM `/metrics` page; interval means need the previous page of the
    /// same target (the first page yields gauges only).
    pub fn vllm(&mut self, target: &str, page: &str) -> Vec<v1::ServerMetric> {
        let text = page.replace("vllm:", "vllm_");
        let scrape = match prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%target, error = %e, "vllm metrics unparsable");
                return Vec::new();
            }
        };
        // per model: running, waiting, kv usage (sum, engines), histogram sums and counts,
        // preemptions
        #[derive(Default)]
        struct PerModel {
            running: Option<f64>,
            waiting: Option<f64>,
            kv: (f64, u32),
            hist: BTreeMap<&'static str, (f64, f64)>,
            preemptions: Option<f64>,
        }
        let mut models: BTreeMap<String, PerModel> = BTreeMap::new();
        let add = |slot: &mut Option<f64>, v: f64| *slot = Some(slot.unwrap_or(0.0) + v);
        for s in &scrape.samples {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            if !value.is_finite() {
                continue;
            }
            let model = s.labels.get("model_name").unwrap_or("").to_owned();
            let name = s.metric.as_str();
            match name {
                "vllm_num_requests_running" => {
                    add(&mut models.entry(model).or_default().running, value)
                }
                "vllm_num_requests_waiting" => {
                    add(&mut models.entry(model).or_default().waiting, value)
                }
                // `gpu_cache_usage_perc` before vLLM 0.10, `kv_cache_usage_perc` since;
                // both are fractions despite the name
                "vllm_kv_cache_usage_perc" | "vllm_gpu_cache_usage_perc" => {
                    let e = &mut models.entry(model).or_default().kv;
                    e.0 += value;
                    e.1 += 1;
                }
                "vllm_num_preemptions_total" => {
                    add(&mut models.entry(model).or_default().preemptions, value)
                }
                _ => {
                    for (h, _) in HISTOGRAMS {
                        if let Some(rest) = name.strip_prefix(h) {
                            let e = models
                                .entry(model.clone())
                                .or_default()
                                .hist
                                .entry(h)
                                .or_default();
                            match rest {
                                "_sum" => e.0 += value,
                                "_count" => e.1 += value,
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        let metric = |model: &str, name: &str, value: f64| v1::ServerMetric {
            target: target.to_owned(),
            model: model.to_owned(),
            metric: name.to_owned(),
            value,
        };
        for (model, m) in models {
            if let Some(v) = m.running {
                out.push(metric(&model, "requests_running", v));
            }
            if let Some(v) = m.waiting {
                out.push(metric(&model, "requests_waiting", v));
            }
            if m.kv.1 > 0 {
                let pct = (m.kv.0 / f64::from(m.kv.1) * 100.0).clamp(0.0, 100.0);
                out.push(metric(&model, "kv_cache_usage_pct", pct));
            }
            for (h, shipped) in HISTOGRAMS {
                let Some(&(sum, count)) = m.hist.get(h) else {
                    continue;
                };
                let key = (target.to_owned(), model.clone(), *h);
                if let Some((psum, pcount)) = self.prev.insert(key, (sum, count)) {
                    let (ds, dc) = (sum - psum, count - pcount);
                    // no calls in the interval: no mean; a restart (counts fell): start over
                    if dc > 0.0 && ds >= 0.0 {
                        out.push(metric(&model, shipped, ds / dc * 1000.0));
                    }
                }
            }
            if let Some(total) = m.preemptions {
                let key = (target.to_owned(), model.clone(), "preemptions");
                if let Some(prev) = self.prev_counters.insert(key, total)
                    && total >= prev
                {
                    out.push(metric(&model, "preemptions", total - prev));
                }
            }
        }
        out
    }
}

/// Ollama's `/api/ps`: how many models are loaded, and each one's VRAM and size.
pub fn ollama_ps(target: &str, body: &str) -> Result<Vec<v1::ServerMetric>, String> {
    #[derive(Deserialize)]
    struct Ps {
        models: Vec<Loaded>,
    }
    #[derive(Deserialize)]
    struct Loaded {
        name: String,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        size_vram: Option<u64>,
    }
    let ps: Ps = serde_json::from_str(body).map_err(|e| format!("not an /api/ps answer: {e}"))?;
    let metric = |model: &str, name: &str, value: f64| v1::ServerMetric {
        target: target.to_owned(),
        model: model.to_owned(),
        metric: name.to_owned(),
        value,
    };
    let mut out = vec![metric("", "models_loaded", ps.models.len() as f64)];
    for m in &ps.models {
        if let Some(v) = m.size_vram {
            out.push(metric(&m.name, "model_vram_bytes", v as f64));
        }
        if let Some(v) = m.size {
            out.push(metric(&m.name, "model_size_bytes", v as f64));
        }
    }
    Ok(out)
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, ScrapeError> {
    let err = |reason: String| ScrapeError::Http {
        url: url.to_owned(),
        reason,
    };
    let resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("answered {}", resp.status())));
    }
    resp.text().await.map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_urls_sit_beside_the_api() {
        assert_eq!(
            ServerKind::Vllm.default_url("http://10.0.0.5:8000/v1/"),
            "http://10.0.0.5:8000/metrics"
        );
        assert_eq!(
            ServerKind::Ollama.default_url("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434/api/ps"
        );
    }

    #[test]
    fn ollama_ps_counts_models_and_vram() {
        let body = r#"{"models":[{"name":"llama3.2:1b","model":"llama3.2:1b","size":2019393189,"digest":"x","details":{"format":"gguf"},"expires_at":"2026-12-06T20:00:00Z","size_vram":2019393189}]}"#;
        let m = ollama_ps("ollama", body).unwrap_or_default();
        let find = |n: &str| m.iter().find(|x| x.metric == n).map(|x| x.value);
        assert_eq!(find("models_loaded"), Some(1.0));
        assert_eq!(find("model_vram_bytes"), Some(2019393189.0));
        assert!(ollama_ps("ollama", "<html>").is_err());
    }
}
