"""Credentials from Kubernetes Secrets (docs/architecture.md, layer 5: input of the sources).

Implements the reconcile core's ``SecretReader`` port: one ``get`` of the Secret a
model names, in the namespace the core asks for (the model's own; the agent's for
ClusterBaseModels). The agent's RBAC grants ``get`` on Secrets and nothing else, so
it never holds the cluster's Secrets in memory; nothing is cached here either, so a
rotated token is picked up on the next download. Errors name the namespace, Secret
and key, and the fix; never the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.reconcile.ports import CredentialError


class KubeSecretReader:
    """``SecretReader`` over the API server."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def read(self, namespace: str, name: str, key: str) -> str:
        where = f"Secret {namespace}/{name}"
        data = await self._data(namespace, name, key)
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise CredentialError(
                f"{where} has no key {key!r} (its keys: {keys}): add the key, or name "
                "the right one in the model's storage parameters (secretKey)"
            )
        return _decode(where, key, data[key])

    async def read_all(self, namespace: str, name: str) -> Mapping[str, str]:
        where = f"Secret {namespace}/{name}"
        data = await self._data(namespace, name, None)
        return {key: _decode(where, key, value) for key, value in data.items()}

    async def _data(self, namespace: str, name: str, key: str | None) -> Mapping[str, str]:
        try:
            secret = await self.kube.request(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", verb="get"
            )
        except KubeError as e:
            raise CredentialError(
                _explain(e, f"Secret {namespace}/{name}", namespace, key)
            ) from None
        data = secret.get("data") or {}
        return data if isinstance(data, Mapping) else {}


def _decode(where: str, key: str, value: object) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialError(
            f"{where}: key {key!r} is not UTF-8 text: store the credential as plain text"
        ) from None


def _explain(e: KubeError, where: str, namespace: str, key: str | None) -> str:
    if e.status == 404:
        with_key = f" (key {key!r})" if key else ""
        return (
            f"{where} not found: create it{with_key} in namespace {namespace!r}, "
            "where the model lives (ClusterBaseModels: the agent's namespace)"
        )
    if e.status == 403:
        return (
            f"{where}: the agent's ServiceAccount may not read Secrets in {namespace!r} "
            "(grant 'get' on secrets, see deploy/agent/rbac.yaml)"
        )
    if e.status == 0:
        return f"{where}: API server unreachable ({e.reason}), will retry"
    return f"{where}: cannot be read: {e.status} {e.reason}"
