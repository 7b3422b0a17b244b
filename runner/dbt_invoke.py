"""Run dbt in-process (dbtRunner) against the runner's project, profile and target."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from runner.config import Settings

WRITING_COMMANDS = {"build", "run", "seed", "snapshot"}  # after these, marts may have changed


@contextmanager
def _working_directory(path: Path):
    # dbt resolves relative paths (the DuckDB file) against the working directory;
    # run it from the project folder so the default warehouse.duckdb lands there.
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def dbt_args(settings: Settings, command: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    return [
        *command,
        "--project-dir",
        str(settings.project_dir),
        "--profiles-dir",
        str(settings.profiles_dir),
        "--target",
        settings.target,
        *extra,
    ]


def invoke_dbt(settings: Settings, command: Sequence[str], extra: Sequence[str] = ()) -> Any:
    """Run a dbt command in-process; dbt streams its own progress to the terminal. Returns
    dbt's result. dbt returns what stopped it instead of raising it: a Ctrl-C is raised
    again here (KeyboardInterrupt), and an error dbt did not print itself (a usage error:
    an unknown option, --vars that are not YAML) is printed to stderr, so every failure
    reaches the user, without a traceback."""
    from dbt.cli.main import dbtRunner

    printed: list[str] = []

    def notice(event: Any) -> None:  # dbt prints an error it handled as this event
        if event.info.name == "MainEncounteredError" and event.data.exc.strip():
            printed.append(event.data.exc)

    console = logging.getLogger(DBT_CONSOLE_LOGGER)
    console.addFilter(_no_interrupt_traceback)
    with _working_directory(settings.project_dir):
        try:
            result = dbtRunner(callbacks=[notice]).invoke(dbt_args(settings, command, extra))
        finally:
            console.removeFilter(_no_interrupt_traceback)
            release_dbt_connections()
    if isinstance(result.exception, KeyboardInterrupt):
        raise KeyboardInterrupt
    if result.exception is not None and not printed:
        message = str(result.exception).strip() or type(result.exception).__name__
        click.echo(f"dbt {' '.join(command)}: {message}", err=True)
    return result


DBT_CONSOLE_LOGGER = "stdout_log"  # the Python logger dbt's terminal output goes through


def _no_interrupt_traceback(record: logging.LogRecord) -> bool:
    """Keep a line of dbt's terminal output, unless it is how dbt reports a Ctrl-C: an
    empty "Encountered an error:" and a Python traceback ending in KeyboardInterrupt. The
    runner says it in one line instead; dbt's log file keeps both."""
    text = str(record.msg).rstrip()
    if text.endswith("Encountered an error:"):
        return False
    return not (text.endswith("KeyboardInterrupt") and "Traceback (most recent call" in text)


def run_dbt(settings: Settings, command: Sequence[str], extra: Sequence[str] = ()) -> bool:
    """Run a dbt command (see invoke_dbt). True on success."""
    result = invoke_dbt(settings, command, extra)
    succeeded = bool(result.success) and result.exception is None
    if succeeded and command[0] in WRITING_COMMANDS:
        from runner.serving import publish_after_build

        publish_after_build(settings)  # DuckDB: the copy of the marts `runner serve` reads
    return succeeded


def release_dbt_connections() -> None:
    """Close what dbt keeps open after an in-process run. dbt-duckdb holds one DuckDB
    connection per process (until exit) in its connection manager's environment; left
    open, it makes DuckDB refuse the runner's next connection with another
    configuration (read-only) in the same process."""
    from dbt.adapters.factory import reset_adapters

    reset_adapters()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing to close
        return
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def source_freshness(settings: Settings) -> list[str]:
    """Run `dbt source freshness`; one line per source that is stale or never loaded."""
    result = invoke_dbt(settings, ["source", "freshness"], ["--quiet"])
    problems = []
    for item in getattr(result.result, "results", None) or []:
        status = str(getattr(item, "status", "")).lower()
        if status == "pass" or not hasattr(item.node, "source_name"):  # hooks report too
            continue
        name = f"{item.node.source_name}.{item.node.name}"
        loaded = getattr(item, "max_loaded_at", None)
        age = getattr(item, "age", None)
        if loaded is None or age is None or loaded.year < 1970:  # empty: dbt reports year 1
            problems.append(f"{name}: never loaded ({status})")
        else:
            problems.append(f"{name}: last loaded {age / 86400:.1f} days ago ({status})")
    return problems
