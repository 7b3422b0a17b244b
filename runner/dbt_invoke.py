"""Run dbt in-process (dbtRunner) against the runner's project, profile and target."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from runner.as_of import as_of_in_environment, as_of_to_environment, vars_args
from runner.config import Settings

WRITING_COMMANDS = {"build", "run", "seed", "snapshot"}  # after these, marts may have changed
# When set (or given as `runner build --log-file`), dbt's per-node lines go to this file
# (appended) and the terminal shows one progress line and a summary instead.
LOG_FILE_ENV = "RUNNER_DBT_LOG"


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
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


def colour_args() -> list[str]:
    """No colour codes when the output is not a terminal (a log, a pipe), unless the
    user chose with DBT_USE_COLORS."""
    if "DBT_USE_COLORS" in os.environ or sys.stdout.isatty():
        return []
    return ["--no-use-colors"]


def invoke_dbt(
    settings: Settings,
    command: Sequence[str],
    extra: Sequence[str] = (),
    *,
    log_file: Path | None = None,
) -> Any:
    """Run a dbt command in-process and return dbt's result.

    Without `log_file` (nor $RUNNER_DBT_LOG) dbt streams its own per-node progress to
    the terminal. With it, those lines are appended to the file, and the terminal (stderr)
    shows a progress line, then one line of counts and the nodes that warned or failed
    (dbt's errors are still printed as they happen).

    dbt returns what stopped it instead of raising it: a Ctrl-C is raised again here
    (KeyboardInterrupt), and an error dbt did not print itself (a usage error: an unknown
    option, --vars that are not YAML) is printed to stderr, so every failure reaches the
    user, without a traceback."""
    from dbt.cli.main import dbtRunner

    printed: list[str] = []

    def notice(event: Any) -> None:  # dbt prints an error it handled as this event
        if event.info.name == "MainEncounteredError" and event.data.exc.strip():
            printed.append(event.data.exc)

    if log_file is None and os.environ.get(LOG_FILE_ENV):
        log_file = Path(os.environ[LOG_FILE_ENV])
    extra, as_of = as_of_to_environment(extra, settings.project_dir)
    args = dbt_args(settings, command, extra)
    log_path = log_file.resolve() if log_file else None
    console = logging.getLogger(DBT_CONSOLE_LOGGER)
    console.addFilter(_no_interrupt_traceback)
    with _working_directory(settings.project_dir), as_of_in_environment(as_of):
        try:
            if log_path is None:
                result = dbtRunner(callbacks=[notice]).invoke([*args, *colour_args()])
            else:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with log_path.open("a", encoding="utf-8") as log:
                    progress = QuietProgress(" ".join(command), log, sys.stderr)
                    log.write(f"\n=== dbt {' '.join(args)}\n")
                    result = dbtRunner(callbacks=[notice, progress]).invoke(
                        [*args, "--quiet", "--no-use-colors"]
                    )
                    progress.finish(result, log_file or log_path)
        finally:
            console.removeFilter(_no_interrupt_traceback)
            release_dbt_connections()
    if isinstance(result.exception, KeyboardInterrupt):
        raise KeyboardInterrupt
    if result.exception is not None and not printed:
        message = str(result.exception).strip() or type(result.exception).__name__
        print(f"dbt {' '.join(command)}: {message}", file=sys.stderr, flush=True)
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


def run_dbt(
    settings: Settings,
    command: Sequence[str],
    extra: Sequence[str] = (),
    *,
    log_file: Path | None = None,
) -> bool:
    """Run a dbt command (see invoke_dbt). True on success; after a successful command
    that may change the marts, publishes the copy `runner serve` reads (DuckDB)."""
    result = invoke_dbt(settings, command, extra, log_file=log_file)
    succeeded = bool(result.success) and result.exception is None
    if succeeded and command[0] in WRITING_COMMANDS:
        from runner.serving import publish_after_build

        publish_after_build(settings)  # DuckDB: the copy of the marts `runner serve` reads
    return succeeded


# dbt's node statuses, as the summary line counts them (anything else failed).
OUTCOMES = {
    "success": "passed",
    "pass": "passed",
    "warn": "warned",
    "skipped": "skipped",
    "no-op": "no-op",
}


class QuietProgress:
    """A dbtRunner callback: writes dbt's console lines to `log` and keeps one progress
    line on `terminal` (updated in place on a terminal; every quarter in a log)."""

    def __init__(self, what: str, log: TextIO, terminal: TextIO):
        self.what, self.log, self.terminal = what, log, terminal
        self.live = terminal.isatty()
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.next_quarter = 1
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:  # dbt calls back from each of its threads
            self._record(event)

    def _record(self, event: Any) -> None:
        info = event.info
        if info.level != "debug" and info.msg:
            self.log.write(f"{info.ts.ToDatetime():%H:%M:%S}  {info.msg}\n")
        if self.live and not self.done and info.name == "MainReportVersion":
            self.terminal.write(f"  dbt {self.what}: reading the project...")
            self.terminal.flush()
        if info.name == "LogStartLine":
            self.total = max(self.total, event.data.total)
        elif info.name == "NodeFinished":
            self.done += 1
            self.show()

    def seconds(self) -> int:
        return round(time.monotonic() - self.started)

    def show(self) -> None:
        if not self.total:
            return
        line = f"dbt {self.what}: {self.done}/{self.total} nodes done ({self.seconds()} s)"
        if self.live:
            self.terminal.write(f"\r  {line}\033[K")
            self.terminal.flush()
        elif (
            self.total >= 100  # a short run gets its summary line only
            and self.done * 4 >= self.next_quarter * self.total
            and self.done < self.total
        ):
            self.terminal.write(f"  {line}\n")
            self.next_quarter = self.done * 4 // self.total + 1

    def finish(self, result: Any, log_file: Path) -> None:
        if self.live:  # clear the progress line
            self.terminal.write("\r\033[K")
        results = getattr(result.result, "results", None) or []
        counts = dict.fromkeys(("passed", "warned", "failed", "skipped", "no-op"), 0)
        notable = []
        for item in results:
            status = str(getattr(item.status, "value", item.status)).lower()
            outcome = OUTCOMES.get(status, "failed")
            counts[outcome] += 1
            if outcome in ("warned", "failed"):
                node = item.node
                kind = str(getattr(node.resource_type, "value", node.resource_type))
                notable.append(f"    {outcome}: {kind} {node.name}: {item.message or ''}".rstrip())
        tally = ", ".join(
            f"{count} {outcome}"
            for outcome, count in counts.items()
            if count or outcome == "failed"
        )
        self.terminal.write(
            f"  dbt {self.what}: {len(results)} nodes in {self.seconds()} s"
            f"{': ' + tally if tally else ''} (dbt's output: {log_file})\n"
        )
        for line in notable:
            self.terminal.write(line + "\n")
        self.terminal.flush()


def release_dbt_connections() -> None:
    """Close what dbt keeps open after an in-process run. dbt-duckdb holds one DuckDB
    connection per process (until exit) in its connection manager's environment; left
    open, it makes DuckDB refuse the runner's next connection with another
    configuration (read-only) in the same process."""
    from dbt.adapters.factory import reset_adapters

    reset_adapters()  # type: ignore[no-untyped-call]
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing to close
        return
    environment: Any = DuckDBConnectionManager._ENV  # set once dbt-duckdb has connected
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Freshness:
    """What `dbt source freshness` found: a line per source that is stale or never loaded
    (`problems`), and each checked source's newest load time (`newest`: dbt's unique id ->
    ISO time; None when its check failed), what `runner build --changed` compares."""

    problems: list[str]
    newest: dict[str, str | None]


def source_freshness(settings: Settings, build_args: Sequence[str] = ()) -> Freshness:
    """Run `dbt source freshness`. With the arguments of the build it comes before, given
    their --vars, so that both are parsed alike and the build reuses this parse (dbt's
    partial parsing)."""
    result = invoke_dbt(settings, ["source", "freshness"], ["--quiet", *vars_args(build_args)])
    problems = []
    newest: dict[str, str | None] = {}
    for item in getattr(result.result, "results", None) or []:
        if not hasattr(item.node, "source_name"):  # hooks report too
            continue
        status = str(getattr(item, "status", "")).lower()
        loaded = getattr(item, "max_loaded_at", None)
        newest[item.node.unique_id] = loaded.isoformat() if loaded is not None else None
        if status == "pass":
            continue
        # the table as it is in the warehouse (raw.store_sales), not the dbt source
        # name (store.sales): what a reader looks up, and what `runner load` wrote
        name = f"{item.node.schema}.{item.node.identifier}"
        age = getattr(item, "age", None)
        if loaded is None or age is None or loaded.year < 1970:  # empty: dbt reports year 1
            problems.append(f"{name}: never loaded ({status})")
        else:
            problems.append(f"{name}: last loaded {age / 86400:.1f} days ago ({status})")
    return Freshness(problems, newest)
