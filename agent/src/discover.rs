//! Model-server pods on this node as probe targets, through the Kubernetes API.
//!
//! A `kube` watcher lists and watches pods matching the configured label selector with the
//! field selector `spec.nodeName=<this node>` (so an agent of a DaemonSet sees only its own
//! node's pods). A running pod with an IP becomes a target `<namespace>/<pod>` probed at
//! `http://<pod IP>:<port>`; a pod that stops running, is deleted, or is missing from a
//! re-list (after a watch gap) is dropped and its probes stop. How to probe a pod comes from
//! its annotations (see [`crate::config::KubernetesConfig`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::config::{DEFAULT_PROMPT, KubernetesConfig, Provider, TargetConfig};
use crate::scrape::ServerKind;

/// Annotation: the wire format (`openai_compatible` by default, or `ollama`, `openai`).
pub const ANN_PROVIDER: &str = "llmscope.io/provider";
/// Annotation: the port to probe (default: the pod's first container port).
pub const ANN_PORT: &str = "llmscope.io/port";
/// Annotation: the model to call (default: the first the server lists).
pub const ANN_MODEL: &str = "llmscope.io/model";
/// Annotation: the server's own metrics to read: `vllm`, `ollama` or `none`.
pub const ANN_SERVER_METRICS: &str = "llmscope.io/server-metrics";

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The API server address is not a URL.
    #[error("kubernetes.api_url `{0}` is not a valid URL")]
    Url(String),
    /// No cluster configuration could be found or used.
    #[error("kubernetes client: {0}")]
    Client(String),
    /// This node's name is unknown.
    #[error(
        "kubernetes discovery needs this node's name (kubernetes.node_name or NODE_NAME from the downward API)"
    )]
    NoNode,
}

/// A discovered pod, as a probe target. `model` is `None` when the pod does not say which
/// model to call (the first one the server lists is used).
#[derive(Debug, Clone, PartialEq)]
pub struct PodTarget {
    /// `<namespace>/<pod>`.
    pub name: String,
    /// The pod's UID (a pod recreated under the same name is a new target).
    pub uid: String,
    /// Wire format.
    pub provider: Provider,
    /// `http://<pod IP>:<port>`.
    pub base_url: String,
    /// The model named by the pod's annotation.
    pub model: Option<String>,
    /// The server's own metrics to read.
    pub server_metrics: Option<ServerKind>,
}

impl PodTarget {
    /// The target's configuration, once the model is known.
    pub fn config(&self, model: String, interval: Duration) -> TargetConfig {
        TargetConfig {
            name: self.name.clone(),
            provider: self.provider,
            base_url: Some(self.base_url.clone()),
            model,
            interval,
            jitter: 0.1,
            timeout: Duration::from_secs(60),
            prompt: DEFAULT_PROMPT.into(),
            max_tokens: 16,
            api_key_env: None,
            api_key_file: None,
            server_metrics: self.server_metrics,
            server_metrics_url: None,
        }
    }
}

/// The target a pod stands for, or why it is not one (not running yet, no IP, no port, a
/// bad annotation).
pub fn pod_target(pod: &Pod) -> Result<PodTarget, String> {
    let meta = &pod.metadata;
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let name = format!("{ns}/{}", meta.name.as_deref().unwrap_or(""));
    if meta.deletion_timestamp.is_some() {
        return Err(format!("{name} is terminating"));
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if phase != "Running" {
        return Err(format!("{name} is not running (phase `{phase}`)"));
    }
    let ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| format!("{name} has no pod IP yet"))?;
    let ann = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let provider = match ann(ANN_PROVIDER).as_deref() {
        None | Some("openai_compatible") => Provider::OpenaiCompatible,
        Some("ollama") => Provider::Ollama,
        Some("openai") => Provider::Openai,
        Some(other) => {
            return Err(format!(
                "{name}: annotation {ANN_PROVIDER} is `{other}`; expected openai_compatible, ollama or openai"
            ));
        }
    };
    let port: u16 = match ann(ANN_PORT) {
        Some(p) => p.parse().map_err(|_| {
            format!("{name}: annotation {ANN_PORT} is `{p}`; expected a port number")
        })?,
        None => pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .next()
            })
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                format!("{name} declares no container port; annotate it with {ANN_PORT}")
            })?,
    };
    let server_metrics = match ann(ANN_SERVER_METRICS).as_deref() {
        None if provider == Provider::Ollama => Some(ServerKind::Ollama),
        None => Some(ServerKind::Vllm),
        Some("none") => None,
        Some("vllm") => Some(ServerKind::Vllm),
        Some("ollama") => Some(ServerKind::Ollama),
        Some(other) => {
            return Err(format!(
                "{name}: annotation {ANN_SERVER_METRICS} is `{other}`; expected vllm, ollama or none"
            ));
        }
    };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    Ok(PodTarget {
        name,
        uid: meta.uid.clone().unwrap_or_default(),
        provider,
        base_url: format!("http://{host}:{port}"),
        model: ann(ANN_MODEL).filter(|m| !m.trim().is_empty()),
        server_metrics,
    })
}

/// Starts probing a discovered target; probing stops when the sender it is given is
/// dropped or set to `true`.
pub type StartProbe = Box<dyn Fn(PodTarget, watch::Receiver<bool>) + Send + Sync>;

/// Builds the API client: `api_url` when set, else in-cluster or kubeconfig.
pub async fn client(k: &KubernetesConfig) -> Result<kube::Client, DiscoverError> {
    match &k.api_url {
        Some(u) => {
            let uri: http::Uri = u.parse().map_err(|_| DiscoverError::Url(u.clone()))?;
            kube::Client::try_from(kube::Config::new(uri))
                .map_err(|e| DiscoverError::Client(e.to_string()))
        }
        None => kube::Client::try_default()
            .await
            .map_err(|e| DiscoverError::Client(e.to_string())),
    }
}

/// Follows the pods until `stop` turns true, starting and stopping probes as they come and
/// go. API errors are logged and retried with backoff.
pub async fn follow(
    client: kube::Client,
    k: KubernetesConfig,
    start: StartProbe,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DiscoverError> {
    let node = k
        .node_name
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok())
        .ok_or(DiscoverError::NoNode)?;
    let api: kube::Api<Pod> = match &k.namespace {
        Some(ns) => kube::Api::namespaced(client, ns),
        None => kube::Api::all(client),
    };
    let wc = watcher::Config::default()
        .labels(&k.label_selector)
        .fields(&format!("spec.nodeName={node}"));
    tracing::info!(%node, selector = %k.label_selector, namespace = ?k.namespace, "watching model-server pods");
    let mut events = watcher(api, wc).default_backoff().boxed();
    // running targets by pod UID: the target and the sender that keeps its probes going
    let mut running: HashMap<String, (PodTarget, watch::Sender<bool>)> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            ev = events.next() => ev,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let Some(ev) = ev else {
            return Ok(());
        };
        match ev {
            Ok(watcher::Event::Init) => listing = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone()
                    && let Some(seen) = listing.as_mut()
                {
                    seen.insert(uid);
                }
                apply(&pod, &mut running, &start);
            }
            Ok(watcher::Event::InitDone) => {
                // a pod gone while the watch was down is missing from the new list
                if let Some(seen) = listing.take() {
                    running.retain(|uid, (t, _)| {
                        let keep = seen.contains(uid);
                        if !keep {
                            tracing::info!(target = %t.name, "model-server pod gone; probes stopped");
                        }
                        keep
                    });
                }
            }
            Ok(watcher::Event::Apply(pod)) => apply(&pod, &mut running, &start),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref()
                    && let Some((t, _)) = running.remove(uid)
                {
                    tracing::info!(target = %t.name, "model-server pod deleted; probes stopped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "kubernetes pod watch failed; retrying"),
        }
    }
}

fn apply(
    pod: &Pod,
    running: &mut HashMap<String, (PodTarget, watch::Sender<bool>)>,
    start: &StartProbe,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    match pod_target(pod) {
        Ok(t) => {
            if running.get(&uid).is_some_and(|(old, _)| *old == t) {
                return;
            }
            // new, or changed (IP, port, annotations): restart its probes
            let (tx, rx) = watch::channel(false);
            tracing::info!(target = %t.name, url = %t.base_url, provider = t.provider.as_str(), "model-server pod found; probing it");
            start(t.clone(), rx);
            running.insert(uid, (t, tx));
        }
        Err(why) => {
            if let Some((t, _)) = running.remove(&uid) {
                tracing::info!(target = %t.name, reason = %why, "model-server pod no longer probed");
            } else {
                tracing::debug!(reason = %why, "pod not probed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod")
    }

    #[test]
    fn a_running_pod_becomes_a_target_from_its_annotations() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "vllm-0", "namespace": "llm", "uid": "u1",
                         "annotations": {"llmscope.io/model": "qwen", "llmscope.io/port": "8000"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"containerPort": 9000}]}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3"}
        }));
        let t = pod_target(&p).expect("target");
        assert_eq!(t.name, "llm/vllm-0");
        assert_eq!(t.base_url, "http://10.1.2.3:8000");
        assert_eq!(t.model.as_deref(), Some("qwen"));
        assert_eq!(t.server_metrics, Some(ServerKind::Vllm));
        let pending = pod(serde_json::json!({
            "metadata": {"name": "x", "uid": "u2"},
            "status": {"phase": "Pending"}
        }));
        assert!(pod_target(&pending).unwrap_err().contains("not running"));
        let bad = pod(serde_json::json!({
            "metadata": {"name": "y", "uid": "u3", "annotations": {"llmscope.io/provider": "gemini"}},
            "status": {"phase": "Running", "podIP": "10.0.0.9"}
        }));
        assert!(
            pod_target(&bad)
                .unwrap_err()
                .contains("llmscope.io/provider")
        );
    }
}
