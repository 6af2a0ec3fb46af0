//! `llmscope-collector analyze`: offline SPC over a file of values.
//!
//! Reads a CSV with a header (one column picked) or a JSON array of numbers, from a file or
//! stdin; estimates a Phase I baseline from the first N points (or takes a given centre and
//! sigma) the way the live engine does by default (robust σ, ln transform for positive
//! values, 300 points); evaluates the eight Nelson rules on every point (the chart's markers)
//! and the paging CUSUM on every point after Phase I, designed as the live engine designs it;
//! groups the CUSUM's episodes and the rule episodes inside them into incidents; prints a
//! table or one JSON object. Every input error names the file, the line and the column.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use llmscope_spc::detect::{CusumDesign, Designer, Monitor, Side, defaults};
use llmscope_spc::{
    Baseline, BaselineOptions, NelsonConfig, Rule, RuleFlags, SigmaMethod, SpcError, Transform,
    episode, nelson,
};
use serde_json::json;

/// Default number of points the baseline is estimated from (the live engine's).
pub const DEFAULT_BASELINE_POINTS: usize = defaults::PHASE1;
/// Default designed in-control run length of the CUSUM, per series: the live engine's
/// 100 000 points per model and host shared by a probe's two paging series.
pub const DEFAULT_SERIES_ARL0: f64 = 2.0 * defaults::ARL0_MODEL_HOST;
/// Below this many baseline points the estimate is shaky and a warning is printed.
pub const MIN_RELIABLE_BASELINE_POINTS: usize = 20;

/// Arguments of `analyze`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// CSV file with a header, a JSON array of numbers, or `-` for stdin.
    pub file: PathBuf,
    /// CSV column to analyse (default: the only numeric column).
    #[arg(long)]
    pub column: Option<String>,
    /// Known centre line (on the transformed scale); needs --sigma.
    #[arg(long, requires = "sigma", allow_negative_numbers = true)]
    pub center: Option<f64>,
    /// Known sigma (on the transformed scale); needs --center.
    #[arg(long, requires = "center")]
    pub sigma: Option<f64>,
    /// Estimate the baseline from the first N points [default: 300, or all if fewer].
    #[arg(long, conflicts_with = "center")]
    pub baseline_points: Option<usize>,
    /// How sigma is estimated (robust: outliers set aside, the process standard deviation and
    /// the lag-1 autocorrelation; mrbar / median: from moving ranges).
    #[arg(long, value_enum, default_value_t = SigmaArg::Robust)]
    pub sigma_method: SigmaArg,
    /// Transform applied before everything (auto: log when every value is > 0 and no
    /// --center/--sigma is given, as the live engine does for time metrics; log: values must
    /// be > 0).
    #[arg(long, value_enum, default_value_t = TransformArg::Auto)]
    pub transform: TransformArg,
    /// The CUSUM's designed in-control run length, in points of this series.
    #[arg(long, default_value_t = DEFAULT_SERIES_ARL0)]
    pub arl0: f64,
    /// The CUSUM's reference value in sigmas.
    #[arg(long, default_value_t = defaults::K)]
    pub cusum_k: f64,
    /// Rules to evaluate, e.g. `1,2,5` [default: all eight].
    #[arg(long, value_delimiter = ',')]
    pub rules: Option<Vec<u8>>,
    /// Rule parameter, e.g. `2.run=7`, `5.k=2.5`, `3.ties=ignore`, `8.both_sides=true`;
    /// repeatable, or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rule_param: Vec<String>,
    /// Quiet points after which an episode ends, as the live engine's `spc.resolve_after`
    /// (1 = only strictly consecutive flags group).
    #[arg(long, default_value_t = 20)]
    pub resolve_after: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `--sigma-method` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigmaArg {
    /// Outliers set aside, then the standard deviation and lag-1 autocorrelation.
    Robust,
    /// mean moving range / d2.
    Mrbar,
    /// median moving range / 0.954.
    Median,
}

impl SigmaArg {
    /// The estimator.
    pub fn method(self) -> SigmaMethod {
        match self {
            SigmaArg::Robust => SigmaMethod::Robust,
            SigmaArg::Mrbar => SigmaMethod::Mrbar,
            SigmaArg::Median => SigmaMethod::Median,
        }
    }
}

/// `--transform` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransformArg {
    /// Log when every value is > 0 and no centre is given, else none.
    Auto,
    /// Use values as they are.
    None,
    /// Natural logarithm.
    Log,
}

impl TransformArg {
    /// The transform (`auto` counts as `log`, as the live engine's time metrics).
    pub fn transform(self) -> Transform {
        match self {
            TransformArg::None => Transform::None,
            TransformArg::Auto | TransformArg::Log => Transform::Log,
        }
    }
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable report.
    Table,
    /// One JSON object.
    Json,
}

/// What can go wrong; every message names where.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// File name as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad content at a known place.
    #[error("{file}:{line}:{column}: {msg}")]
    At {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (CSV: field number; JSON: character).
        column: u64,
        /// What is wrong.
        msg: String,
    },
    /// Bad content without a single place (no column to pick, too few points).
    #[error("{file}: {msg}")]
    Input {
        /// File name as given.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A bad flag value.
    #[error("{0}")]
    Usage(String),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

/// One input value and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    x: f64,
    line: u64,
    column: u64,
}

#[derive(Debug)]
struct Input {
    values: Vec<Value>,
    /// The CSV column used, if any.
    column: Option<String>,
}

/// Runs `analyze`; report on `out`, warnings on `err`.
pub fn run(
    args: &AnalyzeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), AnalyzeError> {
    let file = args.file.display().to_string();
    let cfg = rule_config(args)?;
    let text = read_input(args, &file)?;
    let input = if text.trim_start().starts_with('[') {
        parse_json(&text, &file)?
    } else {
        parse_csv(&text, &file, args.column.as_deref())?
    };
    if args.column.is_some() && input.column.is_none() {
        return Err(AnalyzeError::Usage(format!(
            "{file}: --column applies to CSV input, but the file is a JSON array"
        )));
    }
    let transform = match args.transform {
        TransformArg::None => Transform::None,
        TransformArg::Log => Transform::Log,
        TransformArg::Auto if args.center.is_none() && input.values.iter().all(|v| v.x > 0.0) => {
            Transform::Log
        }
        TransformArg::Auto => Transform::None,
    };
    let at = |v: &Value, msg: String| AnalyzeError::At {
        file: file.clone(),
        line: v.line,
        column: v.column,
        msg,
    };
    // transform every value once, with its position in the error
    let mut ys = Vec::with_capacity(input.values.len());
    for (i, v) in input.values.iter().enumerate() {
        ys.push(transform.apply(i, v.x).map_err(|e| match e {
            SpcError::NonPositiveForLog { .. } => at(
                v,
                format!("{} is not > 0, which --transform log needs", v.x),
            ),
            other => at(v, other.to_string()),
        })?);
    }
    let k = cfg.rule1.k;
    let baseline = match (args.center, args.sigma) {
        (Some(c), Some(s)) => Baseline::given(c, s, k, transform)
            .map_err(|e| AnalyzeError::Usage(format!("--center/--sigma: {e}")))?,
        _ => {
            let wanted = args.baseline_points.unwrap_or(DEFAULT_BASELINE_POINTS);
            if wanted < 2 {
                return Err(AnalyzeError::Usage(format!(
                    "--baseline-points must be at least 2, got {wanted}"
                )));
            }
            let n = wanted.min(input.values.len());
            if (2..MIN_RELIABLE_BASELINE_POINTS).contains(&n) {
                writeln!(
                    err,
                    "warning: the baseline is estimated from only {n} points; limits from fewer than {MIN_RELIABLE_BASELINE_POINTS} points are unreliable"
                )?;
            }
            let opts = BaselineOptions {
                method: args.sigma_method.method(),
                transform: Transform::None, // ys are already transformed
                k,
            };
            let mut b = Baseline::estimate(&ys[..n], &opts).map_err(|e| AnalyzeError::Input {
                file: file.clone(),
                msg: format!("cannot estimate a baseline from the first {n} points: {e}"),
            })?;
            b.transform = transform;
            b
        }
    };
    let limits = baseline.limits();
    let zs: Vec<f64> = ys.iter().map(|&y| limits.z(y)).collect();
    let flags = nelson::evaluate(&zs, &cfg).map_err(|e| AnalyzeError::Usage(e.to_string()))?;
    let episodes = episode::episodes(&flags, &cfg, args.resolve_after);
    let judged_from = if baseline.method == SigmaMethod::Given {
        0
    } else {
        baseline.points
    };
    let (design, shifts) = cusum(args, &baseline, &ys, judged_from)?;
    // the live engine judges the points after Phase I with a fresh rule state: the incidents'
    // members are those episodes
    let live_flags = nelson::evaluate(&zs[judged_from.min(zs.len())..], &cfg)
        .map_err(|e| AnalyzeError::Usage(e.to_string()))?;
    let live_episodes: Vec<llmscope_spc::Episode> =
        episode::episodes(&live_flags, &cfg, args.resolve_after)
            .into_iter()
            .map(|mut e| {
                let off = judged_from as u64;
                e.start += off;
                e.end += off;
                e.points.iter_mut().for_each(|p| *p += off);
                e
            })
            .collect();
    let incidents = incidents(
        &shifts,
        &live_episodes,
        args.resolve_after as usize,
        zs.len(),
    );
    let report = Report {
        file: &file,
        input: &input,
        baseline: &baseline,
        cfg: &cfg,
        zs: &zs,
        flags: &flags,
        episodes: &episodes,
        design: &design,
        live_episodes: &live_episodes,
        shifts: &shifts,
        incidents: &incidents,
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &report.json()).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Table => out.write_all(report.table().as_bytes())?,
    }
    Ok(())
}

/// One episode of the paging CUSUM (indices of the input, 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftEpisode {
    /// The point at which it signalled.
    pub start: usize,
    /// The point at which the episode ended, 4h/k points after its last signal (`None`: still
    /// open at the end).
    pub end: Option<usize>,
    /// Which way the process moved (on the transformed scale).
    pub side: Side,
}

/// An incident: a CUSUM episode with the rule episodes that overlap it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The CUSUM episode that opened it.
    pub lead: ShiftEpisode,
    /// Rule episodes overlapping it: (rule, start, end).
    pub members: Vec<(u8, usize, usize)>,
}

/// Runs the paging CUSUM, designed as the live engine designs it for this baseline, over the
/// points from `from` on.
fn cusum(
    args: &AnalyzeArgs,
    baseline: &Baseline,
    ys: &[f64],
    from: usize,
) -> Result<(CusumDesign, Vec<ShiftEpisode>), AnalyzeError> {
    let phase1 = baseline.phase1();
    let design = Designer::with_k(args.cusum_k)
        .design_or_nearest(args.arl0, &phase1)
        .map_err(|e| {
            AnalyzeError::Usage(format!(
                "--arl0 {} / --cusum-k {} with a Phase I of {} points: {e}",
                args.arl0, args.cusum_k, baseline.points
            ))
        })?;
    // the values are already transformed
    let mut m = Monitor::from_design(phase1, Transform::None, &design);
    let mut out: Vec<ShiftEpisode> = Vec::new();
    for (i, y) in ys.iter().enumerate().skip(from) {
        let Some(step) = m.push(*y) else {
            continue;
        };
        if let Some(side) = step.opened {
            out.push(ShiftEpisode {
                start: i,
                end: None,
                side,
            });
        } else if step.closed.is_some()
            && let Some(e) = out.last_mut()
        {
            e.end = Some(i);
        }
    }
    Ok((design, out))
}

/// Groups the rule episodes (of the points after Phase I) into the CUSUM's incidents as the
/// live engine does point by point: an episode belongs to the first incident that is open
/// while the episode is — it opened before the incident's signal and was still open then
/// (an episode resolves `resolve_after` quiet points after its last flag), or it opened while
/// the incident was open, up to and including the point at which the CUSUM episode ended
/// (the rules judge a point before the CUSUM does).
fn incidents(
    shifts: &[ShiftEpisode],
    episodes: &[llmscope_spc::Episode],
    resolve_after: usize,
    n: usize,
) -> Vec<Incident> {
    let mut out: Vec<Incident> = shifts
        .iter()
        .map(|s| Incident {
            lead: *s,
            members: Vec::new(),
        })
        .collect();
    for e in episodes {
        let (start, end) = (e.start as usize, e.end as usize);
        let resolves = end + resolve_after; // the point at which it resolves (if < n)
        if let Some(inc) = out.iter_mut().find(|i| {
            let before_end = i.lead.end.is_none_or(|x| start <= x);
            let open_at_signal = resolves >= n || resolves > i.lead.start;
            before_end && open_at_signal
        }) {
            inc.members.push((e.rule, start, end));
        }
    }
    out
}

fn side_text(s: Side) -> &'static str {
    match s {
        Side::Up => "up",
        Side::Down => "down",
    }
}

fn rule_config(args: &AnalyzeArgs) -> Result<NelsonConfig, AnalyzeError> {
    let mut cfg = NelsonConfig::default();
    if let Some(rules) = &args.rules {
        let mut set = RuleFlags::NONE;
        for &n in rules {
            let rule = Rule::from_number(n).ok_or_else(|| {
                AnalyzeError::Usage(format!("--rules: `{n}` is not a rule number 1..8"))
            })?;
            set.insert(rule);
        }
        cfg.set_enabled(set);
    }
    for p in &args.rule_param {
        let (key, value) = p.split_once('=').ok_or_else(|| {
            AnalyzeError::Usage(format!(
                "--rule-param `{p}`: expected RULE.FIELD=VALUE, e.g. 2.run=7"
            ))
        })?;
        cfg.set_param(key, value)
            .map_err(|e| AnalyzeError::Usage(format!("--rule-param `{p}`: {e}")))?;
    }
    Ok(cfg)
}

fn read_input(args: &AnalyzeArgs, file: &str) -> Result<String, AnalyzeError> {
    let mut bytes = Vec::new();
    let res = if file == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(&args.file).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    res.map_err(|source| AnalyzeError::Read {
        file: file.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let column = good.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
        AnalyzeError::At {
            file: file.to_owned(),
            line,
            column,
            msg: "the file is not valid UTF-8".into(),
        }
    })
}

fn parse_json(text: &str, file: &str) -> Result<Input, AnalyzeError> {
    let nums: Vec<f64> = serde_json::from_str(text).map_err(|e| AnalyzeError::At {
        file: file.to_owned(),
        line: e.line() as u64,
        column: e.column() as u64,
        msg: format!(
            "expected a JSON array of numbers: {}",
            strip_position(&e.to_string())
        ),
    })?;
    Ok(Input {
        // JSON numbers cannot be NaN or infinite; positions are element numbers on line 1
        values: nums
            .into_iter()
            .enumerate()
            .map(|(i, x)| Value {
                x,
                line: 1,
                column: i as u64 + 1,
            })
            .collect(),
        column: None,
    })
}

fn strip_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

fn parse_csv(text: &str, file: &str, column: Option<&str>) -> Result<Input, AnalyzeError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut rows: Vec<(u64, csv::StringRecord)> = Vec::new();
    // the csv crate does not count blank lines, so lines come from byte offsets
    let mut lines = LineCounter::new(text);
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(file, &e, &mut lines))?;
        let line = lines.line_at(rec.position().map_or(0, |p| p.byte()));
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push((line, rec));
    }
    let Some((_, first)) = rows.first() else {
        return Err(AnalyzeError::Input {
            file: file.to_owned(),
            msg: "the file is empty: expected a CSV header and values, or a JSON array".into(),
        });
    };
    // a first row of numbers is data: the file has no header, columns are numbered
    let headerless = first.iter().all(|f| parse_number(f).is_some());
    let names: Vec<String> = if headerless {
        (1..=first.len()).map(|i| format!("column{i}")).collect()
    } else {
        first.iter().map(|s| s.trim().to_owned()).collect()
    };
    let data = if headerless { &rows[..] } else { &rows[1..] };
    let list = names.join(", ");
    let idx = match column {
        Some(want) => names
            .iter()
            .position(|n| n == want)
            .ok_or_else(|| AnalyzeError::Input {
                file: file.to_owned(),
                msg: format!("no column named `{want}`; the columns are: {list}"),
            })?,
        None => {
            let numeric: Vec<usize> = (0..names.len())
                .filter(|&c| {
                    !data.is_empty()
                        && data
                            .iter()
                            .all(|(_, r)| r.get(c).and_then(parse_number).is_some())
                })
                .collect();
            match numeric.as_slice() {
                [one] => *one,
                [] => {
                    return Err(AnalyzeError::Input {
                        file: file.to_owned(),
                        msg: format!(
                            "no column holds only numbers; pick one with --column (the columns are: {list})"
                        ),
                    });
                }
                many => {
                    let cands: Vec<&str> = many.iter().map(|&c| names[c].as_str()).collect();
                    return Err(AnalyzeError::Input {
                        file: file.to_owned(),
                        msg: format!(
                            "several numeric columns ({}); pick one with --column (the columns are: {list})",
                            cands.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let name = &names[idx];
    let mut values = Vec::with_capacity(data.len());
    for (line, rec) in data {
        let raw = rec.get(idx).unwrap_or("");
        let at = |msg: String| AnalyzeError::At {
            file: file.to_owned(),
            line: *line,
            column: idx as u64 + 1,
            msg,
        };
        let x = match parse_number(raw) {
            Some(x) if x.is_finite() => x,
            Some(_) => {
                return Err(at(format!(
                    "column `{name}`: `{raw}` is not a finite number"
                )));
            }
            None if raw.trim().is_empty() => {
                return Err(at(format!("column `{name}`: the value is empty")));
            }
            None => return Err(at(format!("column `{name}`: `{raw}` is not a number"))),
        };
        values.push(Value {
            x,
            line: *line,
            column: idx as u64 + 1,
        });
    }
    Ok(Input {
        values,
        column: Some(name.clone()),
    })
}

/// Maps increasing byte offsets to 1-based line numbers in one pass over the text.
struct LineCounter<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let target = (byte as usize).min(self.text.len());
        if target < self.pos {
            self.pos = 0;
            self.line = 1;
        }
        self.line += self.text[self.pos..target]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.pos = target;
        // the reader may report a record at the blank lines it skipped before it
        while let Some(&b) = self
            .text
            .get(self.pos)
            .filter(|b| matches!(b, b'\n' | b'\r'))
        {
            self.line += u64::from(b == b'\n');
            self.pos += 1;
        }
        self.line
    }
}

fn csv_error(file: &str, e: &csv::Error, lines: &mut LineCounter<'_>) -> AnalyzeError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => AnalyzeError::At {
            file: file.to_owned(),
            line: pos.as_ref().map_or(0, |p| lines.line_at(p.byte())),
            column: len + 1,
            msg: format!("this row has {len} fields, but the header has {expected_len}"),
        },
        _ => AnalyzeError::Input {
            file: file.to_owned(),
            msg: format!("not valid CSV: {e}"),
        },
    }
}

struct Report<'a> {
    file: &'a str,
    input: &'a Input,
    baseline: &'a Baseline,
    cfg: &'a NelsonConfig,
    zs: &'a [f64],
    flags: &'a [RuleFlags],
    episodes: &'a [llmscope_spc::Episode],
    design: &'a CusumDesign,
    live_episodes: &'a [llmscope_spc::Episode],
    shifts: &'a [ShiftEpisode],
    incidents: &'a [Incident],
}

impl Report<'_> {
    fn shift_json(e: &ShiftEpisode) -> serde_json::Value {
        json!({"start": e.start, "end": e.end, "side": side_text(e.side), "open": e.end.is_none()})
    }

    fn json(&self) -> serde_json::Value {
        let by_rule = nelson::flags_by_rule(self.flags);
        let flags: serde_json::Map<String, serde_json::Value> = Rule::ALL
            .iter()
            .map(|r| {
                (
                    r.number().to_string(),
                    json!(by_rule[usize::from(r.number() - 1)]),
                )
            })
            .collect();
        let b = self.baseline;
        json!({
            "baseline": {
                "center": b.center,
                "sigma": b.sigma,
                "ucl": b.ucl(),
                "lcl": b.lcl(),
                "method": b.method.as_str(),
                "points": b.points,
                "k": b.k,
                "transform": b.transform.as_str(),
                "phi": b.phi,
            },
            "flags": flags,
            "episodes": self.episodes,
            "detectors": {
                "cusum": self.shifts.iter().map(Self::shift_json).collect::<Vec<_>>(),
            },
            "design": {
                "cusum": {
                    "k": self.design.k,
                    "h": self.design.h,
                    "arl0": self.design.arl0,
                    "phase1_effective": self.design.phase1,
                    "p_target": self.design.p_target,
                    "arl_1sigma": self.design.arl(1.0),
                    "arl_2sigma": self.design.arl(2.0),
                },
            },
            "episodes_after_phase1": self.live_episodes,
            "incidents": self.incidents.iter().map(|i| json!({
                "start": i.lead.start,
                "end": i.lead.end,
                "severity": "error",
                "lead": {"detector": "cusum", "side": side_text(i.lead.side), "start": i.lead.start},
                "members": i.members.iter().map(|(r, a, b)| json!({"detector": "nelson", "rule": r, "start": a, "end": b})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn table(&self) -> String {
        let b = self.baseline;
        let mut s = String::new();
        let col = self
            .input
            .column
            .as_ref()
            .map(|c| format!(", column `{c}`"))
            .unwrap_or_default();
        let _ = writeln!(s, "{}{col}: {} points", self.file, self.zs.len());
        let how = match b.method {
            SigmaMethod::Given => "given".to_owned(),
            m => format!("{} over the first {} points", m.as_str(), b.points),
        };
        let log = if b.transform == Transform::Log {
            " (log scale; limits back-transformed)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "baseline: center {} sigma {}{log}  UCL {}  LCL {}  ({how})",
            g(b.center),
            g(b.sigma),
            g(b.ucl()),
            g(b.lcl())
        );
        let enabled: Vec<String> = self.cfg.enabled().iter().map(|r| r.to_string()).collect();
        let _ = writeln!(s, "rules evaluated: {}", enabled.join(", "));
        let d = self.design;
        let _ = writeln!(
            s,
            "paging cusum: k {} h {} (one false alarm per {} points; a 1σ shift is caught in ~{} points, 2σ in ~{})",
            g(d.k),
            g(d.h),
            g(d.arl0),
            g(d.arl(1.0).round()),
            g(d.arl(2.0).round())
        );
        if self.incidents.is_empty() {
            let _ = writeln!(s, "incidents: none (no sustained shift)");
        } else {
            let _ = writeln!(s, "\nincidents (pages):");
            for i in self.incidents {
                let end = i
                    .lead
                    .end
                    .map_or("still open".to_owned(), |e| format!("back at index {e}"));
                let _ = writeln!(
                    s,
                    "  shift {} from index {} ({end}); rule episodes inside: {}",
                    side_text(i.lead.side),
                    i.lead.start,
                    i.members
                        .iter()
                        .map(|(r, a, b)| format!("rule {r} {a}–{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let flagged: Vec<usize> = (0..self.flags.len())
            .filter(|&i| !self.flags[i].is_empty())
            .collect();
        if flagged.is_empty() {
            let _ = writeln!(
                s,
                "\nno rule fired: the series is in statistical control against this baseline"
            );
            return s;
        }
        let _ = writeln!(s, "\n{} flagged points:", flagged.len());
        let _ = writeln!(
            s,
            "{:>7} {:>6} {:>14} {:>8}  rules",
            "index", "line", "value", "z"
        );
        for i in flagged {
            let v = &self.input.values[i];
            let rules: Vec<String> = self.flags[i]
                .iter()
                .map(|r| format!("{} ({})", r.number(), r.name()))
                .collect();
            let _ = writeln!(
                s,
                "{:>7} {:>6} {:>14} {:>+8.2}  {}",
                i,
                v.line,
                g(v.x),
                self.zs[i],
                rules.join(", ")
            );
        }
        let _ = writeln!(s, "\nepisodes:");
        for e in self.episodes {
            let _ = writeln!(
                s,
                "  rule {} from index {} to {} ({} points in its windows)",
                e.rule,
                e.start,
                e.end,
                e.points.len()
            );
        }
        let fired = self.flags.iter().fold(RuleFlags::NONE, |a, &f| a | f);
        let _ = writeln!(s, "\nwhat the rules mean:");
        for r in fired.iter() {
            let _ = writeln!(s, "  rule {}: {}", r.number(), r.explain(self.cfg));
        }
        s
    }
}

/// Formats a number compactly: up to 6 significant digits, no trailing zeros.
fn g(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x.abs() >= 1e-4 && x.abs() < 1e9 {
        let digits = (6 - (x.abs().log10().floor() as i32 + 1)).clamp(0, 10) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    } else {
        format!("{x:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(g(0.0), "0");
        assert_eq!(g(802.125), "802.125");
        assert_eq!(g(1234567.0), "1234567");
        assert_eq!(g(0.000012345), "1.2345e-5");
        assert_eq!(g(-3.5), "-3.5");
    }

    #[test]
    fn csv_headerless_single_column() {
        let input = parse_csv("1.5\n2.5\n\n3\n", "x.csv", None).unwrap();
        let xs: Vec<f64> = input.values.iter().map(|v| v.x).collect();
        assert_eq!(xs, vec![1.5, 2.5, 3.0]);
        assert_eq!(input.values[2].line, 4);
    }

    #[test]
    fn csv_errors_name_line_and_column() {
        let e = parse_csv("ts,latency_ms\na,1\nb,x\n", "f.csv", None).unwrap_err();
        assert!(
            e.to_string().contains("no column holds only numbers"),
            "{e}"
        );
        let e = parse_csv("ts,latency_ms\na,1\nb,x\n", "f.csv", Some("latency_ms")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.csv:3:2: column `latency_ms`: `x` is not a number"
        );
        let e = parse_csv("a,b\n1,2\n3\n", "f.csv", None).unwrap_err();
        assert!(e.to_string().starts_with("f.csv:3:"), "{e}");
        let e = parse_csv("a,b\n1,2\n", "f.csv", None).unwrap_err();
        assert!(
            e.to_string().contains("several numeric columns (a, b)"),
            "{e}"
        );
    }
}
