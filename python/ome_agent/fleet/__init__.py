"""Controller mode: the cluster-wide view of the node agents' reports (docs/architecture.md).

Pure decisions, no I/O, called by the Kubernetes side of the controller (watches,
Lease, writes) and by ``ome-agent status`` in cluster mode:

- :mod:`.status` — per-node ConfigMap entries → a resource's ``.status``;
- :mod:`.backfill` — a node's discovered config → a merge patch of the empty spec fields;
- :mod:`.deletion` — when the finalizer may go (every live node confirmed, or timeout);
- :mod:`.pvc` — ``pvc://`` models: the inspection Job, its result, their ``.status``;
- :mod:`.view` — the models by nodes table for people.
"""
