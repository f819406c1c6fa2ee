"""`diffsweep diff A B`: two results folders (before and after a code change, two branches)
compared run by run.

Runs are matched by their parameters, not their ids: a run of A and a run of B are the same point
when every parameter column both tables have but the seed agrees (a column one side lacks, e.g. a
knob added since with its default, is not used), and they pair when their seeds agree too. Per kind of
run, metric and point, the paired difference B - A over the seeds both sides finished (`ok`)
gets a t interval and a paired test (`stats.seed_interval`, `stats.paired_test`); with one seed,
where both runs carry `<metric>_se`, the difference +- z sqrt(se_A^2 + se_B^2) and a normal test
on it (sampling error only). The p-values of one metric are Holm-adjusted over its points. Runs
only in one side are listed. A restoration run is the mean over its measurements.

pandas and scipy are imported by the functions that need them (the CLI imports this module).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from diffsweep import stats

# How a difference was tested
PAIRED_SEEDS, SAMPLING_ONLY, IDENTICAL, UNTESTED = "paired seeds", "sampling error only", "identical", "untested"
# Columns of a table that are neither parameters nor metrics to compare
NOT_COMPARED = ("nfe", "wall_s", "fused_with", "seed", "measurement")


class DiffError(ValueError):
    """A results folder or option that cannot be compared: one line naming it."""


@dataclass(frozen=True)
class Difference:
    kind: str
    metric: str
    point: str                 # the preset point: model / dataset / preset (parameters that tell points apart)
    n: int                     # paired seeds
    estimate: float            # mean of B - A
    low: float | None
    high: float | None
    p: float | None
    p_holm: float | None
    basis: str
    significant: bool


@dataclass
class SweepDiff:
    a: str
    b: str
    level: float
    test: str
    matched: int                                          # runs of A paired with a run of B
    differences: list = field(default_factory=list)       # Difference, by kind, metric and point
    only_a: list = field(default_factory=list)            # (kind, run_id, point) of runs only in A
    only_b: list = field(default_factory=list)
    not_ok: list = field(default_factory=list)            # (kind, point, seed, status in A, status in B)
    changed: list = field(default_factory=list)           # (kind, run_id, what differs): one id, other parameters

    @property
    def significant(self) -> list:
        return [d for d in self.differences if d.significant]


def compare(a, b, metrics=None, level: float = stats.DEFAULT_LEVEL, test: str = stats.DEFAULT_TEST) -> SweepDiff:
    """The differences between the results folders `a` and `b` (every kind whose table either
    has; `metrics`: those to compare, default every known metric both tables hold)."""
    from diffsweep.runs import kinds

    if not 0 < level < 1:
        raise DiffError(f"--level: {level} is not between 0 and 1")
    if test not in stats.TESTS:
        raise DiffError(f"--test: '{test}' is not one of {', '.join(stats.TESTS)}")
    for side, folder in (("A", a), ("B", b)):
        if not Path(folder).is_dir():
            raise DiffError(f"{side}: '{folder}' {'is not a folder' if Path(folder).exists() else 'does not exist'}; "
                            "allowed: a results folder")
    found = {kind.name: (_table(a, kind), _table(b, kind)) for kind in kinds.KINDS.entries()}
    found = {name: pair for name, pair in found.items() if any(table is not None for table in pair)}
    if not found:
        names = " or ".join(kind.table for kind in kinds.KINDS.entries())
        raise DiffError(f"A and B: neither '{a}' nor '{b}' holds {names} (run the sweep, or its tables, first)")
    result = SweepDiff(str(a), str(b), level, test, 0)
    wanted = list(metrics or [])
    for name, (table_a, table_b) in found.items():
        kind = kinds.get(name)
        _compare_kind(result, kind, table_a, table_b, wanted)
    unknown = [m for m in wanted if not any(d.metric == m for d in result.differences)]
    if unknown and result.matched:
        raise DiffError(f"--metric: '{unknown[0]}' is not a numeric column of both sides' tables")
    return result


def _table(folder, kind):
    """The kind's table of a results folder, or None where it has none."""
    from diffsweep import io

    path = Path(folder) / kind.table
    return io.read_parquet(path) if path.is_file() else None


def _compare_kind(result: SweepDiff, kind, table_a, table_b, wanted: list) -> None:
    import pandas as pd

    from diffsweep import tables

    empty = pd.DataFrame(columns=["run_id", "seed", "status"])
    sides = [table if table is not None else empty for table in (table_a, table_b)]
    columns = []
    for table, folder in zip(sides, (result.a, result.b)):
        try:
            columns.append([c for c in tables.param_columns(table) if c != "seed"] if len(table) else None)
        except tables.TableError as error:
            raise DiffError(f"{Path(folder) / kind.table}: {error}") from None
    # matched on the parameters both tables have: a column one side lacks (a knob added since, with
    # its default) tells that side's runs nothing apart
    known = [c for c in columns if c is not None]
    parameters = [c for c in known[0] if all(c in other for other in known[1:])] if known else []
    runs_a, runs_b = (_runs(table, parameters) for table in sides)
    labels = _labels(pd.concat([runs_a, runs_b]), parameters, kind.preset_columns[0])
    # a run that shares its point and seed with another of its side cannot be paired one to one
    unique_a, unique_b = (~runs.duplicated(["_point", "seed"], keep=False) for runs in (runs_a, runs_b))
    merged = runs_a[unique_a].merge(runs_b[unique_b], on=["_point", "seed"], how="outer", suffixes=("_a", "_b"),
                                    indicator=True)
    only = [[*merged.loc[merged["_merge"] == side, [f"run_id{which}", "_point"]].to_numpy().tolist(),
             *runs[~unique][["run_id", "_point"]].to_numpy().tolist()]
            for side, which, runs, unique in (("left_only", "_a", runs_a, unique_a),
                                              ("right_only", "_b", runs_b, unique_b))]
    renamed = {run_id for run_id, _ in only[0]} & {run_id for run_id, _ in only[1]}
    changed = _changed(sides, columns, sorted(renamed))
    result.changed += [(kind.name, run_id, changed[run_id]) for run_id in sorted(renamed)]
    for bucket, runs in zip((result.only_a, result.only_b), only):
        bucket += [(kind.name, run_id, labels[point]) for run_id, point in runs if run_id not in renamed]
    both = merged[merged["_merge"] == "both"]
    result.matched += len(both)
    ok = (both["status_a"] == "ok") & (both["status_b"] == "ok")
    result.not_ok += [(kind.name, labels[row["_point"]], row["seed"], row["status_a"], row["status_b"])
                      for row in both[~ok].to_dict("records")]
    both = both[ok]
    metrics = wanted or [m for m in tables.known_metrics() if m not in NOT_COMPARED]
    metrics = [m for m in metrics if f"{m}_a" in both.columns and f"{m}_b" in both.columns]
    for metric in metrics:
        differences = _differences(kind.name, metric, both, labels, result.level, result.test)
        tested = [d for d in differences if d.p is not None]
        adjusted = stats.holm([d.p for d in tested]) if tested else []
        holm_of = {id(d): float(p) for d, p in zip(tested, adjusted)}
        alpha = 1 - result.level
        result.differences += sorted(
            (Difference(**{**d.__dict__, "p_holm": holm_of.get(id(d)),
                           "significant": holm_of.get(id(d), 1.0) < alpha}) for d in differences),
            key=lambda d: d.point)


def _changed(sides, columns, run_ids: list) -> dict:
    """run id -> what differs between its parameters in A and in B: 'knob_x: 1 -> 2, ...'."""
    from diffsweep import tables

    if not run_ids:
        return {}
    names = list(dict.fromkeys(c for side in columns if side for c in side))
    rows = [tables.records(table.drop_duplicates("run_id").set_index("run_id").reindex(run_ids)
                           .reindex(columns=names)) for table in sides]
    return {run_id: ", ".join(f"{c}: {tables.format_key(a[c])} -> {tables.format_key(b[c])}"
                              for c in names if a[c] != b[c])
            for run_id, a, b in zip(run_ids, *rows)}


def _runs(table, parameters: list):
    """One row per run: its point (the parameters but the seed, as one key), seed, run_id, status
    and every numeric column (a restoration run: the mean over its measurements; `<m>_se` the
    standard error of that mean, sqrt(sum se^2) / m)."""
    import numpy as np
    import pandas as pd

    table = table.copy()
    for column in parameters:
        if column not in table.columns:
            table[column] = None
    numeric = [c for c in table.columns if c not in (*parameters, "seed", "run_id", "status")
               and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    values = table[numeric].astype(float)
    squared_se = {c: values[c] ** 2 for c in numeric if c.endswith("_se")}
    frame = pd.concat([table[["run_id", "status", "seed", *parameters]], values.assign(**squared_se)], axis=1)
    grouped = frame.groupby("run_id", sort=True, dropna=False)
    runs = grouped[["status", "seed", *parameters]].first()
    means = grouped[numeric].mean()
    count = grouped["status"].size()
    for column in squared_se:      # mean of se^2 over m rows -> sqrt(that / m) = sqrt(sum se^2) / m
        means[column] = np.sqrt(means[column] / count)
    runs = pd.concat([runs, means], axis=1).reset_index()
    runs["_point"] = [json.dumps([None if _missing(v) else v for v in row], default=str)
                      for row in runs[parameters].itertuples(index=False, name=None)]
    runs["seed"] = runs["seed"].astype("Int64")
    return runs


def _missing(value) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):      # a list value (a UNet's channels)
        return False


def _labels(runs, parameters: list, preset: str) -> dict:
    """point key -> 'model / dataset / preset (knob=v, ...)': the facets, the preset, and the other
    parameters that still tell points apart."""
    from diffsweep import tables

    facets = [c for c in ("model", "dataset", "task") if c in parameters]
    keys = [*facets, preset] if preset in parameters else facets
    points = runs.drop_duplicates("_point")
    rows = tables.records(points[[*parameters]])
    extra = tables.distinguishing(rows, keys, [c for c in parameters if c not in keys])
    labels = {}
    for point, row in zip(points["_point"], rows):
        text = " / ".join(tables.format_key(row[c]) for c in keys)
        detail = ", ".join(f"{c.removeprefix('knob_')}={tables.format_key(row[c])}"
                           for c in extra if row[c] is not None)
        labels[point] = f"{text} ({detail})" if detail else text
    return labels


def _differences(kind: str, metric: str, both, labels: dict, level: float, test: str) -> list:
    """B - A of each point over its paired seeds where both sides have a finite `metric`: computed
    per group of points with one number of seeds, every point of a group at once (100k runs are
    tens of thousands of points)."""
    import numpy as np
    import pandas as pd

    se = {side: both[f"{metric}_se{side}"] if f"{metric}_se{side}" in both.columns else np.nan
          for side in ("_a", "_b")}
    frame = pd.DataFrame({"point": both["_point"], "seed": both["seed"], "a": both[f"{metric}_a"],
                          "b": both[f"{metric}_b"], "se_a": se["_a"], "se_b": se["_b"]}).astype(
        {"a": float, "b": float, "se_a": float, "se_b": float})
    frame = frame[np.isfinite(frame["a"]) & np.isfinite(frame["b"])].sort_values(["point", "seed"])
    frame["d"] = frame["b"] - frame["a"]
    frame["n"] = frame.groupby("point")["d"].transform("size")
    frame["identical"] = frame.groupby("point")["d"].transform(lambda d: bool((d == 0).all())).astype(bool)
    found = []
    for point, n in frame.loc[frame["identical"], ["point", "n"]].drop_duplicates("point").itertuples(index=False):
        found.append(Difference(kind, metric, labels[point], int(n), 0.0, 0.0, 0.0, 1.0, None, IDENTICAL, False))
    differing = frame[~frame["identical"]]
    for n, group in differing.groupby("n", sort=True):
        points = group["point"].drop_duplicates().tolist()
        if n >= 2:
            stacked = group["d"].to_numpy().reshape(len(points), n)       # sorted by point, then seed
            mean, low, high = stats.t_interval(stacked, level)
            pvalues = stats.paired_tests(stacked, test)
            found += [Difference(kind, metric, labels[point], int(n), float(m), float(lo), float(hi), float(p), None,
                                 PAIRED_SEEDS, False) for point, m, lo, hi, p in zip(points, mean, low, high, pvalues)]
            continue
        d = group["d"].to_numpy()
        error = np.hypot(group["se_a"].to_numpy(), group["se_b"].to_numpy())
        half = stats.normal_half_widths(error, level)
        pvalues = stats.normal_test(d, error)
        for point, value, h, p in zip(points, d, half, pvalues):
            if np.isfinite(h):
                found.append(Difference(kind, metric, labels[point], 1, float(value), float(value - h),
                                        float(value + h), float(p), None, SAMPLING_ONLY, False))
            else:
                found.append(Difference(kind, metric, labels[point], 1, float(value), None, None, None, None, UNTESTED,
                                        False))
    return found


# --- what it says ------------------------------------------------------------------------------

def summary(result: SweepDiff) -> list[str]:
    """The lines both renderings start with: what was matched, compared, and how."""
    points = {(d.kind, d.point) for d in result.differences}
    percent = f"{100 * result.level:g}%"
    return [f"A: {result.a}", f"B: {result.b}",
            f"{result.matched} runs matched by their parameters and seed ({len(points)} preset points); "
            f"{len(result.only_a)} only in A, {len(result.only_b)} only in B, {len(result.changed)} with other "
            f"parameters under one id, {len(result.not_ok)} not ok on a side",
            f"B - A per preset point and metric: mean over paired seeds with its {percent} t interval and a "
            f"{stats.TEST_NAMES[result.test]}; one seed: +- z sqrt(se_A^2 + se_B^2) from the <metric>_se columns "
            f"(sampling error only); p Holm-adjusted over the points of a metric; "
            f"significant: p < {1 - result.level:.3g}"]


def _rows(result: SweepDiff, show_all: bool):
    """(kind, metric, shown differences, identical count, total) per kind and metric."""
    groups: dict = {}
    for d in result.differences:
        groups.setdefault((d.kind, d.metric), []).append(d)
    for (kind, metric), items in groups.items():
        shown = [d for d in items if show_all or d.basis != IDENTICAL]
        yield kind, metric, shown, sum(d.basis == IDENTICAL for d in items), len(items)


def _number(value) -> str:
    return "" if value is None else f"{value:+.4g}" if value else "0"


def _p(value) -> str:
    return "" if value is None else f"{value:.3g}"


def render_text(result: SweepDiff, show_all: bool = False) -> str:
    lines = summary(result)
    for kind, metric, shown, identical, total in _rows(result, show_all):
        significant = [d for d in shown if d.significant]
        lines.append("")
        lines.append(f"{kind} {metric}: {len(significant)} of {total} points differ significantly"
                     + (f"; {identical} identical (every seed equal)" if identical and not show_all else ""))
        width = max([len(d.point) for d in shown] + [5])
        if shown:
            lines.append(f"  {'point':<{width}}  {'n':>3}  {'B - A':>10}  {'interval':>24}  {'p (Holm)':>9}  basis")
        for d in shown:
            interval = f"[{_number(d.low)}, {_number(d.high)}]" if d.low is not None else "(none)"
            mark = "  *" if d.significant else ""
            lines.append(f"  {d.point:<{width}}  {d.n:>3}  {_number(d.estimate):>10}  {interval:>24}  "
                         f"{_p(d.p_holm):>9}  {d.basis}{mark}")
    for title, runs in (("only in A", result.only_a), ("only in B", result.only_b)):
        if runs:
            lines.append("")
            lines.append(f"{title} ({len(runs)} runs):")
            lines += [f"  {kind} {run_id}  {point}" for kind, run_id, point in runs]
    if result.changed:
        lines.append("")
        lines.append(f"same run id, other parameters ({len(result.changed)} runs, not compared):")
        lines += [f"  {kind} {run_id}  {what}" for kind, run_id, what in result.changed]
    if result.not_ok:
        lines.append("")
        lines.append(f"matched but not ok on a side ({len(result.not_ok)} runs, not compared):")
        lines += [f"  {kind} {point} seed {seed}: A {a}, B {b}" for kind, point, seed, a, b in result.not_ok]
    lines.append("")
    names = sorted({f"{d.kind} {d.metric}: {d.point}" for d in result.significant})
    lines.append(f"significant: {len(names)}" + ("" if not names else "\n  " + "\n  ".join(names)))
    return "\n".join(lines) + "\n"


def render_html(result: SweepDiff, show_all: bool = False, page: bool = False) -> str:
    """The same as render_text, as one HTML <section> (no scripts, no external style: it can be
    embedded in another page); `page` wraps it in a standalone HTML document."""
    e = html.escape
    parts = ['<section class="diffsweep-diff">', "<h2>diffsweep diff</h2>"]
    parts += [f"<p>{e(line)}</p>" for line in summary(result)]
    for kind, metric, shown, identical, total in _rows(result, show_all):
        significant = sum(d.significant for d in shown)
        note = f"; {identical} identical (every seed equal)" if identical and not show_all else ""
        parts.append(f"<h3>{e(kind)} {e(metric)}: {significant} of {total} points differ significantly{e(note)}</h3>")
        if not shown:
            continue
        parts.append("<table><thead><tr><th>point</th><th>n</th><th>B - A</th><th>interval</th><th>p (Holm)</th>"
                     "<th>basis</th><th>significant</th></tr></thead><tbody>")
        for d in shown:
            interval = f"[{_number(d.low)}, {_number(d.high)}]" if d.low is not None else "(none)"
            style = ' style="font-weight:bold"' if d.significant else ""
            parts.append(f"<tr{style}><td>{e(d.point)}</td><td>{d.n}</td><td>{e(_number(d.estimate))}</td>"
                         f"<td>{e(interval)}</td><td>{e(_p(d.p_holm))}</td><td>{e(d.basis)}</td>"
                         f"<td>{'yes' if d.significant else ''}</td></tr>")
        parts.append("</tbody></table>")
    for title, runs in (("only in A", result.only_a), ("only in B", result.only_b)):
        if runs:
            parts.append(f"<h3>{title} ({len(runs)} runs)</h3><ul>")
            parts += [f"<li>{e(kind)} <code>{e(run_id)}</code> {e(point)}</li>" for kind, run_id, point in runs]
            parts.append("</ul>")
    if result.changed:
        parts.append(f"<h3>same run id, other parameters ({len(result.changed)} runs, not compared)</h3><ul>")
        parts += [f"<li>{e(kind)} <code>{e(run_id)}</code> {e(what)}</li>" for kind, run_id, what in result.changed]
        parts.append("</ul>")
    if result.not_ok:
        parts.append(f"<h3>matched but not ok on a side ({len(result.not_ok)} runs, not compared)</h3><ul>")
        parts += [f"<li>{e(kind)} {e(point)} seed {seed}: A {e(str(a))}, B {e(str(b))}</li>"
                  for kind, point, seed, a, b in result.not_ok]
        parts.append("</ul>")
    parts.append("</section>")
    section = "\n".join(parts) + "\n"
    if not page:
        return section
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>diffsweep diff</title>'
            "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
            f"</head><body>\n{section}</body></html>\n")
