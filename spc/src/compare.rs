//! A/B comparison of two samples of a latency-like metric (positive, right-skewed):
//! Welch's t-test on ln values, Mann–Whitney U with tie correction (normal approximation with
//! continuity correction, as `scipy.stats.mannwhitneyu(method="asymptotic")`), the
//! Hodges–Lehmann shift with its distribution-free (Moses) 95 % interval, the ratio of
//! geometric means with its Welch interval, and the effective sample size under lag-1
//! autocorrelation. Every result is checked against scipy in `spc/tests/stats_vs_scipy.rs`.
//!
//! The Hodges–Lehmann estimate is the median of all n_a·n_b pairwise differences b − a; it
//! is found without forming them: a pairwise difference's rank is counted in O(n_a + n_b)
//! over the two sorted samples, and the order statistics are found by interpolation on those
//! counts. Each sample is sorted once ([`ab_test`]): the Mann–Whitney rank sum is one merge
//! walk over the two sorted samples, the Hodges–Lehmann counting passes reuse them.

use serde::{Deserialize, Serialize};

use crate::SpcError;
use crate::special::{norm_ppf, norm_sf, t_ppf, t_two_sided};

/// Welch's unequal-variances t-test (two-sided), on whatever scale it is given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    /// t statistic of mean(b) − mean(a).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// mean(b) − mean(a).
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
}

/// Mann–Whitney U (two-sided, normal approximation, tie and continuity corrected).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of sample a (scipy's statistic for `mannwhitneyu(a, b)`).
    pub u: f64,
    /// z of the normal approximation.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// A point estimate with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub estimate: f64,
    /// Lower and upper bound.
    pub ci: [f64; 2],
}

/// Everything the A/B answer reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbTest {
    /// Size of a.
    pub n_a: usize,
    /// Size of b.
    pub n_b: usize,
    /// Welch's t-test on ln values.
    pub welch: Welch,
    /// Mann–Whitney U on the values.
    pub mann_whitney: MannWhitney,
    /// Hodges–Lehmann shift b − a (values' unit) with its 95 % interval.
    pub hodges_lehmann: Interval,
    /// Ratio of geometric means b / a with its 95 % interval.
    pub ratio: Interval,
    /// Effective sample sizes under lag-1 autocorrelation (a, b).
    pub ess: [f64; 2],
    /// Lag-1 autocorrelations (a, b), in the order the values were given (time order).
    pub lag1: [f64; 2],
    /// Set when an effective sample size is under half its n: the p-values assume
    /// independent points and overstate the evidence.
    pub warning: Option<String>,
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// Welch's t-test of b against a.
pub fn welch(a: &[f64], b: &[f64]) -> Result<Welch, SpcError> {
    if a.len() < 2 || b.len() < 2 {
        return Err(SpcError::TooFewPoints {
            needed: 2,
            got: a.len().min(b.len()),
        });
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (va / na, vb / nb);
    let se = (sa + sb).sqrt();
    let df = (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    let t = (mb - ma) / se;
    Ok(Welch {
        t,
        df,
        p_value: t_two_sided(t, df),
        diff: mb - ma,
        se,
    })
}

/// The rank sum of a's values among all (ties averaged, 1-based) and Σ(t³ − t) over the tie
/// groups, from the two samples sorted ascending: one merge walk, no sort of the union.
fn rank_sum_sorted(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut i, mut j, mut pos) = (0usize, 0usize, 0usize);
    let (mut r1, mut ties) = (0.0, 0.0);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        let i0 = i;
        while i < a.len() && a[i] == v {
            i += 1;
        }
        let j0 = j;
        while j < b.len() && b[j] == v {
            j += 1;
        }
        let (ca, t) = (i - i0, (i - i0) + (j - j0));
        let avg = pos as f64 + (t as f64 + 1.0) / 2.0;
        r1 += avg * ca as f64;
        pos += t;
        let t = t as f64;
        ties += t * t * t - t;
    }
    (r1, ties)
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Mann–Whitney U of a against b.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Result<MannWhitney, SpcError> {
    mann_whitney_sorted(&sorted(a), &sorted(b))
}

/// [`mann_whitney`] of samples already sorted ascending.
fn mann_whitney_sorted(a: &[f64], b: &[f64]) -> Result<MannWhitney, SpcError> {
    if a.is_empty() || b.is_empty() {
        return Err(SpcError::TooFewPoints { needed: 1, got: 0 });
    }
    let (r1, ties) = rank_sum_sorted(a, b);
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let n = n1 + n2;
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    let mu = n1 * n2 / 2.0;
    let s = (n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    let u = u1.max(u2);
    let z = (u - mu - 0.5) / s;
    Ok(MannWhitney {
        u: u1,
        z,
        p_value: (2.0 * norm_sf(z)).min(1.0),
    })
}

/// Samples from this size on are counted on two threads.
const PARALLEL_FROM: usize = 200_000;

/// How many pairwise differences b_j − a_i are ≤ d (both sorted ascending); large samples are
/// counted in two halves of b on two threads.
fn count_le(a: &[f64], b: &[f64], d: f64) -> u64 {
    if b.len() < PARALLEL_FROM {
        return count_le_from(a, b, d, 0);
    }
    let (b1, b2) = b.split_at(b.len() / 2);
    // the second half's pointer starts where the first would have reached
    let start = a.partition_point(|x| *x < b2[0] - d);
    std::thread::scope(|s| {
        let h = s.spawn(|| count_le_from(a, b2, d, start));
        let n1 = count_le_from(a, b1, d, 0);
        n1 + h.join().unwrap_or_else(|_| count_le_from(a, b2, d, start))
    })
}

fn count_le_from(a: &[f64], b: &[f64], d: f64, mut i: usize) -> u64 {
    // for each b_j, the a_i ≥ b_j − d: a pointer that only moves right as b_j grows
    let mut n = 0u64;
    for &bj in b {
        while i < a.len() && a[i] < bj - d {
            i += 1;
        }
        n += (a.len() - i) as u64;
    }
    n
}

/// The largest pairwise difference ≤ `d` (sorted samples).
fn largest_at_most(a: &[f64], b: &[f64], d: f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    let mut i = 0;
    for &bj in b {
        while i < a.len() && a[i] < bj - d {
            i += 1;
        }
        if i < a.len() {
            best = best.max(bj - a[i]);
        }
    }
    best
}

/// The smallest pairwise difference > `d` (sorted samples); `+∞` when there is none.
fn smallest_above(a: &[f64], b: &[f64], d: f64) -> f64 {
    // for each b_j the candidates are b_j − a_i with a_i < b_j − d: the largest such a_i
    let mut best = f64::INFINITY;
    let mut i = 0;
    for &bj in b {
        while i < a.len() && a[i] < bj - d {
            i += 1;
        }
        if i > 0 {
            best = best.min(bj - a[i - 1]);
        }
    }
    best
}

/// Counts of pairwise differences at or below values already evaluated, so that the next
/// order statistic starts from the tightest bracket known (the interval's bounds lie close to
/// the estimate in rank: a few passes each instead of a search from the extremes).
struct Counted<'a> {
    a: &'a [f64],
    b: &'a [f64],
    seen: Vec<(f64, u64)>,
}

impl<'a> Counted<'a> {
    fn new(a: &'a [f64], b: &'a [f64]) -> Counted<'a> {
        Counted {
            a,
            b,
            seen: Vec::new(),
        }
    }

    fn count(&mut self, d: f64) -> u64 {
        let c = count_le(self.a, self.b, d);
        self.seen.push((d, c));
        c
    }

    /// The k-th smallest (1-based) pairwise difference b_j − a_i.
    ///
    /// Searches the value axis for a point with exactly k differences at or below it (the
    /// k-th is then the largest of them): interpolating on the counts (the differences'
    /// empirical CDF is smooth for large samples, so a handful of counting passes usually
    /// do), with a bisection step whenever an interpolation step does not halve the bracket.
    fn kth(&mut self, k: u64) -> f64 {
        let (a, b) = (self.a, self.b);
        let (mut lo, mut hi) = (b[0] - a[a.len() - 1], b[b.len() - 1] - a[0]);
        let mut clo = count_le(a, b, lo);
        if clo >= k {
            return lo;
        }
        let mut chi = (a.len() * b.len()) as u64;
        for &(d, c) in &self.seen {
            if c >= k && d < hi {
                (hi, chi) = (d, c);
            } else if c < k && d > lo {
                (lo, clo) = (d, c);
            }
        }
        let mut bisect = false;
        for _ in 0..200 {
            if chi == k {
                break;
            }
            let width = hi - lo;
            let mut mid = if bisect {
                lo + width / 2.0
            } else {
                lo + width * ((k - clo) as f64 / (chi - clo) as f64)
            };
            if !(mid > lo && mid < hi) {
                mid = lo + width / 2.0;
            }
            if mid <= lo || mid >= hi {
                break;
            }
            let c = self.count(mid);
            if c >= k {
                hi = mid;
                chi = c;
            } else {
                lo = mid;
                clo = c;
            }
            bisect = !bisect && (hi - lo) > width / 2.0;
        }
        // exactly k at or below `hi`, or `hi` within an ulp of the k-th: the k-th is the
        // largest difference ≤ hi
        largest_at_most(a, b, hi)
    }
}

/// The Hodges–Lehmann shift b − a and its 95 % Moses interval (normal approximation of the
/// rank order: C = n_a·n_b/2 − z₀.₉₇₅·√(n_a·n_b·(n_a+n_b+1)/12)).
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> Result<Interval, SpcError> {
    hodges_lehmann_sorted(&sorted(a), &sorted(b))
}

/// [`hodges_lehmann`] of samples already sorted ascending.
fn hodges_lehmann_sorted(a: &[f64], b: &[f64]) -> Result<Interval, SpcError> {
    if a.is_empty() || b.is_empty() {
        return Err(SpcError::TooFewPoints { needed: 1, got: 0 });
    }
    let mut counted = Counted::new(a, b);
    let (n1, n2) = (a.len() as u64, b.len() as u64);
    let m = n1 * n2;
    let estimate = if m % 2 == 1 {
        counted.kth(m / 2 + 1)
    } else {
        // the (k+1)-th is the k-th again (a tie) or the next difference above it: one pass
        let k = m / 2;
        let dk = counted.kth(k);
        let next = if counted.count(dk) > k {
            dk
        } else {
            smallest_above(a, b, dk)
        };
        0.5 * (dk + next)
    };
    let (f1, f2) = (n1 as f64, n2 as f64);
    let c = (f1 * f2 / 2.0 - norm_ppf(0.975) * (f1 * f2 * (f1 + f2 + 1.0) / 12.0).sqrt())
        .floor()
        .max(1.0) as u64;
    let lower = counted.kth(c);
    let upper = counted.kth((m + 1).saturating_sub(c).max(1));
    Ok(Interval {
        estimate,
        ci: [lower, upper],
    })
}

/// Lag-1 autocorrelation (the usual estimator: Σ(x_t − x̄)(x_{t+1} − x̄) / Σ(x_t − x̄)²).
pub fn lag1(x: &[f64]) -> f64 {
    if x.len() < 3 {
        return 0.0;
    }
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let den: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    if den == 0.0 {
        return 0.0;
    }
    let num: f64 = x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
    num / den
}

/// Effective sample size of n points with lag-1 autocorrelation ρ (an AR(1) view):
/// n·(1 − ρ)/(1 + ρ), at most n.
pub fn effective_n(n: usize, rho: f64) -> f64 {
    let rho = rho.clamp(-0.99, 0.99);
    (n as f64 * (1.0 - rho) / (1.0 + rho)).min(n as f64)
}

/// The whole A/B answer for two samples of positive values in time order.
pub fn ab_test(a: &[f64], b: &[f64]) -> Result<AbTest, SpcError> {
    if let Some(bad) = a.iter().chain(b).find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(SpcError::param(
            "values",
            format!("values must be positive and finite for the ln scale (got {bad})"),
        ));
    }
    let la: Vec<f64> = a.iter().map(|v| v.ln()).collect();
    let lb: Vec<f64> = b.iter().map(|v| v.ln()).collect();
    let w = welch(&la, &lb)?;
    let tq = t_ppf(0.975, w.df);
    let ratio = Interval {
        estimate: w.diff.exp(),
        ci: [(w.diff - tq * w.se).exp(), (w.diff + tq * w.se).exp()],
    };
    let (ra, rb) = (lag1(a), lag1(b));
    // both rank tests work on the samples sorted once (the two sorts on two threads)
    let (sa, sb) = std::thread::scope(|s| {
        let h = s.spawn(|| sorted(a));
        let sb = sorted(b);
        (h.join().unwrap_or_else(|_| sorted(a)), sb)
    });
    let ess = [effective_n(a.len(), ra), effective_n(b.len(), rb)];
    let warning = (ess[0] < 0.5 * a.len() as f64 || ess[1] < 0.5 * b.len() as f64).then(|| {
        format!(
            "the points are autocorrelated (lag-1 {ra:.2} and {rb:.2}): about {:.0} and {:.0} independent points, not {} and {}; the p-values overstate the evidence",
            ess[0],
            ess[1],
            a.len(),
            b.len()
        )
    });
    Ok(AbTest {
        n_a: a.len(),
        n_b: b.len(),
        welch: w,
        mann_whitney: mann_whitney_sorted(&sa, &sb)?,
        hodges_lehmann: hodges_lehmann_sorted(&sa, &sb)?,
        ratio,
        ess,
        lag1: [ra, rb],
        warning,
    })
}

/// A plain-words verdict: "B's TTFT is 12 % lower (95 % CI 9–15 %), p < 0.001".
pub fn verdict(what: &str, t: &AbTest) -> String {
    let r = t.ratio;
    let p = t.welch.p_value.max(t.mann_whitney.p_value);
    let p_text = if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    };
    let pct = |x: f64| (x - 1.0).abs() * 100.0;
    if p >= 0.05 || (r.ci[0] <= 1.0 && r.ci[1] >= 1.0) {
        return format!(
            "No clear difference in {what}: B/A = {:.3} (95 % CI {:.3}–{:.3}), {p_text}",
            r.estimate, r.ci[0], r.ci[1]
        );
    }
    let (dir, lo, hi) = if r.estimate < 1.0 {
        ("lower", pct(r.ci[1]), pct(r.ci[0]))
    } else {
        ("higher", pct(r.ci[0]), pct(r.ci[1]))
    };
    format!(
        "B's {what} is {:.0} % {dir} (95 % CI {lo:.0}–{hi:.0} %), {p_text}",
        pct(r.estimate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut s = seed;
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // coarse values: many ties
                ((s >> 40) % 5_000) as f64 * scale
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn the_two_thread_count_equals_the_one_thread_count() {
        let (a, b) = (sample(300_000, 1, 0.1), sample(250_000, 2, 0.11));
        for d in [-600.0, -37.3, 0.0, 0.05, 12.5, 499.9, 700.0] {
            assert_eq!(count_le(&a, &b, d), count_le_from(&a, &b, d, 0), "d = {d}");
        }
    }

    #[test]
    fn the_merge_walk_ranks_equal_a_sort_of_the_union() {
        let (a, b) = (sample(3_000, 3, 1.0), sample(2_500, 4, 1.0));
        let mut all: Vec<(f64, bool)> = a
            .iter()
            .map(|v| (*v, true))
            .chain(b.iter().map(|v| (*v, false)))
            .collect();
        all.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (mut r1, mut ties, mut i) = (0.0, 0.0, 0);
        while i < all.len() {
            let j = i + all[i..].iter().take_while(|x| x.0 == all[i].0).count();
            let avg = (i + j + 1) as f64 / 2.0;
            r1 += avg * all[i..j].iter().filter(|x| x.1).count() as f64;
            let t = (j - i) as f64;
            ties += t * t * t - t;
            i = j;
        }
        assert_eq!(rank_sum_sorted(&a, &b), (r1, ties));
    }
}
