"""Transfer layer: runs a resolved source's files through the Rust engine.

``settings`` (the tunables every entry point shares), ``engine`` (the one Rust engine of a
process), ``sweep`` (the settings sweep behind ``ome-agent bench``), ``confine`` (names stay in
DEST), ``runner`` (parallel files, progress, cancel), ``failures`` (engine errors →
messages), ``summary`` (what ``--json`` prints) and ``pull`` (the whole sequence).
"""

from __future__ import annotations

from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.progress import Snapshot
from ome_agent.transfer.pull import pull
from ome_agent.transfer.settings import TransferSettings, parse_size
from ome_agent.transfer.summary import FileSummary, PullSummary

__all__ = [
    "FileSummary",
    "PullSummary",
    "Snapshot",
    "TransferSettings",
    "build_engine",
    "parse_size",
    "pull",
]
