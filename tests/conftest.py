"""Shared pytest configuration: fixtures live in tests/servers/ modules, one per server.

Every agent and controller the tests run, in this process or as a child process,
inherits ``OME_AGENT_WIRE_SCHEMA``: each ConfigMap entry is validated against OME's
schema before it is written, so an entry of the wrong shape fails the test that made it.
"""

import os
from pathlib import Path

from ome_agent.wire.conformance import ENV as WIRE_SCHEMA_ENV

WIRE_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "ome-modelentry.schema.json"
os.environ[WIRE_SCHEMA_ENV] = str(WIRE_SCHEMA)

pytest_plugins = [
    "tests.servers.http_fixtures",
    "tests.servers.hf_fixtures",
    "tests.servers.tmpfs",
    "tests.cluster.fixtures",
]
