"""Declared knobs: a name, a type, a default and the allowed values, as plain data.

Samplers, schedules and datasets declare their knobs with `Knob`, so the workflow checks a
config at parse time (naming the key, the value and the allowed values) without importing torch.
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
    a value where the bound itself is degenerate (a step size or a noise level of zero)."""
    type: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None

    def __post_init__(self):
        self.check("default", self.default)   # so resolve_knobs checks only the values a config gives

    def check(self, key: str, value) -> None:
        """Raise ValueError naming `key`, the value and what is allowed if `value` is not allowed."""
        allowed = KNOB_TYPES[self.type]
        if isinstance(value, bool) and self.type != "bool" or not isinstance(value, allowed):
            raise ValueError(f"{key}: expected {self.type}, got {value!r}{string_number_hint(value)}")
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

    def bounds(self) -> str:
        """' >= 0, < 1': the declared bounds, as a message reads them ('' if none)."""
        parts = [f"{sign} {bound}" for sign, bound in ((">=", self.minimum), (">", self.exclusive_minimum),
                                                         ("<=", self.maximum), ("<", self.exclusive_maximum))
                 if bound is not None]
        return " " + ", ".join(parts) if parts else ""

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def resolve_knobs(declared: dict[str, Knob], given: dict, owner: str, where: str = "") -> dict:
    """`given` with defaults filled in; unknown or ill-typed values raise ValueError naming the key."""
    if not isinstance(given, dict):
        raise ValueError(f"{where[:-1] or owner}: expected a mapping of knob: value, got {given!r}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        prefix = f"{where[:-1]}: " if where.endswith(".") else where  # "samplers.rw.knobs: unknown ..."
        raise ValueError(f"{prefix}unknown knob(s) {unknown} for {owner}; allowed: {', '.join(declared) or '(none)'}")
    resolved = {}
    for key, knob in declared.items():
        if key in given:
            value = given[key]
            knob.check(f"{where}{key}", value)
        else:
            value = knob.default    # checked when the knob was declared
        resolved[key] = float(value) if knob.type == "float" else value
    return resolved
