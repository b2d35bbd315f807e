"""The manifests directory of standalone mode: files → resources (adapter, layer 5).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file directly in the directory is read;
YAML files may hold several documents (``---``). Each document goes through
:func:`ome_agent.api.parse_resource`, except ``v1`` Secrets, which hold the
credentials models name (as the reference doc pairs a Secret with a model). A file or
document that cannot be used is an error naming the file, the document and the
field; the other documents still count. Reading a file is bounded in size, documents,
nesting and alias expansion (:mod:`ome_agent.adapters.standalone.documents`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ome_agent.adapters.standalone.documents import (
    DEFAULT_LIMITS,
    ManifestLimits,
    ManifestUnreadable,
    check_document,
    read_documents,
)
from ome_agent.api import ModelKey, ModelResource, parse_resource
from ome_agent.errors import BadInput
from ome_agent.reconcile.eligibility import invalid_requirement

SUFFIXES = (".yaml", ".yml", ".json")

SecretKey = tuple[str, str]  # (namespace, name)
# The API server refuses a Secret whose data exceeds 1 MiB; so does standalone mode.
MAX_SECRET_BYTES = 1024 * 1024


@dataclass
class Loaded:
    resources: list[ModelResource] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    origin: dict[ModelKey, Path] = field(default_factory=dict)  # the file of each resource
    broken: set[Path] = field(default_factory=set)  # files with at least one error
    # Secret documents: (namespace, name) -> key -> value; never printed
    secrets: dict[SecretKey, dict[str, str]] = field(default_factory=dict, repr=False)

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


def load_manifests(directory: Path, limits: ManifestLimits = DEFAULT_LIMITS) -> Loaded:
    if not directory.is_dir():
        raise BadInput(f"--manifests {directory}: not a directory: give the folder of manifests")
    loaded = Loaded()
    seen: dict[object, str] = {}
    for path in manifest_files(directory):
        try:
            docs = list(read_documents(path, limits))
        except ManifestUnreadable as e:
            loaded.errors.append(str(e))
            loaded.broken.add(path)
            continue
        for index, doc in enumerate(docs, start=1):
            if doc is None:
                continue  # an empty document (e.g. a trailing ---)
            where = f"{path}" + (f" (document {index})" if len(docs) > 1 else "")
            try:
                check_document(doc)
            except BadInput as e:
                loaded.errors.append(f"{where}: {e}")
                loaded.broken.add(path)
                continue
            if isinstance(doc, Mapping) and doc.get("kind") == "Secret":
                try:
                    ref, values = parse_secret(doc)
                except BadInput as e:
                    loaded.errors.append(f"{where}: {e}")
                    loaded.broken.add(path)
                    continue
                loaded.secrets[ref] = values
                continue
            try:
                resource = parse_resource(doc)
            except BadInput as e:
                loaded.errors.append(f"{where}: {e}")
                loaded.broken.add(path)
                continue
            invalid = invalid_requirement(resource.storage)
            if invalid is not None:  # Kubernetes would refuse it: say so, do not skip it
                loaded.errors.append(f"{where}: {resource.key}: {invalid}")
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


def parse_secret(doc: Mapping[str, object]) -> tuple[SecretKey, dict[str, str]]:
    """A ``v1`` Secret document → ((namespace, name), values): ``data`` is base64 as in
    Kubernetes, ``stringData`` plain text and wins. Errors name the key, never a value."""
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise BadInput("Secret: metadata.name is missing: give the Secret a name")
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    namespace = namespace if isinstance(namespace, str) and namespace else "default"
    values: dict[str, str] = {}
    total = 0
    for section in ("data", "stringData"):
        entries = doc.get(section) or {}
        if not isinstance(entries, Mapping):
            raise BadInput(f"Secret {namespace}/{name}: {section} must be a mapping")
        for key, value in entries.items():
            if not isinstance(value, str):
                raise BadInput(f"Secret {namespace}/{name}: {section}.{key} must be a string")
            total += len(value)
            if total > MAX_SECRET_BYTES * 4 // 3 + 4:  # base64 of the limit, at most
                raise BadInput(
                    f"Secret {namespace}/{name}: {section}.{key}: the Secret holds more than "
                    f"{MAX_SECRET_BYTES} bytes (the limit, as in Kubernetes)"
                )
            if section == "stringData":
                values[str(key)] = value
                continue
            try:
                values[str(key)] = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise BadInput(
                    f"Secret {namespace}/{name}: data.{key} is not base64 of UTF-8 text: "
                    "encode it (base64 -w0) or put it under stringData"
                ) from None
    return (namespace, name), values


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
