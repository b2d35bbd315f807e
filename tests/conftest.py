"""Shared pytest configuration: fixtures live in tests/servers/ modules, one per server."""

pytest_plugins = [
    "tests.servers.http_fixtures",
    "tests.servers.hf_fixtures",
    "tests.servers.tmpfs",
    "tests.cluster.fixtures",
]
