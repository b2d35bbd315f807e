"""A single-node Kubernetes with a real kubelet, for the real-node tier.

Where it sits: test infrastructure above ``scripts/real-node.sh``, which starts and
stops the node (containerd, the CNI bridge, etcd, kube-apiserver, controller-manager,
scheduler, kubelet; all on 127.0.0.1). This module runs that script, records how long
the node took to be Ready, and gives the tests kubectl, helm and an admin API client.
Pods reach a server the test runs on the host's loopback through ``expose``: a DNAT
of the bridge gateway's port to 127.0.0.1, the one path from a pod to the host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = REPO_ROOT / "scripts" / "real-node.sh"
GATEWAY = "10.89.0.1"  # the bridge's address on the host, as scripts/real-node.sh sets it


def control_plane_bin() -> Path:
    """The folder build-control-plane.sh and build-node.sh fill for the pinned version."""
    gomod = REPO_ROOT / "tools" / "control-plane" / "go.mod"
    version = next(
        line.split()[1]
        for line in gomod.read_text().splitlines()
        if line.split()[:1] == ["k8s.io/kubernetes"]
    )
    return REPO_ROOT / ".cache" / "control-plane" / version


class RealNode:
    """One node, state under ``workdir``; ``up()`` blocks until it is Ready."""

    def __init__(self, workdir: Path, ports: tuple[int, int, int]) -> None:
        self.workdir = workdir
        self.name = socket.gethostname()
        self.bin = control_plane_bin()
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.ready_seconds = 0.0
        self._env = {
            **os.environ,
            "NODE_DIR": str(workdir),
            "API_PORT": str(ports[0]),
            "ETCD_PORT": str(ports[1]),
            "ETCD_PEER_PORT": str(ports[2]),
            "NODE_NAME": self.name,
            "KUBECONFIG": str(self.kubeconfig),
        }
        self.api: client.ApiClient | None = None

    def check(self) -> str | None:
        """Why this machine cannot run a node now (``real-node.sh check``'s one line:
        not root, a missing tool, another node running), or None."""
        out = subprocess.run(
            [str(DRIVER), "check"], env=self._env, capture_output=True, text=True, check=False
        )
        return (out.stderr.strip() or "real-node.sh check failed") if out.returncode else None

    def up(self) -> None:
        t0 = time.monotonic()
        self._driver("up", timeout=3600)
        self.ready_seconds = time.monotonic() - t0
        self.api = config.new_client_from_config(str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def down(self) -> None:
        self._driver("down", timeout=600)
        # the unpacked images (~1 GB): nothing to look at after a run
        shutil.rmtree(self.workdir / "containerd", ignore_errors=True)

    def expose(self, port: int) -> str:
        """``http://GATEWAY:port``: where pods reach the host's 127.0.0.1:port."""
        return self._driver("expose", str(port)).strip().splitlines()[-1]

    def restart_kubelet(self) -> float:
        """Stop the kubelet and start it again (pods keep running); seconds until the
        node is Ready and untainted again."""
        return self._restart("kubelet")

    def restart_containerd(self) -> float:
        """Stop containerd and start it again (its shims keep the containers running);
        seconds until the node is Ready again."""
        return self._restart("containerd")

    def _restart(self, component: str) -> float:
        """``real-node.sh restart-COMPONENT``: the seconds it took, and a check that
        the component's recorded PID changed."""
        pid = self.workdir / "run" / f"{component}.pid"
        before = pid.read_text()
        t0 = time.monotonic()
        self._driver(f"restart-{component}", timeout=600)
        seconds = time.monotonic() - t0
        assert pid.read_text() != before, f"{component} was not restarted"
        return seconds

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        out = subprocess.run(
            [str(self.bin / "kubectl"), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr.strip()[-2000:]}")
        return out.stdout

    def run(self, *cmd: str, timeout: float = 600) -> str:
        """A host command (helm, ...) against this node's API server."""
        out = subprocess.run(
            cmd, env=self._env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if out.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: {out.stderr.strip()[-3000:]}")
        return out.stdout

    def logs(self, lines: int = 40) -> str:
        """The tail of every component's log, for failure reports."""
        parts = []
        for log in sorted((self.workdir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def node_labels(self) -> dict[str, str]:
        return dict(self.core().read_node(self.name).metadata.labels or {})

    def _driver(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run(
            [str(DRIVER), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"real-node.sh {' '.join(args)} failed:\n{out.stderr[-3000:]}\n{self.logs()}"
            )
        return out.stdout


class LabelWatch:
    """Every value one of the Node's labels takes (None while absent), from a watch on
    the Node: a flap too short for any poll is still seen. ``stop`` sets a label of
    its own and waits for it, so every change before the call has been recorded."""

    WAKE = "ome-test/wake"

    def __init__(self, node: RealNode, key: str) -> None:
        self.node = node
        self.key = key
        self.seen: list[str | None] = []
        self._wake = uuid.uuid4().hex[:12]
        self._woken = threading.Event()
        core = node.core()
        rv = core.read_node(node.name).metadata.resource_version
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._events = self._watch.stream(
            core.list_node,
            field_selector=f"metadata.name={node.name}",
            resource_version=rv,
            timeout_seconds=900,
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._events:
            labels = event["object"].metadata.labels or {}
            self.seen.append(labels.get(self.key))
            if labels.get(self.WAKE) == self._wake:
                self._woken.set()
                return

    def stop(self) -> list[str | None]:
        self.node.kubectl(
            "label", "node", self.node.name, f"{self.WAKE}={self._wake}", "--overwrite"
        )
        assert self._woken.wait(30), "the Node watch missed events"
        self._watch.stop()  # type: ignore[no-untyped-call]
        self.node.kubectl("label", "node", self.node.name, f"{self.WAKE}-")
        return self.seen


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
