"""How the trained models learned: training loss against step, and the denoising error by
training sigma (where in sigma each recipe spent its capacity); a line per model, a panel per
dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from diffsweep.plots import style
from diffsweep.plots.lines import series_labels


def training_curves(training: pd.DataFrame, manifest: pd.DataFrame | None, out, y: str = "loss_ema",
                    hue: str = "model", col: str = "dataset") -> None:
    """Training loss against step, a line per model (named through the manifest), a panel per dataset."""
    style.theme()
    y = y if y in training.columns else "loss"
    if training.empty or y not in training.columns:
        style.placeholder(out, "no trained models")
        return
    data, hue, col = _named_by_model(training, manifest, hue, col, "step")
    grid = sns.relplot(data=data, x="step", y=y, hue=hue, col=col, kind="line", height=3.0, aspect=1.3,
                       col_wrap=min(3, data[col].nunique()) if col else None, facet_kws={"sharey": False},
                       hue_order=sorted(data[hue].unique()))
    for ax in grid.axes.flat:
        style.log_axes(ax, y=bool((data[y] > 0).all()))
    grid.set_axis_labels("optimiser step", "training loss" + (" (EMA)" if y == "loss_ema" else ""))
    style.save(grid.figure, out)


def loss_by_sigma(by_sigma: pd.DataFrame, manifest: pd.DataFrame | None, out, last_fraction: float = 0.5,
                  hue: str = "model", col: str = "dataset") -> None:
    """Plain denoising error E||x0 - D||^2 against training sigma (bins of the training log),
    pooled over the last `last_fraction` of training: where each recipe learned the denoiser."""
    style.theme()
    if by_sigma.empty:
        style.placeholder(out, "no trained models")
        return
    last = by_sigma.groupby("model_id")["step"].transform("max")
    data = by_sigma[by_sigma["step"] > (1 - last_fraction) * last]
    data = data.assign(error=data["x0_mse"] * data["count"])
    data = data.groupby(["model_id", "sigma_lo", "sigma_hi"], as_index=False)[["error", "count"]].sum()
    lo, hi = data["sigma_lo"].where(data["sigma_lo"] > 0, data["sigma_hi"] / 10), data["sigma_hi"]
    data = data.assign(x0_mse=data["error"] / data["count"],
                       sigma=np.sqrt(lo * hi.where(np.isfinite(hi), lo * 10)))
    data, hue, col = _named_by_model(data, manifest, hue, col, "sigma")
    grid = sns.relplot(data=data, x="sigma", y="x0_mse", hue=hue, col=col, kind="line", marker="o", height=3.0,
                       aspect=1.3, col_wrap=min(3, data[col].nunique()) if col else None,
                       facet_kws={"sharey": False}, hue_order=sorted(data[hue].unique()))
    for ax in grid.axes.flat:
        style.log_axes(ax, x=True, y=bool((data["x0_mse"] > 0).all()))
    grid.set_axis_labels("training sigma (bin centre)", "denoising error E|x0 - D|^2")
    style.save(grid.figure, out)


def _named_by_model(data: pd.DataFrame, manifest: pd.DataFrame | None, hue: str, col: str, x: str):
    """Per-model rows joined with the model's name and dataset (through the manifest), and the
    hue and facet columns that exist: (data, hue, col)."""
    if manifest is not None:
        names = manifest[[c for c in ("model_id", hue, col) if c in manifest.columns]].drop_duplicates("model_id")
        data = data.merge(names, on="model_id", how="left")
    hue = hue if hue in data.columns else "model_id"
    col = col if col in data.columns else None
    return data.assign(**{hue: series_labels(data, hue, [c for c in (col, x) if c], parameter_columns=())}), hue, col

