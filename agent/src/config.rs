//! Agent configuration: a TOML file, then `LLMSCOPE_…` environment variables for the
//! connection settings, then flags. Unknown keys are errors that name the key and the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default prompt of canary probes: short, deterministic at temperature 0.
pub const DEFAULT_PROMPT: &str = "Reply with the single word: ready";

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Collector gRPC address: `http://host:7070` or `https://host:7070`.
    pub collector: String,
    /// Ingest token (prefer `token_file` or `LLMSCOPE_TOKEN`).
    pub token: Option<String>,
    /// File holding the ingest token (e.g. a mounted Kubernetes Secret).
    pub token_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the collector's certificate.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// Site this host belongs to.
    pub site: String,
    /// Host name reported in samples; default: `NODE_NAME` (Kubernetes) or the hostname.
    pub host: Option<String>,
    /// Folder for the disk buffer.
    pub data_dir: PathBuf,
    /// Disk buffer size cap in bytes; past it the oldest data is dropped (counted, logged).
    pub buffer_max_bytes: u64,
    /// Telemetry sampling interval.
    #[serde(with = "humantime_serde")]
    pub telemetry_interval: Duration,
    /// Address of the agent's own HTTP endpoint (`/healthz`, `/metrics`).
    pub http_listen: SocketAddr,
    /// Most records per batch sent to the collector.
    pub batch_max: usize,
    /// Unacked batches in flight to the collector.
    pub ship_window: usize,
    /// When no `targets` are configured: probe an Ollama server (`auto_ollama_ports`) or an
    /// OpenAI-compatible server (`auto_openai_ports`) on `auto_hosts` if one answers, else the
    /// simulated provider when `auto_simulated` is on; with it off, keep looking every 30 s.
    pub auto_targets: bool,
    /// Addresses the automatic targets look on (`--auto-hosts` / `LLMSCOPE_AUTO_HOSTS`,
    /// comma-separated; in Kubernetes the node's IP from the downward API).
    pub auto_hosts: Vec<String>,
    /// Ports where an Ollama server is looked for.
    pub auto_ollama_ports: Vec<u16>,
    /// Ports where an OpenAI-compatible server (vLLM, llama.cpp, TGI…) is looked for.
    pub auto_openai_ports: Vec<u16>,
    /// Fall back to the built-in simulated model when no server answers (demos and the quick
    /// start; off in production so nothing invented reaches the database).
    pub auto_simulated: bool,
    /// How often the automatic targets look again while no model server answers (with
    /// `auto_simulated` off).
    #[serde(with = "humantime_serde")]
    pub auto_retry: Duration,
    /// Canary probe targets.
    pub targets: Vec<TargetConfig>,
    /// Timing reverse proxies for real traffic.
    pub proxies: Vec<ProxyConfig>,
    /// The built-in simulated model endpoint (demos and the quick start).
    pub simulated: SimulatedConfig,
    /// Discovery of model-server pods on this node through the Kubernetes API.
    pub kubernetes: KubernetesConfig,
}

/// Model-server pods on this node as probe targets, found and followed through the
/// Kubernetes API (list + watch of pods with `label_selector` and `spec.nodeName` = this
/// node). A pod's annotations say how to probe it: `llmscope.io/provider` (`openai_compatible`
/// by default, or `ollama`), `llmscope.io/port` (default: its first container port),
/// `llmscope.io/model` (default: the first model the server lists), `llmscope.io/server-metrics`
/// (`vllm`, `ollama` or `none`; default by provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Turn discovery on (`--k8s-discover` / `LLMSCOPE_K8S_DISCOVER`). Needs RBAC to get,
    /// list and watch pods (the Helm chart renders it when `agent.discovery.enabled`).
    pub discover: bool,
    /// Which pods are model servers.
    pub label_selector: String,
    /// Namespace to watch; all namespaces when absent.
    pub namespace: Option<String>,
    /// This node's name; default `NODE_NAME` (the downward API's `spec.nodeName`).
    pub node_name: Option<String>,
    /// The API server; default: in-cluster (service account), else the kubeconfig.
    pub api_url: Option<String>,
    /// Time between probes of a discovered pod.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            discover: false,
            label_selector: "llmscope.io/model-server=true".into(),
            namespace: None,
            node_name: None,
            api_url: None,
            probe_interval: Duration::from_secs(10),
        }
    }
}

/// Which wire format a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Ollama `/api/chat` (NDJSON stream).
    Ollama,
    /// OpenAI `/v1/chat/completions` (SSE).
    Openai,
    /// Anthropic `/v1/messages` (SSE).
    Anthropic,
    /// Any OpenAI-compatible server: vLLM, llama.cpp server, TGI.
    OpenaiCompatible,
    /// The agent's built-in simulated endpoint (OpenAI wire format).
    Simulated,
}

impl Provider {
    /// The provider name stored with samples.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ollama => "ollama",
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Simulated => "simulated",
        }
    }

    /// Default base URL.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Ollama => "http://127.0.0.1:11434",
            Provider::Openai => "https://api.openai.com",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::OpenaiCompatible => "http://127.0.0.1:8000",
            Provider::Simulated => "",
        }
    }
}

/// One canary probe target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Wire format.
    pub provider: Provider,
    /// Base URL (default per provider), e.g. `http://10.0.0.5:8000`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model to call.
    pub model: String,
    /// Time between probes.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Random extra delay, as a fraction of `interval` (0.1 = up to ±10%).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Whole-call timeout; a probe that exceeds it becomes a `timeout` sample.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Prompt of the canary call.
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Maximum output tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the API key.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Also read the server's own metrics at every telemetry tick and ship them beside the
    /// host snapshot: `vllm` (Prometheus `/metrics`: queue, KV cache, TTFT and end-to-end
    /// means) or `ollama` (`/api/ps`: loaded models, VRAM). Off when absent.
    #[serde(default)]
    pub server_metrics: Option<crate::scrape::ServerKind>,
    /// Where to read them; default beside `base_url` (`<base>/metrics` without a trailing
    /// `/v1` for vLLM, `<base>/api/ps` for Ollama).
    #[serde(default)]
    pub server_metrics_url: Option<String>,
}

impl TargetConfig {
    /// The model-server metrics to read for this target, if any.
    pub fn scrape_target(&self) -> Option<crate::scrape::ScrapeTarget> {
        let kind = self.server_metrics?;
        let base = self
            .base_url
            .clone()
            .unwrap_or_else(|| self.provider.default_base_url().to_owned());
        Some(crate::scrape::ScrapeTarget {
            target: self.name.clone(),
            kind,
            url: self
                .server_metrics_url
                .clone()
                .unwrap_or_else(|| kind.default_url(&base)),
        })
    }
}

/// One timing reverse proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Address to listen on, e.g. `0.0.0.0:8001`.
    pub listen: SocketAddr,
    /// Upstream model server base URL, e.g. `http://127.0.0.1:8000`.
    pub upstream: String,
    /// Provider name recorded with the samples.
    pub provider: Provider,
    /// Largest request body forwarded (413 above it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Most time to open a connection to the upstream (502 and an error sample after it).
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Most time from forwarding the request to the upstream's response headers — its first
    /// byte (504 and a `timeout` sample after it). Not a limit on the whole response.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most time between two chunks of the response body; a stream that stalls longer is cut
    /// and recorded as a `timeout` sample saying so. A generation may run as long as chunks
    /// keep coming.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Optional deadline for the whole response (off by default: long generations and
    /// reasoning models are not cut).
    #[serde(default, with = "humantime_serde")]
    pub max_duration: Option<Duration>,
}

impl ProxyConfig {
    /// A proxy with the default limits.
    pub fn new(name: &str, listen: SocketAddr, upstream: &str, provider: Provider) -> ProxyConfig {
        ProxyConfig {
            name: name.to_owned(),
            listen,
            upstream: upstream.to_owned(),
            provider,
            max_body_bytes: default_max_body(),
            connect_timeout: default_connect_timeout(),
            timeout: default_timeout(),
            idle_timeout: default_timeout(),
            max_duration: None,
        }
    }
}

/// The simulated provider: log-normal latency, steady token rate, optional degradations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedConfig {
    /// Address of the simulated endpoint (port 0: any free port).
    pub listen: SocketAddr,
    /// Model name it answers as.
    pub model: String,
    /// Median time to first token, ms.
    pub ttft_median_ms: f64,
    /// Log-normal shape (sigma of ln ttft).
    pub ttft_sigma: f64,
    /// Output token rate.
    pub tokens_per_s: f64,
    /// Degradations relative to the agent's start.
    pub schedule: Vec<Degradation>,
}

/// A scheduled degradation of the simulated endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Degradation {
    /// Start, relative to the agent's start.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// How long it lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// `shift` (latency × factor), `drift` (grows linearly to × factor) or `noise`
    /// (log-normal sigma × factor).
    pub kind: DegradationKind,
    /// Strength.
    pub factor: f64,
}

/// Kinds of degradation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradationKind {
    /// A step change.
    Shift,
    /// A linear ramp.
    Drift,
    /// More variance.
    Noise,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_jitter() -> f64 {
    0.1
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_prompt() -> String {
    DEFAULT_PROMPT.to_owned()
}
fn default_max_tokens() -> u32 {
    16
}
fn default_max_body() -> usize {
    10 * 1024 * 1024
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            collector: "http://127.0.0.1:7070".into(),
            token: None,
            token_file: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            site: "local".into(),
            host: None,
            data_dir: PathBuf::from("./llmscope-data/agent"),
            buffer_max_bytes: 512 * 1024 * 1024,
            telemetry_interval: Duration::from_secs(1),
            http_listen: "127.0.0.1:9464".parse().expect("valid constant"),
            batch_max: 500,
            ship_window: 8,
            auto_targets: true,
            auto_hosts: vec!["127.0.0.1".into()],
            auto_ollama_ports: vec![11434],
            auto_openai_ports: vec![8000],
            auto_simulated: true,
            auto_retry: Duration::from_secs(30),
            targets: Vec::new(),
            proxies: Vec::new(),
            simulated: SimulatedConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            listen: "127.0.0.1:0".parse().expect("valid constant"),
            model: "simulated-llm".into(),
            ttft_median_ms: 120.0,
            ttft_sigma: 0.25,
            tokens_per_s: 80.0,
            schedule: Vec::new(),
        }
    }
}

/// A configuration error naming its source and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File unreadable.
    #[error("config file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// File invalid.
    #[error("config file {path}: {msg}")]
    File {
        /// File.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Invalid setting.
    #[error("{0}")]
    Invalid(String),
}

/// Flag and environment overrides (applied over the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--collector` / `LLMSCOPE_COLLECTOR`.
    pub collector: Option<String>,
    /// `--token` / `LLMSCOPE_TOKEN`.
    pub token: Option<String>,
    /// `--token-file` / `LLMSCOPE_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// `--site` / `LLMSCOPE_SITE`.
    pub site: Option<String>,
    /// `--host` / `LLMSCOPE_HOST`.
    pub host: Option<String>,
    /// `--data-dir` / `LLMSCOPE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--http-listen` / `LLMSCOPE_AGENT_HTTP_LISTEN`.
    pub http_listen: Option<SocketAddr>,
    /// `--ca-cert`.
    pub ca_cert: Option<PathBuf>,
    /// `--auto-hosts` / `LLMSCOPE_AUTO_HOSTS` (comma-separated).
    pub auto_hosts: Option<String>,
    /// `--k8s-discover` / `LLMSCOPE_K8S_DISCOVER`.
    pub k8s_discover: Option<bool>,
    /// `--k8s-label-selector` / `LLMSCOPE_K8S_LABEL_SELECTOR`.
    pub k8s_label_selector: Option<String>,
}

impl AgentConfig {
    /// Loads the file (if any), applies overrides, validates.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<AgentConfig, ConfigError> {
        let mut cfg = match file {
            Some(p) => {
                let path = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<AgentConfig>(&text).map_err(|e| ConfigError::File {
                    path,
                    msg: e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                })?
            }
            None => AgentConfig::default(),
        };
        if let Some(v) = &o.collector {
            cfg.collector = v.clone();
        }
        if let Some(v) = &o.token {
            cfg.token = Some(v.clone());
        }
        if let Some(v) = &o.token_file {
            cfg.token_file = Some(v.clone());
        }
        if let Some(v) = &o.site {
            cfg.site = v.clone();
        }
        if let Some(v) = &o.host {
            cfg.host = Some(v.clone());
        }
        if let Some(v) = &o.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = o.http_listen {
            cfg.http_listen = v;
        }
        if let Some(v) = &o.ca_cert {
            cfg.ca_cert = Some(v.clone());
        }
        if let Some(v) = o.k8s_discover {
            cfg.kubernetes.discover = v;
        }
        if let Some(v) = &o.k8s_label_selector {
            cfg.kubernetes.label_selector = v.clone();
        }
        if let Some(v) = &o.auto_hosts {
            cfg.auto_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and combinations; messages quote the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(self.collector.starts_with("http://") || self.collector.starts_with("https://")) {
            return bad(format!(
                "`collector` must start with http:// or https://, got `{}`",
                self.collector
            ));
        }
        if self.site.trim().is_empty() {
            return bad("`site` must not be empty".into());
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return bad("`client_cert` and `client_key` must be set together".into());
        }
        if self.buffer_max_bytes < 1024 * 1024 {
            return bad("`buffer_max_bytes` must be at least 1 MiB".into());
        }
        if self.telemetry_interval < Duration::from_millis(100) {
            return bad("`telemetry_interval` must be at least 100ms".into());
        }
        if self.batch_max == 0 || self.ship_window == 0 {
            return bad("`batch_max` and `ship_window` must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = format!("targets[{i}] (`{}`)", t.name);
            if !names.insert(t.name.clone()) {
                return bad(format!("{at}: the name is used twice"));
            }
            if t.model.trim().is_empty() {
                return bad(format!("{at}: `model` must not be empty"));
            }
            if t.interval < Duration::from_millis(100) {
                return bad(format!("{at}: `interval` must be at least 100ms"));
            }
            if !(0.0..=1.0).contains(&t.jitter) {
                return bad(format!("{at}: `jitter` must be between 0 and 1"));
            }
            if t.max_tokens == 0 {
                return bad(format!("{at}: `max_tokens` must be at least 1"));
            }
            if let Some(u) = &t.base_url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return bad(format!(
                    "{at}: `base_url` must start with http:// or https://"
                ));
            }
            if let Some(u) = &t.server_metrics_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return bad(format!(
                        "{at}: `server_metrics_url` must start with http:// or https://"
                    ));
                }
                if t.server_metrics.is_none() {
                    return bad(format!(
                        "{at}: `server_metrics_url` is set but `server_metrics` is not (say `vllm` or `ollama`)"
                    ));
                }
            }
        }
        let k = &self.kubernetes;
        if k.discover {
            if k.label_selector.trim().is_empty() {
                return bad("`kubernetes.label_selector` is empty: discovery would probe every pod on the node".into());
            }
            if k.node_name.is_none() && std::env::var("NODE_NAME").is_err() {
                return bad("`kubernetes.discover` needs this node's name: set `kubernetes.node_name` or NODE_NAME (downward API spec.nodeName)".into());
            }
            if k.probe_interval < Duration::from_millis(100) {
                return bad("`kubernetes.probe_interval` must be at least 100ms".into());
            }
            if let Some(u) = &k.api_url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return bad("`kubernetes.api_url` must start with http:// or https://".into());
            }
        }
        if self.auto_targets && self.targets.is_empty() {
            if self.auto_hosts.is_empty() {
                return bad("`auto_hosts` is empty: name at least one address (or set auto_targets = false)".into());
            }
            if let Some(h) = self
                .auto_hosts
                .iter()
                .find(|h| h.contains(['/', ' ', '@', '?', '#']))
            {
                return bad(format!(
                    "`auto_hosts`: `{h}` is not a host name or IP address"
                ));
            }
            if self.auto_retry.is_zero() {
                return bad("`auto_retry` must be longer than 0s".into());
            }
            if self.auto_ollama_ports.contains(&0) || self.auto_openai_ports.contains(&0) {
                return bad(
                    "`auto_ollama_ports` / `auto_openai_ports`: port 0 is not a port".into(),
                );
            }
        }
        for (i, p) in self.proxies.iter().enumerate() {
            let at = format!("proxies[{i}] (`{}`)", p.name);
            if !(p.upstream.starts_with("http://") || p.upstream.starts_with("https://")) {
                return bad(format!(
                    "{at}: `upstream` must start with http:// or https://"
                ));
            }
            if p.max_body_bytes == 0 {
                return bad(format!("{at}: `max_body_bytes` must be at least 1"));
            }
            for (key, d) in [
                ("connect_timeout", Some(p.connect_timeout)),
                ("timeout", Some(p.timeout)),
                ("idle_timeout", Some(p.idle_timeout)),
                ("max_duration", p.max_duration),
            ] {
                if d.is_some_and(|d| d.is_zero()) {
                    return bad(format!("{at}: `{key}` must be longer than 0s"));
                }
            }
        }
        if self.simulated.tokens_per_s <= 0.0
            || self.simulated.ttft_median_ms <= 0.0
            || self.simulated.ttft_sigma < 0.0
        {
            return bad(
                "`simulated`: `tokens_per_s` and `ttft_median_ms` must be > 0, `ttft_sigma` ≥ 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// The host name to report.
    pub fn host_name(&self) -> String {
        if let Some(h) = &self.host {
            return h.clone();
        }
        if let Ok(n) = std::env::var("NODE_NAME")
            && !n.is_empty()
        {
            return n;
        }
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".into())
    }

    /// The ingest token from `token`, `token_file` or nothing.
    pub fn read_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_owned()));
        }
        if let Some(p) = &self.token_file {
            let t = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            return Ok(Some(t.trim().to_owned()));
        }
        Ok(None)
    }
}

impl TargetConfig {
    /// The API key from `api_key_env` or `api_key_file` (never logged).
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        if let Some(var) = &self.api_key_env {
            return match std::env::var(var) {
                Ok(k) => Ok(Some(k.trim().to_owned())),
                Err(_) => Err(ConfigError::Invalid(format!(
                    "target `{}`: environment variable {var} (api_key_env) is not set",
                    self.name
                ))),
            };
        }
        if let Some(p) = &self.api_key_file {
            let k = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            return Ok(Some(k.trim().to_owned()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(text: &str) -> Result<AgentConfig, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        AgentConfig::load(Some(f.path()), &Overrides::default())
    }

    #[test]
    fn full_example_parses() {
        let c = load(
            r#"
collector = "https://collector:7070"
token_file = "/var/run/secrets/token"
site = "eu-west"
telemetry_interval = "2s"

[[targets]]
name = "vllm"
provider = "openai_compatible"
base_url = "http://10.0.0.5:8000"
model = "meta-llama/Llama-3.1-8B-Instruct"
interval = "30s"

[[targets]]
name = "claude"
provider = "anthropic"
model = "claude-3-5-haiku-latest"
api_key_env = "ANTHROPIC_API_KEY"

[[proxies]]
name = "vllm-proxy"
listen = "0.0.0.0:8001"
upstream = "http://10.0.0.5:8000"
provider = "openai_compatible"

[simulated]
tokens_per_s = 50
[[simulated.schedule]]
after = "5m"
duration = "10m"
kind = "shift"
factor = 1.5
"#,
        )
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[0].interval, Duration::from_secs(30));
        assert_eq!(c.targets[1].max_tokens, 16);
        assert_eq!(c.proxies[0].max_body_bytes, 10 * 1024 * 1024);
        // streaming limits: no whole-response deadline unless configured
        let p = &c.proxies[0];
        assert_eq!(
            (p.connect_timeout, p.idle_timeout, p.max_duration),
            (Duration::from_secs(10), Duration::from_secs(60), None)
        );
        assert_eq!(c.simulated.schedule[0].kind, DegradationKind::Shift);
    }

    #[test]
    fn proxy_limits_parse_and_zero_is_refused() {
        let proxy = "[[proxies]]\nname = \"p\"\nlisten = \"127.0.0.1:0\"\nupstream = \"http://x\"\nprovider = \"openai\"\n";
        let c = load(&format!(
            "{proxy}idle_timeout = \"2m\"\nmax_duration = \"30m\"\nconnect_timeout = \"3s\"\n"
        ))
        .unwrap();
        assert_eq!(c.proxies[0].idle_timeout, Duration::from_secs(120));
        assert_eq!(c.proxies[0].max_duration, Some(Duration::from_secs(1800)));
        assert_eq!(c.proxies[0].connect_timeout, Duration::from_secs(3));
        let e = load(&format!("{proxy}idle_timeout = \"0s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxies[0] (`p`): `idle_timeout` must be longer than 0s"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = load("colector = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `colector`"), "{e}");
        let e = load(
            "[[targets]]\nname = \"a\"\nprovider = \"ollama\"\nmodel = \"m\"\nintervall = \"1s\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("intervall"), "{e}");
        let e = load("[[targets]]\nname = \"a\"\nprovider = \"gemini\"\nmodel = \"m\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gemini"), "{e}");
        let e = load("collector = \"grpc://x\"\n").unwrap_err().to_string();
        assert!(e.contains("`collector` must start with http"), "{e}");
        let e = load("[[targets]]\nname = \"a\"\nprovider = \"ollama\"\nmodel = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets[0] (`a`): `model` must not be empty"),
            "{e}"
        );
    }
}
