"""The manifests directory of standalone mode: files → resources (adapter, layer 5).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file directly in the directory is read;
YAML files may hold several documents (``---``). Each document goes through
:func:`ome_agent.api.parse_resource`. A file or document that cannot be used is an
error naming the file, the document and the field; the other documents still count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ome_agent.api import ModelKey, ModelResource, parse_resource
from ome_agent.errors import BadInput

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Loaded:
    resources: list[ModelResource] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    origin: dict[ModelKey, Path] = field(default_factory=dict)  # the file of each resource
    broken: set[Path] = field(default_factory=set)  # files with at least one error

    def keeping(self, previous: Loaded) -> list[ModelResource]:
        """These resources plus the previous ones of files that are now broken: a typo
        while editing a manifest must not delete the models it held."""
        have = {r.key for r in self.resources}
        kept = [
            r
            for r in previous.resources
            if r.key not in have and previous.origin.get(r.key) in self.broken
        ]
        for r in kept:
            self.origin[r.key] = previous.origin[r.key]
        self.resources = self.resources + kept
        return self.resources


def manifest_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of every manifest: a change means reload."""
    out = []
    if not directory.is_dir():
        return ()
    for p in manifest_files(directory):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_manifests(directory: Path) -> Loaded:
    if not directory.is_dir():
        raise BadInput(f"--manifests {directory}: not a directory: give the folder of manifests")
    loaded = Loaded()
    seen: dict[object, str] = {}
    for path in manifest_files(directory):
        try:
            text = path.read_text()
            docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            loaded.errors.append(f"{path}: cannot read: {first}")
            loaded.broken.add(path)
            continue
        for index, doc in enumerate(docs, start=1):
            if doc is None:
                continue  # an empty document (e.g. a trailing ---)
            where = f"{path}" + (f" (document {index})" if len(docs) > 1 else "")
            try:
                resource = parse_resource(doc)
            except BadInput as e:
                loaded.errors.append(f"{where}: {e}")
                loaded.broken.add(path)
                continue
            if resource.key in seen:
                loaded.errors.append(
                    f"{where}: {resource.key} is also defined in {seen[resource.key]}: "
                    "keep one definition"
                )
                continue
            seen[resource.key] = where
            loaded.origin[resource.key] = path
            loaded.resources.append(resource)
    return loaded


def parse_node_labels(text: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` → mapping; BadInput naming ``--node-labels`` on a malformed item."""
    labels: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BadInput(f"--node-labels: {item!r} is not key=value: write e.g. gpu=a100,zone=a")
        labels[key.strip()] = value.strip()
    return labels
