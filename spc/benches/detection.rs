//! Detection benchmark: `cargo bench -p llmscope-spc --bench detection [-- quick]`.
//!
//! Prints a Markdown report: measured ARL0 per model-host (probes per false page) on every
//! in-control family, and detection delays (points) for shifts, a drift, a variance change,
//! a single spike, an outage and an error-rate rise — for the defaults and, in the same run,
//! the old default (all eight Nelson rules), rule 1 only and a static p95 threshold alert.
//! See `llmscope_spc::detect::sim` for how each is simulated.

#![allow(missing_docs)]

use std::time::Instant;

use llmscope_spc::detect::sim::{self, Change, Family, Method};

/// Paging series per model-host (a probe: latency and TTFT).
const PAGING: usize = 2;

fn fmt(x: Option<usize>) -> String {
    x.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let started = Instant::now();
    // probes: the defaults need millions to see a handful of false pages
    let (hosts, probes) = if quick { (20, 10_000) } else { (300, 20_000) };
    let runs = if quick { 100 } else { 1000 };
    let series_of = |m: Method| {
        if m == Method::Defaults {
            PAGING
        } else if m == Method::P95 {
            1
        } else {
            4
        }
    };
    let d = sim::default_design(PAGING);
    println!(
        "Design of the defaults: two-sided CUSUM k = {}, h = {:.2} for a designed ARL0 of {:.0} probes per model-host ({} paging series, {:.0} points each), Phase I {} points; h with known parameters {:.2}; a single series reaches the per-series target with probability {:.2}, half of it with {:.2}.\n",
        d.k,
        d.h,
        d.arl0 / PAGING as f64,
        PAGING,
        d.arl0,
        d.phase1,
        d.h_known,
        d.p_target,
        d.p_half
    );
    println!(
        "## In control: probes per false page (per model-host; {hosts} model-hosts × {probes} probes after Phase I per family and method)\n"
    );
    print!("| family |");
    for m in Method::ALL {
        print!(" {} |", m.name());
    }
    println!();
    println!("|---|---|---|---|---|");
    for f in Family::ALL {
        print!("| {} |", f.name());
        for (i, m) in Method::ALL.iter().enumerate() {
            // the peers alarm so often that far fewer probes measure them well
            let (h, p) = if *m == Method::Defaults {
                (hosts, probes)
            } else {
                (hosts.min(20), 5_000)
            };
            let (arl, pages) = sim::arl0(*m, f, series_of(*m), h, p, 11 + i as u64);
            print!(" {arl:.0} ({pages} pages) |");
        }
        println!();
    }
    println!(
        "\n## Detection delay on the log-normal family (points from the change to the page; {runs} runs; the change hits one series of the model-host)\n"
    );
    println!("| change | method | median | p90 | paged within 40 |");
    println!("|---|---|---|---|---|");
    let changes = [
        Change::Shift(0.5),
        Change::Shift(1.0),
        Change::Shift(2.0),
        Change::Shift(3.0),
        Change::Drift(0.05),
        Change::Variance(2.0),
        Change::Spike,
    ];
    for c in changes {
        for (i, m) in Method::ALL.iter().enumerate() {
            let horizon = if c == Change::Spike { 40 } else { 2000 };
            let d = sim::delays(*m, c, series_of(*m), runs, horizon, 100 + i as u64);
            let (med, p90, within) = sim::summary(&d, 40);
            println!(
                "| {} | {} | {} | {} | {:.0} % |",
                c.name(),
                m.name(),
                fmt(med),
                fmt(p90),
                within * 100.0
            );
        }
    }
    let quiet = llmscope_spc::detect::ShiftDetector::quiet_points(d.k, d.h);
    let (pages, ended) = sim::pages_during_shift(1.0, 2000, quiet as usize + 100, runs, 77);
    let (pages2, _) = sim::pages_during_shift(2.0, 2000, 0, runs / 4, 78);
    println!(
        "\nA sustained shift is one page: over 2 000 points of a 1σ shift {pages:.2} pages per series ({pages2:.2} at 2σ); the episode ends {quiet} points after the last signal, and {:.0} % of them had ended {} points after the process was back at its centre.",
        ended * 100.0,
        quiet + 100
    );
    let (mut er, er_arl0) = sim::error_rate(runs, if quick { 1_000_000 } else { 20_000_000 }, 7);
    er.sort_unstable();
    println!("\n## Outages and error rates (defaults)\n");
    println!("| change | result |");
    println!("|---|---|");
    println!(
        "| outage (every call fails) | `down` page at call {} |",
        sim::outage_delay()
    );
    println!(
        "| error rate 1 % → 10 % | median {} calls, p90 {} calls |",
        er[er.len() / 2],
        er[er.len() * 9 / 10]
    );
    println!("| error rate 1 %, in control | {er_arl0:.0} calls per false page |");
    eprintln!("seconds: {:.1}", started.elapsed().as_secs_f64());
}
