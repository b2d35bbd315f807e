"""FineTunedWeights on the node: a zipped adapter unpacked, its config described
(reconcile core, layer 4: between the download and the report).

OME stores a fine-tuned adapter either as a folder of objects or as one zip object.
A single ``*.zip`` downloaded for a FineTunedWeight is unpacked in its staging
directory before anything looks at it, under the rules a hostile archive must not
break: every member name goes through the same confinement as a remote file name
(no ``..``, absolute paths, backslashes or NUL), symbolic links and special files
are refused, the member count is bounded, the declared sizes must fit on the disk
(``zipfile`` never writes more than a member declares), and every member's CRC-32
is checked while it is written. The archive itself is removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.errors import BadInput, UnsafePath
from ome_agent.reconcile.download import Digests, check_space
from ome_agent.transfer.confine import confine

MAX_MEMBERS = 100_000
_COPY_BUFFER = 8 * 1024 * 1024
# keys of a PEFT adapter_config.json worth reporting (the rest is training detail)
_ADAPTER_KEYS = (
    "peft_type",
    "task_type",
    "r",
    "lora_alpha",
    "target_modules",
    "base_model_name_or_path",
)


def unpack_single_zip(staging: Path, digests: Digests) -> Digests:
    """If ``staging`` holds exactly one file and it is a zip, unpack it in place.

    Returns the digests of what is now in ``staging`` (for the manifest): each member
    verified by its CRC-32 and size; BadInput naming the member for a hostile archive."""
    files = [p for p in staging.rglob("*") if p.is_file()]
    if len(files) != 1 or files[0].suffix.lower() != ".zip" or not zipfile.is_zipfile(files[0]):
        return digests
    archive = files[0]
    name = archive.relative_to(staging).as_posix()
    try:
        with zipfile.ZipFile(archive) as z:
            members = _checked_members(z, name, staging)
            check_space(staging, sum(m.file_size for m, _ in members))
            unpacked: Digests = {}
            for member, target in members:
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, _COPY_BUFFER)  # CRC-32 checked at EOF
                rel = target.relative_to(staging.resolve()).as_posix()
                unpacked[rel] = ({"crc32": f"{member.CRC:08x}"}, ["zip-crc32", "size"])
    except UnsafePath as e:
        raise BadInput(f"spec.storage.storageUri: archive {name}: {e}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise BadInput(
            f"spec.storage.storageUri: archive {name} is damaged ({e}): upload it again"
        ) from None
    except FileExistsError as e:
        raise BadInput(
            f"spec.storage.storageUri: archive {name}: a member would overwrite {e.filename}"
        ) from None
    archive.unlink()
    return unpacked


def _checked_members(
    z: zipfile.ZipFile, name: str, staging: Path
) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Every member with its confined target, all checked before a byte is written."""
    members = z.infolist()
    if len(members) > MAX_MEMBERS:
        raise BadInput(
            f"spec.storage.storageUri: archive {name} has {len(members)} members, more than "
            f"{MAX_MEMBERS}: an adapter is a few files"
        )
    checked = []
    for m in members:
        kind = stat.S_IFMT(m.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafePath(m.filename, "is a symbolic link or special file in the archive")
        checked.append((m, confine(staging, m.filename.rstrip("/") if m.is_dir() else m.filename)))
    return checked


def fine_tuned_config(resource: ModelResource, model_dir: Path) -> dict[str, Any]:
    """The ``config`` of a FineTunedWeight's node entry: what it applies to and, for a
    PEFT adapter, its shape. Base-model metadata stays on the base model's entry."""
    config: dict[str, Any] = {}
    base = resource.base_key
    if base is not None:
        ref: dict[str, str] = {"kind": base.kind, "name": base.name}
        if base.namespace:
            ref["namespace"] = base.namespace
        config["baseModelRef"] = ref
    model_type = getattr(resource.spec, "model_type", None)
    if model_type:
        config["modelType"] = model_type
    found = sorted(model_dir.rglob("adapter_config.json"))
    if found:
        try:
            raw = json.loads(found[0].read_text())
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, dict):
            config["adapter"] = {k: raw[k] for k in _ADAPTER_KEYS if k in raw}
    return config
