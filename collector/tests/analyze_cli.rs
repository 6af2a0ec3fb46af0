//! `llmscope-collector analyze` through the real binary: both formats, files and stdin, and
//! every class of input error (exit code 2, a message naming file, line and column).

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use llmscope_spc::{Baseline, BaselineOptions, NelsonConfig, nelson};
use serde_json::Value;
use std::io::Write;

fn bin() -> Command {
    Command::cargo_bin("llmscope-collector").expect("binary built")
}

fn vectors() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("../../spc/tests/fixtures/nelson-vectors.json"))
            .expect("fixture");
    doc["cases"].as_array().expect("cases").clone()
}

fn write_tmp(name: &str, content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(content))
        .expect("write");
    (dir, path)
}

fn csv_of(values: &[f64]) -> String {
    let mut s = String::from("ts,latency_ms,host\n");
    for (i, v) in values.iter().enumerate() {
        s.push_str(&format!("2026-01-01T00:00:{i:02}Z,{v},gpu-1\n"));
    }
    s
}

fn run_json(args: &[&str], stdin: Option<String>) -> Value {
    let mut cmd = bin();
    cmd.arg("analyze").args(args).args(["--format", "json"]);
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(
        text.trim().lines().count(),
        1,
        "exactly one JSON object: {text}"
    );
    serde_json::from_str(&text).expect("valid json")
}

fn fails(args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = bin();
    cmd.arg("analyze").args(args);
    if let Some(s) = stdin {
        cmd.write_stdin(s.to_vec());
    }
    let out = cmd.assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).expect("utf8");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(!err.contains("backtrace"), "no stack trace: {err}");
    err
}

#[test]
fn json_flags_match_the_public_vectors_with_given_limits() {
    for case in vectors() {
        let name = case["name"].as_str().expect("name");
        let values: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        let (_d, path) = write_tmp("v.csv", csv_of(&values).as_bytes());
        let center = case["center"].as_f64().expect("center").to_string();
        let sigma = case["sigma"].as_f64().expect("sigma").to_string();
        let out = run_json(
            &[
                path.to_str().expect("path"),
                "--center",
                &center,
                "--sigma",
                &sigma,
            ],
            None,
        );
        assert_eq!(out["baseline"]["method"], "given");
        for rule in 1..=8 {
            let key = rule.to_string();
            assert_eq!(
                out["flags"][&key], case["expected"][&key],
                "{name} rule {rule}"
            );
        }
    }
}

#[test]
fn estimated_baseline_and_episodes_agree_with_the_library() {
    let case = vectors().into_iter().last().expect("shift-and-drift case");
    let values: Vec<f64> = case["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    let (_d, path) = write_tmp("latency.csv", csv_of(&values).as_bytes());
    // the first release's estimator, as the library's default options
    let out = run_json(
        &[
            path.to_str().expect("path"),
            "--baseline-points",
            "40",
            "--sigma-method",
            "mrbar",
            "--transform",
            "none",
        ],
        None,
    );

    let b = Baseline::estimate(&values[..40], &BaselineOptions::default()).expect("baseline");
    let cfg = NelsonConfig::default();
    let flags = nelson::evaluate_values(&values, &b, &cfg).expect("flags");
    let by_rule = nelson::flags_by_rule(&flags);
    assert_eq!(out["baseline"]["points"], 40);
    assert_eq!(out["baseline"]["method"], "mrbar");
    assert!((out["baseline"]["center"].as_f64().expect("c") - b.center).abs() < 1e-9);
    assert!((out["baseline"]["sigma"].as_f64().expect("s") - b.sigma).abs() < 1e-9);
    assert!((out["baseline"]["ucl"].as_f64().expect("u") - b.ucl()).abs() < 1e-9);
    let keys: Vec<&String> = out["flags"].as_object().expect("flags").keys().collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    for (i, want) in by_rule.iter().enumerate() {
        let got: Vec<usize> = out["flags"][(i + 1).to_string()]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().expect("idx") as usize)
            .collect();
        assert_eq!(&got, want, "rule {}", i + 1);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "ascending");
    }
    let eps = llmscope_spc::episode::episodes(&flags, &cfg, 20);
    assert_eq!(out["episodes"], serde_json::to_value(&eps).expect("json"));
    assert!(!eps.is_empty());
    // episode shape: points end at the last flag and cover the rule's window
    let e2 = eps.iter().find(|e| e.rule == 2).expect("a rule 2 episode");
    assert_eq!(*e2.points.last().expect("points"), e2.end);
    assert_eq!(e2.points[0], e2.start - 8);
}

#[test]
fn stdin_json_array_and_file_give_the_same_answer() {
    let values: Vec<f64> = (0..60).map(|i| 100.0 + ((i * 7) % 5) as f64).collect();
    let json_text = serde_json::to_string(&values).expect("json");
    let (_d, path) = write_tmp("v.csv", csv_of(&values).as_bytes());
    let from_stdin = run_json(&["-"], Some(json_text.clone()));
    let from_csv = run_json(&[path.to_str().expect("p")], None);
    let (_d2, jpath) = write_tmp("v.json", json_text.as_bytes());
    let from_json_file = run_json(&[jpath.to_str().expect("p")], None);
    assert_eq!(from_stdin, from_csv);
    assert_eq!(from_stdin, from_json_file);
    let csv_stdin = run_json(&["-"], Some(csv_of(&values)));
    assert_eq!(csv_stdin, from_csv);
}

#[test]
fn options_change_the_result() {
    let mut values: Vec<f64> = (0..40).map(|i| 100.0 + ((i * 7) % 5) as f64).collect();
    values.push(100.0); // below centre
    values.extend([104.0; 8]); // above centre: rule 2 with run 7 fires, with 9 not yet
    let text = serde_json::to_string(&values).expect("json");
    let default = run_json(&["-", "--baseline-points", "40"], Some(text.clone()));
    assert_eq!(default["flags"]["2"], serde_json::json!([]));
    let shorter = run_json(
        &["-", "--baseline-points", "40", "--rule-param", "2.run=7"],
        Some(text.clone()),
    );
    assert_eq!(shorter["flags"]["2"], serde_json::json!([47, 48]));
    let only1 = run_json(
        &[
            "-",
            "--baseline-points",
            "40",
            "--rules",
            "1",
            "--rule-param",
            "2.run=7",
        ],
        Some(text.clone()),
    );
    assert_eq!(only1["flags"]["2"], serde_json::json!([]));
    let median = run_json(&["-", "--sigma-method", "median"], Some(text.clone()));
    assert_eq!(median["baseline"]["method"], "median");
    let log = run_json(&["-", "--transform", "log"], Some(text));
    assert_eq!(log["baseline"]["transform"], "log");
    assert!(
        log["baseline"]["center"].as_f64().expect("c") < 5.0,
        "centre on the ln scale"
    );
    assert!(
        log["baseline"]["ucl"].as_f64().expect("u") > 100.0,
        "limits in original units"
    );
}

#[test]
fn table_format_reports_baseline_flags_and_plain_words() {
    let case = vectors().into_iter().last().expect("case");
    let values: Vec<f64> = case["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    let (_d, path) = write_tmp("latency.csv", csv_of(&values).as_bytes());
    let out = bin()
        .args([
            "analyze",
            path.to_str().expect("p"),
            "--baseline-points",
            "50",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("column `latency_ms`: 120 points"), "{text}");
    assert!(text.contains("baseline: center"), "{text}");
    assert!(text.contains("UCL"), "{text}");
    assert!(text.contains("flagged points"), "{text}");
    assert!(text.contains("1 (beyond limits)"), "{text}");
    assert!(text.contains("the average has shifted"), "{text}");
    assert!(text.contains("paging cusum: k 0.5 h "), "{text}");
    assert!(text.contains("incidents (pages):"), "{text}");
    assert!(text.contains("shift up from index 84"), "{text}");

    let calm: Vec<f64> = values[..50].to_vec();
    let quiet = bin()
        .args(["analyze", "-"])
        .write_stdin(serde_json::to_string(&calm).expect("json"))
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(quiet.stdout).expect("utf8");
    assert!(text.contains("no rule fired"), "{text}");
}

#[test]
fn few_points_warn_on_stderr() {
    let out = bin()
        .args(["analyze", "-", "--format", "json"])
        .write_stdin("[1, 2, 3, 2, 1, 2]")
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).expect("utf8");
    assert!(
        err.contains("warning: the baseline is estimated from only 6 points"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json on stdout only");
    assert_eq!(v["baseline"]["points"], 6);
}

#[test]
fn every_error_class_exits_2_with_a_located_message() {
    let e = fails(&["/nonexistent/x.csv"], None);
    assert!(e.contains("/nonexistent/x.csv: cannot read"), "{e}");

    let (_d, p) = write_tmp("bad.csv", b"ts,latency_ms\na,1\nb,2\nc,oops\n");
    let e = fails(&[p.to_str().expect("p"), "--column", "latency_ms"], None);
    assert!(
        e.contains("bad.csv:4:2: column `latency_ms`: `oops` is not a number"),
        "{e}"
    );

    let e = fails(&[p.to_str().expect("p")], None);
    assert!(e.contains("no column holds only numbers"), "{e}");
    assert!(e.contains("ts, latency_ms"), "lists the columns: {e}");

    let e = fails(&[p.to_str().expect("p"), "--column", "nope"], None);
    assert!(
        e.contains("no column named `nope`; the columns are: ts, latency_ms"),
        "{e}"
    );

    let (_d, p2) = write_tmp("two.csv", b"a,b\n1,2\n3,4\n");
    let e = fails(&[p2.to_str().expect("p")], None);
    assert!(e.contains("several numeric columns (a, b)"), "{e}");

    let (_d, p3) = write_tmp("ragged.csv", b"a,b\n1,2\n3\n");
    let e = fails(&[p3.to_str().expect("p"), "--column", "a"], None);
    assert!(e.contains("ragged.csv:3:"), "{e}");

    let (_d, p4) = write_tmp("latin1.csv", b"a\n1\n2\n\xff3\n");
    let e = fails(&[p4.to_str().expect("p")], None);
    assert!(
        e.contains("latin1.csv:4:1: the file is not valid UTF-8"),
        "{e}"
    );

    let e = fails(&["-"], Some(b"[1, 2,\n 3, null]"));
    assert!(e.contains("-:2:"), "{e}");
    let e = fails(&["-"], Some(b"[1, 2, 3"));
    assert!(e.contains("-:1:"), "{e}");

    let e = fails(&["-", "--transform", "log"], Some(b"x\n5\n0\n"));
    assert!(e.contains("-:3:1: 0 is not > 0"), "{e}");

    let e = fails(&["-"], Some(b"[42]"));
    assert!(
        e.contains("a baseline needs at least 2 points, got 1"),
        "{e}"
    );
    let e = fails(&["-"], Some(b"[5, 5, 5, 5]"));
    assert!(e.contains("sigma is zero"), "{e}");
    let e = fails(&["-"], Some(b""));
    assert!(e.contains("the file is empty"), "{e}");
    let e = fails(&["-"], Some(b"x\nNaN\n"));
    assert!(
        e.contains("-:2:1: column `x`: `NaN` is not a finite number"),
        "{e}"
    );

    let e = fails(&["-", "--rule-param", "5.window=99"], Some(b"[1,2,3]"));
    assert!(e.contains("rule5.window"), "{e}");
    let e = fails(&["-", "--rule-param", "bogus"], Some(b"[1,2,3]"));
    assert!(e.contains("expected RULE.FIELD=VALUE"), "{e}");
    let e = fails(&["-", "--rules", "1,9"], Some(b"[1,2,3]"));
    assert!(e.contains("`9` is not a rule number"), "{e}");
    let e = fails(&["-", "--center", "1", "--sigma", "0"], Some(b"[1,2,3]"));
    assert!(e.contains("sigma is zero"), "{e}");
    let e = fails(&["-", "--center", "1"], Some(b"[1,2,3]"));
    assert!(e.contains("--sigma"), "clap names the missing flag: {e}");
    let e = fails(&["-", "--format", "xml"], Some(b"[1,2,3]"));
    assert!(e.contains("xml"), "{e}");
}
