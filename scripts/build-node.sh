#!/usr/bin/env bash
# Builds the node components the real-node tier (tests/node) runs next to the
# control plane of scripts/build-control-plane.sh: kubelet, kube-controller-manager,
# kube-scheduler and kubectl, from the same k8s.io/kubernetes pin
# (tools/control-plane/go.mod) and with the same version stamp. Cached next to the
# API server in .cache/control-plane/<version>/ (git-ignored); a rerun with all
# four present does nothing. Prints the folder.
set -euo pipefail
# root, mod, version, out, ldflags
source "$(dirname "$0")/control-plane-pin.sh"
command -v go >/dev/null || {
  echo "build-node.sh: needs the Go toolchain (Debian: apt-get install golang-go; or https://go.dev/dl)" >&2
  exit 1
}
mkdir -p "$out"
cd "$mod"
# expected durations on 2 cores with a cold Go build cache (the API server's build
# warms most of what the others share)
declare -A minutes=([kubelet]="10-20" [kube-controller-manager]="3-8" [kube-scheduler]="1-3" [kubectl]="1-3")
for cmd in kubelet kube-controller-manager kube-scheduler kubectl; do
  stamp="$out/$cmd.ldflags"
  if [ -x "$out/$cmd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ldflags" ]; then
    continue
  fi
  echo "build-node.sh: building $cmd $version (~${minutes[$cmd]} min cold)" >&2
  # a half-written binary is never taken for a finished one
  go build -o "$out/$cmd.tmp" -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$cmd"
  mv "$out/$cmd.tmp" "$out/$cmd"
  echo "$ldflags" > "$stamp"
done
echo "$out"
