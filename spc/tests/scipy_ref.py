"""Reference values from scipy/numpy for spc/tests/stats_vs_scipy.rs: reads the test's data
(JSON on stdin), computes each statistic independently, prints JSON."""
import json
import sys

import numpy as np
from scipy import stats

d = json.load(sys.stdin)
a, b = np.array(d["a"]), np.array(d["b"])
out = {}
la, lb = np.log(a), np.log(b)
w = stats.ttest_ind(lb, la, equal_var=False)
va, vb = la.var(ddof=1) / len(la), lb.var(ddof=1) / len(lb)
df = (va + vb) ** 2 / (va ** 2 / (len(la) - 1) + vb ** 2 / (len(lb) - 1))
se = np.sqrt(va + vb)
diff = lb.mean() - la.mean()
tq = stats.t.ppf(0.975, df)
out["welch"] = {"t": float(w.statistic), "df": float(df), "p_value": float(w.pvalue)}
out["ratio"] = {"estimate": float(np.exp(diff)), "ci": [float(np.exp(diff - tq * se)), float(np.exp(diff + tq * se))]}
mw = stats.mannwhitneyu(a, b, use_continuity=True, alternative="two-sided", method="asymptotic")
out["mann_whitney"] = {"u": float(mw.statistic), "p_value": float(mw.pvalue)}
diffs = np.sort(np.subtract.outer(b, a).ravel())
m = len(diffs)
n1, n2 = len(a), len(b)
c = int(max(1, np.floor(n1 * n2 / 2 - stats.norm.ppf(0.975) * np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12))))
out["hodges_lehmann"] = {"estimate": float(np.median(diffs)), "ci": [float(diffs[c - 1]), float(diffs[m - c])]}


def lag1(x):
    x = np.asarray(x)
    m = x.mean()
    return float(np.sum((x[:-1] - m) * (x[1:] - m)) / np.sum((x - m) ** 2))


out["lag1"] = [lag1(a), lag1(b)]
y = np.array(d["trend_y"])
x = np.arange(len(y), dtype=float)
ts = stats.theilslopes(y, x, alpha=0.95)
out["theil_sen"] = {"slope": float(ts.slope), "intercept": float(ts.intercept), "slope_ci": [float(ts.low_slope), float(ts.high_slope)]}
# capability as qcc's process.capability for xbar.one (sigma = MR-bar / d2), on ln values
cx = np.log(np.array(d["cap"]))
usl = float(np.log(d["usl"]))
n = len(cx)
mean = cx.mean()
sw = np.mean(np.abs(np.diff(cx))) / 1.128
so = cx.std(ddof=1)
z = stats.norm.ppf(0.975)
def bissell(k):
    h = z * np.sqrt(1 / (9 * n) + k * k / (2 * (n - 1)))
    return [float(k - h), float(k + h)]
cpk = (usl - mean) / (3 * sw)
ppk = (usl - mean) / (3 * so)
lsl = float(np.log(d["lsl"]))
cp = (usl - lsl) / (6 * sw)
out["capability"] = {
    "mean": float(mean), "sigma_within": float(sw), "sigma_overall": float(so),
    "cpk": {"estimate": float(cpk), "ci": bissell(cpk)},
    "ppk": {"estimate": float(ppk), "ci": bissell(ppk)},
    "cp_two_sided": {"estimate": float(cp), "ci": [float(cp * np.sqrt(stats.chi2.ppf(0.025, n - 1) / (n - 1))),
                                                   float(cp * np.sqrt(stats.chi2.ppf(0.975, n - 1) / (n - 1)))]},
    "ppk_percentile": float((usl - np.percentile(cx, 50)) / (np.percentile(cx, 99.865) - np.percentile(cx, 50))),
}
out["quantiles"] = {
    "t": [float(stats.t.ppf(p, df_)) for p, df_ in d["t_points"]],
    "chi2": [float(stats.chi2.ppf(p, df_)) for p, df_ in d["chi2_points"]],
    "norm": [float(stats.norm.ppf(p)) for p in d["norm_points"]],
}
json.dump(out, sys.stdout)
