//! `llmscope-collector`: the central LLMscope service and its command-line tools.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use llmscope_collector::{analyze, otel};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Analyze(args) = &cli.command {
        let stdout = std::io::stdout();
        return match analyze::run(args, &mut stdout.lock(), &mut std::io::stderr()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // traces (when OTEL_* asks for them) only from `serve`; the exporter lives on the runtime
    let telemetry = {
        let _rt = runtime.enter();
        otel::init(
            "llmscope-collector",
            matches!(cli.command, Command::Serve(_)),
        )
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve::run(args).await,
            Command::Token(cmd) => cli::token::run(cmd).await,
            Command::Analyze(_) => Ok(()),
            Command::Baseline(cmd) => cli::baseline::run(cmd).await,
            Command::Rules(cmd) => cli::rules::run(cmd).await,
            Command::Violations(cmd) => cli::violations::run(cmd).await,
            Command::User(cmd) => cli::user::run(cmd).await,
            Command::Audit(cmd) => cli::audit::run(cmd).await,
        }
    });
    // outside block_on, with the runtime alive: the last spans go out
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes in one line, each cause once: error types that also print their
/// source in their own message would otherwise repeat it (`database: X: X`).
fn one_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_message;

    #[derive(Debug, thiserror::Error)]
    #[error("database: {0}")]
    struct Db(#[from] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("pool timed out");
        let e = anyhow::Error::new(Db(io)).context("cannot start");
        assert_eq!(one_message(&e), "cannot start: database: pool timed out");
    }
}
