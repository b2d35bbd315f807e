"""Where a model's files go on the node, and which paths may ever be written or removed
(reconcile core, layer 4).

- ``storage.path`` absolute: must lie strictly inside one of ``--models-root-dir``
  (never a root itself); relative: under the first root; absent: under the first root
  at ``<name>`` (ClusterBaseModel) or ``<namespace>/<name>`` (BaseModel).
- a download goes to a staging directory *next to* the target (same filesystem), named
  after the model and the source identity, so a restart with the same spec finds the
  same directory and resumes from the engine's journals.
- names fit the filesystem (:mod:`ome_agent.names`): a default directory is the
  model's name shortened to :data:`~ome_agent.names.NAME_BUDGET` bytes when longer,
  a staging directory (and its ``.old`` twin) carries as much of the target's name as
  fits beside its prefix and digest, and a ``storage.path`` too long for the kernel
  is refused naming the field.
- the switch from staging to target is atomic: ``renameat2(RENAME_EXCHANGE)`` swaps a
  previous version and the new one in one step (readers see one or the other, never a
  mix); where the kernel or filesystem lacks it, the old directory is renamed aside
  first and the new one renamed into place (a short window with no directory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ome_agent.api import ModelKey, StorageSpec
from ome_agent.durable import fsync_dir
from ome_agent.errors import BadInput
from ome_agent.names import NAME_BUDGET, NAME_MAX, fit, path_fits
from ome_agent.reconcile.options import STATE_DIR_NAME

STAGING_PREFIX = ".ome-staging-"
_DIGEST = 16  # hex characters of the (model, identity) digest in a staging name
_ASIDE = ".old"  # the previous version's name where RENAME_EXCHANGE is missing
# the target's name in a staging name: prefix, name, "-", digest and ".old" fit the budget
_STAGED_NAME = NAME_BUDGET - len(STAGING_PREFIX) - 1 - _DIGEST - len(_ASIDE)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


@functools.lru_cache(maxsize=64)
def _real_dir_cached(path: Path) -> Path:
    return _real(path)


def _real_dir(path: Path) -> Path:
    """A models root or ``--local-source-dir``, resolved once per process while it
    exists (mounts do not move under a running agent): resolving each of them again
    for every model made a start-up of 10,000 models spend seconds in ``lstat``."""
    if not os.path.isdir(path):
        return _real(path)  # not there yet: resolved again once it is
    return _real_dir_cached(path)


def _real_under(root: Path, parts: list[str]) -> Path:
    """``realpath(root / parts)`` looking only at ``parts`` on disk (one ``lstat``
    each), ``root`` being resolved once (:func:`_real_dir`); a symbolic link among
    them, or a part that is not a plain name, is resolved in full."""
    path = _real_dir(root)
    for i, part in enumerate(parts):
        if part in ("", ".", "..") or "/" in part:
            return _real(root.joinpath(*parts))
        path = path / part
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:  # missing: so is what is below it (realpath keeps them as given)
            return path.joinpath(*parts[i + 1 :])
        if link:
            return _real(root.joinpath(*parts))
    return path


def _inside_real(p: Path, r: Path) -> bool:
    return p != r and r in p.parents


def inside(path: Path, root: Path) -> bool:
    """``path`` lies strictly below ``root`` (both resolved through symlinks)."""
    return _inside_real(_real(path), _real_dir(root))


FINE_TUNED_DIR = "fine-tuned"


def target_dir(key: ModelKey, storage: StorageSpec | None, roots: tuple[Path, ...]) -> Path:
    """The model's directory; BadInput naming ``spec.storage.path`` if it is not allowed."""
    raw = (storage.path if storage else None) or ""
    if not raw:
        name = fit(key.name, NAME_BUDGET)
        if key.kind == "FineTunedWeight":  # apart from the models: names may repeat
            parts = [FINE_TUNED_DIR, name]
        else:
            parts = [key.namespace, name] if key.namespace else [name]
        return _real_under(roots[0], parts)
    path = Path(raw)
    if not path.is_absolute():
        if any(seg in ("", ".", "..") for seg in raw.strip("/").split("/")):
            raise BadInput(
                f"spec.storage.path {raw!r} has '.' or '..' segments: give a plain relative "
                "path or an absolute path inside --models-root-dir"
            )
        path = roots[0] / raw
    resolved = _real(path)
    roots_text = ", ".join(str(r) for r in roots)
    for root in roots:
        if _real_dir(root) == resolved:
            raise BadInput(
                f"spec.storage.path {raw!r} is the models root itself: give a directory "
                f"below it, e.g. {root}/{key.name}"
            )
        if _inside_real(resolved, _real_dir(root)):
            if STATE_DIR_NAME in resolved.relative_to(_real_dir(root)).parts:
                raise BadInput(f"spec.storage.path {raw!r} is inside the agent's own state")
            _check_length(raw, resolved)
            return resolved
    raise BadInput(
        f"spec.storage.path {raw!r} is outside the models roots ({roots_text}): give a path "
        "inside one, or mount its parent on the node and add it with another "
        "--models-root-dir (the flag repeats)"
    )


def _check_length(raw: str, path: Path) -> None:
    """BadInput naming ``spec.storage.path`` unless the kernel accepts ``path``, its
    staging sibling and the files below it."""
    long = next((p for p in path.parts if len(os.fsencode(p)) > NAME_MAX), None)
    if long is not None:
        raise BadInput(
            f"spec.storage.path {raw!r} has a segment of {len(os.fsencode(long))} bytes: "
            f"the filesystem allows {NAME_MAX}; give shorter directory names"
        )
    # the staging sibling is at most NAME_BUDGET bytes long; keep as much for the files
    if not path_fits(os.fsencode(path.parent), 2 * NAME_BUDGET + 2):
        raise BadInput(
            f"spec.storage.path {raw!r} is {len(os.fsencode(path))} bytes long: too long "
            "for the files below it to fit the kernel's path limit; give a shorter path"
        )


def local_source(source: Path, roots: tuple[Path, ...], allowed: tuple[Path, ...]) -> Path:
    """A local-path storageUri, resolved; BadInput unless it lies strictly inside a
    models root or is, or lies inside, a ``--local-source-dir`` (the agent never reads
    other node paths on a model author's behalf; a root itself holds every model)."""
    resolved = _real(source)
    if any(_inside_real(resolved, _real_dir(d)) for d in roots + allowed) or any(
        resolved == _real_dir(d) for d in allowed
    ):
        return resolved
    dirs = ", ".join(str(d) for d in roots + allowed)
    raise BadInput(
        f"spec.storage.storageUri: local path {source} is outside the folders the agent may "
        f"read ({dirs}): put the model there, or allow its folder on this node with "
        "--local-source-dir"
    )


def overlaps(a: Path, b: Path) -> bool:
    """One directory equals or contains the other."""
    return a == b or a in b.parents or b in a.parents


def staging_dir(target: Path, key: ModelKey, identity: str) -> Path:
    """Deterministic per (model, source identity): a rerun resumes in the same place."""
    digest = hashlib.sha256(f"{key}\0{identity}".encode()).hexdigest()[:_DIGEST]
    return target.parent / f"{STAGING_PREFIX}{fit(target.name, _STAGED_NAME)}-{digest}"


def _renameat2() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_EXCHANGE = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False when the system cannot."""
    if _EXCHANGE is None:
        return False
    rc = _EXCHANGE(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def switch_into_place(staging: Path, target: Path) -> Path | None:
    """Make ``staging`` the model's directory; return where the previous version now is
    (for the caller to remove), or None if there was none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() and not target.is_symlink():
        os.rename(staging, target)
        fsync_dir(target.parent)
        return None
    if exchange(staging, target):
        fsync_dir(target.parent)
        return staging  # now holds the old version
    aside = staging.with_name(staging.name + _ASIDE)
    os.rename(target, aside)
    os.rename(staging, target)
    fsync_dir(target.parent)
    return aside


def remove_tree(path: Path, roots: Iterable[Path]) -> bool:
    """Remove ``path`` if, and only if, it lies strictly inside a models root.

    Returns whether something was removed. A path that is a root, or outside every
    root, is refused with BadInput: the caller has a bug, nothing is deleted."""
    if not any(inside(path, r) for r in roots):
        raise BadInput(f"refusing to remove {path}: not strictly inside a models root")
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False
