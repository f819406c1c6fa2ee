"""Figures without Snakemake: metric against NFE with seed bands, heatmaps, schedules and
training curves, each written in every figure format."""

import pandas as pd
import pytest

from diffsweep import tables
from diffsweep.plots import heatmaps, lines, samples, schedules, style, training
from diffsweep.tables import PLOT_FORMATS


@pytest.fixture
def captured(monkeypatch):
    """Figures handed to style.save, kept open instead of written."""
    figures = []
    monkeypatch.setattr(style, "save", lambda fig, out: figures.append(fig))
    yield figures
    import matplotlib.pyplot as plt
    for fig in figures:
        plt.close(fig)


def generation_frame():
    rows = []
    for model, offset in (("oracle", 0.0), ("mlp", 0.5)):
        for sampler in ("rw", "ddpm"):
            for steps in (10, 40):
                for T0 in ((0.1, 1.0) if sampler == "rw" else (None,)):
                    for seed in range(3):
                        rows.append({"run_id": f"{model}{sampler}{steps}{T0}{seed}", "dataset": "ring8",
                                     "model": model, "model_source": "oracle" if model == "oracle" else "trained",
                                     "model_train_sigma_name": None if model == "oracle" else "ve_loguniform",
                                     "sampler": sampler, "schedule": "sigmoid" if sampler == "rw" else "vp_respaced",
                                     "steps": steps, "knob_T0": T0, "seed": seed, "status": "ok",
                                     "nfe": steps, "sliced_w2": offset + 1 / steps + 0.01 * seed + (T0 or 0)})
    params = ["dataset", "model", "model_source", "model_train_sigma_name", "sampler", "schedule", "steps", "knob_T0",
              "seed"]
    return tables.with_params(tables.typed_frame(rows), params)


def test_metric_vs_nfe_has_seed_bands_and_a_line_per_swept_knob(captured):
    lines.metric_vs_nfe(generation_frame(), "sliced_w2", "unused.png")
    ax = captured[0].axes[0]
    from matplotlib.collections import PolyCollection
    assert len(captured[0].axes) == 2                                         # a row of panels per model
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3    # 3 series, one band each
    labels = [t.get_text() for t in captured[0].legends[0].get_texts()]
    assert {"ddpm", "rw (T0=0.1)", "rw (T0=1)"} <= set(labels)


def test_heatmap_averages_seeds_then_takes_the_best_configuration():
    frame = generation_frame()
    data = heatmaps.heatmap_data(frame[frame["model_source"] == "trained"], "sliced_w2")
    grid = data["ring8"]
    assert list(grid.index) == ["ve_loguniform"] and list(grid.columns) == ["sigmoid", "vp_respaced"]
    assert grid.loc["ve_loguniform", "sigmoid"] == pytest.approx(0.5 + 1 / 40 + 0.01 + 0.1)   # best: 40 steps, T0 0.1
    mean = heatmaps.heatmap_data(frame[frame["model_source"] == "trained"], "sliced_w2", reduce="mean")["ring8"]
    assert mean.loc["ve_loguniform", "vp_respaced"] == pytest.approx(0.5 + (1 / 10 + 1 / 40) / 2 + 0.01)


def test_schedule_points_give_every_schedule_and_step_count():
    manifest = tables.typed_frame([
        {"schedule": "karras", "steps": 8, "schedule_sigma_min": 0.002, "schedule_sigma_max": 80.0,
         "schedule_rho": 7.0, "schedule_timesteps": None},
        {"schedule": "vp_respaced", "steps": 20, "schedule_beta_min": 1e-4, "schedule_beta_max": 0.02,
         "schedule_timesteps": 1000},
        {"schedule": "vp_respaced", "steps": 20, "schedule_beta_min": 1e-4, "schedule_beta_max": 0.02,
         "schedule_timesteps": 1000}])
    points = schedules.schedule_points(manifest)
    assert [(p["schedule"], p["steps"]) for p in points] == [("karras", 8), ("vp_respaced", 20)]
    assert schedules.schedule_knobs(points[1]) == {"beta_min": 1e-4, "beta_max": 0.02, "timesteps": 1000}


def test_every_figure_is_written_as_png_and_pdf(tmp_path):
    frame = generation_frame()
    manifest = tables.typed_frame([{"schedule": "sigmoid", "steps": k, "schedule_sigma_min": 0.01,
                                    "schedule_sigma_max": 50.0, "schedule_sharpness": 0.3} for k in (10, 40)])
    train_log = pd.DataFrame({"model_id": ["m-1"] * 3, "step": [50, 100, 150], "loss": [1.0, 0.8, 0.7],
                             "loss_ema": [1.0, 0.9, 0.8]})
    names = {"m": lambda out: lines.metric_vs_nfe(frame, "sliced_w2", out),
             "h": lambda out: heatmaps.heatmap(frame[frame["model_source"] == "trained"], "sliced_w2", out),
             "s": lambda out: schedules.schedule_curves(manifest, out),
             "t": lambda out: training.training_curves(train_log, None, out),
             "empty": lambda out: lines.metric_vs_nfe(frame, "no_such_metric", out)}
    magic = {"png": b"\x89PNG", "pdf": b"%PDF"}
    for name, draw in names.items():
        draw([tmp_path / f"{name}.{ext}" for ext in PLOT_FORMATS])
        for ext in PLOT_FORMATS:
            assert (tmp_path / f"{name}.{ext}").read_bytes()[:4] == magic[ext]
    with pytest.raises(ValueError, match="not one of png, pdf"):
        lines.metric_vs_nfe(frame, "sliced_w2", tmp_path / "m.svg")


def test_lines_are_told_apart_by_listed_parameters_only(captured):
    """A per-run result named like a parameter (model_*) varies over seeds: it does not split
    the lines; a listed parameter does, whatever its name."""
    frame = generation_frame()
    frame = frame.assign(model_score_norm=frame["seed"].astype(float), temperature=1.0)
    frame = tables.with_params(frame, [*tables.param_columns(generation_frame()), "temperature"])
    labels = lines.series_labels(frame, "sampler", ["model", "dataset", "nfe"], tables.param_columns(frame))
    assert set(labels) == {"ddpm", "rw (T0=0.1)", "rw (T0=1)"}
    frame.loc[frame["seed"] == 2, "temperature"] = 2.0
    labels = lines.series_labels(frame, "sampler", ["model", "dataset", "nfe"], tables.param_columns(frame))
    assert "rw (T0=0.1, temperature=2)" in set(labels) and "ddpm (temperature=1)" in set(labels)


def test_restoration_bands_span_measurements_and_seeds(captured):
    rows = [{"run_id": f"{r}{k}{s}", "model": "oracle", "task": "box", "restorer": r, "steps": k, "seed": s,
             "measurement": m, "status": "ok", "nfe": k, "psnr": 20 + k / 10 + m + 0.1 * s + (r == "dps")}
            for r in ("dps", "rw_cond") for k in (10, 30) for s in (0, 1) for m in (0, 1)]
    frame = tables.with_params(tables.typed_frame(rows), ["model", "task", "restorer", "steps", "seed"])
    lines.restoration_vs_nfe(frame, "psnr", "unused.png")
    from matplotlib.collections import PolyCollection
    ax = captured[0].axes[0]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2        # a line and band per restorer
    assert {t.get_text() for t in captured[0].legends[0].get_texts()} >= {"dps", "rw_cond"}


def figure_problems(fig) -> list[str]:
    """Panels drawn without data, and legends longer than style.MAX_SERIES."""
    problems = [f"empty panel '{ax.get_title()}'" for ax in fig.axes
                if ax.axison and ax.get_label() != "<colorbar>" and not (ax.lines or ax.collections or ax.images)]
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    problems += [f"a legend of {len(legend.get_texts())} entries" for legend in legends
                 if len(legend.get_texts()) > style.MAX_SERIES]
    return problems


def test_a_sweep_over_knobs_on_some_pairs_gives_no_empty_panel_and_a_short_legend(captured):
    """The default grid's shape: score sources on some datasets only (an 18-panel grid had 11 empty
    panels), and a knob swept over many values (a line each made a legend per configuration)."""
    sources = {"ring8": ["oracle", "mlp"], "grid25": ["oracle"], "digits": ["oracle", "unet"]}
    rows = [{"run_id": f"{len(rows)}", "dataset": d, "model": m, "sampler": p, "steps": k, "knob_T0": t0,
             "seed": s, "status": "ok", "nfe": k, "sliced_w2": 1 / k + t0 + 0.01 * s}
            for rows in [[]] for d, models in sources.items() for m in models for p in ("rw", "ddim")
            for t0 in ([0.05 * i for i in range(1, 31)] if p == "rw" else [0.0]) for k in (10, 40) for s in (0, 1)]
    frame = tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "steps", "knob_T0", "seed"])
    lines.metric_vs_nfe(frame, "sliced_w2", "unused.png")
    heatmaps.heatmap(frame, "sliced_w2", "unused.png", rows="model", columns="sampler")
    assert len([ax for ax in captured[0].axes if ax.axison]) == 5                  # one per (dataset, model) pair
    assert [figure_problems(fig) for fig in captured] == [[], []]
    assert {t.get_text() for t in captured[0].legends[0].get_texts()} == {"ddim", "rw"}   # 30 T0 values pooled


def test_a_sweep_over_schedule_knobs_and_steps_keeps_the_schedule_figure_small(captured):
    manifest = tables.typed_frame([{"schedule": "karras", "steps": k, "schedule_sigma_min": 0.002,
                                    "schedule_sigma_max": 10.0 + i, "schedule_rho": 7.0, "schedule_timesteps": None}
                                   for i in range(13) for k in range(5, 18)])
    schedules.schedule_curves(manifest, "unused.png")
    assert len([ax for ax in captured[0].axes if ax.axison]) == 1          # not one panel per sigma_max
    assert figure_problems(captured[0]) == []


def stored_runs(results, rows):
    """A results folder holding a record and a few 2-D samples of each of `rows` (table rows)."""
    import numpy as np

    from diffsweep import runs

    store = runs.ShardStore(results, "s")
    for row in rows:
        folder = store.run_staging(row["run_id"])
        np.savez(folder / "samples.npz", x=np.zeros((4, 2)))
        run = {"id": row["run_id"], "kind": "generation", "row": {}, "identity": {}}
        store.append(runs.make_record(run, "ok", row["nfe"], 0.1, "cpu", {}, {"metrics": {}}), folder)


def test_a_sample_grid_of_many_presets_and_models_shows_the_best_and_reads_only_their_runs(captured, tmp_path,
                                                                                          monkeypatch):
    """More presets and models than style.MAX_PANELS (3 here: a small figure): the best of each by
    the metric (here the last by name) are drawn, the title says what was left out, and only the
    shown runs' records are parsed."""
    import numpy as np

    from diffsweep import runs

    monkeypatch.setattr(style, "MAX_PANELS", 3)
    rows = [{"run_id": f"p{p:02d}m{m:02d}-{k:016x}", "dataset": "ring8", "model": f"m{m:02d}", "sampler": f"p{p:02d}",
             "steps": k, "seed": s, "status": "ok", "nfe": k, "sliced_w2": 100.0 - p - 0.1 * m + 1 / k + s}
            for p in range(5) for m in range(4) for k in (10, 20) for s in (0, 1)]
    stored_runs(tmp_path, [row for row in rows if row["nfe"] == 20 and row["seed"] == 0])
    parsed, index = [], runs.index
    monkeypatch.setattr(runs, "index", lambda results, only=None: parsed.append(only) or index(results, only))
    frame = tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "steps", "seed"])
    samples.sample_grid(frame, "ring8", tmp_path, np.random.default_rng(0).normal(size=(50, 2)), "unused.png",
                        rank_by="sliced_w2")
    (fig,) = captured
    assert len(fig.axes) == 3 * (1 + 3)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["exact", "p02\nNFE 20", "p03\nNFE 20", "p04\nNFE 20"]
    assert [ax.get_ylabel() for ax in fig.axes[::4]] == ["m01", "m02", "m03"]
    assert fig.get_suptitle() == "ring8\n3 of 5 presets, 3 of 4 models: the best by sliced_w2 at their largest NFE"
    assert parsed == [{f"p{p:02d}m{m:02d}-{20:016x}" for p in (2, 3, 4) for m in (1, 2, 3)}]


def test_a_log_axis_within_a_factor_of_two_stays_linear():
    # A ratio near 1 (mode_spread) on a log axis would show a single tick.
    import matplotlib.pyplot as plt

    for values, scale in [([0.95, 1.4], "linear"), ([0.1, 10.0], "log")]:
        fig, ax = plt.subplots()
        ax.plot([10, 100], values)
        style.log_axes(ax, x=True, y=True)
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", scale), values
        plt.close(fig)


# --- intervals, floors and lines told apart (#21, #25) ------------------------------------------

def test_a_point_is_the_mean_with_the_seed_interval_and_one_run_its_own_sampling_interval():
    from diffsweep import stats

    frame = pd.DataFrame({"sampler": ["a"] * 3 + ["b", "c"], "nfe": [10] * 5, "sliced_w2": [1.0, 1.2, 1.7, 2.0, 3.0],
                          "sliced_w2_se": [0.5, 0.5, 0.5, 0.1, float("nan")]})
    points = lines.point_intervals(frame, ["sampler", "nfe"], "sliced_w2").set_index("sampler")
    three = stats.seed_interval([1.0, 1.2, 1.7])
    assert points.loc["a", "mean"] == pytest.approx(three.estimate)
    assert points.loc["a", "half"] == pytest.approx(three.half_width) and points.loc["a", "basis"] == lines.SEEDS
    assert points.loc["b", "half"] == pytest.approx(1.959964 * 0.1) and points.loc["b", "basis"] == lines.SAMPLING
    assert pd.isna(points.loc["c", "half"]) and points.loc["c", "basis"] == lines.NONE


def test_the_floor_is_a_line_and_band_in_each_panel_that_has_it(captured):
    frame = generation_frame()
    on_ring = frame["model"] == "oracle"
    frame = frame.assign(sliced_w2_floor=0.05, sliced_w2_floor_low=0.04, sliced_w2_floor_high=0.06)
    frame.loc[~on_ring, ["sliced_w2_floor", "sliced_w2_floor_low", "sliced_w2_floor_high"]] = float("nan")
    lines.metric_vs_nfe(frame, "sliced_w2", "unused.png")
    (fig,) = captured
    floors = {ax.get_title(): [tuple(line.get_ydata()) for line in ax.lines if line.get_label().startswith("floor")]
              for ax in fig.axes}
    assert floors == {"oracle": [(0.05, 0.05)], "mlp": []}          # one dataset: a panel per model
    assert "the floor" in fig.get_suptitle() and "95% t interval (n = 3)" in fig.get_suptitle()


def drawn_lines(ax):
    """The data lines of a panel (not the floor, not matplotlib's own)."""
    return [line for line in ax.lines if not line.get_label().startswith(("_", "floor"))]


def test_the_default_grids_figures_tell_every_line_of_a_panel_apart(captured):
    """The default grid's shape: 16 sampler presets of 9 families (11 of them on ring8), 13 restorers of
    13 families, 10 of them at NFE 20. A panel holds no more lines than the palette has hues, no two
    lines look alike, and single points at one NFE are dodged apart."""
    families = {"rw_sigmoid": "random_walk", "rw_vp": "random_walk", "digits_rw": "random_walk", "ncsn": "ncsn",
                "ddpm": "ddpm", "ddim": "ddim", "digits_ddim": "ddim", "sde_ve": "sde_euler", "sde_vp": "sde_euler",
                "pc_ve": "pc", "ode_heun": "pf_ode", "digits_heun": "pf_ode", "edm_churn": "edm",
                "digits_edm_churn": "edm", "dpmpp_2m": "dpmpp_2m", "digits_dpmpp_2m": "dpmpp_2m"}
    rows = [{"run_id": f"{p}{m}{k}{s}", "dataset": "digits_gmm" if p.startswith("digits") else "ring8", "model": m,
             "sampler": p, "sampler_family": f, "steps": k, "seed": s, "status": "ok", "nfe": k,
             "sliced_w2": 1 / k + s / 100} for p, f in families.items() for m in ("oracle", "mlp") for k in (10, 40)
            for s in (0, 1)]
    frame = tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "sampler_family", "steps",
                                                          "seed"])
    lines.metric_vs_nfe(frame, "sliced_w2", "unused.png")
    restorers = ["rw_cond", "dps", "replacement", "ddrm", "diffpir", "pigdm", "repaint", "ilvr", "ddnm", "ddnm_plus",
                 "red_diff", "daps", "smc"]
    rows = [{"run_id": f"{r}{m}", "model": "oracle", "task": "box", "restorer": r, "restorer_family": r, "steps": k,
             "seed": 0, "measurement": m, "status": "ok", "nfe": k, "psnr": 20.0 + m}
            for r in restorers for k in ({"rw_cond": 30, "dps": 100, "replacement": 50}.get(r, 20),) for m in (0, 1)]
    lines.restoration_vs_nfe(tables.with_params(tables.typed_frame(rows), ["model", "task", "restorer", "steps",
                                                                           "seed"]), "psnr", "unused.png")
    generation, restoration = captured
    for fig in captured:
        assert figure_problems(fig) == []
        for ax in fig.axes:
            drawn = drawn_lines(ax)
            assert 0 < len(drawn) <= len(style.FAMILY_HUES), ax.get_title()
            looks = {(line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color()),
                      line.get_marker(), line.get_linestyle()) for line in drawn}
            assert len(looks) == len(drawn), f"two lines look alike in '{ax.get_title()}'"
    shown = {line.get_label() for ax in generation.axes for line in drawn_lines(ax)}
    assert shown == set(families)
    at_20 = [float(line.get_xdata()[0]) for ax in restoration.axes for line in drawn_lines(ax)
             if 15 < line.get_xdata()[0] < 25]
    assert len(at_20) == 10 and len(set(at_20)) == 10                   # dodged: no two bars on one another


def test_family_groups_fit_the_palette_and_keep_a_family_together():
    families = {**{f"rw{i}": "random_walk" for i in range(10)}, "ddim": "ddim", "ddpm": "ddpm"}
    groups = style.family_groups(families)
    assert all(len(group) <= style.MAX_LINES_PER_PANEL for group in groups)
    assert sorted(s for group in groups for s in group) == sorted(families)
    assert groups[0] == ["ddim", "ddpm"]                                # families in name order, kept together
    for group in groups:
        looks = style.line_styles(group, families)
        assert len(set(looks.values())) == len(group)
