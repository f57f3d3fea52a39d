# The two commands a newcomer needs (see README.md):
#   make demo   the gateway with simulated ministry networks and real adapters
#   make test   everything CI checks: formatting, lints, all tests
# Both install what they need (the wasm32-wasip2 target) first.

CARGO ?= cargo
PLUGINS := plugins
HOST := $(shell rustc -vV | sed -n 's/^host: //p')

.PHONY: demo test setup fmt-check clippy unit api-conformance plugins bench bench-deps fmt

test: setup fmt-check clippy unit api-conformance

# The demo: five simulated ministry networks, the gateway on config/demo.toml,
# real adapters, a few cases; prints progress until Ctrl-C.
demo: setup
	cargo run -p yiwang-e2e --bin yiwang-demo

setup:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

fmt-check:
	$(CARGO) fmt --all -- --check
	cd $(PLUGINS) && $(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd $(PLUGINS) && $(CARGO) clippy --release -- -D warnings

unit:
	$(CARGO) test --workspace
	# The adapters' pure mapping tests, compiled natively (no component export).
	cd $(PLUGINS) && $(CARGO) test --target $(HOST) --no-default-features

# schemathesis (PyPI, pinned in tests/schemathesis/requirements.txt) against a
# live gateway over mTLS, each listener from its own /openapi.json.
api-conformance:
	tests/schemathesis/run.sh

# Build every adapter component (target/wasm32-wasip2/release/*.wasm in plugins/).
plugins: setup
	cd $(PLUGINS) && $(CARGO) build --release

# Every benchmark, each against its baseline in the same run (docs/benchmarks.md):
# P3 (adapter cost, Wasm against native), then P1, P2, P4, P5, P6 (the gateway
# as a process against PostgreSQL 15, nginx, and itself without a hostile
# neighbour). Not part of `make test`.
# `make bench BENCH_ARGS=--quick` is a short smoke run; `BENCH_ARGS=p2` one benchmark.
bench: setup bench-deps
	$(CARGO) bench -p yiwang-gateway --bench adapter_cost
	$(CARGO) run --release -p yiwang-bench -- $(BENCH_ARGS)

# The baselines' servers, from Debian's packages.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench-deps:
	@if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/sbin/nginx ]; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 nginx; \
	fi

fmt:
	$(CARGO) fmt --all
	cd $(PLUGINS) && $(CARGO) fmt --all
