"""Standalone mode: the node agent without a cluster (docs/architecture.md, layer 5).

Resources come from YAML/JSON manifests in a directory, node labels from
``--node-labels``, credentials from the environment, and reports go to a JSON state
file that ``ome-agent status`` reads. The reconcile core is the same one the
Kubernetes adapter drives.
"""

from ome_agent.adapters.standalone.agent import run_standalone
from ome_agent.adapters.standalone.manifests import load_manifests, parse_node_labels
from ome_agent.adapters.standalone.secrets import StandaloneSecretReader
from ome_agent.adapters.standalone.state import StateFileReporter, read_state

__all__ = [
    "StandaloneSecretReader",
    "StateFileReporter",
    "load_manifests",
    "parse_node_labels",
    "read_state",
    "run_standalone",
]
