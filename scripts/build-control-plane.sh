#!/usr/bin/env bash
# Builds the real control plane for integration tests from the Go module proxy:
# kube-apiserver (k8s.io/kubernetes, staging modules pinned in
# tools/control-plane/go.mod) and etcd (go.etcd.io/etcd/server/v3, the version
# Kubernetes itself requires). Binaries are cached in .cache/control-plane/<version>/
# (git-ignored); a rerun with both present does nothing. First build: ~12 min on
# 2 cores and a few GB of module cache.
set -euo pipefail
# root, mod, version, out, ldflags
source "$(dirname "$0")/control-plane-pin.sh"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ "$(cat "$out/ldflags" 2>/dev/null)" = "$ldflags" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
cd "$mod"
go build -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
go build -o "$out/kube-apiserver.tmp" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver
mv "$out/etcd.tmp" "$out/etcd"
mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
echo "$ldflags" > "$out/ldflags"
echo "$out"
