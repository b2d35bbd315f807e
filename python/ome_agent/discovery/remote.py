"""``inspect_remote``: metadata of a model before downloading it (discovery, layer 3).

For ``hf://org/name[@rev]`` the sources layer lists the repo (one pinned commit);
then only small files are read: config.json (and tokenizer_config.json for the chat
template, the safetensors index) and, per shard, its header by one range request of
the first 64 KiB, with a second request only when a header is larger. The requests
run in parallel. Size and parameter count are thus known before a byte of weights
moves, which is what the agent's disk-space check needs.

Credentials go only to the Hub: the engine drops ``Authorization`` when the Hub
redirects an LFS file to its CDN. A plain ``http(s)://.../x.safetensors`` URL is
read the same way (its header only). Object-store prefixes (``oci://``, ``s3://``,
``gs://``, ``az://``) are listed by their backend and read like a repo, each range
request signed the way the backend signs its downloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ome_agent import __version__, _core
from ome_agent.discovery.configfile import (
    MAX_CONFIG_BYTES,
    ConfigError,
    locate,
    parent_of,
    parse_config_bytes,
)
from ome_agent.discovery.describe import build, quantization_of
from ome_agent.discovery.quantization import Quantization
from ome_agent.discovery.reader import Weights, describe_model, prefixed
from ome_agent.discovery.result import Discovery
from ome_agent.discovery.weights import WeightCount, count, merge, select_shards
from ome_agent.errors import BadInput, SourceNotFound, TransferFailed
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.hf import resolve_hf
from ome_agent.sources.model import RemoteFile
from ome_agent.sources.objects import ObjectSource
from ome_agent.sources.schemes import (
    OBJECT_FORMS,
    SCHEMES,
    parse_source,
    resolve_object,
    split_scheme,
)
from ome_agent.sources.uri import HfRef

PROBE_BYTES = 64 * 1024
MAX_WORKERS = 32
_TOKENIZER_MAX = 4 * 1024 * 1024
_OTHER_WEIGHTS = (".bin", ".gguf", ".pt", ".pth", ".onnx")

Header = tuple[str, _core.SafetensorsHeader, int]


def inspect_remote(
    uri: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    schema_path: str | None = None,
    params: Mapping[str, str] | None = None,
    engine: _core.Engine | None = None,
) -> Discovery:
    """Describe a remote model from its small files and safetensors headers.

    ``params`` are an object store's ``spec.storage.parameters`` (region, auth, ...).
    Raises the sources' errors (BadInput, SourceNotFound, TransferFailed) when the
    repo cannot be listed; problems with its content go into ``Discovery.errors``."""
    scheme = split_scheme(uri)[0]
    if scheme not in SCHEMES or not SCHEMES[scheme].fetchable:
        raise BadInput(
            f"inspect reads hf://org/name[@revision], an http(s) URL of a .safetensors file, "
            f"an object-store prefix ({OBJECT_FORMS}) or a local directory, not {scheme}://"
        )
    ref = parse_source(uri, revision)
    engine = engine or _core.Engine(user_agent=f"ome-agent/{__version__}")
    if isinstance(ref, ObjectSource):
        listed = resolve_object(ref.ref, StorageAuth(parameters=dict(params or {})))
        return describe_model(_Listing(engine, {f.path: f for f in listed.files}), schema_path)
    if not isinstance(ref, HfRef):
        name = ref.file_name or ""
        if not name.endswith(".safetensors"):
            raise BadInput(
                f"{ref.display}: inspect reads http(s) URLs of .safetensors files only; "
                "use hf://org/name for a whole model"
            )
        return _inspect_url(engine, ref.url, name)
    resolved = resolve_hf(ref, token=token)
    return describe_model(_Listing(engine, {f.path: f for f in resolved.files}), schema_path)


def _inspect_url(engine: _core.Engine, url: str, name: str) -> Discovery:
    errors: list[str] = []
    try:
        size = engine.head(url).get("size")
    except _core.HttpStatusError as e:
        if e.status in (401, 403, 404, 410):
            raise SourceNotFound(f"{name}: HTTP {e.status}: check the URL") from None
        raise TransferFailed(f"{name}: the server answered HTTP {e.status}") from None
    except _core.EngineError as e:
        raise TransferFailed(f"{name}: cannot reach it ({_reason(e)})") from None
    remote = RemoteFile(name, url, size=size if isinstance(size, int) else None)
    result = _headers(engine, [remote])[name]
    if isinstance(result, str):
        errors.append(result)
    weights = count([] if isinstance(result, str) else [result], quantization_of(None))
    weights.errors = list(errors)
    return build(dir_files=frozenset({name}), weights=weights, errors=errors)


class _Listing:
    """A listed repo or prefix, read by range requests, for ``reader.describe_model``."""

    place = "the repo"

    def __init__(self, engine: _core.Engine, files: dict[str, RemoteFile]) -> None:
        self._engine = engine
        self._files = files
        self.names = frozenset(files)

    def config_path(self, schema_path: str | None) -> str | None:
        path = locate(self._files, schema_path)
        if path is not None and path not in self._files:
            raise ConfigError(f"{path}: not in the repo")
        return path

    def read_config(self, name: str) -> dict[str, Any]:
        return parse_config_bytes(_fetch_small(self._engine, self._files[name]), name)

    def tokenizer(self, name: str) -> dict[str, Any] | None:
        f = self._files.get(name)
        if f is None or (f.size or 0) > _TOKENIZER_MAX:
            return None
        try:
            return self.read_config(name)
        except ConfigError:
            return None

    def weights(self, directories: list[str], quant: Quantization) -> Weights:
        groups: list[tuple[list[RemoteFile], list[str]]] = []
        other_bytes = 0
        for directory in directories:
            here = {
                n.rpartition("/")[2]: f for n, f in self._files.items() if parent_of(n) == directory
            }

            def read_index(name: str, here: dict[str, RemoteFile] = here) -> bytes:
                return _fetch_small(self._engine, here[name])

            shards, shard_errors = select_shards(here, read_index)
            groups.append(([here[s] for s in shards], prefixed(directory, shard_errors)))
            if not shards:
                other_bytes += sum(
                    f.size or 0 for n, f in here.items() if n.endswith(_OTHER_WEIGHTS)
                )
        # every shard of every group in one parallel batch
        results = _headers(self._engine, [f for shards, _ in groups for f in shards])
        total: WeightCount | None = None
        errors: list[str] = []
        for group_files, group_errors in groups:
            outcomes = [results[f.path] for f in group_files]
            found = count([r for r in outcomes if not isinstance(r, str)], quant)
            found.errors = group_errors + [r for r in outcomes if isinstance(r, str)]
            errors.extend(found.errors)
            total = merge(total, found)
        return total, other_bytes, errors


def _headers(engine: _core.Engine, shards: list[RemoteFile]) -> dict[str, Header | str]:
    """Parsed header, or an error message, per shard path."""

    def one(f: RemoteFile) -> Header | str:
        try:
            return (f.path, _header(engine, f), f.size or 0)
        except _core.HeaderError as e:
            return f"{f.path}: {e}"
        except _core.EngineError as e:
            return f"{f.path}: cannot fetch its header ({_reason(e)})"

    if not shards:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(shards))) as pool:
        return {f.path: r for f, r in zip(shards, pool.map(one, shards), strict=True)}


def _header(engine: _core.Engine, f: RemoteFile) -> _core.SafetensorsHeader:
    data = engine.fetch_range(f.url, 0, PROBE_BYTES, headers=dict(f.headers), sign=f.sign)
    need = _core.safetensors_header_length(data[:8])
    if need > len(data) and len(data) == PROBE_BYTES:
        # a header over 64 KiB (thousands of tensors): fetch the rest of it
        data += engine.fetch_range(
            f.url, len(data), need - len(data), headers=dict(f.headers), sign=f.sign
        )
    return _core.parse_safetensors_header(data[:need], f.size)


def _fetch_small(engine: _core.Engine, f: RemoteFile) -> bytes:
    if f.size is not None and f.size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{f.path}: larger than the {MAX_CONFIG_BYTES}-byte limit of a config file"
        )
    try:
        return engine.fetch_range(
            f.url, 0, MAX_CONFIG_BYTES + 1, headers=dict(f.headers), sign=f.sign
        )
    except _core.EngineError as e:
        raise ConfigError(f"{f.path}: cannot fetch it ({_reason(e)})") from None


def _json(engine: _core.Engine, f: RemoteFile, errors: list[str]) -> dict[str, object] | None:
    try:
        return parse_config_bytes(_fetch_small(engine, f), f.path)
    except ConfigError as e:
        errors.append(str(e))
        return None


def _reason(e: BaseException) -> str:
    if isinstance(e, _core.HttpStatusError):
        return f"HTTP {e.status}"
    return type(e).__name__
