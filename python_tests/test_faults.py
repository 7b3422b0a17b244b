"""Faults: the warehouse connection dropped half-way through a load or an attribution run,
and two runs at the same time on the same data. Nothing may be lost or doubled, and the run
that could not proceed says so clearly (an `Error:` line, no traceback).

The run that meets the fault is a real process (`python -m runner ...`); reruns and the
second of two runs go through the same CLI in the test's process (CliRunner), since every
new process spends seconds importing dbt to read the profile. Every fault is injected at a
point the test waits for, never after a guessed sleep:

- PostgreSQL: the test holds a SHARE lock on the table the runner writes next, waits until
  pg_stat_activity shows the runner's session (application_name "customer_analytics
  runner") blocked on it inside its transaction, then terminates that session
  (pg_terminate_backend) or releases the lock.
- DuckDB has no server session to drop: its counterpart is the loader process dying
  (SIGKILL) inside its transaction. A small wrapper pauses the loader right after its bulk
  insert, before the commit, so the kill lands there every time.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from devtools.ihc_emulator import EmulatorConfig, FaultPlan, serve_in_thread
from python_tests.postgres import PostgresServer
from python_tests.processes import (
    TIMEOUT,
    events_file,
    finish,
    no_process_left_behind,  # noqa: F401  (autouse: kills what a failed test left running)
    runner_command,
    start,
    wait_for,
)
from python_tests.test_attribution import KEY, state
from runner.attribution import EXIT_INCOMPLETE
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.warehouse import APPLICATION_NAME, connect, raw_table_statements

LINES = 10_000  # web events per file: big enough that the bulk insert is real work
postgres = pytest.mark.postgres

# Runs `runner load web-events FILE`, pausing after the bulk insert, inside the load's
# transaction: it writes argv[1] and waits until argv[2] exists (gives up after 5 min).
PAUSED_LOADER = """
import os, pathlib, sys, time
from runner import warehouse
from runner.cli import main

copied, go, path = (pathlib.Path(arg) for arg in sys.argv[1:4])

def paused(bulk_insert):  # the loader's bulk inserts: blocks (copy_csv), lines (copy_lines)
    def insert_and_wait(self, *args, **kwargs):
        landed = bulk_insert(self, *args, **kwargs)
        copied.write_text("copied, not committed")
        deadline = time.monotonic() + 300
        while not go.exists():
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.02)
        return landed
    return insert_and_wait

for name in ("copy_csv", "copy_lines"):
    setattr(warehouse.DuckDBWarehouse, name, paused(getattr(warehouse.DuckDBWarehouse, name)))
sys.argv = ["runner", "load", "web-events", "--target", "duckdb", str(path)]
main()
"""


# --- helpers ----------------------------------------------------------------------------


def invoke(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The `runner ...` of `command`, run in this process; an exception other than the
    CLI's own errors shows as the traceback a real run would print."""
    args = command[3:]  # without: python -m runner
    result = CliRunner().invoke(cli, args, env=env)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(command, result.exit_code, result.stdout, stderr)


def assert_clear_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 1 with `Error: <message>` naming what happened and what to do; no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "Error: " in result.stderr, result.stderr  # after any progress bar
    message = " ".join(result.stderr.split("Error: ", 1)[1].split())
    for phrase in phrases:
        assert phrase.lower() in message.lower(), (phrase, result.stderr)


def landed(settings: Settings) -> tuple[int, list[tuple]]:
    """Rows in raw.web_events, and raw.loads as (source_table, rows_landed)."""
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _, rows = warehouse.query("select count(*) from raw.web_events")
        _, loads = warehouse.query("select source_table, rows_landed from raw.loads")
    return rows[0][0], loads


def load_command(path: Path, target: str) -> list[str]:
    return runner_command("load", "web-events", "--target", target, str(path))


@pytest.fixture
def admin(pg_server: PostgresServer, pg_database: str) -> Iterator:
    """A superuser session on the test database, outside any runner."""
    con = pg_server.connect(pg_database)
    yield con
    con.close()


def runner_sessions(admin) -> list[tuple]:
    """The runner's sessions on the test database: (pid, wait_event_type, query)."""
    with admin.cursor() as cursor:
        # Within a transaction (the one holding a lock) the view is otherwise a snapshot.
        cursor.execute("select pg_stat_clear_snapshot()")
        cursor.execute(
            "select pid, wait_event_type, query from pg_stat_activity "
            "where datname = current_database() and application_name = %s and state = 'active'",
            (APPLICATION_NAME,),
        )
        return cursor.fetchall()


def blocked_on(
    admin, statement: str, *processes: subprocess.Popen[str], sessions: int = 1
) -> list[int]:
    """Wait until `sessions` runner sessions are active, waiting for a lock in a statement
    that starts with `statement`; their pids."""

    def blocked() -> list[int]:
        pids = [
            pid
            for pid, wait, query in runner_sessions(admin)
            if wait == "Lock" and query.lstrip().lower().startswith(statement)
        ]
        return pids if len(pids) >= sessions else []

    what = f"{sessions} runner session(s) blocked in {statement!r}"
    return wait_for(blocked, what, *processes)


def holding_share_lock(admin, table: str) -> None:
    """Begin a transaction holding a SHARE lock on `table`: reads go on, writes wait."""
    admin.autocommit = False
    with admin.cursor() as cursor:
        cursor.execute(f"lock table {table} in share mode")


def release(admin) -> None:
    admin.rollback()
    admin.autocommit = True


def terminate(admin, pid: int) -> None:
    with admin.cursor() as cursor:
        cursor.execute("select pg_terminate_backend(%s)", (pid,))
        assert cursor.fetchone()[0]


# --- the connection dropped half-way through a load --------------------------------------


@postgres
def test_connection_dropped_mid_load_lands_nothing_and_the_rerun_lands_once(
    pg_database, admin, tmp_path
):
    settings = load_settings(target="postgres")
    path = events_file(tmp_path / "events.jsonl", LINES)
    assert landed(settings) == (0, [])  # creates the raw tables, so the test can lock one
    holding_share_lock(admin, "raw.loads")
    loader = start(load_command(path, "postgres"))
    # Every row is copied into raw.web_events; the load's line in raw.loads is next.
    (pid,) = blocked_on(admin, "insert into raw.loads", loader)
    with admin.cursor() as cursor:
        cursor.execute("select pg_relation_size('raw.web_events')")
        assert cursor.fetchone()[0] > 0  # the uncommitted rows are really there
    terminate(admin, pid)
    release(admin)

    dropped = finish(loader)
    assert_clear_error(
        dropped,
        f"{path}: the connection to the warehouse was lost while loading it",
        "Nothing from this file was landed",
        "Run the same command again",
    )
    assert landed(settings) == (0, [])

    rerun = invoke(load_command(path, "postgres"))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{LINES} rows landed" in rerun.stdout
    assert landed(settings) == (LINES, [("web_events", LINES)])
    third = invoke(load_command(path, "postgres"))
    assert third.returncode == 0 and "already loaded" in third.stdout, third.stderr
    assert landed(settings) == (LINES, [("web_events", LINES)])


def test_duckdb_loader_killed_mid_load_leaves_nothing_and_the_rerun_lands_once(tmp_path):
    settings = load_settings(target="duckdb")
    path = events_file(tmp_path / "events.jsonl", LINES)
    copied, go = tmp_path / "copied", tmp_path / "go"
    loader = start([sys.executable, "-c", PAUSED_LOADER, str(copied), str(go), str(path)])
    wait_for(copied.exists, "the loader's bulk insert", loader)  # inside its transaction
    loader.send_signal(signal.SIGKILL)
    loader.wait(timeout=TIMEOUT)
    assert loader.returncode == -signal.SIGKILL
    assert landed(settings) == (0, [])  # the file reopens, with nothing of the load

    rerun = invoke(load_command(path, "duckdb"))
    assert rerun.returncode == 0, rerun.stderr
    assert landed(settings) == (LINES, [("web_events", LINES)])
    third = invoke(load_command(path, "duckdb"))
    assert third.returncode == 0 and "already loaded" in third.stdout, third.stderr
    assert landed(settings) == (LINES, [("web_events", LINES)])


# --- two loads of the same file at the same time -----------------------------------------


@postgres
def test_two_loads_racing_past_the_already_loaded_check_land_the_file_once(
    pg_database, admin, tmp_path
):
    """The worst case: both loads found the file not loaded yet and copied all its rows;
    raw.loads' unique (source_table, file_sha256) lets exactly one commit."""
    settings = load_settings(target="postgres")
    path = events_file(tmp_path / "events.jsonl", lines=5_000)
    landed(settings)
    holding_share_lock(admin, "raw.loads")
    loaders = [start(load_command(path, "postgres")) for _ in range(2)]
    blocked_on(admin, "insert into raw.loads", *loaders, sessions=2)
    release(admin)

    results = sorted((finish(loader) for loader in loaders), key=lambda r: r.returncode)
    assert results[0].returncode == 0 and "5000 rows landed" in results[0].stdout
    assert_clear_error(
        results[1],
        f"{path} was loaded into raw.web_events by another run at the same time",
        "nothing was added by this one",
    )
    assert landed(settings) == (5_000, [("web_events", 5_000)])


@postgres
def test_runs_starting_together_on_a_new_postgres_database_both_create_the_raw_tables(
    pg_database,
):
    """Two runs creating the raw tables at the very same moment: without the runner's lock,
    PostgreSQL fails one with a duplicate key in its catalog (pg_namespace), a traceback."""
    settings = load_settings(target="postgres")

    def create(barrier: threading.Barrier, failures: list[Exception]) -> None:
        with connect(settings) as warehouse:
            barrier.wait()
            try:
                warehouse.ensure_raw_tables()
            except Exception as exc:
                failures.append(exc)

    for _ in range(3):
        with connect(settings) as warehouse:
            warehouse.execute("drop schema if exists raw cascade")
        barrier, failures = threading.Barrier(2), []
        threads = [threading.Thread(target=create, args=(barrier, failures)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert failures == []
    statements = raw_table_statements(settings.schema("raw"))
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            "select count(*) from information_schema.tables where table_schema = 'raw'"
        )
    assert rows[0][0] == sum("create table" in s.lower() for s in statements)


def test_duckdb_load_while_another_is_mid_load_fails_clearly_and_lands_once(tmp_path):
    settings = load_settings(target="duckdb")
    path = events_file(tmp_path / "events.jsonl", lines=5_000)
    copied, go = tmp_path / "copied", tmp_path / "go"
    first = start([sys.executable, "-c", PAUSED_LOADER, str(copied), str(go), str(path)])
    wait_for(copied.exists, "the first loader's bulk insert", first)
    second = invoke(load_command(path, "duckdb"))
    assert_clear_error(
        second,
        f"The DuckDB warehouse {settings.duckdb_path} is in use by another process",
        f"(PID {first.pid})",
        "Wait for the other one to finish, then run this again",
    )
    go.touch()
    assert finish(first).returncode == 0
    again = invoke(load_command(path, "duckdb"))
    assert again.returncode == 0 and "already loaded" in again.stdout, again.stderr
    assert landed(settings) == (5_000, [("web_events", 5_000)])


# --- attribution ------------------------------------------------------------------------

CONVERSIONS = 40  # with journeys of 1-3 sessions, plus "long", over the session limit
MAX_SESSIONS = 20


@pytest.fixture
def journeys(target: str) -> set[str]:
    return write_journeys(load_settings(target=target))


def write_journeys(settings: Settings) -> set[str]:
    """intermediate.int_journeys_built, written directly (the columns `runner attribute`
    reads), so these tests need no dbt build. Returns every conversion id."""
    start_at = datetime(2023, 9, 1)
    rows: list[tuple] = []
    for number in range(CONVERSIONS + 1):
        conv_id = "long" if number == CONVERSIONS else f"c{number}"
        size = MAX_SESSIONS + 5 if conv_id == "long" else 1 + number % 3
        converted_at = start_at + timedelta(hours=number, minutes=30)
        for position in range(1, size + 1):
            rows.append(
                (conv_id, f"{conv_id}-s{position}", position,
                 start_at + timedelta(hours=number, minutes=position), converted_at,
                 ["Email", "Display", "Direct"][position % 3], position % 2, 1 - position % 2,
                 int(position == size), 0)
            )  # fmt: skip
    with connect(settings) as warehouse:
        warehouse.execute("create schema if not exists intermediate")
        warehouse.execute(
            "create table intermediate.int_journeys_built (conv_id varchar, session_id varchar, "
            "session_position integer, session_at timestamp, converted_at timestamp, "
            "channel_name varchar, holder_engagement integer, closer_engagement integer, "
            "conversion integer, impression_interaction integer)"
        )
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows)
        warehouse.execute(
            f"insert into intermediate.int_journeys_built values {values}",
            [value for row in rows for value in row],
        )
    return {row[0] for row in rows}


def attribute_command(target: str, url: str) -> list[str]:
    return runner_command(
        "attribute", "--target", target, "--api-url", url, "--conv-type-id", "default",
        "--workers", "1", "--max-journeys", "4", "--max-sessions", str(MAX_SESSIONS),
        "--no-build",
    )  # fmt: skip


def results_count(admin) -> int:
    with admin.cursor() as cursor:
        cursor.execute("select to_regclass('raw.attribution_customer_journey') is not null")
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute("select count(*) from raw.attribution_customer_journey")
        return cursor.fetchone()[0]


def assert_each_conversion_once(final: dict, conversions: set[str]) -> None:
    """Every conversion has its shares exactly once (each session once, summing to 1), or
    is rejected (only "long", once per run); none is both."""
    written = set(final["sums"])
    assert written == conversions - {"long"}
    assert len(final["rows"]) == len({(conv, session) for conv, session, _ in final["rows"]})
    assert all(abs(total - 1) <= 1e-6 for total in final["sums"].values())
    rejects = [(run, conv, reason) for run, conv, reason in final["rejects"]]
    assert {conv for _, conv, _ in rejects} == {"long"}
    assert {reason for _, _, reason in rejects} == {"journey_too_long"}
    assert len(rejects) == len(set(rejects))  # never twice in one run


@pytest.mark.parametrize("target", [pytest.param("postgres", marks=postgres)], indirect=True)
def test_connection_dropped_mid_attribution_keeps_what_was_written_and_the_rerun_finishes(
    target, journeys, admin
):
    settings = load_settings(target=target)
    with serve_in_thread(EmulatorConfig(api_key=KEY, latency_ms=50)) as emulator:
        command = attribute_command(target, emulator.url)
        attribution = start(command, IHC_API_KEY=KEY)
        wait_for(lambda: results_count(admin) > 0, "the first results", attribution)
        # The next answer's write (delete, then insert) waits on this lock, mid-transaction.
        holding_share_lock(admin, "raw.attribution_customer_journey")
        (pid,) = blocked_on(admin, "delete from raw.attribution_customer_journey", attribution)
        terminate(admin, pid)
        release(admin)
        dropped = finish(attribution)
        assert_clear_error(
            dropped,
            "The connection to the warehouse was lost during attribution run",
            "What was written before is kept",
            "nothing is doubled",
            "Run the same command again",
        )
        partial = state(settings)
        assert 0 < len(partial["sums"]) < len(journeys) - 1
        assert [status for _, status, *_ in partial["runs"]] == ["running"]

        rerun = invoke(command, IHC_API_KEY=KEY)
    assert rerun.returncode == EXIT_INCOMPLETE, rerun.stderr  # "long" has no results
    final = state(settings)
    assert_each_conversion_once(final, journeys)
    assert set(partial["rows"]) <= set(final["rows"])  # nothing written before was lost...
    _, _, second_run_written, *_ = final["runs"][1]
    assert second_run_written == len(journeys) - 1 - len(partial["sums"])  # ...or redone


def test_a_second_attribution_run_while_one_is_running_fails_clearly(target, journeys):
    settings = load_settings(target=target)
    with serve_in_thread(EmulatorConfig(api_key=KEY, latency_ms=50)) as emulator:
        command = attribute_command(target, emulator.url)
        first = start(command, IHC_API_KEY=KEY)
        wait_for(lambda: emulator.stats.requests > 0, "the first run's first request", first)
        second = invoke(command, IHC_API_KEY=KEY)
        done = finish(first)
    if target == "duckdb":
        assert_clear_error(
            second,
            f"The DuckDB warehouse {settings.duckdb_path} is in use by another process",
            "then run this again",
        )
    else:
        assert_clear_error(
            second,
            "Another `runner attribute` run is in progress on this warehouse",
            "this one did nothing",
            "then run this again",
        )
    assert done.returncode == EXIT_INCOMPLETE, done.stderr  # "long" has no results
    final = state(settings)
    assert [status for _, status, *_ in final["runs"]] == ["incomplete"]
    assert_each_conversion_once(final, journeys)


# --- a failed or partly failed run keeps every earlier result ----------------------------


def all_results(settings: Settings) -> list[tuple]:
    """Every column of every result row, in a fixed order."""
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            "select * from raw.attribution_customer_journey order by conv_id, session_id"
        )
    return rows


def seeded(target: str, conversions: set[str]) -> list[tuple]:
    """Results for every conversion from a fault-free run, which exits 0."""
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        first = invoke(force_command(target, emulator.url), IHC_API_KEY=KEY)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = all_results(load_settings(target=target))
    assert {row[0] for row in rows} == conversions
    return rows


def force_command(target: str, url: str) -> list[str]:
    return runner_command(
        "attribute", "--target", target, "--api-url", url, "--conv-type-id", "default",
        "--max-journeys", "4", "--max-attempts", "2", "--timeout", "5", "--force", "--no-build",
    )  # fmt: skip


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_attribute_help_documents_the_exit_codes():
    text = " ".join(CliRunner().invoke(cli, ["attribute", "--help"]).output.split())
    assert "Exit codes:" in text
    assert f"{EXIT_INCOMPLETE} finished, but some conversions got no results" in text
    assert "1 error" in text and "0 every selected conversion got results" in text


def test_a_forced_run_against_an_api_that_is_down_keeps_every_earlier_result(target, journeys):
    settings = load_settings(target=target)
    before = seeded(target, journeys)
    total = len(journeys)
    down = EmulatorConfig(api_key=KEY, faults=FaultPlan(rate_5xx=1.0))
    with serve_in_thread(down) as emulator:
        failing = invoke(force_command(target, emulator.url), IHC_API_KEY=KEY)
    closed = invoke(force_command(target, f"http://127.0.0.1:{free_port()}"), IHC_API_KEY=KEY)
    for result in (failing, closed):
        assert result.returncode == EXIT_INCOMPLETE, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        words = " ".join((result.stdout + result.stderr).split())
        assert f"{total} of {total} conversions got no results: request_failed {total}" in words
        assert f"{total} of them keep their earlier results" in words
    assert all_results(settings) == before  # every row, every column, as it was
    runs = state(settings)["runs"]
    assert [(status, written) for _, status, written, *_ in runs] == [
        ("succeeded", total), ("incomplete", 0), ("incomplete", 0)
    ]  # fmt: skip


def test_a_forced_run_with_partial_answers_replaces_only_the_good_conversions(target, journeys):
    settings = load_settings(target=target)
    before = seeded(target, journeys)
    faults = FaultPlan(rate_partial=0.5, rate_wrong_sum=0.5, seed=3)
    with serve_in_thread(EmulatorConfig(api_key=KEY, faults=faults)) as emulator:
        partly = invoke(force_command(target, emulator.url), IHC_API_KEY=KEY)
    assert partly.returncode == EXIT_INCOMPLETE, partly.stdout + partly.stderr
    after = all_results(settings)
    first_run, second_run = (run[0] for run in state(settings)["runs"])
    rejected = {conv: reason for run, conv, reason in state(settings)["rejects"]}
    assert set(rejected.values()) == {"partial_failure", "ihc_sum"}
    counts = Counter(rejected.values())
    words = " ".join((partly.stdout + partly.stderr).split())
    assert (
        f"{len(rejected)} of {len(journeys)} conversions got no results: ihc_sum "
        f"{counts['ihc_sum']}, partial_failure {counts['partial_failure']}"
    ) in words
    # Rejected conversions keep their earlier rows exactly; the others have new ones.
    assert [r for r in after if r[0] in rejected] == [r for r in before if r[0] in rejected]
    replaced = [r for r in after if r[0] not in rejected]
    assert {r[0] for r in replaced} == journeys - set(rejected)
    assert {r[6] for r in replaced} == {second_run}
    assert {r[6] for r in before} == {first_run}
    assert len(after) == len(before)  # each session once: nothing lost, nothing doubled
