"""An `Ablation` written out: Markdown, LaTeX (booktabs), CSV (one line per cell, the columns
of docs/tables.md) and HTML (for the report); `write_ablation` builds a declared table from
its Parquet source and writes every format, atomically."""

from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path

from diffsweep.tables.options import EMPTY, FORMATS, TableError
from diffsweep.tables.pivot import TIED_MARK, Ablation, ablation
from diffsweep.tables.rows import format_key, param_columns, records
from diffsweep.tables.spec import TableSpec


def to_markdown(table: Ablation, power: bool = False) -> str:
    """The Markdown table and its note; `power`: then the seeds each comparison needs, as a second table."""
    text = _markdown_grid(table, lambda rk, ck, cell: table.cell_text(cell), bold=True) + "\n\n" + table.note() + "\n"
    if power and table.power:
        text += "\nSeeds needed:\n\n" + _markdown_grid(table, _power_cell(table), bold=False) + "\n\n" + \
            table.power_note() + "\n"
        if table.has_components():
            text += "\nTraining against sampling seeds:\n\n" + _markdown_grid(
                table, lambda rk, ck, cell: table.components_text(cell), bold=False) + "\n\n" + \
                table.components_note() + "\n"
    return text


def _markdown_grid(table: Ablation, text_of, bold: bool) -> str:
    """The Markdown grid of `table`, each cell's text from `text_of(row key, column key, cell)`."""
    spec = table.spec
    head = list(spec.rows)
    if len(spec.columns) == 1:
        head[-1] = f"{head[-1]} \\ {spec.columns[0]}"
    head += table.column_labels()
    lines = ["| " + " | ".join(_md(h) for h in head) + " |",
             "|" + "|".join([" --- "] * len(spec.rows) + [" ---: "] * len(table.col_keys)) + "|"]
    for rk in table.row_keys:
        cells = []
        for ck in table.col_keys:
            cell = table.cells[(rk, ck)]
            text = _md(text_of(rk, ck, cell))
            cells.append(f"**{text}**" if bold and cell.best else text)
        lines.append("| " + " | ".join([_md(format_key(v)) for v in rk] + cells) + " |")
    return "\n".join(lines)


def _power_cell(table: Ablation):
    return lambda rk, ck, cell: table.power_text(cell, table.is_leader(rk, ck)) if cell.n else EMPTY


def to_latex(table: Ablation, caption: str | None = None, label: str | None = None, power: bool = False) -> str:
    """A booktabs table: a `table` float with caption and label when `caption` is given,
    the bare `tabular` otherwise. `power`: a second tabular of the seeds each comparison needs."""
    spec = table.spec
    body = _latex_tabular(table, lambda rk, ck, cell: table.cell_text(cell, pm=" ± "), bold=True)
    if power and table.power:
        body += ["", "% " + _tex_symbols(table.power_note()), *_latex_tabular(table, _power_cell(table), bold=False)]
        if table.has_components():
            body += ["", "% " + _tex_symbols(table.components_note()),
                     *_latex_tabular(table, lambda rk, ck, cell: table.components_text(cell), bold=False)]
    note = table.note().replace(EMPTY, "--")
    header = f"% diffsweep ablation table '{spec.name}'; needs \\usepackage{{booktabs}}\n% {note}\n"
    if caption is None:
        return header + "\n".join(body) + "\n"
    text = _tex_symbols(_tex((caption.strip().rstrip(".") + ". " if caption.strip() else "") + note))
    return header + "\n".join(["\\begin{table}[htbp]", "\\centering", f"\\caption{{{text}}}",
                               f"\\label{{{label or 'tab:' + spec.name}}}", *body, "\\end{table}"]) + "\n"


def _latex_tabular(table: Ablation, text_of, bold: bool) -> list[str]:
    """The booktabs tabular of `table`, each cell's text from `text_of(row key, column key, cell)`."""
    spec = table.spec
    nr, nc = len(spec.rows), len(table.col_keys)
    body = [f"\\begin{{tabular}}{{{'l' * nr}{'r' * nc}}}", "\\toprule"]
    if len(spec.columns) == 1:
        body.append(f"\\multicolumn{{{nr}}}{{l}}{{}} & \\multicolumn{{{nc}}}{{c}}{{{_tex(spec.columns[0])}}} \\\\")
        body.append(f"\\cmidrule(lr){{{nr + 1}-{nr + nc}}}")
        labels = [format_key(k[0]) for k in table.col_keys]
    elif len(spec.columns) > 1:
        for level in range(len(spec.columns) - 1):
            spans, rules, start = [], [], 0
            for size, value in _runs([k[:level + 1] for k in table.col_keys]):
                spans.append(f"\\multicolumn{{{size}}}{{c}}{{{_tex(spec.columns[level])} = "
                             f"{_tex(format_key(value[-1]))}}}")
                rules.append(f"\\cmidrule(lr){{{nr + start + 1}-{nr + start + size}}}")
                start += size
            body.append(" & ".join([""] * nr + spans) + " \\\\")
            body.append(" ".join(rules))
        last = spec.columns[-1]
        labels = [f"{last} = {format_key(k[-1])}" for k in table.col_keys]
    else:
        labels = [spec.metric]
    body.append(" & ".join([_tex(r) for r in spec.rows] + [_tex(x) for x in labels]) + " \\\\")
    body.append("\\midrule")
    previous = None
    for rk in table.row_keys:
        keys = [format_key(v) for v in rk]
        shown = [("" if previous is not None and i < nr - 1 and keys[:i + 1] == previous[:i + 1] else _tex(k))
                 for i, k in enumerate(keys)]
        previous = keys
        cells = []
        for ck in table.col_keys:
            cell = table.cells[(rk, ck)]
            text = _tex_symbols(_tex(text_of(rk, ck, cell)))
            cells.append(f"\\textbf{{{text}}}" if bold and cell.best else text)
        body.append(" & ".join(shown + cells) + " \\\\")
    return body + ["\\bottomrule", "\\end{tabular}"]


def csv_rows(table: Ablation) -> list[dict]:
    """One dict per cell: the row and column keys, then the fixed columns of docs/tables.md."""
    out = []
    for rk in table.row_keys:
        for ck in table.col_keys:
            cell = table.cells[(rk, ck)]
            row = dict(zip(table.spec.rows, rk))
            row.update(zip(table.spec.columns, ck))
            row.update({"metric": table.spec.metric, "aggregate": table.spec.aggregate, "value": cell.value,
                        "low": cell.low, "high": cell.high, "level": table.spec.level if cell.low is not None else None,
                        "std": cell.std, "min": cell.min, "max": cell.max, "n": cell.n, "n_runs": cell.n_runs,
                        "n_diverged": cell.n_diverged, "status": cell.status, "best": cell.best,
                        "p_adjusted": cell.p_adjusted, "basis": cell.basis, "se": cell.se, "floor": cell.floor,
                        "floor_low": cell.floor_low, "floor_high": cell.floor_high,
                        "seeds_needed": None if cell.seeds_needed is None or math.isinf(cell.seeds_needed)
                        else int(cell.seeds_needed), "n_training": cell.n_training,
                        "var_training": cell.components.training if cell.components else None,
                        "var_sampling": cell.components.sampling if cell.components else None,
                        "cell": table.cell_text(cell), "chosen": cell.chosen, "run_ids": " ".join(cell.run_ids)})
            out.append(row)
    return out


def to_csv(table: Ablation) -> str:
    buffer = io.StringIO()
    rows = csv_rows(table)
    fields = [*table.spec.rows, *table.spec.columns, *CSV_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv(v) for k, v in row.items()})
    return buffer.getvalue()


def to_html(table: Ablation, caption: str = "", power: bool = False) -> str:
    """An HTML page of the table and its note; `power`: then the seeds each comparison needs (the report's section)."""
    spec = table.spec
    e = html.escape
    head = "".join(f"<th>{e(r)}</th>" for r in spec.rows)
    if spec.columns and len(spec.columns) == 1:
        head = "".join(f"<th>{e(r)}</th>" for r in spec.rows[:-1]) + \
            f"<th>{e(spec.rows[-1])} \\ {e(spec.columns[0])}</th>"
    head += "".join(f"<th class='num'>{e(label)}</th>" for label in table.column_labels())
    title = e(caption or spec.caption or spec.name)
    text = HTML_TABLE.format(caption=title, head=head, body=_html_body(table, lambda rk, ck, cell: table.cell_text(cell),
                                                                       bold=True), note=e(table.note()))
    if power and table.power:
        text += HTML_TABLE.format(caption=f"Seeds needed: {e(spec.name)}", head=head,
                                  body=_html_body(table, _power_cell(table), bold=False), note=e(table.power_note()))
        if table.has_components():
            text += HTML_TABLE.format(caption=f"Training against sampling seeds: {e(spec.name)}", head=head,
                                      body=_html_body(table, lambda rk, ck, cell: table.components_text(cell),
                                                      bold=False), note=e(table.components_note()))
    return HTML_TEMPLATE.format(title=e(spec.name), tables=text)


def _html_body(table: Ablation, text_of, bold: bool) -> str:
    e = html.escape
    body = []
    for rk in table.row_keys:
        cells = "".join(f"<td>{e(format_key(v))}</td>" for v in rk)
        for ck in table.col_keys:
            cell = table.cells[(rk, ck)]
            text = e(text_of(rk, ck, cell))
            cells += f"<td class='num'>{'<strong>' + text + '</strong>' if bold and cell.best else text}</td>"
        body.append(f"<tr>{cells}</tr>")
    return "\n".join(body)


def render_table(table: Ablation, fmt: str, caption: str | None = None, power: bool = False) -> str:
    """`table` as text in one of FORMATS; `power`: with the seeds each comparison needs (computed by
    `ablation(..., power=True)`; the CSV always has their column)."""
    if fmt == "markdown":
        return to_markdown(table, power=power)
    if fmt == "latex":
        return to_latex(table, caption=caption, power=power)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "html":
        return to_html(table, caption or "", power=power)
    raise TableError(f"format '{fmt}' is not allowed; allowed: {', '.join(FORMATS)}")


CSV_COLUMNS = ["metric", "aggregate", "value", "low", "high", "level", "std", "min", "max", "n", "n_runs", "n_diverged",
               "status", "best", "p_adjusted", "basis", "se", "floor", "floor_low", "floor_high", "seeds_needed",
               "n_training", "var_training", "var_sampling", "cell", "chosen", "run_ids"]


HTML_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; margin-bottom: .4em; }}
th, td {{ padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; }}
thead th {{ border-bottom: 2px solid #333; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
p.note {{ color: #444; max-width: 60em; }}
</style></head>
<body>
{tables}</body></html>
"""

HTML_TABLE = """<table>
<caption>{caption}</caption>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p class="note">{note}</p>
"""


def _runs(items):
    """Run-length encoding: [(count, item), ...] of consecutive equal items."""
    out = []
    for item in items:
        if out and out[-1][1] == item:
            out[-1] = (out[-1][0] + 1, item)
        else:
            out.append((1, item))
    return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _tex_symbols(text: str) -> str:
    """The table's symbols in LaTeX: ± and the tie mark as math, the empty cell as a dash."""
    return text.replace("±", "$\\pm$").replace(TIED_MARK, "$^\\dagger$").replace(EMPTY, "--")


def _csv(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return value


def write_ablation(table_path, spec: TableSpec | dict, outputs: dict) -> Ablation:
    """Read a Parquet table, build `spec`'s ablation and write each format in `outputs`
    (format name -> path: markdown, latex, csv, html), atomically. The seeds each comparison needs
    are computed too: the CSV's column seeds_needed and the HTML's (the report's) second table."""
    from diffsweep.io import atomic_path, read_parquet

    if isinstance(spec, dict):
        spec = TableSpec.from_dict(spec)
    frame = read_parquet(table_path)
    table = ablation(records(frame), spec, parameter_columns=param_columns(frame), power=True)
    for fmt, path in outputs.items():
        text = render_table(table, fmt, caption=spec.caption if fmt in ("latex", "html") else None, power=fmt == "html")
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    return table
