"""The kind of a run is a registered thing (diffsweep.runs.kinds): code that treats the kinds
differently asks a kind's entry, so the kind names appear as strings only in their entries and
as config keys. Text only, nothing imported."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIND_STRING = re.compile(r"""["'](generation|restoration)["']""")
CONFIG_KEY = re.compile(r"""(\.get\(|\[)["']restoration["']""")     # the config section of that name


def test_the_kind_names_appear_only_in_the_kind_registry_and_as_config_keys():
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "workflow").rglob("*.smk")),
             ROOT / "Snakefile", *sorted((ROOT / "scripts").glob("*.py"))]
    switches = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                for path in files if path.name != "kinds.py"
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if KIND_STRING.search(CONFIG_KEY.sub("", line))]
    assert not switches, "a kind name outside diffsweep.runs.kinds (ask the kind's entry):\n" + "\n".join(switches)
    assert KIND_STRING.search((ROOT / "src" / "diffsweep" / "runs" / "kinds.py").read_text())


def test_every_kind_has_its_table_section_and_job():
    from diffsweep.runs import kinds

    assert kinds.names() == ["generation", "restoration"]
    for kind in kinds.KINDS.entries():
        assert kind.table == f"tables/{kind.name}.parquet" and kind.row_keys[0] == "run_id"
        assert kind.job().__name__.lower() == kind.name
