#!/usr/bin/env bash
# Agent benchmarks, in one run on this machine:
#   1. proxy added latency: the same streamed requests at 1000 req/s directly to a fast SSE
#      upstream, through the agent's timing proxy, and through nginx (Debian package) as a
#      reverse proxy with buffering off and upstream keep-alive; rounds interleaved;
#   2. agent idle: 5 probe targets (15 s interval), 1 Hz telemetry and, per target, a vLLM
#      /metrics page read at every tick (the test fixture, served by python's http.server),
#      for 60 s: RSS and CPU.
# Usage: scripts/bench-agent.sh [SECONDS_PER_ROUND]   (default 10; 3 rounds per target)
set -euo pipefail
# the OTLP receivers' own listeners are not measured here (and would share ports 4317/4318)
export LLMSCOPE_OTLP_GRPC_LISTEN=off LLMSCOPE_OTLP_HTTP_LISTEN=off
cd "$(dirname "$0")/.."
SECS="${1:-10}"
if ! command -v nginx >/dev/null 2>&1; then
  echo "installing nginx (Debian package) for the comparison" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >&2
fi
cargo build --release -q -p llmscope-agent -p llmscope-collector -p llmscope-e2e
BIN="${CARGO_TARGET_DIR:-target}/release"
WORK="$(mktemp -d /tmp/llmscope-agent-bench.XXXXXX)"
cleanup() { nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/llmscope-proxybench" upstream --listen 127.0.0.1:0 > "$WORK/up" &
for _ in $(seq 1 100); do grep -q ready "$WORK/up" 2>/dev/null && break; sleep 0.1; done
UP=$(awk '{print $3}' "$WORK/up")
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat > "$WORK/agent.toml" <<TOML
collector = "http://127.0.0.1:9"
site = "bench"
data_dir = "$WORK/agent"
http_listen = "127.0.0.1:0"
auto_targets = false
[[proxies]]
name = "bench"
listen = "127.0.0.1:$PPORT"
upstream = "http://$UP"
provider = "openai_compatible"
TOML
LLMSCOPE_LOG=error "$BIN/llmscope-agent" --config "$WORK/agent.toml" > "$WORK/agent.out" &
for _ in $(seq 1 100); do grep -q ready "$WORK/agent.out" 2>/dev/null && break; sleep 0.1; done
# AGENT_B=/path/to/another/llmscope-agent: a second build in the same interleaved run (e.g. the
# previous commit's), as path `agent_b`
EXTRA=()
if [ -n "${AGENT_B:-}" ]; then
  BPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed -e "s/$PPORT/$BPORT/" -e "s#$WORK/agent\"#$WORK/agent_b\"#" "$WORK/agent.toml" > "$WORK/agent_b.toml"
  LLMSCOPE_LOG=error "$AGENT_B" --config "$WORK/agent_b.toml" > "$WORK/agent_b.out" &
  for _ in $(seq 1 100); do grep -q ready "$WORK/agent_b.out" 2>/dev/null && break; sleep 0.1; done
  EXTRA=(agent_b="http://127.0.0.1:$BPORT/v1/chat/completions")
fi

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  upstream model { server $UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf"
sleep 0.5

echo "== proxy latency at 1000 req/s, ${SECS}s x 3 rounds per target (interleaved)" >&2
RES=$("$BIN/llmscope-proxybench" load --rate 1000 --seconds "$SECS" --rounds 3 \
  direct="http://$UP/v1/chat/completions" \
  agent="http://127.0.0.1:$PPORT/v1/chat/completions" \
  nginx="http://127.0.0.1:$NPORT/v1/chat/completions" "${EXTRA[@]}")
echo "$RES" >&2
python3 - "$RES" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); d = r["direct"]
print("| path | requests | errors | p50 ms | p99 ms | added p50 ms | added p99 ms | p50 / direct | p99 / direct |")
print("|---|---|---|---|---|---|---|---|---|")
for k in [k for k in ["direct", "agent", "agent_b", "nginx"] if k in r]:
    v = r[k]
    print(f"| {k} | {v['requests']} | {v['errors']} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} | {v['p50_ms']-d['p50_ms']:+.3f} | {v['p99_ms']-d['p99_ms']:+.3f} | {v['p50_ms']/d['p50_ms']:.2f} | {v['p99_ms']/d['p99_ms']:.2f} |")
PY
kill %2 2>/dev/null || true
[ -n "${SKIP_IDLE:-}" ] && exit 0

echo "== agent idle: 5 targets (15 s interval), 1 Hz telemetry, vLLM /metrics read per target, 60 s, shipping to a collector" >&2
mkdir -p "$WORK/vllm"
cp agent/tests/fixtures/vllm-metrics-2.txt "$WORK/vllm/metrics"
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
( cd "$WORK/vllm" && exec python3 -m http.server "$MPORT" --bind 127.0.0.1 ) > /dev/null 2>&1 &
MPID=$!
CPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LLMSCOPE_LOG=error "$BIN/llmscope-collector" serve --insecure-no-auth --database-url "sqlite://$WORK/c/llmscope.db" \
  --grpc-listen 127.0.0.1:$CPORT --http-listen 127.0.0.1:0 > "$WORK/collector.out" &
for _ in $(seq 1 100); do grep -q ready "$WORK/collector.out" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/idle.toml" <<TOML
collector = "http://127.0.0.1:$CPORT"
site = "bench"
data_dir = "$WORK/idle"
http_listen = "127.0.0.1:0"
telemetry_interval = "1s"
auto_targets = false
TOML
for i in 1 2 3 4 5; do
cat >> "$WORK/idle.toml" <<TOML
[[targets]]
name = "t$i"
provider = "openai_compatible"
base_url = "http://$UP"
model = "bench"
interval = "15s"
server_metrics = "vllm"
server_metrics_url = "http://127.0.0.1:$MPORT/metrics"
TOML
done
LLMSCOPE_LOG=error "$BIN/llmscope-agent" --config "$WORK/idle.toml" > "$WORK/idle.out" &
APID=$!
sleep 5
TCK=$(getconf CLK_TCK)
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$APID/stat)
t0=$(date +%s.%N)
sleep 60
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$APID/stat)
t1=$(date +%s.%N)
RSS=$(awk '/VmRSS/ {print $2}' /proc/$APID/status)
HWM=$(awk '/VmHWM/ {print $2}' /proc/$APID/status)
python3 -c "
cpu = (($u1+$s1)-($u0+$s0))/$TCK/($t1-$t0)*100
print(f'| agent idle (5 targets, 1 Hz telemetry, 5 vLLM /metrics pages read per second, shipping to a local collector) | RSS {$RSS/1024:.1f} MiB (peak {$HWM/1024:.1f} MiB) | CPU {cpu:.2f}% of one core |')
"
kill $MPID 2>/dev/null || true
