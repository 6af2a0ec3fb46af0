//! Property: for random series and random rule parameters, the incremental evaluator, the
//! batch function and the naive window-rescanning reference give identical flags.

#![allow(clippy::unwrap_used)]

use llmscope_spc::nelson::{self, NelsonConfig, NelsonState, TiePolicy, reference};
use proptest::prelude::*;

fn config() -> impl Strategy<Value = NelsonConfig> {
    (
        (0.5f64..4.0, 1u32..12, 2u32..10, any::<bool>(), 3u32..18),
        (
            1u32..=8,
            1u32..=8,
            0.0f64..3.0,
            1u32..=8,
            1u32..=8,
            0.0f64..2.0,
        ),
        (
            1u32..20,
            0.0f64..2.0,
            any::<bool>(),
            1u32..12,
            0.0f64..2.0,
            any::<bool>(),
        ),
        any::<u8>(),
    )
        .prop_map(
            |((k1, r2, r3, ties, r4), (c5, w5, k5, c6, w6, k6), (r7, k7, b7, r8, k8, b8), en)| {
                let mut c = NelsonConfig::default();
                c.rule1.k = k1;
                c.rule2.run = r2;
                c.rule3.run = r3;
                c.rule3.ties = if ties {
                    TiePolicy::Ignore
                } else {
                    TiePolicy::Break
                };
                c.rule4.run = r4;
                c.rule5.window = w5.max(c5);
                c.rule5.count = c5;
                c.rule5.k = k5;
                c.rule6.window = w6.max(c6);
                c.rule6.count = c6;
                c.rule6.k = k6;
                c.rule7.run = r7;
                c.rule7.k = k7;
                c.rule7.both_sides = b7;
                c.rule8.run = r8;
                c.rule8.k = k8;
                c.rule8.both_sides = b8;
                c.set_enabled(llmscope_spc::RuleFlags(en | 0x81));
                c
            },
        )
}

/// Series mixing continuous noise with a small alphabet of values, so ties, zeros and exact
/// boundary values (±1, ±2, ±3) occur often.
fn series() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            3 => -4.0f64..4.0,
            2 => prop::sample::select(vec![-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]),
            1 => (0u8..6).prop_map(|d| f64::from(d) * 0.25 + 0.5),
        ],
        0..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn incremental_equals_batch_equals_reference(zs in series(), cfg in config()) {
        let compiled = cfg.compile().expect("generated configs are valid");
        let mut state = NelsonState::new();
        let incremental: Vec<_> = zs.iter().map(|&z| state.push(z, &compiled)).collect();
        let batch = nelson::evaluate(&zs, &cfg).expect("finite input");
        prop_assert_eq!(&incremental, &batch);
        prop_assert_eq!(&batch, &reference::evaluate(&zs, &cfg));
    }
}
