#!/usr/bin/env bash
# A single-node Kubernetes that runs real pods, on this machine, with no registry:
# containerd + the CNI bridge + etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and a kubelet, every server on 127.0.0.1. The real-node tier
# (tests/node) drives it; it can also be run by hand:
#   scripts/real-node.sh check     can this machine run a node now? if not, one line
#                                  saying why (root, a missing tool, a node already
#                                  running) and exit 1; `up` checks first
#   scripts/real-node.sh up        start everything, import the images, wait for the node
#                                  to be Ready and untainted
#   scripts/real-node.sh expose P  let pods reach the host's 127.0.0.1:P at GATEWAY:P
#   scripts/real-node.sh restart-kubelet  stop the kubelet (TERM) and start it again,
#                                  waiting for the node to be Ready; pods keep running
#   scripts/real-node.sh restart-containerd  stop containerd (TERM) and start it again,
#                                  waiting for the node to be Ready; the containers keep
#                                  running under their shims
#   scripts/real-node.sh down      delete the workloads, stop every process by its
#                                  recorded PID, undo every iptables rule and the bridge
# Settings (environment): NODE_DIR (state, logs, sockets; default /tmp/ome-real-node),
# NODE_BIN (etcd, kube-*, kubectl; default: built by build-control-plane.sh and
# build-node.sh), NODE_IMAGES (image archives; default: build-node-images.sh's folder),
# API_PORT (default 16443), ETCD_PORT and ETCD_PEER_PORT (default the two after it),
# NODE_NAME (default: the host name).
#
# Host facts it is made for (Debian 12, root):
# - cgroup v1: the kubelet needs failCgroupV1: false;
# - root without CAP_SYS_RESOURCE: runc cannot raise oom_score_adj, so containerd runs
#   with restrict_oom_score_adj (otherwise every sandbox dies at start);
# - no kube-proxy: pods reach the loopback-only API server through a DNAT of the
#   kubernetes Service IP, for packets arriving on the bridge only, as kube-proxy
#   would arrange; `expose` does the same for a test server on the bridge gateway.
# Only one node runs on a machine at a time (one bridge, the kubelet's fixed ports).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
D=${NODE_DIR:-/tmp/ome-real-node}
API_PORT=${API_PORT:-16443}
NODE_NAME=${NODE_NAME:-$(hostname)}
BRIDGE=ome-cni0
SUBNET=10.89.0.0/16
GATEWAY=10.89.0.1
SERVICE_RANGE=10.96.0.0/16
API_VIP=10.96.0.1
ETCD_PORT=${ETCD_PORT:-$((API_PORT + 1))}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((API_PORT + 2))}
export KUBECONFIG=$D/admin.kubeconfig

t0=$(date +%s)
say() { echo "[real-node $(($(date +%s) - t0))s] $*" >&2; }
die() { echo "real-node: $*" >&2; exit 1; }

[ "${1:-}" = check ] || mkdir -p "$D/run" "$D/logs"
# one rule per line, as added; `down` deletes exactly these
RULES=$D/run/iptables.rules

binaries() { # built (or found in the cache) on first use
  if [ -n "${NODE_BIN:-}" ]; then echo "$NODE_BIN"; return; fi
  "$root/scripts/build-control-plane.sh" >/dev/null
  "$root/scripts/build-node.sh"
}

bg() { # name, command...: started in its own session, PID recorded
  local name=$1; shift
  setsid "$@" >"$D/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$D/run/$name.pid"
}
alive() { [ -f "$D/run/$1.pid" ] && kill -0 "$(cat "$D/run/$1.pid")" 2>/dev/null; }
wait_for() { # seconds, what, command...
  local secs=$1 what=$2; shift 2
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "$what not ready after ${secs}s (logs in $D/logs)"
    sleep 0.3
  done
}

rule() { # iptables -t nat arguments of one rule: added once, recorded for `down`
  iptables -t nat -C "$@" 2>/dev/null && return
  iptables -t nat -A "$@"
  echo "$*" >>"$RULES"
}

# ------------------------------------------------------------------ pki
pki() {
  local p=$D/pki
  [ -f "$p/done" ] && return
  mkdir -p "$p"
  key() { openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$p/$1.key"; }
  cert() { # name, subject, extensions
    key "$1"
    openssl req -new -key "$p/$1.key" -subj "$2" -out "$p/$1.csr" 2>/dev/null
    printf '%b\n' "basicConstraints=CA:FALSE\n$3" >"$p/$1.ext"
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -days 2 -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
    rm "$p/$1.csr" "$p/$1.ext"
  }
  key ca
  openssl req -x509 -new -key "$p/ca.key" -subj "/CN=ome-real-node-ca" -days 2 -out "$p/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$API_VIP"
  cert admin "/O=system:masters/CN=real-node-admin" "extendedKeyUsage=clientAuth"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
  cert kubelet-serving "/CN=$NODE_NAME" "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1"
  key sa
  openssl ec -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  chmod 600 "$p"/*.key
  touch "$p/done"
}

kubeconfig() { # file, certificate name
  cat >"$1" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: real-node, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: $D/pki/ca.crt}}]
users: [{name: $2, user: {client-certificate: $D/pki/$2.crt, client-key: $D/pki/$2.key}}]
contexts: [{name: real-node, context: {cluster: real-node, user: $2}}]
current-context: real-node
YAML
  chmod 600 "$1"
}

# ------------------------------------------------------------------ containerd
containerd_up() {
  alive containerd && return
  mkdir -p "$D/cni/net.d" "$D/containerd/root" "$D/containerd/state"
  containerd config default | sed \
    -e "s#^root = .*#root = \"$D/containerd/root\"#" \
    -e "s#^state = .*#state = \"$D/containerd/state\"#" \
    -e "s#address = \"/run/containerd/containerd.sock\"#address = \"$D/containerd.sock\"#" \
    -e 's#sandbox_image = .*#sandbox_image = "localhost/pause:local"#' \
    -e 's#restrict_oom_score_adj = false#restrict_oom_score_adj = true#' \
    -e 's#bin_dir = "/opt/cni/bin"#bin_dir = "/usr/lib/cni"#' \
    -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$D/cni/net.d\"#" >"$D/containerd.toml"
  cat >"$D/cni/net.d/10-ome-real-node.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "ome-real-node", "plugins": [{"type": "bridge",
 "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET", "gateway": "$GATEWAY"}]],
          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$D/cni/ipam"}}]}
JSON
  bg containerd containerd --config "$D/containerd.toml"
  wait_for 30 containerd ctr -a "$D/containerd.sock" version
  say "containerd up"
}

import_images() {
  local dir=${NODE_IMAGES:-$root/.cache/node-images}
  for img in "$dir"/*.tar; do
    [ -e "$img" ] || die "no image archives in $dir: run scripts/build-node-images.sh"
    ctr -a "$D/containerd.sock" -n k8s.io images import --no-unpack=false "$img" >/dev/null
  done
  say "images imported from $dir"
}

# ------------------------------------------------------------------ network
network_up() {
  # the bridge exists before the first pod so its loopback routing can be set; the
  # CNI plugin then reuses it
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  echo "$BRIDGE" >"$D/run/bridge"
  # DNAT to 127.0.0.1 needs route_localnet, on this bridge only
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  rule PREROUTING -i "$BRIDGE" -d "$API_VIP/32" -p tcp --dport 443 -j DNAT --to-destination "127.0.0.1:$API_PORT"
}

expose() { # port [host]: GATEWAY:port on the bridge -> host:port (default 127.0.0.1)
  local port=${1:?usage: real-node.sh expose PORT [HOST]} host=${2:-127.0.0.1}
  rule PREROUTING -i "$BRIDGE" -d "$GATEWAY/32" -p tcp --dport "$port" -j DNAT --to-destination "$host:$port"
  echo "http://$GATEWAY:$port"
}

# ------------------------------------------------------------------ control plane
control_plane_up() {
  local bin=$1 p=$D/pki
  alive etcd || bg etcd "$bin/etcd" --name=real-node --data-dir="$D/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="real-node=http://127.0.0.1:$ETCD_PEER_PORT" --log-level=warn --unsafe-no-fsync
  wait_for 30 etcd curl -fs "http://127.0.0.1:$ETCD_PORT/health"
  # the admission plugins of a real cluster (NodeRestriction included: the least
  # privilege tests rely on it) and the Node authorizer
  alive kube-apiserver || bg kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SERVICE_RANGE" --allow-privileged=true --profiling=false \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=Hostname,InternalIP --endpoint-reconciler-type=none --v=1
  wait_for 120 kube-apiserver curl -fs --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"
  say "kube-apiserver ready on 127.0.0.1:$API_PORT"
  alive kube-controller-manager || bg kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$D/cm.kubeconfig" --authentication-kubeconfig="$D/cm.kubeconfig" \
    --authorization-kubeconfig="$D/cm.kubeconfig" --bind-address=127.0.0.1 --secure-port=0 \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" --v=1
  alive kube-scheduler || bg kube-scheduler "$bin/kube-scheduler" --kubeconfig="$D/sched.kubeconfig" \
    --authentication-kubeconfig="$D/sched.kubeconfig" --authorization-kubeconfig="$D/sched.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --v=1
}

kubelet_up() {
  local bin=$1 p=$D/pki
  mkdir -p "$D/kubelet" "$D/pod-logs"
  cat >"$D/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $p/ca.crt}}
authorization: {mode: Webhook}
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$D/containerd.sock
imageServiceEndpoint: unix://$D/containerd.sock
podLogsDir: $D/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# the images are imported, never pulled: garbage collection must not remove them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
YAML
  alive kubelet || bg kubelet "$bin/kubelet" --config="$D/kubelet.yaml" \
    --kubeconfig="$D/kubelet.kubeconfig" --root-dir="$D/kubelet" \
    --hostname-override="$NODE_NAME" --v=1
  wait_for 180 "node $NODE_NAME" "$bin/kubectl" wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  # the not-ready taint goes once the node-lifecycle controller has seen Ready
  untainted() { [ -z "$("$bin/kubectl" get node "$NODE_NAME" -o jsonpath='{.spec.taints}')" ]; }
  wait_for 90 "node $NODE_NAME untainted" untainted
  say "node $NODE_NAME Ready"
}

check() {
  [ "$(id -u)" -eq 0 ] ||
    die "needs root (it runs containerd, adds the bridge $BRIDGE and iptables rules): run it as root"
  local tool
  for tool in containerd containerd-shim-runc-v2 runc ctr iptables ip ss curl; do
    command -v "$tool" >/dev/null || die "$tool not found: scripts/install-node-deps.sh installs it"
  done
  [ -x /usr/lib/cni/bridge ] || die "/usr/lib/cni/bridge not found: scripts/install-node-deps.sh installs it"
  # the kubelet's ports are fixed: a second node would fail half-way up
  if [ -n "$(ss -Hltn 'sport = :10250 or sport = :10248')" ]; then
    die "ports 10250/10248 are taken: a kubelet (another node) runs on this machine; one node at a time (scripts/real-node.sh down with that node's NODE_DIR stops it)"
  fi
}

up() {
  check
  local bin; bin=$(binaries)
  pki
  kubeconfig "$D/admin.kubeconfig" admin
  kubeconfig "$D/cm.kubeconfig" controller-manager
  kubeconfig "$D/sched.kubeconfig" scheduler
  kubeconfig "$D/kubelet.kubeconfig" kubelet
  containerd_up
  import_images
  network_up
  control_plane_up "$bin"
  kubelet_up "$bin"
}

restart_kubelet() { # the kubelet alone, as a node's operator restarts it; pods stay
  local bin; bin=$(binaries)
  stop_pid kubelet
  kubelet_up "$bin"
  # the node's Ready condition is the old kubelet's until the grace period: ask the new one
  wait_for 60 "kubelet healthz" curl -fs http://127.0.0.1:10248/healthz
}

restart_containerd() { # containerd alone, as a node's operator restarts it
  local bin; bin=$(binaries)
  # TERM to containerd's PID only: each container's shim runs on in its own process
  # group and the new containerd reconnects to it
  stop_pid containerd
  containerd_up
  # the kubelet reconnects to the runtime by itself; the node's Ready condition may
  # have dropped while the runtime was away
  wait_for 180 "node $NODE_NAME" "$bin/kubectl" wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  say "containerd restarted, node $NODE_NAME Ready"
}

# ------------------------------------------------------------------ teardown
stop_pid() { # TERM, up to 30 s, then KILL: only the process whose PID was recorded
  local f=$D/run/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local bin
  bin=${NODE_BIN:-$root/.cache/control-plane/$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$root/tools/control-plane/go.mod")}
  if alive kube-apiserver && alive kubelet; then
    # the kubelet stops the pods it runs; what it does not get to, containerd's
    # shims are told below
    "$bin/kubectl" delete daemonsets,deployments,jobs --all -A --wait=false >/dev/null 2>&1 || true
    "$bin/kubectl" delete pods --all -A --grace-period=2 --timeout=60s >/dev/null 2>&1 || true
  fi
  for n in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$n"; done
  if alive containerd; then
    local ctr="ctr -a $D/containerd.sock -n k8s.io" t c
    for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    for c in $($ctr containers ls -q 2>/dev/null); do
      $ctr tasks rm -f "$c" >/dev/null 2>&1 || true
      $ctr containers rm "$c" >/dev/null 2>&1 || true
    done
  fi
  stop_pid containerd
  # pod volumes and sandbox network namespaces the kubelet mounted under $D
  grep " $D/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  if [ -f "$RULES" ]; then
    while read -r r; do
      # shellcheck disable=SC2086 # one rule's words, as recorded
      iptables -t nat -D $r 2>/dev/null || true
    done <"$RULES"
    rm -f "$RULES"
  fi
  if [ -f "$D/run/bridge" ]; then
    ip link del "$(cat "$D/run/bridge")" 2>/dev/null || true
    rm -f "$D/run/bridge"
  fi
  # the pods' cgroups (cgroupfs driver), empty once their processes are gone
  for h in /sys/fs/cgroup/*/kubepods; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  say "down"
}

case "${1:-}" in
  check) check ;;
  up) up ;;
  down) down ;;
  expose) shift; expose "$@" ;;
  restart-kubelet) restart_kubelet ;;
  restart-containerd) restart_containerd ;;
  *) die "usage: real-node.sh check | up | down | expose PORT [HOST] | restart-kubelet | restart-containerd" ;;
esac
