"""What a finished download leaves behind (reconcile core, layer 4: after the files are
in place, before the Ready report): the model's metadata (``ome_agent.discovery``) and
its manifest (``reconcile.manifest``).

Blocking code: the core calls :func:`discover` and :func:`record_manifest` in a worker
thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.reconcile import hubcache, peft_zip
from ome_agent.reconcile.desired import FINE_TUNED
from ome_agent.reconcile.download import Digests
from ome_agent.reconcile.manifest import (
    Identity,
    Manifest,
    ManifestStore,
    ReuseRecord,
)

log = logging.getLogger("ome_agent.reconcile")


def discover(resource: ModelResource, model_dir: Path) -> tuple[dict[str, Any], int | None]:
    """The model's config for its Ready report, and its parameter count when known."""
    if resource.kind == FINE_TUNED:
        return peft_zip.fine_tuned_config(resource, model_dir), None
    user = resource.user_fields()
    if resource.skip_config_parsing:
        return dict(user), None
    from ome_agent.discovery import discover as found_in  # the heavier parsing, on demand

    storage = resource.storage
    found = found_in(model_dir, storage.schema_path if storage else None)
    found = found.merge_user_spec(user)
    for problem in found.errors:
        log.warning("discovery", extra={"model": str(resource.key), "problem": problem})
    return dict(found.to_ome_config()), found.parameter_count


def record_manifest(
    manifests: ManifestStore,
    owner: str,
    resource: ModelResource,
    identity: Identity,
    commit: str | None,
    digests: Digests,
    found: tuple[dict[str, Any], int | None],
    parent: ReuseRecord | None,
) -> Manifest:
    """Record the files now at ``identity.path`` (after a download, an adoption or a
    repair); ``found`` is :func:`discover`'s config and parameter count. Blocking."""
    config, parameters = found
    files, blobs = hubcache.record(resource.storage, Path(identity.path), identity, commit, digests)
    manifest = Manifest(
        resource.key, resource.uid, resource.generation, identity, commit, files, config,
        parameters, parent,
        owner=owner, blobs=blobs,
    )  # fmt: skip
    # OME's Artifact: parentPath is a {parent key: path} map and childrenPaths the
    # paths of models reusing this one's files; both are derived from the manifests
    # when reported (reuse.links). With no revision the manifest digest (files,
    # not config) names it.
    config["artifact"] = {
        "sha": commit if commit is not None else manifest.digest,
        "parentPath": {},
        "childrenPaths": [],
    }
    manifests.save(manifest)
    return manifest
