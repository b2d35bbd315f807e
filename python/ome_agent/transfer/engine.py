"""The Rust engine, built once per process from the transfer settings (transfer layer).

One engine per process so its connection cap holds over every file of every model;
``pull``, ``inspect`` (remote), ``bench`` and the node agent all build it here.
"""

from __future__ import annotations

from ome_agent import __version__, _core
from ome_agent.errors import BadInput
from ome_agent.transfer.settings import TransferSettings


def build_engine(settings: TransferSettings) -> _core.Engine:
    """One engine per process: its connection cap then holds over all files."""
    try:
        return _core.Engine(**settings.engine_kwargs(), user_agent=f"ome-agent/{__version__}")
    except (ValueError, OSError, _core.EngineError) as e:
        if settings.ca_bundle is not None:
            raise BadInput(
                f"--ca-bundle {settings.ca_bundle}: cannot use it ({e}); give a PEM file of "
                "CA certificates"
            ) from None
        raise
