//! `llmscope-proxybench`: measures what a reverse proxy adds to streamed LLM responses.
//!
//! - `upstream --listen ADDR`: a fast OpenAI-style SSE server (6 events, no think time), so
//!   what is measured is the proxy's own cost.
//! - `load --rate R --seconds S NAME=URL…`: an open-loop load at R requests/s against each
//!   URL in turn, rounds interleaved (A, B, C, A, B, C, …) so drift hits all alike; each
//!   request reads the whole streamed body. Prints one JSON object with p50/p99 per target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;

const EVENTS: &[&str] = &[
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
];

async fn upstream(listen: &str) {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let chunks = EVENTS
                .iter()
                .map(|e| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(e.as_bytes())));
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(futures_lite_iter(chunks)))
                .unwrap_or_default()
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!("upstream ready {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}

fn futures_lite_iter<I: Iterator + Send + 'static>(
    it: I,
) -> impl tokio_stream::Stream<Item = I::Item> + Send
where
    I::Item: Send,
{
    tokio_stream::iter(it)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn one_round(client: &reqwest::Client, url: &str, rate: f64, secs: f64) -> (Vec<f64>, usize) {
    let n = (rate * secs) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let body = r#"{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let c = client.clone();
        let u = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .post(&u)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            let bytes = r.bytes().await.ok()?;
            (bytes.len() > 100).then(|| t.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(Some(ms)) => lat.push(ms),
            _ => errors += 1,
        }
    }
    (lat, errors)
}

async fn load(args: &[String]) {
    let mut rate = 1000.0;
    let mut secs = 10.0;
    let mut rounds = 3;
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rate" => rate = it.next().and_then(|v| v.parse().ok()).expect("--rate N"),
            "--seconds" => secs = it.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            t => {
                let (name, url) = t.split_once('=').expect("NAME=URL");
                targets.push((name.to_owned(), url.to_owned()));
            }
        }
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    // warm up connections
    for (_, url) in &targets {
        let _ = one_round(&client, url, rate, 1.0).await;
    }
    let mut all: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for _ in 0..rounds {
        for (name, url) in &targets {
            let (lat, err) = one_round(&client, url, rate, secs).await;
            let e = all.entry(name.clone()).or_default();
            e.0.extend(lat);
            e.1 += err;
        }
    }
    let mut out = serde_json::Map::new();
    for (name, (mut lat, errors)) in all {
        lat.sort_by(f64::total_cmp);
        out.insert(
            name,
            serde_json::json!({"requests": lat.len(), "errors": errors, "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99), "max_ms": pct(&lat, 1.0)}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("upstream") => {
            upstream(args.get(2).map(String::as_str).unwrap_or("127.0.0.1:0")).await
        }
        Some("load") => load(&args[1..]).await,
        _ => {
            eprintln!(
                "usage: llmscope-proxybench upstream --listen ADDR | load [--rate R] [--seconds S] [--rounds N] NAME=URL…"
            );
            std::process::exit(2);
        }
    }
}
