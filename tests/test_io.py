"""Atomic writes: all or nothing, with ordinary permissions."""

import os
import stat

import pytest

from diffsweep import io


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    io.write_json(target, {"a": 1})
    assert io.read_json(target) == {"a": 1}


def test_outputs_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
