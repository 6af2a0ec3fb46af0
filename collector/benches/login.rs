//! What a sign-in costs (run by hand):
//!
//! `cargo bench -p llmscope-collector --bench login -- 20`
//!
//! 1. Argon2id verification in process for the default parameters and the parameter sets
//!    of OWASP's password storage cheat sheet (equivalent cost, memory traded for passes) and
//!    RFC 9106's second recommendation, side by side, R rounds each: p50 / max.
//! 2. `POST /api/v1/auth/login` through a real collector on SQLite with the default parameters,
//!    R rounds of each: the right password, a wrong password, and an unknown account (the last
//!    two must cost the same: the answer does not tell whether the account exists).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use llmscope_collector::access::AuthConfig;
use llmscope_collector::access::password::Hasher;
use llmscope_collector::config::{Config, Secret};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn hashing(rounds: usize) {
    let d = AuthConfig::default();
    let sets = [
        (
            "default: 19 MiB, t=5, p=1",
            d.argon2_memory_kib,
            d.argon2_iterations,
            d.argon2_parallelism,
        ),
        ("OWASP: 19 MiB, t=2, p=1", 19_456, 2, 1),
        ("OWASP: 46 MiB, t=1, p=1", 47_104, 1, 1),
        ("OWASP: 12 MiB, t=3, p=1", 12_288, 3, 1),
        ("OWASP: 7 MiB, t=5, p=1", 7_168, 5, 1),
        ("RFC 9106 second: 64 MiB, t=3, p=4", 65_536, 3, 4),
    ];
    for (name, m, t, p) in sets {
        let cfg = AuthConfig {
            argon2_memory_kib: m,
            argon2_iterations: t,
            argon2_parallelism: p,
            ..AuthConfig::default()
        };
        let h = Hasher::new(&cfg).unwrap();
        let phc = h.hash("correct horse battery staple").unwrap();
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t0 = Instant::now();
            assert!(h.verify("correct horse battery staple", Some(&phc)));
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "argon2id verify  {name:<36} p50 {:>6.1} ms  max {:>6.1} ms over {rounds}",
            pct(&mut times, 0.5),
            pct(&mut times, 1.0)
        );
    }
}

async fn logins(rounds: usize) {
    let (url, _dir) = support::database("sqlite", "login").await;
    let admin = "llms_bench_login_admin_token";
    let mut cfg = Config {
        database_url: url,
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(Secret(admin.into())),
        ..Config::default()
    };
    cfg.spc.enabled = false;
    // the bench signs in more often than a person would
    cfg.auth.login_max_failures = 10_000;
    cfg.auth.login_max_failures_per_client = 10_000;
    let running = llmscope_collector::serve::start(&cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"email": "bench@example.com", "role": "viewer", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let cases = [
        (
            "right password (200, session cookie)",
            "bench@example.com",
            "correct horse battery staple",
            200,
        ),
        (
            "wrong password (401)",
            "bench@example.com",
            "wrong horse battery staple",
            401,
        ),
        (
            "unknown account (401)",
            "nobody@example.com",
            "correct horse battery staple",
            401,
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    for i in 0..rounds + 2 {
        for (c, (_, email, pw, want)) in cases.iter().enumerate() {
            let t0 = Instant::now();
            let r = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&serde_json::json!({"email": email, "password": pw}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await.unwrap();
            if i >= 2 {
                times[c].push(t0.elapsed().as_secs_f64() * 1e3);
            }
            assert_eq!(status, *want, "{email}");
        }
    }
    for ((name, ..), t) in cases.iter().zip(times.iter_mut()) {
        println!(
            "POST /api/v1/auth/login  {name:<38} p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms over {rounds}",
            pct(t, 0.5),
            pct(t, 0.95),
            pct(t, 1.0)
        );
    }
    running.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .find_map(|s| s.parse().ok())
        .unwrap_or(20);
    hashing(rounds);
    logins(rounds).await;
}
