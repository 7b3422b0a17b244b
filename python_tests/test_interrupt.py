"""Ctrl-C (SIGINT) in a real `runner` process: one line on stderr that starts with
"interrupted", no traceback, exit 130 (128 + SIGINT), and nothing half-written.

The signal is sent once the process is doing the work it interrupts, never after a guessed
sleep: a load, once its landing transaction has its temporary folder (the process's
TMPDIR is the test's) with a block being copied in it, or on DuckDB, which lands the
lines itself, once the warehouse file grows with them (before the commit); a build,
once dbt has printed that it started building a model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from python_tests.processes import (
    TIMEOUT,
    events_file,
    finish,
    interrupt,
    no_process_left_behind,  # noqa: F401  (autouse: kills what a failed test left running)
    runner_command,
    start,
    wait_for,
)
from runner.cli import cli
from runner.config import Settings
from runner.warehouse import connect

LINES = 1_000_000  # web events (about 60 MB): a load takes seconds, not milliseconds


def assert_interrupted(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """Exit 130, exactly one stderr line starting "interrupted", no traceback; that line."""
    assert result.returncode == 130, (result.returncode, result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "Aborted!" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def landed(settings: Settings, path: Path) -> tuple[int, int]:
    """Rows in raw.web_events, and lines in raw.loads for `path`."""
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _, rows = warehouse.query("select count(*) from raw.web_events")
        _, loads = warehouse.query(
            "select count(*) from raw.loads where file_name = ?", (str(path),)
        )
    return rows[0][0], loads[0][0]


def test_ctrl_c_during_a_load_lands_nothing_and_the_rerun_lands_it_once(
    settings: Settings, target: str, tmp_path: Path
):
    big = events_file(tmp_path / "big.jsonl", LINES)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    process = start(
        runner_command("load", "web-events", "--target", target, str(big)), TMPDIR=str(tmp)
    )

    duckdb_file = Path(os.environ["DUCKDB_PATH"])

    def copying() -> bool:  # inside the landing transaction, a block on its way in
        if target == "duckdb":  # the engine lands the lines: its file grows before the commit
            return duckdb_file.is_file() and duckdb_file.stat().st_size > 4 << 20
        return any(tmp.glob("runner-load-*/web_events-*"))

    wait_for(copying, "the load copies its first block", process, every=0.005)
    result = interrupt(process)

    line = assert_interrupted(result, f"nothing of {big} landed", "run the same command again")
    assert result.stderr.strip() == line  # the only thing on stderr
    assert landed(settings, big) == (0, 0)
    assert not any(tmp.iterdir())  # its temporary files are gone too

    rerun = CliRunner().invoke(cli, ["load", "web-events", "--target", target, str(big)])
    assert rerun.exit_code == 0, rerun.output
    assert landed(settings, big) == (LINES, 1)


def test_ctrl_c_during_a_build_says_what_it_left(settings: Settings, target: str):
    process = start(runner_command("build", "--no-freshness", "--target", target))
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()

    started = lambda: any(" START sql " in line for line in output)  # noqa: E731
    wait_for(started, "dbt starts building a model", process, every=0.005)
    process.send_signal(signal.SIGINT)
    err = process.stderr.read()
    process.wait(timeout=TIMEOUT)
    reader.join(timeout=TIMEOUT)
    result = subprocess.CompletedProcess(process.args, process.returncode, "".join(output), err)

    assert_interrupted(result, "dbt build stopped", "Run `runner build` again")
    assert "dbt build failed" not in result.stderr

    rebuilt = CliRunner().invoke(cli, ["build", "--no-freshness", "--target", target])
    assert rebuilt.exit_code == 0, rebuilt.output[-3000:]


def test_ctrl_c_during_attribution_retries_stops_at_once_and_writes_nothing(
    settings: Settings, target: str, tmp_path: Path
):
    """An API that always answers 5xx: the run is in its retries (20 attempts, backoff up
    to 30 s each: minutes) when Ctrl-C comes. It stops without waiting for them."""
    from devtools.ihc_emulator import EmulatorConfig, FaultPlan, serve_in_thread
    from python_tests.test_attribution import write_marketing
    from runner.dbt_invoke import run_dbt
    from runner.loading import load_marketing

    write_marketing(tmp_path / "marketing")
    with connect(settings) as warehouse:
        load_marketing(warehouse, tmp_path / "marketing")
    assert run_dbt(settings, ["run"], ["--select", "+int_journeys_built", "--quiet"])

    config = EmulatorConfig(api_key="interrupt-key", faults=FaultPlan(rate_5xx=1.0))
    with serve_in_thread(config) as emulator:
        command = runner_command(
            "attribute", "--target", target, "--api-url", emulator.url,
            "--conv-type-id", "default", "--max-attempts", "20", "--workers", "2", "--no-build",
        )  # fmt: skip
        process = start(command, IHC_API_KEY="interrupt-key")
        wait_for(lambda: emulator.stats.outcomes.get("5xx", 0) >= 2, "failed requests", process)
        result = interrupt(process)  # within TIMEOUT, far below the retries' minutes

    assert_interrupted(result, "Run the same command again")
    with connect(settings) as warehouse:
        _, rows = warehouse.query("select count(*) from raw.attribution_customer_journey")
        _, runs = warehouse.query("select status from raw.attribution_runs")
    assert rows[0][0] == 0
    assert runs == [("failed",)]  # as the line says: logged, so the rerun knows


# A command to run beside an emulator: it says it is ready, then waits for a signal, notes
# which one reached it and exits 3.
WAITS_FOR_A_SIGNAL = """
import pathlib, signal, sys, time
mark = pathlib.Path(sys.argv[1])
def stop(number, frame):
    (mark / "stopped").write_text(signal.Signals(number).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
(mark / "ready").write_text("")
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("emulator", ["ihc-emulator", "sms-emulator"])
@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=lambda sent: sent.name)
def test_stopping_an_emulator_stops_the_command_it_runs(
    tmp_path: Path, emulator: str, sent: signal.Signals
) -> None:
    """`make orchestrate` runs Dagster beside the IHC emulator (`runner ihc-emulator --
    dagster dev`): a SIGTERM (a supervisor's stop, or make's when make is stopped), or a
    SIGINT sent to the runner alone, reaches the command, whose exit code is the runner's;
    nothing is left running."""
    process = start(
        runner_command(emulator, "--", sys.executable, "-c", WAITS_FOR_A_SIGNAL, str(tmp_path))
    )
    wait_for((tmp_path / "ready").exists, "the command to start", process)
    process.send_signal(sent)
    result = finish(process)
    assert (tmp_path / "stopped").read_text() == sent.name, result.stderr
    assert result.returncode == 3, (result.returncode, result.stderr)
