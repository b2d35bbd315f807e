"""pytest plugin: one real control plane per test session, with deploy/crds/ applied.

Where it sits: glue between the Kubernetes integration tests and
``tests.cluster.controlplane`` / ``tests.cluster.kube``. Registered in
tests/conftest.py's ``pytest_plugins``. The control plane starts lazily (only when
a test asks for it) and is shared by the whole session, so tests keep apart by
unique names (``kube_namespace``, ``unique_name``) rather than by fresh servers.
When such a test fails, the tail of the etcd and kube-apiserver logs is added to
its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CRD_DIR, Cluster
from tests.servers.managed import up_while_used

_CLUSTER_FIXTURES = {"control_plane", "cluster", "kube_namespace"}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on 127.0.0.1, started once per session."""
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"))
    yield from up_while_used(cp, cp.start, cp.stop)


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Cluster:
    """Admin helpers on the session's control plane; the ome.io CRDs are established."""
    c = Cluster(control_plane)
    c.apply_manifests([CRD_DIR])
    return c


@pytest.fixture
def kube_namespace(cluster: Cluster) -> str:
    """A fresh namespace for one test."""
    return cluster.make_namespace()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
        cp = getattr(item, "funcargs", {}).get("control_plane")
        if cp is None and "cluster" in getattr(item, "funcargs", {}):
            cp = item.funcargs["cluster"].control_plane  # type: ignore[attr-defined]
        if cp is not None:
            report.sections.append(("control plane logs", cp.log_tail()))
    return report
