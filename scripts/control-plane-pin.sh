# Sourced (not run) by build-control-plane.sh and build-node.sh: the k8s.io/kubernetes
# pin of tools/control-plane/go.mod and what both builds derive from it. Sets root (the
# repository), mod (the Go module), version, out (the cache folder of that version,
# .cache/control-plane/<version>/) and ldflags (the version stamp of every binary).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/tools/control-plane"
version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$mod/go.mod")
out="$root/.cache/control-plane/$version"
# the version the server reports: admission plugins (pod security) parse major.minor
# from it, so both must be set, not only gitVersion
minor=$(echo "$version" | cut -d. -f2)
ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
