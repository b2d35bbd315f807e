"""Remote names can only land inside DEST: a hostile listing must not write outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ome_agent.errors import UnsafePath
from ome_agent.transfer.confine import confine


def test_plain_names_land_under_dest(tmp_path: Path) -> None:
    assert confine(tmp_path, "a.json") == tmp_path.resolve() / "a.json"
    assert (
        confine(tmp_path, "dir/sub/w.safetensors") == tmp_path.resolve() / "dir/sub/w.safetensors"
    )
    assert confine(tmp_path, "..hidden") == tmp_path.resolve() / "..hidden"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        "a/",
        "..",
        "a\\..\\b",
        "nul\0byte",
        "line\nbreak",
        "C:/windows",
    ],
)
def test_hostile_names_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePath) as info:
        confine(tmp_path, name)
    assert info.value.exit_code == 2
    assert repr(name) in str(info.value)


def test_symlink_escape_rejected(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "link")
    with pytest.raises(UnsafePath, match="outside DEST"):
        confine(dest, "link/file.bin")
    os.symlink(outside / "f", dest / "filelink")
    with pytest.raises(UnsafePath, match="outside DEST"):
        confine(dest, "filelink")


def test_symlink_inside_dest_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert confine(tmp_path, "alias/x") == tmp_path.resolve() / "real" / "x"
