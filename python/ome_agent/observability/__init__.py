"""What the node agent tells operators about itself: Prometheus metrics (cross-cutting;
fed by the reconcile core, layer 4, and served over HTTP by the adapters, layer 5)."""
