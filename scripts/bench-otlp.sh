#!/usr/bin/env bash
# OTLP receiver against the native ingest on identical data, in one run, into PostgreSQL:
# `llmscope-loadgen` sends N samples over 4 concurrent connections in batches of 1000 either
# as native IngestService streams or as OpenTelemetry GenAI spans (`--otlp`, TraceService
# Export, one export at a time per connection, as an SDK's batch span processor sends them).
# A discarded warm-up of each, then native, OTLP, native, OTLP, each on a fresh database;
# each run checks that every sample was stored.
# Usage: scripts/bench-otlp.sh [SAMPLES]   (default 200000)
set -euo pipefail
export LLMSCOPE_OTLP_GRPC_LISTEN=off LLMSCOPE_OTLP_HTTP_LISTEN=off
cd "$(dirname "$0")/.."
N="${1:-200000}"
PG="${LLMSCOPE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
WORK="$(mktemp -d /tmp/llmscope-bench-otlp.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
scripts/ensure-postgres.sh
cargo build --release -q -p llmscope-collector -p llmscope-e2e
BIN="${CARGO_TARGET_DIR:-target}/release"

run() { # native|otlp -> prints the loadgen JSON
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS llmscope_bench_otlp WITH (FORCE)" -c "CREATE DATABASE llmscope_bench_otlp" >/dev/null
  local url="$PG/llmscope_bench_otlp"
  local token; token=$("$BIN/llmscope-collector" token create --site bench --database-url "$url" 2>/dev/null)
  "$BIN/llmscope-collector" serve --database-url "$url" --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    > "$WORK/ready" 2> "$WORK/collector.log" &
  local pid=$!
  for _ in $(seq 1 200); do grep -q ready "$WORK/ready" 2>/dev/null && break; sleep 0.1; done
  local grpc; grpc=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$WORK/ready")
  [ -n "$grpc" ] || { cat "$WORK/collector.log" >&2; exit 1; }
  local flag=(); [ "$1" = otlp ] && flag=(--otlp)
  "$BIN/llmscope-loadgen" --target "$grpc" --token "$token" --samples "$N" --streams 4 --batch 1000 "${flag[@]}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local stored; stored=$(psql -qtA "$url" -c "SELECT count(*) FROM samples")
  [ "$stored" = "$N" ] || { echo "$1: $stored of $N samples stored" >&2; exit 1; }
}
echo "== $N samples, 4 connections, batches of 1000, PostgreSQL, live SPC on" >&2
echo "warm-up native (not counted): $(run native)" >&2
echo "warm-up otlp (not counted):   $(run otlp)" >&2
for round in 1 2; do
  echo "native $round: $(run native)"
  echo "otlp   $round: $(run otlp)"
done
