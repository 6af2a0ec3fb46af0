//! `llmscope-collector`: the central LLMscope service and its command-line tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmscope_collector::analyze;

/// LLMscope collector: statistical process control for LLM inference latency.
#[derive(Debug, Parser)]
#[command(name = "llmscope-collector", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SPC (all eight Nelson rules) over a file of values, offline.
    Analyze(analyze::AnalyzeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => {
            let stdout = std::io::stdout();
            match analyze::run(&args, &mut stdout.lock(), &mut std::io::stderr()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
