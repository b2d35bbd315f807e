"""Adopting a node OME's model agent filled, on the real API server.

The node is set up as OME's agent leaves it: each model's files directly at its
``storage.path``, an entry in OME's shape (no kind, namespace or uid; checked against
docs/ome-modelentry.schema.json) saying Ready in the node's ConfigMap, the
``models.ome.io/...`` label Ready, no ``models.ome/<uid>`` label and no manifest of
ours. The agent starts and must keep every file, fetching no byte of an intact model
(the local Hub's request log proves it), downloading again only the one file that
does not match the source (and saying which), while the Node label and the
ConfigMap entry, both watched throughout, never leave Ready.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ome_agent.wire import naming
from tests.cluster.kube import Cluster, unique_name
from tests.conftest import WIRE_SCHEMA
from tests.data import hf_config
from tests.data.safetensors_fixtures import shard_bytes
from tests.integration.agent_process import (
    EntryRecorder,
    NodeLabelRecorder,
    agent_on,
    cluster_model,
    entry,
    node_labels,
)
from tests.servers.hf_hub_server import HubServer

SEL = "ome-test/adopt"
CONFIG = hf_config("llama3_1")


def ome_entry(name: str) -> str:
    """A Ready entry as OME's agent writes it: only the members of its Go struct."""
    import jsonschema

    value: dict[str, Any] = {
        "name": name,
        "status": "Ready",
        "config": {
            "modelType": "llama",
            "modelArchitecture": "LlamaForCausalLM",
            "modelFramework": {"name": "transformers", "version": "4.43.0"},
            "modelFormat": {"name": "safetensors", "version": "1.0.0"},
            "modelParameterSize": "2.05K",
            "maxTokens": CONFIG["max_position_embeddings"],
            "artifact": {"sha": "0" * 40, "parentPath": {}, "childrenPaths": []},
        },
    }
    schema = json.loads(WIRE_SCHEMA.read_text())
    jsonschema.validate(value, schema)
    assert set(value) <= set(schema["properties"])
    return json.dumps(value)


def test_adopts_omes_files_fetching_only_what_differs_without_flap(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    root = tmp_path / "models"
    shard = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})
    files = {
        "config.json": json.dumps(CONFIG).encode(),  # a git blob: sha1 checked
        "model.safetensors": shard,  # LFS: sha256 checked
        "tokenizer.json": b'{"version": "1.0"}',
    }
    hub = HubServer(lfs_threshold=1024).start()
    try:
        intact, damaged = unique_name("intact"), unique_name("damaged")
        uids = {}
        for name in (intact, damaged):
            hub.add_repo(f"org/{name}", files)
            for rel, body in files.items():
                (root / name).mkdir(parents=True, exist_ok=True)
                (root / name / rel).write_bytes(body)
            created = cluster.apply(
                cluster_model(
                    name, f"hf://org/{name}", path=str(root / name), nodeSelector={SEL: node}
                )
            )
            uids[name] = created["metadata"]["uid"]
        # a bit flipped in one file of the second model: same size, other sha256
        bad = bytearray(shard)
        bad[-1] ^= 0xFF
        (root / damaged / "model.safetensors").write_bytes(bytes(bad))

        keys = [f"clusterbasemodel.{n}" for n in (intact, damaged)]
        cluster.core.create_namespaced_config_map(
            namespace,
            {
                "metadata": naming.config_map_metadata(node, namespace),
                "data": {f"clusterbasemodel.{n}": ome_entry(n) for n in (intact, damaged)},
            },
        )
        ome_labels = [f"models.ome.io/{k}" for k in keys]
        cluster.label_node(node, dict.fromkeys(ome_labels, "Ready"))
        uid_labels = [naming.uid_label_key(u) for u in uids.values()]
        labels = NodeLabelRecorder(cluster, node, ome_labels + uid_labels)
        entries = EntryRecorder(cluster, namespace, node, keys)
        agent = agent_on(cluster, namespace, node, tmp_path, env={"HF_ENDPOINT": hub.endpoint})
        try:  # whatever fails from here, the process is stopped
            agent.start()
            for k in keys:  # our Ready entry (with our manifest's digest) replaces OME's
                agent.wait_running(
                    lambda k=k: "manifestDigest" in (entry(cluster, namespace, node, k) or {}),
                    60,
                    f"{k} adopted:\n{agent.log()[-3000:]}",
                )
            agent.wait_running(
                lambda: all(node_labels(cluster, node).get(u) == "Ready" for u in uid_labels),
                30,
                "models.ome/<uid> labels",
            )
            labels.stop()
            entries.stop()
            log = agent.log()
        finally:
            assert agent.stop() == 0, agent.log()[-3000:]
    finally:
        hub.stop()

    # Ready throughout: OME's label and the entry never showed another state
    for k in ome_labels:
        assert set(labels.seen[k]) == {"Ready"}, (k, labels.seen[k])
    for k in uid_labels:
        assert set(labels.seen[k]) <= {None, "Ready"}, (k, labels.seen[k])
    for k in keys:
        assert set(entries.seen[k]) == {"Ready"}, (k, entries.seen[k])

    # the intact model: listed, not one byte fetched; the damaged one: its one file
    fetched = [r["path"] for r in hub.requests("hub") if "/resolve/" in r["path"]]
    assert fetched, "the damaged file was not downloaded again"
    assert {p.rsplit("/", 1)[1] for p in fetched} == {"model.safetensors"}, fetched
    assert all(p.startswith(f"/org/{damaged}/resolve/") for p in fetched), fetched
    assert hub.requests("cdn"), "the LFS file comes from the CDN"
    assert (root / damaged / "model.safetensors").read_bytes() == shard
    assert "model.safetensors: its sha256 differs" in log
    assert log.count("downloading again") == 1

    # each model now has our manifest, with the source's digests checked
    for name in (intact, damaged):
        manifest = json.loads(
            (root / ".ome-agent" / "manifests" / f"ClusterBaseModel._.{name}.json").read_text()
        )
        verified = {f["path"]: f["verified"] for f in manifest["files"]}
        assert verified["model.safetensors"] == ["size", "sha256"]
        assert verified["config.json"] == ["size", "git-sha1"]
        assert manifest["commit"] == hub.commit(f"org/{name}")
        e = entry(cluster, namespace, node, f"clusterbasemodel.{name}")
        assert e is not None
        assert e["config"]["modelArchitecture"] == "LlamaForCausalLM"
        assert e["uid"] == uids[name]
