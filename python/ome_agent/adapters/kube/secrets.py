"""Credentials from Kubernetes Secrets (DESIGN.md §1, layer 5: input of the sources).

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

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.reconcile.ports import CredentialError


class KubeSecretReader:
    """``SecretReader`` over the API server."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def read(self, namespace: str, name: str, key: str) -> str:
        where = f"Secret {namespace}/{name}"
        try:
            secret = await self.kube.request(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", verb="get"
            )
        except KubeError as e:
            raise CredentialError(_explain(e, where, namespace, key)) from None
        data = secret.get("data") or {}
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise CredentialError(
                f"{where} has no key {key!r} (its keys: {keys}): add the key, or name "
                "the right one in the model's storage parameters (secretKey)"
            )
        try:
            return base64.b64decode(data[key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialError(
                f"{where}: key {key!r} is not UTF-8 text: store the token as plain text"
            ) from None


def _explain(e: KubeError, where: str, namespace: str, key: str) -> str:
    if e.status == 404:
        return (
            f"{where} not found: create it (key {key!r}) in namespace {namespace!r}, "
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
