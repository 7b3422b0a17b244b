"""What `runner serve` reads on DuckDB: a published read-only copy of the marts it queries.

A DuckDB file has one writer at a time, and a reader's lock keeps a writer out (and the
writer's lock keeps readers out), so an API that opened the warehouse would answer 503
during every build, or make a build fail that started while a request was reading. On
DuckDB the API therefore never opens the warehouse: it reads a small copy of the marts
it queries (runner.interactions.MARTS), published beside the warehouse after every
successful build by the process that just built it (runner.dbt_invoke.run_dbt). The copy
holds them in the marts schema of the target (Settings.schema("marts"): `marts` on a
production target, `dev_marts` for a target `dev`), so the API's queries are the same
on the copy as on the warehouse.

Copies live in `<warehouse file>.serving/`, one file per publication, named
`serving-<number>.duckdb` with numbers that only grow. A copy is written under a
temporary name and renamed when complete (atomic), and never changes after: the newest
name is always a whole copy, a reader keeps the copy it opened for as long as it needs
it, and opening a new name never finds the old file in DuckDB's per-process cache of
open databases (which is keyed by path). Publishing keeps the newest two copies.

On PostgreSQL the API reads the marts directly: a build there does not lock readers out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from runner.config import Settings
from runner.errors import RunnerError
from runner.interactions import MARTS
from runner.warehouse import DuckDBWarehouse, Warehouse, WarehouseLocked, connect

PREFIX, SUFFIX = "serving-", ".duckdb"
KEEP = 2  # the newest copy, and the one before it for requests still reading it
ABANDONED_AFTER_S = 3600


def copies(directory: Path) -> list[Path]:
    """The complete copies in `directory`, oldest first."""
    try:
        names = [
            entry.name
            for entry in os.scandir(directory)
            if entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX)
        ]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names)]


def newest_copy(settings: Settings) -> Path | None:
    found = copies(settings.serving_dir)
    return found[-1] if found else None


def publish(settings: Settings) -> Path | None:
    """Copy the marts the API reads from the warehouse to a new serving copy, make it the
    newest one, and remove older ones (but the one before). DuckDB only (None on
    PostgreSQL). Opens the warehouse read-only for the time of the copy, so run it when
    the warehouse is not being written: right after a build, by the process that built.
    Raises RunnerError, saying what to do, when the warehouse is missing or in use."""
    if settings.adapter_type != "duckdb":
        return None
    directory = settings.serving_dir
    directory.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(directory)
    temporary = directory / f".tmp-{os.getpid()}-{time.time_ns()}{SUFFIX}"
    try:
        try:
            warehouse = connect(settings, read_only=True)
        except WarehouseLocked as exc:
            raise RunnerError(
                f"Could not publish the copy of the marts that `runner serve` reads: the "
                f"DuckDB warehouse {settings.duckdb_path} is in use by another process"
                f"{exc.holder}. Run `runner publish` once it is free (`runner build` "
                "publishes by itself when its build succeeds)."
            ) from None
        marts = settings.schema("marts")  # the same schema in the copy: the same queries
        with warehouse:
            warehouse.execute(f"attach {_quoted(temporary)} as serving (read_write)")
            warehouse.execute(f"create schema serving.{marts}")
            for table in MARTS:
                if warehouse.table_exists(marts, table):  # else the API answers 503
                    warehouse.execute(
                        f"create table serving.{marts}.{table} as "
                        f"select * from {settings.relation('marts', table)}"
                    )
            warehouse.execute("detach serving")  # checkpoints: the file is complete
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        target = directory / f"{PREFIX}{_next_number(directory):020d}{SUFFIX}"
        os.replace(temporary, target)
    finally:
        for leftover in (temporary, Path(f"{temporary}.wal")):
            leftover.unlink(missing_ok=True)
    for old in copies(directory)[:-KEEP]:
        _remove(old)  # a reader that still has it open keeps reading it (POSIX)
    return target


def publish_after_build(settings: Settings) -> None:
    """Publish a copy after a successful build (nothing on PostgreSQL); when that fails,
    the error says the build itself succeeded."""
    try:
        publish(settings)
    except RunnerError as exc:
        raise RunnerError(
            f"The build succeeded, but the API still serves the previous one. {exc.message}"
        ) from None


def is_stale(settings: Settings) -> bool:
    """No copy yet, or the warehouse was written after the newest copy was published (a
    plain `dbt build`, a load)."""
    newest = newest_copy(settings)
    if newest is None:
        return True
    written = [
        path.stat().st_mtime_ns
        for path in (settings.duckdb_path, Path(f"{settings.duckdb_path}.wal"))
        if path.exists()
    ]
    return any(mtime > newest.stat().st_mtime_ns for mtime in written)


def publish_before_serving(settings: Settings) -> str | None:
    """For `runner serve` as it starts, on DuckDB: publish a copy when there is none or the
    warehouse is newer. Returns what to tell the user (None: nothing to say). Never
    raises for a busy warehouse: the server then serves what is there (503 without a
    copy) until the build in progress publishes."""
    if settings.adapter_type != "duckdb" or not is_stale(settings):
        return None
    had_copy = newest_copy(settings) is not None
    if not settings.duckdb_path.exists() and not had_copy:
        return (
            f"The warehouse {settings.duckdb_path} does not exist yet: the API answers 503 "
            "until you load data and run `runner build`."
        )
    try:
        path = publish(settings)
    except RunnerError as exc:
        serving = "serves the previous copy" if had_copy else "answers 503"
        return f"{exc.message} Until then the API {serving}."
    return f"Published the marts the API reads to {path}."


class ServingCopies:
    """The API's reader on DuckDB: one read-only connection to the newest copy, shared by
    the requests (each gets its own cursor, as DuckDB connections are not thread-safe),
    and replaced when a newer copy appears. Opening a DuckDB file costs tens of
    milliseconds, a cursor well under one. The old connection is dropped, not closed
    (closing it would close the cursors of requests still reading it): DuckDB closes the
    file once its last cursor is closed."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._database: DuckDBWarehouse | None = None

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        cursor = self._cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _cursor(self) -> DuckDBWarehouse:
        for _ in range(3):  # the newest copy can be removed by two publications meanwhile
            newest = newest_copy(self._settings)
            if newest is None:
                raise RunnerError(
                    f"No copy of the marts has been published for the API in "
                    f"{self._settings.serving_dir}. Load data and run `runner build` (after "
                    "a plain `dbt build`: `runner publish`)."
                )
            with self._lock:
                # (a request that listed the folder before a newer copy was opened by
                # another one keeps the newer one)
                if self._path is None or newest.name > self._path.name:
                    try:
                        database = DuckDBWarehouse(
                            newest,
                            read_only=True,
                            settings=getattr(self._settings.credentials, "settings", None),
                        )
                    except RunnerError:
                        if newest.exists():
                            raise
                        continue
                    self._path, self._database = newest, database
                assert self._database is not None
                return self._database.cursor()
        raise RunnerError(f"The serving copies in {self._settings.serving_dir} keep changing.")


class PooledConnections:
    """The API's reader on PostgreSQL: connections to the warehouse kept open between
    requests (a new one costs the server a process and the request milliseconds), each
    used by one request at a time, at most `idle` of them kept when requests are few.
    A kept connection is checked before it is handed out, and one that broke (a server
    restart, a terminated session) is closed, never given to a request. A
    build does not mind them: each statement runs in its own transaction (autocommit),
    so an idle connection holds no lock."""

    def __init__(self, settings: Settings, idle: int = 16):
        self._settings = settings
        self._idle_max = idle
        self._idle: list[Warehouse] = []
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        warehouse = self._kept() or connect(self._settings, read_only=True)
        kept = False
        try:
            yield warehouse
            with self._lock:
                if warehouse.usable() and len(self._idle) < self._idle_max:
                    self._idle.append(warehouse)
                    kept = True
        finally:
            if not kept:
                warehouse.close()

    def _kept(self) -> Warehouse | None:
        """An idle connection that still answers (one round trip: `select 1`), or None.
        Those whose session ended meanwhile are closed."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                warehouse = self._idle.pop()
            try:
                warehouse.query("select 1")
                return warehouse
            except Exception:  # any failure: the session is of no use
                warehouse.close()


def reader(settings: Settings) -> Callable[[], AbstractContextManager[Warehouse]]:
    """How the API opens the marts for one request: the newest serving copy on DuckDB,
    a pooled connection to the warehouse on PostgreSQL."""
    if settings.adapter_type == "duckdb":
        return ServingCopies(settings).open
    return PooledConnections(settings).open


def _next_number(directory: Path) -> int:
    """Now in nanoseconds, but always above the newest copy's (clocks can go back)."""
    found = copies(directory)
    last = int(found[-1].name[len(PREFIX) : -len(SUFFIX)]) if found else 0
    return max(time.time_ns(), last + 1)


def _remove_abandoned(directory: Path) -> None:
    """Temporary files of publications killed mid-copy (a copy takes seconds)."""
    for path in directory.glob(f".tmp-*{SUFFIX}*"):
        with suppress(OSError):
            if time.time() - path.stat().st_mtime > ABANDONED_AFTER_S:
                _remove(path)


def _remove(path: Path) -> None:
    with suppress(OSError):  # e.g. Windows, where an open file cannot be removed: next time
        path.unlink(missing_ok=True)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
