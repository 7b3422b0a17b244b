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
