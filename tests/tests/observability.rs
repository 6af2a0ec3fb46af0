//! Observability end to end: a collector and an agent (simulated model) as real processes;
//! both `/metrics` endpoints expose what the Grafana dashboards query, with values that
//! move (ingest, rejections, series gauges, violations, alert deliveries); and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set the collector sends `ingest_batch`, `rule_evaluation`
//! and `alert_delivery` spans to a real OTLP/gRPC receiver.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmscope_e2e::{Agent, Collector, collector_cmd, free_port, http_get, wait_until};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A webhook receiver that answers 200 and counts the requests.
async fn webhook() -> (SocketAddr, Arc<Mutex<usize>>) {
    let hits = Arc::new(Mutex::new(0usize));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = h.clone();
            async move {
                *h.lock().unwrap() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// A collector config: short Phase I (with a paging CUSUM designed for one false page per
/// 1 000 probes, what 20 points can deliver) and one webhook channel.
fn collector_config(dir: &Path, hook: SocketAddr, alerts: &str) -> PathBuf {
    let path = dir.join("collector.toml");
    std::fs::write(
        &path,
        format!(
            "[spc]\nbaseline_points = 20\narl0 = 1000\n\n[alerts]\n{alerts}\n[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\nsecret = \"s3cret\"\n"
        ),
    )
    .unwrap();
    path
}

/// The sum of the samples of `name` whose label set contains every one of `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn has(text: &str, name: &str, labels: &[&str]) -> bool {
    text.lines().any(|l| {
        !l.starts_with('#')
            && l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
            && labels.iter().all(|want| l.contains(want))
    })
}

/// Every collector family the first test expects to have moved.
fn all_moved(t: &str, series: &[&str]) -> bool {
    let v = |name: &str, labels: &[&str]| value(t, name, labels);
    v(
        "llmscope_ingest_items_total",
        &["kind=\"sample\"", "outcome=\"accepted\""],
    ) >= 15.0
        && v(
            "llmscope_ingest_items_total",
            &["kind=\"telemetry\"", "outcome=\"accepted\""],
        ) >= 1.0
        && v(
            "llmscope_ingest_items_total",
            &["kind=\"sample\"", "outcome=\"rejected\""],
        ) >= 1.0
        && v(
            "llmscope_ingest_rejected_items_total",
            &["reason=\"latency_ms\""],
        ) >= 1.0
        && v("llmscope_ingest_batch_duration_seconds_count", &[]) >= 2.0
        && has(t, "llmscope_series_value", series)
        && has(t, "llmscope_series_ucl", series)
        && v("llmscope_series_tracked", &[]) >= 1.0
        && v(
            "llmscope_violations_total",
            &["site=\"lab\"", "model=\"simulated-llm\""],
        ) >= 1.0
        && v("llmscope_open_violations", &["site=\"lab\""]) >= 1.0
        && v(
            "llmscope_alert_deliveries_total",
            &["channel=\"hook\"", "outcome=\"delivered\""],
        ) >= 1.0
}

fn sample(latency_ms: f64, ts: i64) -> v1::Sample {
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: ts,
        site: "lab".into(),
        host: "gpu-push".into(),
        provider: "openai_compatible".into(),
        model: "pushed-model".into(),
        source: v1::Source::Probe as i32,
        latency_ms,
        status: v1::CallStatus::Ok as i32,
        ..Default::default()
    }
}

async fn push(grpc: &str, token: &str, req: IngestRequest) -> v1::IngestAck {
    let mut c = IngestServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut r = tonic::Request::new(req);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    c.push(r).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_and_agent_metrics_cover_every_dashboard_query() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let (hook, hits) = webhook().await;
    let cfg = collector_config(dir.path(), hook, "");
    let grpc = format!("127.0.0.1:{}", free_port());
    let collector = Collector::start(
        &url,
        &["--grpc-listen", &grpc, "--config", cfg.to_str().unwrap()],
    )
    .await;
    // before any data: every family is already listed
    let first = http_get(&collector.http, "/metrics").await;
    assert!(
        first.contains("llmscope_build_info"),
        "/metrics is served on the collector's HTTP listener: {first}"
    );

    // an agent probing its simulated model fast; latency jumps ×4 after 2 s
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            "collector = \"http://{grpc}\"\ntoken = \"{token}\"\nsite = \"lab\"\nhost = \"gpu-node-1\"\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\ntelemetry_interval = \"200ms\"\nauto_targets = false\nbatch_max = 50\n\n[[targets]]\nname = \"sim\"\nprovider = \"simulated\"\nmodel = \"simulated-llm\"\ninterval = \"100ms\"\njitter = 0.1\ntimeout = \"5s\"\nmax_tokens = 2\n\n[simulated]\nmodel = \"simulated-llm\"\nttft_median_ms = 5\nttft_sigma = 0.1\ntokens_per_s = 1000\n\n[[simulated.schedule]]\nafter = \"2s\"\nduration = \"1h\"\nkind = \"shift\"\nfactor = 4\n",
            dir.path().join("agent-data").display()
        ),
    )
    .unwrap();
    let agent = Agent::start(&agent_cfg).await;

    // one pushed batch with a bad item: rejections are counted by reason
    let ack = push(
        &grpc,
        &token,
        IngestRequest {
            batch_seq: 1,
            samples: vec![sample(100.0, now_ns()), sample(-5.0, now_ns())],
            telemetry: vec![],
        },
    )
    .await;
    assert_eq!((ack.accepted_samples, ack.rejected.len()), (1, 1));

    let series = [
        "site=\"lab\"",
        "host=\"gpu-node-1\"",
        "provider=\"simulated\"",
        "model=\"simulated-llm\"",
        "metric=\"latency_ms\"",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let t = http_get(&collector.http, "/metrics").await;
        if all_moved(&t, &series) || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ok = all_moved(&text, &series);
    assert!(ok, "collector metrics did not all move in 60 s:\n{text}");
    assert!(*hits.lock().unwrap() >= 1, "the webhook was called");

    // the gauges carry the series' limits: LCL < centre < UCL
    let centre = value(&text, "llmscope_series_center", &series);
    let (ucl, lcl) = (
        value(&text, "llmscope_series_ucl", &series),
        value(&text, "llmscope_series_lcl", &series),
    );
    assert!(lcl < centre && centre < ucl, "{lcl} < {centre} < {ucl}");
    assert_eq!(value(&text, "llmscope_build_info", &[]), 1.0);
    assert!(text.contains("llmscope_alert_outbox_depth "));
    assert!(text.contains("llmscope_ingest_queue_depth "));
    assert!(text.contains("llmscope_series_gauges_dropped_total 0"));

    let agent_text = agent.metrics().await;
    assert!(value(&agent_text, "llmscope_agent_shipped_records_total", &[]) > 0.0);

    // every metric name a dashboard queries is exposed by one of the two, from the
    // collector's first scrape on
    for (i, collector_text) in [&first, &text].into_iter().enumerate() {
        let scraped = dir.path().join(format!("scraped-{i}.txt"));
        std::fs::write(&scraped, format!("{collector_text}\n{agent_text}")).unwrap();
        check_dashboards(&scraped);
    }

    assert!(agent.terminate().await);
    assert!(collector.terminate().await);
}

/// Runs `deploy/grafana/check_dashboards.py` against scraped `/metrics` text.
fn check_dashboards(scraped: &Path) {
    let grafana = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    let out = std::process::Command::new("python3")
        .arg(grafana.join("check_dashboards.py"))
        .arg(grafana.join("dashboards"))
        .arg(scraped)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "check_dashboards.py {} failed:\n{}{}",
        scraped.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("structure and metric names"));
}

/// An OTLP/gRPC trace receiver keeping every request.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A span as received: its name, the resource's service.name and its string/int attributes.
#[derive(Debug)]
struct Got {
    name: String,
    service: String,
    env: String,
    attrs: Vec<(String, String)>,
}

fn text_of(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn spans(r: &Receiver) -> Vec<Got> {
    let mut out = Vec::new();
    for req in r.0.lock().unwrap().iter() {
        for rs in &req.resource_spans {
            let res = |k: &str| {
                rs.resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == k))
                    .map(|a| text_of(&a.value))
                    .unwrap_or_default()
            };
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push(Got {
                        name: s.name.clone(),
                        service: res("service.name"),
                        env: res("deployment.environment"),
                        attrs: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text_of(&a.value)))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

fn attr<'a>(s: &'a Got, k: &str) -> &'a str {
    s.attrs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let (hook, hits) = webhook().await;
    // a single wild point pages here: rule 1 configured `critical` (by default it marks the
    // chart only)
    let cfg = collector_config(dir.path(), hook, "severity = { \"1\" = \"critical\" }\n");
    let endpoint = format!("http://{otlp}");
    let collector = Collector::start_with_env(
        &url,
        &["--config", cfg.to_str().unwrap()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=e2e"),
        ],
    )
    .await;

    // Phase I (20 points around 100 ms), then a point far above the UCL: rule 1 opens
    let t0 = now_ns() - 60_000_000_000;
    let baseline: Vec<v1::Sample> = (0..20)
        .map(|i| {
            sample(
                100.0 + [0.0, 3.0, -2.0, 4.0, -3.0][i % 5],
                t0 + i as i64 * 1_000_000_000,
            )
        })
        .collect();
    let ack = push(
        &collector.grpc,
        &token,
        IngestRequest {
            batch_seq: 1,
            samples: baseline,
            telemetry: vec![],
        },
    )
    .await;
    assert_eq!(ack.accepted_samples, 20);
    push(
        &collector.grpc,
        &token,
        IngestRequest {
            batch_seq: 2,
            samples: vec![sample(5_000.0, t0 + 30_000_000_000)],
            telemetry: vec![],
        },
    )
    .await;

    let ok = wait_until(Duration::from_secs(30), || async {
        let got = spans(&receiver);
        [
            "ingest_batch",
            "ingest_commit",
            "rule_evaluation",
            "alert_delivery",
        ]
        .iter()
        .all(|n| got.iter().any(|s| s.name == *n))
    })
    .await;
    let got = spans(&receiver);
    assert!(
        ok,
        "spans received: {:?}",
        got.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(*hits.lock().unwrap() >= 1);
    for s in &got {
        assert_eq!(s.service, "llmscope-collector", "{s:?}");
        assert_eq!(s.env, "e2e", "OTEL_RESOURCE_ATTRIBUTES is read: {s:?}");
    }
    let batch = got
        .iter()
        .find(|s| s.name == "ingest_batch" && attr(s, "items") == "20")
        .expect("the 20-sample batch");
    assert_eq!(attr(batch, "site"), "lab");
    assert_eq!(attr(batch, "rpc"), "push");
    let eval = got
        .iter()
        .filter(|s| s.name == "rule_evaluation")
        .find(|s| attr(s, "opened") == "1")
        .expect("the evaluation that opened the violation");
    assert_eq!(attr(eval, "samples"), "1");
    assert_eq!(attr(eval, "series"), "1");
    let sent = got.iter().find(|s| s.name == "alert_delivery").unwrap();
    assert_eq!(attr(sent, "channel"), "hook");
    assert_eq!(attr(sent, "kind"), "webhook");
    assert_eq!(attr(sent, "notifications"), "1");
    assert_eq!(attr(sent, "outcome"), "delivered");
    assert!(collector.terminate().await);
}
