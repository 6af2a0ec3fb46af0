#!/usr/bin/env python3
"""Checks the Grafana dashboards of LLMscope.

    check_dashboards.py DASHBOARD_DIR                      structure only
    check_dashboards.py DASHBOARD_DIR EXPOSED_NAMES_FILE   structure and metric names

Structure: every *.json file parses, is a dashboard with a `uid` (unique across the
folder), a `title` and a non-empty `panels` list, every panel (rows included) has a
unique id and a gridPos, every query target has an `expr`, and data sources are
referenced through the `${datasource}` variable.

Metric names: every metric name used in a panel query (`expr`) or a templating query
(`label_values(METRIC…, label)`, `query_result(…)`) must be one of the names in
EXPOSED_NAMES_FILE, or `up`. That file may be the raw Prometheus text of /metrics
(several scrapes concatenated) or one name per line. Sample names are taken as they
appear (`…_total`, `…_bucket`, `…_sum`, `…_count`); `# TYPE` lines add the sample names a
family will have once it has samples (a histogram with no observations yet still counts).

Exit code 0 when all is well, 1 with one line per problem otherwise. Standard library
only (Python 3.8+).
"""

import json
import re
import sys
from pathlib import Path

ALWAYS_EXPOSED = {"up"}

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def strip_grafana_vars(expr):
    """Replaces $var, ${var}, ${var:fmt}, [[var]] and $__interval-like macros with a neutral token."""
    expr = re.sub(r"\$\{[^}]*\}", "x0", expr)
    expr = re.sub(r"\[\[[^\]]*\]\]", "x0", expr)
    return re.sub(r"\$[A-Za-z_][A-Za-z0-9_]*", "x0", expr)


def metric_names(expr):
    """The metric names a PromQL expression selects (a lexical approximation that is exact
    for the queries dashboards use: selectors, functions, aggregations, binary operators)."""
    e = strip_grafana_vars(expr)
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', e)  # string literals
    e = re.sub(r"'(?:\\.|[^'\\])*'", "''", e)
    e = re.sub(r"`[^`]*`", "``", e)
    e = re.sub(r"\{[^{}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\[\]]*\]", " ", e)  # range and subquery selectors
    # label lists of by / without / on / ignoring / group_left / group_right
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", e)
    e = re.sub(r"\boffset\s+-?[0-9a-z.]+", " ", e)
    e = re.sub(r"@\s*[0-9.]+", " ", e)
    names = []
    for m in IDENT.finditer(e):
        word = m.group(0)
        start, end = m.span()
        if start > 0 and (e[start - 1].isdigit() or e[start - 1] == "."):
            continue  # the exponent or unit of a number: 1e3, 5m
        rest = e[end:].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word.lower() in KEYWORDS or word == "x0":
            continue
        names.append(word)
    return names


def template_query_names(query):
    """Metric names used by a Grafana Prometheus templating query."""
    if isinstance(query, dict):
        names = []
        if query.get("metric"):
            names.append(query["metric"])
        q = query.get("query")
        if isinstance(q, str):
            names.extend(template_query_names(q))
        return names
    if not isinstance(query, str):
        return []
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*)\)", q, re.S)
    if m:
        args = m.group(1)
        # the last top-level comma separates the label name; no comma: a label name only
        depth, cut = 0, -1
        for i, ch in enumerate(args):
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                cut = i
        return metric_names(args[:cut]) if cut >= 0 else []
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return metric_names(m.group(1))
    if re.fullmatch(r"(label_names|metrics)\(.*\)", q, re.S):
        return []
    return metric_names(q)


def exposed_names(path):
    """Sample names from /metrics text (or a plain list of names)."""
    names = set()
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                name, kind = parts[2], parts[3]
                if kind == "counter":
                    names.add(name if name.endswith("_total") else name + "_total")
                elif kind in ("histogram", "gaugehistogram"):
                    names.update({name + "_bucket", name + "_sum", name + "_count"})
                elif kind == "summary":
                    names.update({name, name + "_sum", name + "_count"})
                elif kind == "info":
                    names.add(name if name.endswith("_info") else name + "_info")
                else:
                    names.add(name)
            continue
        m = IDENT.match(line)
        if m:
            names.add(m.group(0))
    return names


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def check_datasource(ref, where, problems):
    if ref is None or isinstance(ref, str) and ref in ("${datasource}", "$datasource"):
        return
    if isinstance(ref, dict):
        if ref.get("type") == "grafana" or ref.get("uid") in ("${datasource}", "$datasource", "-- Grafana --"):
            return
    problems.append(f"{where}: data source {json.dumps(ref)} is not the ${{datasource}} variable")


def check_dashboard(path, uids, problems):
    """Structure checks; returns [(where, metric_name)] used by the dashboard."""
    used = []
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: not valid JSON: {e}")
        return used
    if not isinstance(d, dict):
        problems.append(f"{path.name}: not a JSON object")
        return used
    for key in ("uid", "title"):
        if not isinstance(d.get(key), str) or not d[key].strip():
            problems.append(f"{path.name}: missing `{key}`")
    uid = d.get("uid")
    if isinstance(uid, str):
        if uid in uids:
            problems.append(f"{path.name}: uid `{uid}` is also used by {uids[uid]}")
        uids[uid] = path.name
    panels = d.get("panels")
    if not isinstance(panels, list) or not panels:
        problems.append(f"{path.name}: no `panels`")
        panels = []
    ids = set()
    for p in walk_panels(panels):
        where = f"{path.name}: panel {p.get('id')} ({p.get('title', '')!r})"
        if "id" not in p:
            problems.append(f"{where}: no id")
        elif p["id"] in ids:
            problems.append(f"{where}: id used twice")
        ids.add(p.get("id"))
        if not isinstance(p.get("gridPos"), dict):
            problems.append(f"{where}: no gridPos")
        if p.get("type") != "row" and not p.get("targets"):
            problems.append(f"{where}: no targets")
        check_datasource(p.get("datasource"), where, problems)
        for t in p.get("targets") or []:
            check_datasource(t.get("datasource"), where, problems)
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            used.extend((where, n) for n in metric_names(expr))
    for v in (d.get("templating") or {}).get("list") or []:
        where = f"{path.name}: variable ${v.get('name')}"
        if v.get("type") == "query":
            check_datasource(v.get("datasource"), where, problems)
            used.extend((where, n) for n in template_query_names(v.get("query")))
    return used


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    folder = Path(argv[1])
    files = sorted(folder.glob("*.json"))
    problems = []
    if not files:
        problems.append(f"{folder}: no dashboards (*.json)")
    uids = {}
    used = []
    for f in files:
        used.extend(check_dashboard(f, uids, problems))
    if len(argv) == 3:
        known = exposed_names(argv[2]) | ALWAYS_EXPOSED
        for where, name in used:
            if name not in known:
                problems.append(f"{where}: metric `{name}` is not exposed")
    for p in problems:
        print(p)
    names = sorted({n for _, n in used})
    if problems:
        print(f"{len(problems)} problem(s) in {len(files)} dashboard(s)", file=sys.stderr)
        return 1
    mode = "structure and metric names" if len(argv) == 3 else "structure"
    print(f"{len(files)} dashboards ok ({mode}); {len(names)} metric names used")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
