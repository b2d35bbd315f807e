"""Reading one manifest file into documents, bounded (adapter, layer 5: the first step
of :mod:`ome_agent.adapters.standalone.manifests`).

Whatever a file holds, reading it costs at most a known amount of time and memory,
and a file that breaks a limit is one :class:`ManifestUnreadable` naming the file,
the limit and, for YAML, the line and column:

- size: a file larger than :data:`MAX_FILE_BYTES` is refused from its ``stat``, before
  a byte is read (a gigabyte binary lying in the folder costs nothing);
- text: the bytes must be UTF-8; the error gives the offset of the first bad byte;
- documents: YAML is parsed one document at a time and reading stops at the first
  document beyond :data:`MAX_DOCUMENTS`;
- nesting: at most :data:`MAX_DEPTH` levels of mappings and sequences, checked while
  the YAML is composed (so a 100,000-level document never reaches the recursive
  constructor) and after JSON is decoded;
- aliases: a YAML alias stands for a whole subtree; every node counts once per time
  it is reached, and a document whose expanded size passes :data:`MAX_NODES` is
  refused while it is being composed (an "alias bomb" of a few hundred bytes would
  otherwise expand to billions of nodes in whatever walks it later). An alias to a
  node that contains it (a cycle) is refused too;
- NUL: no string (key or value) of a document may hold a NUL byte: it would
  truncate paths and corrupt logs (:func:`check_document`, per document, so the
  other documents of the file still count). The error names the field, not the value.

Scanning and parsing run in libyaml when PyYAML has it; the composition, which
enforces the limits, in Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from ome_agent.errors import BadInput

# A Kubernetes object is at most ~1.5 MiB (etcd's request limit); a folder of
# manifests may bundle many, so a file may be larger, but not unboundedly.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DOCUMENTS = 20_000
# Real manifests nest about ten levels; 64 leaves room for any hand-written spec.
MAX_DEPTH = 64
# Nodes of one document with every alias expanded: a model is a few dozen.
MAX_NODES = 100_000


@dataclass(frozen=True)
class ManifestLimits:
    """The caps an operator may need to raise: ``run --standalone --max-manifest-bytes``
    and ``--max-documents`` (their defaults are :data:`MAX_FILE_BYTES` and
    :data:`MAX_DOCUMENTS`); nesting and alias expansion stay fixed bounds."""

    file_bytes: int = MAX_FILE_BYTES
    documents: int = MAX_DOCUMENTS


DEFAULT_LIMITS = ManifestLimits()


class ManifestUnreadable(BadInput):
    """A manifest file that cannot be used as a whole (size, encoding, syntax, limits)."""


if yaml.__with_libyaml__:
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]

    class _Events(_Parser):
        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)

else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Events(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class _Limit(yaml.MarkedYAMLError):
    """A limit of this module was passed while composing (carries the position)."""


class _BoundedLoader(Composer, _Events, SafeConstructor, Resolver):
    """PyYAML's safe loader whose composition counts depth and expanded nodes."""

    def __init__(self, stream: str) -> None:
        _Events.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._weights: dict[int, int] = {}  # id(node) -> size with aliases expanded

    def compose_document(self) -> Node | None:
        self._weights = {}
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # a composer is only asked when an event is due
        mark: Any = event.start_mark  # libyaml's Mark or PyYAML's: both give line, column
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:  # its own composition has not ended
                raise _Limit(
                    None, None, f"alias *{event.anchor} refers to a node that contains it", mark
                )  # fmt: skip
            return node
        if self._depth >= MAX_DEPTH:
            raise _Limit(None, None, f"nested deeper than {MAX_DEPTH} levels (the limit)", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._weigh(node, mark)
        return node

    def _weigh(self, node: Node, mark: Any) -> None:
        weights = self._weights
        if isinstance(node, ScalarNode):
            weight = 1
        elif isinstance(node, SequenceNode):
            weight = 1 + sum(weights[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            weight = 1 + sum(weights[id(k)] + weights[id(v)] for k, v in node.value)
        else:  # pragma: no cover - PyYAML has no other node kind
            weight = 1
        if weight > MAX_NODES:
            raise _Limit(
                None, None,
                f"more than {MAX_NODES} nodes once its aliases are expanded (the limit)", mark,
            )  # fmt: skip
        weights[id(node)] = weight


def read_documents(path: Path, limits: ManifestLimits = DEFAULT_LIMITS) -> Iterator[Any]:
    """The documents of ``path`` (one for JSON), checked against ``limits`` and this
    module's fixed bounds;
    :class:`ManifestUnreadable` naming the file and the limit or the syntax error.
    YAML documents come one at a time: those before a bad one have been yielded."""
    text = _read_text(path, limits.file_bytes)
    if path.suffix == ".json":
        yield _json_document(path, text)
        return
    loader = _BoundedLoader(text)
    try:
        count = 0
        while loader.check_data():  # type: ignore[no-untyped-call]
            count += 1
            if count > limits.documents:
                raise ManifestUnreadable(
                    f"{path}: more than {limits.documents} documents (the limit, "
                    "--max-documents): split the file, or raise --max-documents"
                )
            yield loader.get_data()
    except yaml.MarkedYAMLError as e:
        raise ManifestUnreadable(f"{path}: cannot read: {describe_yaml_error(e)}") from None
    except yaml.YAMLError as e:
        raise ManifestUnreadable(f"{path}: cannot read: {_first_line(e)}") from None
    finally:
        loader.dispose()


def describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    """``line L, column C: problem (context at line L2, column C2)``: the position
    PyYAML knows, 1-based as editors show it."""
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = error.problem or error.context or "malformed YAML"
    context = ""
    if error.context and error.problem:
        context = f" ({error.context}"
        if error.context_mark is not None:
            cm = error.context_mark
            context += f" at line {cm.line + 1}, column {cm.column + 1}"
        context += ")"
    return f"{where}{problem}{context}"


def _read_text(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            size = _size(f.fileno())
            if size > limit:
                raise ManifestUnreadable(_too_big(path, size, limit))
            data = f.read(limit + 1)  # the file may grow after the stat
    except OSError as e:
        raise ManifestUnreadable(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise ManifestUnreadable(_too_big(path, len(data), limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestUnreadable(
            f"{path}: not UTF-8 text (byte {e.start}): a manifest is YAML or JSON text"
        ) from None


def _size(fd: int) -> int:
    return os.fstat(fd).st_size


def _too_big(path: Path, size: int, limit: int) -> str:
    return (
        f"{path}: {size} bytes, more than the {limit} a manifest file may hold (the "
        "limit, --max-manifest-bytes): split it, move what is not a manifest out of the "
        "folder, or raise --max-manifest-bytes"
    )


def _json_document(path: Path, text: str) -> Any:
    try:
        document = json.loads(text)
    except RecursionError:
        raise ManifestUnreadable(
            f"{path}: cannot read: nested deeper than {MAX_DEPTH} levels (the limit)"
        ) from None
    except ValueError as e:
        raise ManifestUnreadable(f"{path}: cannot read: {e}") from None
    return document


def check_document(document: Any) -> None:
    """Depth (YAML's is bounded while composing, JSON's only here) and NUL bytes, without
    recursion; BadInput naming the field, never the value."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, field, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise BadInput(f"{field or 'the document'} holds a NUL byte: remove it")
            continue
        if not isinstance(value, Mapping | list):
            continue
        if depth >= MAX_DEPTH:
            raise BadInput(
                f"{field or 'the document'} is nested deeper than {MAX_DEPTH} levels (the limit)"
            )
        if isinstance(value, list):
            stack.extend((item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value))
            continue
        for key, item in value.items():
            name = str(key)
            if "\x00" in name:
                raise BadInput(f"a key under {field or 'the document'} holds a NUL byte: remove it")
            stack.append((item, f"{field}.{name}" if field else name, depth + 1))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "ManifestLimits",
    "ManifestUnreadable",
    "check_document",
    "describe_yaml_error",
    "read_documents",
]
