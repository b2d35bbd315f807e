# One command surface for people and CI (.ci/run calls `make test`).
VENV := .venv/bin

.PHONY: demo test e2e lint rust-test py-test bench build fmt

## install what the agent needs and run the demo (no cluster needed)
demo:
	scripts/bootstrap.sh run
	scripts/demo.sh

## install everything the tests need, then lint and run every test
test:
	scripts/bootstrap.sh test
	$(MAKE) lint rust-test py-test

## the real-node tier: the chart's pods on a real kubelet (root; see tests/node/README.md)
e2e:
	scripts/bootstrap.sh test
	scripts/install-node-deps.sh
	scripts/build-node.sh >/dev/null
	scripts/build-node-images.sh >/dev/null
	$(VENV)/pytest -m node tests/node $(E2E_ARGS)

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
	tests/test_hf_cache_dir.py tests/test_hf_xet.py \
	tests/test_pull_hf.py tests/test_pull_hf_server.py tests/test_discovery_remote.py

py-test:
	$(VENV)/pytest
	.venv-hub-latest/bin/python -m pytest $(HUB_TESTS)

## install the peers and run the benchmark suite (see benches/README.md); e.g. BENCH_ARGS="--quick"
bench:
	scripts/bootstrap.sh bench
	$(VENV)/python -m benches.run $(BENCH_ARGS)
