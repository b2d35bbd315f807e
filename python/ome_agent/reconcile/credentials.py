"""A model's credentials for its source (reconcile core, layer 4: before listing).

The Hub token (hf://) is the one key ``storage.key`` names; an object store gets the
whole Secret. Secrets are read only from the model's own namespace (a cluster-scoped
model's: the agent's), through the adapter's :class:`~ome_agent.reconcile.ports.SecretReader`.
A principal auth method (instance, resource, workload identity) needs no Secret, so
one that cannot be read is then ignored rather than failing the model.
"""

from __future__ import annotations

import logging

from ome_agent.api import ModelResource
from ome_agent.reconcile.ports import CredentialError, SecretReader
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import StorageAuth

log = logging.getLogger("ome_agent.reconcile")

# auth methods that take no key material from a Secret (OME's spellings, lower case)
PRINCIPAL_AUTH = frozenset(
    {"instanceprincipal", "resourceprincipal", "okeworkloadidentity", "workloadidentity"}
)


async def model_credentials(
    resource: ModelResource, plan: SourcePlan, secrets: SecretReader, agent_namespace: str
) -> tuple[str | None, StorageAuth]:
    """The Hub token (hf, else None) and the object store's auth for ``resource``."""
    storage = resource.storage
    if storage is None:
        return None, StorageAuth()
    parameters = dict(storage.parameters)
    name = storage.secret_name
    namespace = resource.namespace or agent_namespace
    if name and plan.scheme == "hf":
        token = await secrets.read(namespace, name, storage.secret_key)
        return token, StorageAuth(parameters)
    if name and plan.objects is not None:
        try:
            secret = await secrets.read_all(namespace, name)
        except CredentialError:
            if (storage.auth or "").lower() not in PRINCIPAL_AUTH:
                raise
            log.info(
                "secret not read: the auth method needs none",
                extra={"model": str(resource.key), "auth": storage.auth},
            )
        else:
            return None, StorageAuth(parameters, secret=secret, secret_name=name)
    return None, StorageAuth(parameters)
