"""The Kubernetes adapter of the node agent (docs/architecture.md, layer 5).

It feeds the reconcile core from the API server (list + watch of the model resources
and of the agent's own Node), carries the core's reports back out (the per-node
ConfigMap in OME's format and the Node's labels), and reads the Secrets models name.

- ``client``: the authenticated API client, one request path, counted
  (``observability.kube_metrics``).
- ``informer``: list + watch with resume, relist on 410 Gone, backoff on errors.
- ``reporter``: the ConfigMap entries and Node labels, coalesced and conflict-safe.
- ``secrets``: one credential by name (get only).
- ``agent``: wires them to the reconcile core; ``ome-agent run`` calls :func:`run_cluster`.
"""
