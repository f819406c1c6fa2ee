"""Declared knobs: a name, a type, a default and the allowed values, as plain data.

Samplers, schedules and datasets declare their knobs with `Knob`, so the workflow checks a
config at parse time (naming the key and the allowed values) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KNOB_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


@dataclass(frozen=True)
class Knob:
    type: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None

    def __post_init__(self):
        self.check("default", self.default)   # so resolve_knobs checks only the values a config gives

    def check(self, key: str, value) -> None:
        """Raise ValueError naming `key` if `value` is not allowed."""
        allowed = KNOB_TYPES[self.type]
        if isinstance(value, bool) and self.type != "bool" or not isinstance(value, allowed):
            raise ValueError(f"{key}: expected {self.type}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{key}: {value!r} is not allowed; allowed: {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{key}: {value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{key}: {value!r} is above the maximum {self.maximum}")

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def resolve_knobs(declared: dict[str, Knob], given: dict, owner: str, where: str = "") -> dict:
    """`given` with defaults filled in; unknown or ill-typed values raise ValueError naming the key."""
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
