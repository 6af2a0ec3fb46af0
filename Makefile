# LLMscope — one command to run, one to test.
#   make run    the product (see README "Quick start")
#   make test   everything CI checks: formatting, clippy -D warnings, all tests

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: test fmt-check clippy unit run bench fmt

test: fmt-check clippy unit

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

# Until the collector's `serve` lands, `make run` analyses the bundled example series.
run:
	$(CARGO) run -q -p llmscope-collector -- analyze examples/latency.csv

bench:
	$(CARGO) bench -p llmscope-spc --bench nelson
