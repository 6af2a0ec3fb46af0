//! End-to-end harness for LLMscope: starts collectors (and later agents) as real processes,
//! reads their machine-readable ready line, and waits on conditions rather than sleeps.

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

/// A started collector process.
pub struct Collector {
    child: Child,
    /// gRPC address it listens on.
    pub grpc: String,
    /// HTTP address it listens on.
    pub http: String,
}

impl Collector {
    /// Starts `llmscope-collector serve` with extra args on random local ports and waits for
    /// its ready line (at most 60 s).
    pub async fn start(database_url: &str, extra: &[&str]) -> Collector {
        let mut child = Command::new(bin("llmscope-collector"))
            .args(["serve", "--database-url", database_url])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("LLMSCOPE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn collector");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("llmscope-collector ready") {
                    return line;
                }
            }
            panic!("collector exited before it was ready");
        })
        .await
        .expect("collector ready within 60 s");
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .expect("ready line field")
                .to_owned()
        };
        Collector {
            grpc: field("grpc="),
            http: field("http="),
            child,
        }
    }

    /// SIGKILL: no chance to flush or ack anything.
    pub async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub async fn terminate(mut self) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await,
            Ok(Ok(s)) if s.success()
        )
    }
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
