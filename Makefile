# LLMscope — one command to run, one to test.
#   make run    the product (see README "Quick start")
#   make test   everything CI checks: formatting, clippy -D warnings, all tests

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: test postgres nats fmt-check clippy web unit run demo bench bench-ingest fmt

# `web` before `unit`: the collector serves web/dist and tests/tests/dashboard.rs drives it in
# headless Chromium
test: postgres nats fmt-check clippy web unit test-deploy

postgres:
	@scripts/ensure-postgres.sh

# NATS with JetStream on 127.0.0.1:4222 for the cluster-mode tests
nats:
	@scripts/ensure-nats.sh

# The dashboard (web/ -> web/dist): npm ci when node_modules is not current, then the build when
# a source changed (scripts/build-web.sh; installs Node 22 from the npm registry when the
# system Node.js is older than 20.19).
web:
	@scripts/build-web.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi
	$(CARGO) test --workspace --doc

fmt:
	$(CARGO) fmt --all

# The collector on embedded SQLite plus a local agent (Ollama / OpenAI-compatible / simulated).
run:
	@scripts/run-local.sh

demo:
	$(CARGO) run -q -p llmscope-collector -- analyze examples/latency.csv --baseline-points 50

bench:
	$(CARGO) bench -p llmscope-spc --bench nelson

bench-ingest:
	scripts/bench-ingest.sh

# the agent against llama.cpp's real server on CPU (not in `make test`: its build takes ~12 min)
.PHONY: test-real-model
test-real-model:
	scripts/test-real-model.sh

# cluster mode (1 replica + NATS) against the direct path, and takeover after kill -9
.PHONY: bench-cluster
bench-cluster:
	scripts/bench-cluster.sh

# Dockerfiles, docker-compose, Grafana dashboards and the Helm chart, checked offline
# (hadolint, docker compose config, helm lint/template, kubernetes-validate); installs its
# tools once into $LLMSCOPE_TOOLS (default /var/tmp/llmscope-tools).
.PHONY: test-deploy
test-deploy:
	@scripts/test-deploy.sh
