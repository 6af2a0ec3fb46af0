//! The public Nelson test vectors (a copy of `shared/spc/nelson-vectors.json`) must pass
//! exactly, through the incremental evaluator, the batch function and the naive reference.

#![allow(clippy::unwrap_used)]

use llmscope_spc::nelson::{self, NelsonConfig, flags_by_rule, reference};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = include_str!("fixtures/nelson-vectors.json");
    let doc: Value = serde_json::from_str(text).expect("fixture parses");
    doc["cases"].as_array().expect("cases array").clone()
}

#[test]
fn public_vectors_pass_exactly() {
    let cases = cases();
    assert!(cases.len() >= 10, "fixture has {} cases", cases.len());
    let cfg = NelsonConfig::default();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let center = case["center"].as_f64().expect("center");
        let sigma = case["sigma"].as_f64().expect("sigma");
        let values: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        let zs: Vec<f64> = values.iter().map(|x| (x - center) / sigma).collect();
        let batch = nelson::evaluate(&zs, &cfg).expect("evaluates");
        assert_eq!(
            batch,
            reference::evaluate(&zs, &cfg),
            "{name}: reference differs"
        );
        let got = flags_by_rule(&batch);
        for rule in 1..=8usize {
            let want: Vec<usize> = case["expected"][rule.to_string()]
                .as_array()
                .expect("expected rule key")
                .iter()
                .map(|v| v.as_u64().expect("index") as usize)
                .collect();
            assert_eq!(got[rule - 1], want, "case {name}, rule {rule}");
        }
    }
}
