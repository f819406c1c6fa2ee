"""A corpus of bad configs, each refused before any work with one line per problem that names
the key, and no traceback: through `diffsweep grid --config FILE` (in-process, fast) for all of
them, and through `snakemake -n` for a few (the Snakefile calls the same diffsweep.config.check).

Each case is a change to a small valid config (BASE), or the raw text of the config file."""

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffsweep import cli
from diffsweep import config as ds_config

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = math.nan, math.inf

BASE = {
    "data": {"n_train": 100, "n_reference": 100},
    "sampling": {"n_samples": 10},
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}, "mlp": {"source": "trained", "steps": 10}},
    "samplers": {"rw": {"family": "random_walk", "schedule": "geometric", "steps": 10, "knobs": {"eps": 0.5}}},
    "metrics": {"likelihood": {"points": 0}},
    "tables": {"ablations": {}},
    "restoration": {"tasks": {"half": {"operator": "inpaint_random", "knobs": {"missing": 0.5}, "noise_std": 0.1}},
                    "restorers": {"rw_cond": {"family": "rw_conditional", "steps": 5}},
                    "models": ["oracle"], "n_measurements": 2, "n_samples": 2},
}

PLUGIN_SYNTAX = "from diffsweep.samplers import register\n\ndef broken(:\n    pass\n"
PLUGIN_RAISES = "import json\n\nraise ImportError('needs a package that is not installed')\n"


def replace(path: str, value):
    """A change setting the dotted `path` of the config (created as needed) to `value`."""
    def change(config, tmp_path):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value(tmp_path) if callable(value) else value
    return change


def _pretrained(arch_params: dict, format: str = "adm_ffhq256", sidecar: str | None = None):
    """A pretrained entry (for `replace`) whose checkpoint file exists: `vp.pt` in the case's folder,
    with `sidecar` as its `vp.pt.arch.yaml` when given."""
    def entry(tmp_path):
        (tmp_path / "vp.pt").write_bytes(b"weights")
        if sidecar is not None:
            (tmp_path / "vp.pt.arch.yaml").write_text(sidecar)
        return {"source": "pretrained", "format": format, "checkpoint": "vp.pt", "arch_params": arch_params}
    return entry


def plugin(text: str):
    def change(config, tmp_path):
        (tmp_path / "bad_plugin.py").write_text(text)
        config["plugins"] = [str(tmp_path / "bad_plugin.py")]
    return change


def layout(text: str | None):
    """A change writing `text` into results/layout.json of the working directory (None: a folder there)."""
    def change(config, tmp_path):
        marker = tmp_path / "results" / "layout.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.mkdir() if text is None else marker.write_text(text)
    return change


# (case id, change to BASE, text the message must contain: the key path, and what identifies the problem)
CHANGES = [
    # non-finite numbers anywhere
    ("knob_nan", replace("samplers.rw.knobs.eps", NAN), "samplers.rw.knobs.eps: nan is not allowed"),
    ("knob_inf", replace("samplers.rw.knobs.eps", INF), "samplers.rw.knobs.eps: inf is not allowed; allowed: a finite"),
    ("knob_minus_inf", replace("samplers.rw.knobs.T0", -INF), "samplers.rw.knobs.T0: -inf is not allowed"),
    ("nan_in_knob_list", replace("samplers.rw.knobs.eps", [0.1, NAN]), "samplers.rw.knobs.eps[1]: nan"),
    ("inf_in_knob_list", replace("samplers.rw.knobs.eps", [0.1, INF]), "samplers.rw.knobs.eps: inf"),
    ("schedule_param_inf", replace("samplers.rw.schedule_knobs.sigma_max", INF),
     "samplers.rw.schedule_knobs.sigma_max: inf"),
    ("schedule_param_nan", replace("samplers.rw.schedule_knobs.sigma_min", NAN),
     "samplers.rw.schedule_knobs.sigma_min: nan"),
    ("lr_nan", replace("models.mlp.lr", NAN), "models.mlp.lr: nan"),
    ("lr_inf", replace("models.mlp.lr", INF), "models.mlp.lr: inf has the wrong type or value; allowed: a finite"),
    ("mode_std_inf", replace("metrics.mode_std", INF), "metrics.mode_std: inf is not allowed; allowed: a finite"),
    ("noise_std_nan", replace("restoration.tasks.half.noise_std", NAN), "restoration.tasks.half.noise_std: nan"),
    ("noise_std_minus_inf", replace("restoration.tasks.half.noise_std", -INF), "restoration.tasks.half.noise_std"),
    ("dataset_param_inf", replace("datasets.ring8.knobs.radius", INF), "datasets.ring8.knobs.radius: inf"),
    ("train_param_inf", replace("models.mlp.train_sigma", {"name": "edm_lognormal", "knobs": {"p_std": INF}}),
     "models.mlp.train_sigma.knobs.p_std: inf"),
    ("bandwidth_inf", replace("metrics.mmd_bandwidths", [1.0, INF]), "metrics.mmd_bandwidths.1: inf"),
    ("likelihood_nan", replace("metrics.likelihood.sigma_min", NAN), "metrics.likelihood.sigma_min: nan"),
    ("arch_param_nan", replace("models.mlp.arch_params", {"hidden": NAN}), "models.mlp.arch_params.hidden: nan"),
    # degenerate values: an exclusive minimum where zero (or one) means nothing
    ("eps_zero", replace("samplers.rw.knobs.eps", 0.0),
     "samplers.rw.knobs.eps: 0.0 is not above the exclusive minimum"),
    ("eps_negative", replace("samplers.rw.knobs.eps", -1.0), "samplers.rw.knobs.eps: -1.0 is not above"),
    ("sigma_min_zero", replace("samplers.rw.schedule_knobs.sigma_min", 0.0),
     "samplers.rw.schedule_knobs.sigma_min: 0.0 is not above"),
    ("langevin_eps_zero", replace("samplers.rw", {"family": "ncsn", "knobs": {"eps": 0.0}}),
     "samplers.rw.knobs.eps: 0.0 is not above"),
    ("rtol_zero", replace("samplers.rw", {"family": "pf_ode_rk45", "knobs": {"rtol": 0.0}}),
     "samplers.rw.knobs.rtol: 0.0 is not above"),
    ("beta_max_one", replace("samplers.rw", {"family": "random_walk", "schedule": "vp_pretrained",
                                             "schedule_knobs": {"beta_max": 1.0}}),
     "samplers.rw.schedule_knobs.beta_max: 1.0 is not below the exclusive maximum"),
    ("lr_zero", replace("models.mlp.lr", 0),
     "models.mlp.lr: 0 has the wrong type or value; allowed: a finite number > 0"),
    ("ema_one", replace("models.mlp.ema", 1.0), "models.mlp.ema: 1.0 has the wrong type or value"),
    ("sigma_data_zero", replace("models.mlp.sigma_data", 0.0), "models.mlp.sigma_data"),
    ("noise_std_zero", replace("restoration.tasks.half.noise_std", 0.0), "restoration.tasks.half.noise_std"),
    ("rtol_likelihood_zero", replace("metrics.likelihood.rtol", 0.0), "metrics.likelihood.rtol: 0.0"),
    ("ring_std_zero", replace("datasets.ring8.knobs.std", 0.0), "datasets.ring8.knobs.std: 0.0 is below the minimum"),
    # inconsistent schedule parameters
    ("sigma_range_inverted", replace("samplers.rw.schedule_knobs", {"sigma_min": 10.0, "sigma_max": 1.0}),
     "samplers.rw.schedule_knobs.sigma_min: 10.0 is not below sigma_max 1.0"),
    ("sigma_range_empty", replace("samplers.rw.schedule_knobs", {"sigma_min": 2.0, "sigma_max": 2.0}),
     "samplers.rw.schedule_knobs.sigma_min: 2.0 is not below sigma_max"),
    ("train_range_inverted", replace("models.mlp.train_sigma", {"name": "ve_uniform",
                                                                 "knobs": {"sigma_min": 5.0, "sigma_max": 1.0}}),
     "models.mlp.train_sigma.knobs.sigma_min: 5.0 is not below sigma_max"),
    ("likelihood_range_inverted", replace("metrics.likelihood", {"sigma_min": 100.0, "sigma_max": 1.0}),
     "metrics.likelihood.sigma_min: 100.0 is not below sigma_max"),
    ("respaced_too_many_steps", replace("samplers.rw", {"family": "ddpm", "schedule": "vp_respaced", "steps": 2000}),
     "samplers.rw.schedule_knobs: vp_respaced: 2000 steps exceed the chain's 1000 timesteps"),
    ("restorer_sigma_range", replace("restoration.restorers.rw_cond.schedule_knobs",
                                     {"sigma_min": 3.0, "sigma_max": 1.0}),
     "restoration.restorers.rw_cond.schedule_knobs.sigma_min: 3.0 is not below"),
    ("keep_samples_word", replace("sampling.keep_samples", "some"),
     "sampling.keep_samples: 'some' has the wrong type or value; allowed: one of all, none, or an integer >= 1"),
    ("keep_samples_zero", replace("restoration.keep_samples", 0),
     "restoration.keep_samples: 0 has the wrong type or value; allowed: one of all, none, or an integer >= 1"),
    # sizes above the documented maxima
    ("n_samples_huge", replace("sampling.n_samples", 1_000_000_000), "sampling.n_samples: 1000000000 is greater than"),
    ("preset_n_samples_huge", replace("samplers.rw.n_samples", 1_000_000_000), "samplers.rw.n_samples: 1000000000"),
    ("n_train_huge", replace("data.n_train", 1_000_000_000), "data.n_train: 1000000000 is greater than"),
    ("n_reference_huge", replace("data.n_reference", 100_000_000), "data.n_reference: 100000000 is greater than"),
    ("sampling_steps_huge", replace("samplers.rw.steps", 10_000_000), "samplers.rw.steps: 10000000 has the wrong type"),
    ("training_steps_huge", replace("models.mlp.steps", 1_000_000_000), "models.mlp.steps: 1000000000"),
    ("batch_size_huge", replace("models.mlp.batch_size", 100_000_000), "models.mlp.batch_size: 100000000"),
    ("n_measurements_huge", replace("restoration.n_measurements", 10_000_000), "restoration.n_measurements: 10000000"),
    ("projections_huge", replace("metrics.n_projections", 10_000_000), "metrics.n_projections: 10000000"),
    ("timesteps_huge", replace("samplers.rw", {"family": "ddpm", "schedule": "vp_pretrained",
                                               "schedule_knobs": {"timesteps": 100_000_000}}),
     "samplers.rw.schedule_knobs.timesteps: 100000000 is above the maximum"),
    ("steps_per_level_huge", replace("samplers.rw.knobs.steps_per_level", 1_000_000),
     "samplers.rw.knobs.steps_per_level: 1000000 is above the maximum 10000"),
    # the results folder
    ("results_empty", replace("results", ""), "results: '' is empty"),
    ("results_blank", replace("results", "   "), "results: '   ' is empty"),
    ("results_root", replace("results", "/"), "results: '/' is the filesystem root"),
    ("results_a_file", replace("results", lambda tmp: str(_a_file(tmp))), "is an existing file; allowed: a folder"),
    ("results_not_a_string", replace("results", 3), "results: 3 is not allowed; allowed: a string"),
    # files the config names
    ("images_folder_missing", replace("datasets.faces", {"family": "images", "knobs": {"path": "nowhere/faces"}}),
     "datasets.faces.knobs.path: 'nowhere/faces' does not exist"),
    ("checkpoint_missing", replace("models.vp", {"source": "pretrained", "format": "adm_ffhq256",
                                                 "checkpoint": "nowhere/ffhq_10m.pt"}),
     "models.vp.checkpoint: pretrained checkpoint 'nowhere/ffhq_10m.pt' not found; expected adm_ffhq256"),
    ("inception_weights_missing", replace("fidelity.inception_weights", "nowhere/inception.pth"),
     "fidelity.inception_weights: 'nowhere/inception.pth' does not exist"),
    ("images_without_path", replace("datasets.faces", {"family": "images"}),
     "datasets.faces.knobs.path: required by dataset family 'images'"),
    ("images_folder_empty", replace("datasets.faces", {"family": "images", "knobs": {"path": "."}}),
     "datasets.faces.knobs.path: folder '.' holds no"),
    ("images_file_not_npz", replace("datasets.faces", {"family": "images", "knobs": {"path": "bad.yaml"}}),
     "datasets.faces.knobs.path: 'bad.yaml' is a file but not an .npz"),
    ("lpips_weights_missing", replace("restoration.metrics.lpips_weights", "nowhere/vgg16.pth"),
     "restoration.metrics.lpips_weights: 'nowhere/vgg16.pth' does not exist"),
    # plugins that fail to import
    ("plugin_syntax_error", plugin(PLUGIN_SYNTAX), "plugins[0]: "),
    ("plugin_import_error", plugin(PLUGIN_RAISES), "plugins[0]: "),
    ("plugin_missing", replace("plugins", ["nowhere/plugin.py"]), "plugins[0]: file 'nowhere/plugin.py' not found"),
    # the schema and the registries
    ("unknown_top_key", replace("bogus", 1), "(top level): unknown key(s) ['bogus']"),
    ("steps_a_word", replace("samplers.rw.steps", "many"), "samplers.rw.steps: 'many' has the wrong type or value"),
    ("device_unknown", replace("jobs.device", "tpu"), "jobs.device: 'tpu' is not allowed; allowed: auto, cpu, cuda"),
    ("family_unknown", replace("samplers.rw.family", "nope"), "samplers.rw.family: unknown sampler 'nope'"),
    ("knob_unknown", replace("samplers.rw.knobs.bogus", 1.0), "samplers.rw.knobs: unknown knob(s) ['bogus']"),
    ("model_dataset_unknown", replace("models.oracle.datasets", ["cifar"]), "models.oracle.datasets: unknown dataset"),
    # declared tables and plots
    ("ablation_column_unknown", replace("tables.ablations.t", {"rows": ["nosuch"], "metric": "sliced_w2"}),
     "tables.ablations.t.rows: "),
    ("heatmap_filter_key_not_a_name", replace("plots.heatmap.filter", {1: 2}),
     "plots.heatmap.filter: 1 is not allowed"),
    ("heatmap_filter_value_a_mapping", replace("plots.heatmap.filter", {"steps": {"a": 1}}),
     "plots.heatmap.filter.steps: {'a': 1} has the wrong type or value"),
    ("plot_metric_not_a_name", replace("plots.metrics", ["not a name"]), "plots: metric 'not a name' is not a column"),
    ("ramp_unknown", replace("samplers.rw.knobs.ramp", "linear"), "samplers.rw.knobs.ramp"),
    ("study_sampler_unknown", replace("studies.temperature_ramp", {"samplers": ["nope"]}),
     "studies.temperature_ramp.samplers: 'nope' is not a random_walk preset under samplers; allowed: rw"),
    ("study_without_samplers", replace("studies.temperature_ramp", {}), "studies.temperature_ramp"),
    ("study_option_bad", replace("studies.error_sources", {"score_distance": "maybe"}),   # inside `null or a mapping`
     "studies.error_sources.score_distance: 'maybe' is not allowed; allowed: true or false"),
    ("study_unknown", replace("studies.noise_ramp", {}), "studies"),
    # --- issue 26: integers must be integers (JSON Schema counts 1.0 as one; torch does not) ---
    ("seeds_float", replace("seeds", [1.0]), "seeds.0: 1.0 is not allowed; allowed: an integer >= 0"),
    ("n_samples_float", replace("sampling.n_samples", 200.0), "sampling.n_samples: 200.0 is not allowed; allowed: an "
     "integer >= 2, <= 10000000 (write 200: 200.0 is no integer)"),
    ("n_train_float", replace("data.n_train", 500.0), "data.n_train: 500.0 is not allowed"),
    ("steps_float", replace("samplers.rw.steps", 10.0), "samplers.rw.steps: 10.0 has the wrong type or value"),
    ("steps_float_in_list", replace("samplers.rw.steps", [10, 20.0]), "(write 20: 20.0 is no integer)"),
    ("preset_n_samples_float", replace("samplers.rw.n_samples", 10.0), "samplers.rw.n_samples: 10.0"),
    ("training_steps_float", replace("models.mlp.steps", 10.0), "models.mlp.steps: 10.0"),
    ("model_seed_float", replace("models.mlp.seed", 1.0), "models.mlp.seed: 1.0"),
    ("n_measurements_float", replace("restoration.n_measurements", 2.0), "restoration.n_measurements: 2.0"),
    ("restoration_seed_float", replace("restoration.seeds", [0.0]), "restoration.seeds.0: 0.0 is not allowed"),
    ("task_images_float", replace("restoration.tasks.half.images", [0.0]), "restoration.tasks.half.images"),
    ("keep_samples_float", replace("sampling.keep_samples", 5.0), "sampling.keep_samples: 5.0"),
    ("data_seed_float", replace("data.seed", 3.0), "data.seed: 3.0 is not allowed"),
    ("max_batch_float", replace("jobs.max_batch", 16.0), "jobs.max_batch: 16.0 is not allowed"),
    ("int_knob_float", replace("samplers.rw.knobs.steps_per_level", 2.0),   # knobs refused it already
     "samplers.rw.knobs.steps_per_level: 2.0 is not allowed; allowed: an integer >= 1, <= 10000 (write 2: 2.0 is no integer)"),
    # --- issue 26: every integer has a stated range, refused outside it at parse time ---
    ("seed_2_63", replace("seeds", [2**63]), "seeds[0]: 9223372036854775808 is outside the integer range"),
    ("seed_2_64_plus_1", replace("seeds", [0, 2**64 + 1]), "seeds[1]: 18446744073709551617 is outside"),
    ("restoration_seed_2_63", replace("restoration.seeds", [2**63]), "restoration.seeds[0]: 9223372036854775808"),
    ("data_seed_2_63", replace("data.seed", 2**63), "data.seed: 9223372036854775808 is outside"),
    ("model_seed_2_63", replace("models.mlp.seed", [0, 2**63]), "models.mlp.seed[1]: 9223372036854775808"),
    ("int_knob_400_digits", replace("samplers.rw.knobs.steps_per_level", 10**400),
     "samplers.rw.knobs.steps_per_level: 100000000000... (401 digits) is outside the integer range"),
    ("float_knob_400_digits", replace("samplers.rw.knobs.eps", 10**400), "samplers.rw.knobs.eps: 100000000000..."),
    ("schedule_knob_400_digits", replace("samplers.rw.schedule_knobs.sigma_max", -10**400),
     "samplers.rw.schedule_knobs.sigma_max: -10000000000... (401 digits)"),
    ("lr_400_digits", replace("models.mlp.lr", 10**400), "models.mlp.lr: 100000000000..."),
    ("max_batch_huge", replace("jobs.max_batch", 10**7), "jobs.max_batch: 10000000 is greater than the maximum of 1000000"),
    # --- issue 24: a job's settings moved under `jobs`; a former key is refused naming the new place (every
    # former key: tests/test_grid.py) ---
    ("moved_sampling_fuse", replace("sampling.fuse", False), "sampling.fuse: moved to jobs.fuse"),
    ("moved_restoration_runs_per_job", replace("restoration.runs_per_job", 4),
     "restoration.runs_per_job: moved to jobs.restoration.runs_per_job"),
    ("dataset_knob_huge", replace("datasets.ring8.knobs.n_modes", 10**6),
     "datasets.ring8.knobs.n_modes: 1000000 is above the maximum 10000"),
    ("operator_knob_huge", replace("restoration.tasks.box", {"operator": "inpaint_box", "knobs": {"size": 10**6},
                                                             "noise_std": 0.1}),
     "restoration.tasks.box.knobs.size: 1000000 is above the maximum 4096"),
    ("restorer_knob_huge", replace("restoration.restorers.smc", {"family": "twisted_smc", "steps": 5,
                                                                  "knobs": {"particles": 10**7}}),
     "restoration.restorers.smc.knobs.particles: 10000000 is above the maximum 100000"),
    ("log_every_huge", replace("models.mlp.log_every", 10**9), "models.mlp.log_every: 1000000000 is greater"),
    ("task_unknown_dataset", replace("restoration.tasks.box", {"operator": "inpaint_box", "datasets": ["nope"]}),
     "restoration.tasks.box.datasets[0]: unknown dataset 'nope'"),
    # --- issue 26: names are \A[A-Za-z0-9_]{1,64}\Z (no final line break), checked at parse time ---
    ("sampler_name_newline", replace("samplers", {"rw\n": {"family": "ddpm", "steps": 10}}),
     "samplers: 'rw\\n' is not a name; allowed: 1 to 64 ASCII letters, digits or _"),
    ("model_name_newline", replace("models.oracle\n", {"source": "oracle"}), "models: 'oracle\\n' is not a name"),
    ("dataset_name_newline", replace("datasets", {"ring8\n": {"family": "gmm"}}), "datasets: 'ring8\\n' is not"),
    ("table_name_newline", replace("tables.ablations", {"t\n": {"rows": ["sampler"], "metric": "sliced_w2"}}),
     "tables.ablations: 't\\n' is not a name"),
    ("task_name_newline", replace("restoration.tasks", {"half\n": {"operator": "inpaint_random", "noise_std": 0.1}}),
     "restoration.tasks: 'half\\n' is not a name"),
    ("restorer_name_newline", replace("restoration.restorers", {"rw\n": {"family": "rw_conditional", "steps": 5}}),
     "restoration.restorers: 'rw\\n' is not a name"),
    ("model_name_300_chars", replace("models." + "m" * 300, {"source": "oracle"}), "models: 'mmmmmmmm"),
    ("sampler_name_65_chars", replace("samplers", {"s" * 65: {"family": "ddpm", "steps": 10}}), "is not a name"),
    ("dataset_name_empty", replace("datasets", {"": {"family": "gmm"}}), "datasets: '' is not a name"),
    ("study_sampler_newline", replace("studies.temperature_ramp", {"samplers": ["rw\n"]}),
     "studies.temperature_ramp.samplers.0: 'rw\\n' is not a name"),
    # --- issue 26: lists past MAX_LIST_ITEMS are refused, not planned for minutes ---
    ("knob_list_too_long", replace("samplers.rw.knobs.eps", [0.1] * 10_001),
     "samplers.rw.knobs.eps: a list of 10,001 values; allowed: at most 10,000"),
    # --- issue 26: plugins that exit, or are folders ---
    ("plugin_sys_exit_0", plugin("import sys\nsys.exit(0)\n"),
     "plugins[0]: " + "{tmp}/bad_plugin.py: SystemExit: it calls sys.exit(0) when imported (line 2)"),
    ("plugin_sys_exit_1", plugin("raise SystemExit(1)\n"), "SystemExit: it calls sys.exit(1) when imported"),
    ("plugin_folder", replace("plugins", lambda tmp: [str(_a_folder(tmp))]), "plugins[0]: file '"),
    # --- issue 26, results folders: a path value the jobs could not use, refused at parse time naming `results`
    ("results_symlink_loop", replace("results", lambda tmp: _a_link(tmp, "loop", "loop")),
     "results: 'loop' cannot be resolved"),
    ("results_inside_a_symlink_loop", replace("results", lambda tmp: _a_link(tmp, "loop", "loop") + "/sweep"),
     "results: 'loop/sweep' cannot be resolved"),
    ("results_dangling_link", replace("results", lambda tmp: _a_link(tmp, "gone", "nowhere")),
     "results: 'gone': 'gone' is a symbolic link to 'nowhere', which does not exist"),
    ("results_under_a_dangling_link", replace("results", lambda tmp: _a_link(tmp, "gone", "nowhere") + "/sweep"),
     "results: 'gone/sweep': 'gone' is a symbolic link to 'nowhere'"),
    ("results_proc_self", replace("results", "/proc/self"), "results: '/proc/self' is not writable"),
    ("results_under_proc", replace("results", "/proc/self/sweep"),
     "results: '/proc/self/sweep' (its nearest existing folder '/proc/self') is not writable"),
    ("results_under_a_file", replace("results", lambda tmp: str(_a_file(tmp)) + "/sweep"),
     "results.txt' is a file, so no folder can be made in it"),
    ("results_line_break", replace("results", "results\n"), "results: 'results\\n' holds a control character"),
    ("results_inner_line_break", replace("results", "res\nults"), "results: 'res\\nults' holds a control character"),
    ("results_nul_byte", replace("results", "res\x00ults"), "results: 'res\\x00ults' holds a control character"),
    ("results_tab", replace("results", "res\tults"), "holds a control character"),
    ("results_unknown_user", replace("results", "~nosuchuser_diffsweep/results"),
     "results: '~nosuchuser_diffsweep/results' names no user's home folder"),
    ("results_name_too_long", replace("results", "r" * 300), "has a component longer than 255 bytes"),
    ("results_layout_a_list", layout("[3]"), "results: results/layout.json: holds [3], not a layout marker"),
    ("results_layout_truncated", layout('{"version": 3'),
     "results: results/layout.json: cannot be read as JSON (JSONDecodeError"),
    ("results_layout_version_text", layout('{"version": "3"}'), "results/layout.json: holds {\"version\": \"3\"}"),
    ("results_layout_a_folder", layout(None), "results/layout.json: cannot be read as JSON (IsADirectoryError"),
    # --- issue 26, data: an images path whose search would walk a whole filesystem, or is no folder or file
    ("images_path_root", replace("datasets.faces", {"family": "images", "knobs": {"path": "/"}}),
     "datasets.faces.knobs.path: folder '/' holds '/"),
    ("images_path_proc", replace("datasets.faces", {"family": "images", "knobs": {"path": "/proc"}}),
     "datasets.faces.knobs.path: '/proc' is under /proc, a kernel filesystem"),
    ("images_path_sys", replace("datasets.faces", {"family": "images", "knobs": {"path": "/sys/kernel"}}),
     "datasets.faces.knobs.path: '/sys/kernel' is under /sys"),
    ("images_path_a_device", replace("datasets.faces", {"family": "images", "knobs": {"path": "/dev/null"}}),
     "datasets.faces.knobs.path: '/dev/null' is neither a folder nor a file"),
    # --- issue 26: arch_params are declared knobs (diffsweep list architectures|pretrained), checked at parse time,
    # in a checkpoint's .arch.yaml too (they failed in the job, or trained for hours a network nobody meant) ---
    ("arch_width_float", replace("models.mlp.arch_params", {"hidden": 128.0}),
     "models.mlp.arch_params.hidden: 128.0 is not allowed; allowed: an integer >= 1, <= 65536 "
     "(write 128: 128.0 is no integer)"),
    ("arch_unknown_key", replace("models.mlp.arch_params", {"width": 64}),
     "models.mlp.arch_params: unknown knob(s) ['width'] for architecture 'mlp'; allowed: hidden, depth, embedding"),
    ("arch_negative", replace("models.mlp.arch_params", {"depth": -2}), "models.mlp.arch_params.depth: -2 is below"),
    ("arch_huge", replace("models.mlp.arch_params", {"hidden": 10**7}),
     "models.mlp.arch_params.hidden: 10000000 is above the maximum 65536"),
    ("arch_bool_for_int", replace("models.mlp.arch_params", {"depth": True}), "models.mlp.arch_params.depth: True"),
    ("arch_string_for_int", replace("models.mlp.arch_params", {"hidden": "128"}), "arch_params.hidden: '128' is not"),
    ("arch_odd_embedding", replace("models.mlp.arch_params", {"embedding": 33}),
     "models.mlp.arch_params: embedding 33 is odd"),
    ("arch_swept_width_float", replace("models.mlp.arch_params", {"hidden": [64, 96.5]}),
     "models.mlp.arch_params.hidden: 96.5 is not allowed"),
    ("unet_channel_float", replace("models.unet", {"source": "trained", "arch": "unet",
                                                   "arch_params": {"channels": [16.5, 32]}}),
     "models.unet.arch_params.channels[0]: 16.5 is not allowed; allowed: an integer >= 1"),
    ("unet_channels_not_a_list", replace("models.unet", {"arch": "unet", "arch_params": {"channels": 32}}),
     "models.unet.arch_params.channels: 32 is not allowed; allowed: a list of 1 to 8 items, each an integer"),
    ("unet_channels_empty", replace("models.unet", {"arch": "unet", "arch_params": {"channels": []}}),
     "models.unet.arch_params.channels: [] is not allowed"),
    ("unet_channels_too_many", replace("models.unet", {"arch": "unet", "arch_params": {"channels": [16] * 9}}),
     "models.unet.arch_params.channels: [16, 16"),
    ("unet_channels_strings", replace("models.unet", {"arch": "unet", "arch_params": {"channels": ["16", "32"]}}),
     "models.unet.arch_params.channels[0]: '16' is not allowed"),
    ("unet_channels_negative", replace("models.unet", {"arch": "unet", "arch_params": {"channels": [16, -32]}}),
     "models.unet.arch_params.channels[1]: -32 is below the minimum 1"),
    ("unet_swept_channels_bad_point", replace("models.unet", {"arch": "unet",
                                                              "arch_params": {"channels": [[16, 32], [16, 32.0]]}}),
     "models.unet.arch_params.channels[1]: 32.0 is not allowed"),
    ("unet_channels_vs_groups", replace("models.unet", {"arch": "unet", "arch_params": {"channels": [12, 32]}}),
     "models.unet.arch_params: channels [12, 32]: 12 is not a multiple of norm_groups 8"),
    ("pretrained_arch_float", replace("models.vp", _pretrained({"image_size": 32.0})),
     "models.vp.arch_params.image_size: 32.0 is not allowed; allowed: an integer >= 1, <= 4096 (write 32"),
    ("pretrained_arch_list_item_float", replace("models.vp", _pretrained({"channel_mult": [1, 2.5]})),
     "models.vp.arch_params.channel_mult[1]: 2.5 is not allowed"),
    ("pretrained_arch_list_not_list", replace("models.vp", _pretrained({"attention_resolutions": 16})),
     "models.vp.arch_params.attention_resolutions: 16 is not allowed; allowed: a list of 0 to 8 items"),
    ("pretrained_arch_out_of_range", replace("models.vp", _pretrained({"in_channels": 4})),
     "models.vp.arch_params.in_channels: 4 is not allowed; allowed: 1, 3"),
    ("pretrained_arch_inconsistent", replace("models.vp", _pretrained({"model_channels": 100})),
     "models.vp.arch_params: model_channels 100 x channel_mult [1, 1, 2, 2, 4, 4] gives the widths"),
    ("pretrained_arch_image_side", replace("models.ve", _pretrained({"image_size": 100}, "ncsnpp_ffhq256")),
     "models.ve.arch_params: image_size 100 cannot be halved 6 times"),
    ("sidecar_width_float", replace("models.vp", _pretrained({}, sidecar="model_channels: 32.0\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': model_channels: 32.0 is not allowed; allowed: an integer"),
    ("sidecar_negative", replace("models.vp", _pretrained({}, sidecar="image_size: -32\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': image_size: -32 is below the minimum 1"),
    ("sidecar_huge", replace("models.vp", _pretrained({}, sidecar="num_res_blocks: 1000\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': num_res_blocks: 1000 is above the maximum 16"),
    ("sidecar_list_item_float", replace("models.vp", _pretrained({}, sidecar="channel_mult: [1, 2.0]\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': channel_mult[1]: 2.0 is not allowed"),
    ("sidecar_list_too_long", replace("models.vp", _pretrained({}, sidecar="channel_mult: [1, 1, 1, 1, 1, 1, 1, 1, 1]\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': channel_mult: [1, 1, 1, 1, 1, 1, 1, 1, 1] is not allowed"),
    ("sidecar_inconsistent", replace("models.vp", _pretrained({}, sidecar="image_size: 48\n")),
     "models.vp.checkpoint: 'vp.pt.arch.yaml': image_size 48 cannot be halved 5 times"),
    ("sidecar_integer_5000_digits", replace("models.vp", _pretrained({}, sidecar="image_size: " + "9" * 5000 + "\n")),
     "models.vp.checkpoint: cannot read 'vp.pt.arch.yaml' (a value cannot be read: Exceeds the limit"),
    # a renamed knob (issue 24: one name per concept, docs/samplers.md): the former name, named with the new one
    ("renamed_solver", replace("samplers.rw", {"family": "pf_ode", "knobs": {"solver": "euler"}}),
     "samplers.rw.knobs.solver: renamed to solver_type"),
    ("renamed_corrector_steps", replace("samplers.rw", {"family": "pc", "knobs": {"corrector_steps": [1, 2]}}),
     "samplers.rw.knobs.corrector_steps: renamed to steps_per_level"),
    ("renamed_order", replace("samplers.rw", {"family": "pc", "knobs": {"order": "predictor_first"}}),
     "samplers.rw.knobs.order: renamed to sequence"),
    ("renamed_ddpm_variance", replace("samplers.rw.knobs.ddpm_variance", "beta"),
     "samplers.rw.knobs.ddpm_variance: renamed to variance"),
    ("renamed_ddpm_variance_rw_ddpm", replace("samplers.rw", {"family": "rw_ddpm", "knobs": {"ddpm_variance": "beta"}}),
     "samplers.rw.knobs.ddpm_variance: renamed to variance"),
    ("renamed_langevin_steps", replace("restoration.restorers.rw_cond",
                                       {"family": "daps", "steps": 5, "knobs": {"langevin_steps": 5}}),
     "restoration.restorers.rw_cond.knobs.langevin_steps: renamed to steps_per_level"),
]


def _a_link(tmp_path: Path, name: str, target: str) -> str:
    """A symbolic link `name` -> `target` in tmp_path (the working directory of the case)."""
    (tmp_path / name).symlink_to(target)
    return name


def _a_folder(tmp_path: Path) -> Path:
    path = tmp_path / "my_plugins"
    path.mkdir(exist_ok=True)
    (path / "sampler.py").write_text("")
    return path


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.txt"
    path.write_text("not a folder\n")
    return path


# (case id, file text, what the message must contain)
TEXTS = [
    ("duplicate_top_key", "samplers: {rw: {family: ddpm}}\nsamplers: {rw: {family: ddim}}\n",
     "line 2, column 1: samplers: duplicate key (first at line 1)"),
    ("duplicate_nested_key", "samplers:\n  rw:\n    family: ddpm\n    steps: 10\n    steps: 20\n",
     "line 5, column 5: samplers.rw.steps: duplicate key (first at line 4)"),
    ("duplicate_flow_key", "datasets: {ring8: {family: gmm, family: swissroll}}\n",
     "line 1, column 33: datasets.ring8.family: duplicate key (first at line 1)"),
    ("syntax_unclosed", "samplers:\n  rw: {family: ddpm\nmodels: {}\n", "YAML syntax error"),
    ("syntax_tab", "samplers:\n\trw: {family: ddpm}\n", "line 2, column 1: YAML syntax error"),
    ("syntax_bad_indent", "samplers:\n  rw:\n    family: ddpm\n   steps: 3\n", "YAML syntax error"),
    ("empty_file", "", "the file is empty; expected a mapping"),
    ("comments_only", "# nothing here\n", "the file is empty"),
    ("top_level_list", "- samplers\n- models\n", "expected a mapping of config keys at the top level, got a list"),
    ("top_level_string", "just words\n", "got a str"),
    ("lr_yaml11_string", "models:\n  mlp: {source: trained, lr: 1e-3}\n",
     "models.mlp.lr: '1e-3' has the wrong type or value; allowed: a finite number > 0, or a list of those "
     "(YAML 1.1 reads 1e-3 as a string: write 1.0e-3)"),
    ("knob_yaml11_string", "samplers:\n  rw: {family: random_walk, knobs: {eps: 5e-1}}\n",
     "samplers.rw.knobs.eps: '5e-1' is not allowed; allowed: a finite number > 0.0 (YAML 1.1 reads 5e-1 as a string: write 5.0e-1)"),
    ("nan_literal", "samplers:\n  rw: {family: random_walk, knobs: {eps: .nan}}\n", "samplers.rw.knobs.eps: nan"),
    ("duplicate_deep_key",
     "seeds: [0]\ntables:\n  ablations:\n    t: {rows: [sampler], metric: mmd, metric: sliced_w2}\n",
     "line 4, column 39: tables.ablations.t.metric: duplicate key (first at line 4)"),
    ("steps_yaml11_string", "samplers:\n  rw: {family: ddpm, steps: 1e3}\n",
     "(YAML 1.1 reads 1e3 as a string: write 1.0e3, or 1000 for an integer)"),
    ("lr_list_yaml11_string", "models:\n  mlp: {source: trained, lr: [2.0e-3, 1e-3]}\n",
     "models.mlp.lr: [0.002, '1e-3'] has the wrong type or value; allowed: a finite number > 0, or a list of those "
     "(YAML 1.1 reads 1e-3 as a string: write 1.0e-3)"),
    ("restoration_seed_negative", "restoration:\n  seeds: [-1]\n",
     "restoration.seeds.0: -1 is less than the minimum of 0"),
    # --- issue 26: config files bounded: size, nesting, alias expansion, recursive aliases ---
    ("alias_bomb", "\n".join(["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] +
                             [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\n",
     "more than 100,000 values with every YAML alias expanded"),
    ("alias_recursive", "seeds: &s [0, *s]\n", "seeds[1]: contains itself (a recursive YAML alias)"),
    ("alias_recursive_mapping", "data: &d {seed: 0, more: *d}\n", "data.more: contains itself"),
    ("nested_40_deep", "seeds: " + "[" * 40 + "0" + "]" * 40 + "\n", "nested deeper than 32 levels"),
    ("nested_5000_deep", "seeds: " + "[" * 5000 + "]" * 5000 + "\n", "exceeded maximum nesting depth"),
    ("file_too_large", "seeds: [0]\n" + "#" * 1_000_000 + "\n", "the file is larger than 1,000,000 bytes"),
    ("integer_5000_digits", "seeds: [" + "9" * 5000 + "]\n", "a value cannot be read: Exceeds the limit"),
    ("seed_2_63_text", "seeds: [9223372036854775808]\n", "seeds[0]: 9223372036854775808 is outside the integer"),
    ("name_newline_text", 'samplers: {"ddpm\\n": {family: ddpm}}\n', "samplers: 'ddpm\\n' is not a name"),
]


def write_case(tmp_path: Path, change) -> Path:
    config = copy.deepcopy(BASE)
    change(config, tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_refused(capsys, path: Path, expected: str) -> None:
    assert cli.main(["grid", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert expected in err, err
    assert "Traceback" not in err + captured.out and not captured.out
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(f"invalid config {path}: ") for line in lines), err


def test_the_base_config_is_valid(tmp_path, capsys):
    path = write_case(tmp_path, lambda config, tmp: None)
    assert cli.main(["grid", "--config", str(path)]) == 0, capsys.readouterr().err


def test_the_corpus_is_large():
    assert len(CHANGES) + len(TEXTS) >= 50


@pytest.mark.parametrize("change, expected", [case[1:] for case in CHANGES], ids=[case[0] for case in CHANGES])
def test_a_bad_config_is_refused_in_one_line_naming_the_key(tmp_path, capsys, monkeypatch, change, expected):
    monkeypatch.chdir(tmp_path)          # relative paths (results, files named) start here
    monkeypatch.delenv(ds_config.SKIP_PATH_CHECKS, raising=False)
    assert_refused(capsys, write_case(tmp_path, change), expected.replace("{tmp}", str(tmp_path)))


@pytest.mark.parametrize("text, expected", [case[1:] for case in TEXTS], ids=[case[0] for case in TEXTS])
def test_a_bad_config_file_is_refused_naming_the_line_or_key(tmp_path, capsys, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_refused(capsys, path, expected)


def test_every_problem_is_a_line_of_its_own(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, lambda config, tmp: config.update(bogus=1, device="tpu"))
    assert_refused(capsys, path, "(top level): unknown key(s) ['bogus']")
    capsys.readouterr()
    assert cli.main(["grid", "--config", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_the_switch_plans_without_the_named_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, replace("fidelity.inception_weights", "nowhere/inception.pth"))
    monkeypatch.setenv(ds_config.SKIP_PATH_CHECKS, "1")
    assert cli.main(["grid", "--config", str(path)]) == 0
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "inception.pth").write_bytes(b"")
    monkeypatch.delenv(ds_config.SKIP_PATH_CHECKS)
    assert cli.main(["grid", "--config", str(path)]) == 0          # present: accepted without the switch


def test_list_reads_the_config_strictly(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("plugins: []\nplugins: [x.py]\n")
    assert cli.main(["list", "samplers", "--config", str(path)]) == 2
    assert "line 2, column 1: plugins: duplicate key" in capsys.readouterr().err


# --- the same refusals from `snakemake -n` (slow: a few only) -----------------------------

SNAKEMAKE_CASES = [
    ("duplicate_key", "samplers: {rw: {family: ddpm}}\nsamplers: {rw: {family: ddim}}\n",
     "line 2, column 1: samplers: duplicate key (first at line 1)"),
    ("knob_nan", yaml.safe_dump({**BASE, "samplers": {"rw": {"family": "random_walk", "knobs": {"eps": NAN}}}}),
     "samplers.rw.knobs.eps: nan is not allowed"),
    ("results_empty", yaml.safe_dump({**BASE, "results": ""}), "invalid config: results: '' is empty"),
    # issue 26: a results path the jobs cannot use (here a NUL byte) is refused by the Snakefile's check, naming it
    ("results_nul_byte", yaml.safe_dump({**BASE, "results": "res\x00ults"}),
     "invalid config: results: 'res\\x00ults' holds a control character"),
]


# --- issue 26: what Snakemake's own reader loads, before the Snakefile (a few real runs) ------------
SNAKEMAKE_CASES += [
    ("plugin_sys_exit", "plugins: [exit_plugin.py]\n", "SystemExit: it calls sys.exit(0) when imported"),
    ("plugin_module_folder", "plugins: [bench]\n", "plugins[0]: 'bench' is a folder"),   # the Snakefile's folder
    ("alias_recursive", "seeds: &s [0, *s]\n", "seeds[1]: contains itself (a recursive YAML alias)"),
]


@pytest.mark.workflow
@pytest.mark.parametrize("text, expected", [case[1:] for case in SNAKEMAKE_CASES],
                         ids=[case[0] for case in SNAKEMAKE_CASES])
def test_snakemake_refuses_the_same_way(tmp_path, text, expected):
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "exit_plugin.py").write_text("import sys\nsys.exit(0)\n")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", str(ROOT / "profiles" / "default"),
                             "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--configfile", "bad.yaml"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if k != ds_config.SKIP_PATH_CHECKS})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output
    assert "Traceback" not in output and not (tmp_path / "results").exists()


def test_infinity_where_the_knob_default_is_infinite(tmp_path, capsys, monkeypatch):
    """EDM's S_tmax has no bound by default (inf): writing it, or sweeping it, is meaningful."""
    from diffsweep import samplers
    (unbounded,) = [name for name, knob in samplers.get("edm").knobs.items() if knob.default == INF]
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, replace("samplers.edm", {"family": "edm", "steps": 5,
                                                         "knobs": {unbounded: [10.0, INF]}}))
    assert cli.main(["grid", "--config", str(path)]) == 0, capsys.readouterr().err


# --- issue 26: snakemake and diffsweep grid answer every config of the corpus the same way -----------
# Snakemake reads --configfile files with its own reader before the Snakefile is parsed, and the
# Snakefile (workflow/rules/common.smk) then calls config.check_files(workflow.configfiles, config):
# the same function `diffsweep grid` calls, with Snakemake's reading of the file instead of ours.
# Cases Snakemake's reader answers itself (docs/running.md, "Limits of a config"): with its own one
# line (WorkflowError), or, where its reader breaks, with its traceback.
SNAKEMAKE_READER_REFUSES = {"syntax_unclosed", "syntax_tab", "syntax_bad_indent", "empty_file", "comments_only",
                            "top_level_list", "top_level_string"}
SNAKEMAKE_READER_BREAKS = {"nested_5000_deep", "integer_5000_digits"}


def snakefile_answer(path: Path) -> list[str]:
    """The problems `snakemake --configfile path` prints, computed the way the Snakefile does."""
    from snakemake.common.configfile import load_configfile

    config = copy.deepcopy(load_configfile(str(path)))   # Snakemake's reader; the workflow gets a copy
    try:
        ds_config.check_files([path], config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    except ds_config.ConfigError as error:
        return error.problems
    return []


def grid_answer(path: Path) -> list[str]:
    try:
        ds_config.check_files([path])
    except ds_config.ConfigError as error:
        return error.problems
    return []


CORPUS = [(case, change, None) for case, change, _ in CHANGES] + [(case, None, text) for case, text, _ in TEXTS]


@pytest.mark.parametrize("change, text", [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_snakemake_and_grid_answer_every_corpus_config_the_same(tmp_path, monkeypatch, request, change, text):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ds_config.SKIP_PATH_CHECKS, raising=False)
    path = write_case(tmp_path, change) if change else tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    case = request.node.callspec.id
    expected = grid_answer(path)
    assert expected, "every corpus config is refused"
    if case in SNAKEMAKE_READER_BREAKS:   # (seconds of recursion in Snakemake's reader: not run)
        return
    if case in SNAKEMAKE_READER_REFUSES:
        from snakemake.exceptions import WorkflowError
        with pytest.raises(WorkflowError):
            snakefile_answer(path)
        return
    assert snakefile_answer(path) == expected


def test_the_snakefile_checks_with_the_grid_function():
    """The equality above holds for the Snakefile only while it calls check_files as snakefile_answer does."""
    assert "ds_config.check_files(workflow.configfiles, config," in (ROOT / "workflow" / "rules" / "common.smk").read_text()


# --- issue 26: every integer states its range ---------------------------------------------------


def test_every_integer_of_the_schema_states_its_range():
    def integers(node, path=""):
        if isinstance(node, dict):
            if node.get("type") == "integer":
                yield path, node
            for key, value in node.items():
                yield from integers(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from integers(value, f"{path}[{index}]")
    found = list(integers(ds_config.load_schema()))
    assert found
    for path, node in found:
        assert "minimum" in node and node.get("maximum", math.inf) <= ds_config.INT_MAX, path


def test_every_integer_knob_states_its_range():
    from diffsweep import architectures, data, noise, pretrained, restoration, samplers
    registries = [data.FAMILIES, noise.SCHEDULES, noise.TRAINING_DISTRIBUTIONS, noise.LOSS_WEIGHTS,
                  samplers.registry.SAMPLERS, restoration.registry.OPERATORS, restoration.registry.RESTORERS,
                  pretrained.FORMATS, architectures.ARCHITECTURES]
    knobs = [(f"{entry.kind} {entry.name}.{name}", knob) for registry in registries
             for entry in registry.entries() for name, knob in entry.knobs.items()
             if knob.type in ("int", "list[int]")]   # a list knob's bounds are its items'
    assert any(knob.type == "list[int]" for _, knob in knobs)
    assert len(knobs) > 20
    for where, knob in knobs:
        assert knob.choices or (knob.minimum is not None and knob.maximum is not None
                                and ds_config.INT_MIN <= knob.minimum and knob.maximum <= ds_config.INT_MAX), where
        assert knob.type == "int" or knob.max_items is not None, where


def test_the_longest_names_give_file_names_of_a_safe_length(tmp_path, monkeypatch):
    """Names of 64 characters: run ids and shard ids (and the record files named after them) stay
    far below the 255 bytes of a file name."""
    from diffsweep import grid
    long = "n" * 64
    config = copy.deepcopy(BASE)
    config.update(datasets={long: BASE["datasets"]["ring8"]}, models={long: {"source": "oracle"}},
                  samplers={long: BASE["samplers"]["rw"]})
    config["restoration"].update(models=[long], tasks={long: BASE["restoration"]["tasks"]["half"]},
                                 restorers={long: BASE["restoration"]["restorers"]["rw_cond"]})
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    checked = ds_config.check_files([path])
    shards = checked.grid.shards(grid.runs_per_job(checked.config))
    assert shards and checked.grid.of_kind('restoration')
    longest = max(len(name) for name in [*shards, *checked.grid.runs])
    assert longest <= 64 + 2 * (1 + grid.HASH_DIGITS)
    assert len(f"{max(shards, key=len)}.jsonl.archive") < 128
