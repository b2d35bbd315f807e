# One command surface for people and CI (.ci/run calls `make test`).
VENV := .venv/bin

.PHONY: demo test e2e node-smoke node-build lint rust-test py-test bench build fmt

## install what the agent needs and run the demo (no cluster needed)
demo:
	scripts/bootstrap.sh run
	scripts/demo.sh

## install everything the tests need, lint, run every test, then the real-node smoke
test:
	scripts/bootstrap.sh test
	$(MAKE) lint rust-test py-test node-smoke

## the real-node tier: the chart's pods on a real kubelet (root; see tests/node/README.md)
e2e:
	scripts/bootstrap.sh test
	$(MAKE) --no-print-directory node-build
	$(VENV)/pytest -m node tests/node $(E2E_ARGS)

# the real-node tier's smoke (one hf:// model through the DaemonSet pod), last in
# `make test`. As root it runs, and fails in one line if the node cannot run; not root
# (a developer's machine), it says in one line that it was not run and why.
node-smoke:
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make test: the real-node smoke (tests/node/test_smoke.py) NOT RUN: it needs root (runs containerd, adds a bridge and iptables rules); CI runs it as root"; \
	else \
	  $(MAKE) --no-print-directory node-build && \
	  echo "make: the real-node smoke (tests/node/test_smoke.py: node up, chart installed, one hf:// model; ~1-2 min)" && \
	  $(VENV)/pytest -m node tests/node/test_smoke.py; \
	fi

# what the tier needs once bootstrap.sh has run, each step announced with its expected duration (the scripts
# print only their own progress lines; warm, every step takes seconds but the agent
# image, rebuilt when the wheel changed)
node-build:
	@echo "make: Debian packages of the node (scripts/install-node-deps.sh; ~1-3 min cold, 0 installed)"
	@scripts/install-node-deps.sh
	@echo "make: kubelet, kube-controller-manager, kube-scheduler, kubectl (scripts/build-node.sh; ~15-35 min cold with a cold Go cache, 0 cached)"
	@scripts/build-node.sh >/dev/null
	@echo "make: pause, Debian base and agent images (scripts/build-node-images.sh; ~3-20 min cold, ~1-4 min when the wheel changed, seconds otherwise)"
	@scripts/build-node-images.sh >/dev/null

build:
	VIRTUAL_ENV=$(CURDIR)/.venv $(VENV)/maturin develop --release

lint:
	$(VENV)/ruff check python tests benches scripts
	$(VENV)/ruff format --check python tests benches scripts
	$(VENV)/mypy
	$(VENV)/python -m mypy.stubtest ome_agent._core
	$(VENV)/lint-imports  # the layers of docs/architecture.md, no import cycles
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt:
	$(VENV)/ruff format python tests benches scripts
	$(VENV)/ruff check --fix python tests benches scripts
	cargo fmt --all

rust-test:
	cargo test --release

# the tests that talk to a Hub, run again with the newest huggingface_hub
# (.venv-hub-latest, scripts/install-hub-latest.sh); .venv has the oldest supported
HUB_TESTS := tests/test_sources_hf.py tests/test_hf_mirrors.py tests/test_hf_bad_input.py \
	tests/test_hf_cache_dir.py tests/test_reconcile_hfcache.py tests/test_hf_xet.py \
	tests/test_pull_hf.py tests/test_pull_hf_server.py tests/test_discovery_remote.py

py-test:
	$(VENV)/pytest
	.venv-hub-latest/bin/python -m pytest $(HUB_TESTS)

## install the peers and run the benchmark suite (see benches/README.md); e.g. BENCH_ARGS="--quick"
bench:
	scripts/bootstrap.sh bench
	$(VENV)/python -m benches.run $(BENCH_ARGS)
