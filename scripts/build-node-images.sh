#!/usr/bin/env bash
# Builds the images the real-node tier (tests/node) runs, with no registry, as
# archives scripts/real-node.sh imports into its containerd. Output in
# .cache/node-images/ (git-ignored); prints that folder.
#   pause.tar      localhost/pause:local       kubernetes' own pause.c (from the pinned
#                                              k8s.io/kubernetes module), linked statically
#   ome-agent.tar  localhost/ome-agent:e2e     deploy/Dockerfile, built by buildah on
#                                              localhost/debian-python:bookworm: Debian
#                                              bookworm from mmdebstrap (Debian's
#                                              packages) with python3, pip, CA certificates
#                                              (kept in buildah's store under the folder)
# deploy/Dockerfile's first stage compiles the wheel on rust:1-slim-bookworm, which
# only a registry has. Its command (maturin build --release --locked --compatibility
# linux --strip) runs here on the host instead, and the build gets the result as the `build`
# stage (--build-context build=DIR, DIR/wheels/ holding the wheel and the wheels of its
# dependencies, downloaded by the host's pip). The runtime stage runs as written, with
# pip told by build arguments to install from /wheels only.
# The pause and base images are built once (keyed by version / package list); the
# agent image again whenever the wheel or deploy/Dockerfile changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.cache/node-images"
python=${PYTHON:-$root/.venv/bin/python}
maturin=${MATURIN:-$root/.venv/bin/maturin}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/ome-node-images.XXXXXX")
# buildah's own storage, away from the machine's /var/lib/containers
store=(--root "$out/buildah" --runroot "$work/runroot" --storage-driver vfs)
cleanup() {
  # the runroot holds mounts while a build runs; buildah unmounts them on exit
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "build-node-images.sh: $*" >&2; }

export_image() { # image, archive: a docker archive the harness imports
  rm -f "$2.tmp"
  buildah "${store[@]}" push -q "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}

# ---------------------------------------------------------------- pause
k8s=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$root/tools/control-plane/go.mod")
if [ "$(cat "$out/pause.key" 2>/dev/null)" != "$k8s" ]; then
  src="$(cd "$root/tools/control-plane" && go env GOMODCACHE)/k8s.io/kubernetes@$k8s/build/pause/linux/pause.c"
  [ -f "$src" ] || (cd "$root/tools/control-plane" && go mod download k8s.io/kubernetes)
  gcc -Os -static -o "$work/pause" "$src" -DVERSION="$k8s"
  c=$(buildah "${store[@]}" from scratch)
  buildah "${store[@]}" copy -q "$c" "$work/pause" /pause >/dev/null
  buildah "${store[@]}" config --entrypoint '["/pause"]' "$c"
  buildah "${store[@]}" commit -q --rm "$c" localhost/pause:local >/dev/null
  export_image localhost/pause:local "$out/pause.tar"
  echo "$k8s" >"$out/pause.key"
  say "pause image built"
fi

# ---------------------------------------------------------------- base
# what the agent's runtime stage needs from its base: python 3.11 and pip
suite=bookworm
packages=python3,python3-pip,ca-certificates
# manuals, translations and docs are ~45 MB nobody reads in a pod (licences stay)
slim=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright')
if [ "$(cat "$out/base.key" 2>/dev/null)" != "$suite $packages ${slim[*]}" ] ||
  ! buildah "${store[@]}" inspect "localhost/debian-python:$suite" >/dev/null 2>&1; then
  say "base image: mmdebstrap $suite with $packages (~2-5 min)"
  mmdebstrap --quiet --variant=minbase --include="$packages" "${slim[@]}" "$suite" "$work/rootfs.tar"
  c=$(buildah "${store[@]}" from scratch)
  buildah "${store[@]}" add -q "$c" "$work/rootfs.tar" / >/dev/null
  buildah "${store[@]}" config --cmd /bin/bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  buildah "${store[@]}" commit -q --rm "$c" "localhost/debian-python:$suite" >/dev/null
  echo "$suite $packages ${slim[*]}" >"$out/base.key"
  say "base image built"
fi

# ---------------------------------------------------------------- agent
# deploy/Dockerfile's build stage, on the host: same command, same wheel
say "agent wheel: maturin build --release (~1 min warm, ~10 min cold)"
ctx="$work/build"
mkdir -p "$ctx/wheels"
# cargo's lines only when it fails: the step is announced above
if ! (cd "$root" && "$maturin" build --release --locked --compatibility linux --strip \
  --out "$ctx/wheels") >"$work/maturin.log" 2>&1; then
  cat "$work/maturin.log" >&2
  exit 1
fi
wheel=$(ls "$ctx"/wheels/ome_agent-*.whl)
# its dependencies for the base's python (3.11), as the runtime stage's pip would
# fetch them; the host's pip cache makes a rerun cheap
"$python" -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform linux_x86_64 \
  -d "$ctx/wheels" "$wheel"
# the key: the Dockerfile and what it copies in, the wheel's RECORD (a digest of every
# file in it; the zip itself differs between builds by its timestamps, and so does its
# SBOM, by a serial number and a timestamp: left out) and the dependency wheels' names
record=$("$python" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.stdout.buffer.write(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))))' "$wheel" |
  grep -v '\.dist-info/sboms/')
key=$( (cat "$root/deploy/Dockerfile" "$root/scripts/slim-site-packages.py"; echo "$record"; ls "$ctx/wheels") |
  sha256sum | cut -c1-32)
if [ "$(cat "$out/ome-agent.key" 2>/dev/null)" != "$key" ] || [ ! -f "$out/ome-agent.tar" ]; then
  say "agent image: buildah build -f deploy/Dockerfile (~1-3 min)"
  buildah "${store[@]}" build -q --isolation chroot \
    --build-arg "RUNTIME_IMAGE=localhost/debian-python:$suite" \
    --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels \
    --build-arg PIP_BREAK_SYSTEM_PACKAGES=1 --build-arg PIP_ROOT_USER_ACTION=ignore \
    --build-context "build=$ctx" \
    -f "$root/deploy/Dockerfile" -t localhost/ome-agent:e2e "$root" >/dev/null
  export_image localhost/ome-agent:e2e "$out/ome-agent.tar"
  # intermediate layers of earlier builds
  buildah "${store[@]}" rmi --prune >/dev/null 2>&1 || true
  echo "$key" >"$out/ome-agent.key"
  say "agent image built"
fi
echo "$out"
