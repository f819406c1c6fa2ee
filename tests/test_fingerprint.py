"""Code fingerprints (diffsweep.fingerprint): an edit changes exactly the fingerprints of the code it
reaches, a comment, docstring or formatting edit none. Each edit is made in a copy of the package's
source tree, read through the Fingerprinter's `root`; nothing is imported from the copy."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffsweep import restoration, samplers
from diffsweep.fingerprint import Fingerprinter
from diffsweep.registry import load_plugin

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"


def draws(fp: Fingerprinter) -> dict:
    """Every built-in sampler's and restorer's draw fingerprint on its default schedule."""
    found = {("generation", name): fp.draw("generation", name, samplers.get(name).default_schedule, "oracle")
             for name in samplers.names()}
    found.update({("restoration", name): fp.draw("restoration", name, restoration.get(name).default_schedule,
                                                 "oracle", operator="inpaint_box") for name in restoration.names()})
    return found


@pytest.fixture(scope="module")
def baseline():
    fp = Fingerprinter(SOURCE)
    return draws(fp), {kind: fp.evaluate(kind) for kind in ("generation", "restoration")}


@pytest.fixture
def tree(tmp_path):
    """A copy of the package's source tree; `tree.edit(file, old, new)` edits one place of it."""
    shutil.copytree(SOURCE / "diffsweep", tmp_path / "diffsweep", ignore=shutil.ignore_patterns("__pycache__"))

    class Tree:
        root = tmp_path

        @staticmethod
        def edit(file: str, old: str, new: str) -> None:
            path = tmp_path / "diffsweep" / file
            text = path.read_text()
            assert text.count(old) == 1, f"{old!r} is not once in {file}"
            path.write_text(text.replace(old, new))
    return Tree


def changed(before: dict, after: dict) -> set:
    return {key for key in before if before[key].digest != after[key].digest}


def after_edit(tree) -> tuple[dict, dict]:
    fp = Fingerprinter(tree.root)
    return draws(fp), {kind: fp.evaluate(kind) for kind in ("generation", "restoration")}


def test_editing_one_sampler_changes_its_draw_fingerprint_and_no_other(tree, baseline):
    tree.edit("samplers/ddpm.py", "    return z, nfe\n", "    return 1.5 * z, nfe\n")
    drawn, evaluated = after_edit(tree)
    assert changed(baseline[0], drawn) == {("generation", "ddpm")}
    assert changed(baseline[1], evaluated) == set()


NO_CODE_CHANGE = {
    "comment": ("samplers/ddpm.py", "    nfe = 0\n    for k, sigma in enumerate(sigmas):\n        x_ve",
                "    nfe = 0  # counted here\n    # one step per level\n    for k, sigma in enumerate(sigmas):\n"
                "        x_ve"),
    "docstring": ("samplers/ddpm.py", '    """abar for every level and for the final sigma = 0."""',
                  '    """The alpha-bars, rewritten."""'),
    "new docstring": ("samplers/ddpm.py", "def ddpm(denoise, x, sigmas, noise, *, variance, callback=None):\n",
                      'def ddpm(denoise, x, sigmas, noise, *, variance, callback=None):\n    """Ho et al."""\n'),
    "module docstring": ("samplers/levels.py", "the problem instead of returning NaN", "the problem, not NaN"),
    "whitespace": ("samplers/ddpm.py", "    z = math.sqrt(abar[0]) * x\n",
                   "\n    z = math.sqrt(  abar[0]\n                   ) *x    \n\n"),
    "description": ("samplers/ddpm.py", 'description="DDPM ancestral sampling on the (respaced) VP chain"',
                    'description="DDPM, described otherwise"'),
}


def test_a_comment_docstring_or_formatting_edit_changes_no_fingerprint(tree, baseline):
    # every kind of edit at once (one fingerprinting of the tree): a digest has no way to undo a change
    for edit in NO_CODE_CHANGE.values():
        tree.edit(*edit)
    drawn, evaluated = after_edit(tree)
    assert changed(baseline[0], drawn) == set()
    assert changed(baseline[1], evaluated) == set()


def test_editing_a_shared_helper_changes_every_draw_that_reaches_it_and_no_other(tree, baseline):
    helper = "diffsweep.samplers.levels:steps_to_zero"
    reaching = {key for key, fingerprint in baseline[0].items() if helper in fingerprint.symbols}
    # steps_to_zero is a helper of some samplers and restorers, not of all of them
    assert ("generation", "edm") in reaching and ("generation", "ddpm") not in reaching
    assert any(kind == "restoration" for kind, _ in reaching)
    tree.edit("samplers/levels.py", "    return list(zip(levels[:-1], levels[1:]))\n",
              "    return list(zip(levels[:-1], levels[1:]))[::-1]\n")
    drawn, evaluated = after_edit(tree)
    assert changed(baseline[0], drawn) == reaching
    assert changed(baseline[1], evaluated) == set()


def test_editing_a_metric_changes_only_the_evaluate_fingerprint_of_its_kind(tree, baseline):
    tree.edit("metrics.py", "    return 2.0 * between - within_x - within_y\n",
              "    return between - within_x - within_y\n")
    drawn, evaluated = after_edit(tree)
    assert changed(baseline[0], drawn) == set()
    assert changed(baseline[1], evaluated) == {"generation"}      # restoration scores no energy distance
    tree.edit("restoration/metrics.py", 'data_range 1."""\n    mse = ((', 'data_range 1."""\n    mse = 2 * ((')
    assert Fingerprinter(tree.root).evaluate("restoration").digest != baseline[1]["restoration"].digest


def test_a_metric_both_kinds_use_changes_both_evaluate_fingerprints(tree, baseline):
    tree.edit("metrics.py", "    directions = torch.randn(n_projections, dim, generator=generator, dtype=torch.float64)\n",
              "    directions = torch.randn(2 * n_projections, dim, generator=generator, dtype=torch.float64)\n")
    fp = Fingerprinter(tree.root)
    assert {kind for kind in baseline[1] if fp.evaluate(kind).digest != baseline[1][kind].digest} \
        == {"generation", "restoration"}


def test_editing_an_operator_changes_the_restoration_draws_that_use_operators(tree, baseline):
    # operators are built by name through getattr(operators, class_name): the whole module is reached
    tree.edit("restoration/operators.py", "class BoxInpainting", "class BoxInpainting2")
    drawn, _ = after_edit(tree)
    assert changed(baseline[0], drawn) == {key for key in baseline[0] if key[0] == "restoration"}


def test_the_score_source_operator_and_schedule_are_part_of_the_draw():
    fp = Fingerprinter(SOURCE)
    base = fp.draw("generation", "edm", "karras", "oracle")
    assert base == fp.draw("generation", "edm", "karras", "oracle")
    others = [fp.draw("generation", "edm", "geometric", "oracle"), fp.draw("generation", "edm", "karras", "trained"),
              fp.draw("generation", "edm", "karras", "pretrained:adm_ffhq256")]
    assert len({base.digest, *(other.digest for other in others)}) == 4
    box, half = (fp.draw("restoration", "dps", "geometric", "oracle", operator=name)
                 for name in ("inpaint_box", "inpaint_half"))
    assert box.digest != half.digest     # the same builder, another class named in its closure
    assert fp.training().digest not in {base.digest, box.digest}


def test_third_party_packages_are_recorded_with_their_versions_beside_the_digest():
    packages = dict(Fingerprinter(SOURCE).draw("generation", "ddpm", "vp_respaced", "oracle").packages)
    assert packages["torch"] == importlib.metadata.version("torch")
    assert not {"math", "dataclasses", "diffsweep"} & set(packages)    # stdlib and the package itself: not recorded


@pytest.mark.parametrize("call, message", [
    (lambda fp: fp.draw("sampling", "ddpm", "geometric", "oracle"), "unknown kind of run 'sampling'"),
    (lambda fp: fp.draw("generation", "ddpm", "geometric", "oracle_x"), "unknown score source 'oracle_x'"),
    (lambda fp: fp.draw("generation", "nope", "geometric", "oracle"), "unknown sampler 'nope'"),
    (lambda fp: fp.evaluate("sampling"), "unknown kind of run 'sampling'"),
])
def test_unknown_names_are_refused_in_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call(Fingerprinter(SOURCE))


PLUGIN = '''
"""A plugin sampler with a helper of its own and one of the package's."""
from diffsweep.samplers import Knob, register, steps_to_zero


def shrink(x):
    return 0.5 * x


@register("fp_plugin_{stem}", knobs={{}}, description="a test plugin", init="unit")
def walk(denoise, x, sigmas, noise, *, callback=None):
    nfe = 0
    for sigma, _ in steps_to_zero(sigmas):
        x = shrink(denoise(x, sigma))
        nfe += 1
    return x, nfe
'''


def test_a_plugin_is_fingerprinted_like_the_package(tmp_path, tree, monkeypatch):
    stem = f"fp_plugin_{os.getpid()}_{tmp_path.name}"
    plugin = tmp_path / f"{stem}.py"
    plugin.write_text(PLUGIN.format(stem=stem))
    monkeypatch.setattr(samplers.SAMPLERS, "_entries", dict(samplers.SAMPLERS._entries))   # registered for this test
    load_plugin(str(plugin))
    name = f"fp_plugin_{stem}"

    def fingerprint(root=SOURCE):
        return Fingerprinter(root).draw("generation", name, "geometric", "oracle")

    first = fingerprint()
    assert {f"diffsweep_plugin_{stem}:shrink", "diffsweep.samplers.levels:steps_to_zero"} <= set(first.symbols)
    plugin.write_text(PLUGIN.format(stem=stem).replace("    nfe = 0\n", "    nfe = 0  # a comment\n"))
    assert fingerprint() == first
    plugin.write_text(PLUGIN.format(stem=stem).replace("0.5 * x", "0.25 * x"))
    edited = fingerprint()
    assert edited.digest != first.digest
    tree.edit("samplers/levels.py", "    return list(zip(levels[:-1], levels[1:]))\n",
              "    return list(zip(levels[:-1], levels[1:]))[::-1]\n")
    assert fingerprint(tree.root).digest != edited.digest     # the package helper it reaches


def test_references_are_followed_across_modules_through_cycles(tmp_path):
    package = tmp_path / "diffsweep"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .b import g\n")
    (package / "a.py").write_text("from diffsweep.sub import g\nLIMIT = 3\n\n"
                                  "def f(n):\n    return g(n - 1) if n > LIMIT else f(n + 1)\n\n"
                                  "def unused():\n    return 0\n")
    (package / "sub" / "b.py").write_text("import torch\nfrom diffsweep import a\n\n"
                                          "def g(n):\n    return a.f(n) + helper()\n\n"
                                          "def helper():\n    return torch.ones(1)\n")
    fingerprint = Fingerprinter(tmp_path).of_roots([("diffsweep.a", "f")])
    assert fingerprint.symbols == ("diffsweep.a:LIMIT", "diffsweep.a:f", "diffsweep.sub.b:g",
                                   "diffsweep.sub.b:helper")
    assert [name for name, _ in fingerprint.packages] == ["torch"]


def test_fingerprints_are_the_same_in_another_process_without_torch():
    fp = Fingerprinter(SOURCE)
    expected = [fp.draw("generation", "edm", "karras", "oracle").digest, fp.evaluate("restoration").digest]
    script = ("import sys\nfrom diffsweep import fingerprint\n"
              "print(fingerprint.draw('generation', 'edm', 'karras', 'oracle'), fingerprint.evaluate('restoration'))\n"
              "assert 'torch' not in sys.modules, 'fingerprinting imported torch'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SOURCE), "PYTHONHASHSEED": "12345"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_a_run_s_fingerprints_come_from_its_params(root):
    # the smoke grid's score sources are oracles and trained models: their `source` is the model's
    from diffsweep import config, fingerprint, grid
    built = grid.build(config.prepare(config.read_yaml(root / "config" / "smoke.yaml")))
    for kind in ("generation", "restoration"):
        run = next(run for run in built.runs.values() if run.kind == kind)
        fields = fingerprint.of_params(run.identity())
        operator = run.task.operator if run.task else None
        current = fingerprint.default()      # this checkout's src/ (tests/conftest.py)
        assert fields == {"code_draw": current.draw(kind, run.family, run.schedule, run.model.source, operator).digest,
                          "code_evaluate": current.evaluate(kind).digest}
