//! `llmscope-collector violations list|ack`.

use clap::Subcommand;
use llmscope_model::{ViolationStatus, now_us};

use super::{ConfigArgs, ListFormat, fmt_us, open_store, print_list};

/// `violations` commands.
#[derive(Debug, Subcommand)]
pub enum ViolationsCmd {
    /// List violations, newest first.
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// open or resolved.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Acknowledge a violation.
    Ack {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Violation id.
        id: String,
        /// Who acknowledges.
        #[arg(long)]
        by: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Runs a `violations` command.
pub async fn run(cmd: ViolationsCmd) -> anyhow::Result<()> {
    match cmd {
        ViolationsCmd::List {
            cfg,
            status,
            limit,
            format,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(s.parse::<ViolationStatus>().map_err(|_| {
                    anyhow::anyhow!("--status `{s}`: use {}", ViolationStatus::names())
                })?),
            };
            let store = open_store(&cfg).await?;
            let rows = store.list_violations(status, limit).await?;
            let columns = [
                ("ID", 36),
                ("STATUS", 8),
                ("RULE", 4),
                ("OPENED (UTC)", 20),
                ("ACKED", 9),
                ("SERIES", 0),
            ];
            print_list(format, &rows, &columns, |v| {
                vec![
                    v.id.clone(),
                    v.status.to_string(),
                    v.rule.to_string(),
                    fmt_us(v.opened_at),
                    v.ack.as_ref().map_or("-".into(), |a| a.by.clone()),
                    v.series.to_string(),
                ]
            })?;
        }
        ViolationsCmd::Ack { cfg, id, by, note } => {
            if by.trim().is_empty() {
                anyhow::bail!("--by must name who acknowledges");
            }
            let store = open_store(&cfg).await?;
            let entry = super::cli_audit("violation.ack", format!("violation:{id}")).change(
                None,
                Some(serde_json::json!({"acked_by": by, "note": note}).to_string()),
            );
            if !store
                .ack_violation(&id, &by, &note, now_us(), Some(&entry))
                .await?
            {
                anyhow::bail!(
                    "no violation with id `{id}` (see `llmscope-collector violations list`)"
                );
            }
            eprintln!("acknowledged {id}");
        }
    }
    Ok(())
}
