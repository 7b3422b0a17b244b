"""Run dbt in-process (dbtRunner) against the runner's project, profile and target."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from runner.as_of import as_of_in_environment, as_of_to_environment, vars_args
from runner.config import Settings
from runner.errors import RunnerError

if TYPE_CHECKING:
    from dbt_common.events.base_types import EventMsg

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
    manifest: Any = None,
    progress: QuietProgress | None = None,
    held: list[str] | None = None,
) -> Any:
    """Run a dbt command in-process and return dbt's result.

    Given `manifest` (of a `dbt parse` just before, see parse_for_build), dbt runs on it
    instead of parsing the project again; it still writes its artifacts (manifest.json,
    run_results.json, sources.json), and the lines the parse printed already are not
    printed again. Given `held` (that parse), dbt's terminal lines are kept in it for the
    build to print where it would have printed them. Given `progress` (a build's, begun by
    its parse), that progress line goes on instead of a new one.

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

    callbacks: list[Callable[[EventMsg], None]] = [notice]
    if manifest is not None:
        callbacks.append(_artifacts_of_this_run(manifest))
    log_file = log_file_to_use(log_file)
    extra, as_of = as_of_to_environment(extra, settings.project_dir)
    args = dbt_args(settings, command, extra)
    log_path = log_file.resolve() if log_file else None
    console = logging.getLogger(DBT_CONSOLE_LOGGER)
    lines = _ConsoleLines(held, PARSE_ONLY_LINES if held is not None else REPEATED_LINES)
    console.addFilter(_no_interrupt_traceback)
    if held is not None or manifest is not None:
        console.addFilter(lines)
    with _working_directory(settings.project_dir), as_of_in_environment(as_of):
        try:
            if log_path is None:
                result = dbtRunner(manifest, callbacks).invoke([*args, *colour_args()])
            else:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with log_path.open("a", encoding="utf-8") as log:
                    owned = progress is None
                    if progress is None:
                        progress = QuietProgress(" ".join(command), sys.stderr)
                    builds_parse = not owned and command[0] == "parse"
                    progress.log = log
                    progress.resume()
                    log.write(f"\n=== dbt {' '.join(args)}\n")
                    result = dbtRunner(manifest, [*callbacks, progress]).invoke(
                        [*args, "--quiet", "--no-use-colors"]
                    )
                    progress.log = None
                    if builds_parse:  # the build it is for goes on, and says how it went
                        progress.pause()
                    else:
                        progress.finish(result, log_file or log_path)
        finally:
            console.removeFilter(_no_interrupt_traceback)
            console.removeFilter(lines)
            release_dbt_connections()
    if isinstance(result.exception, KeyboardInterrupt):
        raise KeyboardInterrupt
    if result.exception is not None and not printed:
        message = str(result.exception).strip() or type(result.exception).__name__
        print(f"dbt {' '.join(command)}: {message}", file=sys.stderr, flush=True)
    return result


def _artifacts_of_this_run(manifest: Any) -> Callable[[Any], None]:
    """A dbtRunner callback for a command given a parsed manifest: it gives the manifest
    this invocation's id and time, which dbt sets when it parses, so that the
    manifest.json the command writes names the same invocation as its run_results.json
    (or sources.json), as it does when the command parses the project itself."""

    def note(event: Any) -> None:
        if event.info.name == "MainReportVersion":  # the first event of an invocation
            manifest.metadata.invocation_id = event.info.invocation_id
            manifest.metadata.generated_at = datetime.now(timezone.utc).replace(tzinfo=None)

    return note


DBT_CONSOLE_LOGGER = "stdout_log"  # the Python logger dbt's terminal output goes through
# dbt's terminal lines that a build on the manifest of a parse just before it (see
# parse_for_build) prints a second time, and the parse's line that a build never printed:
# dropped, so that the terminal shows what a build that parses itself shows.
REPEATED_LINES = ("Running with dbt=", "Registered adapter: ")
PARSE_ONLY_LINES = ("Performance info: ",)


def log_file_to_use(log_file: Path | None) -> Path | None:
    """The file for dbt's per-node lines: the one given, else $RUNNER_DBT_LOG, else none."""
    if log_file is None and os.environ.get(LOG_FILE_ENV):
        return Path(os.environ[LOG_FILE_ENV])
    return log_file


class _ConsoleLines(logging.Filter):
    """Drops dbt's terminal lines that contain one of `dropped`, and keeps the others in
    `held` instead of printing them when given a list."""

    def __init__(self, held: list[str] | None, dropped: Sequence[str]):
        super().__init__()
        self.held, self.dropped = held, tuple(dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if any(part in text for part in self.dropped):
            return False
        if self.held is not None:
            self.held.append(text)
            return False
        return True


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
    parsed: Parsed | None = None,
) -> bool:
    """Run a dbt command (see invoke_dbt), on the manifest of `parsed` when given (see
    parse_for_build). True on success; after a successful command that may change the
    marts, publishes the copy `runner serve` reads (DuckDB)."""
    if parsed is not None:
        parsed.print_held()
    result = invoke_dbt(
        settings,
        command,
        extra,
        log_file=log_file,
        manifest=parsed.manifest if parsed else None,
        progress=parsed.progress if parsed else None,
    )
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

    def __init__(self, what: str, terminal: TextIO, log: TextIO | None = None):
        self.what, self.log, self.terminal = what, log, terminal
        self.live = terminal.isatty()
        self.announced = False  # the "reading the project" line (once for a parse and build)
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.paused: float | None = None
        self.next_quarter = 1
        self.lock = threading.Lock()

    def pause(self) -> None:
        """Stop the clock after a build's parse: what runs between it and the build (the
        freshness check) is not the build's time."""
        self.paused = time.monotonic()

    def resume(self) -> None:
        if self.paused is not None:
            self.started += time.monotonic() - self.paused
            self.paused = None

    def __call__(self, event: Any) -> None:
        with self.lock:  # dbt calls back from each of its threads
            self._record(event)

    def _record(self, event: Any) -> None:
        info = event.info
        if self.log is not None and info.level != "debug" and info.msg:
            self.log.write(f"{info.ts.ToDatetime():%H:%M:%S}  {info.msg}\n")
        if self.live and not self.announced and info.name == "MainReportVersion":
            self.announced = True
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


def source_freshness(
    settings: Settings, build_args: Sequence[str] = (), *, parsed: Parsed | None = None
) -> Freshness:
    """Run `dbt source freshness`. With the arguments of the build it comes before, given
    their --vars, so that both are parsed alike: on the manifest of `parsed` when given
    (the build's, see parse_for_build), else dbt parses the project itself and the build
    reuses that parse (dbt's partial parsing)."""
    result = invoke_dbt(
        settings,
        ["source", "freshness"],
        ["--quiet", *vars_args(build_args)],
        manifest=parsed.manifest if parsed else None,
    )
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


# `dbt build`'s options that choose which nodes run. A build given one of them is not
# whole (runner.builds), and `runner build --changed`, which chooses the nodes itself,
# refuses them.
NODE_SELECTION_OPTIONS = frozenset(
    {
        "--select", "-s", "--models", "--model", "-m", "--exclude", "--selector",
        "--resource-type", "--resource-types", "--empty", "--sample",
    }
)  # fmt: skip
# ... and those that leave out whole resource types (a build leaving out only the tests
# is still whole).
RESOURCE_TYPE_EXCLUSION_OPTIONS = frozenset({"--exclude-resource-type", "--exclude-resource-types"})
# `dbt build` options that change neither how dbt parses the project nor what it prints
# while parsing, only which nodes run and how. A build given no other option (--vars the
# parse is given too) can run on the manifest of a `dbt parse` just before it.
RUN_ONLY_OPTIONS = (
    NODE_SELECTION_OPTIONS
    | RESOURCE_TYPE_EXCLUSION_OPTIONS
    | {
        "--full-refresh", "-f", "--fail-fast", "--no-fail-fast", "-x", "--threads",
        "--no-empty", "--store-failures", "--indirect-selection",
        "--event-time-start", "--event-time-end",
        "--defer", "--no-defer", "--state", "--defer-state", "--favor-state",
        "--no-favor-state", "--vars",
    }
)  # fmt: skip


def parse_shareable(build_args: Sequence[str]) -> bool:
    """Whether every option among a build's arguments is one of RUN_ONLY_OPTIONS (what
    follows an option, its values, does not start with a dash)."""
    return all(
        arg.split("=", 1)[0] in RUN_ONLY_OPTIONS for arg in build_args if arg.startswith("-")
    )


@dataclass
class Parsed:
    """A `dbt parse` for the commands after it to run on (dbtRunner(manifest=...))."""

    manifest: Any  # dbt's Manifest
    progress: QuietProgress | None  # with a log file: the build's progress line, begun
    held: list[str]  # the parse's terminal lines, for the build to print first

    def print_held(self) -> None:
        """Print the parse's terminal lines (once): where the build, parsing itself, would
        have printed them."""
        for line in self.held:
            print(line, flush=True)
        self.held.clear()

    def discard(self) -> None:
        """No command runs on this parse after all (`runner build --changed` found nothing
        to build): print its lines and clear its progress line from the terminal."""
        self.print_held()
        if self.progress is not None and self.progress.live and self.progress.announced:
            self.progress.terminal.write("\r\033[K")
            self.progress.terminal.flush()


def parse_for_build(
    settings: Settings, build_args: Sequence[str] = (), *, log_file: Path | None = None
) -> Parsed | None:
    """Parse the project once for `runner build`'s freshness check and build, instead of
    once in each: `dbt parse` given the build's --vars (its as_of_date in the environment,
    as the build gets it) and, like the build, partial parsing. It writes dbt's partial
    parse (partial_parse.msgpack) but not manifest.json, which the freshness check and the
    build write after their run, as they do after parsing themselves (where dbt writes it
    twice: after the parse and after the run). A build alone gains nothing from it (what
    the parse's unwritten manifest.json saves, a second dbt invocation costs), so
    `runner build --no-freshness` lets the build parse itself.

    None, and nothing run, when the build is given an option that may change the parse or
    what it prints (anything but RUN_ONLY_OPTIONS): then each command parses itself, as
    before. RunnerError when dbt cannot parse the project (dbt printed why)."""
    if not parse_shareable(build_args):
        return None
    log_file = log_file_to_use(log_file)
    progress = QuietProgress("build", sys.stderr) if log_file else None
    parsed = Parsed(None, progress, [])
    result = invoke_dbt(
        settings,
        ["parse"],
        ["--no-write-json", *vars_args(build_args)],
        log_file=log_file,
        progress=progress,
        held=parsed.held,
    )
    if not result.success or result.exception is not None or result.result is None:
        parsed.print_held()
        if progress is not None and log_file is not None:
            progress.finish(result, log_file)
        where = f"dbt's output in {log_file}" if log_file else "dbt's output above"
        raise RunnerError(f"dbt build failed: see {where}.")
    parsed.manifest = result.result
    return parsed
