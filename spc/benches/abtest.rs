//! The A/B statistics over two 30-day series of 2.6 M points each (one point a second): the
//! whole `ab_test` (Welch, Mann–Whitney with its ranking sort, Hodges–Lehmann by counting,
//! ratio, lag-1), i.e. the computation behind `GET /api/v1/abtest` without the database read.
//! Target (ARCHITECTURE §10 / issue 18): ≤ 1 s including the read.
//!
//! `cargo bench -p llmscope-spc --bench abtest`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use llmscope_spc::compare::ab_test;

fn lognormal(n: usize, median: f64, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (median.ln() + 0.3 * z).exp()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 2_592_000;
    let a = lognormal(N, 500.0, 0x9E37_79B9_7F4A_7C15);
    let b = lognormal(N, 480.0, 0xD1B5_4A32_D192_ED03);
    let mut g = c.benchmark_group("abtest");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("2 x 2.6M points", |bch| {
        bch.iter(|| ab_test(black_box(&a), black_box(&b)).map(|t| t.hodges_lehmann.estimate))
    });
    g.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
