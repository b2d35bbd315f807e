#!/usr/bin/env bash
# Builds the `helm` binary the chart tests (tests/test_helm_chart.py) run, from the
# Go module proxy: no release download needed. Cached in .cache/helm/<version>/
# (git-ignored); a rerun with the binary present does nothing, and a rebuild after
# the cache folder is removed reuses Go's build cache (~25 s instead of ~5 min cold
# on 2 cores). Prints the binary's path.
set -euo pipefail
# pinned: the tests' expectations (lint, error messages) are those of this version
version=v3.22.0
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.cache/helm/$version"
if [ -x "$out/helm" ]; then
  echo "$out/helm"
  exit 0
fi
command -v go >/dev/null || {
  echo "build-helm.sh: needs the Go toolchain (Debian: apt-get install golang-go; or https://go.dev/dl)" >&2
  exit 1
}
mkdir -p "$out"
# go install names the binary after the package (helm); build into a temporary
# folder so a half-written binary is never taken for a finished one
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# `helm version` reports what it was built as; without the flag it says v3 only
GOBIN="$tmp" go install \
  -ldflags "-X helm.sh/helm/v3/internal/version.version=$version" \
  "helm.sh/helm/v3/cmd/helm@$version" >&2
mv "$tmp/helm" "$out/helm"
echo "$out/helm"
