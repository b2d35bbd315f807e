"""ome-agent: puts AI models onto Kubernetes nodes, verified and described.

Package map (DESIGN.md §1): ``_core`` is the Rust engine; ``sources`` turns a
storage URI into a list of files to fetch; ``transfer`` runs those fetches
through the engine; ``tuning`` is the settings sweep behind ``ome-agent bench``;
``errors`` maps failures to exit codes; ``cli`` is the command surface.
"""

from ome_agent._core import __version__

__all__ = ["__version__"]
