"""Least privilege, from inside the agent's pod: with the Node authorizer,
NodeRestriction and the chart's ValidatingAdmissionPolicy in force, the pod's own
token (pod- and node-bound, as the kubelet mounts it) may set a model label on its own
Node, and nothing else of what it is asked here: no label on another Node, no other
label on its own, no listing of Secrets, no ConfigMaps outside its namespace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.kube import unique_name
from tests.node.conftest import NAMESPACE, Release

pytestmark = pytest.mark.node

# runs in the agent container (python3 of the image, stdlib only): each call with the
# mounted token, answering the HTTP status
PROBE = """
import json, os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
env = os.environ
api = "https://%s:%s" % (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
token = open(sa + "/token").read()
def call(method, path, body):
    req = urllib.request.Request(api + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token,
                 "Content-Type": "application/merge-patch+json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
print(json.dumps({k: call(*v) for k, v in json.loads(sys.argv[1]).items()}))
"""


def labels(**kv: str | None) -> dict[str, Any]:
    return {"metadata": {"labels": kv}}


def test_agent_token_reaches_only_its_own_node_labels(release: Release) -> None:
    node = release.node
    other = unique_name("other-node")
    # a Node object without a kubelet; tainted, so the DaemonSet puts no pod there
    node.core().create_node(
        {
            "metadata": {"name": other},
            "spec": {"taints": [{"key": "example.com/no-kubelet", "effect": "NoSchedule"}]},
        }
    )
    model_label = f"models.ome.io/clusterbasemodel.{unique_name('probe')}"
    calls = {
        # control: the token works, and may do what the agent does
        "own_model_label": [
            "PATCH",
            f"/api/v1/nodes/{node.name}",
            labels(**{model_label: "Ready"}),
        ],
        "own_model_label_removed": [
            "PATCH",
            f"/api/v1/nodes/{node.name}",
            labels(**{model_label: None}),
        ],
        "other_node_model_label": [
            "PATCH",
            f"/api/v1/nodes/{other}",
            labels(**{model_label: "Ready"}),
        ],
        "own_node_foreign_label": [
            "PATCH",
            f"/api/v1/nodes/{node.name}",
            labels(**{"example.com/gpu": "none"}),
        ],
        "list_secrets": ["GET", "/api/v1/secrets", None],
        "configmaps_elsewhere": ["GET", "/api/v1/namespaces/default/configmaps", None],
    }
    pod = node.kubectl(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=node-agent",
        "--field-selector", f"spec.nodeName={node.name}",
        "-o", "jsonpath={.items[0].metadata.name}",
    )  # fmt: skip
    try:
        out = node.kubectl(
            "-n", NAMESPACE, "exec", pod, "-c", "agent", "--",
            "python3", "-c", PROBE, json.dumps(calls),
        )  # fmt: skip
    finally:
        node.core().delete_node(other)
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {
        "own_model_label": 200,
        "own_model_label_removed": 200,
        "other_node_model_label": 403,
        "own_node_foreign_label": 403,
        "list_secrets": 403,
        "configmaps_elsewhere": 403,
    }
    assert "example.com/gpu" not in node.node_labels()
    assert model_label not in node.node_labels()
