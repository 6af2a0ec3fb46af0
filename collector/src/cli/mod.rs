//! The command line: `serve`, `token`, `analyze`, `baseline`, `rules`, `violations`, `user`,
//! `audit`; one file
//! per command group. This is the binary's edge: errors are `anyhow` here and nowhere else.

pub mod audit;
pub mod baseline;
pub mod rules;
pub mod serve;
pub mod token;
pub mod user;
pub mod violations;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use llmscope_collector::analyze;
use llmscope_collector::config::{Config, Overrides, redact_url};
use llmscope_store::Store;

/// LLMscope collector: statistical process control for LLM inference latency.
#[derive(Debug, Parser)]
#[command(name = "llmscope-collector", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    /// The command.
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: gRPC ingest, storage, HTTP health endpoints.
    Serve(serve::ServeArgs),
    /// Manage ingest and admin tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Run SPC (all eight Nelson rules) over a file of values, offline.
    Analyze(analyze::AnalyzeArgs),
    /// Show baselines, or re-baseline series from a time range.
    #[command(subcommand)]
    Baseline(baseline::BaselineCmd),
    /// Show or change rule configuration (global, per model, per site; applied live).
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// List and acknowledge violations.
    #[command(subcommand)]
    Violations(violations::ViolationsCmd),
    /// Manage users (roles, sites, passwords) and their personal API tokens.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
}

/// Where the configuration comes from (shared by every subcommand that opens the database).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "LLMSCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER@HOST:PORT/DB
    /// [default: sqlite://./llmscope-data/llmscope.db]
    #[arg(long)]
    pub database_url: Option<String>,
}

/// How lists are printed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

pub fn load_config(cfg: &ConfigArgs, flags: Overrides) -> anyhow::Result<Config> {
    let flags = Overrides {
        database_url: cfg.database_url.clone().or(flags.database_url),
        ..flags
    };
    Ok(Config::load(
        cfg.config.as_deref(),
        std::env::vars(),
        &flags,
    )?)
}

pub async fn open_store(cfg: &ConfigArgs) -> anyhow::Result<Store> {
    let config = load_config(cfg, Overrides::default())?;
    Store::connect(&config.database_url, 2)
        .await
        .with_context(|| format!("cannot open {}", redact_url(&config.database_url)))
}

/// An audit entry of a change made with the command line: the actor is `cli:<OS user>` with
/// the admin role (whoever can run the binary against the database can do anything).
pub fn cli_audit(action: &str, target: impl Into<String>) -> llmscope_store::audit::Audit {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // no login environment (a container, a service): the numeric user id
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next().map(|u| format!("uid {u}")))
                })
                .unwrap_or_else(|| "unknown".into())
        });
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    llmscope_store::audit::Audit {
        at: llmscope_model::now_us(),
        actor: format!("cli:{user}"),
        role: "admin".into(),
        client: format!("cli@{host}"),
        action: action.to_owned(),
        target: target.into(),
        before: None,
        after: None,
    }
}

/// RFC 3339, `now`, or a relative time like `-2h` / `-30m`, as Unix µs.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    let now = llmscope_model::now_us();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .map_err(|e| anyhow::anyhow!("`{s}`: {e}; use e.g. -2h, -30m or an RFC 3339 time"))?;
        return Ok(now - d.as_micros() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        anyhow::anyhow!("`{s}`: {e}; use RFC 3339 (2026-11-29T14:00:00Z), `now` or -2h")
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0))
}

pub fn fmt_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_owned()
}

/// Prints `items` as JSON, or as a table whose `columns` are (header, width): a negative
/// width right-aligns, 0 leaves the (last) column unpadded; `row` gives an item's cells.
pub fn print_list<T: serde::Serialize>(
    format: ListFormat,
    items: &[T],
    columns: &[(&str, isize)],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(items)?),
        ListFormat::Table => {
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(columns)
                    .map(|(c, (_, w))| match *w {
                        0 => c.clone(),
                        w if w < 0 => format!("{c:>width$}", width = w.unsigned_abs()),
                        w => format!("{c:<width$}", width = w.unsigned_abs()),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "{}",
                line(columns.iter().map(|(h, _)| h.to_string()).collect())
            );
            for item in items {
                println!("{}", line(row(item)));
            }
        }
    }
    Ok(())
}
