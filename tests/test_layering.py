"""The import graph of the library (read with ast, nothing imported): the restoration and sampler
packages sit below the job loop, and the run store the Snakefile reads at parse time imports no
torch. docs/design.md, "Layout", draws the same layers."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffsweep"
JOB_MODULES = ("diffsweep.runs", "diffsweep.jobs")
TORCH_FREE = ("runs/__init__.py", "runs/layout.py", "runs/store.py", "runs/records.py", "runs/join.py", "runs/kinds.py")


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules a file imports (`from a import b` counts as a and a.b)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["restoration", "samplers"])
def test_restorers_and_samplers_import_nothing_from_the_job_modules(package):
    for path in sorted((PACKAGE / package).glob("*.py")):
        above = sorted(name for name in imports(path) if name.startswith(JOB_MODULES))
        assert not above, f"{path.relative_to(PACKAGE)} imports {above}: it must sit below the job loop"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_the_run_store_imports_no_torch_at_module_level(module):
    heavy = sorted(name for name in imports(PACKAGE / module, top_level_only=True)
                   if name.split(".")[0] in ("torch", "numpy", "pandas")
                   or name in ("diffsweep.runs.loop", "diffsweep.runs.source", "diffsweep.runs.fusion",
                               "diffsweep.runs.generation", "diffsweep.runs.restoration"))
    assert not heavy, f"{module} imports {heavy} at module level (the Snakefile imports it at parse time)"


def test_no_function_keeps_a_cache_in_a_mutable_default():
    """A memo is an explicit object (grid.ScheduleMemo), never a default argument shared by every call."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for default in [*node.args.defaults, *node.args.kw_defaults]:
                    if isinstance(default, (ast.Dict, ast.List, ast.Set)) or (
                            isinstance(default, ast.Call) and getattr(default.func, "id", "") in ("dict", "list", "set")):
                        found.append(f"{path.relative_to(PACKAGE)}:{default.lineno}")
    assert not found, f"mutable default arguments: {found}"


def test_the_schedule_memo_resolves_and_checks_each_distinct_schedule_once(monkeypatch):
    from diffsweep import grid, noise

    calls = []
    real_resolve, real_check = noise.resolve_schedule_knobs, noise.check_schedule
    monkeypatch.setattr(noise, "resolve_schedule_knobs", lambda *a, **k: calls.append("resolve") or real_resolve(*a, **k))
    monkeypatch.setattr(noise, "check_schedule", lambda *a, **k: calls.append("check") or real_check(*a, **k))
    memo = grid.ScheduleMemo()
    first = memo.resolve_knobs("karras", {"rho": 7.0}, "samplers.p.")
    first["rho"] = 0.0                           # a copy: the memo keeps its own
    assert memo.resolve_knobs("karras", {"rho": 7.0}, "samplers.p.")["rho"] == 7.0
    assert calls == ["resolve"]
    for _ in range(2):
        memo.check("karras", 10, {"rho": 7.0}, "samplers.p.")
    assert calls.count("check") == 1
    memo.clear()
    memo.check("karras", 10, {"rho": 7.0}, "samplers.p.")
    assert calls.count("check") == 2


def test_no_name_in_the_library_is_called_params():
    """`params` meant four things (knobs, what an id hashes, parameter columns, rule params): each has
    its own name now (knobs, identity, parameter_columns, job_arguments). Snakemake's rule `params:`
    and the record's `params` key are data, not names of the code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            named = (node.id if isinstance(node, ast.Name) else node.arg if isinstance(node, ast.arg)
                     else node.attr if isinstance(node, ast.Attribute)
                     else node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None)
            if named == "params":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"names called params: {found}"
