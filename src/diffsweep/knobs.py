"""Declared knobs: a name, a type, a default and the allowed values, as plain data.

Samplers, schedules, datasets and network architectures declare their knobs with `Knob`, so the
workflow checks a config at parse time (naming the key, the value and the allowed values) without
importing torch. A knob is a number, a flag, a string, or a list of integers or numbers (a network's
channel widths: `list[int]`), each item within the knob's bounds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# The largest seed a knob or the config takes: the tables store 64-bit integers (torch takes seeds
# up to 2^64 - 1, a manifest column of a larger one would be uint64, which no table reads back).
SEED_MAX = 2**63 - 1

KNOB_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}
# What a value of each type is, in words (messages, `diffsweep list`).
KNOB_TYPE_WORDS = {"float": "a finite number", "int": "an integer", "bool": "true or false", "str": "a string"}
# List-valued knobs: the type of their items.
LIST_ITEM_TYPES = {"list[int]": "int", "list[float]": "float"}

# What YAML 1.1 (PyYAML) reads as a string although it looks like a number: `1e-3`, `5E+2` (no dot).
YAML11_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def string_number_hint(value) -> str:
    """For a string such as '1e-3' (or a list holding one): why it is a string and what to write
    instead ('' otherwise)."""
    if isinstance(value, list):
        return next((hint for hint in map(string_number_hint, value) if hint), "")
    if isinstance(value, str) and YAML11_FLOAT.match(value.strip()):
        mantissa, exponent = re.split("[eE]", value.strip())
        fixed = (mantissa if "." in mantissa else mantissa + ".0") + "e" + exponent
        number = float(value)
        integer = f", or {int(number)} for an integer" if number.is_integer() and abs(number) < 1e15 else ""
        return f" (YAML 1.1 reads {value} as a string: write {fixed}{integer})"
    return ""


@dataclass(frozen=True)
class Knob:
    """A declared setting. Numbers must be finite, except that a knob whose default is infinite
    (EDM's s_tmax: no bound) also takes infinity. `exclusive_minimum`/`exclusive_maximum` bound
    a value where the bound itself is degenerate (a step size or a noise level of zero). A list
    knob (type `list[int]` or `list[float]`) holds `min_items` to `max_items` items, each within
    the bounds. `formerly` is the name a renamed knob had: a config that still writes it is refused
    naming the new name, and run ids hash the value under it (`id_view`), so no id changes."""
    type: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    formerly: str | None = None

    def __post_init__(self):
        self.check("default", self.default)   # so resolve_knobs checks only the values a config gives

    def check(self, key: str, value) -> None:
        """Raise ValueError naming `key`, the value and what is allowed if `value` is not allowed."""
        if self.type in LIST_ITEM_TYPES:
            self._check_list(key, value)
            return
        allowed = KNOB_TYPES[self.type]
        if isinstance(value, bool) and self.type != "bool" or not isinstance(value, allowed):
            raise ValueError(f"{key}: {value!r} is not allowed; allowed: {self.allowed()}"
                             f"{string_number_hint(value) or integer_hint(value, self.type)}")
        if self.type == "float" and not math.isfinite(value):
            infinite_default = isinstance(self.default, float) and math.isinf(self.default)
            if math.isnan(value) or not infinite_default:
                raise ValueError(f"{key}: {value!r} is not allowed; allowed: a finite number{self.bounds()}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{key}: {value!r} is not allowed; allowed: {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{key}: {value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{key}: {value!r} is above the maximum {self.maximum}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise ValueError(f"{key}: {value!r} is not above the exclusive minimum {self.exclusive_minimum}; "
                             f"allowed: > {self.exclusive_minimum}")
        if self.exclusive_maximum is not None and value >= self.exclusive_maximum:
            raise ValueError(f"{key}: {value!r} is not below the exclusive maximum {self.exclusive_maximum}; "
                             f"allowed: < {self.exclusive_maximum}")

    def _check_list(self, key: str, value) -> None:
        if not isinstance(value, list) or not (self.min_items or 0) <= len(value) <= (self.max_items or len(value)):
            raise ValueError(f"{key}: {value!r} is not allowed; allowed: {self.allowed()}")
        item = self.item()
        for index, element in enumerate(value):
            item.check(f"{key}[{index}]", element)

    def item(self) -> "Knob":
        """The knob each item of a list knob is (its type and bounds, no default)."""
        return _Item(LIST_ITEM_TYPES[self.type], None, self.description, minimum=self.minimum,
                     maximum=self.maximum, exclusive_minimum=self.exclusive_minimum,
                     exclusive_maximum=self.exclusive_maximum)

    def allowed(self) -> str:
        """'an integer >= 1, <= 4096', 'a list of 1 to 8 items, each an integer >= 1': what the knob takes, in words."""
        if self.type in LIST_ITEM_TYPES:
            low, high = self.min_items or 0, self.max_items
            count = f"{low} to {high}" if high is not None else f"at least {low}"
            return f"a list of {count} items, each {self.item().allowed()}"
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        return KNOB_TYPE_WORDS[self.type] + self.bounds()

    def bounds(self) -> str:
        """' >= 0, < 1': the declared bounds, as a message reads them ('' if none)."""
        parts = [f"{sign} {bound}" for sign, bound in ((">=", self.minimum), (">", self.exclusive_minimum),
                                                         ("<=", self.maximum), ("<", self.exclusive_maximum))
                 if bound is not None]
        return " " + ", ".join(parts) if parts else ""

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class _Item(Knob):
    """An item of a list knob: a Knob without a default of its own."""

    def __post_init__(self):
        pass


def resolve_knobs(declared: dict[str, Knob], given: dict, owner: str, where: str = "") -> dict:
    """`given` with defaults filled in; unknown or ill-typed values raise ValueError naming the key."""
    if not isinstance(given, dict):
        raise ValueError(f"{where[:-1] or owner}: expected a mapping of knob: value, got {given!r}")
    unknown = sorted(set(given) - set(declared))
    renamed = {knob.formerly: key for key, knob in declared.items() if knob.formerly}
    for key in unknown:
        if key in renamed:
            raise ValueError(f"{where or owner + ': '}{key}: renamed to {renamed[key]}")
    if unknown:
        prefix = f"{where[:-1]}: " if where.endswith(".") else where  # "samplers.rw.knobs: unknown ..."
        raise ValueError(f"{prefix}unknown knob(s) {unknown} for {owner}; allowed: {', '.join(declared) or '(none)'}")
    resolved = {}
    for key, knob in declared.items():
        if key in given:
            value = given[key]
            knob.check(f"{where}{key}", value)
        else:
            value = list(knob.default) if isinstance(knob.default, list) else knob.default   # checked when declared
        resolved[key] = float(value) if knob.type == "float" else value
    return resolved


def id_view(declared: dict[str, Knob], resolved: dict) -> dict:
    """Resolved knobs as a run id hashes them: a renamed knob under its former name."""
    return {(declared[key].formerly if key in declared else None) or key: value for key, value in resolved.items()}


def integer_hint(value, type: str) -> str:
    """' (write 128: 128.0 is no integer)' for a whole float where an integer is expected ('' otherwise)."""
    if type == "int" and isinstance(value, float) and value.is_integer():
        return f" (write {int(value)}: {value!r} is no integer)"
    return ""
