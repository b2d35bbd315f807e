"""Files of models that left the node (reconcile core, layer 4: the delete action of
the work queue, and the clean-up at start-up).

Blocking code, which the core calls in a worker thread (but :meth:`Removal.leftovers`,
which moves its own disk work off the event loop). Removal deletes only what a
manifest records, only strictly inside a models root (``reconcile.layout.remove_tree``),
never a path another live model uses, and only when this agent owns the manifest
(``AgentOptions.owner``): another agent's models on the same root are left alone.
A removal refused is recorded, and makes a ``--once`` run fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from pathlib import Path

from ome_agent.api import ModelKey
from ome_agent.errors import BadInput
from ome_agent.reconcile import hubcache, layout
from ome_agent.reconcile.desired import Desired
from ome_agent.reconcile.manifest import Manifest, ManifestStore
from ome_agent.reconcile.options import AgentOptions

log = logging.getLogger("ome_agent.reconcile")


class Removal:
    def __init__(self, options: AgentOptions, manifests: ManifestStore, desired: Desired) -> None:
        self._options = options
        self._manifests = manifests
        self._desired = desired
        self.refused: set[Path] = set()  # removals refused (run_until_idle fails)

    def model(self, key: ModelKey) -> None:
        """Staging and model files of a model that left the node."""
        manifest = self._manifests.load(key)
        if manifest is not None and not self.owns(manifest.owner, Path(manifest.identity.path)):
            return
        staging = self._manifests.staging_of(key)
        if staging is not None:
            self.path(staging)
        if manifest is not None:
            self.unused(Path(manifest.identity.path), key, manifest)
        self._manifests.delete(key)

    async def leftovers(
        self, declared: Mapping[ModelKey, object], wanted: Collection[ModelKey]
    ) -> None:
        """Start-up: files of models no longer ``declared`` (read as it changes: a model
        declared meanwhile keeps its files), staging of models not ``wanted`` here."""
        await asyncio.to_thread(self._manifests.migrate)  # before any lookup by name
        for manifest in self._manifests.all():
            if manifest.key not in declared:
                await asyncio.to_thread(self.model, manifest.key)
        for key, staging in self._manifests.staging().items():
            if key not in wanted and self.owns(self._manifests.staging_owner(key), staging):
                self.path(staging)
                self._manifests.clear_staging(key)

    def owns(self, owner: str, path: Path) -> bool:
        """Whether files recorded by ``owner`` are this agent's to remove (module doc)."""
        if not owner or owner == self._options.owner:
            return True
        log.info("kept: recorded by another agent", extra={"path": str(path), "owner": owner})
        return False

    def unused(self, path: Path, owner: ModelKey, manifest: Manifest | None = None) -> None:
        """``path`` of ``owner``, unless another model kept here uses it."""
        if manifest is not None and manifest.blobs is not None:  # a cache's snapshot
            others = [m for m in self._manifests.known() if m.key != owner]
            if not hubcache.remove(manifest, others, self._options.models_roots):
                self.refused.add(path)
            return
        if self._desired.used_by_other(path, owner):
            log.info("kept: used by another model", extra={"path": str(path)})
            return
        self.path(path)

    def path(self, path: Path) -> None:
        try:
            layout.remove_tree(path, self._options.models_roots)
        except BadInput as e:
            self.refused.add(path)
            log.error("not removed", extra={"path": str(path), "error": str(e)})
        except FileNotFoundError:
            pass
