"""The dbt metadata linter of `make lint` (dbt-score with devtools/dbt_score_rules.py)
fails on a violation: a scratch copy of the project, broken on purpose, is linted
through the Makefile's own `lint-dbt` target."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from python_tests.conftest import PROJECT_DIR

# What `make lint-dbt` needs: the dbt project, the linter's configuration and rules.
COPIED = [
    "Makefile",
    "profiles.yml.example",
    "dbt_project.yml",
    "pyproject.toml",
    "models",
    "macros",
    "tests",
    "seeds",
    "snapshots",
    "devtools/__init__.py",
    "devtools/dbt_score_rules.py",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lint_dbt(project: Path) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), "lint-dbt", f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=False,
    )
    result.stdout = ANSI.sub("", result.stdout + result.stderr)
    return result


def failing_rules(output: str, item: str) -> set[str]:
    """The rules an item fails in dbt-score's plain output (`Model: fct_orders`)."""
    rules: set[str] = set()
    lines = [line for line in output.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.endswith(")") and f" {item} (score:" in line:
            for follower in lines[index + 1 :]:
                found = re.match(r"\s+(?:WARN|ERR) \(\w+\) ([\w.]+):", follower)
                if not found:
                    break
                rules.add(found.group(1).rsplit(".", 1)[-1])
    return rules


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for name in COPIED:
        source, target = PROJECT_DIR / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    return project


def test_metadata_linter_fails_on_a_broken_convention(project_copy: Path):
    marts = project_copy / "models" / "marts" / "customers" / "_customers__models.yml"
    before = lint_dbt(project_copy)
    assert "Project score" in before.stdout, before.stdout
    for item in ("Model: fct_orders", "Model: customer_ltv"):
        assert not failing_rules(before.stdout, item), before.stdout

    # A fact table declared as a reporting table, a mart an exposure reads made
    # protected, a mart column without a description.
    replace_once(
        marts,
        "      meta:\n        mart_kind: fact\n",
        "      meta:\n        mart_kind: reporting\n",
    )
    replace_once(
        marts,
        "    config:\n      access: public\n      contract:\n        enforced: true\n",
        "    config:\n      access: protected\n      contract:\n        enforced: true\n",
    )
    replace_once(
        marts,
        "        description: Distinct site visits (SITE_VISIT page ids) of the customer.\n",
        "        description: ''\n",
    )
    after = lint_dbt(project_copy)

    assert after.returncode != 0, after.stdout
    assert "evaluable score too low" in after.stdout, after.stdout
    assert failing_rules(after.stdout, "Model: fct_orders") == {"mart_name_matches_its_kind"}
    assert failing_rules(after.stdout, "Model: customer_ltv") == {"mart_columns_have_descriptions"}
    assert "exposure_reads_public_models" in failing_rules(
        after.stdout, "Exposure: customer_value_dashboard"
    ), after.stdout
    assert "Make customer_ltv access: public" in after.stdout
