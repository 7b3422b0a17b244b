"""The command line: help, output formats, and errors that say what to do."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.config import Settings
from runner.reports import render


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("build", "load", "top-ltv", "generate", "summary"):
        assert command in result.output
    assert "web-events" in invoke("load", "--help").output


def test_top_ltv_before_any_build_says_what_to_do(tmp_path: Path):
    result = invoke("top-ltv", "5")
    assert result.exit_code == 1
    assert "does not exist yet" in result.output and "runner build" in result.output


def test_top_ltv_on_a_warehouse_without_marts_says_what_to_do(tmp_path: Path):
    sample = tmp_path / "e.jsonl"
    sample.write_text('{"type": "CUSTOMER"}\n', encoding="utf-8")
    assert invoke("load", "web-events", str(sample)).exit_code == 0
    result = invoke("top-ltv", "5")
    assert result.exit_code == 1
    assert "marts.customer_ltv does not exist yet" in result.output


def test_unknown_target_is_a_clear_error():
    result = invoke("top-ltv", "5", "--target", "nowhere")
    assert result.exit_code == 1
    assert "does not have a target named 'nowhere'" in result.output


def test_top_ltv_rejects_a_non_positive_count():
    assert invoke("top-ltv", "0").exit_code == 2


def test_load_reports_a_missing_file():
    result = invoke("load", "web-events", "/nonexistent/events.jsonl")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_generate_writes_loadable_files(tmp_path: Path):
    result = invoke("generate", "--customers", "5", "--seed", "1", "--out", str(tmp_path / "g"))
    assert result.exit_code == 0, result.output
    assert "runner load web-events" in result.output
    loaded = invoke("load", "web-events", str(tmp_path / "g" / "web_events.jsonl"))
    assert loaded.exit_code == 0 and "rows landed" in loaded.output


ROWS = [
    (1, "10001", Decimal("6416.80"), None, datetime(2017, 1, 6, 12, 46, 46)),
    (2, "10002", Decimal("12.00"), 3, datetime(2017, 1, 7)),
]
COLUMNS = ["ltv_rank", "customer_id", "ltv", "visits", "first_event_at"]


def test_json_output_keeps_money_exact():
    records = json.loads(render(COLUMNS, ROWS, "json"))
    assert records[0] == {
        "ltv_rank": 1,
        "customer_id": "10001",
        "ltv": "6416.80",
        "visits": None,
        "first_event_at": "2017-01-06T12:46:46",
    }


def test_csv_output_has_a_header_and_one_line_per_row():
    rows = list(csv.reader(io.StringIO(render(COLUMNS, ROWS, "csv"))))
    assert rows[0] == COLUMNS
    assert rows[1] == ["1", "10001", "6416.80", "", "2017-01-06 12:46:46"]
    assert len(rows) == 3


@pytest.mark.parametrize("fmt", ["table"])
def test_table_output_aligns_columns(fmt: str):
    lines = render(COLUMNS, ROWS, fmt).splitlines()
    assert lines[0].split() == COLUMNS
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].index("6416.80") + len("6416.80") == lines[3].index("12.00") + len("12.00")


def test_data_quality_is_one_line_per_source(settings):
    """`runner summary`'s data-quality table: landed, valid, quarantined, the percent,
    and the most frequent reasons first, the rest counted."""
    from runner.reports import data_quality
    from runner.warehouse import connect

    rows = [
        ("l1", "web_events", "valid", 90),
        ("l2", "web_events", "valid", 5),
        ("l1", "web_events", "missing_key", 2),
        ("l2", "web_events", "missing_key", 1),
        ("l1", "web_events", "invalid_json", 1),
        ("l1", "web_events", "unknown_type", 1),
        ("l1", "web_events", "unknown_verb", 1),
        ("l3", "crm_products", "valid", 3),
        ("l3", "crm_products", "missing_product", 1),
        ("l3", "crm_products", "unparseable_month", 1),
        ("l4", "session_costs", "valid", 7),
    ]
    with connect(settings) as warehouse:
        warehouse.execute("create schema if not exists marts")
        warehouse.execute(
            "create table marts.data_quality (load_id varchar, source_table varchar, "
            "outcome varchar, row_count bigint)"
        )
        for row in rows:
            warehouse.execute("insert into marts.data_quality values (?, ?, ?, ?)", row)
        columns, lines = data_quality(warehouse, settings)
    assert columns == ["source", "landed", "valid", "quarantined", "percent", "reasons"]
    assert lines == [
        ("crm_products", 5, 3, 2, Decimal("40.00"), "missing_product 1, unparseable_month 1"),
        ("session_costs", 7, 7, 0, Decimal("0.00"), ""),
        (
            "web_events", 101, 95, 6, Decimal("5.94"),
            "missing_key 3, invalid_json 1, unknown_type 1, 1 more",
        ),
    ]  # fmt: skip


def test_a_dev_target_reads_its_own_marts(dev_settings: Settings):
    """`runner summary`'s tables and `top-ltv` on target `dev` (not production) read
    dev_marts, and say so when they are missing."""
    from runner.reports import data_quality
    from runner.warehouse import connect

    mart = dev_settings.relation("marts", "data_quality")
    with connect(dev_settings) as warehouse:
        warehouse.execute("create schema dev_marts")
        warehouse.execute(
            f"create table {mart} (load_id varchar, source_table varchar, outcome varchar, "
            "row_count bigint)"
        )
        warehouse.execute(f"insert into {mart} values ('l1', 'crm_products', 'valid', 3)")
        assert data_quality(warehouse, dev_settings)[1] == [
            ("crm_products", 3, 3, 0, Decimal("0.00"), "")
        ]
        warehouse.execute("create schema marts")
        warehouse.execute("create table marts.customer_ltv as select 1 as ltv_rank")
    result = invoke("top-ltv", "5", "--target", "dev")
    assert result.exit_code == 1
    assert "dev_marts.customer_ltv does not exist yet" in result.output


def test_only_the_cli_imports_click():
    """Library code raises the runner's own exceptions (runner.errors); only runner/cli.py
    turns them into click errors, so no other module of the package imports click."""
    import ast

    package = Path(__file__).resolve().parents[1] / "runner"
    importers = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "click" for name in names):
                importers.add(module.name)
    assert importers == {"cli.py"}


def test_runner_errors_become_click_errors_with_their_exit_code():
    from runner.cli import click_error
    from runner.errors import Interrupted, RunnerError

    error = click_error(RunnerError("Load data first."))
    assert (error.exit_code, error.format_message()) == (1, "Load data first.")
    interrupted = click_error(Interrupted("nothing landed."))
    assert (interrupted.exit_code, interrupted.format_message()) == (
        130,
        "interrupted: nothing landed.",
    )


def test_progress_bar_counts_on_a_terminal():
    from runner.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    with ProgressBar("Journeys", file=terminal) as bar:
        bar.start(3)
        bar.advance(1)
        bar.advance(2)
    assert "Journeys" in terminal.getvalue() and "3/3" in terminal.getvalue()
    piped = io.StringIO()  # not a terminal: no bar
    with ProgressBar("Journeys", file=piped) as bar:
        bar.start(3)
        bar.advance(3)
    assert piped.getvalue() == ""
