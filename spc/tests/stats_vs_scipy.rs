//! The comparison, capability and trend statistics against an independent implementation on
//! the same data: scipy/numpy (`spc/tests/scipy_ref.py`, in the venv that
//! `tests/clients/stats/setup.sh` makes). Agreement to 1e-6 relative.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use llmscope_spc::capability::capability;
use llmscope_spc::compare::{ab_test, verdict};
use llmscope_spc::special::{chi2_ppf, norm_ppf, t_ppf};
use llmscope_spc::trend::{Holt, theil_sen};
use serde_json::{Value, json};

/// splitmix64: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next(), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Lognormal latencies around `median` ms with lag-1 autocorrelation `rho`, rounded to
/// 0.1 ms (so there are ties).
fn latencies(rng: &mut Rng, n: usize, median: f64, rho: f64) -> Vec<f64> {
    let mut e = 0.0;
    (0..n)
        .map(|_| {
            e = rho * e + (1.0 - rho * rho).sqrt() * rng.normal();
            ((median.ln() + 0.3 * e).exp() * 10.0).round() / 10.0
        })
        .collect()
}

fn scipy(data: &Value) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = root.join("../tests/clients/stats/setup.sh");
    let out = Command::new(&setup).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(python)
        .arg(root.join("tests/scipy_ref.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[track_caller]
fn close(got: f64, want: &Value, what: &str) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no reference"));
    let tol = 1e-6 * want.abs().max(1e-12);
    assert!(
        (got - want).abs() <= tol,
        "{what}: ours {got:.15e}, scipy {want:.15e}"
    );
}

#[test]
fn ab_capability_and_trend_agree_with_scipy() {
    let mut rng = Rng(17);
    let a = latencies(&mut rng, 400, 500.0, 0.3);
    let b = latencies(&mut rng, 350, 455.0, 0.3);
    let trend_y: Vec<f64> = (0..120)
        .map(|t| (300.0 + 0.8 * t as f64 + 12.0 * rng.normal()).round())
        .collect();
    let cap = latencies(&mut rng, 200, 520.0, 0.2);
    let t_points = [(0.975, 3.0), (0.975, 37.5), (0.005, 12.0), (0.9, 1000.0)];
    let chi2_points = [(0.025, 199.0), (0.975, 199.0), (0.05, 2.0), (0.99, 9.5)];
    let norm_points = [0.975, 0.00135, 1e-10, 0.5];
    let data = json!({"a": a, "b": b, "trend_y": trend_y, "cap": cap, "usl": 900.0, "lsl": 200.0,
                      "t_points": t_points, "chi2_points": chi2_points, "norm_points": norm_points});
    let r = scipy(&data);

    let ab = ab_test(&a, &b).unwrap();
    close(ab.welch.t, &r["welch"]["t"], "welch t");
    close(ab.welch.df, &r["welch"]["df"], "welch df");
    close(ab.welch.p_value, &r["welch"]["p_value"], "welch p");
    close(ab.mann_whitney.u, &r["mann_whitney"]["u"], "mann-whitney U");
    close(
        ab.mann_whitney.p_value,
        &r["mann_whitney"]["p_value"],
        "mann-whitney p",
    );
    close(
        ab.hodges_lehmann.estimate,
        &r["hodges_lehmann"]["estimate"],
        "hodges-lehmann shift",
    );
    close(
        ab.hodges_lehmann.ci[0],
        &r["hodges_lehmann"]["ci"][0],
        "hodges-lehmann lower",
    );
    close(
        ab.hodges_lehmann.ci[1],
        &r["hodges_lehmann"]["ci"][1],
        "hodges-lehmann upper",
    );
    close(ab.ratio.estimate, &r["ratio"]["estimate"], "ratio");
    close(ab.ratio.ci[0], &r["ratio"]["ci"][0], "ratio lower");
    close(ab.ratio.ci[1], &r["ratio"]["ci"][1], "ratio upper");
    close(ab.lag1[0], &r["lag1"][0], "lag-1 a");
    close(ab.lag1[1], &r["lag1"][1], "lag-1 b");
    let v = verdict("TTFT", &ab);
    assert!(v.starts_with("B's TTFT is") && v.contains("lower"), "{v}");

    let ts = theil_sen(
        &(0..trend_y.len()).map(|i| i as f64).collect::<Vec<_>>(),
        &trend_y,
    )
    .unwrap();
    close(ts.slope, &r["theil_sen"]["slope"], "theil-sen slope");
    close(
        ts.intercept,
        &r["theil_sen"]["intercept"],
        "theil-sen intercept",
    );
    close(
        ts.slope_ci[0],
        &r["theil_sen"]["slope_ci"][0],
        "theil-sen lower",
    );
    close(
        ts.slope_ci[1],
        &r["theil_sen"]["slope_ci"][1],
        "theil-sen upper",
    );

    let ln: Vec<f64> = cap.iter().map(|v| v.ln()).collect();
    let c = capability(&ln, 900f64.ln(), None).unwrap();
    let rc = &r["capability"];
    close(c.mean, &rc["mean"], "mean");
    close(c.sigma_within, &rc["sigma_within"], "sigma within");
    close(c.sigma_overall, &rc["sigma_overall"], "sigma overall");
    close(c.cpk.estimate, &rc["cpk"]["estimate"], "cpk");
    close(c.cpk.ci[0], &rc["cpk"]["ci"][0], "cpk lower");
    close(c.cpk.ci[1], &rc["cpk"]["ci"][1], "cpk upper");
    close(c.ppk.estimate, &rc["ppk"]["estimate"], "ppk");
    close(c.ppk.ci[1], &rc["ppk"]["ci"][1], "ppk upper");
    close(c.ppk_percentile, &rc["ppk_percentile"], "percentile ppk");
    let two = capability(&ln, 900f64.ln(), Some(200f64.ln())).unwrap();
    let cp = two.cp.unwrap();
    close(cp.estimate, &rc["cp_two_sided"]["estimate"], "cp");
    close(cp.ci[0], &rc["cp_two_sided"]["ci"][0], "cp lower");
    close(cp.ci[1], &rc["cp_two_sided"]["ci"][1], "cp upper");

    for (i, (p, df)) in t_points.iter().enumerate() {
        close(t_ppf(*p, *df), &r["quantiles"]["t"][i], "t quantile");
    }
    for (i, (p, df)) in chi2_points.iter().enumerate() {
        close(
            chi2_ppf(*p, *df),
            &r["quantiles"]["chi2"][i],
            "chi2 quantile",
        );
    }
    for (i, p) in norm_points.iter().enumerate() {
        let want = &r["quantiles"]["norm"][i];
        if want.as_f64() == Some(0.0) {
            assert!(norm_ppf(*p).abs() < 1e-15);
        } else {
            close(norm_ppf(*p), want, "normal quantile");
        }
    }
}

#[test]
fn holt_forecasts_a_synthetic_trend_within_its_interval() {
    // a daily p95 rising 2 ms a day from 400 ms with noise: backtest the last 30 days from
    // the first 335
    let mut rng = Rng(5);
    let y: Vec<f64> = (0..365)
        .map(|d| 400.0 + 2.0 * d as f64 + 8.0 * rng.normal())
        .collect();
    let fit = Holt::fit(&y[..335]).unwrap();
    let mut inside = 0;
    for h in 1..=30 {
        let f = fit.forecast(h);
        let actual = y[334 + h];
        if actual >= f.interval[0] && actual <= f.interval[1] {
            inside += 1;
        }
    }
    assert!(
        inside >= 27,
        "only {inside} of 30 held-out days inside the 95 % interval"
    );
    assert!(
        (fit.trend - 2.0).abs() < 0.5,
        "trend {} ({fit:?})",
        fit.trend
    );
    // the SLO of 1 200 ms is about (1200 − level) / 2 days away
    let days = fit.steps_to(1200.0, 2000).unwrap();
    let expect = ((1200.0 - fit.level) / fit.trend).ceil() as usize;
    assert!(days.abs_diff(expect) <= 1, "{days} vs {expect}");
}

#[test]
fn hodges_lehmann_scales_to_millions() {
    // the algorithm counts pairs instead of forming them: two samples of 200 000 are fine
    let mut rng = Rng(9);
    let a = latencies(&mut rng, 200_000, 500.0, 0.0);
    let b: Vec<f64> = latencies(&mut rng, 200_000, 500.0, 0.0)
        .into_iter()
        .map(|v| v - 25.0)
        .collect();
    let hl = llmscope_spc::compare::hodges_lehmann(&a, &b).unwrap();
    assert!((hl.estimate + 25.0).abs() < 3.0, "{hl:?}");
    assert!(hl.ci[0] < -25.0 + 3.0 && hl.ci[1] > -25.0 - 3.0 && hl.ci[0] < hl.ci[1]);
}
