//! A mergeable quantile sketch with a relative-error guarantee (the DDSketch idea: logarithmic
//! buckets). A value `v > 0` falls in bucket `i = ceil(ln v / ln γ)`, which covers
//! `(γ^(i-1), γ^i]`; a quantile is answered with the bucket's midpoint `2γ^i / (γ + 1)`, whose
//! relative error is at most `(γ - 1) / (γ + 1)` — 0.5 % for the γ = 1.01 used here. Two
//! sketches merge by adding counts, so hourly sketches make exact-to-0.5 % daily quantiles
//! and late points fold into an hour already written.
//!
//! The text form (`"i:c,i:c,…"`, buckets ascending, `z:c` for values ≤ 0) is what the store
//! keeps.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::SpcError;

/// Bucket growth factor.
pub const GAMMA: f64 = 1.01;

/// The largest relative error of a quantile answered from a sketch.
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);

/// Counts of values per logarithmic bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
    zero: u64,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds one value (non-finite values are ignored; values ≤ 0 count as zero).
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if v <= 0.0 {
            self.zero += 1;
            return;
        }
        let i = (v.ln() / GAMMA.ln()).ceil();
        let i = i.clamp(f64::from(i32::MIN / 2), f64::from(i32::MAX / 2)) as i32;
        *self.buckets.entry(i).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        self.zero += other.zero;
        for (i, c) in &other.buckets {
            *self.buckets.entry(*i).or_default() += c;
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.zero + self.buckets.values().sum::<u64>()
    }

    /// How many values are at most `limit` (to the bucket: a bucket counts when its upper
    /// edge is ≤ `limit`).
    pub fn count_at_most(&self, limit: f64) -> u64 {
        if limit.is_nan() || limit < 0.0 {
            return 0;
        }
        if limit == 0.0 {
            return self.zero;
        }
        let top = (limit.ln() / GAMMA.ln()).floor() as i32;
        self.zero + self.buckets.range(..=top).map(|(_, c)| c).sum::<u64>()
    }

    /// The `q` quantile (0 ≤ q ≤ 1): the value of rank `ceil(q·n)` (lower quantile), within
    /// [`RELATIVE_ERROR`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        if rank <= self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (i, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(2.0 * GAMMA.powi(*i) / (GAMMA + 1.0));
            }
        }
        None
    }

    /// The text form.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.buckets.len() * 8);
        if self.zero > 0 {
            let _ = write!(s, "z:{}", self.zero);
        }
        for (i, c) in &self.buckets {
            if !s.is_empty() {
                s.push(',');
            }
            let _ = write!(s, "{i}:{c}");
        }
        s
    }

    /// Parses the text form; the error says which pair is wrong.
    pub fn decode(text: &str) -> Result<Sketch, SpcError> {
        let mut out = Sketch::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let bad = || SpcError::param("sketch", format!("pair `{pair}` is not `index:count`"));
            let (i, c) = pair.split_once(':').ok_or_else(bad)?;
            let c: u64 = c.parse().map_err(|_| bad())?;
            if i == "z" {
                out.zero += c;
            } else {
                let i: i32 = i.parse().map_err(|_| bad())?;
                *out.buckets.entry(i).or_default() += c;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_error() {
        let mut s = Sketch::new();
        let mut v: Vec<f64> = (1..=10_000)
            .map(|i| 50.0 + (i as f64).powf(1.3) * 0.37)
            .collect();
        for x in &v {
            s.add(*x);
        }
        v.sort_by(f64::total_cmp);
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let exact = v[((q * v.len() as f64).ceil() as usize).max(1) - 1];
            let got = s.quantile(q).unwrap();
            assert!(
                ((got - exact) / exact).abs() <= RELATIVE_ERROR + 1e-12,
                "q {q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merging_equals_adding_and_text_round_trips() {
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 0..500 {
            let x = 10.0 + f64::from(i) * 1.7;
            if i % 3 == 0 {
                a.add(x)
            } else {
                b.add(x)
            }
            all.add(x);
        }
        a.add(0.0);
        all.add(0.0);
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(Sketch::decode(&a.encode()).unwrap(), a);
        assert_eq!(a.count(), 501);
        assert!(
            Sketch::decode("3:x")
                .unwrap_err()
                .to_string()
                .contains("3:x")
        );
        // 800 counts every value up to the bucket holding 800
        let below = (0..500)
            .filter(|i| 10.0 + f64::from(*i) * 1.7 <= 800.0 / GAMMA)
            .count() as u64;
        let c = a.count_at_most(800.0);
        assert!(c > below && c <= below + 3, "{c} vs {below}");
    }
}
