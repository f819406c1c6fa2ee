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


def test_parquet_keeps_the_param_columns_of_a_table(tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"run_id": ["a", "b"], "steps": [10, 20], "psnr": [1.0, 2.0]})
    frame.attrs["param_columns"] = ["steps"]
    io.write_parquet(tmp_path / "t.parquet", frame)
    assert io.read_parquet(tmp_path / "t.parquet").attrs == {"param_columns": ["steps"]}
    assert b"PANDAS_ATTRS" in pq.read_schema(tmp_path / "t.parquet").metadata   # in the file, for any reader


def test_a_write_removes_the_temporaries_that_interrupted_writes_of_its_file_left(tmp_path):
    import time

    stale, fresh, other = (tmp_path / name for name in (".out.json.abc123.tmp", ".out.json.def456.tmp",
                                                         ".other.json.ghi789.tmp"))
    for path in (stale, fresh, other):
        path.write_text("partial")
    past = io.STARTED - 60                 # before this process started: an earlier, killed job's
    for path in (stale, other):
        os.utime(path, (past, past))
    os.utime(fresh, (time.time() + 60, time.time() + 60))   # newer than this process: a live write
    io.write_json(tmp_path / "out.json", {"a": 1})
    assert not stale.exists() and fresh.exists() and other.exists()
    assert io.remove_stale_temporaries(tmp_path) == [other]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.json.def456.tmp", "out.json"]
