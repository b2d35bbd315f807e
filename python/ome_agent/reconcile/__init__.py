"""The reconcile core: which models belong on this node and what to do next (DESIGN.md §1, layer 4).

Pure decisions and the work that follows from them, independent of Kubernetes; adapters
(``ome_agent.adapters``) feed it resources and node labels and carry its reports out.
"""
