"""Every dbt var the project documents builds: `runner build -- --vars '{NAME: VALUE}'` with
a value other than the default passes, on the whole sample, every test included. Unit
tests pin the vars they assume (`overrides: vars:`), so a var given to the build does not
reach them.

The sample is loaded once per target (module scope); one build sets every var at once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner

from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR
from python_tests.postgres import throwaway_database
from runner.cli import cli

# Each documented var with a value other than its default (see dbt_project.yml).
VARS = {
    "ltv_timeframe": "dataset",
    "ltv_lifespan_years": "3",
    "as_of_date": "2017-04-30",
    "engagement_window_weeks": "4",
    "low_spend_threshold": "50",
    "high_activity_threshold": "2",
    "quarantine_warn_share": "0.01",
    "incremental_lookback_days": "30",
    "bi_role": "analysts",
    # one more production target: duckdb and postgres still write the plain schemas
    "production_targets": "[duckdb, postgres, ci]",
}
# One build sets every var at once (a unit test that inherits any of them fails it; the
# README's example, ltv_timeframe: dataset, is one of them). PostgreSQL: every var but
# bi_role, whose role would be created on the whole server (roles are not per database)
# and outlive the test.
BUILDS = [
    pytest.param("duckdb", tuple(VARS), id="duckdb-every-var"),
    pytest.param(
        "postgres",
        tuple(name for name in VARS if name != "bi_role"),
        id="postgres-every-var",
        marks=pytest.mark.postgres,
    ),
]


def sample_loads() -> list[list[str]]:
    """The `runner load` commands of `make demo`, in its order."""
    extracts = sorted(SAMPLE_DIR.glob("store_customers_*.csv"))
    return [
        ["web-events", str(SAMPLE_DIR / "web_events.jsonl")],
        *(
            ["store-customers", str(path), "--extract-date", path.stem.rsplit("_", 1)[1]]
            for path in extracts
        ),
        ["store-sales", str(SAMPLE_DIR / "store_sales.csv")],
        ["crm-customers", str(SAMPLE_DIR / "crm_customers.csv")],
        ["crm-interactions", str(SAMPLE_DIR / "crm_interactions.csv")],
        ["crm-products", str(SAMPLE_DIR / "crm_products.csv")],
        ["app-sessions", str(SAMPLE_DIR / "app_sessions.jsonl")],
        ["app-purchases", str(SAMPLE_DIR / "app_purchases.csv")],
        ["marketing", str(SAMPLE_DIR / "marketing")],
    ]


@pytest.fixture(scope="module")
def sample_warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], dict[str, str]]]:
    """A warehouse per target with the whole sample loaded (made on first use): the
    environment variables that point the runner at it."""
    made: dict[str, dict[str, str]] = {}
    with ExitStack() as stack:

        def warehouse(target: str) -> dict[str, str]:
            if target not in made:
                if target == "postgres":
                    server = request.getfixturevalue("pg_server")
                    env = server.env(stack.enter_context(throwaway_database(server)))
                else:
                    folder = tmp_path_factory.mktemp("vars")
                    env = {"DUCKDB_PATH": str(folder / "warehouse.duckdb")}
                for load in sample_loads():
                    result = CliRunner().invoke(cli, ["load", *load, "--target", target], env=env)
                    assert result.exit_code == 0, result.output
                made[target] = env
            return made[target]

        yield warehouse


def test_every_var_the_project_reads_is_built():
    used = set()
    for folder in ("models", "macros", "snapshots"):
        for path in (PROJECT_DIR / folder).rglob("*"):
            if path.suffix in {".sql", ".yml"}:
                used |= set(re.findall(r"(?<!\w)var\(\s*['\"](\w+)['\"]", path.read_text("utf-8")))
    project = (PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8")
    used |= set(re.findall(r"(?<!\w)var\(\s*['\"](\w+)['\"]", project))
    block = project.split("\nvars:\n", 1)[1].split("\n\n", 1)[0]
    declared = set(re.findall(r"^  #? ?(\w+):", block, re.MULTILINE))
    assert used == set(VARS), used ^ set(VARS)
    assert declared <= set(VARS), declared - set(VARS)


@pytest.mark.usefixtures("with_unit_tests")
@pytest.mark.parametrize(("target", "names"), BUILDS)
def test_a_build_with_documented_vars_passes(
    sample_warehouse: Callable[[str], dict[str, str]],
    target: str,
    names: tuple[str, ...],
    tmp_path: Path,
):
    env = sample_warehouse(target)
    dbt_vars = "{" + ", ".join(f"{name}: {VARS[name]}" for name in names) + "}"  # as the README
    build = ["build", "--no-freshness", "--target", target, "--", "--vars", dbt_vars]
    result = subprocess.run(
        [sys.executable, "-m", "runner", *build],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    done = re.search(r"Done\. PASS=[1-9]\d* WARN=\d+ ERROR=0 ", result.stdout)
    assert done, result.stdout[-2000:]
