"""The node agent under test as a real subprocess, and what tests read of the cluster.

Where it sits: glue between the agent integration tests (tests/integration/) and
``tests.cluster`` (the real control plane). The agent runs exactly as in a Pod:
``ome-agent run`` with a ServiceAccount kubeconfig bound to deploy/agent/rbac.yaml,
so a missing RBAC rule shows up as a failure here, not as a silent admin bypass.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from ome_agent.wire import entry as wire_entry
from tests.cluster.controlplane import free_port
from tests.cluster.kube import Cluster, unique_name, wait_until

T = TypeVar("T")
OME_AGENT = Path(sys.executable).with_name("ome-agent")
API = "ome.io/v1beta1"


def wait_for(cond: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``cond`` until it returns something truthy; that value. A timeout fails the
    test (``AssertionError``) naming ``what``."""
    try:
        return wait_until(cond, timeout, interval=0.05, what=what)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from None


@dataclass(kw_only=True, eq=False)
class Agent:
    """One ``ome-agent run`` process for node ``node`` in namespace ``namespace``."""

    WHAT: ClassVar[str] = "agent"  # in failure messages
    # what of the test runner's environment the process must not see
    DROP_ENV: ClassVar[tuple[str, ...]] = ("HF_", "KUBE", "AWS_")

    kubeconfig: Path
    node: str
    namespace: str
    models_root: Path
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)  # added to its environment
    extra_args: tuple[str, ...] = ()
    port: int = field(default=0, init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def command(self) -> list[str]:
        """The subcommand and its own options (the health port and extra_args follow)."""
        return [
            "run",
            "--node-name",
            self.node,
            "--models-root-dir",
            str(self.models_root),
            "--namespace",
            self.namespace,
        ]

    def start(self, wait_ready: bool = True) -> Self:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(self.DROP_ENV)}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HF_HUB_DISABLE_TELEMETRY="1",
            PYTHONUNBUFFERED="1",
            **self.env,
        )
        cmd = [
            str(OME_AGENT),
            *self.command(),
            "--health-port",
            str(self.port),
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def wait_running(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_for`` that fails at once, with the log, when the process exits."""

        def running_and() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.WHAT} exited {self.proc.returncode}:\n{self.log()}")
            return cond()

        wait_for(running_and, timeout, what)

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_running(
            lambda: self.get("/healthz")[0] == 200, timeout, f"the {self.WHAT}'s /healthz"
        )

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as the kubelet does; the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.WHAT} ignored SIGTERM for {timeout} s:\n{self.log()}"
                ) from None
        code = self.proc.returncode
        self.proc = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        status, text = self.get("/metrics")
        assert status == 200, "no /metrics"
        return sum_metric(text, name, labels)


def sum_metric(text: str, name: str, labels: Mapping[str, str]) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, raw_labels = head.partition("{")
        if metric != name:
            continue
        got = dict(part.split("=", 1) for part in raw_labels.rstrip("}").split(",") if "=" in part)
        if all(got.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


# ---------------------------------------------------------------- cluster reads
class _Recorder:
    """Watches one object from the test and records, for each key, every value it
    takes (None while absent); ``stop`` ends the recording with a change of our own,
    so every event before it (a whole agent restart) has been seen."""

    WHAT = "object"

    node: str  # the watched object's name

    def __init__(self, cluster: Cluster, keys: list[str]) -> None:
        self.cluster = cluster
        self.seen: dict[str, list[str | None]] = {k: [] for k in keys}
        self.wake = unique_name("wake")
        self.woken = threading.Event()
        self._resp = self._watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _watch(self) -> Any:
        """The watch response, from the object's current resourceVersion."""
        resource_version, list_objects = self._source()
        return list_objects(
            field_selector=f"metadata.name={self.node}",
            resource_version=resource_version,
            watch=True,
            timeout_seconds=120,
            _preload_content=False,
        )

    def _source(self) -> tuple[str, Callable[..., Any]]:
        """The watched object's current resourceVersion, and the list call that watches
        it (given the field selector and the watch options)."""
        raise NotImplementedError

    def _values(self, obj: dict[str, Any]) -> dict[str, str | None]:
        raise NotImplementedError

    def _marks(self, obj: dict[str, Any]) -> dict[str, str]:
        """Where ``_poke`` leaves the wake mark."""
        raise NotImplementedError

    def _poke(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when stop() closes it
            for line in iter_resp_lines(self._resp):
                obj = json.loads(line)["object"]
                values = self._values(obj)
                for k in self.seen:
                    self.seen[k].append(values.get(k))
                if self._marks(obj).get("ome-test/wake") == self.wake:
                    self.woken.set()
                    return

    def stop(self) -> None:
        self._poke()
        assert self.woken.wait(10), f"the {self.WHAT} watch missed events"
        self._resp.close()
        self._thread.join(5)


class NodeLabelRecorder(_Recorder):
    """Every value each of the Node's labels ``keys`` takes."""

    WHAT = "Node"

    def __init__(self, cluster: Cluster, node: str, keys: list[str]) -> None:
        self.node = node
        super().__init__(cluster, keys)

    def _source(self) -> tuple[str, Callable[..., Any]]:
        core = self.cluster.core
        return core.read_node(self.node).metadata.resource_version, core.list_node

    def _values(self, obj: dict[str, Any]) -> dict[str, str | None]:
        return dict(self._marks(obj))

    def _marks(self, obj: dict[str, Any]) -> dict[str, str]:
        return obj["metadata"].get("labels") or {}

    def _poke(self) -> None:
        self.cluster.label_node(self.node, {"ome-test/wake": self.wake})


class EntryRecorder(_Recorder):
    """Every status each of the node ConfigMap's entries ``keys`` takes."""

    WHAT = "ConfigMap"

    def __init__(self, cluster: Cluster, namespace: str, node: str, keys: list[str]) -> None:
        self.namespace = namespace
        self.node = node
        super().__init__(cluster, keys)

    def _source(self) -> tuple[str, Callable[..., Any]]:
        core = self.cluster.core
        rv = core.read_namespaced_config_map(self.node, self.namespace).metadata.resource_version
        return rv, functools.partial(core.list_namespaced_config_map, self.namespace)

    def _values(self, obj: dict[str, Any]) -> dict[str, str | None]:
        data = obj.get("data") or {}
        return {k: json.loads(v)["status"] for k, v in data.items() if k in self.seen}

    def _marks(self, obj: dict[str, Any]) -> dict[str, str]:
        return obj["metadata"].get("annotations") or {}

    def _poke(self) -> None:
        self.cluster.core.patch_namespaced_config_map(
            self.node, self.namespace, {"metadata": {"annotations": {"ome-test/wake": self.wake}}}
        )


def agent_on(
    cluster: Cluster,
    namespace: str,
    node: str,
    work: Path,
    *,
    sa: str = "ome-agent",
    log: str = "agent.log",
    rbac: Mapping[str, Any] | None = None,
    **kw: Any,
) -> Agent:
    """An :class:`Agent` of ``node`` as ServiceAccount ``sa`` of ``namespace`` (bound to
    deploy/agent/rbac.yaml; ``rbac``: what else ``service_account_kubeconfig`` takes),
    its models in ``work/models``, its log at ``work/<log>``; ``kw`` as ``Agent`` takes
    them. Not started; the models folder is not made here."""
    return Agent(
        kubeconfig=cluster.service_account_kubeconfig(namespace, sa, **(rbac or {})),
        node=node,
        namespace=namespace,
        models_root=work / "models",
        log_path=work / log,
        **kw,
    )


def node_labels(cluster: Cluster, node: str) -> dict[str, str]:
    return dict(cluster.core.read_node(node).metadata.labels or {})


def config_map(cluster: Cluster, namespace: str, node: str) -> Any:
    try:
        return cluster.core.read_namespaced_config_map(node, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def entry(cluster: Cluster, namespace: str, node: str, key: str) -> dict[str, Any] | None:
    """The raw JSON of one ConfigMap entry, or None."""
    cm = config_map(cluster, namespace, node)
    if cm is None or not cm.data or key not in cm.data:
        return None
    decoded: dict[str, Any] = json.loads(cm.data[key])
    assert wire_entry.decode_entry(cm.data[key]).error is None
    return decoded


def cluster_model(name: str, uri: str, **storage: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ClusterBaseModel",
        "metadata": {"name": name},
        "spec": {"storage": {"storageUri": uri, **storage}},
    }


def fine_tuned_weight(name: str, base: str, uri: str) -> dict[str, Any]:
    """A LoRA FineTunedWeight on ClusterBaseModel ``base``, its adapter at ``uri``."""
    return {
        "apiVersion": API,
        "kind": "FineTunedWeight",
        "metadata": {"name": name},
        "spec": {
            "baseModelRef": {"name": base},
            "modelType": "LoRA",
            "storage": {"storageUri": uri},
        },
    }


def namespaced_model(namespace: str, name: str, uri: str, **storage: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "BaseModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storage": {"storageUri": uri, **storage}},
    }
