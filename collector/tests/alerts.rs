//! Alert delivery through a real HTTP receiver: signed webhooks, retries honouring 5xx and
//! 429 `Retry-After`, the delivery log, the dead-letter state, exactly-once delivery with two
//! replicas on one PostgreSQL, and nothing lost across a restart while the receiver is down.

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
use llmscope_collector::alert::{AlertsConfig, ChannelConfig};
use llmscope_collector::config::Config;
use llmscope_collector::store::live::{NewViolation, ViolationOp};
use llmscope_collector::store::{Store, now_us};
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
            secret: Some(SECRET.into()),
            secret_env: None,
            max_attempts,
            severity: Default::default(),
        }],
        ..AlertsConfig::default()
    };
    c
}

async fn open_violations(store: &Store, n: usize) {
    let ops: Vec<ViolationOp> = (0..n)
        .map(|i| {
            ViolationOp::Open(NewViolation {
                id: format!("v-{i}"),
                series_key: "series|lab|gpu-1|ollama|m|latency_ms".into(),
                scope: "series".into(),
                site: "lab".into(),
                host: "gpu-1".into(),
                provider: "ollama".into(),
                model: "m".into(),
                metric: "latency_ms".into(),
                rule: 1,
                opened_at: i as i64 + 1,
                last_point_at: i as i64 + 1,
                points: "[]".into(),
                baseline: r#"{"center":100.0}"#.into(),
                context: "{}".into(),
            })
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
        "not {n} notifications {want}: {:?}",
        store.notifications().await.unwrap()
    );
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
        assert_eq!(got[2].4["violation_id"], "v-0");
        assert_eq!(got[2].4["violation"]["rule"], 1);
        assert_eq!(
            got[2].4["dashboard_url"],
            "http://localhost:8080/violations/v-0"
        );
        assert!(
            got[2].2 - got[1].2 >= Duration::from_millis(950),
            "Retry-After: 1 is honoured"
        );
        let log = running.store.deliveries().await.unwrap();
        let outcomes: Vec<(Option<i64>, &str)> = log.iter().map(|d| (d.2, d.3.as_str())).collect();
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
    let log = running.store.deliveries().await.unwrap();
    assert_eq!(
        log.iter().map(|d| d.3.as_str()).collect::<Vec<_>>(),
        vec!["retry", "dead"]
    );
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
    open_violations(&a.store, 40).await;
    wait_states(&a.store, "delivered", 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = r.got.lock().unwrap().clone();
    let mut ids: Vec<String> = got.iter().map(|g| g.0.clone()).collect();
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
        if running.store.deliveries().await.unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        running
            .store
            .deliveries()
            .await
            .unwrap()
            .iter()
            .all(|d| d.3 == "retry")
    );
    running.stop().await.unwrap();
    let r = Receiver::default();
    receiver_on(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        r.clone(),
    )
    .await;
    let running = start(&with_channel(db.url(), &url, 50)).await;
    wait_states(&running.store, "delivered", 3).await;
    assert_eq!(r.got.lock().unwrap().len(), 3);
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
    open_violations(&running.store, 2).await;
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
        header.contains("m latency_ms on gpu-1 is out of control (rule 1)"),
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
            .ends_with("/violations/v-0")
            || body["blocks"][3]["elements"][0]["url"]
                .as_str()
                .unwrap()
                .ends_with("/violations/v-1")
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
        .apply_violations(
            &[ViolationOp::Resolve {
                id: "v-0".into(),
                at: 5,
                points: None,
            }],
            now_us(),
        )
        .await
        .unwrap();
    wait_states(&running.store, "delivered", 2).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (trigger, resolve) = (&got[0].4, &got[1].4);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], SECRET);
    assert_eq!(trigger["dedup_key"], "v-0");
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
    assert_eq!(resolve["dedup_key"], "v-0");
    running.stop().await.unwrap();
}
