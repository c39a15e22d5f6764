# Evently: the two commands are `make up` and `make test`. Everything else is a step of those.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
FUNCTIONS := $(shell scripts/functions.sh)
VENV_STAMP := $(VENV)/.installed
NPM_STAMP := infra/node_modules/.package-lock.json

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NPM_STAMP): infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund

.PHONY: venv
venv: $(VENV_STAMP) ## Python tools: ministack, cargo-lambda, cfn-lint (pinned)

.PHONY: npm
npm: $(NPM_STAMP) ## CDK app dependencies (npm ci)

.PHONY: up
up: venv npm ## Start the emulator, build the functions, deploy the stack locally
	scripts/deploy-local.sh

.PHONY: down
down: ## Stop the emulator this project started
	scripts/emulator.sh stop

.PHONY: test
test: up ## Everything: lint, supply chain, unit, adapter, contract, infra, end-to-end and API fuzz tests
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked --features evently-shared/fault-injection -- -D warnings
	scripts/supply-chain.sh
	source scripts/local-env.sh && cargo test --workspace --locked --features evently-shared/fault-injection
	scripts/schemathesis.sh
	$(MAKE) faults
	cd infra && npm test
	scripts/lint-template.sh

.PHONY: faults
faults: ## Fault-injection suite (last: it restarts the emulator); prints its table
	source scripts/local-env.sh && cargo test --locked --workspace --features evently-shared/fault-injection \
	  --test faults -- --ignored --nocapture

.PHONY: supply-chain
supply-chain: npm ## cargo-deny on the pinned advisory snapshot, npm licenses and audit
	scripts/supply-chain.sh

.PHONY: schemathesis
schemathesis: venv ## Property-based API tests against api/openapi.json (needs `make up`)
	scripts/schemathesis.sh

.PHONY: unit
unit: ## Only the tests that need no emulator
	cargo test --workspace --locked --exclude evently-e2e --features evently-shared/fault-injection

.PHONY: bench-cold-start
bench-cold-start: ## Cold-start harness: release builds of every function and the floor (needs `make up`)
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- cold-start --build --runs $${RUNS:-30}

.PHONY: startup-path
startup-path: ## Re-trace what each function runs before its first `next` into functions/startup-path.ld (valgrind; needs `make up`)
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- startup-path --build

.PHONY: bench-warm
bench-warm: ## Warm CPU per request and per message (criterion; SDK HTTP replayed from bench/warm/recorded)
	@# stdout, where the handlers' metric lines go, is a file: a pipe's reader would add its
	@# wake-up to every request (BENCHMARKS.md, "Where stdout goes").
	touch target/bench-warm.started
	cargo bench --locked -p evently-warm --bench warm -- $${BENCH_FILTER:-} > target/bench-warm.log \
	|| { tail -40 target/bench-warm.log; exit 1; }
	python3 scripts/bench-summary.py target/bench-warm.started
	@# Every timed iteration logs as the function would: about 1 GB for a full run, kept only
	@# for a failed one.
	: > target/bench-warm.log

.PHONY: record-warm
record-warm: ## Re-record the SDK traffic the warm benchmarks replay (needs `make up`)
	source scripts/local-env.sh && cargo run --locked -q -p evently-warm --bin record -- $${RECORD:-}

.PHONY: cost-model
cost-model: ## Dollars per million EventCreated from the recordings and bench-warm's CPU figures
	python3 scripts/cost-model.py $${COST_ARGS:-}

.PHONY: bench-opt-levels
bench-opt-levels: ## Cold start and size of opt-level "s" (release) vs 3 (release-o3) builds (needs `make up`)
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- cold-start --build --runs $${RUNS:-30}
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- cold-start --build --profile release-o3 --runs $${RUNS:-30}
	scripts/sizes.sh target/release
	scripts/sizes.sh target/release-o3

.PHONY: bench-lto
bench-lto: ## Cold start and size of fat (release) vs thin (release-thin) LTO builds (needs `make up`)
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- cold-start --build --runs $${RUNS:-30}
	source scripts/local-env.sh && cargo run --locked -q -p evently-bench -- cold-start --build --profile release-thin --runs $${RUNS:-30}
	scripts/sizes.sh target/release
	scripts/sizes.sh target/release-thin

.PHONY: load-test
load-test: ## Load test of the local stack with oha 1.16 (installed into .local/tools); needs `make up`
	@.local/tools/bin/oha --version 2>/dev/null | grep -q '^oha 1.16.0$$' || \
	  cargo install oha --version 1.16.0 --locked --root .local/tools --quiet
	source scripts/local-env.sh && scripts/load-test.py

.PHONY: build-arm64
build-arm64: venv ## Release arm64 builds for AWS (target/lambda/<fn>/bootstrap)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked $(addprefix -p ,$(FUNCTIONS))

.PHONY: deploy
deploy: build-arm64 npm ## Deploy to the AWS account in your credentials (CDK_CONTEXT for extra -c flags)
	cd infra && npx --no-install cdk deploy $${CDK_CONTEXT:-} --require-approval broadening

.PHONY: clean
clean: down ## Stop the emulator and remove local state (keeps target/)
	rm -rf .local infra/cdk.local.out infra/outputs.local.json
