#!/usr/bin/env bash
# Builds (scripts/build-web.sh) and type-checks the dashboard (web/), and when LLMSCOPE_URL is
# set runs the browser end-to-end test against that collector in headless Chromium (Debian's
# package, installed when missing). tests/tests/dashboard.rs runs it against a real collector.
#
#   scripts/test-web.sh                                   # install, build, type-check
#   LLMSCOPE_URL=http://127.0.0.1:8080 LLMSCOPE_ADMIN_TOKEN=llms_… scripts/test-web.sh
#
# Screenshots go to $LLMSCOPE_SCREENSHOTS (default artifacts/screenshots at the repo root).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/web"

if [ -n "${LLMSCOPE_URL:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "test-web: installing chromium" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# npm ci and the build, each only when needed (under `make test`, `make web` already did both:
# web/dist is not rewritten while other tests read it)
"$ROOT/scripts/build-web.sh"

echo "test-web: type-check" >&2
npx --no-install tsc --noEmit

JS_GZ=$(cat dist/assets/*.js | gzip -9 | wc -c)
CSS_GZ=$(cat dist/assets/*.css | gzip -9 | wc -c)
echo "test-web: dashboard size gzip: js ${JS_GZ} B, css ${CSS_GZ} B" >&2

if [ -n "${LLMSCOPE_URL:-}" ]; then
  export LLMSCOPE_SCREENSHOTS="${LLMSCOPE_SCREENSHOTS:-$ROOT/artifacts/screenshots}"
  echo "test-web: e2e against $LLMSCOPE_URL (screenshots in $LLMSCOPE_SCREENSHOTS)" >&2
  node tests/e2e.mjs
else
  echo "test-web: LLMSCOPE_URL not set: built and type-checked only" >&2
fi
