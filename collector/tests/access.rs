//! Who may see and change what, through a real collector: users created through the API,
//! signed in with passwords (session cookie + CSRF token) or acting with personal tokens.
//!
//! - The permission matrix is generated from the route table (`openapi::ENDPOINTS`, which the
//!   guard also reads): every route × {anonymous, viewer limited to one site, viewer of all,
//!   editor, admin, ingest token, revoked token, expired session, cookie without CSRF proof}
//!   answers 401/403 or gets through as its policy says.
//! - A site-limited viewer never reads another site (every GET route, the CSV exports, the
//!   server-sent events) and a direct request for another site's object answers 404.
//! - Sign-in rate limits (429 + Retry-After), idle expiry, logout, password change, disabled
//!   users, no user enumeration.
//! - Every mutating route writes exactly one audit entry with the right actor, on both
//!   backends; the audit list filters and pages, its CSV exports.
//! - No password, hash, token, cookie or secret in any response that should not carry it or
//!   in any log line of the whole test.
//! - Hardening: masked channel URLs, control characters refused at ingest, garbage protobuf
//!   answers INVALID_ARGUMENT, connections that never finish their headers are closed,
//!   `alerts.deny_private_targets`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{BACKENDS, Backend, TestDb, config, enc, ingest_token, now_ns};
use llmscope_collector::access::{Access, Role};
use llmscope_collector::api::openapi::ENDPOINTS;
use llmscope_collector::config::{Config, Secret};
use llmscope_collector::serve::{self, Running};
use llmscope_proto::v1;
use reqwest::Method;
use serde_json::{Value, json};

const BOOT: &str = "bootstrap-admin-token-for-tests";
const PW: &str = "correct horse battery staple";
const EU: &str = "eu-west";
const US: &str = "us-east";
const EU_KEY: &str = "series|eu-west|eu-gpu|ollama|m|latency_ms";
const US_KEY: &str = "series|us-east|us-gpu|ollama|m|latency_ms";

// ---------------------------------------------------------------------------------------------
// the whole test's log, kept to look for secrets in it

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.get().unwrap().lock().unwrap()).into_owned()
}

async fn start(cfg: &Config) -> Running {
    start_with(cfg, llmscope_model::clock::SystemClock::shared()).await
}

/// [`start`] on a given clock.
async fn start_with(cfg: &Config, clock: llmscope_model::clock::SharedClock) -> Running {
    let buf = LOG.get_or_init(|| Arc::new(Mutex::new(Vec::new()))).clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,sqlx=warn,h2=info,hyper=info,tower=info,async_nats=info,reqwest=info,rustls=info"))
        .with_ansi(false)
        .with_writer(move || LogWriter(buf.clone()))
        .try_init();
    serve::start_with_clock(cfg, clock)
        .await
        .expect("collector starts")
}

/// A collector with the bootstrap admin token, a 20-point Phase I, a webhook channel whose
/// URL carries credentials, and cheap (but valid) password hashing.
fn cfg(db: &TestDb) -> Config {
    let mut c = config(db.url());
    c.admin_token = Some(Secret(BOOT.into()));
    c.spc.baseline_points = 20;
    c.spc.arl0 = 1000.0;
    c.api.rollup_interval = Duration::from_millis(100);
    c.api.rollup_lag = Duration::ZERO;
    c.auth.argon2_memory_kib = 8 * 1024;
    c.auth.argon2_iterations = 1;
    c.alerts.channels = vec![llmscope_alert::config::ChannelConfig {
        name: "ops".into(),
        kind: "webhook".into(),
        // nothing listens on port 9 of this machine: a test send fails at once
        url: "http://hookuser:hookpass@127.0.0.1:9/hook?apikey=QUERYSECRET".into(),
        secret: Some(Secret("hmac-secret-of-ops".into())),
        ..Default::default()
    }];
    c
}

// ---------------------------------------------------------------------------------------------
// HTTP as a browser or a script does it

/// How a request authenticates.
#[derive(Clone, Default, Debug)]
struct Cred {
    bearer: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Cred {
    fn bearer(t: &str) -> Cred {
        Cred {
            bearer: Some(t.to_owned()),
            ..Cred::default()
        }
    }
}

struct Resp {
    code: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn send(base: &str, m: Method, path: &str, cred: &Cred, body: Option<Value>) -> Resp {
    let mut rb = reqwest::Client::new().request(m, format!("{base}{path}"));
    if let Some(t) = &cred.bearer {
        rb = rb.bearer_auth(t);
    }
    if let Some(c) = &cred.cookie {
        rb = rb.header("cookie", format!("llmscope_session={c}"));
    }
    if let Some(c) = &cred.csrf {
        rb = rb.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    Resp {
        code,
        headers,
        text,
    }
}

/// Signs in; returns the cookie's value and the CSRF token.
async fn login(base: &str, email: &str, pw: &str) -> Cred {
    let r = send(
        base,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::default(),
        Some(json!({"email": email, "password": pw})),
    )
    .await;
    assert_eq!(r.code, 200, "sign-in of {email}: {}", r.text);
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );
    let cookie = set
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("llmscope_session="))
        .unwrap()
        .to_owned();
    Cred {
        bearer: None,
        cookie: Some(cookie),
        csrf: r.json()["csrf"].as_str().map(str::to_owned),
    }
}

async fn create_user(base: &str, email: &str, role: &str, sites: Option<&[&str]>) -> Value {
    let r = send(
        base,
        Method::POST,
        "/api/v1/users",
        &Cred::bearer(BOOT),
        Some(json!({"email": email, "role": role, "sites": sites, "password": PW})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.text);
    let u = r.json();
    assert!(
        u.get("password").is_none() && !r.text.contains(PW),
        "a given password is not echoed"
    );
    u
}

// ---------------------------------------------------------------------------------------------
// data: two sites, each with a shift that opens violations and an incident

fn probes(site: &str, host: &str, n: usize, t0: i64, shift_from: usize) -> Vec<v1::Sample> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            let mut s = 0.0;
            for _ in 0..4 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            let mut v = 100.0 + (s - 2.0) * 3.0;
            if i >= shift_from {
                v += 40.0;
            }
            let mut p = common::sample(site, host, v);
            p.model = "m".into();
            p.ts_unix_nanos = t0 + i as i64 * 1_000_000_000;
            p
        })
        .collect()
}

struct World {
    running: Running,
    base: String,
    eu_violation: String,
    us_violation: String,
    eu_incident: String,
    us_incident: String,
}

async fn world(db: &TestDb) -> World {
    let running = start(&cfg(db)).await;
    let base = format!("http://{}", running.http_addr);
    for (site, host) in [(EU, "eu-gpu"), (US, "us-gpu")] {
        let tok = ingest_token(&running.store, site).await;
        let t0 = now_ns() - 120 * 1_000_000_000;
        common::push_all(
            running.grpc_addr,
            &tok,
            probes(site, host, 40, t0, 25),
            vec![common::telemetry(site, host, 1)],
        )
        .await;
    }
    let boot = Cred::bearer(BOOT);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = |path: String| {
        let (base, boot) = (base.clone(), boot.clone());
        async move {
            loop {
                let v = send(&base, Method::GET, &path, &boot, None).await.json();
                if let Some(id) = v["items"][0]["id"].as_str() {
                    return id.to_owned();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nothing at {path}: {v}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // the catalogue (the rollup job) lists both sites' series
    loop {
        let v = send(&base, Method::GET, "/api/v1/series", &boot, None)
            .await
            .text;
        if v.contains(EU_KEY) && v.contains(US_KEY) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no series: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    World {
        eu_violation: first(format!("/api/v1/violations?site={EU}")).await,
        us_violation: first(format!("/api/v1/violations?site={US}")).await,
        eu_incident: first(format!("/api/v1/incidents?site={EU}")).await,
        us_incident: first(format!("/api/v1/incidents?site={US}")).await,
        running,
        base,
    }
}

// ---------------------------------------------------------------------------------------------
// the matrix

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Anonymous,
    SiteViewer,
    Viewer,
    Editor,
    Admin,
    Ingest,
    Revoked,
    Expired,
    NoCsrf,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::SiteViewer,
    Who::Viewer,
    Who::Editor,
    Who::Admin,
    Who::Ingest,
    Who::Revoked,
    Who::Expired,
    Who::NoCsrf,
];

/// What the guard must answer: refuse with a status, or let the request through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Refuse(u16),
    Through,
}

fn expected(policy: Access, who: Who, change: bool) -> Expect {
    let role = match who {
        Who::SiteViewer | Who::Viewer => Role::Viewer,
        Who::Editor | Who::NoCsrf => Role::Editor,
        Who::Admin => Role::Admin,
        Who::Anonymous | Who::Ingest | Who::Revoked | Who::Expired => Role::Viewer,
    };
    if policy == Access::Public {
        return Expect::Through;
    }
    match who {
        Who::Anonymous | Who::Revoked | Who::Expired => return Expect::Refuse(401),
        Who::Ingest => return Expect::Refuse(403),
        Who::NoCsrf if change => return Expect::Refuse(403),
        _ => {}
    }
    match policy {
        Access::Role(need) if role < need => Expect::Refuse(403),
        _ => Expect::Through,
    }
}

/// The concrete path and query of a route for a request that may succeed.
fn concrete(w: &World, user_id: &str, method: &str, path: &str) -> String {
    let get = method == "get";
    let (from, to) = (
        (now_ns() / 1_000_000) - 600_000,
        (now_ns() / 1_000_000) + 60_000,
    );
    let p = path
        .replace(
            "/violations/{id}",
            &format!(
                "/violations/{}",
                if get { &w.eu_violation } else { "zz-nope" }
            ),
        )
        .replace("/incidents/{id}", &format!("/incidents/{}", w.eu_incident))
        .replace(
            "/users/{id}",
            &format!("/users/{}", if get { user_id } else { "zz-nope" }),
        )
        .replace("{name}", if get { "ops" } else { "zz-nope" })
        .replace("{scope_kind}", "zz-nope")
        .replace("{id}", "zz-nope")
        .replace("{token}", "zz-nope")
        .replace("{scope_value}", "m")
        .replace("{provider}/{model}", "zz-nope/zz-nope");
    let k = enc(EU_KEY);
    let q = match path {
        "/api/v1/series/points" => format!("?key={k}&from={from}&to={to}"),
        "/api/v1/compare" | "/api/v1/baselines" => format!("?key={k}"),
        "/api/v1/abtest" => format!("?a={k}&b={k}&from={from}&to={to}"),
        "/api/v1/capability" => format!("?key={k}&from={from}&to={to}&usl=100000"),
        "/api/v1/trend" => format!("?key={k}&days=3"),
        "/api/v1/detection" => format!("?site={EU}"),
        "/api/v1/telemetry" => format!("?site={EU}&host=eu-gpu&from={from}&to={to}"),
        "/api/v1/otlp/intervals" => format!(
            "?key={}",
            enc(&format!(
                "otlp|{EU}|eu-gpu|p|m|chat|gen_ai.client.operation.duration|"
            ))
        ),
        "/api/v1/samples.csv" => format!("?site={EU}&from={from}&to={to}"),
        "/api/v1/auth/oidc/callback" => "?code=x&state=y".into(),
        _ => String::new(),
    };
    format!("{p}{q}")
}

/// Reads the head of a streaming response (the SSE route) and gives up on the body.
async fn head_only(base: &str, path: &str, cred: &Cred) -> Resp {
    let mut rb = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = &cred.bearer {
        rb = rb.bearer_auth(t);
    }
    if let Some(c) = &cred.cookie {
        rb = rb.header("cookie", format!("llmscope_session={c}"));
    }
    let r = rb.send().await.unwrap();
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    let text = if code == 200 {
        String::new()
    } else {
        r.text().await.unwrap_or_default()
    };
    Resp {
        code,
        headers,
        text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_matrix_from_the_route_table() {
    let db = TestDb::new(Backend::Sqlite).await;
    let w = world(&db).await;
    let base = w.base.clone();

    // the people
    let site_viewer = create_user(&base, "eu-viewer@example.com", "viewer", Some(&[EU])).await;
    let viewer = create_user(&base, "viewer@example.com", "viewer", None).await;
    let editor = create_user(&base, "editor@example.com", "editor", None).await;
    create_user(&base, "admin@example.com", "admin", None).await;
    let sv = login(&base, "eu-viewer@example.com", PW).await;
    let ed = login(&base, "editor@example.com", PW).await;
    let ad = login(&base, "admin@example.com", PW).await;
    // the editor's second session, used without its CSRF token (each row signs out at its end)
    let ed2 = login(&base, "editor@example.com", PW).await;
    // the viewer of all acts with a personal token made from their session
    let vs = login(&base, "viewer@example.com", PW).await;
    let r = send(
        &base,
        Method::POST,
        "/api/v1/auth/tokens",
        &vs,
        Some(json!({"name": "laptop"})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.text);
    let personal = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        &base,
        Method::POST,
        "/api/v1/auth/tokens",
        &vs,
        Some(json!({"name": "old"})),
    )
    .await;
    let old = r.json();
    let r = send(
        &base,
        Method::DELETE,
        &format!("/api/v1/auth/tokens/{}", old["id"].as_str().unwrap()),
        &vs,
        None,
    )
    .await;
    assert_eq!(r.code, 204, "{}", r.text);
    let revoked = old["token"].as_str().unwrap().to_owned();
    // a session past its absolute expiry
    let s = llmscope_collector::access::session::new_session();
    let now = llmscope_model::now_us();
    w.running
        .store
        .create_session(&llmscope_store::users::SessionRow {
            id: s.id.clone(),
            user_id: editor["id"].as_str().unwrap().to_owned(),
            csrf: s.csrf.clone(),
            created_at: now - 10_000_000,
            seen_at: now - 1_000_000,
            expires_at: now - 1,
            client: "127.0.0.1".into(),
            user_agent: "test".into(),
        })
        .await
        .unwrap();
    let expired = Cred {
        cookie: Some(s.secret.clone()),
        csrf: Some(s.csrf.clone()),
        bearer: None,
    };
    let ingest = ingest_token(&w.running.store, EU).await;
    let cred = |who: Who| -> Cred {
        match who {
            Who::Anonymous => Cred::default(),
            Who::SiteViewer => sv.clone(),
            Who::Viewer => Cred::bearer(&personal),
            Who::Editor => ed.clone(),
            Who::Admin => ad.clone(),
            Who::Ingest => Cred::bearer(&ingest),
            Who::Revoked => Cred::bearer(&revoked),
            Who::Expired => expired.clone(),
            Who::NoCsrf => Cred {
                csrf: None,
                ..ed2.clone()
            },
        }
    };

    // every route, reads first, signing out last
    let mut routes: Vec<_> = ENDPOINTS.iter().collect();
    routes.sort_by_key(|e| (e.method != "get", e.path == "/api/v1/auth/logout"));
    let target = viewer["id"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for who in EVERYONE {
        let c = cred(who);
        for e in &routes {
            let change = e.method != "get";
            let path = concrete(&w, &target, e.method, e.path);
            let m: Method = e.method.to_uppercase().parse().unwrap();
            let r = if e.path == "/api/v1/events" {
                head_only(&base, &path, &c).await
            } else {
                let body = change.then(|| json!({}));
                send(&base, m, &path, &c, body).await
            };
            let want = expected(e.access, who, change);
            let ctx = format!("{who:?} {} {path}: {} {}", e.method, r.code, r.text);
            match want {
                Expect::Refuse(code) => {
                    assert_eq!(r.code, code, "{ctx}");
                    assert!(r.json()["error"].is_string(), "an error says why: {ctx}");
                }
                Expect::Through if !change => {
                    if e.path.starts_with("/api/v1/auth/oidc/") {
                        assert_eq!(r.code, 404, "no [auth.oidc] here: {ctx}");
                    } else if e.path == "/api/v1/auth/tokens" && who == Who::Viewer {
                        // a personal token lists its user's tokens
                        assert_eq!(r.code, 200, "{ctx}");
                    } else {
                        assert!((200..300).contains(&r.code), "{ctx}");
                    }
                }
                Expect::Through => {
                    assert!(r.code != 401 && r.code != 403, "{ctx}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, EVERYONE.len() * ENDPOINTS.len());

    // a change with the CSRF token but from another origin
    let ed = login(&base, "editor@example.com", PW).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/violations/{}/ack", w.eu_violation))
        .header(
            "cookie",
            format!("llmscope_session={}", ed.cookie.clone().unwrap()),
        )
        .header("x-csrf-token", ed.csrf.clone().unwrap())
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // the same change from the dashboard's origin goes through
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/violations/{}/ack", w.eu_violation))
        .header(
            "cookie",
            format!("llmscope_session={}", ed.cookie.clone().unwrap()),
        )
        .header("x-csrf-token", ed.csrf.clone().unwrap())
        .header("origin", &base)
        .json(&json!({"note": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["acked_by"], "editor@example.com",
        "the signed-in user: {v}"
    );

    // anonymous reading for a wall screen, on a second collector on the same database
    let mut c2 = cfg(&db);
    c2.auth.anonymous_role = Some(Role::Viewer);
    let wall = start(&c2).await;
    let wbase = format!("http://{}", wall.http_addr);
    let r = send(
        &wbase,
        Method::GET,
        "/api/v1/series",
        &Cred::default(),
        None,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.text);
    assert!(r.text.contains(EU) && r.text.contains(US));
    let r = send(
        &wbase,
        Method::POST,
        &format!("/api/v1/violations/{}/ack", w.eu_violation),
        &Cred::default(),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 401, "changes still need a user: {}", r.text);
    wall.stop().await.unwrap();

    assert_no_secrets(
        &[PW, &personal, &revoked, &ingest, BOOT],
        &[&sv, &ed, &ad, &vs],
    );
    w.running.stop().await.unwrap();
    let _ = site_viewer;
}

/// No log line carries a secret, a session cookie or a password hash.
fn assert_no_secrets(secrets: &[&str], sessions: &[&Cred]) {
    let log = log_text();
    assert!(!log.is_empty(), "the log was captured");
    for s in secrets {
        assert!(!log.contains(s), "a secret in the log: {s}");
    }
    for c in sessions {
        for v in [&c.cookie, &c.csrf].into_iter().flatten() {
            assert!(!log.contains(v.as_str()), "a session secret in the log");
        }
    }
    for bad in ["$argon2", "hookpass", "QUERYSECRET", "hmac-secret-of-ops"] {
        assert!(!log.contains(bad), "`{bad}` in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_limited_viewer_never_reads_another_site() {
    let db = TestDb::new(Backend::Sqlite).await;
    let w = world(&db).await;
    let base = w.base.clone();
    let me = create_user(&base, "eu@example.com", "viewer", Some(&[EU])).await;
    let sv = login(&base, "eu@example.com", PW).await;
    let leaks = |text: &str| text.contains(US) || text.contains("us-gpu");

    // every GET route with this site's parameters: no trace of the other site
    for e in ENDPOINTS.iter().filter(|e| e.method == "get") {
        if e.path == "/api/v1/events" {
            continue;
        }
        let path = concrete(&w, me["id"].as_str().unwrap(), "get", e.path);
        let r = send(&base, Method::GET, &path, &sv, None).await;
        assert!(!leaks(&r.text), "{path} leaks the other site: {}", r.text);
    }
    // the lists do show this site
    for path in [
        "/api/v1/series",
        "/api/v1/sites",
        "/api/v1/hosts",
        "/api/v1/violations",
        "/api/v1/incidents",
        "/api/v1/overview",
    ] {
        let r = send(&base, Method::GET, path, &sv, None).await;
        assert_eq!(r.code, 200, "{path}: {}", r.text);
        assert!(
            r.text.contains(EU),
            "{path} shows the viewer's site: {}",
            r.text
        );
        let all = send(&base, Method::GET, path, &Cred::bearer(BOOT), None).await;
        assert!(leaks(&all.text), "{path} has the other site for an admin");
    }
    // the overview's counts are this site's
    let mine = send(&base, Method::GET, "/api/v1/overview", &sv, None)
        .await
        .json();
    let all = send(
        &base,
        Method::GET,
        "/api/v1/overview",
        &Cred::bearer(BOOT),
        None,
    )
    .await
    .json();
    assert_ne!(mine, all, "the overview is filtered");
    // direct requests for the other site's objects: 404, worded as if they did not exist
    let (from, to) = (
        (now_ns() / 1_000_000) - 600_000,
        (now_ns() / 1_000_000) + 60_000,
    );
    let uk = enc(US_KEY);
    for path in [
        format!("/api/v1/violations/{}", w.us_violation),
        format!("/api/v1/incidents/{}", w.us_incident),
        format!("/api/v1/series/points?key={uk}&from={from}&to={to}"),
        format!("/api/v1/compare?key={uk}"),
        format!("/api/v1/baselines?key={uk}"),
        format!("/api/v1/telemetry?site={US}&host=us-gpu&from={from}&to={to}"),
        format!(
            "/api/v1/otlp/intervals?key={}",
            enc(&format!(
                "otlp|{US}|us-gpu|p|m|chat|gen_ai.client.operation.duration|"
            ))
        ),
    ] {
        let r = send(&base, Method::GET, &path, &sv, None).await;
        assert_eq!(r.code, 404, "{path}: {}", r.text);
        // worded exactly as for something of a forbidden site that does not exist
        let ghostly = |t: &str| {
            let g = t
                .replace("us-gpu", "zz-ghost")
                .replace(&w.us_violation, "zz-ghost")
                .replace(&w.us_incident, "zz-ghost");
            if g == t { g.replace(US, "us-ghost") } else { g }
        };
        let ghost = send(&base, Method::GET, &ghostly(&path), &sv, None).await;
        let same = |t: &str| {
            [
                US,
                "us-gpu",
                "us-ghost",
                "zz-ghost",
                &w.us_violation,
                &w.us_incident,
            ]
            .iter()
            .fold(t.to_owned(), |t, x| t.replace(x, "X"))
        };
        assert_eq!(
            (ghost.code, same(&ghost.text)),
            (404, same(&r.text)),
            "{path}"
        );
        let admin = send(&base, Method::GET, &path, &Cred::bearer(BOOT), None).await;
        assert_eq!(admin.code, 200, "an admin reads {path}: {}", admin.text);
    }
    // filters naming the other site find nothing
    for path in [
        format!("/api/v1/violations?site={US}"),
        format!("/api/v1/incidents?site={US}"),
        format!("/api/v1/series?site={US}"),
        format!("/api/v1/violations.csv?site={US}"),
        format!("/api/v1/detection?site={US}"),
        format!("/api/v1/samples.csv?site={US}&from={from}&to={to}"),
    ] {
        let r = send(&base, Method::GET, &path, &sv, None).await;
        assert!(r.code == 200 || r.code == 404, "{path}: {}", r.text);
        assert!(!leaks(&r.text), "{path}: {}", r.text);
    }
    // the CSV exports without a site filter
    let csv = send(&base, Method::GET, "/api/v1/violations.csv", &sv, None).await;
    assert_eq!(csv.code, 200);
    assert!(
        csv.text.contains(&w.eu_violation) && !leaks(&csv.text),
        "{}",
        csv.text
    );
    let csv = send(
        &base,
        Method::GET,
        &format!("/api/v1/samples.csv?from={from}&to={to}"),
        &sv,
        None,
    )
    .await;
    // without a site: each of the viewer's sites
    assert_eq!(csv.code, 200, "{}", csv.text);
    assert!(csv.text.contains(EU) && !leaks(&csv.text), "{}", csv.text);
    // a change to the other site's violation is refused the same way (an editor of EU)
    create_user(&base, "eu-editor@example.com", "editor", Some(&[EU])).await;
    let ee = login(&base, "eu-editor@example.com", PW).await;
    let r = send(
        &base,
        Method::POST,
        &format!("/api/v1/violations/{}/ack", w.us_violation),
        &ee,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 404, "{}", r.text);
    let r = send(
        &base,
        Method::POST,
        &format!("/api/v1/violations/{}/ack", w.eu_violation),
        &ee,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.text);
    let r = send(
        &base,
        Method::POST,
        "/api/v1/silences",
        &ee,
        Some(json!({"matchers": {"site": US}, "ends_at": now_ns() / 1_000_000 + 7_200_000, "comment": "x"})),
    )
    .await;
    // a silence for another site is refused: it names the field to fix
    assert_eq!(
        (r.code, r.json()["field"].as_str()),
        (400, Some("matchers.site")),
        "{}",
        r.text
    );

    // the server-sent events: the other site's points are pushed first, then this site's
    let stream = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .header(
            "cookie",
            format!("llmscope_session={}", sv.cookie.clone().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let mut admin_stream = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(BOOT)
        .send()
        .await
        .unwrap();
    let mut stream = stream;
    // reads a stream until `needle` arrived (events reach each subscriber in order)
    async fn read_until(s: &mut reqwest::Response, got: &mut String, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !got.contains(needle) {
            let chunk = tokio::time::timeout_at(deadline, s.chunk())
                .await
                .unwrap_or_else(|_| panic!("`{needle}` arrives: {got}"))
                .unwrap()
                .unwrap();
            got.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let (mut all, mut mine) = (String::new(), String::new());
    for (site, host) in [(US, "us-gpu"), (EU, "eu-gpu")] {
        let tok = ingest_token(&w.running.store, site).await;
        common::push_all(
            w.running.grpc_addr,
            &tok,
            probes(site, host, 3, now_ns() - 5_000_000_000, 99),
            vec![],
        )
        .await;
        // the other site's events are out before this site's points are pushed
        read_until(
            &mut admin_stream,
            &mut all,
            &format!("series|{site}|{host}"),
        )
        .await;
    }
    assert!(all.contains(US), "the admin's stream carries both sites");
    // the viewer's stream got the EU events after the US ones were sent: none of them in it
    read_until(&mut stream, &mut mine, "series|eu-west|eu-gpu").await;
    assert!(!leaks(&mine), "the viewer's stream: {mine}");
    w.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_limits_expiry_logout_and_passwords() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut c = cfg(&db);
    c.auth.session_idle = Duration::from_secs(2);
    // sessions expire on the collector's clock: the test moves it instead of sleeping
    let clock = llmscope_model::clock::ManualClock::new(now_ns() / 1_000);
    let running = start_with(&c, clock.clone()).await;
    let base = format!("http://{}", running.http_addr);
    create_user(&base, "ann@example.com", "editor", None).await;
    create_user(&base, "bob@example.com", "viewer", None).await;

    // no user enumeration: a wrong password and an unknown email read the same
    let try_login = |email: &str, pw: &str| {
        let (base, body) = (base.clone(), json!({"email": email, "password": pw}));
        async move {
            send(
                &base,
                Method::POST,
                "/api/v1/auth/login",
                &Cred::default(),
                Some(body),
            )
            .await
        }
    };
    let wrong = try_login("ann@example.com", "not the password").await;
    let unknown = try_login("nobody@example.com", "not the password").await;
    assert_eq!((wrong.code, unknown.code), (401, 401));
    assert_eq!(wrong.json()["error"], unknown.json()["error"]);
    assert!(!wrong.text.contains("ann@"), "{}", wrong.text);

    // five failures for one account: the next attempt, even right, is 429 + Retry-After
    for _ in 0..4 {
        assert_eq!(
            try_login("ann@example.com", "nope nope nope").await.code,
            401
        );
    }
    let r = try_login("ann@example.com", PW).await;
    assert_eq!(r.code, 429, "{}", r.text);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // another account from the same client still signs in (the client has 6 failures of 20)
    let bob = login(&base, "bob@example.com", PW).await;
    // twenty failures from one client: every account is refused from it
    for i in 0..15 {
        try_login(&format!("x{i}@example.com"), "nope nope nope").await;
    }
    let r = try_login("bob@example.com", PW).await;
    assert_eq!(r.code, 429, "the client is limited: {}", r.text);
    assert!(r.headers.contains_key("retry-after"));

    // idle expiry (session_idle = 2 s): a session used within it lives on, one left alone ends
    for _ in 0..3 {
        let me = send(&base, Method::GET, "/api/v1/auth/me", &bob, None)
            .await
            .json();
        assert_eq!(me["user"]["email"], "bob@example.com", "{me}");
        clock.advance(Duration::from_millis(900));
    }
    clock.advance(Duration::from_millis(2500));
    let r = send(&base, Method::GET, "/api/v1/series", &bob, None).await;
    assert_eq!(r.code, 401, "{}", r.text);
    assert!(r.text.contains("session has ended"), "{}", r.text);
    let me = send(&base, Method::GET, "/api/v1/auth/me", &bob, None)
        .await
        .json();
    assert_eq!(me["signed_in"], false, "{me}");
    running.stop().await.unwrap();

    // a fresh collector (fresh limits) on the same database
    let running = start(&cfg(&db)).await;
    let base = format!("http://{}", running.http_addr);
    let a1 = login(&base, "ann@example.com", PW).await;
    let a2 = login(&base, "ann@example.com", PW).await;
    let me = send(&base, Method::GET, "/api/v1/auth/me", &a1, None)
        .await
        .json();
    assert_eq!(
        (me["role"].as_str(), me["csrf"].as_str()),
        (Some("editor"), a1.csrf.as_deref()),
        "{me}"
    );
    // password change: the current password is checked, the new one must be long enough
    let change = |cred: &Cred, cur: &str, new: &str| {
        let (base, cred, body) = (
            base.clone(),
            cred.clone(),
            json!({"current": cur, "new": new}),
        );
        async move {
            send(
                &base,
                Method::POST,
                "/api/v1/auth/password",
                &cred,
                Some(body),
            )
            .await
        }
    };
    let r = change(&a1, "wrong", "a much longer new password").await;
    assert_eq!(
        (r.code, r.json()["field"].as_str()),
        (403, Some("current")),
        "{}",
        r.text
    );
    let r = change(&a1, PW, "short").await;
    assert_eq!(
        (r.code, r.json()["field"].as_str()),
        (400, Some("new")),
        "{}",
        r.text
    );
    let r = change(&a1, PW, "a much longer new password").await;
    assert_eq!(r.code, 204, "{}", r.text);
    // this session goes on, the other one ended; the old password no longer signs in
    let r = send(&base, Method::GET, "/api/v1/series", &a1, None).await;
    assert_eq!(r.code, 200, "{}", r.text);
    let r = send(&base, Method::GET, "/api/v1/series", &a2, None).await;
    assert_eq!(r.code, 401, "{}", r.text);
    assert_eq!(
        send(
            &base,
            Method::POST,
            "/api/v1/auth/login",
            &Cred::default(),
            Some(json!({"email": "ann@example.com", "password": PW}))
        )
        .await
        .code,
        401
    );
    let a3 = login(&base, "ann@example.com", "a much longer new password").await;
    // logout ends the session and clears the cookie
    let r = send(&base, Method::POST, "/api/v1/auth/logout", &a3, None).await;
    assert_eq!(r.code, 204);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "{:?}",
        r.headers
    );
    let r = send(&base, Method::GET, "/api/v1/series", &a3, None).await;
    assert_eq!(r.code, 401);
    // a disabled user: sessions end, sign-in refused, personal tokens stop
    let r = send(
        &base,
        Method::POST,
        "/api/v1/auth/tokens",
        &a1,
        Some(json!({"name": "ci"})),
    )
    .await;
    let tok = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            &base,
            Method::GET,
            "/api/v1/series",
            &Cred::bearer(&tok),
            None
        )
        .await
        .code,
        200
    );
    let r = send(
        &base,
        Method::PATCH,
        "/api/v1/users/ann@example.com",
        &Cred::bearer(BOOT),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.text);
    for c in [&a1, &Cred::bearer(&tok)] {
        assert_eq!(
            send(&base, Method::GET, "/api/v1/series", c, None)
                .await
                .code,
            401
        );
    }
    let r = send(
        &base,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::default(),
        Some(json!({"email": "ann@example.com", "password": "a much longer new password"})),
    )
    .await;
    assert_eq!(r.code, 401, "{}", r.text);
    assert_no_secrets(
        &[PW, "a much longer new password", &tok, BOOT],
        &[&a1, &a2, &a3, &bob],
    );
    running.stop().await.unwrap();
}

/// A change each mutating route makes for real, with the audit action it records.
struct Change {
    method: &'static str,
    path: &'static str,
    action: &'static str,
}

const CHANGES: &[Change] = &[
    Change {
        method: "post",
        path: "/api/v1/auth/login",
        action: "auth.login",
    },
    Change {
        method: "post",
        path: "/api/v1/auth/password",
        action: "user.password",
    },
    Change {
        method: "post",
        path: "/api/v1/auth/tokens",
        action: "token.create",
    },
    Change {
        method: "delete",
        path: "/api/v1/auth/tokens/{id}",
        action: "token.revoke",
    },
    Change {
        method: "post",
        path: "/api/v1/users",
        action: "user.create",
    },
    Change {
        method: "patch",
        path: "/api/v1/users/{id}",
        action: "user.update",
    },
    Change {
        method: "post",
        path: "/api/v1/users/{id}/password",
        action: "user.password",
    },
    Change {
        method: "post",
        path: "/api/v1/users/{id}/tokens",
        action: "token.create",
    },
    Change {
        method: "delete",
        path: "/api/v1/users/{id}/tokens/{token}",
        action: "token.revoke",
    },
    Change {
        method: "post",
        path: "/api/v1/sites",
        action: "site.create",
    },
    Change {
        method: "post",
        path: "/api/v1/violations/{id}/ack",
        action: "violation.ack",
    },
    Change {
        method: "post",
        path: "/api/v1/violations/{id}/resolve",
        action: "violation.resolve",
    },
    Change {
        method: "post",
        path: "/api/v1/baselines/rebaseline",
        action: "baseline.set",
    },
    Change {
        method: "put",
        path: "/api/v1/rules/{scope_kind}/{scope_value}",
        action: "rules.set",
    },
    Change {
        method: "post",
        path: "/api/v1/channels",
        action: "channel.create",
    },
    Change {
        method: "put",
        path: "/api/v1/channels/{name}",
        action: "channel.update",
    },
    Change {
        method: "post",
        path: "/api/v1/channels/{name}/test",
        action: "channel.test",
    },
    Change {
        method: "delete",
        path: "/api/v1/channels/{name}",
        action: "channel.delete",
    },
    Change {
        method: "post",
        path: "/api/v1/routes",
        action: "route.create",
    },
    Change {
        method: "delete",
        path: "/api/v1/routes/{id}",
        action: "route.delete",
    },
    Change {
        method: "post",
        path: "/api/v1/silences",
        action: "silence.create",
    },
    Change {
        method: "delete",
        path: "/api/v1/silences/{id}",
        action: "silence.expire",
    },
    Change {
        method: "post",
        path: "/api/v1/tokens",
        action: "token.create",
    },
    Change {
        method: "delete",
        path: "/api/v1/tokens/{id}",
        action: "token.revoke",
    },
    Change {
        method: "post",
        path: "/api/v1/slos",
        action: "slo.create",
    },
    Change {
        method: "put",
        path: "/api/v1/slos/{id}",
        action: "slo.update",
    },
    Change {
        method: "delete",
        path: "/api/v1/slos/{id}",
        action: "slo.delete",
    },
    Change {
        method: "put",
        path: "/api/v1/prices",
        action: "price.set",
    },
    Change {
        method: "delete",
        path: "/api/v1/prices/{provider}/{model}",
        action: "price.delete",
    },
    Change {
        method: "post",
        path: "/api/v1/budgets",
        action: "budget.create",
    },
    Change {
        method: "put",
        path: "/api/v1/budgets/{id}",
        action: "budget.update",
    },
    Change {
        method: "delete",
        path: "/api/v1/budgets/{id}",
        action: "budget.delete",
    },
    Change {
        method: "post",
        path: "/api/v1/auth/logout",
        action: "auth.logout",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_writes_one_audit_entry_with_its_actor() {
    // every mutating route of the table has a change here (a new route without one fails)
    let listed: BTreeSet<(&str, &str)> = ENDPOINTS
        .iter()
        .filter(|e| e.method != "get")
        .map(|e| (e.method, e.path))
        .collect();
    let covered: BTreeSet<(&str, &str)> = CHANGES.iter().map(|c| (c.method, c.path)).collect();
    assert_eq!(
        listed, covered,
        "each mutating route needs an audited change below"
    );

    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let w = world(&db).await;
        let base = w.base.clone();
        let boot = Cred::bearer(BOOT);
        create_user(&base, "root@example.com", "admin", None).await;
        create_user(&base, "ed@example.com", "editor", None).await;
        let ad = login(&base, "root@example.com", PW).await;
        let ed = login(&base, "ed@example.com", PW).await;
        let count = || {
            let (base, boot) = (base.clone(), boot.clone());
            async move {
                send(&base, Method::GET, "/api/v1/audit?limit=1000", &boot, None)
                    .await
                    .json()["items"]
                    .as_array()
                    .unwrap()
                    .clone()
            }
        };
        let mut before = count().await.len();
        let mut ids: std::collections::HashMap<&str, String> = Default::default();
        for c in CHANGES {
            // who acts: the editor for an editor's changes, the admin otherwise
            let policy = ENDPOINTS
                .iter()
                .find(|e| e.method == c.method && e.path == c.path)
                .unwrap()
                .access;
            let (cred, actor) = match policy {
                Access::Role(Role::Editor) => (ed.clone(), "ed@example.com"),
                _ => (ad.clone(), "root@example.com"),
            };
            let (path, body): (String, Option<Value>) = match (c.method, c.path) {
                ("post", "/api/v1/auth/login") => (
                    c.path.into(),
                    Some(json!({"email": "root@example.com", "password": PW})),
                ),
                ("post", "/api/v1/auth/password") => (
                    c.path.into(),
                    Some(json!({"current": PW, "new": "another long password"})),
                ),
                ("post", "/api/v1/auth/tokens") => (c.path.into(), Some(json!({"name": "mine"}))),
                ("delete", "/api/v1/auth/tokens/{id}") => {
                    (format!("/api/v1/auth/tokens/{}", ids["mine"]), None)
                }
                ("post", "/api/v1/users") => (
                    c.path.into(),
                    Some(json!({"email": "new@example.com", "role": "viewer", "sites": [EU]})),
                ),
                ("patch", "/api/v1/users/{id}") => (
                    "/api/v1/users/new@example.com".into(),
                    Some(json!({"role": "editor", "name": "New Person"})),
                ),
                ("post", "/api/v1/users/{id}/password") => {
                    ("/api/v1/users/new@example.com/password".into(), None)
                }
                ("post", "/api/v1/users/{id}/tokens") => (
                    "/api/v1/users/new@example.com/tokens".into(),
                    Some(json!({"name": "theirs"})),
                ),
                ("delete", "/api/v1/users/{id}/tokens/{token}") => (
                    format!("/api/v1/users/new@example.com/tokens/{}", ids["theirs"]),
                    None,
                ),
                ("post", "/api/v1/sites") => (c.path.into(), Some(json!({"name": "ap-south"}))),
                ("post", "/api/v1/violations/{id}/ack") => (
                    format!("/api/v1/violations/{}/ack", w.eu_violation),
                    Some(json!({"note": "looking"})),
                ),
                ("post", "/api/v1/violations/{id}/resolve") => (
                    format!("/api/v1/violations/{}/resolve", w.eu_violation),
                    Some(json!({"note": "fixed"})),
                ),
                ("post", "/api/v1/baselines/rebaseline") => {
                    let to = now_ns() / 1_000_000;
                    (
                        c.path.into(),
                        Some(json!({"site": EU, "model": "m", "metric": "latency_ms",
                            "from": to - 600_000, "to": to, "reason": "deploy"})),
                    )
                }
                ("put", "/api/v1/rules/{scope_kind}/{scope_value}") => (
                    "/api/v1/rules/model/m".into(),
                    Some(json!({"rules": [1, 2, 3]})),
                ),
                ("post", "/api/v1/channels") => (
                    c.path.into(),
                    Some(json!({"name": "hook", "kind": "webhook",
                        "config": {"url": "http://127.0.0.1:9/x?token=ZZSECRET"}, "secret": "s3cr3t-hmac"})),
                ),
                ("put", "/api/v1/channels/{name}") => (
                    "/api/v1/channels/hook".into(),
                    Some(json!({"kind": "webhook", "config": {"url": "http://127.0.0.1:9/y"}})),
                ),
                ("post", "/api/v1/channels/{name}/test") => {
                    ("/api/v1/channels/hook/test".into(), None)
                }
                ("delete", "/api/v1/channels/{name}") => ("/api/v1/channels/hook".into(), None),
                ("post", "/api/v1/routes") => (
                    c.path.into(),
                    Some(json!({"matchers": {"site": EU}, "channels": ["ops"]})),
                ),
                ("delete", "/api/v1/routes/{id}") => {
                    (format!("/api/v1/routes/{}", ids["route"]), None)
                }
                ("post", "/api/v1/silences") => (
                    c.path.into(),
                    Some(json!({"matchers": {"model": "m"},
                        "ends_at": now_ns() / 1_000_000 + 7_200_000, "comment": "rollout"})),
                ),
                ("delete", "/api/v1/silences/{id}") => {
                    (format!("/api/v1/silences/{}", ids["silence"]), None)
                }
                ("post", "/api/v1/tokens") => {
                    (c.path.into(), Some(json!({"site": EU, "name": "agent"})))
                }
                ("delete", "/api/v1/tokens/{id}") => {
                    (format!("/api/v1/tokens/{}", ids["agent"]), None)
                }
                ("post", "/api/v1/slos") => (
                    c.path.into(),
                    Some(
                        json!({"name": "eu ttft", "site": EU, "metric": "ttft_ms", "threshold": 800, "objective": 0.95}),
                    ),
                ),
                ("put", "/api/v1/slos/{id}") => (
                    format!("/api/v1/slos/{}", ids["slo"]),
                    Some(
                        json!({"name": "eu ttft", "site": EU, "metric": "ttft_ms", "threshold": 900, "objective": 0.95}),
                    ),
                ),
                ("delete", "/api/v1/slos/{id}") => (format!("/api/v1/slos/{}", ids["slo"]), None),
                ("put", "/api/v1/prices") => (
                    c.path.into(),
                    Some(
                        json!({"provider": "p", "model": "m", "input_per_m": 0.5, "output_per_m": 1.5}),
                    ),
                ),
                ("delete", "/api/v1/prices/{provider}/{model}") => {
                    ("/api/v1/prices/p/m".into(), None)
                }
                ("post", "/api/v1/budgets") => (
                    c.path.into(),
                    Some(json!({"name": "eu", "site": EU, "monthly": 1000})),
                ),
                ("put", "/api/v1/budgets/{id}") => (
                    format!("/api/v1/budgets/{}", ids["budget"]),
                    Some(json!({"name": "eu", "site": EU, "monthly": 2000})),
                ),
                ("delete", "/api/v1/budgets/{id}") => {
                    (format!("/api/v1/budgets/{}", ids["budget"]), None)
                }
                ("post", "/api/v1/auth/logout") => (c.path.into(), None),
                other => panic!("no change for {other:?}"),
            };
            let m: Method = c.method.to_uppercase().parse().unwrap();
            let cred = if c.path == "/api/v1/auth/login" {
                Cred::default()
            } else {
                cred
            };
            let r = send(&base, m, &path, &cred, body).await;
            assert!(
                (200..300).contains(&r.code),
                "{} {path}: {} {}",
                c.method,
                r.code,
                r.text
            );
            let v = r.json();
            match c.path {
                "/api/v1/auth/tokens" => ids.insert("mine", v["id"].as_str().unwrap().into()),
                "/api/v1/users/{id}/tokens" => {
                    ids.insert("theirs", v["id"].as_str().unwrap().into())
                }
                "/api/v1/routes" => {
                    ids.insert("route", v["id"].to_string().trim_matches('"').into())
                }
                "/api/v1/silences" => ids.insert("silence", v["id"].as_str().unwrap().into()),
                "/api/v1/tokens" => ids.insert("agent", v["id"].as_str().unwrap().into()),
                "/api/v1/slos" => ids.insert("slo", v["id"].as_str().unwrap().into()),
                "/api/v1/budgets" => ids.insert("budget", v["id"].as_str().unwrap().into()),
                _ => None,
            };
            let entries = count().await;
            assert_eq!(
                entries.len(),
                before + 1,
                "{} {path} writes one entry: {:?}",
                c.method,
                &entries[..entries.len().min(3)]
            );
            before = entries.len();
            let e = &entries[0];
            assert_eq!(e["action"], c.action, "{e}");
            assert_eq!(e["actor"], actor, "{e}");
            assert_eq!(e["client"], "127.0.0.1", "{e}");
            let text = e.to_string();
            for secret in [
                "ZZSECRET",
                "s3cr3t-hmac",
                PW,
                "another long password",
                "$argon2",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            if c.path == "/api/v1/users/{id}" {
                assert_eq!(
                    (e["before"]["role"].as_str(), e["after"]["role"].as_str()),
                    (Some("viewer"), Some("editor")),
                    "before → after: {e}"
                );
            }
        }
        // the violation names who acted, not a free-text name
        let v = send(
            &base,
            Method::GET,
            &format!("/api/v1/violations/{}", w.eu_violation),
            &boot,
            None,
        )
        .await
        .json();
        assert_eq!(v["acked_by"], "ed@example.com", "{v}");
        // filters, paging, CSV
        let page = send(&base, Method::GET, "/api/v1/audit?limit=2", &boot, None)
            .await
            .json();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        let next = page["next_cursor"].as_str().unwrap();
        let page2 = send(
            &base,
            Method::GET,
            &format!("/api/v1/audit?limit=2&cursor={next}"),
            &boot,
            None,
        )
        .await
        .json();
        assert!(page2["items"][0]["id"].as_i64() < page["items"][1]["id"].as_i64());
        let chans = send(
            &base,
            Method::GET,
            "/api/v1/audit?action=channel.",
            &boot,
            None,
        )
        .await
        .json();
        let actions: Vec<&str> = chans["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "channel.delete",
                "channel.test",
                "channel.update",
                "channel.create"
            ]
        );
        let by_ed = send(
            &base,
            Method::GET,
            "/api/v1/audit?actor=ed@example.com",
            &boot,
            None,
        )
        .await
        .json();
        assert!(
            by_ed["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["actor"] == "ed@example.com")
        );
        let r = send(&base, Method::GET, "/api/v1/audit?limit=0", &boot, None).await;
        assert_eq!((r.code, r.json()["field"].as_str()), (400, Some("limit")));
        let csv = send(
            &base,
            Method::GET,
            "/api/v1/audit.csv?action=user.",
            &boot,
            None,
        )
        .await;
        assert_eq!(csv.code, 200);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            csv.text
                .starts_with("id,at,actor,role,client,action,target,before,after")
                && csv.text.contains("user.create"),
            "{}",
            csv.text
        );
        // append-only: the database refuses to rewrite history
        assert!(
            llmscope_store::testing::rewrite_audit(&w.running.store)
                .await
                .is_err(),
            "an update of the audit table is refused"
        );
        w.running.stop().await.unwrap();
        db.drop_db().await;
    }
    assert_no_secrets(
        &[PW, "another long password", "s3cr3t-hmac", "ZZSECRET", BOOT],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_urls_are_masked_and_shown_to_admins_only() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&cfg(&db)).await;
    let base = format!("http://{}", running.http_addr);
    create_user(&base, "v@example.com", "viewer", None).await;
    let v = login(&base, "v@example.com", PW).await;
    let admin = send(
        &base,
        Method::GET,
        "/api/v1/channels",
        &Cred::bearer(BOOT),
        None,
    )
    .await;
    assert_eq!(admin.code, 200);
    let url = admin.json()[0]["config"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, "http://***@127.0.0.1:9/hook?***");
    let viewer = send(&base, Method::GET, "/api/v1/channels/ops", &v, None).await;
    assert_eq!(viewer.code, 200);
    assert!(viewer.json()["config"].is_null(), "{}", viewer.text);
    for r in [&admin, &viewer] {
        for bad in ["hookuser", "hookpass", "QUERYSECRET", "hmac-secret"] {
            assert!(!r.text.contains(bad), "{bad} in {}", r.text);
        }
    }
    // a test send answers with the status and a short excerpt, not the receiver's page
    let r = send(
        &base,
        Method::POST,
        "/api/v1/channels/ops/test",
        &Cred::bearer(BOOT),
        None,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.text);
    assert_eq!(r.json()["ok"], false);
    assert!(
        !r.text.contains("hookpass") && !r.text.contains("QUERYSECRET"),
        "{}",
        r.text
    );
    running.stop().await.unwrap();

    // alerts.deny_private_targets: internal targets are refused when saved and when sent
    let mut c = cfg(&db);
    c.alerts.deny_private_targets = true;
    let running = start(&c).await;
    let base = format!("http://{}", running.http_addr);
    for url in [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://localhost:9/x",
    ] {
        let r = send(
            &base,
            Method::POST,
            "/api/v1/channels",
            &Cred::bearer(BOOT),
            Some(json!({"name": "inner", "kind": "webhook", "config": {"url": url}})),
        )
        .await;
        assert_eq!(
            (r.code, r.json()["field"].as_str()),
            (400, Some("config.url")),
            "{url}: {}",
            r.text
        );
        assert!(r.text.contains("deny_private_targets"), "{}", r.text);
    }
    // the config channel points at 127.0.0.1: its test send is refused too
    let r = send(
        &base,
        Method::POST,
        "/api/v1/channels/ops/test",
        &Cred::bearer(BOOT),
        None,
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.text);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_refuses_control_characters_and_garbage() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&cfg(&db)).await;
    let tok = ingest_token(&running.store, EU).await;
    let mut c = v1::ingest_service_client::IngestServiceClient::connect(format!(
        "http://{}",
        running.grpc_addr
    ))
    .await
    .unwrap();
    let mut samples = vec![
        common::sample(EU, "eu-gpu", 100.0),
        common::sample(EU, "eu-gpu", 100.0),
        common::sample(EU, "eu-gpu", 100.0),
        common::sample(EU, "eu-gpu", 100.0),
        common::sample(EU, "eu-gpu", 100.0),
    ];
    samples[0].model = "a\nd".into();
    samples[1].host = "gpu\u{202e}1".into();
    samples[2].provider = "nul\0".into();
    samples[3]
        .labels
        .insert("team".into(), "ops\r\nX-Injected: 1".into());
    let mut req = tonic::Request::new(v1::IngestRequest {
        batch_seq: 1,
        samples,
        telemetry: vec![],
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let ack = c.push(req).await.unwrap().into_inner();
    assert_eq!(ack.accepted_samples, 1, "{ack:?}");
    let fields: Vec<(&str, &str)> = ack
        .rejected
        .iter()
        .map(|r| (r.field.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(fields.len(), 4, "{fields:?}");
    assert_eq!(fields[0].0, "model", "{fields:?}");
    assert_eq!(fields[1].0, "host", "{fields:?}");
    assert_eq!(fields[2].0, "provider", "{fields:?}");
    assert!(fields[3].0.starts_with("labels"), "{fields:?}");
    for (_, reason) in &fields {
        assert!(
            !reason.contains('\n') && !reason.contains('\u{202e}') && !reason.contains('\0'),
            "the reason itself is clean: {reason:?}"
        );
    }
    // bytes that are not a protobuf message: INVALID_ARGUMENT
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(ch);
    raw.ready().await.unwrap();
    let mut req = tonic::Request::new(vec![0xffu8, 0xff, 0xff, 0xff, 0x0f, 0x08]);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let e = raw
        .unary::<Vec<u8>, Vec<u8>, _>(
            req,
            "/llmscope.v1.IngestService/Push".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // no log line is split by a name
    let log = log_text();
    assert!(
        !log.lines().any(|l| l.trim_start() == "d"),
        "a log line split by `a\\nd`"
    );
    running.stop().await.unwrap();
}

/// Sends and receives raw bytes on a gRPC method.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&cfg(&db)).await;
    let t = tokio::time::Instant::now();
    // HTTP: half a request head, then nothing
    let mut http = tokio::net::TcpStream::connect(running.http_addr)
        .await
        .unwrap();
    http.write_all(b"GET /api/v1/series HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // gRPC: a connection that never says anything
    let mut grpc = tokio::net::TcpStream::connect(running.grpc_addr)
        .await
        .unwrap();
    assert!(closed(&mut http).await, "the HTTP connection is closed");
    let http_after = t.elapsed();
    assert!(closed(&mut grpc).await, "the gRPC connection is closed");
    let grpc_after = t.elapsed();
    // the server closed them, not our 30 s patience
    assert!(
        http_after < Duration::from_secs(25) && grpc_after < Duration::from_secs(25),
        "{http_after:?} {grpc_after:?}"
    );
    // a normal request still works
    let r = send(
        &format!("http://{}", running.http_addr),
        Method::GET,
        "/api/v1/series",
        &Cred::bearer(BOOT),
        None,
    )
    .await;
    assert_eq!(r.code, 200);
    running.stop().await.unwrap();
}

/// Whether the peer closes `s` within 30 s (reading whatever it sends).
async fn closed(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn every_route_has_a_policy_and_the_guard_reads_the_same_table() {
    use llmscope_collector::access::guard::policy_of;
    for e in ENDPOINTS {
        let m: Method = e.method.to_uppercase().parse().unwrap();
        assert_eq!(
            policy_of(&m, e.path),
            Some(e.access),
            "{} {}",
            e.method,
            e.path
        );
    }
    assert_eq!(policy_of(&Method::GET, "/api/v1/not-a-route"), None);
}
