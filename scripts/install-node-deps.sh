#!/usr/bin/env bash
# Debian packages of the real-node tier (tests/node): the container runtime
# (containerd, runc, the CNI bridge plugins), what builds the images without a
# registry (mmdebstrap for the Debian base, gcc for the pause binary, buildah to
# assemble them and to build deploy/Dockerfile) and the host tools the harness uses
# (iptables, ip, curl). Idempotent: installs only what is missing.
# The distribution's containerd service is stopped: the harness runs its own.
set -euo pipefail
debs=(containerd runc containernetworking-plugins mmdebstrap buildah
  iptables iproute2 gcc libc6-dev curl)
need=()
for d in "${debs[@]}"; do
  dpkg -s "$d" >/dev/null 2>&1 || need+=("$d")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "install-node-deps.sh: installing ${need[*]} (~1-3 min)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
$SUDO systemctl disable --now containerd >/dev/null 2>&1 || $SUDO service containerd stop >/dev/null 2>&1 || true
