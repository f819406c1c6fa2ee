"""Named things behind one idiom: a `Registry` of small frozen entries, and plugin loading.

Every name a config can use (a sampler, restorer, schedule, training sigma-distribution,
loss weight, parametrisation, dataset family, operator, pretrained format, fidelity
extractor) is an `Entry` in the registry of its kind, declared next to the code it names:

    SCHEDULES = Registry("schedule", Schedule)

    @SCHEDULES.register("geometric", "evenly spaced in log sigma", knobs={...})
    def geometric(steps, sigma_min, sigma_max): ...

Entries that are data rather than one function are added whole: `FAMILIES.add(DatasetFamily(...))`.
Knobs are plain data (diffsweep.knobs), so a config is checked without importing torch. An
unknown name always reads "<where>unknown <kind> 'x'; allowed: a, b, c". A user's plugin
file registers into the same registries (`load_plugins`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from diffsweep.knobs import Knob, id_view, resolve_knobs


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every registered thing has; kinds add the fields they need (fn, build, init, ...)."""
    name: str
    description: str
    knobs: dict[str, Knob] = field(default_factory=dict)
    kind: str = ""      # the registry's kind, set when added (error messages name it)
    module: str = ""    # where it was registered (a duplicate names both modules)

    def resolve_knobs(self, given: dict | None, where: str = "") -> dict:
        """`given` with defaults filled in; unknown or ill-typed knobs raise ValueError naming `where`."""
        return resolve_knobs(self.knobs, given or {}, f"{self.kind} '{self.name}'", where)

    def id_knobs(self, resolved: dict) -> dict:
        """Resolved knobs as a run id hashes them (renamed knobs under their former names)."""
        return id_view(self.knobs, resolved)


class Registry:
    """Entries of one kind behind their names."""

    def __init__(self, kind: str, entry_type: type = Entry):
        self.kind, self.entry_type, self._entries = kind, entry_type, {}

    def add(self, entry: Entry) -> Entry:
        """Register `entry` under its name; a different entry under a taken name is refused."""
        module = entry.module or sys._getframe(1).f_globals.get("__name__", "")
        entry = dataclasses.replace(entry, kind=self.kind, module=module)
        former = [knob.formerly for knob in entry.knobs.values() if knob.formerly]
        clash = sorted(name for name in set(former) if name in entry.knobs or former.count(name) > 1)
        if clash:   # a run id hashes a renamed knob under its former name: two knobs would share a key
            raise ValueError(f"{self.kind} '{entry.name}': former knob name(s) {clash} are taken by another knob")
        existing = self._entries.get(entry.name)
        if existing is not None and existing != entry:
            raise ValueError(f"{self.kind} '{entry.name}' is registered twice ({existing.module} and {entry.module})")
        self._entries[entry.name] = entry
        return entry

    def register(self, name: str, description: str, knobs: dict[str, Knob] | None = None, **fields):
        """Decorator: register the decorated function as the entry's `fn`."""
        def add(fn):
            self.add(self.entry_type(name=name, description=description, knobs=dict(knobs or {}), fn=fn,
                                     kind=self.kind, module=fn.__module__, **fields))
            return fn
        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str, where: str = "") -> Entry:
        """The entry called `name`; `where` is the config path printed before the message."""
        if name not in self._entries:
            raise ValueError(f"{where}unknown {self.kind} '{name}'; allowed: {', '.join(self.names())}")
        return self._entries[name]

    __getitem__ = get

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]


# --- plugins ----------------------------------------------------------------------------

# What a plugin's import may raise that is refused as its own error: any Exception, and SystemExit
# (a plugin calling sys.exit() would otherwise end `snakemake` and `diffsweep grid` with status 0,
# silently). KeyboardInterrupt still stops the process.
PLUGIN_ERRORS = (Exception, SystemExit)


def load_plugins(entries, base_dir: str | Path = ".") -> None:
    """Import each `plugins:` entry (a .py path relative to `base_dir`, or a module name) so
    the registrations in it run; a failure is one line naming plugins[i], the file and the error."""
    for index, entry in enumerate(entries):
        load_plugin(entry, base_dir, where=f"plugins[{index}]")


def load_plugin(entry: str, base_dir: str | Path = ".", where: str = "plugins") -> None:
    """Import one plugin (once per process)."""
    if not (entry.endswith(".py") or "/" in entry):
        if entry in sys.modules:
            return
        try:
            module = importlib.import_module(entry)
        except ModuleNotFoundError as error:
            if error.name == entry:
                raise ValueError(f"{where}: cannot import module '{entry}': {error}") from None
            raise ValueError(f"{where}: module '{entry}': {_describe(error, None)}") from None
        except PLUGIN_ERRORS as error:  # the plugin's own error (or exit): one line, no traceback
            raise ValueError(f"{where}: module '{entry}': {_describe(error, None)}") from None
        if getattr(module, "__file__", None) is None:   # a folder on sys.path: a namespace package, no code
            del sys.modules[entry]
            raise ValueError(f"{where}: '{entry}' is a folder, not a module or .py file (a folder imports only where "
                             f"it happens to be on the module path)")
        return
    path = Path(entry)
    if not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        folder = " (it is a folder)" if path.is_dir() else ""
        raise ValueError(f"{where}: file '{entry}' not found (looked at {path}){folder}; allowed: a .py file")
    module_name = f"diffsweep_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except PLUGIN_ERRORS as error:
        del sys.modules[module_name]  # a later attempt imports it afresh
        raise ValueError(f"{where}: {entry}: {_describe(error, path)}") from None


def _describe(error: BaseException, path: Path | None) -> str:
    """'SyntaxError: invalid syntax (line 3)': the error and, for a plugin file, its line there."""
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} (line {error.lineno})"
    text = f"SystemExit: it calls sys.exit({error.code!r}) when imported" if isinstance(error, SystemExit) \
        else f"{type(error).__name__}: {error}"
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if path is not None and Path(frame.filename) == path]
    return text + (f" (line {lines[-1]})" if lines else "")
