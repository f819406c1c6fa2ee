"""Every choice a table or a figure offers, in one place: output formats, aggregations,
pooling, directions, heatmap reductions and the tables an ablation can read. The config
schema's enums, the command line's choices and the Snakefile's target lists take them from
here (tests/test_tables.py checks the schema against them). No heavy imports: the Snakefile
imports this module at parse time."""

from __future__ import annotations

from diffsweep.runs import kinds

# Ablation tables: format name -> file extension (results/tables/ablations/<name>.<ext>).
TABLE_FORMATS = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html"}
FORMATS = tuple(TABLE_FORMATS)
# Figures: every figure is written in each of these (the suffix picks the format).
PLOT_FORMATS = ("png", "pdf")

# How a cell aggregates its seeds (name -> what the table's note calls it). The means are compared
# (intervals, paired tests, best and tied: stats.compare_column); the others are shown, not tested.
AGGREGATES = {"mean_ci": "mean [interval]", "mean_pm": "mean ± interval half-width", "mean": "mean",
              "median": "median", "min": "minimum", "max": "maximum"}
TESTED_AGGREGATES = ("mean_ci", "mean_pm", "mean")
# The interval of a cell over seeds, the paired test of two cells and the default level: the choices of
# stats.SEED_METHODS and stats.TESTS (stats imports numpy; this module is read at parse time, so they are
# repeated here and tests/test_tables.py checks them against stats).
INTERVALS = ("t", "percentile", "bca")
TESTS = ("t", "wilcoxon", "bootstrap")
DEFAULT_LEVEL = 0.95
# What a cell holding runs that differ in more than the seed does: fail, show the best configuration, or pool.
POOLING = ("error", "best", "mean")
# Which end of a metric is better.
DIRECTIONS = ("lower", "higher", "none")
# How a heatmap cell combines the configurations it holds (after averaging seeds).
HEATMAP_REDUCE = ("best", "mean", "median")
# The Parquet tables an ablation table can read (`tables.ablations.<name>.source`: a kind of run), under the
# results folder.
SOURCES = {kind.name: kind.table for kind in kinds.KINDS.entries()}

# Which way is better, per metric; the config's `tables.better` adds to and overrides this.
METRIC_DIRECTIONS = {
    "sliced_w2": "lower", "mmd": "lower", "energy_distance": "lower", "mode_weight_error": "lower",
    "off_mode_fraction": "lower", "mode_coverage": "higher", "mean_loglik": "higher", "mode_spread": "none",
    "model_nll_bpd": "lower", "model_true_nll_bpd": "lower",
    "nfe": "lower", "wall_s": "lower",
    # restoration metrics and common image metrics
    "psnr": "higher", "ssim": "higher", "lpips": "lower", "fid": "lower", "mse": "lower",
    "pixel_frechet": "lower",
    "psnr_of_mean": "higher", "ssim_of_mean": "higher", "lpips_of_mean": "lower", "psnr_minmax_ref": "higher",
    "psnr_measurement": "higher", "psnr_measurement_minmax_ref": "higher",
    "posterior_mean_error": "lower", "posterior_cov_error": "lower", "sliced_w2_posterior": "lower",
    "max_sliced_w2_posterior": "lower", "mmse_gap": "lower", "posterior_mode_weight_error": "lower",
    "coverage_50": "none", "coverage_90": "none",      # calibrated at 0.5 and 0.9: neither end is better
    **{f"{metric}_{extractor}": direction for extractor in ("digits", "inception") for metric, direction in (
        ("fid", "lower"), ("kid", "lower"), ("precision", "higher"), ("recall", "higher"), ("prc_f_score", "higher"),
        ("isc", "higher"))},
}

EMPTY = "–"        # a cell without runs, a missing key


class TableError(ValueError):
    """A table that cannot be built; the one-line message names the key and what is available."""
