//! A stand-in for the Kubernetes API server's pod endpoints, answering list and watch in the
//! API's real JSON format: `GET /api/v1/pods` (and `/api/v1/namespaces/{ns}/pods`) with
//! `labelSelector` (equality terms), `fieldSelector` (`spec.nodeName=`), `limit`/`continue`,
//! and `watch=true&resourceVersion=N` answered as a chunked stream of
//! `{"type":"ADDED|MODIFIED|DELETED","object":{…}}` lines. Each change bumps the
//! resourceVersion, like etcd's revision. Every query string received is recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Pods {
    /// By `namespace/name`.
    pods: BTreeMap<String, Value>,
    revision: u64,
    queries: Vec<String>,
}

#[derive(Clone)]
struct St {
    pods: Arc<Mutex<Pods>>,
    events: broadcast::Sender<(u64, String, Value)>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeKube {
    /// Address.
    pub addr: SocketAddr,
    st: St,
}

/// A pod as the API server returns it: running on `node`, its IP and one container port
/// taken from `serves` (where its fake model server listens), labelled `labels`, annotated
/// `annotations`.
pub fn pod(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    serves: SocketAddr,
    labels: Value,
    annotations: Value,
) -> Value {
    let (pod_ip, port) = (serves.ip().to_string(), serves.port());
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": "2026-12-06T10:00:00Z",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-'), "uid": "0b7c4b9e-2f57-4c4e-9e41-5d1f2c3a4b5c", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "server",
                "image": "vllm/vllm-openai:v0.10.1",
                "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler"
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-06T10:00:05Z"}],
            "hostIP": "10.0.0.10",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": "2026-12-06T10:00:00Z",
            "qosClass": "BestEffort"
        }
    })
}

fn key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default"),
        pod.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Whether a pod matches the selectors (equality terms only: `k=v`, `k==v`, comma-joined).
fn matches(pod: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    let terms = |s: Option<&str>| -> Vec<(String, String)> {
        s.unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
            .filter_map(|t| {
                let (k, v) = t.split_once("==").or_else(|| t.split_once('='))?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    };
    let label_ok = terms(labels).iter().all(|(k, v)| {
        pod.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            == Some(v.as_str())
    });
    let field_ok = terms(fields).iter().all(|(k, v)| match k.as_str() {
        "spec.nodeName" => pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(v),
        "metadata.namespace" => {
            pod.pointer("/metadata/namespace").and_then(Value::as_str) == Some(v)
        }
        _ => false,
    });
    label_ok && field_ok
}

impl FakeKube {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> FakeKube {
        let (events, _) = broadcast::channel(256);
        let st = St {
            pods: Arc::default(),
            events,
        };
        let app = Router::new()
            .route("/api/v1/pods", get(all_pods))
            .route("/api/v1/namespaces/{ns}/pods", get(ns_pods))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKube { addr, st }
    }

    /// Base URL (the agent's `kubernetes.api_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every query string received, in order.
    pub fn queries(&self) -> Vec<String> {
        self.st.pods.lock().expect("pods").queries.clone()
    }

    fn change(&self, kind: &str, mut pod: Value) {
        let mut p = self.st.pods.lock().expect("pods");
        p.revision += 1;
        let rv = p.revision;
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let k = key(&pod);
        if kind == "DELETED" {
            p.pods.remove(&k);
        } else {
            p.pods.insert(k, pod.clone());
        }
        let _ = self.st.events.send((rv, kind.to_owned(), pod));
    }

    /// Creates a pod (an `ADDED` event).
    pub fn add(&self, pod: Value) {
        self.change("ADDED", pod);
    }

    /// Changes a pod (a `MODIFIED` event).
    pub fn modify(&self, pod: Value) {
        self.change("MODIFIED", pod);
    }

    /// Deletes a pod by `namespace/name` (a `DELETED` event carrying its last state).
    pub fn delete(&self, namespace: &str, name: &str) {
        let pod = self
            .st
            .pods
            .lock()
            .expect("pods")
            .pods
            .get(&format!("{namespace}/{name}"))
            .cloned();
        if let Some(pod) = pod {
            self.change("DELETED", pod);
        }
    }
}

async fn all_pods(
    State(st): State<St>,
    Query(q): Query<BTreeMap<String, String>>,
    raw: axum::extract::RawQuery,
) -> Response {
    pods(st, None, q, raw.0.unwrap_or_default()).await
}

async fn ns_pods(
    State(st): State<St>,
    Path(ns): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    raw: axum::extract::RawQuery,
) -> Response {
    pods(st, Some(ns), q, raw.0.unwrap_or_default()).await
}

async fn pods(st: St, ns: Option<String>, q: BTreeMap<String, String>, raw: String) -> Response {
    let labels = q.get("labelSelector").cloned();
    let mut fields = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(ns) = &ns {
        if !fields.is_empty() {
            fields.push(',');
        }
        fields.push_str(&format!("metadata.namespace={ns}"));
    }
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let mut p = st.pods.lock().expect("pods");
    p.queries.push(raw);
    if !watch {
        let items: Vec<Value> = p
            .pods
            .values()
            .filter(|pod| matches(pod, labels.as_deref(), Some(&fields)))
            .cloned()
            .collect();
        let body = json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": p.revision.to_string()},
            "items": items,
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let since: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(p.revision);
    let mut rx = st.events.subscribe();
    drop(p);
    let stream = async_stream(move |tx| async move {
        loop {
            match rx.recv().await {
                Ok((rv, kind, pod)) => {
                    if rv <= since || !matches(&pod, labels.as_deref(), Some(&fields)) {
                        continue;
                    }
                    let line = format!("{}\n", json!({"type": kind, "object": pod}));
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // like a compacted revision: the client must list again
                    let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
                    let _ = tx.send(Ok(Bytes::from(format!("{gone}\n")))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(stream)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A streaming body fed by a task writing to a channel.
fn async_stream<F, Fut>(f: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}
