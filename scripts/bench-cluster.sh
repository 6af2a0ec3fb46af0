#!/usr/bin/env bash
# Cluster-mode benchmark (issue 14), all on this machine in one run, against a nats-server -js
# of its own (free port, temporary store) and the local PostgreSQL:
#   1. ingest flood, live SPC on, 4 streams of 1 000-sample batches: the direct path (one
#      collector, no NATS) and cluster mode (one replica + NATS), alternated twice after a
#      discarded warm-up of each. Cluster mode acks once JetStream stored a batch, so it also
#      reports the end-to-end rate: until every sample is in PostgreSQL and judged (the log
#      is empty). CPU seconds of the collector, nats-server and PostgreSQL per 100 000 samples.
#   2. ack latency at a fixed 20 000 samples/s (15 s), direct and cluster.
#   3. takeover after kill -9: two replicas, 2 000 samples/s through one, kill -9 of the
#      other; time until the survivor holds every partition (three times).
# Usage: scripts/bench-cluster.sh [SAMPLES]   (default 400000)
set -euo pipefail
# the OTLP receivers' own listeners are not measured here (and would share ports 4317/4318)
export LLMSCOPE_OTLP_GRPC_LISTEN=off LLMSCOPE_OTLP_HTTP_LISTEN=off
cd "$(dirname "$0")/.."
N="${1:-400000}"
PG="${LLMSCOPE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
WORK="$(mktemp -d /tmp/llmscope-bench-cluster.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
scripts/ensure-postgres.sh
command -v nats-server >/dev/null || scripts/ensure-nats.sh
cargo build --release -q -p llmscope-collector -p llmscope-e2e
BIN="${CARGO_TARGET_DIR:-target}/release"

NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$NPORT" -sd "$WORK/nats" > "$WORK/nats.log" 2>&1 &
NATS_PID=$!; PIDS+=("$NATS_PID")
NATS="nats://127.0.0.1:$NPORT"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$NPORT") 2>/dev/null && break; sleep 0.1; done

cpu() { # pid... -> clock ticks of user + system time
  local t=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
pg_pids() { pgrep -x postgres || pgrep postgres || true; }

N_COLL=0
start_collector() { # url extra-args... -> sets CPID, GRPC, HTTP
  local url="$1"; shift
  N_COLL=$((N_COLL + 1))
  local ready="$WORK/ready.$N_COLL"
  "$BIN/llmscope-collector" serve --database-url "$url" --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 "$@" \
    > "$ready" 2> "$WORK/collector.$N_COLL.log" &
  CPID=$!; PIDS+=("$CPID")
  for _ in $(seq 1 300); do grep -q ready "$ready" 2>/dev/null && break; sleep 0.1; done
  GRPC=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$ready")
  HTTP=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' "$ready")
  [ -n "$GRPC" ] || { cat "$WORK/collector.$N_COLL.log"; exit 1; }
}
stop_collector() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
fresh_db() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null; }
DB=llmscope_bench_cl
new_run() { # a fresh database and its ingest token (TOKEN), a new NATS prefix (PREFIX)
  PREFIX="bench$(date +%s%N)"  # unique also inside $(…) subshells
  fresh_db "$DB"
  TOKEN=$("$BIN/llmscope-collector" token create --site bench --database-url "$PG/$DB" 2>/dev/null)
}
cluster_json() { curl -s "http://$1/api/v1/cluster"; }

# one flood run -> JSON {acked_per_s, e2e_per_s, cpu: {collector, nats, postgres} (s per 100k)}
flood() { # mode (direct|cluster) [hosts per batch, default 50]
  new_run
  local db="$DB" token="$TOKEN"
  if [ "$1" = cluster ]; then
    start_collector "$PG/$db" --nats-url "$NATS" --nats-prefix "$PREFIX"
    for _ in $(seq 1 100); do
      [ "$(cluster_json "$HTTP" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["owned"]))' 2>/dev/null)" = 64 ] && break
      sleep 0.1
    done
  else
    start_collector "$PG/$db"
  fi
  local c0 n0 p0 t0 out t1 c1 n1 p1
  c0=$(cpu "$CPID"); n0=$(cpu "$NATS_PID"); p0=$(cpu $(pg_pids))
  t0=$(date +%s.%N)
  out=$("$BIN/llmscope-loadgen" --target "$GRPC" --token "$token" --samples "$N" --streams 4 --batch 1000 --hosts "${2:-50}")
  if [ "$1" = cluster ]; then
    # end to end: every sample stored and judged (a message leaves the log once both happened)
    for _ in $(seq 1 1200); do
      left=$(cluster_json "$HTTP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["log"]["messages"])' 2>/dev/null || echo x)
      [ "$left" = 0 ] && break
      sleep 0.1
    done
    [ "$(psql -Atq "$PG/$db" -c 'select count(*) from samples')" = "$N" ] || { echo "cluster run lost samples" >&2; exit 1; }
  fi
  t1=$(date +%s.%N)
  c1=$(cpu "$CPID"); n1=$(cpu "$NATS_PID"); p1=$(cpu $(pg_pids))
  stop_collector "$CPID"
  python3 - "$out" "$t0" "$t1" "$N" "$((c1 - c0))" "$((n1 - n0))" "$((p1 - p0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
out = json.loads(sys.argv[1]); t0, t1, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
tck = float(sys.argv[8]); per = 100000 / n
cpu = {k: round(int(v) / tck * per, 2) for k, v in zip(("collector", "nats", "postgres"), sys.argv[5:8])}
print(json.dumps({"acked_per_s": out["samples_per_s"], "e2e_per_s": round(n / (t1 - t0)), "cpu_s_per_100k": cpu,
                  "ack_p50_ms": out["ack_p50_ms"], "ack_p99_ms": out["ack_p99_ms"]}))
PY
}

echo "== flood, $N samples, live SPC on: warm-up (direct, cluster), then direct, cluster, direct, cluster" >&2
flood direct >/dev/null; flood cluster >/dev/null
D1=$(flood direct); echo "direct:  $D1" >&2
C1=$(flood cluster); echo "cluster: $C1" >&2
D2=$(flood direct); echo "direct:  $D2" >&2
C2=$(flood cluster); echo "cluster: $C2" >&2
echo "== the same with agent-shaped batches (4 hosts per batch, not 50): direct, cluster" >&2
DA=$(flood direct 4); echo "direct:  $DA" >&2
CA=$(flood cluster 4); echo "cluster: $CA" >&2

rate20k() { # mode -> loadgen JSON
  new_run
  local db="$DB" token="$TOKEN"
  if [ "$1" = cluster ]; then
    start_collector "$PG/$db" --nats-url "$NATS" --nats-prefix "$PREFIX"
    sleep 2
  else
    start_collector "$PG/$db"
  fi
  "$BIN/llmscope-loadgen" --target "$GRPC" --token "$token" --samples 300000 --streams 4 --batch 500 --rate 20000
  stop_collector "$CPID"
}
echo "== ack latency at 20000 samples/s (15 s each): direct, cluster" >&2
RD=$(rate20k direct); echo "direct:  $RD" >&2
RC=$(rate20k cluster); echo "cluster: $RC" >&2

echo "== takeover after kill -9 (two replicas, 2000 samples/s through the survivor), 3 times" >&2
TAKEOVERS=()
for i in 1 2 3; do
  new_run
  token="$TOKEN"
  start_collector "$PG/$DB" --nats-url "$NATS" --nats-prefix "$PREFIX"; A=$CPID; AH=$HTTP; AG=$GRPC
  start_collector "$PG/$DB" --nats-url "$NATS" --nats-prefix "$PREFIX"; B=$CPID
  for _ in $(seq 1 200); do
    [ "$(cluster_json "$AH" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["owned"]))' 2>/dev/null)" = 32 ] && break
    sleep 0.1
  done
  "$BIN/llmscope-loadgen" --target "$AG" --token "$token" --samples 40000 --streams 2 --batch 100 --rate 2000 >/dev/null &
  LG=$!
  sleep 5
  kill -9 "$B"; k=$(date +%s.%N)
  took=""
  for _ in $(seq 1 300); do
    if [ "$(cluster_json "$AH" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["owned"]))' 2>/dev/null)" = 64 ]; then
      took=$(python3 -c "import time; print(round(time.time() - $k, 2))"); break
    fi
    sleep 0.1
  done
  wait "$LG" || true
  stop_collector "$A"
  echo "takeover $i: ${took:-none} s" >&2
  TAKEOVERS+=("${took:-nan}")
done
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null

python3 - "$D1" "$C1" "$D2" "$C2" "$RD" "$RC" "$DA" "$CA" "${TAKEOVERS[@]}" <<'PY'
import json, sys
d = [json.loads(sys.argv[i]) for i in (1, 3)]; c = [json.loads(sys.argv[i]) for i in (2, 4)]
rd, rc = json.loads(sys.argv[5]), json.loads(sys.argv[6])
da, ca = json.loads(sys.argv[7]), json.loads(sys.argv[8]); tk = [float(x) for x in sys.argv[9:]]
mean = lambda xs: sum(xs) / len(xs)
print("| measurement | direct (one collector) | cluster mode (1 replica + NATS) |")
print("|---|---|---|")
fmt = lambda xs, k: ", ".join(f"{x[k]:,}" for x in xs)
print(f"| flood, SPC on: acked samples/s (2 runs) | {fmt(d, 'acked_per_s')} | {fmt(c, 'acked_per_s')} |")
print(f"| flood: stored and judged samples/s (2 runs) | {fmt(d, 'e2e_per_s')} (acked = committed) | {fmt(c, 'e2e_per_s')} |")
for k in ("collector", "nats", "postgres"):
    print(f"| CPU s per 100 000 samples: {k} | {mean([x['cpu_s_per_100k'][k] for x in d]):.2f} | {mean([x['cpu_s_per_100k'][k] for x in c]):.2f} |")
print(f"| agent-shaped batches (4 hosts each): stored and judged samples/s | {da['e2e_per_s']:,} | {ca['e2e_per_s']:,} |")
cpu4 = lambda x: sum(x['cpu_s_per_100k'].values())
print(f"| agent-shaped batches: CPU s per 100 000 samples, all three | {cpu4(da):.2f} | {cpu4(ca):.2f} (collector {ca['cpu_s_per_100k']['collector']}, nats {ca['cpu_s_per_100k']['nats']}, postgres {ca['cpu_s_per_100k']['postgres']}) |")
print(f"| ack latency at 20 000/s (achieved {rd['samples_per_s']:,} / {rc['samples_per_s']:,}) | p50 {rd['ack_p50_ms']} ms, p99 {rd['ack_p99_ms']} ms | p50 {rc['ack_p50_ms']} ms, p99 {rc['ack_p99_ms']} ms |")
takes = ", ".join(f"{x:.1f} s" for x in tk)
print(f"| takeover after kill -9 (lease_ttl 6 s), 3 runs | — | {takes} (target ≤ 10 s) |")
PY
