"""``spec.storage.parameters.cache_dir`` on the real API server, with an agent process
and the local Hub: the node's ConfigMap entry names the Hugging Face cache's snapshot
folder, huggingface_hub loads the model from the cache offline, and deleting the
resource removes the repo's folder from the cache, keeping the cache folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import snapshot_download

from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import API, agent_on, cluster_model, entry, wait_for
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

SEL = "ome-test/node"
CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}).encode()


def test_cache_dir_model_reports_its_snapshot_and_leaves_the_cache_when_deleted(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    cache = tmp_path / "models" / "hf_cache"
    cache.parent.mkdir()
    name = unique_name("cached")
    weights = os.urandom(2 * 1024 * 1024)
    with HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024) as hub:
        commit = hub.add_repo("org/cached", {"config.json": CONFIG, "model.safetensors": weights})
        agent = agent_on(
            cluster, namespace, node, tmp_path, env={"HF_ENDPOINT": hub.endpoint}
        ).start()
        try:
            cluster.apply(
                cluster_model(
                    name, "hf://org/cached", nodeSelector={SEL: node},
                    parameters={"cache_dir": str(cache)},
                )
            )  # fmt: skip
            key = f"clusterbasemodel.{name}"
            ready = wait_for(
                lambda: (
                    (e := entry(cluster, namespace, node, key)) and e["status"] == "Ready" and e
                ),
                90,
                f"{name} Ready:\n{agent.log()[-3000:]}",
            )
            snapshot = cache / "models--org--cached" / "snapshots" / commit
            assert ready["path"] == str(snapshot)
            assert ready["config"]["artifact"]["sha"] == commit
            assert snapshot_download("org/cached", cache_dir=cache, local_files_only=True) == str(
                snapshot
            )
            assert (snapshot / "model.safetensors").read_bytes() == weights

            cluster.delete(API, "ClusterBaseModel", name)
            wait_for(
                lambda: not (cache / "models--org--cached").exists(),
                60,
                f"the repo's folder removed:\n{agent.log()[-3000:]}",
            )
            wait_for(lambda: entry(cluster, namespace, node, key) is None, 30, "entry withdrawn")
            assert cache.is_dir(), "the cache folder itself stays"
        finally:
            agent.stop()
