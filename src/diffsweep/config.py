"""Load, complete and check a config against workflow/schemas/config.schema.yaml.

`prepare` fills every default the schema declares (inside named presets too), then reports
every schema violation with its key path and the allowed values. The semantic checks that
need the registries (sampler families, knobs, schedules, dataset parameters) run when
`diffsweep.grid.build` resolves the grid; `load` does both, so a bad config fails before any
job runs.
"""

from __future__ import annotations

import copy
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that cannot run; the message names the key path and what is allowed."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    import yaml
    with open(path) as handle:
        return yaml.safe_load(handle)


def fill_defaults(config: dict, schema: dict) -> dict:
    """A copy of `config` with every missing key that has a schema default filled in, recursively."""
    config = copy.deepcopy(config)
    _fill(config, schema, schema)
    return config


def _fill(node, schema: dict, root: dict) -> None:
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill(node[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in schema.get("properties", {}):
                _fill(value, extra, root)


def check_schema(config: dict, schema: dict) -> None:
    """Raise ConfigError listing every violation as `key.path: problem (allowed: ...)`."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = [_describe(error) for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _describe(error) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = ", ".join(schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(schema.get("properties", {})))
        return f"{path}: unknown key(s) {unexpected}; allowed: {allowed}"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; allowed: {', '.join(map(str, schema['enum']))}"
    if error.validator == "anyOf":
        return f"{path}: {error.instance!r} has the wrong type or value ({error.schema.get('description', '')})"
    return f"{path}: {error.message}"


def prepare(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Defaults filled and the schema checked; raises ConfigError naming the key."""
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping, got {type(config).__name__}")
    schema = load_schema(schema_path)
    config = fill_defaults(config, schema)
    check_schema(config, schema)
    return config


def load(path: str | Path):
    """Read a YAML config, complete and check it, and expand its grid: (config, grid)."""
    import yaml
    from diffsweep import grid

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    config = prepare(raw)
    try:
        return config, grid.build(config)
    except ValueError as error:
        raise ConfigError(f"invalid config {path}: {error}") from None
