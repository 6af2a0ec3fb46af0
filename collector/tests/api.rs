//! The REST API on both backends, through a real collector: data pushed over gRPC, the
//! engine opening a violation, then every read endpoint (inventory, points raw and
//! downsampled with flagged points kept, telemetry, compare, violations with pagination,
//! detail, CSV), the admin endpoints (acknowledge, resolve, tokens, sites, rules,
//! re-baseline), errors that name the field, OpenAPI, SSE and the dashboard fallback.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    BACKENDS, TestDb, call, config, enc, ingest_token, now_ns, push_all, series_samples, start,
};
use llmscope_collector::config::Secret;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "api-test-admin";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// Deterministic in-control noise around 100 (sum of uniforms from an LCG).
fn noise(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ n as u64;
    (0..n)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..4 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            100.0 + (s - 2.0) * 3.0
        })
        .collect()
}

async fn get(base: &str, path: &str) -> Value {
    let (code, v, text) = call(Method::GET, base, path, Some(ADMIN), None).await;
    assert_eq!(code, 200, "GET {path}: {text}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_end_to_end() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let mut cfg = config(db.url());
        cfg.spc.baseline_points = 20;
        cfg.spc.arl0 = 1000.0; // what a 20-point Phase I can deliver
        cfg.api.rollup_interval = Duration::from_millis(100);
        cfg.api.rollup_lag = Duration::ZERO;
        cfg.admin_token = Some(Secret(ADMIN.into()));
        // rule 1 pages here (by default it only marks the chart)
        cfg.alerts.severity.insert("1".into(), "critical".into());
        let running = start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;
        // 40 in-control points, then one far beyond 3σ; two hours ago, one per second
        let t0 = now_ns() - 7_200_000_000_000;
        let mut values: Vec<f64> = noise(40);
        values.push(400.0);
        values.extend(noise(19));
        let mut tele = common::telemetry("lab", "gpu-1", 1);
        tele.ts_unix_nanos = t0 + 40_000_000_000;
        push_all(
            running.grpc_addr,
            &token,
            series_samples("llama3", &values, t0),
            vec![tele],
        )
        .await;
        push_all(
            running.grpc_addr,
            &token,
            series_samples(XSS, &[10.0, 11.0], t0),
            vec![],
        )
        .await;
        push_all(
            running.grpc_addr,
            &token,
            series_samples("=HYPERLINK(\"x\")", &[5.0], t0),
            vec![],
        )
        .await;
        let key = "series|lab|gpu-1|ollama|llama3|latency_ms";
        // the rollup job and the engine catch up
        let mut series = Value::Null;
        for _ in 0..200 {
            series = get(&base, "/api/v1/series?site=lab").await;
            let ok = series
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["key"] == key && s["status"] == "violation");
            if ok && series.as_array().unwrap().len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = series
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("{backend:?}: {series}"));
        assert_eq!(s["status"], "violation", "{s}");
        assert_eq!(s["open_violations"], 1);
        assert!(
            s["baseline"]["ucl"].as_f64().unwrap() > 101.0
                && s["baseline"]["ucl"].as_f64().unwrap() < 120.0,
            "{s}"
        );
        assert!(
            series.as_array().unwrap().iter().any(|s| s["model"] == XSS),
            "labels come back verbatim"
        );
        // `last_value` is the value of the newest point (once the rollup has reached it)
        let last_ms = (t0 + 59_000_000_000) / 1_000_000;
        let mut s = s.clone();
        for _ in 0..200 {
            if s["last_ts"] == last_ms {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = get(&base, "/api/v1/series?site=lab")
                .await
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["key"] == key)
                .unwrap()
                .clone();
        }
        assert_eq!(s["last_ts"], last_ms, "{s}");
        assert_eq!(s["last_value"], values[59], "{s}");

        // inventory
        let sites = get(&base, "/api/v1/sites").await;
        assert_eq!(sites[0]["name"], "lab");
        assert_eq!(sites[0]["open_violations"], 1);
        assert_eq!(
            get(&base, "/api/v1/hosts?site=lab").await[0]["host"],
            "gpu-1"
        );
        assert_eq!(
            get(&base, "/api/v1/models?site=lab")
                .await
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let ov = get(&base, "/api/v1/overview").await;
        let cell = ov["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == "llama3")
            .unwrap();
        assert_eq!(cell["status"], "violation");
        assert!(!cell["spark"].as_array().unwrap().is_empty());

        // points: raw, with flagged points
        let from_ms = t0 / 1_000_000 - 1000;
        let to_ms = from_ms + 120_000;
        let p = get(
            &base,
            &format!(
                "/api/v1/series/points?key={}&from={from_ms}&to={to_ms}",
                enc(key)
            ),
        )
        .await;
        assert_eq!(p["downsampled"], false);
        assert_eq!(p["points"].as_array().unwrap().len(), 60);
        let flagged = p["flagged"].as_array().unwrap();
        assert_eq!(flagged.len(), 1, "{p}");
        assert_eq!(flagged[0]["value"], 400.0);
        assert_eq!(flagged[0]["rules"][0], 1);
        let vid = flagged[0]["violation_id"].as_str().unwrap().to_owned();
        let flagged_point = p["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["value"] == 400.0)
            .unwrap();
        assert_eq!(flagged_point["flags"][0], 1);
        // downsampled: buckets cover every point, the flagged point is still there
        let d = get(
            &base,
            &format!(
                "/api/v1/series/points?key={}&from={from_ms}&to={to_ms}&max_points=10",
                enc(key)
            ),
        )
        .await;
        assert_eq!(d["downsampled"], true);
        let buckets = d["buckets"].as_array().unwrap();
        assert!(buckets.len() <= 11, "{}", buckets.len());
        assert_eq!(
            buckets
                .iter()
                .map(|b| b["count"].as_i64().unwrap())
                .sum::<i64>(),
            60
        );
        assert_eq!(
            buckets
                .iter()
                .map(|b| b["max"].as_f64().unwrap())
                .fold(0.0, f64::max),
            400.0
        );
        assert_eq!(d["flagged"].as_array().unwrap().len(), 1);
        // a 30-day window reads the minute rollups
        let m = get(
            &base,
            &format!(
                "/api/v1/series/points?key={}&from={}&max_points=10",
                enc(key),
                now_ns() / 1_000_000 - 30 * 86_400_000
            ),
        )
        .await;
        assert_eq!(m["downsampled"], true);
        assert_eq!(
            m["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_i64().unwrap())
                .sum::<i64>(),
            60
        );
        assert_eq!(m["flagged"].as_array().unwrap().len(), 1);
        // compare and telemetry
        let c = get(
            &base,
            &format!(
                "/api/v1/compare?key={}&key={}&from={from_ms}&to={to_ms}",
                enc(key),
                enc(&format!("series|lab|gpu-1|ollama|{XSS}|latency_ms"))
            ),
        )
        .await;
        assert_eq!(c["series"].as_array().unwrap().len(), 2);
        assert_eq!(c["series"][1]["points"].as_array().unwrap().len(), 2);
        let t = get(
            &base,
            &format!("/api/v1/telemetry?site=lab&host=gpu-1&from={from_ms}&to={to_ms}"),
        )
        .await;
        assert_eq!(t["host"][0]["cpu_pct"], 42.5);
        assert_eq!(t["gpus"][0]["points"][0]["util_pct"], 97.0);

        // errors name the field
        for (path, field) in [
            ("/api/v1/series/points", "key"),
            ("/api/v1/series/points?key=nope", "key"),
            (
                "/api/v1/series/points?key=series|a|b|c|d|latency_ms&from=yesterday",
                "from",
            ),
            ("/api/v1/violations?rule=9", "rule"),
            ("/api/v1/violations?status=sleeping", "status"),
            ("/api/v1/violations?cursor=zzz", "cursor"),
            ("/api/v1/series?metric=speed", "metric"),
            // times are bounded, arithmetic on them cannot overflow
            ("/api/v1/samples.csv?to=-9223372036854775808", "to"),
            ("/api/v1/samples.csv?from=9223372036854775807", "from"),
            (
                "/api/v1/telemetry?site=lab&host=gpu-1&from=4700000000000000",
                "from",
            ),
            (
                "/api/v1/telemetry?site=lab&host=gpu-1&to=-4700000000000000",
                "to",
            ),
            (
                "/api/v1/series/points?key=series|lab|gpu-1|ollama|llama3|latency_ms&from=-4700000000000000",
                "from",
            ),
            (
                "/api/v1/series/points?key=series|lab|gpu-1|ollama|llama3|latency_ms&to=4700000000000000",
                "to",
            ),
            ("/api/v1/violations?from=4700000000000000", "from"),
            // axum's own rejections answer in the API's JSON too
            (
                "/api/v1/series/points?key=series|lab|gpu-1|ollama|llama3|latency_ms&max_points=-1",
                "max_points",
            ),
            (
                "/api/v1/compare?key=series|lab|gpu-1|ollama|llama3|latency_ms&max_points=x",
                "max_points",
            ),
            // a key with more parts than a series has (a name with `|`) is not a series
            (
                "/api/v1/series/points?key=series|lab|hc|p1|p2|m|latency_ms",
                "key",
            ),
        ] {
            let (code, v, text) = call(Method::GET, &base, path, Some(ADMIN), None).await;
            assert_eq!(
                (code, v["field"].as_str()),
                (400, Some(field)),
                "{path}: {text}"
            );
            assert!(!v["error"].as_str().unwrap().is_empty());
        }
        let (code, v, _) = call(
            Method::GET,
            &base,
            "/api/v1/violations/nope",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 404);
        assert!(v["error"].as_str().unwrap().contains("nope"));
        // a body over the limit: 413, in JSON, naming the body
        let r = reqwest::Client::new()
            .post(format!("{base}/api/v1/sites"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(vec![b' '; 3 << 20])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["field"], "body", "{v}");
        assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
        // a wrong method on an API route: JSON as well
        let (code, v, text) = call(Method::DELETE, &base, "/api/v1/series", None, None).await;
        assert_eq!(code, 405, "{text}");
        assert!(v["error"].is_string(), "{text}");

        // violations: list, pagination, detail
        let list = get(&base, "/api/v1/violations?site=lab").await;
        assert_eq!(list["items"][0]["id"], vid.as_str());
        assert_eq!(list["items"][0]["rule_name"], "Beyond 3σ");
        assert!(
            list["items"][0]["rule_text"]
                .as_str()
                .unwrap()
                .contains("3σ")
        );
        let page1 = get(&base, "/api/v1/violations?limit=1").await;
        assert_eq!(page1["items"].as_array().unwrap().len(), 1);
        assert!(
            page1["next_cursor"].is_null(),
            "one violation: no next page"
        );
        let v = get(&base, &format!("/api/v1/violations/{vid}")).await;
        assert_eq!(v["points"][0]["value"], 400.0);
        assert!(v["baseline"]["ucl"].as_f64().unwrap() > 100.0);
        // ±10 points: the 10 before the trigger, the trigger, the 10 after it
        let ctx_points = v["context"]["points"].as_array().unwrap();
        assert_eq!(ctx_points.len(), 21, "{}", v["context"]);
        assert_eq!(ctx_points[10]["value"], 400.0);
        assert!(ctx_points[20]["ts"].as_i64() > v["opened_at"].as_i64());
        assert_eq!(v["context"]["telemetry"]["host"][0]["cpu_pct"], 42.5);

        // acknowledge: admin only
        let ack = json!({"by": "alice", "note": "looking"});
        let (code, _, _) = call(
            Method::POST,
            &base,
            &format!("/api/v1/violations/{vid}/ack"),
            None,
            Some(ack.clone()),
        )
        .await;
        assert_eq!(code, 401);
        let (code, _, _) = call(
            Method::POST,
            &base,
            &format!("/api/v1/violations/{vid}/ack"),
            Some(&token),
            Some(ack.clone()),
        )
        .await;
        assert_eq!(code, 403, "an ingest token cannot change things");
        let (code, v, text) = call(
            Method::POST,
            &base,
            &format!("/api/v1/violations/{vid}/ack"),
            Some(ADMIN),
            Some(ack),
        )
        .await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(
            (v["status"].as_str(), v["acked_by"].as_str()),
            (Some("acknowledged"), Some("admin-token (alice)"))
        );
        let acked = get(&base, "/api/v1/violations?status=acknowledged").await;
        assert_eq!(acked["items"].as_array().unwrap().len(), 1);
        // CSV of the filter
        let (code, _, csv) = call(
            Method::GET,
            &base,
            "/api/v1/violations.csv?site=lab&rule=1",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 200);
        assert!(
            csv.starts_with("id,status,site") && csv.contains(&vid) && csv.contains("acknowledged"),
            "{csv}"
        );
        let (_, _, csv) = call(
            Method::GET,
            &base,
            &format!("/api/v1/samples.csv?site=lab&from={from_ms}&to={to_ms}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(csv.lines().count(), 1 + 60 + 2 + 1);
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"x\"\")\""),
            "formula neutralised: {csv}"
        );
        // resolve by hand writes the resolved event
        let (code, v, text) = call(
            Method::POST,
            &base,
            &format!("/api/v1/violations/{vid}/resolve"),
            Some(ADMIN),
            Some(json!({"by": "alice"})),
        )
        .await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(v["status"], "resolved");
        let (code, _, _) = call(
            Method::POST,
            &base,
            &format!("/api/v1/violations/{vid}/resolve"),
            Some(ADMIN),
            Some(json!({"by": "alice"})),
        )
        .await;
        assert_eq!(code, 409);
        assert!(
            running
                .store
                .outbox_events()
                .await
                .unwrap()
                .contains(&(vid.clone(), "resolved".into()))
        );

        // tokens and sites
        let (code, t, text) = call(
            Method::POST,
            &base,
            "/api/v1/tokens",
            Some(ADMIN),
            Some(json!({"site": "lab2", "name": "wizard"})),
        )
        .await;
        assert_eq!(code, 201, "{text}");
        let secret = t["token"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("llms_"));
        let (_, _, list) = call(Method::GET, &base, "/api/v1/tokens", Some(ADMIN), None).await;
        assert!(!list.contains(&secret) && !list.contains("hash"), "{list}");
        let (code, _, _) = call(
            Method::DELETE,
            &base,
            &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(code, 204);
        let (code, v, _) = call(
            Method::POST,
            &base,
            "/api/v1/tokens",
            Some(ADMIN),
            Some(json!({"site": "bad site!"})),
        )
        .await;
        assert_eq!((code, v["field"].as_str()), (400, Some("site")));
        let (code, v, _) = call(
            Method::POST,
            &base,
            "/api/v1/sites",
            Some(ADMIN),
            Some(json!({"name": "has space"})),
        )
        .await;
        assert_eq!((code, v["field"].as_str()), (400, Some("name")));
        let (code, _, _) = call(
            Method::POST,
            &base,
            "/api/v1/sites",
            Some(ADMIN),
            Some(json!({"name": "lab2"})),
        )
        .await;
        assert_eq!(code, 409, "created with the token");
        let (code, _, _) = call(
            Method::POST,
            &base,
            "/api/v1/sites",
            Some(ADMIN),
            Some(json!({"name": "lab3"})),
        )
        .await;
        assert_eq!(code, 201);
        let setup = get(&base, "/api/v1/setup").await;
        assert_eq!(setup["first_run"], false);
        assert_eq!(setup["grpc_addr"], running.grpc_addr.to_string());
        assert_eq!(setup["baseline_points"], 20);

        // rules and baselines
        let (code, v, text) = call(
            Method::PUT,
            &base,
            "/api/v1/rules/model/llama3",
            Some(ADMIN),
            Some(json!({"rules": [1, 2], "params": {"2.run": 7}, "resolve_after": 5})),
        )
        .await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(v["settings"]["rules"], json!([1, 2]));
        let r = get(&base, "/api/v1/rules").await;
        assert_eq!(r["configs"][0]["settings"]["params"]["2.run"], 7.0);
        let (code, v, _) = call(
            Method::PUT,
            &base,
            "/api/v1/rules/model/llama3",
            Some(ADMIN),
            Some(json!({"params": {"2.run": "many"}})),
        )
        .await;
        assert_eq!((code, v["field"].as_str()), (400, Some("params")), "{v}");
        let b = get(&base, &format!("/api/v1/baselines?key={}", enc(key))).await;
        assert_eq!(b.as_array().unwrap().len(), 1);
        let (code, v, text) = call(Method::POST, &base, "/api/v1/baselines/rebaseline", Some(ADMIN),
            Some(json!({"site": "lab", "model": "llama3", "metric": "latency_ms", "from": from_ms, "to": to_ms, "reason": "test"}))).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(v["created"], 1);
        assert_eq!(
            get(
                &base,
                &format!("/api/v1/baselines?key={}&history=true", enc(key))
            )
            .await
            .as_array()
            .unwrap()
            .len(),
            2
        );

        // the OpenAPI document lists every route, and every listed GET answers
        let doc = get(&base, "/api/v1/openapi.json").await;
        assert_eq!(doc["openapi"], "3.1.0");
        for e in llmscope_collector::api::openapi::ENDPOINTS {
            assert!(
                doc["paths"][e.path][e.method].is_object(),
                "{} {}",
                e.method,
                e.path
            );
            if e.method == "get" && !e.path.contains('{') && e.path != "/api/v1/events" {
                let (code, _, text) = call(Method::GET, &base, e.path, Some(ADMIN), None).await;
                if e.path == "/api/v1/auth/tokens" {
                    // personal tokens belong to users; the bootstrap token is none
                    assert_eq!(code, 403, "{text}");
                    continue;
                }
                if e.path.starts_with("/api/v1/auth/oidc/") {
                    assert_eq!(code, 404, "no [auth.oidc] here: {text}");
                    continue;
                }
                assert!(code == 200 || code == 400, "{} → {code} {text}", e.path);
            }
        }
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_and_dashboard_fallback() {
    let db = TestDb::new(common::Backend::Sqlite).await;
    let mut cfg = config(db.url());
    cfg.admin_token = Some(Secret(ADMIN.into()));
    let running = start(&cfg).await;
    let base = format!("http://{}", running.http_addr);
    let token = ingest_token(&running.store, "lab").await;
    let mut resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    push_all(
        running.grpc_addr,
        &token,
        series_samples("m", &[1.0, 2.0], now_ns()),
        vec![],
    )
    .await;
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // other tests in this process publish too: wait for this collector's series
    while !got.contains("series|lab|gpu-1|ollama|m|latency_ms") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        got.contains("series|lab|gpu-1|ollama|m|latency_ms"),
        "{got}"
    );
    // client-side routes fall back to the dashboard; unknown API paths stay JSON 404s
    let r = reqwest::get(format!("{base}/violations?id=x"))
        .await
        .unwrap();
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../web/dist/index.html")
        .exists();
    if built {
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let html = r.text().await.unwrap();
        let asset = html
            .split("/assets/")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned();
        let a = reqwest::get(format!("{base}/assets/{asset}"))
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        assert!(
            a.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    } else {
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("make web"));
    }
    let (code, v, _) = call(Method::GET, &base, "/api/v1/nope", None, None).await;
    assert_eq!(code, 404);
    assert!(v["error"].as_str().unwrap().contains("/api/v1/nope"));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ongoing_episode_shows_every_flagged_point() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let mut cfg = config(db.url());
        cfg.spc.baseline_points = 20;
        cfg.spc.arl0 = 1000.0; // what a 20-point Phase I can deliver
        cfg.admin_token = Some(Secret(ADMIN.into()));
        let running = start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;
        let t0 = now_ns() - 600_000_000_000;
        push_all(
            running.grpc_addr,
            &token,
            series_samples("m", &noise(30), t0),
            vec![],
        )
        .await;
        // an incident that goes on: 15 points far above the limits, in three commits
        for b in 0..3i64 {
            let start = t0 + (30 + b * 5) * 1_000_000_000;
            push_all(
                running.grpc_addr,
                &token,
                series_samples("m", &[300.0; 5], start),
                vec![],
            )
            .await;
        }
        let key = "series|lab|gpu-1|ollama|m|latency_ms";
        let path = format!(
            "/api/v1/series/points?key={}&from={}&to={}",
            enc(key),
            t0 / 1_000_000 - 1000,
            t0 / 1_000_000 + 60_000
        );
        let mut flagged = 0;
        for _ in 0..200 {
            let p = get(&base, &path).await;
            flagged = p["flagged"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["value"] == 300.0)
                .count();
            if flagged == 15 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            flagged, 15,
            "{backend:?}: every point of the open episode is flagged"
        );
        let open = get(&base, "/api/v1/violations?status=open&rule=1").await;
        assert_eq!(
            open["items"].as_array().unwrap().len(),
            1,
            "one episode, still open"
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}
