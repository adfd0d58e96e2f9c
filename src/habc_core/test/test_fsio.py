"""habc_core.fsio: the one atomic, durable file write."""

import os
import stat

import pytest

from habc_core import fsio


def test_atomic_write_replaces_with_the_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "store.json"
    target.write_text("old")
    old_umask = os.umask(0o077)  # the mode is explicit, not the umask's
    try:
        fsio.atomic_write_text(target, "new")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["store.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "episode.yaml"
    target.write_text("old")

    def fail(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(fsio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        fsio.atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["episode.yaml"]


def test_write_new_file_refuses_an_existing_file(tmp_path):
    fsio.write_new_file(tmp_path / "model.safetensors", b"x", 0o640)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o640
    with pytest.raises(FileExistsError):
        fsio.write_new_file(tmp_path / "model.safetensors", b"y")
