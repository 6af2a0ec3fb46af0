#!/usr/bin/env bash
# Builds the dashboard into web/dist, which the collector serves (read from disk in debug
# builds, embedded in release builds). Incremental: `npm ci` only when web/node_modules was not
# installed from the current package-lock.json, `npm run build` only when a source is newer
# than web/dist (LLMSCOPE_WEB_FORCE=1 rebuilds anyway). Used by `make web`, scripts/test-web.sh
# and scripts/run-local.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/web"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "build-web: Node.js 20.19+ and npm are needed to build the dashboard (web/)" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit((a===20&&b>=19)||(a===22&&b>=12)||a>22?0:1)'; then
  echo "build-web: Node.js $(node --version) is too old for vite 7: use 20.19+ or 22.12+ (Debian bookworm's nodejs is 18; see nodesource or nvm)" >&2
  exit 1
fi

STAMP=node_modules/.llmscope-package-lock.sha256
WANT="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "build-web: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$WANT" > "$STAMP"
fi

if [ -z "${LLMSCOPE_WEB_FORCE:-}" ] && [ -f dist/index.html ] &&
  [ -z "$(find src index.html package.json package-lock.json vite.config.ts tsconfig.json "$STAMP" -newer dist/index.html -print -quit)" ]; then
  echo "build-web: web/dist is up to date" >&2
else
  echo "build-web: build" >&2
  npm run --silent build
fi
