"""What every figure shares: the one style (`theme`), the limits that keep a figure readable in a
large sweep (`MAX_SERIES`, `MAX_PANELS`) and how what does not fit is picked (`pick`) and said
(`left_out`), the runs a figure draws (`finished`), how lines are told apart (a hue per family, a
marker and dash within it: `family_groups`, `line_styles`; `dodge` where points coincide), log
axes and axis labels, the placeholder of a figure without data, and `save` (every format asked
for, atomically).

Imports matplotlib (headless: the package sets the backend) and seaborn: only jobs that draw import it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from diffsweep.tables import PLOT_FORMATS

log = logging.getLogger("diffsweep")

STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 1.1, "palette": "colorblind",
         "rc": {"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 150, "legend.frameon": False}}

MAX_SERIES = 12   # lines in one figure's legend; beyond it each preset's configurations are pooled into one line
MAX_PANELS = 12   # rows or columns of a grid of panels (models, presets, configurations); beyond it the best are picked
# Lines one panel tells apart at a glance: a hue per family, a marker and a dash per line within a
# family. The hues are Okabe and Ito's eight, chosen to stay apart under colour-blindness (seaborn's
# colourblind palette has two pinks and two oranges among its first eight); more lines than hues go
# to small multiples (`family_groups`).
FAMILY_HUES = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#000000", "#56B4E9", "#F0E442")
MAX_LINES_PER_PANEL = len(FAMILY_HUES)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", ":", "-.")
SHADES = (0.0, -0.3, 0.4, -0.5, 0.6)   # within a family: the hue, darker, lighter, ...


def theme() -> None:
    """The one style of every figure (seaborn paper context, colour-blind palette, TrueType in PDFs)."""
    sns.set_theme(**STYLE)


@dataclass(frozen=True)
class LineStyle:
    colour: tuple
    marker: str
    dash: str


def family_groups(families: dict, limit: int = MAX_LINES_PER_PANEL) -> list[list]:
    """The series (`families`: series -> its family) in groups of at most `limit`, drawn as small
    multiples: families in name order, a family's series kept in one group where they fit (one
    family of more than `limit` series is cut into groups of `limit`)."""
    by_family: dict = {}
    for series in sorted(families, key=str):
        by_family.setdefault(families[series], []).append(series)
    groups, current = [], []
    for family in sorted(by_family, key=str):
        members = by_family[family]
        if current and len(current) + len(members) > limit:
            groups.append(current)
            current = []
        for start in range(0, len(members), limit):
            piece = members[start:start + limit]
            if len(current) + len(piece) > limit:
                groups.append(current)
                current = []
            current = current + piece
    return [*groups, current] if current else groups


def line_styles(group: list, families: dict) -> dict:
    """A LineStyle per series of one group (of `family_groups`): a hue per family, in the group's
    family order; within a family the i-th series gets the i-th shade, marker and dash, so that no
    two series of a group look alike."""
    from matplotlib.colors import to_rgb

    hues = [to_rgb(hue) for hue in FAMILY_HUES]
    family_index, seen = {}, {}
    styles = {}
    for series in group:
        family = families[series]
        hue = hues[family_index.setdefault(family, len(family_index)) % len(hues)]
        i = seen[family] = seen.get(family, -1) + 1
        styles[series] = LineStyle(_shade(hue, SHADES[i % len(SHADES)]), MARKERS[i % len(MARKERS)],
                                   DASHES[i % len(DASHES)])
    return styles


def _shade(colour, amount: float) -> tuple:
    """`colour` mixed with black (amount < 0) or white (amount > 0)."""
    target = 1.0 if amount > 0 else 0.0
    return tuple(float(c + abs(amount) * (target - c)) for c in colour)


def dodge(x, rank: int, count: int, log: bool, span: float, width: float = 0.02) -> np.ndarray:
    """`x` moved sideways for the `rank`-th of `count` lines that share x values, so that their
    points and interval bars do not sit on one another: by `width` decades per rank on a log axis,
    by `width` of `span` (the panel's range of x) on a linear one."""
    offset = (rank - (count - 1) / 2) * width
    x = np.asarray(x, dtype=float)
    return x * 10.0 ** offset if log else x + offset * (span or 1.0)


def pick(scores: pd.Series, limit: int, better: str = "lower") -> list:
    """The `limit` index values of `scores` (a score per preset, model, ...) with the best score
    (`better`: lower or higher; no score counts as worst, ties go by name), in name order."""
    ranked = scores.sort_index().sort_values(ascending=better != "higher", na_position="last", kind="stable")
    return sorted(ranked.index[:limit])


def scores(frame: pd.DataFrame, column: str | None) -> pd.Series:
    """`column` of `frame` as finite floats (NaN elsewhere, and everywhere where there is no such column)."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return values.where(np.isfinite(values))


def left_out(counts: dict, rule: str) -> str:
    """'12 of 40 presets, 12 of 30 models: `rule`' for the {what: (shown, total)} that lost some
    (logged), or '' where nothing was left out."""
    parts = [f"{shown} of {total} {what}" for what, (shown, total) in counts.items() if shown < total]
    if not parts:
        return ""
    note = f"{', '.join(parts)}: {rule}"
    log.info("figure shows %s", note)
    return note


def finished(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows a figure of `metric` draws: status ok (where the table has a status) and a finite
    metric, as floats."""
    if metric not in table.columns:
        return table.iloc[:0]
    ok = table[pd.to_numeric(table[metric], errors="coerce").notna()]
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    ok = ok[np.isfinite(ok[metric].astype(float))]
    return ok.assign(**{metric: ok[metric].astype(float)})


def log_axes(ax, x: bool = False, y: bool = False) -> None:
    """Log scales with plain tick labels (10, 20, 50 rather than 2 x 10^1); values within a factor
    of 2 (e.g. a ratio near 1) keep a linear scale, where a log one would show a single tick."""
    from matplotlib import ticker

    for use, axis, set_scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if not use:
            continue
        set_scale("log")
        low, high = axis.get_view_interval()
        decades = np.log10(max(high, 1e-300) / max(low, 1e-300))
        if decades < np.log10(2.0):
            set_scale("linear")
            continue
        subs = (tuple(range(1, 10)) if decades <= 0.7 else (1.0, 2.0, 3.0, 5.0) if decades <= 1.2
                else (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,))
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())


def symlog_y(ax, values: pd.Series) -> None:
    """A symmetric-log y axis for values of either sign spanning several decades (e.g. a
    log-likelihood with a few runs far off): linear within the smallest magnitude."""
    magnitude = values.abs()
    nonzero = magnitude[magnitude > 0]
    if nonzero.empty or nonzero.max() / nonzero.min() < 100:
        return
    threshold = max(nonzero.min(), 1e-3 * nonzero.max())     # noise around zero stays in the linear part
    ax.set_yscale("symlog", linthresh=10 ** np.floor(np.log10(threshold)))


def axis_label(column: str) -> str:
    """The label of an axis showing `column`."""
    return {"nfe": "network evaluations (NFE)", "steps": "steps K"}.get(column, column)


def short(value) -> str:
    """A parameter value as a legend or tick shows it: 10 rather than 10.0, four significant digits."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def placeholder(out, message: str) -> None:
    """A figure that says why it has no data (the rule's outputs exist either way)."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    save(fig, out)


def save(fig, out) -> None:
    """Write `fig` to one path or several (the format follows each suffix), atomically."""
    from diffsweep.io import atomic_path

    paths = [Path(p) for p in ([out] if isinstance(out, (str, Path)) else out)]
    unknown = [str(p) for p in paths if p.suffix.lstrip(".") not in PLOT_FORMATS]
    if unknown:
        raise ValueError(f"figure {', '.join(unknown)}: the suffix is not one of {', '.join(PLOT_FORMATS)}")
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150 if path.suffix == ".png" else None, bbox_inches="tight",
                        format=path.suffix.lstrip("."))
    plt.close(fig)
