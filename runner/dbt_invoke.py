"""Run dbt in-process (dbtRunner) against the runner's project, profile and target."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

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


def run_dbt(settings: Settings, command: Sequence[str], extra: Sequence[str] = ()) -> bool:
    """Run a dbt command; dbt streams its own progress to the terminal. True on success."""
    from dbt.cli.main import dbtRunner

    with _working_directory(settings.project_dir):
        try:
            result = dbtRunner().invoke(dbt_args(settings, command, extra))
        finally:
            release_dbt_connections()
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
    from dbt.cli.main import dbtRunner

    with _working_directory(settings.project_dir):
        try:
            result = dbtRunner().invoke(dbt_args(settings, ["source", "freshness"], ["--quiet"]))
        finally:
            release_dbt_connections()
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
