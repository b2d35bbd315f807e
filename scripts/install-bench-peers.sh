#!/usr/bin/env bash
# Installs the vendor CLIs the object-store benchmarks compare against, each into
# its own virtual environment under .cache/bench-peers/ (git-ignored):
#   .cache/bench-peers/oci-cli/bin/oci   (oci-cli: `oci os object bulk-download`)
#   .cache/bench-peers/awscli/bin/aws    (awscli v1: `aws s3 cp --recursive`)
# Both pin old versions of oci / botocore / cryptography; in .venv they would
# downgrade what the package itself runs on, so they never go there.
# Idempotent: an environment whose CLI already answers --version is kept.
# Pinned to the versions benches/README.md reports; override with OCI_CLI_SPEC=... AWSCLI_SPEC=...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/bench-peers"
python=${PYTHON:-python3}
mkdir -p "$dest"

install_cli() {  # name, pip spec, executable
  local spec=$2 exe=$3 env="$dest/$1"
  if [ -x "$env/bin/$exe" ] && "$env/bin/$exe" --version >/dev/null 2>&1; then
    return
  fi
  rm -rf "$env"
  "$python" -m venv "$env"
  "$env/bin/python" -m pip install -q --upgrade pip
  "$env/bin/python" -m pip install -q "$spec"
  "$env/bin/$exe" --version >/dev/null
}

install_cli oci-cli "${OCI_CLI_SPEC:-oci-cli==3.95.1}" oci
install_cli awscli "${AWSCLI_SPEC:-awscli==1.46.3}" aws
echo "oci: $("$dest/oci-cli/bin/oci" --version 2>&1 | head -1)"
echo "aws: $("$dest/awscli/bin/aws" --version 2>&1 | head -1)"
