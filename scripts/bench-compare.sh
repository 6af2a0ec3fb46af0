#!/usr/bin/env bash
# Ingest of two builds side by side, alternated in one run (for "no regression" checks):
#   three rounds of the fixed-rate ack test (20 000 samples/s into PostgreSQL, SPC on),
#   two rounds of floods into PostgreSQL with SPC off and on,
#   two rounds of floods into SQLite.
# Usage: scripts/bench-compare.sh OLD_RELEASE_DIR NEW_RELEASE_DIR
#   each folder holds a release build's `llmscope-collector` and `llmscope-loadgen`
#   (e.g. build the old commit in a `git worktree` with its own CARGO_TARGET_DIR).
set -uo pipefail
# the OTLP receivers' own listeners are not measured here (and would share ports 4317/4318)
export LLMSCOPE_OTLP_GRPC_LISTEN=off LLMSCOPE_OTLP_HTTP_LISTEN=off
OLD="${1:?old release folder}"; NEW="${2:?new release folder}"
PG="${LLMSCOPE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
W=$(mktemp -d /tmp/llmscope-cmp.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
scripts/ensure-postgres.sh
run() { # bin database spc loadgen-args label
  local BIN=$1 DB=$2
  if [[ $DB == postgres* ]]; then
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS llmscope_cmp WITH (FORCE)" -c "CREATE DATABASE llmscope_cmp" >/dev/null 2>&1
  else
    rm -rf "$W/db" && mkdir -p "$W/db"
  fi
  local TOKEN
  TOKEN=$("$BIN/llmscope-collector" token create --site bench --database-url "$DB" 2>/dev/null)
  LLMSCOPE_SPC_ENABLED=$3 "$BIN/llmscope-collector" serve --database-url "$DB" --grpc-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 > "$W/ready" 2> "$W/log" &
  local P=$!
  for _ in $(seq 1 100); do grep -q ready "$W/ready" 2>/dev/null && break; sleep 0.1; done
  local G
  G=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$W/ready")
  # shellcheck disable=SC2086
  echo "$5 ${DB%%:*} spc=$3 $4: $("$BIN/llmscope-loadgen" --target "$G" --token "$TOKEN" $4)"
  kill "$P"; wait "$P" 2>/dev/null
}
PGDB="$PG/llmscope_cmp"; LITE="sqlite://$W/db/l.db"
for _ in 1 2 3; do
  for b in old new; do
    d=$OLD; [ $b = new ] && d=$NEW
    run "$d" "$PGDB" true "--samples 300000 --streams 4 --batch 500 --rate 20000" $b
  done
done
for _ in 1 2; do
  for spc in false true; do
    for b in old new; do
      d=$OLD; [ $b = new ] && d=$NEW
      run "$d" "$PGDB" $spc "--samples 400000 --streams 4 --batch 1000" $b
    done
  done
  for b in old new; do
    d=$OLD; [ $b = new ] && d=$NEW
    run "$d" "$LITE" true "--samples 200000 --streams 4 --batch 1000" $b
  done
done
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS llmscope_cmp WITH (FORCE)" >/dev/null 2>&1
