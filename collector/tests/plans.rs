//! SLOs, prices, cost and budgets through the real collector on both backends: definitions
//! from the file and the API (errors name the field), attainment and burn rates counted from
//! ingested samples, cost arithmetic with token prices and GPU hours, and burn-rate and
//! budget alerts that open once, notify a real webhook receiver like every other violation,
//! and resolve once.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{BACKENDS, TestDb, call, config, ingest_token, now_ns, push_all};
use llmscope_collector::config::Secret;
use llmscope_model::plan::{Budget, Price, Slo};
use llmscope_proto::v1;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "plans-admin-token";
const MIN_NS: i64 = 60_000_000_000;

type Got = Arc<Mutex<Vec<Value>>>;

async fn hook(State(got): State<Got>, body: Bytes) -> &'static str {
    if let Ok(v) = serde_json::from_slice(&body) {
        got.lock().unwrap().push(v);
    }
    "ok"
}

async fn receiver(got: Got) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let app = Router::new().route("/hook", post(hook)).with_state(got);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// (event, violation id) of every notification received.
fn events(got: &Got) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|b| b["notifications"].as_array().cloned().unwrap_or_default())
        .map(|n| {
            (
                n["event"].as_str().unwrap_or("").to_owned(),
                n["violation_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn call_sample(model: &str, host: &str, ts: i64, ttft: f64, ok: bool) -> v1::Sample {
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: ts,
        site: "lab".into(),
        host: host.into(),
        provider: "vllm".into(),
        model: model.into(),
        source: v1::Source::Proxy as i32,
        latency_ms: ttft + 500.0,
        ttft_ms: Some(ttft),
        tokens_in: Some(1_000),
        tokens_out: Some(500),
        status: if ok {
            v1::CallStatus::Ok
        } else {
            v1::CallStatus::Error
        } as i32,
        http_status: Some(if ok { 200 } else { 500 }),
        error: if ok {
            String::new()
        } else {
            "upstream 500".into()
        },
        ..Default::default()
    }
}

async fn until<F: AsyncFnMut() -> Option<T>, T>(what: &str, secs: u64, mut f: F) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slos_cost_and_budgets_alert_once_and_resolve_once() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let got: Got = Arc::default();
        let hook_url = receiver(got.clone()).await;
        let mut cfg = config(db.url());
        cfg.admin_token = Some(Secret(ADMIN.into()));
        cfg.api.rollup_interval = Duration::from_millis(100);
        cfg.api.rollup_lag = Duration::from_millis(800);
        cfg.spc.silence_interval = Duration::from_millis(200);
        cfg.alerts.poll_interval = Duration::from_millis(50);
        cfg.alerts.group_interval = Duration::from_millis(200);
        cfg.alerts.channels = vec![llmscope_alert::config::ChannelConfig {
            name: "ops".into(),
            kind: "webhook".into(),
            url: hook_url,
            ..Default::default()
        }];
        cfg.alerts.deny_private_targets = false;
        // from the file: an error-rate SLO, a price, a budget
        cfg.slo = vec![Slo {
            id: String::new(),
            name: "chat errors".into(),
            site: "lab".into(),
            model: "chat".into(),
            source: String::new(),
            metric: "errors".into(),
            threshold: None,
            objective: 0.99,
            window_days: 30,
            origin: String::new(),
        }];
        cfg.price = vec![Price {
            provider: "vllm".into(),
            model: "chat".into(),
            input_per_m: 1.0,
            output_per_m: 2.0,
            gpu_hour: 3.0,
            gpus: 2,
            origin: String::new(),
        }];
        cfg.budget = vec![Budget {
            id: String::new(),
            name: "lab chat".into(),
            site: "lab".into(),
            model: "chat".into(),
            monthly: 1.0,
            origin: String::new(),
        }];
        let running = common::start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;

        // the file's definitions are listed and read-only
        let (code, r, text) = call(Method::GET, &base, "/api/v1/slos", Some(ADMIN), None).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(r["slos"][0]["origin"], "config", "{text}");
        let file_id = r["slos"][0]["id"].as_str().unwrap().to_owned();
        let (code, _, text) = call(
            Method::DELETE,
            &base,
            &format!("/api/v1/slos/{file_id}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 409, "{text}");
        assert!(text.contains("configuration file"), "{text}");

        // bad SLOs name the field
        for (body, field) in [
            (
                json!({"name": "x", "metric": "ttft_ms", "objective": 0.99}),
                "threshold",
            ),
            (
                json!({"name": "x", "metric": "ttft_ms", "threshold": 800, "objective": 99}),
                "objective",
            ),
            (
                json!({"name": "x", "metric": "tokens_per_s", "threshold": 1, "objective": 0.9}),
                "metric",
            ),
            (
                json!({"name": "x", "metric": "errors", "objective": 0.9, "window_days": 365}),
                "window_days",
            ),
            (
                json!({"name": "x", "metric": "errors", "objective": 0.9, "colour": 1}),
                "body",
            ),
        ] {
            let (code, r, text) =
                call(Method::POST, &base, "/api/v1/slos", Some(ADMIN), Some(body)).await;
            assert_eq!(code, 400, "{text}");
            assert!(
                r["field"]
                    .as_str()
                    .is_some_and(|f| f == field || (field == "body" && text.contains("colour"))),
                "{field}: {text}"
            );
        }

        // a TTFT SLO through the API: 99 % of calls with TTFT ≤ 800 ms
        let (code, r, text) = call(
            Method::POST,
            &base,
            "/api/v1/slos",
            Some(ADMIN),
            Some(
                json!({"name": "chat ttft", "site": "lab", "model": "chat", "metric": "ttft_ms",
                        "threshold": 800, "objective": 0.99, "window_days": 7}),
            ),
        )
        .await;
        assert_eq!(code, 201, "{text}");
        let slo_id = r["id"].as_str().unwrap().to_owned();

        // 50 minutes of calls, one a minute on two hosts, half of them slow, one failure
        let now = now_ns();
        let mut first = Vec::new();
        for i in 0..50i64 {
            let ts = now - (50 - i) * MIN_NS;
            for host in ["gpu-1", "gpu-2"] {
                let slow = i % 2 == 0;
                first.push(call_sample(
                    "chat",
                    host,
                    ts,
                    if slow { 2_000.0 } else { 300.0 },
                    !(i == 7 && host == "gpu-1"),
                ));
            }
        }
        push_all(running.grpc_addr, &token, first.clone(), vec![]).await;

        // attainment: 100 calls, 49 ok-and-slow... count from what was pushed
        let ok: Vec<_> = first
            .iter()
            .filter(|s| s.status == v1::CallStatus::Ok as i32)
            .collect();
        let slow = ok.iter().filter(|s| s.ttft_ms.unwrap() > 800.0).count() as i64;
        let r = until("slo counts", 30, async || {
            let (_, r, _) = call(Method::GET, &base, "/api/v1/slos", Some(ADMIN), None).await;
            let s = r["slos"]
                .as_array()?
                .iter()
                .find(|s| s["id"] == slo_id.as_str())?
                .clone();
            (s["total"] == ok.len() as i64).then_some(r)
        })
        .await;
        let s = r["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == slo_id.as_str())
            .unwrap();
        assert_eq!(s["bad"], slow);
        let att = 1.0 - slow as f64 / ok.len() as f64;
        assert!((s["attainment"].as_f64().unwrap() - att).abs() < 1e-12);
        assert!(
            (s["error_budget_remaining"].as_f64().unwrap() - (1.0 - (1.0 - att) / 0.01)).abs()
                < 1e-9
        );
        let errs = r["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "chat errors")
            .unwrap();
        assert_eq!(
            (errs["total"].as_i64(), errs["bad"].as_i64()),
            (Some(100), Some(1))
        );

        // half the calls slow burns the TTFT budget 50× over 1 h and 5 min: one fast burn alert
        let burn = until("an slo_burn violation", 30, async || {
            let (_, r, _) = call(
                Method::GET,
                &base,
                "/api/v1/violations?detector=slo_burn",
                Some(ADMIN),
                None,
            )
            .await;
            let v = r["items"].as_array()?.clone();
            (!v.is_empty()).then_some(v)
        })
        .await;
        assert_eq!(burn.len(), 1, "{burn:?}");
        // fast (1 h and 5 min) when the check saw the newest minutes, slow (6 h and 30 min) when
        // it ran while the oldest of the batches were counted: both burn far over their limit
        assert!(burn[0]["rule"] == 1 || burn[0]["rule"] == 2, "{burn:?}");
        assert!(
            burn[0]["key"]
                .as_str()
                .is_some_and(|k| k.contains("slo:chat ttft")),
            "{burn:?}"
        );
        let burn_id = burn[0]["id"].as_str().unwrap().to_owned();

        // cost: tokens × prices + host-hours × GPU price, summed over what was pushed
        let hours: BTreeSet<(String, i64)> = first
            .iter()
            .map(|s| {
                (
                    s.host.clone(),
                    (s.ts_unix_nanos / 1_000).div_euclid(3_600_000_000),
                )
            })
            .collect();
        let n = first.len() as f64;
        let want = n * 1_000.0 / 1e6 * 1.0 + n * 500.0 / 1e6 * 2.0 + hours.len() as f64 * 3.0 * 2.0;
        let (code, r, text) = call(
            Method::GET,
            &base,
            "/api/v1/cost?period=hour",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200, "{text}");
        let total = r["total"].as_f64().unwrap();
        assert!((total - want).abs() < 1e-9, "{total} vs {want}: {text}");
        let line = &r["lines"][0];
        let per_k = line["cost"].as_f64().unwrap()
            / (line["tokens_in"].as_f64().unwrap() + line["tokens_out"].as_f64().unwrap())
            * 1000.0;
        assert!((line["cost_per_1k_tokens"].as_f64().unwrap() - per_k).abs() < 1e-12);
        let (code, _, csv) = call(
            Method::GET,
            &base,
            "/api/v1/cost?format=csv",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert!(
            csv.starts_with("period_ms,site,provider,model,calls,"),
            "{csv}"
        );

        // the month's forecast (≥ the spend) is over a budget of 1.0: one budget alert
        let budget = until("a budget violation", 30, async || {
            let (_, r, _) = call(
                Method::GET,
                &base,
                "/api/v1/violations?detector=budget",
                Some(ADMIN),
                None,
            )
            .await;
            let v = r["items"].as_array()?.clone();
            (!v.is_empty()).then_some(v)
        })
        .await;
        assert_eq!(budget.len(), 1);
        let budget_id = budget[0]["id"].as_str().unwrap().to_owned();

        // both notified through the webhook route like any violation
        until("open notifications", 30, async || {
            let e = events(&got);
            (e.contains(&("opened".into(), burn_id.clone()))
                && e.contains(&("opened".into(), budget_id.clone())))
            .then_some(())
        })
        .await;

        // good calls in the last minutes: the 5-minute burn falls (fast off) and the
        // 30-minute one too (slow off: 30 slow of 60 + 1 200 calls is 2.4 %, a burn of 2.4 < 6)
        let good: Vec<_> = (0..1_200i64)
            .map(|i| {
                call_sample(
                    "chat",
                    "gpu-1",
                    now_ns() - 240_000_000_000 + i * 200_000_000,
                    200.0,
                    true,
                )
            })
            .collect();
        push_all(running.grpc_addr, &token, good, vec![]).await;
        // the file's price is read-only through the API
        let (code, _, text) = call(
            Method::PUT,
            &base,
            "/api/v1/prices",
            Some(ADMIN),
            Some(json!({"provider": "vllm", "model": "chat", "input_per_m": 0.0001})),
        )
        .await;
        assert_eq!(code, 409, "{text}");
        until("the burn alert resolved", 30, async || {
            let (_, r, _) = call(
                Method::GET,
                &base,
                &format!("/api/v1/violations/{burn_id}"),
                Some(ADMIN),
                None,
            )
            .await;
            (r["status"] == "resolved").then_some(())
        })
        .await;
        running.stop().await.unwrap();

        // restarted without the budget: its alert resolves; the SLOs' minutes are kept
        let mut cfg2 = cfg.clone();
        cfg2.budget.clear();
        let running = common::start(&cfg2).await;
        let base = format!("http://{}", running.http_addr);
        until("the budget alert resolved", 30, async || {
            let (_, r, _) = call(
                Method::GET,
                &base,
                &format!("/api/v1/violations/{budget_id}"),
                Some(ADMIN),
                None,
            )
            .await;
            (r["status"] == "resolved").then_some(())
        })
        .await;
        // an API budget: create, list with its forecast, delete
        let (code, r, text) = call(
            Method::POST,
            &base,
            "/api/v1/budgets",
            Some(ADMIN),
            Some(json!({"name": "big", "site": "lab", "monthly": 1e9})),
        )
        .await;
        assert_eq!(code, 201, "{text}");
        assert_eq!(r["over"], false, "{text}");
        assert!(r["spent"].as_f64().unwrap() > 0.0, "{text}");
        let (code, _, text) = call(
            Method::POST,
            &base,
            "/api/v1/budgets",
            Some(ADMIN),
            Some(json!({"name": "big", "monthly": 5})),
        )
        .await;
        assert_eq!(code, 409, "{text}");
        let (code, _, csv) = call(
            Method::GET,
            &base,
            "/api/v1/budgets?format=csv",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert!(csv.starts_with("name,site,model,monthly,spent"), "{csv}");
        // nothing reopens: each alert opened once and resolved once
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (d, id) in [("slo_burn", &burn_id), ("budget", &budget_id)] {
            let (_, r, _) = call(
                Method::GET,
                &base,
                &format!("/api/v1/violations?detector={d}"),
                Some(ADMIN),
                None,
            )
            .await;
            let v = r["items"].as_array().unwrap();
            assert_eq!(v.len(), 1, "{d}: {v:?}");
            assert_eq!(v[0]["id"], id.as_str());
            assert_eq!(v[0]["status"], "resolved");
        }
        until("resolved notifications", 30, async || {
            let e = events(&got);
            (e.iter().filter(|x| x.1 == burn_id).count() == 2
                && e.contains(&("resolved".into(), burn_id.clone())))
            .then_some(())
        })
        .await;
        let e = events(&got);
        assert_eq!(
            e.iter()
                .filter(|x| *x == &("opened".to_owned(), burn_id.clone()))
                .count(),
            1,
            "{e:?}"
        );
        running.stop().await.unwrap();
    }
}

/// Capacity headroom from hours whose load, probe TTFT p95 and GPU use follow known lines:
/// hour h carries n = 10 + 5h probes of 3 600 output tokens (n tokens/s), each with TTFT
/// 100 + 10·n ms; GPU use is 10 + n %. TTFT reaches 800 ms at 70 tokens/s, the GPUs 100 %
/// at 90: headroom over the busiest hour (45 tokens/s) is 70/45 − 1 = 55.6 %, limited by
/// the SLO (made through the API, so the default limit comes from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_headroom_follows_the_fitted_lines() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let mut cfg = config(db.url());
        cfg.admin_token = Some(Secret(ADMIN.into()));
        cfg.api.rollup_interval = Duration::from_millis(100);
        cfg.api.rollup_lag = Duration::from_millis(800);
        cfg.spc.enabled = false;
        let running = common::start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;
        let hour = 3_600_000_000_000i64;
        let this_hour = now_ns().div_euclid(hour) * hour;
        let (mut samples, mut telemetry) = (Vec::new(), Vec::new());
        for h in 0..8i64 {
            let start = this_hour - (8 - h) * hour;
            let n = 10 + 5 * h;
            for i in 0..n {
                let mut s = call_sample(
                    "big",
                    "gpu-1",
                    start + i * 60_000_000_000,
                    100.0 + 10.0 * n as f64,
                    true,
                );
                s.source = v1::Source::Probe as i32;
                s.tokens_out = Some(3_600);
                samples.push(s);
            }
            let mut t = common::telemetry("lab", "gpu-1", 2);
            t.ts_unix_nanos = start + 1_800_000_000_000;
            for g in &mut t.gpus {
                g.util_pct = Some(10.0 + n as f64);
            }
            telemetry.push(t);
        }
        push_all(running.grpc_addr, &token, samples, telemetry).await;
        let (code, _, text) = call(
            Method::POST,
            &base,
            "/api/v1/slos",
            Some(ADMIN),
            Some(json!({"name": "big ttft", "site": "lab", "model": "big", "metric": "ttft_ms", "threshold": 800, "objective": 0.95})),
        )
        .await;
        assert_eq!(code, 201, "{text}");
        let r = until("capacity over 8 hours", 30, async || {
            let (_, r, _) = call(
                Method::GET,
                &base,
                "/api/v1/capacity?days=1",
                Some(ADMIN),
                None,
            )
            .await;
            let h = r["hosts"].as_array()?.first()?.clone();
            (h["hours"] == 8 && h["headroom_pct"].is_number()).then_some(r)
        })
        .await;
        let h = &r["hosts"][0];
        assert_eq!(h["slo_ttft_ms"], 800.0, "{h}");
        assert!(
            (h["peak_tokens_per_s"].as_f64().unwrap() - 45.0).abs() < 1e-9,
            "{h}"
        );
        let at_slo = h["tokens_per_s_at_slo"].as_f64().unwrap();
        assert!((at_slo - 70.0).abs() / 70.0 < 0.02, "{h}");
        let at_gpu = h["tokens_per_s_at_full_gpu"].as_f64().unwrap();
        assert!((at_gpu - 90.0).abs() < 1e-6, "{h}");
        let head = h["headroom_pct"].as_f64().unwrap();
        assert!(
            (head - (70.0 / 45.0 - 1.0) * 100.0).abs() < 4.0,
            "{head}: {h}"
        );
        assert_eq!(h["limited_by"], "slo");
        assert_eq!(r["sites"][0]["headroom_pct"], h["headroom_pct"]);
        let (code, _, csv) = call(
            Method::GET,
            &base,
            "/api/v1/capacity?days=1&format=csv",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert!(
            csv.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("lab,gpu-1,vllm,big,8,45")),
            "{csv}"
        );
        running.stop().await.unwrap();
    }
}
