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

# The SAM CLI lives in its own venv: its pins (boto3, click, ...) would move moto's. It sits under
# .venv so that git ignores it, and shares the cfn-lint pin of requirements-dev.txt.
SAM_VENV := $(VENV)/sam
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := $(shell sed -n 's/^cfn-lint==//p' scripts/requirements-dev.txt)
SAM_STAMP := $(SAM_VENV)/.aws-sam-cli-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION).stamp
# `sam validate` resolves ARNs for a Region; it needs no credentials.
SAM_REGION := $${AWS_REGION:-us-east-1}

.PHONY: help dev dev-down venv venv-sam test test-long test-browser lint-template lint-sam build-arm64

help:
	@echo "make dev            local stack: moto, an OpenID Connect provider, cargo lambda watch, the HTTP API and console (Ctrl-C stops it)"
	@echo "make dev-down       stop whatever a previous 'make dev' left running"
	@echo "make venv           .venv with the pinned dev tools (scripts/requirements-dev.txt)"
	@echo "make lint-template  cfn-lint template.yaml, before and after the SAM transform; validate openapi.yaml"
	@echo "make lint-sam       sam validate --lint (the SAM CLI in its own venv, .venv/sam)"
	@echo "make build-arm64    release build of the functions for Lambda arm64"
	@echo "make venv-sam       .venv/sam with the pinned AWS SAM CLI (for lint-sam and sam build)"
	@echo "make test           fmt check, clippy, template lint, all tests, test-long, test-browser (what CI runs)"
	@echo "make test-long      the property tests at 10,000 cases each (part of make test)"
	@echo "make test-browser   the console in Chromium: sign-in, the seed flow, access, axe-core (part of make test)"
	@echo "make fuzz-api       schemathesis against a local stack of its own (minutes; not in make test)"
	@echo "make bench          cold start, memory, AWS requests per operation, a million-seat audit, CPU per event (BENCHMARKS.md)"

dev:
	scripts/dev.sh

dev-down:
	scripts/dev.sh down

venv: $(VENV_STAMP)

$(VENV_STAMP): scripts/requirements-dev.txt
	scripts/dev.sh venv
	touch $@

venv-sam: $(SAM_STAMP)

$(SAM_STAMP): scripts/requirements-dev.txt
	rm -rf $(SAM_VENV)
	@echo "==> installing aws-sam-cli $(SAM_CLI_VERSION) and cfn-lint $(CFN_LINT_VERSION) into $(SAM_VENV) (about 45 s the first time)"
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check \
		aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	touch $@

# The property tests run twice: at their default case counts with everything else, then at
# 10,000 cases each (test-long, about 5 minutes on 2 cores): a history that fails once in a few
# thousand (issue 19's, at case 3,714) must fail CI, not only a run on request.
test: venv lint-template lint-sam
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(WITH_VENV) cargo test --workspace
	$(MAKE) --no-print-directory test-long
	$(MAKE) --no-print-directory test-browser

# cfn-lint with the informational rules, on the template and on its SAM transform (where the
# functions' IAM policies are checked); the OpenAPI document against the 3.0 schema.
lint-template: venv
	$(VENV)/bin/python scripts/check_template.py template.yaml
	$(VENV)/bin/openapi-spec-validator openapi.yaml

lint-sam: venv-sam
	AWS_REGION=$(SAM_REGION) $(SAM_VENV)/bin/sam validate --lint --template template.yaml

build-arm64: venv
	$(WITH_VENV) cargo lambda build --release --arm64

# BENCHMARKS.md: cold start, peak RSS and first invocation of the host release binaries, AWS
# requests per operation with the in-memory fakes, the audit of a million seats, then criterion's
# CPU per event (short runs). The functions build on their own so their features resolve as
# `cargo lambda build` resolves them, not unified with the bench's test harness; lambda-echo (a
# bare lambda_runtime function, bench/echo) builds with them, the target they are compared with;
# lambda-sdk-floor (bench/floor: one DynamoDB client and GetItem) what any function here starts from.
.PHONY: bench
bench: venv
	cargo build --release -p create-profile -p assign-tier -p sync-group -p console -p ingest-activity -p publish-events -p lambda-echo -p lambda-sdk-floor
	$(WITH_VENV) cargo bench -p kiro-bench --bench figures
	cargo bench -p kiro-bench --bench cpu -- --warm-up-time 0.5 --measurement-time 1

# The long profile: every property test with 10,000 generated histories.
test-long: venv
	$(WITH_VENV) PROPTEST_CASES=10000 cargo test -p kiro-shared -p kiro-tests --test convergence --test faults --test event_fuzz --test audit_checkpoint --test activity_history --lib

# Fuzz every route of openapi.yaml with schemathesis against a local stack of its own; not part
# of `make test` (minutes). FUZZ_MAX_EXAMPLES, FUZZ_MAX_TIME, FUZZ_SEED, FUZZ_CHECKS tune it.
.PHONY: fuzz-api
fuzz-api: venv
	scripts/schemathesis.sh

# The console in a real browser (tests/browser): Playwright for Python drives Debian's chromium
# against a local stack of its own (scripts/dev.sh start on free ports, its own LOCAL_DIR),
# signed in through the local OpenID Connect provider; axe-core checks every page and dialog, and
# each one's screenshot is written to docs/console/. About 2 minutes once the functions are built.
CHROMIUM := /usr/bin/chromium
AXE_STAMP := tests/browser/node_modules/.axe-core.stamp

test-browser: venv $(AXE_STAMP)
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing: sudo apt-get install -y chromium" >&2; exit 1; }
	$(WITH_VENV) $(VENV)/bin/python -m pytest tests/browser $(PYTEST_ARGS)

$(AXE_STAMP): tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	touch $@
