"""Writes are atomic: a temporary file beside the target, then one rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tac_bootstrap.infrastructure.atomic_write import write_atomic


def test_creates_parents_and_writes_bytes_exactly(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.py"
    write_atomic(target, b"x = '{{ raw }}'\r\n")
    assert target.read_bytes() == b"x = '{{ raw }}'\r\n"
    assert os.listdir(target.parent) == ["file.py"]


def test_new_files_get_the_usual_permissions_not_mkstemps(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.txt", b"hi\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


def test_existing_permissions_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "tool.py"
    target.write_bytes(b"old\n")
    target.chmod(0o755)
    write_atomic(target, b"new\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one fault we cannot cause for real: the process dying between write and rename.
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old content\n")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"new content\n")

    assert target.read_bytes() == b"old content\n"
    assert os.listdir(tmp_path) == ["keep.txt"]
