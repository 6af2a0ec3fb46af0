#!/usr/bin/env bash
# Compares what the agent reads through NVML (`llmscope-agent gpu-info --json`) with
# `nvidia-smi` on a machine with an NVIDIA GPU, field by field within stated tolerances:
#   memory used/total ±2 MiB, temperature ±2 °C, utilisation ±15 points (it moves between the
#   two reads), power ±10 %, SM clock ±10 %; UUID and name exactly.
# Prints one line per GPU and field, and exits 1 on a mismatch (2 when there is no GPU).
# Usage: scripts/check-gpu.sh [path/to/llmscope-agent]   (default: builds it in release)
set -euo pipefail
cd "$(dirname "$0")/.."
AGENT="${1:-}"
if [ -z "$AGENT" ]; then
  cargo build --release -q -p llmscope-agent
  AGENT="${CARGO_TARGET_DIR:-target}/release/llmscope-agent"
fi
command -v nvidia-smi >/dev/null || { echo "check-gpu: no nvidia-smi on this machine" >&2; exit 2; }
OURS="$("$AGENT" gpu-info --json)" || { echo "check-gpu: $OURS" >&2; exit 2; }
THEIRS="$(nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw,clocks.sm --format=csv,noheader,nounits)"
python3 - "$OURS" "$THEIRS" <<'PY'
import json, sys
ours = {g["index"]: g for g in json.loads(sys.argv[1])["gpus"] if g.get("mig_index") is None}
bad = 0
MIB = 1024 * 1024
def num(s):
    s = s.strip()
    return None if s in ("[N/A]", "[Not Supported]", "N/A") else float(s)
for line in sys.argv[2].strip().splitlines():
    idx, uuid, name, util, used, total, temp, power, sm = [x.strip() for x in line.split(",")]
    g = ours.get(int(idx))
    if g is None:
        print(f"gpu {idx}: missing from gpu-info"); bad += 1; continue
    checks = [
        ("uuid", g["uuid"], uuid, lambda a, b: a == b),
        ("name", g["name"], name, lambda a, b: a == b),
        ("util_pct", g["util_pct"], num(util), lambda a, b: abs(a - b) <= 15),
        ("mem_used_mib", g["mem_used_bytes"] and g["mem_used_bytes"] / MIB, num(used), lambda a, b: abs(a - b) <= 2),
        ("mem_total_mib", g["mem_total_bytes"] and g["mem_total_bytes"] / MIB, num(total), lambda a, b: abs(a - b) <= 2),
        ("temp_c", g["temp_c"], num(temp), lambda a, b: abs(a - b) <= 2),
        ("power_w", g["power_w"], num(power), lambda a, b: abs(a - b) <= 0.1 * max(b, 1)),
        ("sm_clock_mhz", g["sm_clock_mhz"], num(sm), lambda a, b: abs(a - b) <= 0.1 * max(b, 1)),
    ]
    for field, a, b, ok in checks:
        if a is None and b is None:
            verdict = "ok (unsupported by both)"
        elif a is None or b is None:
            verdict = "MISMATCH (supported by one only)"; bad += 1
        elif ok(a, b):
            verdict = "ok"
        else:
            verdict = "MISMATCH"; bad += 1
        print(f"gpu {idx} {field}: agent={a} nvidia-smi={b} {verdict}")
print(f"check-gpu: {bad} mismatch(es)")
sys.exit(1 if bad else 0)
PY
