#!/usr/bin/env bash
# The independent statistics reference: a venv with numpy and scipy (pinned wheels from PyPI)
# that tests call to compute Welch, Mann–Whitney, Theil–Sen, the distributions' quantiles and
# the capability indices on the same data as the Rust code. Idempotent; prints the python path.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LLMSCOPE_STATS_VENV:-${LLMSCOPE_TOOLS:-/var/tmp/llmscope-tools}/stats-venv}"
mkdir -p "$(dirname "$VENV")"
# tests run in parallel: one setup at a time (a second one would see a half-made venv)
exec 9>"$VENV.lock"
flock 9
if ! "$VENV/bin/python" -c "import scipy, numpy" 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q "numpy==2.3.5" "scipy==1.16.3" >&2
fi
echo "$VENV/bin/python"
