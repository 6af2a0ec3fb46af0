//! `llmscope-agent`: runs on each inference host; probes model servers, times real traffic
//! through a proxy, samples telemetry and ships everything to the collector.

fn main() {
    eprintln!("llmscope-agent: not implemented yet in this release");
    std::process::exit(2);
}
