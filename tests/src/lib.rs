//! End-to-end harness for LLMscope: starts collectors (and later agents) as real processes,
//! reads their machine-readable ready line, and waits on conditions rather than sleeps.

pub mod fake;
pub mod fake_k8s;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Path of a workspace binary next to the test executable (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> folder");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Reads the child's stdout until the line starting with `prefix` (at most 60 s).
async fn ready_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("the process exited before printing `{prefix}`");
    })
    .await
    .unwrap_or_else(|_| panic!("no `{prefix}` line within 60 s"))
}

/// A started collector process.
pub struct Collector {
    child: Child,
    /// gRPC address it listens on.
    pub grpc: String,
    /// HTTP address it listens on.
    pub http: String,
    /// OTLP/gRPC receiver address (`off` when disabled).
    pub otlp_grpc: String,
    /// OTLP/HTTP receiver address (`off` when disabled).
    pub otlp_http: String,
}

impl Collector {
    /// Starts `llmscope-collector serve` with extra args on random local ports and waits for
    /// its ready line (at most 60 s).
    pub async fn start(database_url: &str, extra: &[&str]) -> Collector {
        Collector::start_with_env(database_url, extra, &[]).await
    }

    /// [`Collector::start`] with extra environment variables (`OTEL_*`, `LLMSCOPE_*`).
    pub async fn start_with_env(
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Collector {
        Collector::spawn(database_url, extra, env, Stdio::inherit()).await
    }

    /// [`Collector::start_with_env`] at log level `info`, its log (stderr) written to `log`
    /// (to look for secrets in it afterwards).
    pub async fn start_logged(
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Collector {
        let file = std::fs::File::create(log).expect("create the collector log file");
        let mut env = env.to_vec();
        env.push(("LLMSCOPE_LOG", "info"));
        Collector::spawn(database_url, extra, &env, Stdio::from(file)).await
    }

    async fn spawn(
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Collector {
        let mut child = Command::new(bin("llmscope-collector"))
            .args(["serve", "--database-url", database_url])
            // every listener on a free local port unless the caller names it (the OTLP
            // receivers' defaults, 4317 and 4318, would collide between tests side by side)
            .args(
                [
                    "--grpc-listen",
                    "--http-listen",
                    "--otlp-grpc-listen",
                    "--otlp-http-listen",
                ]
                .into_iter()
                .filter(|flag| !extra.contains(flag))
                .flat_map(|flag| [flag, "127.0.0.1:0"]),
            )
            .args(extra)
            .env("LLMSCOPE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn collector");
        let line = ready_line(&mut child, "llmscope-collector ready").await;
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .expect("ready line field")
                .to_owned()
        };
        Collector {
            grpc: field("grpc="),
            http: field("http="),
            otlp_grpc: field("otlp_grpc="),
            otlp_http: field("otlp_http="),
            child,
        }
    }

    /// SIGKILL: no chance to flush or ack anything.
    pub async fn kill9(self) {
        kill9(self.child).await;
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub async fn terminate(self) -> bool {
        terminate(self.child, Duration::from_secs(30)).await
    }
}

async fn kill9(mut child: Child) {
    child.kill().await.expect("kill -9");
}

async fn terminate(mut child: Child, within: Duration) -> bool {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    matches!(
        tokio::time::timeout(within, child.wait()).await,
        Ok(Ok(s)) if s.success()
    )
}

/// Runs a `llmscope-collector` subcommand to completion and returns its stdout.
pub async fn collector_cmd(args: &[&str]) -> String {
    let out = Command::new(bin("llmscope-collector"))
        .args(args)
        .output()
        .await
        .expect("run collector command");
    assert!(
        out.status.success(),
        "llmscope-collector {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A started agent process.
pub struct Agent {
    child: Child,
    /// Address of its `/healthz` and `/metrics`.
    pub http: String,
}

impl Agent {
    /// Starts `llmscope-agent --config FILE` and waits for its ready line (at most 60 s).
    pub async fn start(config: &std::path::Path) -> Agent {
        let mut child = Command::new(bin("llmscope-agent"))
            .arg("--config")
            .arg(config)
            .env("LLMSCOPE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn agent");
        let line = ready_line(&mut child, "llmscope-agent ready").await;
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .expect("http= in the ready line")
            .to_owned();
        Agent { child, http }
    }

    /// The agent's `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(&self.http, "/metrics").await
    }

    /// Sum of every series of a counter family in the metrics text.
    pub async fn counter(&self, name: &str) -> f64 {
        sum_metric(&self.metrics().await, name)
    }

    /// SIGKILL.
    pub async fn kill9(self) {
        kill9(self.child).await;
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub async fn terminate(self) -> bool {
        terminate(self.child, Duration::from_secs(40)).await
    }
}

/// Sum of the samples of metric `name` (exact name, any labels) in Prometheus text.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A plain HTTP/1.1 GET over a socket (no client library needed); returns the body.
pub async fn http_get(addr: &str, path: &str) -> String {
    http_get_as(addr, path, None).await
}

/// [`http_get`] with `Authorization: Bearer <token>` when a token is given.
pub async fn http_get_as(addr: &str, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// Polls `cond` every 50 ms until it is true or `timeout` passes; returns whether it held.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free local port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
