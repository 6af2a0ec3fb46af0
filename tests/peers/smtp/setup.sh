#!/usr/bin/env bash
# Creates the virtualenv with aiosmtpd for the email tests (idempotent, safe to run in
# parallel). Prints the python interpreter to use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
exec 9>"$here/.setup.lock"
flock 9
if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get install -y python3-venv >&2
    fi
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'aiosmtpd>=1.4' >&2
fi
echo "$venv/bin/python"
