"""Results folders that are damaged or come from someone else (issue 26): every file read from
a results folder is named when it cannot be read, every name a record holds is checked before it
becomes a path, and the commands that take --results refuse a missing or foreign folder in one
line and a non-zero exit. In-process and cheap: the results folder is written by runs.ShardStore
itself, without torch or Snakemake."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffsweep import cli, config, io, runs
from diffsweep.runs import loop

RUN = "rw-0123456789abcdef"          # a run id of the grid's form
OTHER = "rw-fedcba9876543210"
SHARD = "oracle-00112233445566778.8899aabbccddeeff"


def record(run_id: str = RUN, status: str = "ok") -> dict:
    run = {"id": run_id, "kind": "generation", "row": {"run_id": run_id}, "identity": {"seed": 0}}
    return runs.make_record(run, status, 10, 0.5, "cpu", {"git_revision": None}, {"metrics": {"sliced_w2": 0.1}})


def results_folder(root: Path, samples: np.ndarray | None = None) -> Path:
    """A results folder of this layout with one shard: RUN (its samples.npz stored) and OTHER."""
    results = root / "results"
    runs.mark_layout(results)
    store = runs.ShardStore(results, SHARD)
    staging = store.run_staging(RUN)
    io.write_arrays(staging / "samples.npz", x=np.zeros((4, 2)) if samples is None else samples)
    store.append(record(RUN), staging)
    store.append(record(OTHER))
    store.close()
    return results


def rewrite(results: Path, change) -> Path:
    """Apply `change` to RUN's record line (a dict, changed in place); the record file's path."""
    path = runs.record_file(results, SHARD)
    lines = path.read_text().splitlines()
    line = json.loads(lines[0])
    change(line)
    lines[0] = json.dumps(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_error(capsys, argv) -> tuple[int, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


# --- names read from a record ---------------------------------------------------------------

HOSTILE = [
    ("file_name_climbs", lambda r: r.update(files={"../../x.npz": r["files"]["samples.npz"]}),
     "lists a file \"../../x.npz\", which is not a plain file name"),
    ("file_name_absolute", lambda r: r.update(files={"/tmp/x.npz": r["files"]["samples.npz"]}), "not a plain file name"),
    ("file_name_in_a_folder", lambda r: r.update(files={"a/x.npz": r["files"]["samples.npz"]}), "not a plain file name"),
    ("file_name_hidden", lambda r: r.update(files={".x.npz": r["files"]["samples.npz"]}), "not a plain file name"),
    ("archive_climbs", lambda r: r.update(archive="../../elsewhere.archive"), "is not the name of an archive"),
    ("archive_not_an_archive", lambda r: r.update(archive="x.jsonl"), "is not the name of an archive"),
    ("run_id_climbs", lambda r: r.update(run_id="../../" + RUN), "is not a run id"),
    ("files_a_list", lambda r: r.update(files=["samples.npz"]), "files of the wrong type"),
    ("metrics_a_list", lambda r: r.update(metrics=[1, 2]), "metrics of the wrong type"),
    ("row_a_number", lambda r: r.update(row=3), "row of the wrong type"),
    ("kind_unknown", lambda r: r.update(kind="../x"), "kind \"../x\" is not one of generation, restoration"),
    ("offset_negative", lambda r: r["files"]["samples.npz"].update(offset=-5), "lacks an offset, a size or a sha256"),
    ("offset_text", lambda r: r["files"]["samples.npz"].update(offset="0"), "lacks an offset, a size or a sha256"),
    ("listed_a_string", lambda r: r["files"].update({"samples.npz": "x"}), "lacks an offset, a size or a sha256"),
]


@pytest.mark.parametrize("change, expected", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_a_hostile_record_is_corrupt_and_nothing_is_written_outside_the_output_folder(tmp_path, capsys, change,
                                                                                      expected):
    results = results_folder(tmp_path)
    path = rewrite(results, change)
    states = runs.index(results)
    assert RUN not in runs.done_runs(results, [RUN], states)
    named = json.loads(path.read_text().splitlines()[0])["run_id"]     # that run is corrupt (recomputed)
    status, _, problem = runs.run_state(results, named, states)
    assert status == "corrupt" and problem.startswith(f"{path} line 1: ") and expected in problem, problem
    out = tmp_path / "work" / "deep" / "x"
    code, err = cli_error(capsys, ["extract", RUN, "--results", str(results), "--out", str(out)])
    assert code != 0 and len(err.strip().splitlines()) == 1 and str(path) in err or "no record" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]      # nothing written anywhere


def test_the_grids_run_ids_have_the_form_records_are_checked_against(tmp_path):
    from diffsweep import grid as ds_grid
    built = ds_grid.build(config.prepare({"datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
                                          "models": {"oracle": {"source": "oracle"}},
                                          "samplers": {"rw": {"family": "random_walk", "steps": 3}}}))
    assert built.runs and all(runs.RUN_ID.fullmatch(run_id) for run_id in built.runs)


# --- the commands that take a results folder --------------------------------------------------

def _existing_file(tmp_path: Path) -> str:
    (tmp_path / "a_file").write_text("x")
    return str(tmp_path / "a_file")


COMMANDS = [
    ("extract_results_nowhere", lambda t, r: ["extract", RUN, "--results", str(t / "nowhere"), "--out", str(t / "o")],
     "--results: '{t}/nowhere' does not exist"),
    ("extract_results_a_file", lambda t, r: ["extract", RUN, "--results", _existing_file(t)], "is not a folder"),
    ("extract_out_an_existing_file", lambda t, r: ["extract", RUN, "--results", str(r), "--out", _existing_file(t)],
     "--out: '{t}/a_file' is an existing file"),
    ("extract_run_id_climbs", lambda t, r: ["extract", "../" + RUN, "--results", str(r), "--out", str(t / "o")],
     "RUN_ID '../rw-0123456789abcdef' is not a run id"),
    ("forget_unknown_run", lambda t, r: ["forget", "rw-ffffffffffffffff", "--results", str(r)],
     "no record of run rw-ffffffffffffffff under {t}/results/records; nothing deleted"),
    ("forget_one_unknown_of_two", lambda t, r: ["forget", RUN, "rw-ffffffffffffffff", "--results", str(r)],
     "nothing deleted"),
    ("forget_results_nowhere", lambda t, r: ["forget", RUN, "--results", str(t / "nowhere")], "does not exist"),
    ("forget_run_id_not_an_id", lambda t, r: ["forget", "rw", "--results", str(r)], "RUN_ID 'rw' is not a run id"),
    ("forget_old_layout", lambda t, r: _then((r / "layout.json").write_text('{"version": 2}'),
                                             ["forget", RUN, "--results", str(r)]),
     "--results: '{t}/results' holds runs of layout version 2"),
    ("forget_layout_a_list", lambda t, r: _then((r / "layout.json").write_text("[3]"),
                                                ["forget", RUN, "--results", str(r)]),
     "{t}/results/layout.json: holds [3], not a layout marker"),
    ("forget_record_file_a_folder", lambda t, r: (r / "records" / "x.jsonl").mkdir()
     or ["forget", RUN, "--results", str(r)], "{t}/results/records/x.jsonl: is not a regular file"),
    ("extract_records_a_file", lambda t, r: _replace_by_file(r / "records")
     or ["extract", RUN, "--results", str(r), "--out", str(t / "o")], "{t}/results/records: is not a folder"),
    ("table_missing", lambda t, r: ["table", str(t / "nowhere.parquet"), "--rows", "a", "--metric", "m"],
     "'{t}/nowhere.parquet' does not exist"),
    ("table_a_folder", lambda t, r: ["table", str(r), "--rows", "a", "--metric", "m"], "is not a file"),
    ("table_not_parquet", lambda t, r: ["table", str(r / "layout.json"), "--rows", "a", "--metric", "m"],
     "{t}/results/layout.json: cannot be read as a Parquet table"),
]


def _then(_, argv: list) -> list:
    """`argv`, after the change made in the first argument."""
    return argv


def _replace_by_file(path: Path) -> None:
    import shutil
    shutil.rmtree(path)
    path.write_text("x")


@pytest.mark.parametrize("argv, expected", [case[1:] for case in COMMANDS], ids=[case[0] for case in COMMANDS])
def test_a_command_refuses_a_missing_odd_or_hostile_results_folder_in_one_line(tmp_path, capsys, argv, expected):
    results = results_folder(tmp_path)
    before = runs.record_file(results, SHARD).read_bytes() if runs.record_file(results, SHARD).exists() else None
    code, err = cli_error(capsys, argv(tmp_path, results))
    assert code != 0
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert expected.format(t=tmp_path) in err, err
    if before is not None and runs.record_file(results, SHARD).exists():
        assert runs.record_file(results, SHARD).read_bytes() == before      # nothing forgotten


def test_status_names_an_unreadable_record_file_and_layout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(json.dumps({
        "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
        "models": {"oracle": {"source": "oracle"}}, "samplers": {"rw": {"family": "random_walk", "steps": 3}}, "restoration": {"tasks": {}}}))
    results = results_folder(tmp_path)
    assert cli.main(["status", "--config", "c.yaml"]) == 0
    capsys.readouterr()
    (results / "records" / "x.jsonl").mkdir()
    code, err = cli_error(capsys, ["status", "--config", "c.yaml"])
    assert code == 2 and err == "error: results/records/x.jsonl: is not a regular file; a record file holds one JSON " \
                                "line per run: move it aside\n"
    (results / "layout.json").write_text('{"version": 3')      # truncated
    code, err = cli_error(capsys, ["status", "--config", "c.yaml"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "results: results/layout.json: cannot be read as JSON (JSONDecodeError" in err, err


def test_forget_and_extract_still_work_on_a_good_folder(tmp_path, capsys):
    results = results_folder(tmp_path)
    assert cli.main(["extract", RUN, "--results", str(results), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / RUN / "samples.npz").is_file()
    assert cli.main(["forget", OTHER, "--results", str(results)]) == 0
    assert runs.done_runs(results, [RUN, OTHER]) == {RUN}


# --- readers of the files of a results folder --------------------------------------------------

READERS = [("json", io.read_json, "layout.json", "JSON"), ("npz", io.read_arrays, "reference.npz", "an .npz file"),
           ("parquet", io.read_parquet, "generation.parquet", "a Parquet table")]
DAMAGE = [("truncated", lambda path, good: path.write_bytes(good[: len(good) // 2])),
          ("empty", lambda path, good: path.write_bytes(b"")),
          ("a_folder", lambda path, good: path.mkdir()),
          ("random_bytes", lambda path, good: path.write_bytes(os.urandom(64)))]


def _good_bytes(kind: str, tmp_path: Path) -> bytes:
    path = tmp_path / f"good.{kind}"
    {"json": lambda: io.write_json(path, {"version": 3}), "npz": lambda: io.write_arrays(path, x=np.zeros((3, 2))),
     "parquet": lambda: io.write_parquet(path, pd.DataFrame({"a": [1, 2]}))}[kind]()
    return path.read_bytes()


@pytest.mark.parametrize("kind, read, name, what", READERS, ids=[case[0] for case in READERS])
@pytest.mark.parametrize("damage", [case[1] for case in DAMAGE], ids=[case[0] for case in DAMAGE])
def test_a_damaged_file_is_named_in_one_line(tmp_path, kind, read, name, what, damage):
    path = tmp_path / name
    damage(path, _good_bytes(kind, tmp_path))
    with pytest.raises(io.UnreadableFile) as raised:
        read(path)
    assert str(raised.value).startswith(f"{path}: cannot be read as {what}") and "\n" not in str(raised.value)


@pytest.mark.parametrize("x, expected", [
    (np.array([[0.0, 1.0], [np.nan, 0.0], [np.inf, 1.0]]), "2 of 3 samples hold NaN or infinite values"),
    (np.zeros((0, 2)), "holds an array x of float64 and shape (0, 2), not samples"),
    (np.array(["a", "b"]), "not samples"),
])
def test_a_damaged_sample_set_is_named(tmp_path, x, expected):
    path = tmp_path / "data" / "ring8-0123456789abcdef" / "reference.npz"
    io.write_arrays(path, x=x)
    with pytest.raises(io.UnreadableFile, match="^" + str(path).replace(".", r"\.") + ": ") as raised:
        io.read_sample_set(path)
    assert expected in str(raised.value)
    io.write_arrays(path, y=np.zeros((2, 2)))
    with pytest.raises(io.UnreadableFile, match=r"holds arrays \['y'\], not samples"):
        io.read_sample_set(path)


def test_a_shard_whose_reference_set_holds_nan_records_its_runs_failed_naming_the_file(tmp_path):
    """(the job loads its data before torch does anything else: every run fails, as data, with the file named)"""
    results = tmp_path / "results"
    reference = results / "data" / "ring8-0123456789abcdef" / "reference.npz"
    io.write_arrays(reference, x=np.array([[0.0, 1.0], [np.nan, 0.0]]))
    model = {"id": "oracle-0123456789abcdef", "source": "oracle",
             "data": {"id": "ring8-0123456789abcdef", "family": "gmm", "knobs": {"preset": "ring8"}}}
    run = {"id": RUN, "kind": "generation", "row": {"run_id": RUN}, "identity": {}, "family": "random_walk"}
    loop.run_shard(model, [run], reference, None, results, results / "shards" / f"{SHARD}.json", {}, device="cpu")
    status, failed, _ = runs.run_state(results, RUN)
    assert status == "failed"
    assert failed["error"] == (f"UnreadableFile: {reference}: 1 of 2 samples hold NaN or infinite values; delete it "
                               f"to draw the data set again")


# --- figures of runs whose samples are missing, non-finite or malformed --------------------------

def test_the_sample_figure_survives_a_damaged_reference_and_non_finite_or_malformed_samples(tmp_path):
    from diffsweep.plots import samples

    results = results_folder(tmp_path, samples=np.full((4, 2), np.nan))     # a diverged run's samples
    store = runs.ShardStore(results, SHARD)
    for run_id, arrays in (("rw2-0123456789abcdef", {"y": np.zeros((4, 2))}),       # no samples x
                           ("rw3-0123456789abcdef", {"x": np.zeros((4,))}),          # not (n, 2)
                           ("rw4-0123456789abcdef", {"x": np.array([[np.inf, 0.0], [0.0, 1.0]])})):
        staging = store.run_staging(run_id)
        io.write_arrays(staging / "samples.npz", **arrays)
        store.append(record(run_id), staging)
    table = pd.DataFrame({"run_id": [RUN, "rw2-0123456789abcdef", "rw3-0123456789abcdef", "rw4-0123456789abcdef",
                                     OTHER],
                          "dataset": "ring8", "status": ["diverged", "ok", "ok", "ok", "ok"], "seed": 0,
                          "model": "oracle", "sampler": ["rw", "rw2", "rw3", "rw4", "other"], "nfe": 10,
                          "sliced_w2": [np.nan, 0.1, 0.2, 0.3, 0.4]})
    reference = np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, np.inf], [2.0, 3.0]])
    out = [tmp_path / "samples.png"]
    samples.sample_grid(table, "ring8", results, reference, out, rank_by="sliced_w2")
    assert all(path.stat().st_size > 0 for path in out)
    samples.sample_grid(table, "ring8", results, np.full((3, 2), np.nan), out)       # no finite reference row at all


# --- the results folder a config names ---------------------------------------------------------

def test_a_results_folder_under_home_is_expanded_once_for_the_check_and_the_jobs(tmp_path, monkeypatch):
    """`~/x` was checked with `~` expanded but written to a folder literally named `~`."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    checked = config.check({"datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
                            "models": {"oracle": {"source": "oracle"}},
                            "samplers": {"rw": {"family": "random_walk", "steps": 3}}, "results": "~/sweep"})
    assert checked.config["results"] == str(tmp_path / "home" / "sweep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"] and not any((tmp_path / "home").iterdir())
