"""``ome-agent inspect PATH_OR_URI``: what discovery learns about a model.

Argument handling and output only; the work is ``ome_agent.discovery``. A local
directory is read from disk; ``hf://org/name[@rev]`` (HF_ENDPOINT / HF_TOKEN from the
environment) or an http(s) ``.safetensors`` URL is read remotely, headers only.
Exit codes: 0 when the model was described (content problems, such as config values
of the wrong type, are listed on stderr, as the node agent would log them); 1 when
the remote could not be reached or the config could not be read or gave no usable
field (no ``model_type``, no ``architectures``: what was found is still printed);
2 on bad input. With ``--termination-log`` the file holds the config on success and
the reason on failure (one line), so the pvc:// inspection Pod's status says why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ome_agent import discovery
from ome_agent.cli.params import ca_bundle_option, param_option, parse_params, revision_option
from ome_agent.discovery.configfile import ConfigError, check_schema_path
from ome_agent.errors import BadInput, OmeAgentError
from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.settings import TransferSettings

TERMINATION_LOG_LIMIT = 4096

_ROWS = (
    ("model type", "modelType"),
    ("architecture", "modelArchitecture"),
    ("parameters", "parameterCount"),
    ("parameter size", "modelParameterSize"),
    ("parameter source", "parameterCountSource"),
    ("max tokens", "maxTokens"),
    ("dtype", "torchDtype"),
    ("quantization", "quantization"),
    ("capabilities", "modelCapabilities"),
    ("API", "apiCapabilities"),
    ("vision", "hasVision"),
    ("embedding", "isEmbedding"),
    ("format", "modelFormat"),
    ("framework", "modelFramework"),
    ("size on disk", "sizeOnDiskBytes"),
    ("config", "configPath"),
)


def _cell(key: str, value: object) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(str(v) for v in value.values())
    if key == "parameterCount" and isinstance(value, int):
        return f"{value:,}"
    if key == "sizeOnDiskBytes" and isinstance(value, int):
        return f"{value:,} bytes ({value / 1e9:.2f} GB)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@click.command()
@click.argument("target", metavar="PATH_OR_URI")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--schema-path", help="Where the config lives inside the model (storage.schemaPath).")
@revision_option
@param_option
@ca_bundle_option
@click.option(
    "--termination-log",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the node-report config (compact JSON) to this file, e.g. "
    "/dev/termination-log in a pod, where the controller reads it from the pod's status.",
)
def inspect(
    target: str,
    as_json: bool,
    schema_path: str | None,
    revision: str | None,
    params: tuple[str, ...],
    ca_bundle: str | None,
    termination_log: str | None,
) -> None:
    """Describe a model: type, architecture, exact parameter count, context length,
    dtype, capabilities, quantization.

    PATH_OR_URI is a model directory, hf://org/name[@revision], an http(s) URL of a
    .safetensors file, or an object-store prefix (oci://, s3://, gs://, az://).
    Remote models are read by their safetensors headers only (a few KB per shard),
    nothing is downloaded.
    """
    try:
        parameters = parse_params(params)
        if (parameters or ca_bundle) and "://" not in target:
            raise BadInput("--param/--ca-bundle apply to remote models: drop them for a directory")
        if schema_path is not None:
            try:
                check_schema_path(schema_path)
            except ConfigError as e:
                raise BadInput(f"--schema-path: {e}") from None
        if "://" in target:
            result = discovery.inspect_remote(
                target,
                revision=revision,
                schema_path=schema_path,
                params=parameters,
                engine=build_engine(TransferSettings(ca_bundle=ca_bundle)),
            )
        else:
            if revision is not None:
                raise BadInput("--revision applies to hf:// models only: drop it for a directory")
            result = discovery.discover(Path(target), schema_path=schema_path)
    except OmeAgentError as e:
        click.echo(f"error: {e}", err=True)
        if termination_log is not None:
            _write_text(termination_log, str(e))
        sys.exit(e.exit_code)

    unusable = result.model_type is None and result.model_architecture is None
    if termination_log is not None and not unusable:
        _write_termination_log(termination_log, result.to_ome_config())
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        width = max(len(label) for label, _ in _ROWS)
        for label, key in _ROWS:
            click.echo(f"{label:<{width}}  {_cell(key, data[key])}")
        for message in result.errors:
            click.echo(f"error: {message}", err=True)
    if unusable:
        message = (
            "the model's config gave no usable field (model_type, architectures): "
            "fix its config.json, or point --schema-path at the right one"
        )
        click.echo(f"error: {message}", err=True)
        if termination_log is not None:
            # the Pod's status carries this file alone: what discovery found wrong
            # (config.json missing, unreadable) comes first
            _write_text(termination_log, "; ".join([*result.errors, message]))
        sys.exit(1)


def _write_termination_log(path: str, config: dict[str, Any]) -> None:
    """Kubernetes keeps at most 4096 bytes of a termination message: when the config
    is larger, the decoded configuration (the bulkiest part) is left out."""
    text = json.dumps(config, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > TERMINATION_LOG_LIMIT:
        slim = {k: v for k, v in config.items() if k != "decodedModelConfiguration"}
        text = json.dumps(slim, separators=(",", ":"), sort_keys=True)
    _write_text(path, text)


def _write_text(path: str, text: str) -> None:
    if len(text.encode()) > TERMINATION_LOG_LIMIT:  # the kubelet would cut it anyway
        text = text.encode()[: TERMINATION_LOG_LIMIT - 3].decode(errors="ignore") + "..."
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise click.ClickException(f"--termination-log {path}: {e.strerror}") from None
