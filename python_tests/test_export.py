"""`runner export channel-reporting`: its day range and standard output, on both warehouses
(the mart is written here directly: what is tested is the command, not the build)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.config import Settings
from runner.warehouse import connect

ROWS = [
    ("2023-09-01", "Email", 2, "1.50", 0.5, "10.00", "3.00", "6.67"),
    ("2023-09-02", "Display", 1, "0.00", 0.0, "0.00", None, None),
    ("2023-09-03", "Email", 1, "2.00", 1.0, "5.00", "2.00", "2.50"),
]


@pytest.fixture
def channel_report(settings: Settings) -> None:
    write_channel_report(settings)


def write_channel_report(settings: Settings) -> None:
    """The mart channel_reporting with ROWS, in the target's marts schema."""
    mart = settings.relation("marts", "channel_reporting")
    with connect(settings) as warehouse:
        warehouse.execute(f"create schema if not exists {settings.schema('marts')}")
        warehouse.execute(
            f"create table {mart} (event_date date, channel_name varchar, "
            "sessions integer, cost decimal(18, 2), ihc double precision, "
            "ihc_revenue decimal(18, 2), cpo decimal(18, 2), roas decimal(18, 2))"
        )
        for row in ROWS:
            warehouse.execute(f"insert into {mart} values (?, ?, ?, ?, ?, ?, ?, ?)", row)


def test_out_dash_writes_the_csv_to_standard_output(channel_report: None, target: str):
    result = CliRunner().invoke(
        cli,
        ["export", "channel-reporting", "--out", "-", "--start-date", "2023-09-02",
         "--end-date", "2023-09-03", "--target", target],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [
        ["event_date", "channel_name", "sessions", "cost", "ihc", "ihc_revenue", "cpo", "roas"],
        ["2023-09-02", "Display", "1", "0.00", "0.0", "0.00", "", ""],
    ]
    assert "1 channel-days" in result.stderr
    assert not Path("-").exists()


def test_out_file_still_writes_the_file(channel_report: None, target: str, tmp_path: Path):
    out = tmp_path / "report.csv"
    result = CliRunner().invoke(
        cli, ["export", "channel-reporting", "--out", str(out), "--target", target]
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + len(ROWS)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [("2023-09-03", "2023-09-01", "is after"), ("2023-09-02", "2023-09-02", "is the same day as")],
)
def test_a_start_on_or_after_the_end_is_refused(tmp_path: Path, start: str, end: str, said: str):
    out = tmp_path / "report.csv"
    result = CliRunner().invoke(
        cli,
        ["export", "channel-reporting", "--out", str(out), "--start-date", start,
         "--end-date", end],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"--start-date ({start}) {said} --end-date ({end})" in result.output
    assert "nothing can match" in result.output
    assert not out.exists()


def test_a_dev_target_exports_its_own_mart(channel_report: None, dev_settings: Settings):
    """Target `dev` (not production) reads dev_marts.channel_reporting, never production's."""
    result = CliRunner().invoke(cli, ["export", "channel-reporting", "--out", "-", "-t", "dev"])
    assert result.exit_code == 1
    assert "dev_marts.channel_reporting does not exist yet" in result.output
    write_channel_report(dev_settings)
    result = CliRunner().invoke(cli, ["export", "channel-reporting", "--out", "-", "-t", "dev"])
    assert result.exit_code == 0, result.output
    assert [row[0] for row in csv.reader(io.StringIO(result.stdout))][1:] == [
        row[0] for row in ROWS
    ]
