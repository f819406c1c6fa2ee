"""The docs check themselves against the code: what docs/design.md names exists, what exists is
named there, and every link and section reference between pages leads somewhere.

- CLI commands: every `diffsweep X` that design.md names (in backticks) is a subcommand of
  cli.build_parser(), and every subcommand is named there.
- Rules: every rule of design.md's rules table (section 4) is a rule of workflow/rules/*.smk or
  the Snakefile (a `plot_*` pattern matching one), every rule is named in design.md, and every
  "rule `X`" of any page is a rule. docs/tables.md's "written by" column names the rule whose
  block declares that file.
- The layout (design.md section 5, read from the page, so that moving a module without updating
  the page fails here): every path it lists exists, every file it names in an entry's description
  exists in that entry's folder, and every module and package of src/diffsweep, every submodule
  of a package, every rule file and every bench script is listed.
- Dotted names in backticks in design.md: each is a config key of workflow/schemas/
  config.schema.yaml (`jobs.fuse`, `samplers.<p>`) or a name of the library (`runs.index`,
  `grid.Grid.shards`), read without importing it.
- Links: every relative Markdown link of README.md and docs/*.md leads to an existing file and,
  with `#anchor`, to a heading of it; every prose reference to a section (`docs/cluster.md,
  "Array jobs"`) in the docs, the library, the workflow and the profiles names a heading of that
  page.

Text only: nothing is run or imported but the CLI's parser.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

from diffsweep import cli

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "diffsweep"
DESIGN = (ROOT / "docs" / "design.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
FILE_SUFFIXES = ("py", "npz", "png", "pdf", "json", "jsonl", "parquet", "txt", "csv", "yaml", "md", "smk", "pt",
                 "archive", "drawing", "tsv")


def section(text: str, heading: str) -> str:
    """The text of the `## heading` section (up to the next heading of its level or above)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"docs/design.md has no section '## {heading}'"
    return match.group(1)


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


# --- CLI commands -------------------------------------------------------------------------

def subcommands() -> set[str]:
    (action,) = [a for a in cli.build_parser()._actions if a.dest == "command"]
    return set(action.choices)


def commands_named_in_design() -> set[str]:
    named = set()
    for span in backticked(DESIGN):
        if span.startswith("diffsweep "):
            named |= {alternative.split()[0] for alternative in span[len("diffsweep "):].split("|")}
    return named


def test_the_cli_commands_design_md_names_exist_and_every_command_is_named():
    named, existing = commands_named_in_design(), subcommands()
    assert named, "no `diffsweep ...` found in docs/design.md"
    assert named <= existing, f"docs/design.md names commands that cli.py lacks: {sorted(named - existing)}"
    assert existing <= named, f"cli.py commands that docs/design.md does not name: {sorted(existing - named)}"


# --- rules --------------------------------------------------------------------------------

def rule_blocks() -> dict[str, str]:
    """rule name -> the text of its block, from workflow/rules/*.smk and the Snakefile; the rules
    studies.smk makes in a loop over the studies registry, study_<name>, by the loop's block."""
    from diffsweep.studies import STUDIES

    blocks = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text()
        starts = list(re.finditer(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M))
        for match, after in zip(starts, [*starts[1:], None]):
            blocks[match.group(1)] = text[match.start():after.start() if after else len(text)]
    studies = (ROOT / "workflow" / "rules" / "studies.smk").read_text()
    assert 'f"study_{_name}"' in studies, "studies.smk no longer names its rules study_<name>"
    blocks.update({f"study_{name}": studies for name in STUDIES.names()})
    return blocks


def matches(pattern: str, names) -> set[str]:
    return {name for name in names if re.fullmatch(re.escape(pattern).replace(r"\*", r"\w+"), name)}


def test_the_rules_table_of_design_md_names_existing_rules_and_every_rule_is_named():
    rules = set(rule_blocks())
    table = section(DESIGN, "4. Rules and paths")
    cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = [name for cell in cells for name in backticked(cell)]
    assert listed, "no rules found in the table of docs/design.md section 4"
    unknown = [name for name in listed if not matches(name, rules)]
    assert not unknown, f"docs/design.md's rules table names rules that do not exist: {unknown}"
    named = {token for token in backticked(DESIGN)} | set(re.findall(r"\brule (\w+)", DESIGN))
    unnamed = sorted(rule for rule in rules if not any(matches(token, [rule]) for token in named))
    assert not unnamed, f"rules that docs/design.md does not name: {unnamed}"


def test_every_rule_a_page_names_exists():
    rules = set(rule_blocks())
    unknown = [(page.name, name) for page in PAGES for name in re.findall(r"(?<!step )\brule `(\w+)`", page.read_text())
               if name not in rules]
    assert not unknown, f"pages name rules that do not exist: {unknown}"


def test_tables_md_names_the_rule_that_writes_each_table():
    blocks = rule_blocks()
    rows = re.findall(r"^\| `results/([^`]+)` \|.*\| rule `(\w+)`", (ROOT / "docs" / "tables.md").read_text(),
                      flags=re.M)
    assert len(rows) >= 5
    wrong = [(path, rule) for path, rule in rows if path.split("<")[0] not in blocks.get(rule, "")]
    assert not wrong, f"docs/tables.md: these files are not outputs of the rule it names: {wrong}"


# --- the layout ---------------------------------------------------------------------------

def layout() -> tuple[dict[str, str], dict[str, str]]:
    """(top-level entry -> description, src/diffsweep entry -> description) of design.md's layout block."""
    block = re.search(r"```\n(.*?)```", section(DESIGN, "5. Layout"), flags=re.S).group(1)
    top, library, current = {}, {}, None
    for line in block.splitlines():
        if not line.strip():
            continue
        if re.match(r"\S", line):
            name, _, description = line.partition(" ")
            current, entries = name, top
        elif re.match(r"  \S", line) and "src/diffsweep/" in top:
            name, _, description = line.strip().partition(" ")
            current, entries = name, library
        else:
            description = line
        entries[current] = (entries.get(current, "") + " " + description.strip()).strip()
    return top, library


def named_files(description: str) -> list[str]:
    """The file and folder names an entry's description lists (`dag_scale.py`, `profiles/slurm/`)."""
    return re.findall(r"(?<![\w./`-])([\w-]+(?:/[\w.-]+)*/|[\w-]+\.(?:py|yaml|smk))(?=[\s,;:)]|$)", description)


def test_every_path_of_the_layout_exists():
    top, library = layout()
    assert "src/diffsweep/" in top and library, "docs/design.md's layout block lists no src/diffsweep/ modules"
    missing = [name for name in top if not (ROOT / name).exists()]
    for name, description in top.items():
        if name.endswith("/") and name != "src/diffsweep/":
            missing += [f"{name}{file}" for file in named_files(description)
                        if not ((ROOT / name / file).exists() or (ROOT / file).exists())]
    for name, description in library.items():
        if not (SRC / name).exists():
            missing.append(f"src/diffsweep/{name}")
        elif name.endswith("/"):
            missing += [f"src/diffsweep/{name}{file}" for file in named_files(description)
                        if not (SRC / name / file).exists()]
    assert not missing, f"docs/design.md's layout lists paths that do not exist: {missing}"


def test_every_module_rule_file_and_bench_script_is_in_the_layout():
    top, library = layout()
    modules = {path.name for path in SRC.glob("*.py")} | {f"{path.parent.name}/" for path in SRC.glob("*/__init__.py")}
    unlisted = sorted(f"src/diffsweep/{name}" for name in modules - set(library))
    for package in (name for name in library if name.endswith("/")):
        words = set(re.findall(r"[\w]+", library[package].replace(".py", "")))
        unlisted += [f"src/diffsweep/{package}{path.name}" for path in sorted((SRC / package).glob("*.py"))
                     if path.stem != "__init__" and path.stem not in words]
    unlisted += [f"workflow/rules/{path.name}" for path in sorted((ROOT / "workflow" / "rules").glob("*.smk"))
                 if f"workflow/rules/{path.name}" not in top]
    unlisted += [f"bench/{path.name}" for path in sorted((ROOT / "bench").glob("*.py"))
                 if path.name not in named_files(top.get("bench/", ""))]
    assert not unlisted, f"docs/design.md's layout does not list: {unlisted}"


# --- dotted names: config keys and library names -------------------------------------------

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_has(parts: list[str]) -> bool:
    node = SCHEMA
    for part in parts:
        while "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
        if part in node.get("properties", {}):
            node = node["properties"][part]
        elif re.fullmatch(r"<\w+>", part) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def bound_names(tree) -> set[str]:
    """Names a module (or class) body binds: definitions, assignments, imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def library_has(parts: list[str]) -> bool:
    """Whether `a.b.C.d` names a module of diffsweep, then a name it binds, then a class member."""
    parts = parts[1:] if parts[0] == "diffsweep" else parts
    path = SRC
    while parts and ((path / parts[0]).is_dir() or (path / f"{parts[0]}.py").exists()):
        path, parts = path / parts[0], parts[1:]
    if path == SRC:
        return False
    if not parts:
        return True
    module = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(module.read_text())
    if parts[0] not in bound_names(tree):
        return False
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if len(parts) > 1 and parts[0] in classes:
        return parts[1] in bound_names(classes[parts[0]])
    return True


def dotted_names(text: str) -> list[str]:
    names = [span for span in backticked(text)
             if re.fullmatch(r"[A-Za-z_]\w*(\.(<\w+>|[A-Za-z_]\w*))+(\(\))?", span)
             and span.rsplit(".", 1)[1] not in FILE_SUFFIXES]
    return [name.removesuffix("()") for name in names]


def library_roots() -> set[str]:
    return {path.stem for path in SRC.glob("*.py")} | {path.name for path in SRC.iterdir() if path.is_dir()} | {
        "diffsweep"}


def test_every_config_key_and_library_name_in_design_md_exists():
    roots = library_roots() | set(SCHEMA["properties"])
    names = [name for name in dotted_names(DESIGN) if name.split(".")[0] in roots]
    assert any(schema_has(name.split(".")) for name in names) and any(library_has(name.split(".")) for name in names)
    unknown = [name for name in names if not (schema_has(name.split(".")) or library_has(name.split(".")))]
    assert not unknown, (f"docs/design.md names config keys (workflow/schemas/config.schema.yaml) or library "
                         f"names (src/diffsweep) that do not exist: {unknown}")


def test_the_name_checks_tell_existing_from_missing():
    assert schema_has(["jobs", "fuse"]) and schema_has(["samplers", "<p>", "family"])
    assert not schema_has(["jobs", "fused"]) and not schema_has(["samplers", "family"])
    assert library_has(["io", "read_json"]) and library_has(["diffsweep", "registry", "Registry", "register"])
    assert not library_has(["io", "no_such_name"]) and not library_has(["registry", "Registry", "no_such_method"])
    assert not library_has(["no_such_module", "index"])


# --- links and section references ---------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    return re.findall(r"^#{1,6} (.+)$", FENCE.sub("", path.read_text()), flags=re.M)


def anchors(path: Path) -> set[str]:
    seen, found = {}, set()
    for heading in headings(path):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and anchor not in anchors(path):
            broken.append(f"{target} (no such heading in {path.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


SECTION_REFERENCE = re.compile(r"([\w/.-]+\.md)(?:#[\w-]+)?\)?,\s+[\"']([^\"']+)[\"']")
REFERRING = [*PAGES, *SRC.rglob("*.py"), *(ROOT / "workflow").rglob("*.smk"), ROOT / "Snakefile",
             ROOT / "workflow" / "schemas" / "config.schema.yaml", *(ROOT / "profiles").rglob("*.yaml"),
             *(ROOT / "scripts").glob("*.py"), ROOT / "Makefile"]


def section_titles(path: Path) -> list[str]:
    """Headings without their section number ("6. Conventions" is "Conventions") and bold paragraph
    leads (`**A job that dies.**`), which the pages use as run-in headings."""
    numbered = [re.sub(r"^\d+(\.\d+)*\.? ", "", heading) for heading in headings(path)]
    return numbered + re.findall(r"^\*\*([^*]+)\*\*", FENCE.sub("", path.read_text()), flags=re.M)


def referenced_page(name: str, where: Path) -> Path | None:
    for candidate in (where.parent / name, ROOT / name, ROOT / "docs" / name):
        if candidate.exists():
            return candidate
    return None


def test_every_section_reference_names_a_heading_of_its_page():
    """`(docs/cluster.md, "Array jobs")`: a heading (or a bold paragraph lead) of cluster.md starts
    with "Array jobs"."""
    wrong, found = [], 0
    for path in REFERRING:
        text = re.sub(r"\s+", " ", re.sub(r"\n\s*#\s*", " ", path.read_text()))
        for name, title in SECTION_REFERENCE.findall(text):
            page = referenced_page(name, path)
            if page is None:
                wrong.append(f"{path.relative_to(ROOT)}: {name} does not exist")
                continue
            found += 1
            if not any(heading.lower().startswith(title.lower()) for heading in section_titles(page)):
                wrong.append(f"{path.relative_to(ROOT)}: {name} has no section '{title}'")
    assert found >= 5, "the section references were not found"
    assert not wrong, "section references to no section: " + "; ".join(wrong)
