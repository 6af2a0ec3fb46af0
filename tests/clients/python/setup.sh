#!/usr/bin/env bash
# Prepares the example Python client: a virtual environment with grpcio and grpcio-tools, and
# Python stubs generated from proto/llmscope/v1/ingest.proto. Idempotent; safe from any cwd.
#
#   tests/clients/python/setup.sh            # once, or before every run (run.sh does this)
#   PYTHON=python3.12 tests/clients/python/setup.sh   # another interpreter for the venv
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="$HERE/.venv"
# tests run in parallel: one setup at a time (a second one would see a half-made venv)
exec 9>"$HERE/.setup.lock"
flock 9
GEN="$HERE/gen"
PROTO_ROOT="$REPO/proto"
PROTO="llmscope/v1/ingest.proto"
PYTHON="${PYTHON:-python3}"
# Pinned; installs from PyPI as binary wheels (tested on CPython 3.11, linux x86_64).
REQUIREMENTS=(grpcio==1.85.1 grpcio-tools==1.85.1)

die() { echo "setup.sh: error: $*" >&2; exit 1; }

[[ -f "$PROTO_ROOT/$PROTO" ]] || die "contract not found: $PROTO_ROOT/$PROTO"

# 1. Virtual environment (recreated if it is broken, e.g. its interpreter went away).
if ! "$VENV/bin/python" -c 'import sys, pip' >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=... to choose an interpreter)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create a venv at $VENV with $PYTHON -m venv (on Debian: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"

# 2. Packages, installed only when the pinned set changed since the last successful install.
STAMP="$VENV/.llmscope-requirements"
WANT="${REQUIREMENTS[*]}"
REGEN=0
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    REGEN=1  # the stubs check the grpcio version they were generated with
    LOG="$(mktemp)"
    if ! "$PY" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        rm -f "$LOG"
        die "pip install ${WANT} failed (see above)"
    fi
    rm -f "$LOG"
    echo "$WANT" >"$STAMP"
fi

# 3. Stubs, regenerated when missing, older than the .proto, or after a package change. Written
#    to a temporary folder (inside the ignored venv) first so that a failed run never leaves half
#    a gen/ behind.
OUT_PB2="$GEN/llmscope/v1/ingest_pb2.py"
OUT_GRPC="$GEN/llmscope/v1/ingest_pb2_grpc.py"
if [[ "$REGEN" == 1 || ! -f "$OUT_PB2" || ! -f "$OUT_GRPC" || "$PROTO_ROOT/$PROTO" -nt "$OUT_PB2" ]]; then
    TMP="$(mktemp -d "$VENV/gen.XXXXXX")"
    trap 'rm -rf "$TMP"' EXIT
    if ! "$PY" -m grpc_tools.protoc -I "$PROTO_ROOT" --python_out="$TMP" --grpc_python_out="$TMP" "$PROTO" >&2; then
        die "protoc failed on $PROTO_ROOT/$PROTO"
    fi
    chmod 755 "$TMP"
    rm -rf "$GEN"
    mv "$TMP" "$GEN"
    trap - EXIT
fi

echo "llmscope python client ready: $PY (stubs in ${GEN#"$REPO"/})"
