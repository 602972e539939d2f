# Entry points for developers and CI. `make dev` runs the whole stack locally.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
VENV_STAMP := $(VENV)/.dev-tools.stamp
# cargo finds the cargo-lambda subcommand, cargo-lambda finds zig, and the integration tests
# find moto_server, all on .venv/bin.
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
export SAM_CLI_TELEMETRY := 0

.PHONY: help dev dev-down venv test test-long lint-template build-arm64

help:
	@echo "make dev            local stack: moto + cargo lambda watch + local HTTP API (Ctrl-C stops it)"
	@echo "make dev-down       stop whatever a previous 'make dev' left running"
	@echo "make venv           .venv with the pinned dev tools (scripts/requirements-dev.txt)"
	@echo "make test           fmt check, clippy, template lint, all tests (what CI runs)"
	@echo "make lint-template  cfn-lint template.yaml"
	@echo "make build-arm64    release build of the three functions for Lambda arm64"

dev:
	scripts/dev.sh

dev-down:
	scripts/dev.sh down

venv: $(VENV_STAMP)

$(VENV_STAMP): scripts/requirements-dev.txt
	scripts/dev.sh venv
	touch $@

test: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(WITH_VENV) cargo test --workspace

lint-template: venv
	$(VENV)/bin/cfn-lint template.yaml

build-arm64: venv
	$(WITH_VENV) cargo lambda build --release --arm64

# The long profile: every property test with 10,000 generated histories.
test-long: venv
	$(WITH_VENV) PROPTEST_CASES=10000 cargo test -p kiro-shared -p kiro-tests --test convergence --test faults --lib
