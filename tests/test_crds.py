"""deploy/crds/ on the real API server, and the pydantic models of ``ome_agent.api``.

Every YAML example of the reference documentation (tests/data/reference-examples/)
must be accepted by the API server with nothing pruned, and parsed by
``parse_resource``; both spellings of the fields where OME and the documentation
differ (docs/architecture.md, "Field names") work; ill-typed fields are rejected by
the server with the field named.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from ome_agent.api import parse_resource
from tests.cluster.kube import CRD_DIR, Cluster, load_manifests, unique_name

EXAMPLES = Path(__file__).parent / "data" / "reference-examples"
GV = "ome.io/v1beta1"
OME_KINDS = {"BaseModel", "ClusterBaseModel", "FineTunedWeight"}


def _unique(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy under a fresh name: the session's API server is shared, and two
    examples use the same cluster-scoped name."""
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = unique_name(doc["metadata"]["name"])
    return doc


def _model(kind: str, spec: dict[str, Any], name: str = "m") -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": kind,
        "metadata": {"name": unique_name(name)},
        "spec": spec,
    }


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_reference_example_accepted_unpruned_and_parsed(
    cluster: Cluster, kube_namespace: str, path: Path
) -> None:
    docs = load_manifests([path])
    assert docs, path
    for doc in map(_unique, docs):
        status = doc.pop("status", None)
        stored = cluster.create(doc, kube_namespace)
        name, kind = stored["metadata"]["name"], doc["kind"]
        ns = stored["metadata"].get("namespace")
        back = cluster.get(doc["apiVersion"], kind, name, ns)
        for field in ("spec", "data"):
            assert back.get(field) == doc.get(field), f"{path.name}: {field} changed on the server"
        for field in ("labels", "annotations"):
            assert back["metadata"].get(field) == doc["metadata"].get(field)
        if status is not None:
            back["status"] = status
            cluster.request("PUT", cluster.path(GV, kind, ns, name) + "/status", back)
            assert cluster.get(GV, kind, name, ns)["status"] == status
        if kind in OME_KINDS:
            resource = parse_resource(back)
            assert resource.kind == kind
            assert resource.name == name
            assert resource.namespace == (kube_namespace if kind == "BaseModel" else None)


def test_examples_parse_from_files_with_expected_values() -> None:
    """The manifests as written (standalone mode reads them so) give the values the
    documentation describes."""
    by_file = {p.stem: load_manifests([p]) for p in EXAMPLES.glob("*.yaml")}
    basic = parse_resource(by_file["01-basic-example"][0])
    assert basic.storage is not None
    assert basic.storage.secret_name == "oci-credentials"  # noqa: S105 - a Secret name
    assert basic.storage.auth == "InstancePrincipal"
    assert basic.storage.node_selector == {"node.kubernetes.io/instance-type": "GPU.A100.4"}
    assert basic.spec.max_tokens == 8192  # type: ignore[union-attr]

    complete = parse_resource(by_file["12-complete-example"][0])
    assert complete.spec.quantization == "fp8"  # type: ignore[union-attr]
    assert '"top_p": 0.9' in complete.spec.model_configuration  # type: ignore[union-attr]
    assert complete.storage is not None
    affinity = complete.storage.node_affinity
    assert affinity is not None
    required = affinity.required_during_scheduling_ignored_during_execution
    assert required is not None
    gt = required.node_selector_terms[0].match_expressions[1]
    assert (gt.operator, gt.values) == ("Gt", ["200Gi"])

    custom = parse_resource(by_file["08-skip-config-parsing"][0])
    assert custom.skip_config_parsing
    assert custom.spec.model_capabilities == ["TEXT_GENERATION"]  # type: ignore[union-attr]

    private = parse_resource(by_file["11-custom-secret-key"][1])
    assert private.storage is not None
    assert (private.storage.secret_name, private.storage.secret_key) == (
        "hf-credentials",
        "access-token",
    )

    ftw = parse_resource(by_file["13-finetunedweight"][0])
    assert ftw.spec.base_model_ref.name == "llama-3-70b-instruct"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "storage",
    [
        {"storageUri": "hf://o/m", "key": "s", "parameters": {"auth": "UserPrincipal"}},
        {"storageUri": "hf://o/m", "storageKey": "s", "parameters": {"auth_type": "UserPrincipal"}},
    ],
    ids=["ome", "reference-doc"],
)
def test_both_spellings(cluster: Cluster, storage: dict[str, Any]) -> None:
    doc = _model("ClusterBaseModel", {"storage": storage})
    back = cluster.create(doc)
    assert back["spec"] == doc["spec"]
    parsed = parse_resource(back)
    assert parsed.storage is not None
    assert (parsed.storage.secret_name, parsed.storage.auth) == ("s", "UserPrincipal")


@pytest.mark.parametrize(
    "value",
    [{"temperature": 0.7, "nested": {"a": [1, 2]}}, '{"temperature": 0.7}\n'],
    ids=["object", "string"],
)
def test_raw_extension_object_or_string(cluster: Cluster, value: Any) -> None:
    bm = cluster.create(_model("ClusterBaseModel", {"modelConfiguration": value}))
    assert bm["spec"]["modelConfiguration"] == value
    ftw = cluster.create(
        _model(
            "FineTunedWeight",
            {"baseModelRef": {"name": "x"}, "hyperParameters": value, "configuration": value},
        )
    )
    assert ftw["spec"]["hyperParameters"] == value
    assert ftw["spec"]["configuration"] == value


def test_free_text_quantization_and_capabilities(cluster: Cluster) -> None:
    for q in (
        "fp8",
        "fbgemm_fp8",
        "int4",
        "awq",
        "gptq",
        "mxfp4",
        "compressed-tensors",
        "bitsandbytes",
        "a-scheme-from-next-year",
    ):
        spec = {"quantization": q, "modelCapabilities": ["text-to-text", "TEXT_TO_TEXT", "x"]}
        assert cluster.create(_model("ClusterBaseModel", spec))["spec"] == spec


def test_ome_only_fields_round_trip(cluster: Cluster, kube_namespace: str) -> None:
    spec = {
        "compartmentID": "ocid1.compartment.oc1..x",
        "apiCapabilities": ["OPENAI_V1_CHAT_COMPLETIONS"],
        "servingMode": ["On-demand"],
        "modelFormat": {"name": "safetensors", "version": "1", "operator": "Equal", "weight": 1},
        "storage": {
            "storageUri": "hf://o/m",
            "downloadPolicy": "ReuseIfExists",
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["n1"]}
                            ]
                        }
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "preference": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                    }
                ],
            },
        },
    }
    back = cluster.create(_model("BaseModel", spec), kube_namespace)
    assert back["spec"] == spec
    parse_resource(back)


def test_unknown_fields_are_pruned(cluster: Cluster) -> None:
    """The schemas are structural: a misspelt field is dropped, not stored (which is
    also why the round-trip comparisons above can fail)."""
    back = cluster.create(
        _model("ClusterBaseModel", {"vendr": "meta", "storage": {"storageURI": "hf://o/m"}})
    )
    assert back["spec"] == {"storage": {}}


def _affinity(requirement: dict[str, Any]) -> dict[str, Any]:
    terms = [{"matchExpressions": [requirement]}]
    return {
        "storage": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"maxTokens": "8192"}, "spec.maxTokens"),
        ({"disabled": "false"}, "spec.disabled"),
        ({"modelCapabilities": "text-to-text"}, "spec.modelCapabilities"),
        ({"storage": {"parameters": {"region": 1}}}, "spec.storage.parameters.region"),
        ({"storage": {"nodeSelector": {"gpu": True}}}, "spec.storage.nodeSelector.gpu"),
        (
            {
                "storage": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "k"}]}]
                        }
                    }
                }
            },
            "operator",
        ),
        ({"storage": {"downloadPolicy": "Sometimes"}}, "spec.storage.downloadPolicy"),
        (_affinity({"key": "k", "operator": "Greater", "values": ["1"]}), "operator"),
        (_affinity({"key": "k", "operator": "Gt", "values": ["1", "2"]}), "exactly one value"),
        (_affinity({"key": "k", "operator": "In"}), "one or more values"),
        (_affinity({"key": "k", "operator": "Exists", "values": ["x"]}), "none for Exists"),
    ],
    ids=[
        "maxTokens-string",
        "disabled-string",
        "capabilities-string",
        "parameters-int",
        "nodeSelector-bool",
        "requirement-without-operator",
        "downloadPolicy-enum",
        "unknown-operator",
        "Gt-two-values",
        "In-no-values",
        "Exists-with-values",
    ],
)
def test_invalid_objects_rejected(cluster: Cluster, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as e:
        cluster.create(_model("ClusterBaseModel", spec))
    assert e.value.status == 422
    assert field in (e.value.body or "")


def test_printer_columns(cluster: Cluster) -> None:
    doc = _model("ClusterBaseModel", {"vendor": "meta", "modelParameterSize": "8.03B"})
    stored = cluster.create(doc)
    name = stored["metadata"]["name"]
    stored["status"] = {
        "state": "Ready",
        "nodesReady": ["a", "b"],
        "readyNodeCount": 2,
        "eligibleNodeCount": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "NodesNotReady",
                "message": "2/3 nodes ready: a, b",
                "lastTransitionTime": "2026-11-27T10:00:00Z",
            }
        ],
    }
    cluster.request("PUT", cluster.path(GV, "ClusterBaseModel", None, name) + "/status", stored)
    table = cluster.request(
        "GET",
        cluster.path(GV, "ClusterBaseModel", None, name),
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    columns = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    # is it ready (on how many of the nodes that should hold it), where, how big
    assert columns == ["Name", "Vendor", "Size", "State", "Ready", "Eligible", "Nodes", "Age"]
    every = [c["name"] for c in table["columnDefinitions"]]  # cells hold wide ones too
    cells = dict(zip(every, table["rows"][0]["cells"], strict=True))
    assert [cells[c] for c in columns[:-1]] == [
        name, "meta", "8.03B", "Ready", 2, 3, "2/3 nodes ready: a, b",
    ]  # fmt: skip


def test_short_names_and_categories(cluster: Cluster) -> None:
    resources = {r["name"]: r for r in cluster.request("GET", f"/apis/{GV}")["resources"]}
    for plural, short in (
        ("basemodels", "bm"),
        ("clusterbasemodels", "cbm"),
        ("finetunedweights", "ftw"),
    ):
        assert resources[plural]["shortNames"] == [short]
        assert "ome" in resources[plural]["categories"]
        assert f"{plural}/status" in resources


def test_basemodel_and_clusterbasemodel_share_one_schema() -> None:
    def schema(name: str) -> Any:
        (doc,) = yaml.safe_load_all((CRD_DIR / name).read_text())
        version = doc["spec"]["versions"][0]
        return version["schema"]["openAPIV3Schema"]["properties"], version[
            "additionalPrinterColumns"
        ]

    assert schema("ome.io_basemodels.yaml") == schema("ome.io_clusterbasemodels.yaml")
