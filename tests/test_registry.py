"""The one registry idiom: names, the unknown-name message, duplicates, plugins of every kind."""

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from diffsweep import cli, config, data, grid, noise, pretrained, restoration, samplers
from diffsweep.fidelity import EXTRACTORS
from diffsweep.knobs import Knob
from diffsweep.parametrisations import PARAMETRISATIONS
from diffsweep.registry import Entry, Registry, load_plugins

REGISTRIES = [samplers.SAMPLERS, restoration.RESTORERS, restoration.OPERATORS, noise.SCHEDULES,
              noise.TRAINING_DISTRIBUTIONS, noise.LOSS_WEIGHTS, PARAMETRISATIONS, data.FAMILIES, pretrained.FORMATS,
              EXTRACTORS]


@pytest.fixture
def clean_registries():
    """Whatever a test registers (directly or through a plugin) is gone afterwards."""
    saved = [dict(registry._entries) for registry in REGISTRIES]
    modules = set(sys.modules)
    yield
    for registry, entries in zip(REGISTRIES, saved):
        registry._entries = entries
    for name in set(sys.modules) - modules:
        if name.startswith("diffsweep_plugin_"):
            del sys.modules[name]


def test_unknown_names_read_the_same_for_every_kind():
    widgets = Registry("widget")
    widgets.add(Entry(name="b", description="the second"))
    widgets.add(Entry(name="a", description="the first"))
    assert widgets.names() == ["a", "b"] and "a" in widgets and list(widgets) == ["a", "b"]
    with pytest.raises(ValueError, match=r"^x.y: unknown widget 'c'; allowed: a, b$"):
        widgets.get("c", "x.y: ")
    lookups = [
        (lambda: samplers.get("nope", "samplers.p.family: "), "samplers.p.family: unknown sampler 'nope'"),
        (lambda: restoration.get("nope"), "unknown restorer 'nope'"),
        (lambda: restoration.get_operator("nope", "restoration.tasks.t.operator: "),
         "restoration.tasks.t.operator: unknown operator 'nope'"),
        (lambda: noise.resolve_schedule_knobs("nope", {}, "samplers.p."), "samplers.p.schedule: unknown schedule 'nope'"),
        (lambda: noise.resolve_training_knobs("nope", {}, "models.m.train_sigma."),
         "models.m.train_sigma.name: unknown training sigma-distribution 'nope'"),
        (lambda: noise.loss_weight("nope", 1.0), "unknown loss weight 'nope'"),
        (lambda: PARAMETRISATIONS.get("nope"), "unknown parametrisation 'nope'"),
        (lambda: data.resolve_dataset_knobs("nope", {}, "datasets.d."), "datasets.d.family: unknown dataset family 'nope'"),
        (lambda: pretrained.resolve_arch("nope", {}, "models.m."), "models.m.format: unknown pretrained format 'nope'"),
        (lambda: EXTRACTORS.get("nope"), "unknown fidelity extractor 'nope'"),
    ]
    for lookup, message in lookups:
        with pytest.raises(ValueError) as error:
            lookup()
        assert str(error.value).startswith(message + "; allowed: ")


def test_each_kind_has_its_built_in_entries():
    assert set(noise.schedule_names()) >= {"geometric", "karras", "vp_pretrained"}
    assert set(noise.LOSS_WEIGHTS) == {"x0", "eps", "score", "edm"}
    assert set(PARAMETRISATIONS) == {"x0", "eps", "score", "v", "edm", "flow"}
    assert set(pretrained.format_names()) == {"adm_ffhq256", "ncsnpp_ffhq256"}
    assert set(EXTRACTORS) == {"digits", "inception"}
    assert {"sr_bicubic", "inpaint_random"} <= set(restoration.OPERATORS)
    assert all(entry.kind == "schedule" and entry.module == "diffsweep.noise" for entry in noise.SCHEDULES.entries())


def test_a_name_registered_twice_is_refused_naming_both_modules(clean_registries):
    @noise.SCHEDULES.register("twice", "first")
    def first(steps):
        return np.ones(steps)

    noise.SCHEDULES.add(noise.SCHEDULES.get("twice"))   # the same entry again: nothing changes
    with pytest.raises(ValueError, match=r"schedule 'geometric' is registered twice \(diffsweep.noise and test_registry\)"):
        noise.SCHEDULES.register("geometric", "another")(first)
    with pytest.raises(ValueError, match=r"dataset family 'gmm' is registered twice \(diffsweep.data and test_registry\)"):
        data.FAMILIES.add(data.DatasetFamily(name="gmm", description="another", build=dict))


def test_a_former_knob_name_is_no_other_knobs_name(clean_registries):
    # run ids hash a renamed knob under its former name (issue 24): no two knobs may share that key
    from diffsweep.samplers import Knob, register
    with pytest.raises(ValueError, match=r"sampler 'renamed': former knob name\(s\) \['a'\] are taken by another knob"):
        register("renamed", knobs={"a": Knob("int", 1, "a"), "b": Knob("int", 1, "b", formerly="a")},
                 description="")(lambda denoise, x, sigmas, noise, a, b, callback=None: (x, 0))
    with pytest.raises(ValueError, match=r"former knob name\(s\) \['c'\]"):
        register("renamed", knobs={"a": Knob("int", 1, "a", formerly="c"), "b": Knob("int", 1, "b", formerly="c")},
                 description="")(lambda denoise, x, sigmas, noise, a, b, callback=None: (x, 0))


def test_registries_are_read_without_torch(root):
    code = ("import sys; import diffsweep.grid, diffsweep.parametrisations, diffsweep.registry, diffsweep.architectures; "
            "from diffsweep import data, noise, pretrained, restoration, samplers; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(root / "src")})
    assert result.returncode == 0, result.stderr


PLUGIN = '''
import numpy as np

from diffsweep import data, noise, restoration
from diffsweep.knobs import Knob
from diffsweep.restoration.registry import OperatorFamily
from diffsweep.samplers import report


@noise.SCHEDULES.register("cosine_levels", "log sigma on a half-cosine ramp",
                          knobs={"sigma_min": Knob("float", 0.01, "smallest level", minimum=1e-9),
                                 "sigma_max": Knob("float", 10.0, "largest level", minimum=1e-9)})
def cosine_levels(steps, sigma_min, sigma_max):
    ramp = (1 - np.cos(np.linspace(0.0, np.pi, steps))) / 2
    return np.exp(np.log(sigma_max) + ramp * (np.log(sigma_min) - np.log(sigma_max)))


@noise.TRAINING_DISTRIBUTIONS.register("one_level", "every example at the same sigma",
                                       knobs={"sigma": Knob("float", 1.0, "the level", minimum=0.0)})
def one_level(n, generator, sigma):
    import torch
    return torch.full((n,), sigma, dtype=torch.float64)


def two_points(separation):
    import torch

    def sample(n, generator):
        sign = 2.0 * torch.randint(0, 2, (n, 1), generator=generator, dtype=torch.float64) - 1.0
        return sign * torch.tensor([separation / 2, 0.0], dtype=torch.float64)
    return data.Dataset(name="two_points", dim=2, knobs={"separation": separation}, sampler=sample)


data.FAMILIES.add(data.DatasetFamily(
    name="two_points", description="two equally likely points on the x axis", build=two_points,
    knobs={"separation": Knob("float", 2.0, "distance between the points", minimum=0.0)}))


def first_coordinate(shape, seed, scale):
    from diffsweep.restoration.operators import MatrixOperator
    return MatrixOperator([[scale, 0.0]], shape)


restoration.OPERATORS.add(OperatorFamily(
    name="first_coordinate", description="observe the first coordinate, scaled", make=first_coordinate,
    image_only=False, knobs={"scale": Knob("float", 1.0, "gain of the observation")}))


@restoration.register("replace_walk", knobs={"mix": Knob("float", 0.5, "weight of the measurement", minimum=0.0)},
                      description="denoise, then pull towards the measurement", default_schedule="cosine_levels")
def replace_walk(denoise, x, sigmas, noise, operator, y, noise_std, *, mix, callback=None):
    for step, sigma in enumerate(sigmas):
        x = denoise(x, sigma)
        if step == len(sigmas) - 1:
            x = x + mix * operator.adjoint(y - operator(x))
        report(callback, step, sigma, x)
    return x, len(sigmas)
'''


def plugin_config(plugin: str) -> dict:
    return {
        "plugins": [plugin],
        "datasets": {"near": {"family": "two_points"}, "far": {"family": "two_points", "knobs": {"separation": 4.0}}},
        "models": {"mlp": {"source": "trained", "steps": 10, "train_sigma": {"name": "one_level",
                                                                               "knobs": {"sigma": 0.5}}}},
        "samplers": {"ode": {"family": "pf_ode", "steps": 4, "schedule": "cosine_levels",
                             "schedule_knobs": {"sigma_max": 5.0}}},
        "restoration": {"tasks": {"first": {"operator": "first_coordinate", "knobs": {"scale": 2.0}, "noise_std": 0.1}},
                        "restorers": {"walk": {"family": "replace_walk", "steps": 3, "knobs": {"mix": 0.25}}}},
    }


def test_a_plugin_registers_a_schedule_dataset_training_distribution_operator_and_restorer(tmp_path, clean_registries):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    g = grid.build(config.prepare(plugin_config("my_plugin.py")), base_dir=tmp_path)

    assert sorted(spec.knobs["separation"] for spec in g.datasets.values()) == [2.0, 4.0]
    assert {model.recipe["train_sigma"]["knobs"]["sigma"] for model in g.models.values()} == {0.5}
    rows = g.manifest_rows("generation")
    assert len(rows) == 2 and all(row["schedule"] == "cosine_levels" for row in rows)
    assert all(run.schedule_knobs == {"sigma_min": 0.01, "sigma_max": 5.0} for run in g.of_kind("generation").values())
    restorations = list(g.of_kind('restoration').values())
    assert len(restorations) == 2
    assert all(r.family == "replace_walk" and r.task.operator == "first_coordinate" and r.schedule == "cosine_levels"
               and r.task.operator_knobs == {"scale": 2.0} and r.knobs == {"mix": 0.25} for r in restorations)

    # What the jobs call works on the plugin's entries.
    sigmas = noise.make_schedule("cosine_levels", 4, sigma_max=5.0)
    assert sigmas[0] == pytest.approx(5.0) and sigmas[-1] == pytest.approx(0.01)
    pair = data.make_dataset("two_points", separation=4.0)
    assert set(pair.sample(50, torch.Generator().manual_seed(0))[:, 0].tolist()) == {-2.0, 2.0}
    levels = noise.sample_training_sigmas("one_level", 3, torch.Generator(), sigma=0.5)
    assert levels.tolist() == [0.5, 0.5, 0.5]
    operator = restoration.get_operator("first_coordinate").build((2,), 0, {"scale": 2.0})
    x = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    restored, nfe = restoration.get("replace_walk").fn(lambda x, sigma: x, x, [1.0, 0.5], torch.Generator(),
                                                       operator, operator(x) + 4.0, 0.1, mix=0.25)
    assert nfe == 2 and restored.tolist() == [[3.0, 3.0]]


def test_diffsweep_list_shows_a_configs_plugin_entries(tmp_path, monkeypatch, capsys, clean_registries):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    (tmp_path / "c.yaml").write_text("plugins: [my_plugin.py]\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["list", "datasets", "--config", "c.yaml"]) == 0
    out = capsys.readouterr().out
    assert "two_points: two equally likely points on the x axis" in out
    assert "registered by diffsweep_plugin_my_plugin" in out
    assert "separation (float, default 2.0; >= 0.0): distance between the points" in out
    assert cli.main(["list", "restorers", "--json"]) == 0
    assert "replace_walk" in capsys.readouterr().out


def test_diffsweep_list_shows_every_kind_with_knobs(capsys):
    assert cli.main(["list"]) == 0
    kinds = capsys.readouterr().out
    for kind in cli.KINDS:
        assert f"  {kind} " in kinds
    for kind in cli.KINDS:
        assert cli.main(["list", kind, "--json"]) == 0
        assert capsys.readouterr().out.strip().startswith("{")
    assert cli.main(["list", "operators"]) == 0
    out = capsys.readouterr().out
    assert "inpaint_random: inpainting: a seeded random set of pixels is missing" in out
    assert "    missing (float, default 0.5; in [0.0, 1.0]): fraction of pixels removed" in out
    assert "    side (str, default 'right'; one of left, right, top, bottom): which half is missing" in out


@pytest.mark.parametrize("text, message", [
    ("x = 1\ndef broken(:\n", r"^plugins\[1\]: bad.py: SyntaxError: .* \(line 2\)$"),
    ("import math\n\nraise RuntimeError('no GPU here')\n", r"^plugins\[1\]: bad.py: RuntimeError: no GPU here \(line 3\)$"),
    ("from diffsweep import noise\n\ndef mine(steps):\n    pass\n\nnoise.SCHEDULES.register('karras', 'mine')(mine)\n",
     r"^plugins\[1\]: bad.py: ValueError: schedule 'karras' is registered twice "
     r"\(diffsweep.noise and diffsweep_plugin_bad\) \(line 6\)$"),
])
def test_a_broken_plugin_is_one_line_naming_its_entry_and_file(tmp_path, clean_registries, text, message):
    (tmp_path / "good.py").write_text("")
    (tmp_path / "bad.py").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_plugins(["good.py", "bad.py"], tmp_path)
    assert "diffsweep_plugin_bad" not in sys.modules


def test_missing_plugins_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"^plugins\[0\]: file 'gone.py' not found"):
        load_plugins(["gone.py"], tmp_path)
    with pytest.raises(ValueError, match=r"^plugins\[0\]: cannot import module 'no_such_plugin_module'"):
        load_plugins(["no_such_plugin_module"], tmp_path)


def test_a_config_with_a_broken_plugin_fails_before_any_job(tmp_path, clean_registries):
    (tmp_path / "bad.py").write_text("def broken(:\n")
    raw = copy.deepcopy(plugin_config("bad.py"))
    with pytest.raises(ValueError, match=r"plugins.*bad.py: SyntaxError"):
        grid.build(config.prepare(raw), base_dir=tmp_path)
