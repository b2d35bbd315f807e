"""The reconcile core: which models belong on this node, what to do next (docs/architecture.md).

Pure decisions and the work that follows from them, independent of Kubernetes; adapters
(``ome_agent.adapters``) feed it resources and node labels and carry its reports out.
"""
