"""Landing folders: one per `runner load` subcommand (LANDING_DIR/web-events/, ...). A
sensor per folder asks for one run per new file; the run's raw asset lands the file
through the runner's loaders (idempotent: a file already landed is skipped), moves it to
loaded/ (or, when it fails, to failed/ beside <file>.error.txt with the error), and the
same run builds what depends on that source."""

from __future__ import annotations

import json
import os
import shutil
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from runner.config import Settings
from runner.sources import LoadCommand, Loader

LANDING_VARIABLE = "LANDING_DIR"
LOADED = "loaded"
FAILED = "failed"
# A file younger than this (seconds since its last change) may still be being written:
# the sensor waits for the next tick.
SETTLE_VARIABLE = "LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 5.0


def landing_dir(settings: Settings) -> Path:
    """LANDING_DIR, else .tmp/landing/ in the project."""
    explicit = os.environ.get(LANDING_VARIABLE)
    return Path(explicit) if explicit else settings.project_dir / ".tmp" / "landing"


def settle_seconds() -> float:
    return float(os.environ.get(SETTLE_VARIABLE, DEFAULT_SETTLE_SECONDS))


@dataclass(frozen=True)
class Arrival:
    """A file (marketing: also a folder of CSV files) waiting in a landing folder."""

    path: Path
    key: str  # name, size and time of last change: a new key is a new arrival


def _signature(path: Path) -> tuple[int, int]:
    if path.is_dir():
        files = [item for item in path.rglob("*") if item.is_file()]
        stats = [item.stat() for item in files] or [path.stat()]
        return sum(stat.st_size for stat in stats), max(stat.st_mtime_ns for stat in stats)
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def waiting(folder: Path, now: float, settle: float) -> list[Arrival]:
    """The arrivals of a landing folder, in name order (store extracts: date order):
    entries neither hidden (a name starting with '.') nor still being written."""
    arrivals: list[Arrival] = []
    if not folder.is_dir():
        return arrivals
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in (LOADED, FAILED):
            continue
        if path.is_dir() and folder.name != "marketing":
            continue
        try:
            size, mtime_ns = _signature(path)
        except FileNotFoundError:  # moved away meanwhile
            continue
        if now - mtime_ns / 1e9 < settle:
            continue
        arrivals.append(Arrival(path, f"{path.name}:{size}:{mtime_ns}"))
    return arrivals


def next_cursor(cursor: str | None, arrivals: list[Arrival]) -> tuple[list[Arrival], str]:
    """The arrivals not requested before, and the new cursor: the keys of the arrivals
    still in the folder that have been requested (a file moved away leaves it)."""
    requested = set(json.loads(cursor)) if cursor else set()
    new = [arrival for arrival in arrivals if arrival.key not in requested]
    present = {arrival.key for arrival in arrivals}
    return new, json.dumps(sorted(present))


def _aside(path: Path, folder: Path) -> Path:
    """Move a landed or failed file into `folder`, never over an earlier one."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{stamp}-{path.name}"
    shutil.move(str(path), str(target))
    return target


@dataclass(frozen=True)
class Landed:
    path: Path  # where the file is now (loaded/...)
    summaries: list[str]
    skipped: bool  # landed before: nothing new


class LandingFailed(Exception):
    """A file could not be landed; it is in failed/ with its error beside it."""

    def __init__(self, command: LoadCommand, path: Path, moved: Path, error: str):
        self.path, self.moved, self.error = path, moved, error
        super().__init__(
            f"`{command.invocation} {path.name}` failed: {error} The file is now {moved} "
            f"(the error is in {moved.name}.error.txt beside it). "
            f"Fix it and drop it into {path.parent} again."
        )


def land(settings: Settings, command: LoadCommand, path: Path) -> Landed:
    """Land one arrival with the runner's loader for `command`, then move it to
    loaded/; on failure move it to failed/ with <name>.error.txt and raise LandingFailed."""
    from runner.errors import RunnerError
    from runner.loading import extract_date_of, load_file, load_marketing, load_store_customers
    from runner.sources import sources_of
    from runner.warehouse import connect

    try:
        with connect(settings) as warehouse:
            if command.loader is Loader.FILES:
                (source,) = sources_of(command)
                results = [load_file(warehouse, source.table, path)]
            elif command.loader is Loader.EXTRACT:
                day, _ = extract_date_of(path, None)
                results = [load_store_customers(warehouse, path, day)]
            else:
                results = list(load_marketing(warehouse, path))
    except Exception as exc:
        error = str(exc) if isinstance(exc, RunnerError) else traceback.format_exc()
        moved = _aside(path, path.parent / FAILED)
        (moved.parent / f"{moved.name}.error.txt").write_text(
            f"{command.invocation} {path.name} failed at "
            f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}:\n{error}\n",
            encoding="utf-8",
        )
        raise LandingFailed(command, path, moved, error.strip().splitlines()[-1]) from exc
    moved = _aside(path, path.parent / LOADED)
    return Landed(moved, [result.summary() for result in results], all(r.skipped for r in results))
