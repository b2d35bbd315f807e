"""Credentials in standalone mode: from the environment (adapter, layer 5).

A model naming Secret ``NAME`` and key ``KEY`` (``storage.storageKey`` / ``storage.key``
and ``parameters.secretKey``, default ``token``) gets the value of the environment
variable ``OME_SECRET_<NAME>_<KEY>`` (upper case, every other character than letters
and digits as ``_``), or else, for the key ``token``, ``HF_TOKEN``. Values are never
logged; an error names the variables to set.
"""

from __future__ import annotations

import os
import re

from ome_agent.reconcile.ports import CredentialError


def variable_name(name: str, key: str) -> str:
    return "OME_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


class EnvSecretReader:
    async def read(self, namespace: str, name: str, key: str) -> str:
        specific = variable_name(name, key)
        value = os.environ.get(specific)
        if not value and key == "token":
            value = os.environ.get("HF_TOKEN")
        if not value:
            also = " or HF_TOKEN" if key == "token" else ""
            raise CredentialError(
                f"secret {name!r} key {key!r} is not set: standalone mode reads it from the "
                f"environment variable {specific}{also}"
            )
        return value
