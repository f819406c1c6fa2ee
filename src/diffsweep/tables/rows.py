"""Plain records (a list of dicts): the form the pivot works on, so that the Snakefile checks
declared tables against the grid's manifest at parse time without pandas. Selection by
filters, grouping, which parameter columns tell runs apart, and keys as text.

Which columns are parameters is never guessed from names: a table built by the workflow
carries the list in `frame.attrs["param_columns"]` (stored in its Parquet file), taken from
the manifest; `param_columns(frame)` reads it."""

from __future__ import annotations

import difflib
import json
import math

from diffsweep.tables.options import EMPTY, TableError

PARAM_COLUMNS = "param_columns"     # the key of frame.attrs (and of the Parquet metadata) that lists them


def records(frame) -> list[dict]:
    """Rows of a DataFrame as dicts of plain Python values (missing values as None)."""
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]


def _plain(value):
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    try:
        if value != value:   # NaN, and pd.NA raises TypeError
            return None
    except TypeError:
        return None
    return value


def param_columns(frame) -> list[str]:
    """The parameter columns of a table written by the workflow (its manifest's columns)."""
    try:
        return list(frame.attrs[PARAM_COLUMNS])
    except KeyError:
        raise TableError(f"the table does not list its parameter columns (attrs '{PARAM_COLUMNS}'): it was not "
                         f"written by this version of diffsweep; rebuild it with snakemake") from None


def columns_of(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def unknown_column(column: str, available, where: str) -> TableError:
    available = list(available)
    close = difflib.get_close_matches(column, available, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return TableError(f"{where}unknown column '{column}'{hint}; available columns: {', '.join(available)}")


# --- kinds of values -------------------------------------------------------------------------

def kind(value) -> str:
    """none, bool, int, float, str or other: the kind of one value (numpy scalars as their Python kind)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if hasattr(value, "item"):   # numpy scalars
        return kind(value.item())
    return "other"


def column_kind(rows: list[dict], column: str) -> str:
    """bool, number, str or none: the kind of a column's non-missing values."""
    kinds = {kind(row.get(column)) for row in rows} - {"none"}
    if not kinds:
        return "none"
    if kinds == {"bool"}:
        return "bool"
    if kinds <= {"int", "float"}:
        return "number"
    return "str"


_NULLS = {"none", "null", "na", "nan", ""}


def coerce(value, kind: str, where: str = ""):
    """A filter value (from YAML or the command line) in the kind of the column it is compared with."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS and kind != "str"):
        return None
    if kind == "number":
        if isinstance(value, bool):
            raise TableError(f"{where}{value!r} is not a number")
        if isinstance(value, (int, float)):
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise TableError(f"{where}'{value}' is not a number (the column holds numbers)") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise TableError(f"{where}'{value}' is not true or false (the column holds booleans)")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


# --- selection and grouping ----------------------------------------------------------------

def select(rows: list[dict], filters: dict, where: str = "", available=None) -> list[dict]:
    """The rows matching every filter (column -> value or list of values, any of which matches).
    Unknown columns and filters that match nothing raise TableError naming what there is."""
    present = columns_of(rows)
    available = list(available) if available is not None else present
    for column, wanted in (filters or {}).items():
        if column not in available:
            raise unknown_column(column, available, f"{where}filter: ")
        if column not in present:   # parse time: a column that only finished runs will have
            continue
        column_type = column_kind(rows, column)
        values = [coerce(v, column_type, f"{where}filter {column}: ")
                  for v in (wanted if isinstance(wanted, list) else [wanted])]
        kept = [row for row in rows if any(_equal(row.get(column), v) for v in values)]
        if not kept:
            present = ", ".join(format_key(v) for v in sorted_values({row.get(column) for row in rows}))
            raise TableError(f"{where}filter {column}={','.join(format_key(v) for v in values)} matches no run"
                             f"{' left by the other filters' if len(filters) > 1 else ''}; "
                             f"values of {column}: {present or '(none)'}")
        rows = kept
    return rows


def select_frame(frame, filters: dict, where: str = ""):
    """The rows of a DataFrame that match `filters` (the semantics of `select`)."""
    if not filters:
        return frame
    rows = records(frame)
    for position, row in enumerate(rows):
        row["\0position"] = position
    kept = select(rows, filters, where, available=list(frame.columns))
    return frame.iloc[[row["\0position"] for row in kept]]


def group(rows: list[dict], keys) -> dict[tuple, list[dict]]:
    """Rows by their values of `keys`, in order of first appearance."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault(tuple(_hashable(row.get(k)) for k in keys), []).append(row)
    return cells


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def distinguishing(rows: list[dict], keys, candidates) -> list[str]:
    """The `candidates` (in their order) that tell apart rows sharing their `keys` values,
    less those that the keys and the columns kept before already determine (`model`
    determines `model_lr` unless two recipes of one model differ in it). The ablation
    tables name these in a cell that mixes configurations; the figures add them to a line's
    label so that a band spans seeds only."""
    keys = list(keys)
    parts = group(rows, keys).values()
    varying = [c for c in candidates if c not in keys and any(len({_hashable(r.get(c)) for r in part}) > 1
                                                              for part in parts)]
    kept = []
    for column in varying:
        parts = group(rows, [*keys, *kept]).values()
        if kept and all(len({_hashable(r.get(column)) for r in part}) == 1 for part in parts):
            continue
        kept.append(column)
    return kept


# --- keys as text ---------------------------------------------------------------------------

def value_key(value):
    if value is None:
        return (3, 0, "")
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value))


def sorted_values(values) -> list:
    """Numbers numerically, then text alphabetically, missing values last."""
    return sorted(values, key=value_key)


def format_key(value) -> str:
    """A row/column key as text: integral floats without '.0', missing values as the empty mark."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return str(value)
