//! Nelson evaluation throughput: the incremental evaluator (all eight rules on) against a
//! straightforward batch implementation that rescans each rule's window at every point.
//!
//! `cargo bench -p llmscope-spc --bench nelson`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use llmscope_spc::{Baseline, NelsonConfig, NelsonState, Transform, nelson::reference};

/// A realistic latency series in milliseconds: log-normal-ish noise around 800 ms with
/// occasional shifts (a noisy neighbour, a bad deploy) and a slow drift, from a fixed seed.
fn realistic_series(n: usize) -> Vec<f64> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (u1, u2) = (uniform().max(1e-12), uniform());
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let shift = if (i / 5_000) % 7 == 3 { 120.0 } else { 0.0 };
        let drift = if (i / 5_000) % 11 == 5 {
            (i % 5_000) as f64 * 0.02
        } else {
            0.0
        };
        out.push(800.0 * (0.05 * normal).exp() + shift + drift);
    }
    out
}

fn bench(c: &mut Criterion) {
    let values = realistic_series(1_000_000);
    let baseline = Baseline::given(800.0, 40.0, 3.0, Transform::None).expect("valid");
    let cfg = NelsonConfig::default();
    let compiled = cfg.compile().expect("valid");
    let limits = baseline.limits();

    let mut group = c.benchmark_group("nelson_all_8_rules");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.sample_size(20);
    group.bench_function("incremental", |b| {
        b.iter(|| {
            let mut state = NelsonState::new();
            let mut fired = 0u32;
            for &x in &values {
                fired += u32::from(state.push(limits.z(x), &compiled).0 != 0);
            }
            black_box(fired)
        })
    });
    let zs: Vec<f64> = values.iter().map(|&x| limits.z(x)).collect();
    group.bench_function("naive_rescan", |b| {
        b.iter(|| {
            let flags = reference::evaluate(black_box(&zs), &cfg);
            black_box(flags.iter().filter(|f| !f.is_empty()).count())
        })
    });
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}

criterion_main!(group::benches);
