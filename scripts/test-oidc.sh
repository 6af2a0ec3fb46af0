#!/usr/bin/env bash
# Single sign-on in a real browser against a real OpenID provider: starts web/tests/oidc-provider.mjs
# (the `oidc-provider` package) and runs web/tests/oidc-e2e.mjs in headless Chromium against a
# running collector configured for it. tests/tests/oidc.rs starts the collector and runs this.
#
#   OIDC_PORT=9000 OIDC_REDIRECT=http://127.0.0.1:8080/api/v1/auth/oidc/callback \
#   LLMSCOPE_URL=http://127.0.0.1:8080 LLMSCOPE_ADMIN_TOKEN=llms_… scripts/test-oidc.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/web"
: "${OIDC_PORT:?OIDC_PORT is required}" "${OIDC_REDIRECT:?OIDC_REDIRECT is required}"
: "${LLMSCOPE_URL:?LLMSCOPE_URL is required}" "${LLMSCOPE_ADMIN_TOKEN:?LLMSCOPE_ADMIN_TOKEN is required}"

if [ ! -x /usr/bin/chromium ]; then
  echo "test-oidc: installing chromium" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# node_modules (oidc-provider, playwright-core) and web/dist, each only when needed
"$ROOT/scripts/build-web.sh"

LOG="$(mktemp)"
node tests/oidc-provider.mjs >"$LOG" 2>&1 &
IDP=$!
trap 'kill $IDP 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  grep -q "oidc-provider ready" "$LOG" && break
  kill -0 $IDP 2>/dev/null || { cat "$LOG" >&2; echo "test-oidc: the provider exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "oidc-provider ready" "$LOG" || { cat "$LOG" >&2; echo "test-oidc: the provider did not start" >&2; exit 1; }
echo "test-oidc: $(grep 'oidc-provider ready' "$LOG")" >&2
export LLMSCOPE_SCREENSHOTS="${LLMSCOPE_SCREENSHOTS:-$ROOT/artifacts/screenshots}"
status=0
node tests/oidc-e2e.mjs || status=$?
grep -v "WARNING\|NOTICE" "$LOG" | grep -v "oidc-provider ready" >&2 || true
exit $status
