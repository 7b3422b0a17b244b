"""The warehouse remembers the as_of_date it was built for (macros/as_of_date.sql), on
DuckDB and PostgreSQL: after a build of the sample at 2017-04-30 (what `make demo` does),
a plain `dbt build` or `runner build` without the var leaves the YTD, recency and
engagement marts exactly as they were; `--vars '{as_of_date: today}'` goes back to the
calendar, for good; unit tests never see the remembered date. The demo's quiet build
(`--log-file`) is checked on the way: dbt's lines in the file, progress and a summary
on the terminal, no colour codes, and exactly the two warnings the demo explains."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR
from runner.as_of import AS_OF_ENV, AsOf, as_of_to_environment, build_as_of, var_in_args
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import invoke_dbt
from runner.warehouse import connect

DBT = Path(sys.executable).with_name("dbt")
# The marts evaluated at as_of_date, with the order that makes their rows comparable.
AS_OF_MARTS = {
    "customer_ytd_spend": "customer_id, month_start",
    "customer_days_since_last_purchase": "customer_id",
    "customer_engagement": "customer_id",
}
SELECT_AS_OF_MARTS = ["--select", " ".join(AS_OF_MARTS)]
# The warnings `make demo` explains (Makefile): the sample's future-dated app events and
# its crm_products file, 2 of whose 5 rows are quarantined.
DEMO_WARNINGS = {
    "assert_no_app_events_after_as_of_date",
    "customer_analytics_quarantined_share_below_data_quality__var_quarantine_warn_share_0_05_",
}
UNIT_TEST = """
unit_tests:
  - name: recency_without_an_as_of_override
    description: No overrides, so as_of_date is today's date, whatever the warehouse remembers.
    model: customer_days_since_last_purchase
    given:
      - input: ref('int_customer_versions_merged')
        rows:
          - {{customer_id: b, is_current: true}}
      - input: ref('fct_orders')
        rows: []
    expect:
      rows:
        - {{customer_id: b, has_purchased: false, as_of_date: "{today}"}}
"""


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def command(*args: str, cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess:
    """A command as a user runs it, in its own process, its output piped (no terminal)."""
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return done


def runner(*args: str) -> subprocess.CompletedProcess:
    return command(sys.executable, "-m", "runner", *args)


def load_sample(target: str) -> None:
    t = ("--target", target)
    sample = SAMPLE_DIR
    invoke("load", "web-events", str(sample / "web_events.jsonl"), *t)
    invoke(
        "load", "store-customers", str(sample / "store_customers_2017-04-01.csv"),
        "--extract-date", "2017-04-01", "--no-snapshot", *t,
    )  # fmt: skip
    for source, name in [
        ("store-sales", "store_sales.csv"),
        ("crm-customers", "crm_customers.csv"),
        ("crm-interactions", "crm_interactions.csv"),
        ("crm-products", "crm_products.csv"),
        ("app-sessions", "app_sessions.jsonl"),
        ("app-purchases", "app_purchases.csv"),
        ("marketing", "marketing"),
    ]:
        invoke("load", source, str(sample / name), *t)


def as_of_marts(settings: Settings) -> dict[str, list[tuple]]:
    with connect(settings, read_only=True) as warehouse:
        return {
            mart: warehouse.query(f"select * from marts.{mart} order by {order}")[1]
            for mart, order in AS_OF_MARTS.items()
        }


def evaluated_at(settings: Settings) -> set[date]:
    """The as_of dates the recency and engagement marts say they were evaluated at."""
    with connect(settings, read_only=True) as warehouse:
        _, recency = warehouse.query(
            "select distinct as_of_date from marts.customer_days_since_last_purchase"
        )
        _, engagement = warehouse.query(
            "select distinct evaluated_at from marts.customer_engagement"
        )
    return {row[0] for row in recency + engagement}


def remembered_rows(settings: Settings) -> list[tuple]:
    with connect(settings, read_only=True) as warehouse:
        return warehouse.query("select as_of_date from raw.as_of_date")[1]


def unit_test_project(tmp_path: Path, today: date) -> Path:
    """A copy of the dbt project with one more unit test, which has no var overrides."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(PROJECT_DIR / "dbt_project.yml", copy)
    for folder in ("models", "macros", "seeds", "snapshots", "tests"):
        shutil.copytree(PROJECT_DIR / folder, copy / folder)
    folder = copy / "models" / "marts" / "customers"
    (folder / "_as_of_check__unit_tests.yml").write_text(
        UNIT_TEST.format(today=today.isoformat()), encoding="utf-8"
    )
    return copy


def test_the_warehouse_remembers_the_as_of_date_it_was_built_for(
    settings: Settings, target: str, tmp_path: Path
):
    load_sample(target)
    log_file = tmp_path / "demo-build.log"
    built = runner(
        "build", "--target", target, "--log-file", str(log_file),
        "--", "--vars", "{as_of_date: 2017-04-30}",
    )  # fmt: skip
    assert "as_of_date 2017-04-30 (given with --vars" in built.stderr
    # The freshness check ran first (on the build's parse, runner.dbt_invoke.parse_for_build)
    # and reported the sources the sample does not fill, not those it just loaded.
    stale = built.stderr.split("Stale sources (dbt source freshness):\n")[1].split("Building")[0]
    assert "raw.attribution_runs: never loaded (warn)" in stale, built.stderr
    assert "raw.web_events" not in stale
    # dbt wrote the build's artifacts, manifest.json naming the build's invocation.
    artifacts = Path(os.environ["DBT_TARGET_PATH"])
    results = json.loads((artifacts / "run_results.json").read_text())
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert results["args"]["which"] == "build" and len(results["results"]) > 300
    assert manifest["metadata"]["invocation_id"] == results["metadata"]["invocation_id"]
    assert (artifacts / "sources.json").is_file()
    # Quiet: dbt's per-node lines are in the file, not on the terminal, which has a
    # summary line naming the file and the nodes that warned; no colour codes anywhere.
    assert " START " not in built.stdout + built.stderr
    assert re.search(r"\d+ of \d+ START sql table model marts\.customer_ltv", log_file.read_text())
    assert re.search(r"dbt build: \d+ nodes in \d+ s: \d+ passed, 2 warned, 0 failed", built.stderr)
    assert str(log_file) in built.stderr
    warned = set(re.findall(r"^    warned: test (\S+):", built.stderr, re.MULTILINE))
    assert warned == DEMO_WARNINGS, built.stderr
    assert "\x1b" not in built.stdout + built.stderr + log_file.read_text()

    demo = as_of_marts(settings)
    assert evaluated_at(settings) == {date(2017, 4, 30)}
    assert remembered_rows(settings) == [(date(2017, 4, 30),)]

    # A unit test without overrides gets today's date, not the remembered one.
    today = date.today()
    copy = unit_test_project(tmp_path, today)
    command(
        str(DBT), "test", "--select", "recency_without_an_as_of_override",
        "--project-dir", str(copy), "--target", target,
        "--target-path", str(tmp_path / "copy-target"), "--log-path", str(tmp_path / "copy-logs"),
        cwd=copy,
    )  # fmt: skip

    # Plain dbt, no var: the marts are exactly what the build at 2017-04-30 made.
    command(str(DBT), "build", *SELECT_AS_OF_MARTS, "--target", target)
    assert as_of_marts(settings) == demo
    # The runner, no var: the same, and it says why.
    again = runner("build", "--target", target, "--no-freshness", "--", *SELECT_AS_OF_MARTS)
    assert "as_of_date 2017-04-30 (remembered from an earlier build" in again.stderr
    assert as_of_marts(settings) == demo
    # Not quiet, but piped: dbt's own lines without colour codes.
    assert " START " in again.stdout and "\x1b" not in again.stdout + again.stderr

    # today goes back to the calendar, and later builds without the var stay there.
    days = {today, date.today()}
    reset = runner(
        "build", "--target", target, "--no-freshness",
        "--", *SELECT_AS_OF_MARTS, "--vars", "{as_of_date: today}",
    )  # fmt: skip
    assert "(--vars as_of_date: today; the remembered date is forgotten)" in reset.stderr
    assert remembered_rows(settings) == []
    assert evaluated_at(settings) <= days | {date.today()}
    later = runner("build", "--target", target, "--no-freshness", "--", *SELECT_AS_OF_MARTS)
    assert "(today: no as_of_date given, none remembered)" in later.stderr
    assert evaluated_at(settings) <= days | {date.today()}


def test_var_in_args_reads_dbt_vars_in_every_spelling():
    assert var_in_args(["--vars", "{as_of_date: 2017-04-30}"]) == date(2017, 4, 30)
    assert var_in_args(["--select", "x", '--vars={"as_of_date": "today"}']) == "today"
    assert var_in_args(["--vars", "{ltv_timeframe: dataset}"]) is None
    assert var_in_args(["--vars", "{as_of_date: ''}"]) is None
    assert var_in_args(["--select", "as_of_date"]) is None


def test_the_runner_passes_an_as_of_date_to_dbt_in_the_environment(tmp_path: Path):
    given = ["--select", "x", "--vars", "{as_of_date: 2017-04-30, bi_role: analyst}"]
    assert as_of_to_environment(given, PROJECT_DIR) == (
        ["--select", "x", "--vars", json.dumps({"bi_role": "analyst"})],
        "2017-04-30",
    )
    assert as_of_to_environment(["--vars={as_of_date: today}", "-x"], PROJECT_DIR) == (
        ["-x"],
        "today",
    )
    others = ["--vars", "{bi_role: analyst}"]
    assert as_of_to_environment(others, PROJECT_DIR) == (others, None)
    # dbt_project.yml setting as_of_date would win over the environment: left to the var.
    (tmp_path / "dbt_project.yml").write_text("vars:\n  as_of_date: 2017-01-31\n")
    assert as_of_to_environment(given, tmp_path) == (given, None)


def test_a_new_as_of_date_keeps_dbts_partial_parsing(settings: Settings):
    """A daily build gives a new as_of_date: dbt parses only the files that read it, not the
    whole project again (what a changed --vars costs), and the variable does not outlive
    the call."""
    perf_info = Path(os.environ["DBT_TARGET_PATH"]) / "perf_info.json"
    for day in ("2017-04-30", "2017-05-01", "today"):
        invoke_dbt(settings, ["parse"], ["--vars", f"{{as_of_date: {day}}}"])
        parsed = json.loads(perf_info.read_text())
    assert parsed["is_partial_parse_enabled"]
    assert parsed["parsed_path_count"] < parsed["path_count"] / 4, parsed
    assert AS_OF_ENV not in os.environ


def test_build_as_of_prefers_the_var_then_the_remembered_date(settings: Settings):
    today = date(2026, 12, 1)
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        assert build_as_of(warehouse, settings, [], today) == AsOf(today, "calendar")
        remembered = settings.relation("raw", "as_of_date")
        warehouse.execute(f"insert into {remembered} values ('2017-04-30', current_timestamp)")
        assert build_as_of(warehouse, settings, [], today) == AsOf(date(2017, 4, 30), "remembered")
        given = ["--vars", "{as_of_date: 2017-01-31}"]
        assert build_as_of(warehouse, settings, given, today) == AsOf(date(2017, 1, 31), "var")
        reset = ["--vars", "{as_of_date: today}"]
        assert build_as_of(warehouse, settings, reset, today) == AsOf(today, "today")


def test_an_as_of_date_that_is_not_a_date_is_refused_before_the_build():
    result = CliRunner().invoke(
        cli, ["build", "--no-freshness", "--", "--vars", "{as_of_date: 30/04/2017}"]
    )
    assert result.exit_code == 1
    assert "as_of_date must be YYYY-MM-DD or today, got '30/04/2017'" in result.output
