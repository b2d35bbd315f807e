"""What this node should hold (reconcile core, layer 4: the decision before any work).

The reconcile core records each declared model and the node's labels here; this module
answers, without touching the network, which models belong on the node and where their
files go. The core turns its answers into queued work (``reconcile.core``).

Decisions documented here (and in the README):
- ``disabled: true`` and models no longer eligible are not wanted: the core withdraws
  their report (a disabled model keeps its files, ``reconcile.core``).
- ``pvc://``: the files live on a claim pods mount, not on nodes; such a model is never
  eligible here (no download, no entry) and the controller reports it.
- a FineTunedWeight goes where its base model goes: it is eligible on this node when
  its ``baseModelRef`` resolves to a model eligible here (and its own node selector,
  if any, matches).
- two models whose paths are equal or nested: the model seen first keeps the path
  (a model with a manifest there always does); the other is Failed with a message
  naming both. Files are never shared silently, so deleting one never breaks the other.

Indexes keep each change independent of the number of models: FineTunedWeights by
base model, model directories by path (``reconcile.pathindex``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput
from ome_agent.reconcile import hubcache, layout
from ome_agent.reconcile.eligibility import eligibility
from ome_agent.reconcile.manifest import Identity, ManifestStore
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.pathindex import PathIndex
from ome_agent.reconcile.sources import SourcePlan

FINE_TUNED = "FineTunedWeight"


class Desired:
    """The declared models, the node's labels, and what follows from them."""

    def __init__(self, options: AgentOptions, manifests: ManifestStore) -> None:
        self._options = options
        self._manifests = manifests
        self.resources: dict[ModelKey, ModelResource] = {}
        self._seen: dict[ModelKey, int] = {}  # first-seen order: who keeps a shared path
        self._order = itertools.count()
        self._eligible: dict[ModelKey, bool] = {}
        self._children: dict[ModelKey, dict[ModelKey, None]] = {}
        self._targets: PathIndex[ModelKey] = PathIndex()
        self.node_name = options.node_name
        self.labels: dict[str, str] = {}

    # ------------------------------------------------------------ recording
    def record(self, resource: ModelResource) -> bool:
        """Keep ``resource``; True when its spec is new or changed (metadata alone,
        such as resourceVersion or labels, asks for nothing)."""
        key = resource.key
        previous = self.resources.get(key)
        self.resources[key] = resource
        if key not in self._seen:
            self._seen[key] = next(self._order)
        if previous is not None and previous.spec == resource.spec:
            return False
        if previous is not None:
            self._unindex(previous)
        self._index(resource)
        return True

    def drop(self, key: ModelKey) -> None:
        resource = self.resources.pop(key, None)
        if resource is not None:
            self._unindex(resource)
        self._seen.pop(key, None)  # re-created later, it queues behind current holders
        self._eligible.pop(key, None)

    def _index(self, resource: ModelResource) -> None:
        base = resource.base_key
        if base is not None:
            self._children.setdefault(base, {})[resource.key] = None
        try:
            target: Path | None = (
                layout.target_dir(resource.key, resource.storage, self._options.models_roots)
                if not hubcache.requested(resource.storage)
                else None
            )  # shared: reconcile.hubcache
        except BadInput:
            target = None  # its own reconcile reports why
        self._targets.set(resource.key, target)

    def _unindex(self, resource: ModelResource) -> None:
        base = resource.base_key
        children = self._children.get(base) if base is not None else None
        if children is not None:
            children.pop(resource.key, None)
            if not children:
                del self._children[base]  # type: ignore[arg-type]
        self._targets.discard(resource.key)

    # ------------------------------------------------------------ eligibility
    def set_node(self, name: str, labels: Mapping[str, str]) -> list[ModelKey]:
        """Record the node; the models to evaluate again, base models first (a
        FineTunedWeight's eligibility follows its base's)."""
        self.node_name = name
        self.labels = dict(labels)
        return sorted(self.resources, key=lambda k: k.kind == FINE_TUNED)

    def evaluate(self, key: ModelKey, *, force: bool = False) -> list[tuple[ModelKey, bool]]:
        """Eligibility of ``key`` and of the FineTunedWeights that follow it, updated;
        each model whose eligibility changed (or ``key`` when ``force``), in order."""
        now = self._eligible_here(self.resources[key])
        before = self._eligible.get(key)
        self._eligible[key] = now
        if before == now and not force:
            return []
        changed = [(key, now)]
        for dependent in self.dependents(key):
            changed += self.evaluate(dependent)
        return changed

    def _eligible_here(self, resource: ModelResource) -> bool:
        if resource.on_claim:
            return False  # the claim holds the files (module doc)
        own = eligibility(resource.storage, self.node_name, self.labels).eligible
        if resource.kind != FINE_TUNED:
            return own
        base = resource.base_key
        return own and base is not None and self._eligible.get(base, False)

    def dependents(self, key: ModelKey) -> list[ModelKey]:
        """The FineTunedWeights whose base model is ``key``."""
        if key.kind == FINE_TUNED:
            return []
        return list(self._children.get(key, ()))

    # ------------------------------------------------------------ answers
    def wanted(self, resource: ModelResource) -> bool:
        # eligibility is kept current by evaluate (on apply and on node label changes)
        return (
            not resource.deleting
            and not resource.disabled
            and self._eligible.get(resource.key, False)
        )

    def holds(self, key: ModelKey) -> bool:
        """``key`` is a model this node keeps (its files are not about to go)."""
        resource = self.resources.get(key)
        return resource is not None and self.wanted(resource)

    def seen(self, key: ModelKey) -> int:
        """When ``key`` was first seen (earlier models keep a shared path)."""
        return self._seen.get(key, 0)

    def identity(self, resource: ModelResource, plan: SourcePlan) -> Identity:
        """What the model is on this node: its source, revision and the path its files go
        to (a local source checked too); BadInput naming the field."""
        if plan.local is not None:
            layout.local_source(
                plan.local, self._options.models_roots, self._options.local_source_dirs
            )
        cache = hubcache.home(plan.cache_dir, plan.hf, self._options.models_roots)
        if cache is not None:  # the cache's snapshot (reconcile.hubcache)
            manifest = self._manifests.load(resource.key)
            snapshot = hubcache.target(cache, plan.display, plan.revision, manifest)
            return Identity(plan.display, plan.revision, str(snapshot))
        target = layout.target_dir(resource.key, resource.storage, self._options.models_roots)
        return Identity(plan.display, plan.revision, str(target))

    def used_by_other(self, path: Path, owner: ModelKey) -> bool:
        """A model kept on this node other than ``owner`` has files at or around ``path``."""
        return any(
            other != owner and self.holds(other) for other in self._targets.overlapping(path)
        )

    def check_not_shared(self, key: ModelKey, target: Path) -> None:
        """BadInput when a model seen earlier (or holding files there) has ``target``."""
        mine = self._manifests.load(key)
        for other_key in self._targets.overlapping(target):
            other_target = self._targets.get(other_key)
            if other_key == key or other_target is None or not self.holds(other_key):
                continue
            theirs = self._manifests.load(other_key)
            they_hold = theirs is not None and layout.overlaps(Path(theirs.identity.path), target)
            i_hold = mine is not None and layout.overlaps(Path(mine.identity.path), target)
            if (they_hold and not i_hold) or (
                they_hold == i_hold and self.seen(other_key) < self.seen(key)
            ):
                raise BadInput(
                    f"spec.storage.path {target} is already used by {other_key} "
                    f"(at {other_target}): give each model its own path"
                )
