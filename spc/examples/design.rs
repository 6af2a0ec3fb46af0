//! Prints the paging CUSUM's design for a range of Phase I sizes and targets:
//! `cargo run -p llmscope-spc --example design [-- ARL0...]` (per-series targets; default
//! 2 000, 20 000, 200 000 — the last is the live default: 100 000 probes per model-host shared
//! by two paging series).

#![allow(missing_docs)]

use llmscope_spc::detect::design_cusum;

fn main() {
    let mut targets: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if targets.is_empty() {
        targets = vec![2_000.0, 20_000.0, 200_000.0];
    }
    println!(
        "| ARL0 (per series) | Phase I | h | h (known parameters) | P(CARL0 ≥ target) | P(CARL0 ≥ target/2) | median CARL0 | ARL 1σ | ARL 2σ |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for arl0 in targets {
        for n in [20, 30, 50, 80, 100, 150, 200, 300, 400, 500, 1000] {
            match design_cusum(0.5, arl0, n) {
                Ok(d) => println!(
                    "| {arl0:.0} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} |",
                    d.h,
                    d.h_known,
                    d.p_target,
                    d.p_half,
                    d.median_arl0,
                    d.arl(1.0),
                    d.arl(2.0)
                ),
                Err(e) => println!("| {arl0:.0} | {n} | {e} |||||||"),
            }
        }
    }
}
