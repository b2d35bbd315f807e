"""Node eligibility: Kubernetes' nodeSelector / required nodeAffinity rules, plus quantities
in Gt/Lt. Cases follow the Kubernetes docs (assign pods to nodes) and the reference doc."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ome_agent.api import StorageSpec
from ome_agent.reconcile.eligibility import eligibility

NODE = "gpu-node-1"
LABELS = {
    "node.kubernetes.io/instance-type": "GPU.A100.4",
    "models.ome.io/storage-tier": "nvme",
    "models.ome.io/available-storage": "500Gi",
    "accelerator.nvidia.com/gpu-product": "A100-SXM4-80GB",
    "topology.kubernetes.io/zone": "antarctica-east1",
    "gpu-count": "8",
    "kubernetes.io/hostname": NODE,
}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def term(
    *expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"matchExpressions": list(expressions)}
    if fields is not None:
        out["matchFields"] = fields
    return out


CASES: list[tuple[str, dict[str, Any] | None, bool]] = [
    ("no storage", None, True),
    ("no constraints", {}, True),
    ("nodeSelector matches", {"nodeSelector": {"models.ome.io/storage-tier": "nvme"}}, True),
    (
        "nodeSelector all must match",
        {"nodeSelector": {"models.ome.io/storage-tier": "nvme", "gpu-count": "4"}},
        False,
    ),
    ("nodeSelector absent label", {"nodeSelector": {"disktype": "ssd"}}, False),
    ("nodeSelector empty value vs absent", {"nodeSelector": {"disktype": ""}}, False),
    ("In", required(term(expr("topology.kubernetes.io/zone", "In", "antarctica-east1"))), True),
    (
        "In miss",
        required(term(expr("topology.kubernetes.io/zone", "In", "antarctica-west1"))),
        False,
    ),
    ("In absent label", required(term(expr("disktype", "In", "ssd"))), False),
    ("NotIn", required(term(expr("topology.kubernetes.io/zone", "NotIn", "x", "y"))), True),
    ("NotIn hit", required(term(expr("gpu-count", "NotIn", "8"))), False),
    ("NotIn absent label matches", required(term(expr("disktype", "NotIn", "hdd"))), True),
    ("Exists", required(term(expr("gpu-count", "Exists"))), True),
    ("Exists absent", required(term(expr("disktype", "Exists"))), False),
    ("DoesNotExist", required(term(expr("disktype", "DoesNotExist"))), True),
    ("DoesNotExist present", required(term(expr("gpu-count", "DoesNotExist"))), False),
    ("Gt integer", required(term(expr("gpu-count", "Gt", "4"))), True),
    ("Gt integer equal", required(term(expr("gpu-count", "Gt", "8"))), False),
    ("Lt integer", required(term(expr("gpu-count", "Lt", "16"))), True),
    ("Lt integer equal", required(term(expr("gpu-count", "Lt", "8"))), False),
    ("Gt quantity", required(term(expr("models.ome.io/available-storage", "Gt", "200Gi"))), True),
    (
        "Gt quantity miss",
        required(term(expr("models.ome.io/available-storage", "Gt", "500Gi"))),
        False,
    ),
    ("Gt mixed units", required(term(expr("models.ome.io/available-storage", "Gt", "1T"))), False),
    ("Lt mixed units", required(term(expr("models.ome.io/available-storage", "Lt", "1T"))), True),
    ("Gt non-numeric label", required(term(expr("topology.kubernetes.io/zone", "Gt", "1"))), False),
    ("Lt non-numeric label", required(term(expr("topology.kubernetes.io/zone", "Lt", "1"))), False),
    ("Gt absent label", required(term(expr("disktype", "Gt", "1"))), False),
    ("Gt two values invalid", required(term(expr("gpu-count", "Gt", "1", "2"))), False),
    ("Gt bound not a number", required(term(expr("gpu-count", "Gt", "many"))), False),
    ("In without values invalid", required(term(expr("gpu-count", "In"))), False),
    ("Exists with values invalid", required(term(expr("gpu-count", "Exists", "8"))), False),
    (
        "expressions of a term are ANDed",
        required(term(expr("gpu-count", "In", "8"), expr("disktype", "In", "ssd"))),
        False,
    ),
    (
        "terms are ORed",
        required(term(expr("disktype", "In", "ssd")), term(expr("gpu-count", "In", "8"))),
        True,
    ),
    ("zero terms match nothing", required(), False),
    ("an empty term matches nothing", required({}), False),
    (
        "an empty term does not spoil another",
        required({}, term(expr("gpu-count", "Exists"))),
        True,
    ),
    (
        "an invalid term does not spoil another",
        required(term(expr("gpu-count", "Gt", "x")), term(expr("gpu-count", "Gt", "1"))),
        True,
    ),
    ("required is null", {"nodeAffinity": {}}, True),
    (
        "preferred terms never decide",
        {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": term(expr("disktype", "In", "ssd"))}
                ]
            }
        },
        True,
    ),
    (
        "matchFields metadata.name In",
        required(term(fields=[expr("metadata.name", "In", NODE)])),
        True,
    ),
    (
        "matchFields metadata.name In other",
        required(term(fields=[expr("metadata.name", "In", "gpu-node-2")])),
        False,
    ),
    (
        "matchFields metadata.name NotIn",
        required(term(fields=[expr("metadata.name", "NotIn", "gpu-node-2")])),
        True,
    ),
    (
        "matchFields metadata.name NotIn self",
        required(term(fields=[expr("metadata.name", "NotIn", NODE)])),
        False,
    ),
    (
        "matchFields with two values is invalid (Kubernetes allows one)",
        required(term(fields=[expr("metadata.name", "In", NODE, "gpu-node-2")])),
        False,
    ),
    (
        "matchFields on another field is invalid",
        required(term(fields=[expr("metadata.namespace", "In", "x")])),
        False,
    ),
    (
        "matchFields and matchExpressions are ANDed",
        required(
            term(expr("disktype", "Exists"), fields=[expr("metadata.name", "In", NODE)]),
        ),
        False,
    ),
    (
        "nodeSelector and affinity both apply",
        {"nodeSelector": {"disktype": "ssd"}, **required(term(expr("gpu-count", "Exists")))},
        False,
    ),
]


@pytest.mark.parametrize(
    ("storage", "expected"),
    [pytest.param(s, e, id=name) for name, s, e in CASES],
)
def test_table(storage: dict[str, Any] | None, expected: bool) -> None:
    spec = None if storage is None else StorageSpec.model_validate(storage)
    result = eligibility(spec, NODE, LABELS)
    assert result.eligible is expected, result.reason
    assert bool(result.reason) is not expected  # a reason exactly when not eligible


REFERENCE_EXAMPLE = """
storageUri: "oci://n/ai-models/b/llm-store/o/meta/llama-3.1-70b-instruct/"
path: "/raid/models/llama-3.1-70b-instruct"
nodeSelector:
  node.kubernetes.io/instance-type: "GPU.A100.4"
  models.ome.io/storage-tier: "nvme"
nodeAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
      - matchExpressions:
          - key: "accelerator.nvidia.com/gpu-product"
            operator: In
            values: ["A100-SXM4-80GB", "H100-SXM5-80GB"]
          - key: "models.ome.io/available-storage"
            operator: Gt
            values: ["200Gi"]
"""


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, True),
        ({"models.ome.io/available-storage": "100Gi"}, False),
        ({"models.ome.io/available-storage": "1Ti"}, True),
        ({"models.ome.io/available-storage": "214748364801"}, True),  # 200Gi + 1, plain integer
        ({"models.ome.io/available-storage": "214748364800"}, False),  # exactly 200Gi
        ({"accelerator.nvidia.com/gpu-product": "H100-SXM5-80GB"}, True),
        ({"accelerator.nvidia.com/gpu-product": "L40S"}, False),
        ({"models.ome.io/storage-tier": "fast-ssd"}, False),
    ],
)
def test_reference_doc_example(changes: dict[str, str], expected: bool) -> None:
    spec = StorageSpec.model_validate(yaml.safe_load(REFERENCE_EXAMPLE))
    assert eligibility(spec, NODE, {**LABELS, **changes}).eligible is expected


def test_reference_doc_example_without_storage_label() -> None:
    spec = StorageSpec.model_validate(yaml.safe_load(REFERENCE_EXAMPLE))
    labels = {k: v for k, v in LABELS.items() if k != "models.ome.io/available-storage"}
    result = eligibility(spec, NODE, labels)
    assert not result.eligible
    assert "node has no label models.ome.io/available-storage" in result.reason


@pytest.mark.parametrize(
    ("storage", "reason"),
    [
        (
            {"nodeSelector": {"gpu": "a100"}},
            "nodeSelector gpu=a100: node has gpu=h100",
        ),
        (
            {"nodeSelector": {"disktype": "ssd"}},
            "nodeSelector disktype=ssd: node has no label disktype",
        ),
        (
            required(term(expr("gpu", "In", "a100", "a10"))),
            "no nodeAffinity term matched: gpu In [a100, a10]: node has gpu=h100",
        ),
        (
            required(term(expr("gpu", "DoesNotExist")), term(expr("disk", "Gt", "200Gi"))),
            "no nodeAffinity term matched: term 1: gpu DoesNotExist: node has gpu=h100; "
            "term 2: disk Gt [200Gi]: node has disk=100Gi",
        ),
        (
            required(term(expr("zone", "Lt", "3"))),
            "no nodeAffinity term matched: zone Lt [3]: node has zone=east, not a number",
        ),
        (
            required(term(expr("disk", "Gt", "lots"))),
            "no nodeAffinity term matched: disk Gt [lots]: invalid, 'lots' is not an integer "
            "or quantity",
        ),
        (
            required(term(fields=[expr("metadata.name", "In", "other")])),
            "no nodeAffinity term matched: matchFields metadata.name In [other]: node is n1",
        ),
        (required(), "nodeAffinity requires one of zero terms: nothing can match"),
        (required({}), "no nodeAffinity term matched: empty term (matches no node)"),
    ],
)
def test_reasons(storage: dict[str, Any], reason: str) -> None:
    labels = {"gpu": "h100", "disk": "100Gi", "zone": "east"}
    result = eligibility(StorageSpec.model_validate(storage), "n1", labels)
    assert not result.eligible
    assert result.reason == reason
