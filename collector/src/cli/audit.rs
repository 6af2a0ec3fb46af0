//! `llmscope-collector audit list`: the audit log, newest first.

use clap::Subcommand;
use llmscope_store::audit::AuditFilter;

use super::{ConfigArgs, ListFormat, fmt_us, open_store, parse_time, print_list};

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries, newest first.
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Only this actor (an email, `token:<id>`, `admin-token`, `cli:<user>`).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, or a prefix ending in `.` (`channel.`).
        #[arg(long)]
        action: Option<String>,
        /// Only targets containing this text.
        #[arg(long)]
        target: Option<String>,
        /// Since (RFC 3339, or relative like -24h).
        #[arg(long)]
        since: Option<String>,
        /// Most entries.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::List {
            cfg,
            actor,
            action,
            target,
            since,
            limit,
            format,
        } => {
            let store = open_store(&cfg).await?;
            let from = since.as_deref().map(parse_time).transpose()?;
            let rows = store
                .list_audit(
                    &AuditFilter {
                        actor,
                        action,
                        target,
                        from,
                        ..AuditFilter::default()
                    },
                    limit,
                )
                .await?;
            let columns = [
                ("AT (UTC)", 20),
                ("ACTOR", 28),
                ("ROLE", 7),
                ("ACTION", 18),
                ("TARGET", 30),
                ("CLIENT", 0),
            ];
            print_list(format, &rows, &columns, |r| {
                let e = &r.entry;
                vec![
                    fmt_us(e.at),
                    e.actor.clone(),
                    e.role.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.client.clone(),
                ]
            })?;
        }
    }
    Ok(())
}
