"""Credentials in standalone mode: Secret manifests, then the environment (adapter, layer 5).

A model naming Secret ``NAME`` and key ``KEY`` (``storage.storageKey`` / ``storage.key``
and ``parameters.secretKey``, default ``token``) gets, in this order:
- the value of a ``v1`` Secret document in the manifests directory with that name,
  in the namespace the model may read (its own; a ClusterBaseModel: ``--namespace``),
  exactly as the API server would give it;
- else the environment variable ``OME_SECRET_<NAME>_<KEY>`` (upper case, every other
  character than letters and digits as ``_``), or, for the key ``token``, ``HF_TOKEN``.
A whole Secret (object-store credentials: several keys) comes from a manifest only;
without one, each vendor SDK's own chain (environment, config files) applies.
Values are never logged; an error names the Secret, the key and what to set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ome_agent.adapters.standalone.manifests import SecretKey
from ome_agent.reconcile.ports import CredentialError


def variable_name(name: str, key: str) -> str:
    return "OME_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


class StandaloneSecretReader:
    def __init__(self) -> None:
        self._manifests: Mapping[SecretKey, Mapping[str, str]] = {}

    def __repr__(self) -> str:
        return f"StandaloneSecretReader({len(self._manifests)} secrets)"

    def update(self, secrets: Mapping[SecretKey, Mapping[str, str]]) -> None:
        """The Secret documents of the latest manifests load."""
        self._manifests = dict(secrets)

    async def read(self, namespace: str, name: str, key: str) -> str:
        declared = self._manifests.get((namespace, name))
        if declared is not None:
            if key not in declared:
                raise CredentialError(
                    f"Secret {namespace}/{name} in the manifests has no key {key!r}: add it "
                    "or set parameters.secretKey to the key that holds the token"
                )
            return declared[key]
        specific = variable_name(name, key)
        value = os.environ.get(specific)
        if not value and key == "token":
            value = os.environ.get("HF_TOKEN")
        if not value:
            also = " or HF_TOKEN" if key == "token" else ""
            raise CredentialError(
                f"secret {name!r} key {key!r} is not set: standalone mode reads it from a "
                f"Secret manifest in namespace {namespace!r} or the environment variable "
                f"{specific}{also}"
            )
        return value

    async def read_all(self, namespace: str, name: str) -> Mapping[str, str]:
        declared = self._manifests.get((namespace, name))
        if declared is None:
            raise CredentialError(
                f"Secret {namespace}/{name} is not in the manifests directory: add a v1 "
                f"Secret document named {name!r} in namespace {namespace!r}, or drop "
                "storage.key to use the storage SDK's own credential chain"
            )
        return dict(declared)
