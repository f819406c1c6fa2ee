"""Read, complete and check a config: every value that cannot give a meaningful run is refused
here, before any job, with one line per problem naming the key path, the value and what is
allowed.

`read_yaml` reads a config file strictly (a duplicate key, a syntax error, an empty file or a
top level that is no mapping is refused with the file and line). `prepare` fills every default
that workflow/schemas/config.schema.yaml declares (inside named presets too) and checks the
schema (numbers must be finite). `check` does everything else, once for both callers
(`snakemake` through workflow/rules/common.smk and `diffsweep grid`): the grid (registries,
knobs, schedules), the results folder, the declared ablation tables and plots, and the files
the config names (unless DIFFSWEEP_SKIP_PATH_CHECKS=1). `load` = `read_yaml` + `check`.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffsweep.knobs import string_number_hint

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# Set to 1 to plan (dry-run, `diffsweep grid`) a config whose datasets, checkpoints or weights
# files are not on this machine: their existence is then checked only by the jobs that read them.
SKIP_PATH_CHECKS = "DIFFSWEEP_SKIP_PATH_CHECKS"

# Bounds on a config as data (docs/running.md, "Limits of a config"), so that no file, YAML
# alias or list makes a check run for minutes or a job fail later: a config file's size, how
# deep mappings and lists nest, the items of one list, the values of the whole config with
# every YAML alias expanded, and every integer (the tables store 64-bit integers).
MAX_CONFIG_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_LIST_ITEMS = 10_000
MAX_VALUES = 100_000
INT_MIN, INT_MAX = -2**63, 2**63 - 1


class ConfigError(ValueError):
    """A config that cannot run: one problem per line, each `invalid config[ FILE]: key.path: ...`."""

    def __init__(self, problems, source: str | Path = ""):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = str(source)
        prefix = f"invalid config {self.source}: " if self.source else "invalid config: "
        super().__init__("\n".join(prefix + problem for problem in self.problems))


# --- reading YAML -----------------------------------------------------------------------

def read_yaml(path: str | Path) -> dict:
    """A config file as a mapping; a missing, unreadable, non-regular or too large file, a YAML
    syntax error, nesting deeper than MAX_DEPTH, a duplicate key, an empty file or a top level
    that is no mapping raises ConfigError naming the file (and the line)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        kind = " (it is a folder)" if path.is_dir() else " (it is not a regular file)" if path.exists() else ""
        raise ConfigError(f"config file '{path}' not found{kind}")
    try:
        with open(path, "rb") as handle:   # at most one byte past the limit: /dev/zero-like files end too
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"the file is larger than {MAX_CONFIG_BYTES:,} bytes; a config is a few kB", path)
        text = raw.decode()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the file: {error}", path) from None
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml's parser when there is one
    loader = loader_class(text)
    try:
        too_deep = _too_deep(yaml.parse(text, Loader=loader_class))   # before the (recursive) composer
        if too_deep:
            raise ConfigError(too_deep, path)
        node = loader.get_single_node()
        duplicate = _first_duplicate_key(node)
        if duplicate:
            raise ConfigError(duplicate, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_yaml_problem(error), path) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"YAML error: {error}", path) from None
    except ValueError as error:   # an integer of more than 4300 digits (Python's int limit)
        raise ConfigError(f"a value cannot be read: {error}", path) from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError("the file is empty; expected a mapping of config keys (datasets, models, samplers, ...)",
                          path)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of config keys at the top level, got a {type(data).__name__}", path)
    problems = value_problems(data)
    if problems:
        raise ConfigError(problems, path)
    return data


def _too_deep(events) -> str:
    """'line 3, column 9: nested deeper than 32 levels ...' for YAML parse events that nest past
    MAX_DEPTH ('' otherwise)."""
    import yaml

    depth = 0
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                return (f"line {mark.line + 1}, column {mark.column + 1}: nested deeper than {MAX_DEPTH} levels "
                        f"of mappings and lists; a config needs fewer than 10")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return ""


def _yaml_problem(error) -> str:
    """'line 3, column 5: YAML syntax error: <problem> (<context>)', lines counted from 1."""
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = f" ({error.context})" if error.context else ""
    return f"{where}YAML syntax error: {error.problem}{context}"


def _first_duplicate_key(node, path: str = "", seen: set | None = None) -> str:
    """'line 5, column 5: samplers.rw.steps: duplicate key ...' for the first mapping of the
    composed YAML that repeats a key ('' if none): PyYAML would silently keep the last value."""
    import yaml

    seen = set() if seen is None else seen
    if id(node) in seen:   # an alias of a node already walked (or a recursive one)
        return ""
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key_node.tag != "tag:yaml.org,2002:merge":
                if key in first:
                    mark = key_node.start_mark
                    return (f"line {mark.line + 1}, column {mark.column + 1}: {_join(path, key)}: duplicate key "
                            f"(first at line {first[key]}); a mapping takes each key once")
                first[key] = key_node.start_mark.line + 1
            found = _first_duplicate_key(value_node, _join(path, key), seen)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _first_duplicate_key(item, f"{path}[{index}]", seen)
            if found:
                return found
    return ""


# --- schema -----------------------------------------------------------------------------

def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema (a fresh copy: callers may change it)."""
    return copy.deepcopy(_read_schema(str(path)))


@functools.lru_cache(maxsize=4)
def _read_schema(path: str) -> dict:
    import yaml
    with open(path) as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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


def value_problems(config) -> list[str]:
    """A problem for every value no setting can mean, before any other check walks the config:
    nesting deeper than MAX_DEPTH, a mapping or list that contains itself (a recursive YAML
    alias), a list longer than MAX_LIST_ITEMS, more than MAX_VALUES values with YAML aliases
    expanded (an alias bomb), NaN anywhere, and an integer outside INT_MIN .. INT_MAX.
    Infinities are refused by the schema's number type and by each knob (Knob.check). Every
    mapping or list is walked once however many aliases share it."""
    problems, sizes, open_nodes = [], {}, set()

    def walk(node, path: str, depth: int) -> int:   # the values in `node`, aliases expanded
        where = path or "(top level)"
        if isinstance(node, float) and math.isnan(node):
            problems.append(f"{where}: nan is not allowed; allowed: a finite number")
        elif isinstance(node, int) and not isinstance(node, bool) and not INT_MIN <= node <= INT_MAX:
            problems.append(f"{where}: {_short(node)} is outside the integer range; allowed: {INT_MIN} .. {INT_MAX} "
                            f"(64-bit), or less where the key says so")
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise _Refused(f"{where}: contains itself (a recursive YAML alias); allowed: plain values, lists, mappings")
        if depth > MAX_DEPTH:
            raise _Refused(f"{where}: nested deeper than {MAX_DEPTH} levels of mappings and lists")
        if isinstance(node, list) and len(node) > MAX_LIST_ITEMS:
            raise _Refused(f"{where}: a list of {len(node):,} values; allowed: at most {MAX_LIST_ITEMS:,} "
                           f"(a sweep axis that long is a grid nobody can run)")
        open_nodes.add(id(node))
        items = node.items() if isinstance(node, dict) else ((f"[{index}]", value) for index, value in enumerate(node))
        size = 1 + sum(walk(value, f"{path}{key}" if isinstance(node, list) else _join(path, key), depth + 1)
                       for key, value in items)
        open_nodes.discard(id(node))
        if size > MAX_VALUES:
            raise _Refused(f"{where}: more than {MAX_VALUES:,} values with every YAML alias expanded; "
                           f"allowed: at most {MAX_VALUES:,}")
        sizes[id(node)] = size
        return size

    try:
        walk(config, "", 0)
    except _Refused as refused:
        return [str(refused)]
    return problems


class _Refused(Exception):
    """value_problems: a config that is not walked further."""


def _short(number: int) -> str:
    """An integer as a message shows it: '9223372036854775808', or '123456789012... (400 digits)'."""
    try:
        text = str(number)
    except ValueError:   # more digits than Python prints (4300)
        return "an integer of more than 4,300 digits"
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text.lstrip('-'))} digits)"


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _validator(schema: dict):
    """A JSON-schema validator whose `number` excludes infinities and whose `integer` is an
    integer as written: JSON Schema counts 1.0 as an integer, torch and the tables do not."""
    import jsonschema

    base = jsonschema.Draft202012Validator

    def finite_number(checker, instance):
        return base.TYPE_CHECKER.is_type(instance, "number") and not (
            isinstance(instance, float) and not math.isfinite(instance))

    def integer(checker, instance):
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = base.TYPE_CHECKER.redefine_many({"number": finite_number, "integer": integer})
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every schema violation as `key.path: problem; allowed: ...`."""
    errors = sorted(_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(error) for error in errors]


def _describe(error) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    schema = error.schema
    hint = string_number_hint(error.instance) or _integer_hint(error.instance, schema)
    if error.validator == "additionalProperties":
        allowed = ", ".join(schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(schema.get("properties", {})))
        return f"{path}: unknown key(s) {unexpected}; allowed: {allowed}"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; allowed: {', '.join(map(str, schema['enum']))}"
    if error.validator == "anyOf":
        # A mapping (`null or a mapping`) that failed inside: name the key inside it. Scalars keep
        # this line, which lists every alternative.
        inside = [sub for sub in error.context if sub.relative_path or sub.validator != "type"]
        if isinstance(error.instance, dict) and inside:
            return _describe(min(inside, key=lambda sub: len(sub.relative_path)))
        return f"{path}: {error.instance!r} has the wrong type or value; allowed: {allowed_values(schema)}{hint}"
    if error.validator == "type":
        return f"{path}: {error.instance!r} is not allowed; allowed: {allowed_values(schema)}{hint}"
    if error.validator == "pattern":   # a name: propertyNames or a list of names
        return f"{path}: {error.instance!r} is not a name; allowed: {schema.get('description', error.message)}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems"):
        return f"{path}: {error.message}; allowed: {allowed_values(schema)}"
    return f"{path}: {error.message}"


def _integer_hint(value, schema: dict) -> str:
    """' (write 200: 200.0 is no integer)' for a whole float (or a list holding one) where the
    schema allows an integer ('' otherwise)."""
    if isinstance(value, list):
        return next((hint for hint in (_integer_hint(item, schema) for item in value) if hint), "")
    if isinstance(value, float) and value.is_integer() and "integer" in allowed_values(schema):
        return f" (write {int(value)}: {value!r} is no integer)"
    return ""


def allowed_values(schema: dict) -> str:
    """What a schema node allows, in words: 'an integer >= 1, or a list of those'."""
    if "anyOf" in schema:
        options = schema["anyOf"]
        return ", or ".join("a list of those" if option.get("type") == "array" and option.get("items") in options
                            else allowed_values(option) for option in options)
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type", "any value")
    if kind == "array":
        items = f" of: {allowed_values(schema['items'])}" if "items" in schema else ""
        return ("a non-empty list" if schema.get("minItems") else "a list") + items
    text = " or ".join(kind) if isinstance(kind, list) else kind
    text = {"number": "a finite number", "integer": "an integer", "string": "a string", "object": "a mapping",
            "boolean": "true or false"}.get(text, text)
    bounds = [f"{sign} {schema[key]}" for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                        ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    return text + (" " + ", ".join(bounds) if bounds else "")


# Keys that moved to another section -> where they live now: a config that still writes one is
# refused naming the new place (a job's settings moved under `jobs`, issue 24).
MOVED_KEYS = {
    "device": "jobs.device",
    "max_batch": "jobs.max_batch",
    "sampling.fuse": "jobs.fuse",
    "sampling.fail_fast": "jobs.fail_fast",
    "sampling.runs_per_job": "jobs.generation.runs_per_job",
    "sampling.job_minutes": "jobs.generation.job_minutes",
    "sampling.run_seconds": "jobs.generation.run_seconds",
    "restoration.runs_per_job": "jobs.restoration.runs_per_job",
    "restoration.job_minutes": "jobs.restoration.job_minutes",
    "restoration.run_seconds": "jobs.restoration.run_seconds",
}


def without_moved_keys(config: dict) -> tuple[dict, list[str]]:
    """A copy of `config` without the keys of MOVED_KEYS it writes, and `<old key>: moved to <new
    key>` for each (the rest of the config is still checked: every problem gets its line)."""
    config, problems = copy.deepcopy(config), []
    for old, new in MOVED_KEYS.items():
        *sections, key = old.split(".")
        node = config
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            del node[key]
            problems.append(f"{old}: moved to {new}")
    return config, problems


def prepare(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Defaults filled and the schema checked; raises ConfigError, one line per problem."""
    if not isinstance(config, dict):
        raise ConfigError(f"expected a mapping of config keys at the top level, got a {type(config).__name__}")
    problems = value_problems(config)
    if problems:
        raise ConfigError(problems)
    config, moved = without_moved_keys(config)
    schema = load_schema(schema_path)
    config = fill_defaults(config, schema)
    problems = [*moved, *schema_problems(config, schema)]
    if problems:
        raise ConfigError(problems)
    return config


# --- everything else, before any job -------------------------------------------------------

@dataclass
class Checked:
    """A config that passed every check: completed, its grid and its declared ablation tables."""
    config: dict
    grid: Any
    ablations: dict


def check(raw: dict, schema_path: str | Path = SCHEMA_PATH, base_dir: str | Path = ".",
          check_paths: bool | None = None, source: str | Path = "") -> Checked:
    """Every parse-time check of a config, for `snakemake` and `diffsweep grid` alike; raises
    ConfigError naming `source` (the file) and the key. `base_dir` is where plugin files are
    relative to. `check_paths` (default: unless DIFFSWEEP_SKIP_PATH_CHECKS=1) checks that the
    files the config names exist (relative to the working directory, as the jobs read them)."""
    from diffsweep import grid as ds_grid
    from diffsweep import noise, packing, runs, studies, tables
    from diffsweep.runs import kinds

    try:
        config = prepare(raw, schema_path)
    except ConfigError as error:
        raise ConfigError(error.problems, source) from None
    try:
        config["results"] = check_results(config["results"])
        noise.check_sigma_range(config["metrics"]["likelihood"], "metrics.likelihood.")
        grid = ds_grid.build(config, base_dir)
        packing.check(raw, config, grid)
        runs.check_layout(config["results"])
        ablations = tables.ablation_specs(config["tables"])
        # a table's source is a run kind: its columns are that kind's manifest columns and results
        tables.check_declared(ablations, {kind: grid.manifest_rows(kind) for kind in kinds.names()},
                              config["tables"]["better"])
        if grid.trained_models() and config["plots"]["heatmap"]["metrics"]:
            tables.check_heatmap(config["plots"]["heatmap"], grid.manifest_rows(kinds.GENERATION.name),
                                config["tables"]["better"])
        for metric in [*config["plots"]["metrics"], *config["plots"]["heatmap"]["metrics"]]:
            if not metric.isidentifier():   # one job draws a figure per metric: outputs <metric>_png
                raise ValueError(f"plots: metric '{metric}' is not a column name")
        studies.check(config)
        if check_paths is None:
            check_paths = os.environ.get(SKIP_PATH_CHECKS, "") not in ("1", "true", "yes")
        if check_paths:
            check_named_files(config, grid)
    except ConfigError as error:
        raise ConfigError(error.problems, source) from None
    except ValueError as error:   # registries, knobs, tables: messages that name the key
        raise ConfigError(str(error).splitlines() or [repr(error)], source) from None
    return Checked(config, grid, ablations)


# What a component of the results path may be at most, in bytes (NAME_MAX of Linux and macOS).
NAME_MAX = 255


def check_results(results: str) -> str:
    """The results folder as every job and command uses it: `~` expanded (the shell would expand
    it on a command line; a config is expanded here, once, so the check and the jobs see one
    folder). Refused, naming `results`: empty, a control character (line break, tab, NUL), a
    `~user` that is no user, a component longer than NAME_MAX bytes, a symbolic link loop or a
    dangling link on the way, the filesystem root, an existing file, and a folder that cannot be
    created or written (probed with a temporary folder in it, or in its nearest existing parent,
    removed at once: read-only or special filesystems such as /proc)."""
    if not results.strip():
        raise ValueError(f"results: {results!r} is empty; allowed: a folder path such as 'results'")
    if any(ord(char) < 32 or ord(char) == 127 for char in results):
        raise ValueError(f"results: {results!r} holds a control character (a line break, tab or NUL byte); "
                         f"allowed: a folder path such as 'results'")
    try:
        results.encode()
    except UnicodeEncodeError:
        raise ValueError(f"results: {results!r} is not valid Unicode text; allowed: a folder path such as "
                         f"'results'") from None
    expanded = os.path.expanduser(results)
    if expanded.startswith("~"):
        raise ValueError(f"results: {results!r} names no user's home folder; allowed: a folder path such as "
                         f"'results', '~/results' or an absolute path")
    path = Path(expanded)
    long = [part for part in path.parts if len(part.encode()) > NAME_MAX]
    if long:
        raise ValueError(f"results: {results!r} has a component longer than {NAME_MAX} bytes ('{long[0][:40]}...')")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as error:     # RuntimeError: a symbolic link loop (Python < 3.13)
        raise ValueError(f"results: {results!r} cannot be resolved ({_one_line(error)}); a symbolic link "
                         f"loop?") from None
    if resolved == Path(resolved.anchor):
        raise ValueError(f"results: {results!r} is the filesystem root; allowed: a folder path such as 'results'")
    existing = next(folder for folder in (path, *path.parents) if folder.exists() or folder.is_symlink()
                    or folder == Path(".") or folder == Path(folder.anchor))
    if existing.is_symlink() and not existing.exists():
        raise ValueError(f"results: {results!r}: '{existing}' is a symbolic link to '{os.readlink(existing)}', "
                         f"which does not exist")
    if existing == path and not path.is_dir():
        raise ValueError(f"results: {results!r} is an existing file; allowed: a folder (existing or not)")
    if not existing.is_dir():
        raise ValueError(f"results: {results!r}: '{existing}' is a file, so no folder can be made in it")
    try:   # the jobs create folders and files in it: the cheapest true test is to do so
        os.rmdir(tempfile.mkdtemp(prefix=".diffsweep-probe-", dir=existing))
    except OSError as error:
        where = "" if existing == path else f" (its nearest existing folder '{existing}')"
        raise ValueError(f"results: {results!r}{where} is not writable ({error.strerror or _one_line(error)}); "
                         f"allowed: a folder this user can create and write") from None
    return expanded


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def check_named_files(config: dict, grid) -> None:
    """Every file the config names is there, by the cheap checks of the code that reads it (no
    file is opened): a dataset family's `check` (an images folder holding images, an .npz),
    a pretrained checkpoint file, the Inception and LPIPS weights. Relative paths start at the
    working directory."""
    from diffsweep import data, pretrained

    problems = []
    for name, spec in sorted(grid.datasets.items()):
        family = data.FAMILIES.get(spec.family)
        if family.check is not None:
            try:
                family.check(**spec.knobs)
            except ValueError as error:   # "path: ..." (diffsweep.data.DataFileError)
                problems.append(f"datasets.{name}.knobs.{error}")
    for name, entry in sorted(config["models"].items()):
        if entry["source"] == "pretrained" and entry["checkpoint"]:
            try:
                pretrained.checkpoint_file(entry["format"], entry["checkpoint"], where=f"models.{name}.").check()
            except ValueError as error:
                problems.append(str(error))
    lpips = config.get("restoration", {}).get("metrics", {}).get("lpips_weights")
    weights = [("fidelity.inception_weights", config["fidelity"]["inception_weights"]),
               ("restoration.metrics.lpips_weights", lpips)]
    for key, path in weights:
        if path and not Path(path).expanduser().is_file():
            problems.append(f"{key}: '{path}' {'is not a file' if Path(path).exists() else 'does not exist'} "
                            f"(relative paths start at the working directory {Path.cwd()}); allowed: the weights file "
                            f"or null")
    if problems:
        raise ConfigError([f"{problem} (set {SKIP_PATH_CHECKS}=1 to plan without the files)" for problem in problems])


def check_files(paths, config: dict | None = None, schema_path: str | Path = SCHEMA_PATH, base_dir: str | Path = ".",
                check_paths: bool | None = None) -> Checked:
    """The one parse-time check of `snakemake` (workflow/rules/common.smk) and `diffsweep grid`:
    every config file of `paths` read strictly (read_yaml: Snakemake's own reader keeps the last
    of two equal keys and has no limits), then `config` checked (`check`): Snakemake's merge of
    the files and --config, or without it the one file's content, named in every message."""
    contents = [read_yaml(path) for path in paths]
    if config is None:
        (config,) = contents
        return check(config, schema_path, base_dir, check_paths, source=paths[0])
    return check(config, schema_path, base_dir, check_paths)


def load(path: str | Path, check_paths: bool | None = None):
    """Read a YAML config strictly, complete and check it, and expand its grid: (config, grid)."""
    checked = check_files([path], check_paths=check_paths)
    return checked.config, checked.grid
