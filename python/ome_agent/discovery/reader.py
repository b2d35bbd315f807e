"""The one path from a model's files to a Discovery (discovery, layer 3).

Both readers follow it: ``local`` (a directory on this node) and ``remote`` (a repo
or an object-store prefix, read by range requests). A reader says how it finds and
reads the config, the tokenizer config and the weights; :func:`describe_model` picks the
config, the weight directories and the order of the errors the same way for both,
then hands everything to ``describe.build``. So a model gives the same answer on disk
and at its source.
"""

from __future__ import annotations

from typing import Any, Protocol

from ome_agent.discovery.configfile import ConfigError, parent_of
from ome_agent.discovery.describe import build, quantization_of, weight_dirs
from ome_agent.discovery.quantization import Quantization
from ome_agent.discovery.result import Discovery
from ome_agent.discovery.weights import WeightCount

# weights found, bytes of other weight formats (.bin, .gguf, ...), errors naming the file
Weights = tuple[WeightCount | None, int, list[str]]


class ModelReader(Protocol):
    @property
    def names(self) -> frozenset[str]:
        """Every file name of the model, "/"-separated, relative to its root."""
        ...

    @property
    def place(self) -> str:
        """Where the files are, for the message when no config is found."""
        ...

    def config_path(self, schema_path: str | None) -> str | None:
        """The config's name (``storage.schemaPath`` first); ConfigError when unusable."""
        ...

    def read_config(self, name: str) -> dict[str, Any]:
        """A config file parsed; ConfigError naming it."""
        ...

    def tokenizer(self, name: str) -> dict[str, Any] | None:
        """tokenizer_config.json when present and readable (only evidence of a chat
        template: the tokenizer is not ours to check)."""
        ...

    def weights(self, directories: list[str], quant: Quantization) -> Weights:
        """The safetensors headers of ``directories`` ("" is the root) counted."""
        ...


def describe_model(reader: ModelReader, schema_path: str | None) -> Discovery:
    """Describe the model ``reader`` reads; problems with its content go into
    ``Discovery.errors``, never raised."""
    errors: list[str] = []
    config_path: str | None
    try:
        config_path = reader.config_path(schema_path)
    except ConfigError as e:
        errors.append(str(e))
        config_path = None
    config = None
    if config_path is None:
        if not errors:
            errors.append(f"config.json: not found in {reader.place} (nor a subfolder)")
    else:
        try:
            config = reader.read_config(config_path)
        except ConfigError as e:
            errors.append(str(e))
    tokenizer = None
    if config_path is not None:
        tokenizer = reader.tokenizer(join(parent_of(config_path), "tokenizer_config.json"))
    directories = weight_dirs(config_path, config, reader.names)
    weights, other_bytes, weight_errors = reader.weights(directories, quantization_of(config))
    return build(
        config=config,
        config_path=config_path,
        dir_files=reader.names,
        weights=weights,
        other_weight_bytes=other_bytes,
        tokenizer_config=tokenizer,
        errors=errors + weight_errors,
    )


def join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def prefixed(directory: str, messages: list[str]) -> list[str]:
    """Messages about files of ``directory``, named from the model's root."""
    return [join(directory, m) for m in messages]
