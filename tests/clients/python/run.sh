#!/usr/bin/env bash
# Prepares the venv and stubs (setup.sh), then runs the example client with all arguments:
#   tests/clients/python/run.sh --target 127.0.0.1:7070 --token "$TOKEN" --count 500
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# setup.sh's one line goes to stderr, so that stdout carries only the client's output (--json).
"$HERE/setup.sh" >&2
exec "$HERE/.venv/bin/python" "$HERE/llmscope_push.py" "$@"
