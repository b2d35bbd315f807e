"""ome-agent: puts AI models onto Kubernetes nodes, verified and described.

Package map, bottom layer first (docs/architecture.md has the rules):

- ``_core``: the Rust engine (downloads, digests, safetensors headers);
- ``errors``, ``observability``, ``durable``, ``names``: typed failures, metrics, probes
  and log lines, atomic file writes, bounded file names;
- ``api``: the resources users declare, parsed once;
- ``sources``: a storage URI → the files to fetch, listed by the vendors' SDKs;
- ``transfer``: those fetches run through the engine (and ``transfer.sweep``, the
  settings sweep behind ``ome-agent bench``);
- ``discovery``: config.json + safetensors headers → metadata;
- ``reconcile``: the node agent's core, which models belong here and what to do next;
- ``wire``: OME's names and ConfigMap entries (docs/wire.md);
- ``fleet``: the cluster-wide decisions over every node's reports (status, back-fill,
  deletion, pvc://), run by ``ome-agent controller`` and ``status``;
- ``adapters``: the core on Kubernetes (``kube``) or on a folder of manifests
  (``standalone``);
- ``cli``: the command surface.
"""

from ome_agent._core import __version__

__all__ = ["__version__"]
