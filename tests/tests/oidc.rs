//! Single sign-on with a real OpenID provider (`oidc-provider`, the certified Node.js
//! implementation) and a real browser: a collector on SQLite with `[auth.oidc]` in strict mode,
//! seeded with two sites, then `scripts/test-oidc.sh` starts the provider and drives
//! `web/tests/oidc-e2e.mjs` in headless Chromium (sign in as an admin and as a site-limited
//! viewer through the provider's login and consent pages, an unmapped user refused, a forged
//! callback refused, a disabled user refused). Afterwards the users and the audit log are
//! checked from outside: who was created on first sign-in, by whom, and who was not.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use llmscope_e2e::{Collector, collector_cmd, free_port, http_get_as, wait_until};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use serde_json::Value;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Ten samples of one model on `site`, one second apart.
async fn seed(grpc: &str, token: &str, site: &str) {
    let mut c = IngestServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let end = now_ns() - 1_000_000_000;
    let samples = (0..10i64)
        .map(|i| v1::Sample {
            id: uuid::Uuid::now_v7().to_string(),
            ts_unix_nanos: end - (9 - i) * 1_000_000_000,
            site: site.into(),
            host: format!("{site}-gpu-1"),
            provider: "vllm".into(),
            model: "llama3".into(),
            source: v1::Source::Probe as i32,
            latency_ms: 200.0 + i as f64,
            status: v1::CallStatus::Ok as i32,
            http_status: Some(200),
            ..Default::default()
        })
        .collect();
    let mut r = tonic::Request::new(IngestRequest {
        batch_seq: 1,
        samples,
        telemetry: vec![],
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let ack = c.push(r).await.unwrap().into_inner();
    assert!(ack.rejected.is_empty(), "rejected: {:?}", ack.rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_with_a_real_openid_provider_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let eu = collector_cmd(&["token", "create", "--site", "eu", "--database-url", &url]).await;
    let us = collector_cmd(&["token", "create", "--site", "us", "--database-url", &url]).await;
    let (idp_port, http_port) = (free_port(), free_port());
    let callback = format!("http://127.0.0.1:{http_port}/api/v1/auth/oidc/callback");
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[auth.oidc]
name = "Example IdP"
issuer = "http://127.0.0.1:{idp_port}"
client_id = "llmscope"
client_secret_env = "E2E_OIDC_SECRET"
scopes = ["email", "profile", "groups"]
redirect_url = "{callback}"
role_claim = "groups"
sites_claim = "sites"
strict = true

[auth.oidc.role_map]
llmscope-admins = "admin"
eu-team = "viewer"
"#
        ),
    )
    .unwrap();
    let admin = format!("llms_oidc_admin_{}", uuid::Uuid::new_v4().simple());
    let http_listen = format!("127.0.0.1:{http_port}");
    let log = dir.path().join("collector.log");
    let collector = Collector::start_logged(
        &url,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--http-listen",
            &http_listen,
        ],
        &[
            ("LLMSCOPE_ADMIN_TOKEN", &admin),
            ("E2E_OIDC_SECRET", "e2e-client-secret"),
        ],
        &log,
    )
    .await;
    seed(&collector.grpc, &eu, "eu").await;
    seed(&collector.grpc, &us, "us").await;
    let listed = wait_until(Duration::from_secs(30), || {
        let (http, admin) = (collector.http.clone(), admin.clone());
        async move {
            let s: Value =
                serde_json::from_str(&http_get_as(&http, "/api/v1/series", Some(&admin)).await)
                    .unwrap_or(Value::Null);
            s.as_array().is_some_and(|a| a.len() == 2)
        }
    })
    .await;
    assert!(listed, "both sites' series listed within 30 s");

    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/test-oidc.sh"))
        .current_dir(&root)
        .env("OIDC_PORT", idp_port.to_string())
        .env("OIDC_REDIRECT", &callback)
        .env("LLMSCOPE_URL", format!("http://{}", collector.http))
        .env("LLMSCOPE_ADMIN_TOKEN", &admin)
        .env("LLMSCOPE_SCREENSHOTS", root.join("artifacts/screenshots"))
        .output()
        .await
        .expect("bash scripts/test-oidc.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "scripts/test-oidc.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}\n{stderr}");

    // the users, as an admin sees them: created on first sign-in with the mapped role and
    // sites; carol (no mapped group, strict) has no account
    let users: Value =
        serde_json::from_str(&http_get_as(&collector.http, "/api/v1/users", Some(&admin)).await)
            .unwrap();
    let items = users.as_array().unwrap_or_else(|| panic!("{users}"));
    let find = |email: &str| items.iter().find(|u| u["email"] == email).cloned();
    let alice = find("alice@example.com").expect("alice created");
    assert_eq!(alice["role"], "admin");
    assert!(alice["sites"].is_null(), "{alice}");
    assert_eq!(alice["oidc"], true);
    let bob = find("bob@example.com").expect("bob created");
    assert_eq!(bob["role"], "viewer");
    assert_eq!(bob["sites"], serde_json::json!(["eu"]));
    assert_eq!(bob["disabled"], true, "{bob}");
    assert!(find("carol@example.com").is_none(), "{users}");

    // the audit log: each creation by the user signing in, sign-ins, the disabling by the
    // admin token; nothing for carol
    let audit = collector_cmd(&["audit", "list", "--database-url", &url, "--limit", "100"]).await;
    let line = |action: &str, target: &str| {
        audit
            .lines()
            .any(|l| l.contains(action) && l.contains(target))
    };
    assert!(line("user.create", "user:alice@example.com"), "{audit}");
    assert!(line("user.create", "user:bob@example.com"), "{audit}");
    assert!(line("auth.login", "user:alice@example.com"), "{audit}");
    assert!(line("auth.logout", "user:alice@example.com"), "{audit}");
    assert!(line("user.disable", "user:bob@example.com"), "{audit}");
    assert!(!audit.contains("carol"), "{audit}");
    assert!(collector.terminate().await);

    // the whole log: sign-ins are logged, the client secret, the admin token, session cookies
    // and codes are not
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("signed in with single sign-on"), "{text}");
    for secret in [
        "e2e-client-secret",
        admin.as_str(),
        "llmscope_session=",
        "code=",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` in the collector log:\n{text}"
        );
    }
}
