"""Adapters: how the reconcile core meets the outside world (docs/architecture.md, layer 5).

``kube`` watches the API server and writes ConfigMap entries and node labels;
``standalone`` reads manifests from a directory and writes a local state file. Both
feed the same :class:`~ome_agent.reconcile.core.Reconciler` and implement the ports
of :mod:`ome_agent.reconcile.ports`.
"""
