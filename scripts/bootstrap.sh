#!/usr/bin/env bash
# Installs everything a profile needs on a fresh Debian machine, idempotently:
#   run   - the package and its native core (a Python venv in .venv)
#   test  - run + linters, pytest and the servers the tests start (nginx; etcd +
#           kube-apiserver and helm built from the Go module proxy; Azurite from npm;
#           moto and the GCS emulator from PyPI), cached in .cache/
#   bench - test + the peers the benchmarks compare against (aria2c, hf_transfer,
#           oci-cli, awscli, ...)
# Each long step is announced with its expected duration before it starts (its own
# output is quiet), so minutes of silence are never a surprise.
set -euo pipefail
profile=${1:-run}
step() { echo "bootstrap: $1" >&2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need_debs=()
case "$profile" in
  test)  debs=(nginx-light) ;;
  bench) debs=(nginx-light aria2 curl time) ;;
  *)     debs=() ;;
esac
for d in "${debs[@]}"; do
  dpkg -s "$d" >/dev/null 2>&1 || need_debs+=("$d")
done
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  # The tests start their own nginx on loopback; the distribution's service is not wanted.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
fi

if [ "$profile" != run ]; then
  rustup component add clippy rustfmt >/dev/null 2>&1 || true
  # the integration tests run the agent against a real API server; the first build
  # takes ~12 min on 2 cores, later runs reuse the cached binaries
  step "etcd + kube-apiserver from the Go module proxy (~12 min the first time; cached in .cache/control-plane)"
  scripts/build-control-plane.sh >/dev/null
  # the Helm chart tests render and install with a real helm
  step "helm from the Go module proxy (~9 min the first time; cached in .cache/helm)"
  scripts/build-helm.sh >/dev/null
  # the az:// tests run Azurite, Microsoft's Azure Storage emulator, from npm
  step "Azurite from npm (needs Node.js and npm; ~1 min the first time; cached in .cache/azurite)"
  scripts/install-azurite.sh >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 'maturin>=1.7,<2'
extras=""
case "$profile" in
  test)  extras="--extras test" ;;
  bench) extras="--extras test,bench" ;;
esac
# maturin develop builds the Rust core in release mode and installs the package
# (editable for the Python sources) with its dependencies into .venv.
step "the Rust core, release build (~5-10 min the first time on 2 cores; incremental later)"
VIRTUAL_ENV="$root/.venv" .venv/bin/maturin develop --release $extras
if [ "$profile" != run ]; then
  # the Hub-facing tests run with the oldest supported huggingface_hub here (.venv) and
  # with the newest in .venv-hub-latest, beside the olah mirror they also test against
  .venv/bin/python -m pip install -q 'huggingface_hub==0.36.*'
  scripts/install-hub-latest.sh
fi
if [ "$profile" = bench ]; then
  # the vendors' CLIs the object-store benchmarks compare against, each in a venv of
  # its own under .cache/bench-peers/ (they pin old versions of shared libraries)
  step "the object stores' CLIs for the benchmarks (~3 min the first time; cached in .cache/bench-peers)"
  scripts/install-bench-peers.sh >/dev/null
fi
