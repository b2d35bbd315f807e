"""``ome-agent controller`` on Kubernetes (docs/architecture.md, layer 5).

The node agents' ConfigMaps become each model resource's ``.status``; the pure
decisions (aggregation, back-fill, deletion, pvc://) are in
:mod:`ome_agent.fleet`, this package does the I/O around them:

- ``leader``: one active replica, through a coordination.k8s.io Lease;
- ``watches``: what is watched (the node agent's informers, with label selectors);
- ``cache``: the informer caches, and which model keys each change touches;
- ``controller``: the work queue and the reconcile of one model key;
- ``writer``: status / spec / finalizer patches and deletes;
- ``events``: Kubernetes Events on state transitions, deduplicated;
- ``pvcjobs``: the inspection Job of ``pvc://`` models;
- ``main``: the process (signals, health, Lease → work).
"""
