"""Fingerprints of the code that makes a run: what DRAWS its samples and what EVALUATES them.

A fingerprint hashes the normalised source of a function and of everything it reaches inside the
diffsweep package, read from the source files on disk (nothing is imported, torch included):

- normalised: each reached definition is parsed (`ast`), its docstrings dropped and the
  `description=` of its registration decorator with them, and written back with `ast.unparse`,
  so comments, docstrings and formatting change no fingerprint;
- reached: a name the code loads is followed to the module-level function, class or constant it
  names, in its own module or through `from diffsweep... import` / `import diffsweep...` (also
  inside functions) and `module.attr`, transitively and across modules, once each (cycle-safe).
  `getattr(module, not_a_literal)` and a module used as a value reach every definition of that
  module. The walk stops at the package boundary: third-party imports (torch, numpy, ...) are
  recorded as packages with their installed versions, beside the digest (`Fingerprint.packages`),
  not in it; the standard library is ignored. `diffsweep.registry` and `diffsweep.knobs` are not
  followed: they map names to entries and check knobs (whose resolved values are in the run id);
  the functions a registry hands out are fingerprinted where they are looked up (`draw`);
- a plugin's functions are fingerprinted the same way: their module is the plugin file.

`draw(kind, family, schedule, source)` and `evaluate(kind)` compose the roots of a run's two halves
(docs/fingerprints.md says which); `of_function(fn)` is any function's fingerprint. A
`Fingerprinter` reads one source tree (`root` holds the `diffsweep/` folder; the tests point it at
an edited copy) and caches per process; the module-level functions use the installed package's.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "diffsweep"
# Name-to-entry machinery, not followed (see the module docstring).
NOT_FOLLOWED = frozenset({"diffsweep.registry", "diffsweep.knobs"})
DIGEST_CHARS = 16     # 64 bits, as run ids


@dataclass(frozen=True)
class Fingerprint:
    """A code fingerprint: `digest` of the normalised definitions, the definitions it covers
    ('module:name', sorted) and the third-party packages they import (name, version or None);
    `parts` maps each covered definition to a digest of its own normalised source (what `changed`
    compares to name the definitions that differ between two fingerprints)."""
    digest: str
    symbols: tuple[str, ...]
    packages: tuple[tuple[str, str | None], ...]
    parts: tuple[tuple[str, str], ...] = ()

    def changed(self, earlier: dict) -> list[str]:
        """The definitions ('module:name') whose source differs from `earlier` (a {symbol: digest}
        map of an earlier fingerprint's parts), or that one of the two lacks."""
        now = dict(self.parts)
        return sorted(symbol for symbol in {*now, *earlier} if now.get(symbol) != earlier.get(symbol))


@dataclass
class _Module:
    """One parsed source file: its top-level definitions and import bindings."""
    name: str
    is_package: bool
    definitions: dict      # name -> [top-level nodes that bind it]
    imports: dict          # name -> ("module", module name) | ("attr", module name, attribute)


class Fingerprinter:
    """Fingerprints read from the source tree under `root` (the folder holding `diffsweep/`)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
        self._modules: dict[str, _Module | None] = {}
        self._symbols: dict[tuple, tuple] = {}     # (module, name) -> (source text, edges, packages)

    # --- public API --------------------------------------------------------------------

    def of_function(self, fn) -> Fingerprint:
        """The fingerprint of a function (or class, bound method, functools.partial), a plugin's included."""
        return self.of_roots(self._roots_of(fn), extra=self._closure_constants(fn))

    def draw(self, kind: str, family: str, schedule: str, source: str, operator: str | None = None) -> Fingerprint:
        """What draws a run's samples. `kind`: a kind of run (diffsweep.runs.kinds); `family`: the sampler
        or restorer; `schedule`: the sampling schedule's name; `source`: 'oracle', 'trained' or
        'pretrained:<format>'; `operator`: a restoration task's operator family."""
        from diffsweep import noise
        from diffsweep.runs import kinds
        of_kind = kinds.get(kind)
        roots = [("diffsweep.noise", "make_schedule"), *self._roots_of(noise.SCHEDULES.get(schedule).fn),
                 *of_kind.draw_code, *self._roots_of(of_kind.families().get(family).fn)]
        extra = []
        if operator is not None:      # a restoration task's operator
            from diffsweep import restoration
            make = restoration.get_operator(operator).make
            roots += self._roots_of(make)
            extra += self._closure_constants(make)
        roots += self._source_roots(source)
        return self.of_roots(roots, extra)

    def evaluate(self, kind: str) -> Fingerprint:
        """What scores a run's samples: its kind's finish step, the metrics and the feature extractors."""
        from diffsweep.runs import kinds
        return self.of_roots([*kinds.get(kind).evaluate_code, ("diffsweep.fidelity", "*")])

    def training(self) -> Fingerprint:
        """What trains a `trained` score source: the training template and job, the training
        sigma-distributions and loss weights, and the networks it builds."""
        from diffsweep import noise
        roots = [("diffsweep.jobs", "train_model"), ("diffsweep.train", "*"), ("diffsweep.parametrisations", "*"),
                 ("diffsweep.models", "build_denoiser")]
        for registry in (noise.TRAINING_DISTRIBUTIONS, noise.LOSS_WEIGHTS):
            for entry in registry.entries():
                roots += self._roots_of(entry.fn)
        return self.of_roots(roots)

    def of_roots(self, roots, extra=()) -> Fingerprint:
        """The fingerprint of (module, name) roots and everything they reach; name '*' is the whole module."""
        reached, packages, todo = set(), set(), [self._expand(root) for root in roots]
        todo = [symbol for group in todo for symbol in group]
        while todo:
            symbol = todo.pop()
            if symbol in reached:
                continue
            reached.add(symbol)
            _, edges, used = self._symbol(symbol)
            packages |= used
            todo.extend(edge for edge in edges if edge not in reached)
        digest, parts = hashlib.sha256(), []
        for symbol in sorted(reached):
            text = self._symbol(symbol)[0]
            digest.update(f"{symbol[0]}:{symbol[1]}\n{text}\n".encode())
            parts.append((f"{symbol[0]}:{symbol[1]}", hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]))
        for item in extra:
            digest.update(f"constant {item}\n".encode())
            parts.append((f"constant {item}", ""))
        return Fingerprint(digest.hexdigest()[:DIGEST_CHARS], tuple(f"{m}:{n}" for m, n in sorted(reached)),
                           tuple((name, _version(name)) for name in sorted(packages)), tuple(parts))

    # --- score sources -------------------------------------------------------------------

    def _source_roots(self, source: str) -> list[tuple]:
        if source == "oracle":
            return [("diffsweep.models", "OracleDenoiser"), ("diffsweep.gmm", "GaussianMixture")]
        if source == "trained":    # the network's code; its weights' training code is `training()`
            return [("diffsweep.models", "load_checkpoint"), ("diffsweep.models", "PreconditionedDenoiser"),
                    ("diffsweep.parametrisations", "*")]
        if source.startswith("pretrained:"):
            from diffsweep import pretrained
            entry = pretrained.FORMATS.get(source.removeprefix("pretrained:"))
            return [("diffsweep.pretrained", "load_pretrained"),
                    *(root for fn in (entry.network, entry.denoiser, entry.read) for root in self._roots_of(fn))]
        raise ValueError(f"unknown score source '{source}'; allowed: oracle, trained, pretrained:<format>")

    # --- locating runtime objects in source ------------------------------------------------

    def _roots_of(self, fn) -> list[tuple]:
        fn = getattr(fn, "__func__", fn)              # a bound method
        if isinstance(fn, functools.partial):
            return self._roots_of(fn.func)
        module, qualname = fn.__module__, fn.__qualname__
        if not self._in_package(module):             # a plugin: its own file, as a module of its own
            self._plugin_module(module)
        parts = qualname.split(".<locals>.")[0].split(".")
        return [(module, ".".join(parts[:2]))]        # a function, a class, or a class's method

    @staticmethod
    def _closure_constants(fn) -> list[str]:
        """Plain values a closure captured (e.g. the class name an operator builder looks up)."""
        fn = getattr(fn, "__func__", fn)
        cells = getattr(fn, "__closure__", None) or ()
        values = []
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:                        # an empty cell
                continue
            if value is None or isinstance(value, (str, int, float, bool)):
                values.append(repr(value))
        if isinstance(fn, functools.partial):
            values += [repr(fn.args), repr(sorted(fn.keywords.items()))]
        return values

    @staticmethod
    def _in_package(module: str) -> bool:
        return module == PACKAGE or module.startswith(PACKAGE + ".")

    def _plugin_module(self, name: str) -> None:
        if name not in self._modules:
            path = getattr(sys.modules.get(name), "__file__", None)
            self._modules[name] = self._parse(name, Path(path), False) if path else None

    # --- modules ---------------------------------------------------------------------------

    def _module(self, name: str) -> _Module | None:
        """The parsed module `name` of the package (None: no such file, or outside the package)."""
        if name not in self._modules:
            found = None
            if self._in_package(name):
                base = self.root.joinpath(*name.split("."))
                for path, is_package in ((base / "__init__.py", True), (base.with_suffix(".py"), False)):
                    if path.is_file():
                        found = self._parse(name, path, is_package)
                        break
            self._modules[name] = found
        return self._modules[name]

    def _parse(self, name: str, path: Path, is_package: bool) -> _Module:
        tree = _normalise(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        module = _Module(name, is_package, {}, {})
        self._collect(tree.body, module)
        return module

    def _collect(self, body, module: _Module) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.definitions.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            module.definitions.setdefault(leaf.id, []).append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module.imports.update(self._bindings(node, module))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for part in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []),
                             *(handler.body for handler in getattr(node, "handlers", []))):
                    self._collect(part, module)

    def _bindings(self, node, module: _Module) -> dict:
        """The names an import statement binds: ('module', name) or ('attr', module, attribute)."""
        bound = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = ("module", alias.name)
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = ("module", top)
            return bound
        source = node.module or ""
        if node.level:     # relative: from the module's package upwards
            package = module.name.split(".")
            package = package if module.is_package else package[:-1]
            package = package[:len(package) - node.level + 1]
            source = ".".join(package + ([node.module] if node.module else []))
        for alias in node.names:
            if alias.name == "*":
                continue
            bound[alias.asname or alias.name] = ("attr", source, alias.name)
        return bound

    def _resolve(self, module: str, name: str, seen=None):
        """What `name` in `module` is: ('symbol', module, name), ('module', module),
        ('package', top-level third-party name) or None (stdlib, builtin, unknown)."""
        seen = seen or set()
        if (module, name) in seen:
            return None
        seen.add((module, name))
        parsed = self._module(module) if self._in_package(module) else self._modules.get(module)
        if parsed is None:
            return None
        if name in parsed.definitions:
            return ("symbol", module, name)
        if name in parsed.imports:
            return self._resolve_binding(parsed.imports[name], seen)
        if parsed.is_package and self._module(f"{module}.{name}") is not None:
            return ("module", f"{module}.{name}")
        return None

    def _resolve_binding(self, binding, seen=None):
        if binding[0] == "module":
            return self._module_reference(binding[1])
        _, source, attribute = binding
        if not self._in_package(source):
            return self._module_reference(source)
        if self._module(f"{source}.{attribute}") is not None:       # `from diffsweep import metrics`
            return ("module", f"{source}.{attribute}")
        return self._resolve(source, attribute, seen)

    def _module_reference(self, name: str):
        if self._in_package(name):
            return ("module", name) if self._module(name) is not None else None
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            return None
        return ("package", top)

    # --- symbols ---------------------------------------------------------------------------

    def _expand(self, root: tuple) -> list[tuple]:
        module, name = root
        if name == "*":
            parsed = self._module(module)
            return [(module, defined) for defined in sorted(parsed.definitions)] if parsed else [root]
        return [root]

    def _symbol(self, symbol: tuple) -> tuple:
        """(normalised source, reached symbols, third-party packages) of one definition, cached."""
        if symbol not in self._symbols:
            self._symbols[symbol] = self._analyse(*symbol)
        return self._symbols[symbol]

    def _analyse(self, module: str, name: str) -> tuple:
        parsed = self._module(module) if self._in_package(module) else self._modules.get(module)
        nodes = self._nodes(parsed, name) if parsed is not None else []
        if not nodes:      # deterministic: a name the source does not define
            return (f"<not found: {module}:{name}>", frozenset(), frozenset())
        local = {}
        for node in nodes:       # imports inside the definition bind names too
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    local.update(self._bindings(inner, parsed))
        edges, packages = set(), set()
        for node in nodes:
            _References(self, module, local, edges, packages).visit(node)
        text = "\n".join(ast.unparse(node) for node in nodes)
        return (text, frozenset(edges), frozenset(packages))

    @staticmethod
    def _nodes(parsed: _Module, name: str) -> list:
        top, _, member = name.partition(".")
        nodes = parsed.definitions.get(top, [])
        if not member:
            return nodes
        return [inner for node in nodes if isinstance(node, ast.ClassDef) for inner in node.body
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)) and inner.name == member]

    def _reach_module(self, module: str) -> set:
        parsed = self._module(module)
        return {(module, defined) for defined in parsed.definitions} if parsed else set()


class _References(ast.NodeVisitor):
    """Collects the definitions and packages the names of one definition reach."""

    def __init__(self, fingerprinter: Fingerprinter, module: str, local: dict, edges: set, packages: set):
        self.fp, self.module, self.local, self.edges, self.packages = fingerprinter, module, local, edges, packages

    def _name(self, name: str):
        if name in self.local:
            return self.fp._resolve_binding(self.local[name])
        return self.fp._resolve(self.module, name)

    def _add(self, target) -> None:
        if target is None:
            return
        if target[0] == "symbol":
            if target[1] not in NOT_FOLLOWED:
                self.edges.add((target[1], target[2]))
        elif target[0] == "package":
            self.packages.add(target[1])
        elif target[0] == "module" and target[1] not in NOT_FOLLOWED:   # a module used as a value: all of it
            self.edges.update(self.fp._reach_module(target[1]))

    def _chain(self, node):
        """What `a.b.c` reaches, when `a` names a module; None when it does not start at a module."""
        names = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        target = self._name(node.id)
        if target is None or target[0] != "module":
            return None
        for attribute in reversed(names):
            if target[0] != "module":
                break
            resolved = self.fp._resolve(target[1], attribute)
            if resolved is None:
                return ("symbol", target[1], attribute)    # recorded as not found: still deterministic
            target = resolved
        return target

    def visit_Attribute(self, node):
        target = self._chain(node)
        if target is None:
            self.generic_visit(node)
        else:
            self._add(target)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self._add(self._name(node.id))

    def visit_Call(self, node):
        # getattr(module, "name") reaches that name; getattr(module, anything else) the whole module
        if (isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)):
            target = self._name(node.args[0].id)
            attribute = node.args[1]
            if target is not None and target[0] == "module" and isinstance(attribute, ast.Constant) \
                    and isinstance(attribute.value, str):
                self._add(self.fp._resolve(target[1], attribute.value) or ("symbol", target[1], attribute.value))
                for rest in node.args[2:]:
                    self.visit(rest)
                return
        self.generic_visit(node)

    def visit_Import(self, node):   # bindings were collected; the statement itself reaches nothing
        pass

    visit_ImportFrom = visit_Import


def _normalise(tree):
    """The parsed file without docstrings, nor the `description=` of its decorators (in place)."""
    for inner in ast.walk(tree):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = inner.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                inner.body = body[1:] or [ast.Pass()]
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in inner.decorator_list:
                if isinstance(decorator, ast.Call):
                    decorator.keywords = [k for k in decorator.keywords if k.arg != "description"]
    return tree


# Import names whose distribution is named otherwise (the general lookup below reads every
# installed distribution's file list: about a second).
DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "PyYAML"}


@functools.lru_cache(maxsize=None)
def _version(package: str) -> str | None:
    """The installed version of an import name's distribution, None when it is not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(package, package))
    except importlib.metadata.PackageNotFoundError:
        pass
    for distribution in _distributions().get(package, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    return importlib.metadata.packages_distributions()


# --- the installed package's fingerprints, cached per process -----------------------------------

_source_root = None     # the tree `default()` reads (use_source); None: the imported package's


@functools.lru_cache(maxsize=1)
def default() -> Fingerprinter:
    return Fingerprinter(_source_root)


def use_source(root) -> None:
    """From now on fingerprint the tree under `root` (the folder holding `diffsweep/`), read afresh:
    the Snakefile's parse names the src/ its jobs import, which need not be the package this
    process imported (a test, an installed copy), and is read anew at every parse (in one process)."""
    global _source_root
    _source_root = root
    for cached in (default, draw_fingerprint, evaluate_fingerprint, training_fingerprint, of_key):
        cached.cache_clear()


def of_function(fn) -> str:
    """The digest of a function's code and of what it reaches in diffsweep."""
    return default().of_function(fn).digest


@functools.lru_cache(maxsize=None)
def draw_fingerprint(kind: str, family: str, schedule: str, source: str, operator: str | None = None) -> Fingerprint:
    """What draws a run's samples (Fingerprinter.draw), from the installed package, once per process."""
    return default().draw(kind, family, schedule, source, operator)


@functools.lru_cache(maxsize=None)
def evaluate_fingerprint(kind: str) -> Fingerprint:
    """What evaluates a run's samples (Fingerprinter.evaluate), from the installed package, once per process."""
    return default().evaluate(kind)


@functools.lru_cache(maxsize=1)
def training_fingerprint() -> Fingerprint:
    """What trains a `trained` score source (Fingerprinter.training), from the installed package, once per process."""
    return default().training()


def draw(kind: str, family: str, schedule: str, source: str, operator: str | None = None) -> str:
    """The digest of what draws a run's samples (Fingerprinter.draw)."""
    return draw_fingerprint(kind, family, schedule, source, operator).digest


def evaluate(kind: str) -> str:
    """The digest of what evaluates a run's samples (Fingerprinter.evaluate)."""
    return evaluate_fingerprint(kind).digest


def source_of(model: dict) -> str:
    """The `source` argument of `draw` for a run's score source (a run's identity["model"])."""
    return f"pretrained:{model['recipe']['format']}" if model["source"] == "pretrained" else model["source"]


def key_of_params(identity: dict) -> tuple:
    """(kind, family, schedule, source, operator): what a run's fingerprints depend on, from what its id
    hashes (`grid.RunSpec.identity()`, a record's `params`): its kind is the one whose method it names."""
    from diffsweep.runs import kinds
    kind = next(kind for kind in kinds.KINDS.entries() if kind.method in identity)
    method = identity[kind.method]
    operator = identity["task"]["operator"] if "task" in identity else None
    return kind.name, method["family"], method["schedule"], source_of(identity["model"]), operator


def key_of_run(run) -> tuple:
    """The same key of a `grid.RunSpec` without building its identity (the parse, at 100k runs)."""
    return (run.kind, run.family, run.schedule, source_of({"source": run.model.source, "recipe": run.model.recipe}),
            run.task.operator if run.task is not None else None)


@functools.lru_cache(maxsize=None)
def of_key(key: tuple) -> dict:
    """The fields `code_draw` and `code_evaluate` of a run with this key (key_of_params, key_of_run);
    cached: do not change the dict."""
    return {"code_draw": draw(*key), "code_evaluate": evaluate(key[0])}


def of_params(identity: dict) -> dict:
    """The record fields `code_draw` and `code_evaluate` of a run, from what its id hashes."""
    return of_key(key_of_params(identity))


def of_run(identity: dict) -> tuple[Fingerprint, Fingerprint]:
    """The draw and evaluate fingerprints of a run, from what its id hashes."""
    key = key_of_params(identity)
    return draw_fingerprint(*key), evaluate_fingerprint(key[0])


def record_fields(identity: dict) -> dict:
    """What a run's record stores of its code: `code_draw`, `code_evaluate` and `code_packages`, the
    third-party packages both reach with their installed versions ({name: version or None})."""
    drawn, evaluated = of_run(identity)
    return {"code_draw": drawn.digest, "code_evaluate": evaluated.digest,
            "code_packages": {name: version for fp in (drawn, evaluated) for name, version in fp.packages}}
