"""Pytest fixtures for the local Hugging Face Hub (tests/servers/hf_hub_server.py).

``hf_hub`` starts a fresh Hub + CDN pair per test (cheap: two threads) so request
logs and repos never leak between tests; ``hf_env`` points ``HF_ENDPOINT`` at it
and clears any ``HF_TOKEN`` from the developer's shell.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.hf_hub_server import HubServer

HF_TEST_TOKEN = "hf_test_secret_token_0123456789"  # noqa: S105 - a fake, for the local Hub only


@pytest.fixture
def hf_hub() -> Iterator[HubServer]:
    with HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024 * 1024) as server:
        yield server


@pytest.fixture
def hf_env(hf_hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    monkeypatch.setenv("HF_ENDPOINT", hf_hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return hf_hub
