//! Alert delivery through real receivers: signed webhooks, retries honouring 5xx and 429
//! `Retry-After`, the delivery log, the dead-letter state, exactly-once delivery with two
//! replicas on one PostgreSQL, nothing lost across a restart while the receiver is down,
//! grouping, reminders, routing, silences (API), test sends, and email through a real SMTP
//! server (aiosmtpd) with STARTTLS, implicit TLS and authentication.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{BACKENDS, Backend, TestDb, config, start};
use hmac::{Hmac, Mac};
use llmscope_alert::config::{AlertsConfig, ChannelConfig};
use llmscope_collector::config::{Config, Secret};
use llmscope_model::{
    BaselineMode, FrozenBaseline, Metric, Scope, SeriesId, Severity, Violation, now_us,
};
use llmscope_store::Store;
use llmscope_store::violations::ViolationOp;
use sha2::Sha256;

const SECRET: &str = "s3cret";

#[derive(Clone, Default)]
struct Receiver {
    /// Scripted answers, used in order; then 200.
    script: Arc<Mutex<Vec<(u16, Option<&'static str>)>>>,
    /// (delivery id, event, received at, signature valid, body).
    got: Arc<Mutex<Vec<(String, String, Instant, bool, serde_json::Value)>>>,
}

/// The verification recipe from the README: HMAC-SHA256 over "<timestamp>.<raw body>".
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let ts = headers
        .get("x-llmscope-timestamp")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sig = headers
        .get("x-llmscope-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(hex_sig) = sig.strip_prefix("v1=") else {
        return false;
    };
    let Ok(want) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (now_us() / 1_000_000 - t).abs() < 300);
    fresh && mac.verify_slice(&want).is_ok()
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let ok = verify(&headers, &body);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    r.got.lock().unwrap().push((
        h("x-llmscope-delivery"),
        h("x-llmscope-event"),
        Instant::now(),
        ok,
        json,
    ));
    let next = {
        let mut s = r.script.lock().unwrap();
        if s.is_empty() {
            None
        } else {
            Some(s.remove(0))
        }
    };
    match next {
        None => StatusCode::OK.into_response(),
        Some((code, retry_after)) => {
            let mut resp =
                (StatusCode::from_u16(code).unwrap(), "scripted failure").into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            resp
        }
    }
}

async fn receiver_on(listener: tokio::net::TcpListener, r: Receiver) {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/slack", post(hook))
        .route("/pd", post(hook))
        .with_state(r);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

async fn receiver(r: Receiver) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    receiver_on(l, r).await;
    url
}

fn with_channel(db_url: &str, hook_url: &str, max_attempts: i64) -> Config {
    let mut c = config(db_url);
    c.alerts = AlertsConfig {
        poll_interval: Duration::from_millis(50),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
        channels: vec![ChannelConfig {
            name: "ops".into(),
            kind: "webhook".into(),
            url: hook_url.into(),
            secret: Some(Secret(SECRET.into())),
            max_attempts,
            ..ChannelConfig::default()
        }],
        ..AlertsConfig::default()
    };
    c.admin_token = Some(Secret(ADMIN.into()));
    c
}

const ADMIN: &str = "admin-test-token";

async fn open_violations(store: &Store, n: usize) {
    open_on(store, n, "lab", |_| "m".into(), 1).await;
}

fn series(site: &str, model: &str) -> SeriesId {
    SeriesId::series(site, "gpu-1", "ollama", model, Metric::LatencyMs)
}

/// A baseline with centre 100.
fn baseline() -> FrozenBaseline {
    let b = llmscope_spc::Baseline::given(100.0, 1.0, 3.0, llmscope_spc::Transform::None).unwrap();
    FrozenBaseline::new(0, Scope::Series, b, (0, 0), BaselineMode::Auto)
}

/// Resolves `v-lab-m-1-0` (the violation [`open_violations`] opens first).
fn resolve_first(at: i64) -> ViolationOp {
    ViolationOp::Resolve {
        id: "v-lab-m-1-0".into(),
        series: series("lab", "m"),
        rule: 1,
        at,
        points: None,
    }
}

/// Opens `n` violations v-0… on site `site`, model `model(i)`, rule `rule`.
async fn open_on(store: &Store, n: usize, site: &str, model: impl Fn(usize) -> String, rule: u8) {
    let ops: Vec<ViolationOp> = (0..n)
        .map(|i| {
            let m = model(i);
            let mut v = Violation::open(
                series(site, &m),
                Scope::Series,
                rule,
                i as i64 + 1,
                vec![],
                baseline(),
            );
            v.id = format!("v-{site}-{m}-{rule}-{i}");
            // a page: rule 1 configured `critical` as an older setup would, else `error`
            let sev = if rule == 1 {
                Severity::Critical
            } else {
                Severity::Error
            };
            ViolationOp::Open(v.leading(sev))
        })
        .collect();
    assert_eq!(
        store
            .apply_violations(&ops, now_us())
            .await
            .unwrap()
            .opened
            .len(),
        n
    );
}

async fn wait_states(store: &Store, want: &str, n: usize) {
    for _ in 0..400 {
        let s = store.notifications().await.unwrap();
        if s.iter().filter(|x| x.2 == want).count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "not {n} notifications {want}: {:?}\ndeliveries: {:?}",
        store.notifications().await.unwrap(),
        store.deliveries(10).await.unwrap()
    );
}

/// Every violation id in the received webhook bodies, in order.
fn received_ids(r: &Receiver) -> Vec<String> {
    r.got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g.4["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|n| n["violation_id"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_retries_on_5xx_and_429_then_delivers() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let r = Receiver::default();
        *r.script.lock().unwrap() = vec![(500, None), (429, Some("1"))];
        let url = receiver(r.clone()).await;
        let running = start(&with_channel(db.url(), &url, 5)).await;
        open_violations(&running.store, 1).await;
        wait_states(&running.store, "delivered", 1).await;
        let got = r.got.lock().unwrap().clone();
        assert_eq!(got.len(), 3, "{backend:?}: 500, 429, then 200");
        assert!(
            got.iter().all(|g| g.3),
            "every request carries a valid signature"
        );
        assert!(
            got.iter().all(|g| g.0 == got[0].0),
            "the same delivery id on retries"
        );
        assert_eq!(got[0].1, "opened");
        let body = &got[2].4;
        assert_eq!(body["violation_id"], "v-lab-m-1-0");
        assert_eq!(body["violation"]["rule"], 1);
        assert_eq!(body["count"], 1);
        let n = &body["notifications"][0];
        assert_eq!(n["series"]["model"], "m");
        assert_eq!(n["baseline"]["center"], 100.0);
        assert_eq!(n["severity"], "critical");
        assert_eq!(
            body["dashboard_url"],
            "http://localhost:8080/violations?id=v-lab-m-1-0"
        );
        assert!(
            got[2].2 - got[1].2 >= Duration::from_millis(950),
            "Retry-After: 1 is honoured"
        );
        let mut log = running.store.deliveries(100).await.unwrap();
        log.reverse();
        let outcomes: Vec<(Option<i64>, &str)> = log
            .iter()
            .map(|d| (d.status_code, d.outcome.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (Some(500), "retry"),
                (Some(429), "retry"),
                (Some(200), "delivered")
            ]
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_ends_in_the_dead_letter_state() {
    let db = TestDb::new(Backend::Sqlite).await;
    let r = Receiver::default();
    *r.script.lock().unwrap() = vec![(500, None); 10];
    let url = receiver(r.clone()).await;
    let running = start(&with_channel(db.url(), &url, 2)).await;
    open_violations(&running.store, 1).await;
    wait_states(&running.store, "dead", 1).await;
    let log = running.store.deliveries(100).await.unwrap();
    assert_eq!(
        log.iter().map(|d| d.outcome.as_str()).collect::<Vec<_>>(),
        vec!["dead", "retry"]
    );
    assert!(log[0].error.as_deref().unwrap().contains("HTTP 500"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        r.got.lock().unwrap().len(),
        2,
        "no attempt after the dead letter"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_notification_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let r = Receiver::default();
    let url = receiver(r.clone()).await;
    let a = start(&with_channel(db.url(), &url, 5)).await;
    let b = start(&with_channel(db.url(), &url, 5)).await;
    // 40 groups (one model each) so both replicas have work at the same time
    open_on(&a.store, 40, "lab", |i| format!("m{i}"), 1).await;
    wait_states(&a.store, "delivered", 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = received_ids(&r);
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (40, 40), "each notification exactly once");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_across_a_restart_is_delivered_after() {
    let db = TestDb::new(Backend::Sqlite).await;
    // a port nobody listens on yet
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let url = format!("http://{addr}/hook");
    let running = start(&with_channel(db.url(), &url, 50)).await;
    open_violations(&running.store, 3).await;
    for _ in 0..200 {
        if running.store.deliveries(100).await.unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = running.store.deliveries(100).await.unwrap();
    assert!(!log.is_empty() && log.iter().all(|d| d.outcome.as_str() == "retry"));
    running.stop().await.unwrap();
    let r = Receiver::default();
    receiver_on(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        r.clone(),
    )
    .await;
    let running = start(&with_channel(db.url(), &url, 50)).await;
    wait_states(&running.store, "delivered", 3).await;
    let mut ids = received_ids(&r);
    ids.sort();
    assert_eq!(
        ids,
        vec!["v-lab-m-1-0", "v-lab-m-1-1", "v-lab-m-1-2"],
        "all three, in one digest"
    );
    assert_eq!(r.got.lock().unwrap().len(), 1);
    running.stop().await.unwrap();
}

fn with_kind(db_url: &str, url: &str, kind: &str) -> Config {
    let mut c = with_channel(db_url, url, 5);
    c.alerts.channels[0].kind = kind.into();
    c.alerts.channels[0].name = kind.into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_block_kit_one_message_per_second_and_429_retried() {
    let db = TestDb::new(Backend::Sqlite).await;
    let r = Receiver::default();
    *r.script.lock().unwrap() = vec![(429, Some("1"))];
    let url = receiver(r.clone()).await.replace("/hook", "/slack");
    let running = start(&with_kind(db.url(), &url, "slack")).await;
    // two models: two groups, two messages
    open_on(&running.store, 2, "lab", |i| format!("m{i}"), 1).await;
    wait_states(&running.store, "delivered", 2).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two messages, one retried after a 429");
    for w in got.windows(2) {
        assert!(
            w[1].2 - w[0].2 >= Duration::from_millis(900),
            "at most one message per second"
        );
    }
    let body = &got[2].4;
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.contains("latency_ms on lab/gpu-1 out of control (Nelson rule 1)"),
        "{header}"
    );
    assert!(
        body["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("more than 3σ from the centre line")
    );
    assert!(
        body["blocks"][2]["fields"][1]["text"]
            .as_str()
            .unwrap()
            .contains("centre 100.0"),
        "{body}"
    );
    assert!(
        body["blocks"][3]["elements"][0]["url"]
            .as_str()
            .unwrap()
            .contains("/violations?id=v-lab-m")
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
    let db = TestDb::new(Backend::Sqlite).await;
    let r = Receiver::default();
    let url = receiver(r.clone()).await.replace("/hook", "/pd");
    let running = start(&with_kind(db.url(), &url, "pagerduty")).await;
    open_violations(&running.store, 1).await;
    wait_states(&running.store, "delivered", 1).await;
    running
        .store
        .apply_violations(&[resolve_first(5)], now_us())
        .await
        .unwrap();
    wait_states(&running.store, "delivered", 2).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "not grouped: the resolve goes out at once");
    let (trigger, resolve) = (&got[0].4, &got[1].4);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], SECRET);
    assert_eq!(trigger["dedup_key"], "v-lab-m-1-0");
    assert_eq!(
        trigger["payload"]["severity"], "critical",
        "rule 1 maps to critical"
    );
    assert_eq!(trigger["payload"]["source"], "gpu-1");
    assert!(trigger["payload"]["summary"].as_str().unwrap().len() <= 1024);
    assert_eq!(
        trigger["payload"]["custom_details"]["baseline"]["center"],
        100.0
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], "v-lab-m-1-0");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_waits_batches_and_respects_the_group_interval() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let r = Receiver::default();
        let url = receiver(r.clone()).await;
        let mut cfg = with_channel(db.url(), &url, 5);
        cfg.alerts.group_wait = Duration::from_millis(400);
        cfg.alerts.group_interval = Duration::from_millis(1500);
        let running = start(&cfg).await;
        let t0 = Instant::now();
        open_on(&running.store, 2, "lab", |_| "a".into(), 1).await;
        open_on(&running.store, 1, "lab", |_| "b".into(), 2).await;
        // a third change for group a inside group_wait joins the first digest
        tokio::time::sleep(Duration::from_millis(100)).await;
        open_on(&running.store, 1, "lab", |_| "a".into(), 3).await;
        wait_for("two digests", || r.got.lock().unwrap().len() >= 2).await;
        let got = r.got.lock().unwrap().clone();
        assert!(
            got[0].2 - t0 >= Duration::from_millis(380),
            "group_wait held the first message"
        );
        let by_group = |g: &str| {
            got.iter()
                .filter(|x| x.4["group_key"] == g)
                .map(|x| x.4["count"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by_group("site=lab,model=a"),
            vec![3],
            "{backend:?}: one digest of three"
        );
        assert_eq!(by_group("site=lab,model=b"), vec![1]);
        let first_a = got
            .iter()
            .find(|x| x.4["group_key"] == "site=lab,model=a")
            .unwrap()
            .2;
        // a later change waits for the group interval
        open_on(&running.store, 1, "lab", |_| "a".into(), 5).await;
        wait_for("the follow-up", || r.got.lock().unwrap().len() >= 3).await;
        let got = r.got.lock().unwrap().clone();
        assert_eq!(got[2].4["group_key"], "site=lab,model=a");
        assert_eq!(got[2].4["count"], 1);
        assert!(
            got[2].2 - first_a >= Duration::from_millis(1400),
            "{backend:?}: group_interval respected ({:?})",
            got[2].2 - first_a
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_violations_are_repeated_after_the_repeat_interval_until_resolved() {
    let db = TestDb::new(Backend::Sqlite).await;
    let r = Receiver::default();
    let url = receiver(r.clone()).await;
    let mut cfg = with_channel(db.url(), &url, 5);
    cfg.alerts.group_interval = Duration::from_millis(200);
    cfg.alerts.repeat_interval = Duration::from_millis(1000);
    let running = start(&cfg).await;
    open_violations(&running.store, 1).await;
    wait_for("the reminder", || r.got.lock().unwrap().len() >= 2).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got[0].4["event"], "opened");
    assert_eq!(got[1].4["event"], "repeat");
    assert_eq!(got[1].4["violation_id"], "v-lab-m-1-0");
    assert!(got[1].2 - got[0].2 >= Duration::from_millis(950));
    running
        .store
        .apply_violations(&[resolve_first(5)], now_us())
        .await
        .unwrap();
    wait_for("the resolve", || {
        r.got
            .lock()
            .unwrap()
            .iter()
            .any(|g| g.4["event"] == "resolved")
    })
    .await;
    let n = r.got.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.got.lock().unwrap().len(), n, "no reminder once resolved");
    let log = running.store.deliveries(100).await.unwrap();
    assert!(log.iter().any(|d| d.outcome.as_str() == "repeated"));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_labels_in_order_with_continue_and_a_default() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (pager, eu, fallback) = (
        Receiver::default(),
        Receiver::default(),
        Receiver::default(),
    );
    let mut cfg = with_channel(db.url(), &receiver(pager.clone()).await, 5);
    cfg.alerts.channels[0].name = "pager".into();
    for (name, rcv) in [("eu", &eu), ("fallback", &fallback)] {
        let mut ch = cfg.alerts.channels[0].clone();
        ch.name = name.into();
        ch.url = receiver(rcv.clone()).await;
        cfg.alerts.channels.push(ch);
    }
    cfg.alerts.default_channels = Some(vec!["fallback".into()]);
    cfg.alerts.routes = vec![
        llmscope_alert::config::RouteConfig {
            matchers: [("severity".to_owned(), serde_json::json!("critical"))].into(),
            channels: vec!["pager".into()],
            continue_matching: true,
        },
        llmscope_alert::config::RouteConfig {
            matchers: [("site".to_owned(), serde_json::json!("eu"))].into(),
            channels: vec!["eu".into()],
            continue_matching: false,
        },
    ];
    let running = start(&cfg).await;
    open_on(&running.store, 1, "eu", |_| "m".into(), 1).await; // critical in eu → pager + eu
    open_on(&running.store, 1, "eu", |_| "n".into(), 2).await; // eu only
    open_on(&running.store, 1, "us", |_| "m".into(), 2).await; // default route
    open_on(&running.store, 1, "us", |_| "n".into(), 1).await; // critical in us → pager only
    wait_states(&running.store, "delivered", 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sorted = |r: &Receiver| {
        let mut v = received_ids(r);
        v.sort();
        v
    };
    assert_eq!(sorted(&pager), vec!["v-eu-m-1-0", "v-us-n-1-0"]);
    assert_eq!(sorted(&eu), vec!["v-eu-m-1-0", "v-eu-n-2-0"]);
    assert_eq!(sorted(&fallback), vec!["v-us-m-2-0"]);
    // the API lists them, the config routes first, then the default route
    let (_, routes) = admin(
        running.http_addr,
        reqwest::Method::GET,
        "/api/v1/routes",
        None,
    )
    .await;
    assert_eq!(routes[0]["channels"][0], "pager");
    assert_eq!(routes[0]["continue"], true);
    assert_eq!(routes[2]["default"], true);
    assert_eq!(routes[2]["channels"][0], "fallback");
    running.stop().await.unwrap();
}

async fn api(
    method: reqwest::Method,
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (code, json, _) = common::call(method, &format!("http://{addr}"), path, token, body).await;
    (code, json)
}

/// [`api`] with the admin token.
async fn admin(
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    api(method, addr, path, Some(ADMIN), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_from_the_api_suppress_and_record_then_expire() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let r = Receiver::default();
        let url = receiver(r.clone()).await;
        let mut cfg = with_channel(db.url(), &url, 5);
        cfg.alerts.group_wait = Duration::from_millis(300);
        let running = start(&cfg).await;
        let addr = running.http_addr;
        let ends = now_us() / 1000 + 3_600_000;
        let silence = serde_json::json!({"matchers": {"model": "m"}, "ends_at": ends,
            "comment": "rollout of m v2", "created_by": "deploy-pipeline"});
        // changes need a signed-in editor or a token
        let (code, body) = api(
            reqwest::Method::POST,
            addr,
            "/api/v1/silences",
            None,
            Some(silence.clone()),
        )
        .await;
        assert_eq!(code, 401, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("sign in"),
            "{body}"
        );
        let (code, body) = admin(addr, reqwest::Method::POST, "/api/v1/silences", Some(serde_json::json!({"matchers": {"colour": "red"}, "ends_at": ends, "comment": "x", "created_by": "y"}))).await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("matchers")),
            "{body}"
        );
        let (code, body) = admin(addr, reqwest::Method::POST, "/api/v1/silences", Some(serde_json::json!({"matchers": {"model": "m"}, "ends_at": "yesterday", "comment": "x", "created_by": "y"}))).await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("ends_at")),
            "{body}"
        );
        let (code, body) = admin(
            addr,
            reqwest::Method::POST,
            "/api/v1/silences",
            Some(silence),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["state"], "active");
        let sid = body["id"].as_str().unwrap().to_owned();
        // silenced at routing time: recorded as suppressed, never sent
        open_violations(&running.store, 1).await;
        wait_states(&running.store, "suppressed", 1).await;
        // another model is not silenced
        open_on(&running.store, 1, "lab", |_| "other".into(), 1).await;
        wait_states(&running.store, "delivered", 1).await;
        assert_eq!(received_ids(&r), vec!["v-lab-other-1-0"]);
        let log = running.store.deliveries(100).await.unwrap();
        let sup = log
            .iter()
            .find(|d| d.outcome.as_str() == "suppressed")
            .unwrap();
        assert!(
            sup.error.as_deref().unwrap().contains(&sid)
                && sup.error.as_deref().unwrap().contains("rollout of m v2")
        );
        let (_, list) = admin(
            addr,
            reqwest::Method::GET,
            "/api/v1/silences?state=active",
            None,
        )
        .await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(
            list[0]["created_by"], "admin-token (deploy-pipeline)",
            "the token acted; the stated name is kept beside it"
        );
        // expire: the next violation goes out
        let (code, body) = admin(
            addr,
            reqwest::Method::DELETE,
            &format!("/api/v1/silences/{sid}"),
            None,
        )
        .await;
        assert_eq!(
            (code, body["state"].as_str()),
            (200, Some("expired")),
            "{body}"
        );
        open_on(&running.store, 1, "lab", |_| "m".into(), 2).await;
        wait_for("delivery after expiry", || {
            received_ids(&r).contains(&"v-lab-m-2-0".to_owned())
        })
        .await;
        // a silence created while a group waits mutes what is pending
        let (code, _) = admin(addr, reqwest::Method::POST, "/api/v1/silences", Some(serde_json::json!({"matchers": {"model": "late"}, "ends_at": ends, "comment": "late", "created_by": "ci"}))).await;
        assert_eq!(code, 201);
        let (_, all) = admin(
            addr,
            reqwest::Method::GET,
            "/api/v1/silences?state=expired",
            None,
        )
        .await;
        assert_eq!(
            all.as_array().unwrap().len(),
            1,
            "the expired one is kept for the record"
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_created_during_group_wait_suppresses_pending() {
    let db = TestDb::new(Backend::Sqlite).await;
    let r = Receiver::default();
    let url = receiver(r.clone()).await;
    let mut cfg = with_channel(db.url(), &url, 5);
    cfg.alerts.group_wait = Duration::from_millis(1500);
    let running = start(&cfg).await;
    open_violations(&running.store, 1).await;
    // routed and waiting in its group (not silenced when it was routed)
    wait_states(&running.store, "pending", 1).await;
    let (code, _) = api(reqwest::Method::POST, running.http_addr, "/api/v1/silences", Some(ADMIN),
        Some(serde_json::json!({"matchers": {"site": "lab"}, "ends_at": now_us() / 1000 + 60_000, "comment": "maintenance", "created_by": "sre"}))).await;
    assert_eq!(code, 201);
    wait_states(&running.store, "suppressed", 1).await;
    assert!(r.got.lock().unwrap().is_empty());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_api_validates_hides_secrets_and_test_sends() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let r = Receiver::default();
        let url = receiver(r.clone()).await;
        let running = start(&with_channel(db.url(), &url, 5)).await;
        let addr = running.http_addr;
        let (code, body) = admin(addr, reqwest::Method::POST, "/api/v1/channels", Some(serde_json::json!({"name": "hook2", "kind": "webhook", "config": {"url": "ftp://x"}}))).await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("config")),
            "{body}"
        );
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("http:// or https://")
        );
        let (code, body) = admin(addr, reqwest::Method::POST, "/api/v1/channels", Some(serde_json::json!({"name": "hook2", "kind": "webhook", "config": {"url": url}, "secret": "hunter2", "colour": 1}))).await;
        assert_eq!(code, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
        let (code, body) = admin(addr, reqwest::Method::POST, "/api/v1/channels", Some(serde_json::json!({"name": "hook2", "kind": "webhook", "config": {"url": url}, "secret": "hunter2"}))).await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["has_secret"], true);
        let (code, _) = api(reqwest::Method::GET, addr, "/api/v1/channels", None, None).await;
        assert_eq!(code, 401, "reading channels needs a session or a token");
        let (_, list) = admin(addr, reqwest::Method::GET, "/api/v1/channels", None).await;
        let text = list.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains(SECRET),
            "no secret in {text}"
        );
        assert_eq!(list.as_array().unwrap().len(), 2);
        // config channels are read-only through the API
        let (code, _) = admin(addr, reqwest::Method::DELETE, "/api/v1/channels/ops", None).await;
        assert_eq!(code, 409);
        // test send returns the receiver's real answer
        *r.script.lock().unwrap() = vec![(503, None)];
        let (code, body) = admin(
            addr,
            reqwest::Method::POST,
            "/api/v1/channels/hook2/test",
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(
            (body["ok"].as_bool(), body["status"].as_u64()),
            (Some(false), Some(503)),
            "{body}"
        );
        assert_eq!(body["response"], "scripted failure");
        let (_, body) = admin(
            addr,
            reqwest::Method::POST,
            "/api/v1/channels/hook2/test",
            None,
        )
        .await;
        assert_eq!(
            (body["ok"].as_bool(), body["status"].as_u64()),
            (Some(true), Some(200)),
            "{body}"
        );
        let got = r.got.lock().unwrap().clone();
        let last = got.last().unwrap();
        assert_eq!(last.1, "test");
        // signed with the API channel's own secret: the receiver's SECRET check fails
        assert!(!last.3);
        // routes must name existing channels
        let (code, body) = admin(
            addr,
            reqwest::Method::POST,
            "/api/v1/routes",
            Some(serde_json::json!({"matchers": {"site": "eu"}, "channels": ["nope"]})),
        )
        .await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("channels[0]")),
            "{body}"
        );
        let (code, body) = admin(
            addr,
            reqwest::Method::POST,
            "/api/v1/routes",
            Some(serde_json::json!({"matchers": {"site": "eu"}, "channels": ["hook2"]})),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        let (code, _) = admin(
            addr,
            reqwest::Method::DELETE,
            &format!("/api/v1/routes/{id}"),
            None,
        )
        .await;
        assert_eq!(code, 204);
        let (code, _) = admin(
            addr,
            reqwest::Method::DELETE,
            "/api/v1/channels/hook2",
            None,
        )
        .await;
        assert_eq!(code, 204);
        let (code, _) = api(
            reqwest::Method::DELETE,
            addr,
            "/api/v1/channels/hook2",
            Some("wrong"),
            None,
        )
        .await;
        assert_eq!(code, 401);
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

/// A running aiosmtpd (see tests/peers/smtp).
struct Smtp {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(tls: &str, user: Option<(&str, &str)>) -> (Smtp, Option<String>) {
    use std::io::BufRead;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/smtp");
    let setup = std::process::Command::new(root.join("setup.sh"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.path().join("mail.jsonl");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(root.join("smtp_server.py"))
        .args(["--port", &port.to_string(), "--tls", tls, "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped());
    let mut ca = None;
    if tls != "none" {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        cmd.arg("--cert").arg(dir.path().join("cert.pem"));
        cmd.arg("--key").arg(dir.path().join("key.pem"));
        ca = Some(dir.path().join("cert.pem").display().to_string());
    }
    if let Some((u, p)) = user {
        cmd.args(["--user", u, "--password", p]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    (
        Smtp {
            child,
            port,
            out,
            _dir: dir,
        },
        ca,
    )
}

fn mails(s: &Smtp) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&s.out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A collector with one email channel to `server` (user `alerts`, the given password).
fn mail_config(
    db_url: &str,
    server: &Smtp,
    ca: Option<String>,
    tls: &str,
    password: &str,
) -> Config {
    let mut cfg = config(db_url);
    cfg.alerts = AlertsConfig {
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        channels: vec![ChannelConfig {
            name: "mail".into(),
            kind: "email".into(),
            host: "127.0.0.1".into(),
            port: Some(server.port),
            tls: Some(tls.into()),
            username: Some("alerts".into()),
            secret: Some(Secret(password.into())),
            from: "LLMscope <llmscope@example.com>".into(),
            to: vec![
                "oncall@example.com".into(),
                "ml-platform@example.com".into(),
            ],
            ca_file: ca,
            ..ChannelConfig::default()
        }],
        ..AlertsConfig::default()
    };
    cfg.admin_token = Some(Secret(ADMIN.into()));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_and_implicit_tls_with_auth() {
    for tls in ["starttls", "implicit"] {
        let (server, ca) = smtp(tls, Some(("alerts", "pa55")));
        let db = TestDb::new(Backend::Sqlite).await;
        let cfg = mail_config(db.url(), &server, ca, tls, "pa55");
        let running = start(&cfg).await;
        open_violations(&running.store, 2).await;
        wait_states(&running.store, "delivered", 2).await;
        let got = mails(&server);
        assert_eq!(got.len(), 1, "{tls}: one digest email");
        let m = &got[0];
        assert_eq!(m["tls"], true, "{tls}");
        assert_eq!(m["auth_user"], "alerts");
        assert_eq!(m["mail_from"], "llmscope@example.com");
        assert_eq!(m["rcpt_tos"].as_array().unwrap().len(), 2);
        let data = m["data"].as_str().unwrap();
        assert!(
            data.contains("Subject: [LLMscope] LLMscope violations: 2 opened"),
            "{data}"
        );
        assert!(
            data.contains("Content-Type: text/plain") && data.contains("Content-Type: text/html")
        );
        assert!(data.contains("v-lab-m-1-1"));
        let log = running.store.deliveries(10).await.unwrap();
        assert_eq!(log[0].status_code, Some(250), "SMTP reply recorded");
        // test send answers with the server's reply
        let (code, body) = api(
            reqwest::Method::POST,
            running.http_addr,
            "/api/v1/channels/mail/test",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(body["ok"], true, "{body}");
        assert!(
            body["response"].as_str().unwrap().starts_with("250"),
            "{body}"
        );
        running.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_with_a_wrong_password_is_retried_then_dead() {
    let (server, ca) = smtp("starttls", Some(("alerts", "right")));
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = mail_config(db.url(), &server, ca, "starttls", "wrong");
    cfg.alerts.retry_base = Duration::from_millis(50);
    cfg.alerts.retry_max = Duration::from_millis(100);
    cfg.alerts.channels[0].max_attempts = 2;
    let running = start(&cfg).await;
    open_violations(&running.store, 1).await;
    wait_states(&running.store, "dead", 1).await;
    let log = running.store.deliveries(10).await.unwrap();
    assert_eq!(log[0].status_code, Some(535), "{log:?}");
    assert!(log[0].error.as_deref().unwrap().contains("smtp"), "{log:?}");
    assert!(mails(&server).is_empty());
    running.stop().await.unwrap();
}
