"""`dbt build` with every test, from an empty warehouse, on DuckDB and PostgreSQL, and
the marts checked against an independent Python computation of the same rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from python_tests.conftest import SAMPLE_DIR
from python_tests.reference import classify, customer_ltv
from runner.cli import cli
from runner.config import Settings
from runner.warehouse import connect

SAMPLE = SAMPLE_DIR / "web_events.jsonl"


def runner_command(*args: str) -> subprocess.CompletedProcess:
    """The installed command as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.usefixtures("with_unit_tests")
def test_build_from_empty_warehouse_then_with_the_sample(settings: Settings, target: str):
    empty = runner_command("build", "--target", target)
    assert empty.returncode == 0, empty.stdout[-3000:] + empty.stderr[-3000:]

    loaded = runner_command("load", "web-events", str(SAMPLE), "--target", target)
    assert loaded.returncode == 0, loaded.stderr
    built = runner_command("build", "--target", target)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "Completed successfully" in built.stdout
    # Every unit test ran, and passed (the other tests' builds leave them out: conftest).
    artifacts = Path(os.environ["DBT_TARGET_PATH"])
    results = json.loads((artifacts / "run_results.json").read_text())
    unit_tests = [r for r in results["results"] if r["unique_id"].startswith("unit_test.")]
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert len(unit_tests) == len(manifest["unit_tests"]) > 30
    assert {r["status"] for r in unit_tests} == {"pass"}

    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    expected_reasons = Counter(classify(line) for line in lines if line.strip())
    expected_ltv = customer_ltv(lines)

    with connect(settings) as warehouse:
        _, quarantined = warehouse.query(
            "select reason, count(*) from staging.stg_web__events_quarantine group by reason"
        )
        _, counts = warehouse.query(
            "select (select count(*) from raw.web_events), "
            "(select count(*) from staging.stg_web__events), "
            "(select count(*) from staging.stg_web__events_quarantine)"
        )
        _, ltv_rows = warehouse.query(
            "select customer_id, weeks_active, site_visits, orders, total_revenue, ltv, ltv_rank "
            "from marts.customer_ltv"
        )

    raw, valid, quarantine = counts[0]
    assert raw == valid + quarantine == sum(expected_reasons.values())
    assert valid == expected_reasons[None]
    assert dict(quarantined) == {k: v for k, v in expected_reasons.items() if k is not None}

    actual = {row[0]: row[1:6] for row in ltv_rows}
    assert actual == {
        customer: (e.weeks_active, e.site_visits, e.orders, e.total_revenue, e.ltv)
        for customer, e in expected_ltv.items()
    }
    ranked = sorted(ltv_rows, key=lambda row: row[6])
    assert [row[6] for row in ranked] == list(range(1, len(ranked) + 1))
    assert ranked == sorted(ltv_rows, key=lambda row: (-row[5], row[0]))

    top = CliRunner().invoke(cli, ["top-ltv", "3", "--format", "json", "--target", target])
    assert top.exit_code == 0, top.output
    records = json.loads(top.output)
    assert [r["customer_id"] for r in records] == [row[0] for row in ranked[:3]]
    assert [Decimal(r["ltv"]) for r in records] == [row[5] for row in ranked[:3]]


def test_a_failing_build_exits_non_zero(settings: Settings, target: str):
    result = runner_command("build", "--target", target, "--", "--vars", "{ltv_timeframe: forever}")
    assert result.returncode != 0
    assert "ltv_timeframe must be 'customer' or 'dataset'" in result.stdout
    assert "dbt build failed" in result.stderr


@pytest.mark.parametrize(
    ("dbt_args", "message", "last"),
    [
        (
            ["--selct", "foo"],
            "dbt build: No such option '--selct'.",
            "Error: dbt build failed: see dbt's output above.",
        ),
        (  # the runner reads --vars first (for the as_of date), and says so itself
            ["--vars", "{bad"],
            "Error: --vars is not a YAML mapping: while parsing a flow mapping",
            None,  # then YAML's own account of where it broke
        ),
    ],
    ids=["unknown-option", "vars-not-yaml"],
)
def test_a_dbt_usage_error_is_printed(
    settings: Settings, target: str, dbt_args, message: str, last: str | None
):
    result = runner_command("build", "--no-freshness", "--target", target, "--", *dbt_args)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert message in lines, result.stderr  # the error's own words, on a line of their own
    if last is not None:
        assert lines[-1] == last, result.stderr


def test_a_build_parses_once_and_shows_what_a_build_parsing_itself_shows(
    settings: Settings, target: str
):
    """`runner build` parses the project once (`dbt parse`) for the freshness check and the
    build (runner.dbt_invoke.parse_for_build). The terminal shows what it showed when each
    parsed itself: the freshness warnings, then dbt's start and the project's counts once;
    dbt's artifacts are written, manifest.json naming the build's invocation."""
    nothing = ["--select", "tag:bench_selects_nothing", "--vars", "{as_of_date: 2017-04-30}"]
    built = runner_command("build", "--target", target, "--", *nothing)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "raw.web_events: never loaded (warn)" in built.stderr
    for line in ("Running with dbt=", "Registered adapter: ", "Found "):
        assert built.stdout.count(line) == 1, built.stdout
    assert "Performance info" not in built.stdout
    artifacts = Path(os.environ["DBT_TARGET_PATH"])
    results = json.loads((artifacts / "run_results.json").read_text())
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert results["args"]["which"] == "build"
    assert manifest["metadata"]["invocation_id"] == results["metadata"]["invocation_id"]


def test_only_a_build_without_options_that_change_the_parse_shares_it():
    from runner.dbt_invoke import parse_shareable

    assert parse_shareable([])
    assert parse_shareable(
        ["--select", "a", "b+", "--exclude=c", "-s", "tag:x", "--full-refresh", "--threads", "2",
         "--vars", "{as_of_date: 2017-04-30}", "--state", "prod", "--defer"]
    )  # fmt: skip
    for option in ("--no-partial-parse", "--target-path=x", "--warn-error", "--debug", "--selct"):
        assert not parse_shareable(["--select", "a", option]), option


def test_freshness_reports_stale_and_never_loaded_sources(settings: Settings, target: str):
    from runner.dbt_invoke import source_freshness

    loaded = runner_command("load", "web-events", str(SAMPLE), "--target", target)
    assert loaded.returncode == 0, loaded.stderr
    report = source_freshness(settings).problems
    assert "raw.store_sales: never loaded (warn)" in report
    assert not any(line.startswith("raw.web_events") for line in report)

    with connect(settings) as warehouse:  # the web events were landed 5 days ago
        warehouse.execute("update raw.web_events set loaded_at = loaded_at - interval '5 days'")
    stale = [
        line for line in source_freshness(settings).problems if line.startswith("raw.web_events")
    ]
    assert stale == ["raw.web_events: last loaded 5.0 days ago (warn)"]
