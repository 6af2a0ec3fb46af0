#!/usr/bin/env bash
# The agent against llama.cpp's real OpenAI-compatible server (issue 17): installs
# llama-cpp-python[server] and gguf in a venv outside the clone (cached; the server's C++ build
# takes ~12 minutes on a new 2-core machine, which is why this is not part of `make test`),
# writes a tiny random-weight GGUF model, starts the server on CPU and runs the ignored tests
# in agent/tests/real_model.rs against it.
#   make test-real-model
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${LLMSCOPE_TOOLS:-/var/tmp/llmscope-tools}"
VENV="$TOOLS/llama-venv"
MODEL="$TOOLS/tiny-llama.gguf"
PORT="${LLMSCOPE_REAL_MODEL_PORT:-18080}"
mkdir -p "$TOOLS"
if ! "$VENV/bin/python" -c "import llama_cpp.server, gguf" 2>/dev/null; then
  echo "installing llama-cpp-python[server] (a C++ build: ~12 minutes on 2 cores)…"
  python3 -m venv "$VENV"
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install -q \
    "llama-cpp-python[server]==0.3.16" "gguf==0.17.1" numpy
fi
[ -s "$MODEL" ] || "$VENV/bin/python" tests/real-model/make_gguf.py "$MODEL"
LOG="$(mktemp)"
( exec "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
    --n_ctx 512 --chat_format chatml --interrupt_requests False ) >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG"; echo "llama.cpp server exited"; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/v1/models" >/dev/null || { cat "$LOG"; exit 1; }
LLMSCOPE_REAL_MODEL_URL="http://127.0.0.1:$PORT" \
  cargo test -p llmscope-agent --test real_model -- --ignored --nocapture --test-threads 1
