"""What `runner build --changed` decides to build (runner/builds.py), without dbt: which
builds count as whole, what makes the project's digest change, and the plan from the last
whole build's record. test_incremental.py runs it end to end on both targets."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from python_tests.conftest import PROJECT_DIR
from runner.builds import Record, is_whole, plan_changed, project_digest
from runner.cli import cli

WEB = "source.customer_analytics.web.events"
SALES = "source.customer_analytics.store.sales"
CONTACTS = "source.customer_analytics.app.contacts"  # no loaded_at_field: never dated
AS_OF = date(2017, 4, 30)
LAST = Record(
    started_at=datetime(2017, 5, 1, 6, 0),
    as_of_date=AS_OF,
    project_digest="d1",
    source_loads={WEB: "2017-05-01T05:00:00", SALES: "2017-05-01T05:10:00"},
)


def plan(last: Record | None = LAST, **changes: object):
    given: dict[str, object] = {
        "as_of_date": AS_OF,
        "digest": "d1",
        "newest": dict(LAST.source_loads),
        "all_sources": [WEB, SALES, CONTACTS],
        "unloaded": False,
    }
    given.update(changes)
    return plan_changed(last, **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "whole"),
    [
        ((), True),
        (("--full-refresh", "--vars", "{as_of_date: 2017-04-30}"), True),
        (("--exclude-resource-type", "unit_test"), True),
        (("--exclude-resource-type", "test", "--exclude-resource-type=unit_test"), True),
        (("--exclude-resource-type", "model"), False),
        (("--select", "customer_ltv+"), False),
        (("-s", "customer_ltv"), False),
        (("--model", "customer_ltv"), False),
        (("--exclude=fct_orders",), False),
        (("--selector", "nightly"), False),
        (("--empty",), False),
        (("--exclude-resource-type", "test", "unit_test"), True),
        (("--exclude-resource-type", "unit_test", "seed", "--full-refresh"), False),
    ],
)
def test_a_build_is_whole_only_when_it_builds_every_model(args: tuple[str, ...], whole: bool):
    assert is_whole(args, environ={}) is whole


@pytest.mark.parametrize(
    ("args", "environ", "whole"),
    [
        ((), {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test test"}, True),
        ((), {"DBT_EXCLUDE_RESOURCE_TYPES": "model"}, False),
        ((), {"DBT_RESOURCE_TYPES": "model"}, False),
        ((), {"DBT_EMPTY": "true"}, False),
        ((), {"DBT_EMPTY": "0"}, True),
        ((), {"DBT_SAMPLE": "3 days"}, False),
        # an option given replaces its environment variable, as in dbt
        (("--exclude-resource-type", "test"), {"DBT_EXCLUDE_RESOURCE_TYPES": "model"}, True),
    ],
)
def test_the_options_dbt_reads_from_the_environment_count_too(
    args: tuple[str, ...], environ: dict[str, str], whole: bool
):
    assert is_whole(args, environ=environ) is whole


def test_only_the_sources_with_a_new_load_and_the_undated_ones_are_built():
    newer = {**LAST.source_loads, WEB: "2017-05-02T05:00:00"}
    chosen = plan(newest=newer)
    assert chosen.select == "source:web.events+ source:app.contacts+"
    assert "web.events" in chosen.reason and "store.sales" not in chosen.reason


def test_a_source_whose_newest_load_went_back_or_failed_its_check_is_built():
    older = plan(newest={**LAST.source_loads, SALES: "2017-04-01T00:00:00"})
    assert older.select is not None and "source:store.sales+" in older.select
    failed = plan(newest={**LAST.source_loads, WEB: None})
    assert failed.select is not None and "source:web.events+" in failed.select
    new_source = plan(newest={**LAST.source_loads, "source.customer_analytics.crm.customers": "x"})
    assert new_source.select is not None and "source:crm.customers+" in new_source.select


def test_no_new_load_builds_nothing():
    chosen = plan()
    assert chosen.nothing and "nothing to build" in chosen.reason


@pytest.mark.parametrize(
    ("last", "changes", "why"),
    [
        (None, {}, "no whole build is recorded"),
        (LAST, {"as_of_date": date(2017, 5, 1)}, "as_of_date moved from 2017-04-30 to 2017-05-01"),
        (LAST, {"digest": "d2"}, "project's files or vars changed"),
        (LAST, {"unloaded": True}, "taken back"),
    ],
)
def test_what_cannot_be_scoped_builds_everything(
    last: Record | None, changes: dict[str, object], why: str
):
    newer = {**LAST.source_loads, WEB: "2017-05-02T05:00:00"}
    chosen = plan(last, **{"newest": newer, **changes})
    assert chosen.select is None and not chosen.nothing
    assert why in chosen.reason and "building everything" in chosen.reason


def test_the_digest_changes_with_a_model_a_seed_or_the_vars_and_not_with_data(tmp_path: Path):
    project = tmp_path / "project"
    for part in ("dbt_project.yml", "models", "macros", "seeds", "snapshots", "tests"):
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(source, project / part)
        elif source.exists():
            project.mkdir(exist_ok=True)
            shutil.copy(source, project / part)
    (project / "data").mkdir()
    first = project_digest(project, ())
    (project / "data" / "new_file.csv").write_text("a,b\n", encoding="utf-8")
    assert project_digest(project, ()) == first  # data files are not the project
    assert project_digest(project, ("--vars", "{quarantine_warn_share: 0.1}")) != first
    # as_of_date is compared on its own; the rest of --vars however it is written
    assert project_digest(project, ("--vars", "{as_of_date: 2017-04-30}")) == first
    assert project_digest(
        project, ("--vars={quarantine_warn_share: 0.1, as_of_date: 2017-04-30}",)
    ) == project_digest(project, ("--vars", '{"quarantine_warn_share":  0.1}'))
    model = next((project / "models").rglob("customer_ltv.sql"))
    model.write_text(model.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    edited = project_digest(project, ())
    assert edited != first
    seed = next((project / "seeds").rglob("*.csv"))
    seed.write_text(seed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert project_digest(project, ()) != edited


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--changed", "--", "--select", "customer_ltv"),
            "--changed chooses the nodes to build itself; it cannot be given --select.",
        ),
        (
            ("--changed", "--no-freshness"),
            "--changed finds the new loads with the freshness check: drop --no-freshness.",
        ),
    ],
)
def test_changed_refuses_what_contradicts_it_before_touching_the_warehouse(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "never.duckdb"))
    result = CliRunner().invoke(cli, ["build", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "never.duckdb").exists()
