#!/usr/bin/env bash
# The quick start: the collector on embedded SQLite plus a local agent. The agent probes
# Ollama on 127.0.0.1:11434 or an OpenAI-compatible server on 127.0.0.1:8000 when one
# answers, and the built-in `simulated` provider otherwise (one probe every 2 s; its baseline
# is learnt in about 3 minutes, and 7 minutes after the start it becomes 50 % slower for 4
# minutes: one incident). Configs: examples/quick-start/. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${LLMSCOPE_DATA:-./llmscope-data}"
GRPC="${LLMSCOPE_GRPC_LISTEN:-127.0.0.1:7070}"
HTTP="${LLMSCOPE_HTTP_LISTEN:-127.0.0.1:8080}"
# the dashboard the collector serves at http://$HTTP/ (built once; `make web` rebuilds it)
[ -f web/dist/index.html ] || scripts/build-web.sh
cargo build -q -p llmscope-collector -p llmscope-agent
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
mkdir -p "$DATA"
DB="sqlite://$DATA/llmscope.db"
if [ ! -s "$DATA/agent-token" ]; then
  "$BIN/llmscope-collector" token create --site local --name quick-start --database-url "$DB" > "$DATA/agent-token.tmp" 2>/dev/null
  mv "$DATA/agent-token.tmp" "$DATA/agent-token"
  chmod 600 "$DATA/agent-token"
fi
# the first admin, to sign in to the dashboard with (a generated password, kept in the data
# folder), and an admin token for scripts using the API
ADMIN_EMAIL="${LLMSCOPE_ADMIN_EMAIL:-admin@llmscope.local}"
if [ ! -s "$DATA/admin-password" ]; then
  if "$BIN/llmscope-collector" user create "$ADMIN_EMAIL" --role admin --name "Quick start admin" \
      --database-url "$DB" < /dev/null > "$DATA/admin-password.tmp" 2>/dev/null; then
    mv "$DATA/admin-password.tmp" "$DATA/admin-password"
    chmod 600 "$DATA/admin-password"
  else
    rm -f "$DATA/admin-password.tmp"
    echo "note: $ADMIN_EMAIL exists already; set a new password with: llmscope-collector user password $ADMIN_EMAIL --database-url $DB" >&2
  fi
fi
if [ ! -s "$DATA/admin-token" ]; then
  "$BIN/llmscope-collector" token create --admin --name quick-start-admin --database-url "$DB" > "$DATA/admin-token.tmp" 2>/dev/null
  mv "$DATA/admin-token.tmp" "$DATA/admin-token"
  chmod 600 "$DATA/admin-token"
fi
"$BIN/llmscope-collector" serve --config examples/quick-start/collector.toml --database-url "$DB" \
  --grpc-listen "$GRPC" --http-listen "$HTTP" &
COLLECTOR=$!
trap 'kill $COLLECTOR $AGENT 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
AGENT=
# start the agent once the collector listens (it would buffer and retry anyway)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${GRPC%:*}/${GRPC##*:}") 2>/dev/null && break; sleep 0.1; done
"$BIN/llmscope-agent" --config examples/quick-start/agent.toml --collector "http://$GRPC" \
  --token-file "$DATA/agent-token" --site local \
  --data-dir "$DATA/agent" --http-listen 127.0.0.1:9464 &
AGENT=$!
echo "collector: grpc $GRPC, http http://$HTTP (readyz: http://$HTTP/readyz)"
echo "agent: metrics http://127.0.0.1:9464/metrics; data in $DATA"
echo "dashboard: http://$HTTP/  sign in as $ADMIN_EMAIL, password $(cat "$DATA/admin-password" 2>/dev/null || echo '(see above)') (kept in $DATA/admin-password)"
echo "API: curl -H \"Authorization: Bearer \$(cat $DATA/admin-token)\" http://$HTTP/api/v1/series"
echo "simulated model: baseline learnt after ~3 min; 50 % slower from minute 7 to 11 — watch Incidents"
wait -n $COLLECTOR $AGENT
