"""`runner build --changed`: build only what changed since the last whole build.

A build is whole when it brings every model, snapshot and seed up to date (no node
selection; leaving out tests or unit tests is fine: they change no data). After a whole
build succeeds, the runner records it in the warehouse (raw.builds): when it started, the
as_of_date, a digest of the project's files and vars, and the newest load time of every
source as dbt's freshness check found it just before the build.

`--changed` then builds the sources whose newest load differs from that record, and
everything downstream of them (dbt's `source:NAME+`), with their data tests (not the unit
tests: they check SQL, and the SQL is the recorded build's); plus, always, what
lies downstream of the sources dbt cannot date (those without a `loaded_at_field`: the
contact list, the outbox, the bookkeeping tables). Everything else is as the last build
left it, from the same data. It builds everything instead when there is no such record
in this warehouse, when the as_of_date moved, when the project's files or vars changed,
or when a load was taken back (`runner unload`) since: what it cannot scope safely.
The record is in the warehouse, not in dbt's target folder, so a warehouse replaced or
rebuilt elsewhere is never mistaken for the one the record describes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from runner.as_of import as_of_to_environment, vars_args
from runner.config import Settings
from runner.dbt_invoke import NODE_SELECTION_OPTIONS, RESOURCE_TYPE_EXCLUSION_OPTIONS
from runner.warehouse import Warehouse

TABLE = "builds"  # raw.builds, in runner/sources.py's registry
COLUMNS = (
    "build_id",
    "started_at",
    "finished_at",
    "as_of_date",
    "project_digest",
    "source_loads",
    "selected",
)
EVERYTHING = "everything"

CHANGE_NO_DATA = {"test", "unit_test"}  # resource types a whole build may leave out
# dbt's environment variables for options that build less than everything (their options,
# in NODE_SELECTION_OPTIONS, take their place when given), and the values that say "not
# set" (click's false ones).
NARROWING_ENV = ("DBT_RESOURCE_TYPES", "DBT_EMPTY", "DBT_SAMPLE")
UNSET = {"", "0", "false", "f", "no", "n", "off"}

# The project's folders whose files make the build (dbt_project.yml's keys, defaults).
PROJECT_PATHS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
}


def _option(arg: str) -> tuple[str, str | None]:
    name, equals, value = arg.partition("=")
    return name, (value if equals else None)


def selecting_options(dbt_args: Sequence[str]) -> list[str]:
    """dbt's node-choosing options among `dbt_args`, as given."""
    return [arg for arg in dbt_args if _option(arg)[0] in NODE_SELECTION_OPTIONS]


def is_whole(dbt_args: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether a `dbt build` with these arguments brings every model, snapshot and seed up
    to date: no node selection, and at most tests and unit tests left out. dbt reads some
    of these options from the environment too (`environ`, os.environ by default) when they
    are not given: DBT_RESOURCE_TYPES, DBT_EMPTY, DBT_SAMPLE, DBT_EXCLUDE_RESOURCE_TYPES."""
    environ = os.environ if environ is None else environ
    if selecting_options(dbt_args) or any(
        environ.get(name, "").strip().lower() not in UNSET for name in NARROWING_ENV
    ):
        return False
    excluded: list[str] = []
    given = False
    for index, arg in enumerate(dbt_args):
        name, value = _option(arg)
        if name in RESOURCE_TYPE_EXCLUSION_OPTIONS:
            given = True
            if value is not None:
                excluded.append(value)
            else:  # the values that follow, up to the next option
                following = dbt_args[index + 1 :]
                excluded.extend(itertools.takewhile(lambda a: not a.startswith("-"), following))
    if not given:
        excluded = environ.get("DBT_EXCLUDE_RESOURCE_TYPES", "").split()
    return all(kind.lower() in CHANGE_NO_DATA for kind in excluded)


def project_digest(project_dir: Path, dbt_args: Sequence[str]) -> str:
    """SHA-256 of what makes the build besides the data: dbt_project.yml, every file of
    the model, macro, seed, snapshot and test folders, and the build's --vars other than
    as_of_date."""
    project_file = project_dir / "dbt_project.yml"
    project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    digest = hashlib.sha256(project_file.read_bytes())
    folders = sorted(
        {f for key, default in PROJECT_PATHS.items() for f in project.get(key, default)}
    )
    for folder in folders:
        root = project_dir / folder
        files = sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else []
        for path in files:
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    # the --vars without as_of_date (compared on its own), however they are written
    without_as_of, _ = as_of_to_environment(dbt_args, project_dir)
    given = vars_args(without_as_of)
    if given:
        text = given[0].partition("=")[2] or given[-1]
        values = yaml.safe_load(text)
        digest.update(json.dumps(values, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Record:
    """The last whole build recorded in the warehouse (raw.builds)."""

    started_at: datetime
    as_of_date: date
    project_digest: str
    source_loads: dict[str, str | None]


def last_whole_build(warehouse: Warehouse, settings: Settings) -> Record | None:
    if not warehouse.table_exists(settings.schema("raw"), TABLE):
        return None
    _, rows = warehouse.query(
        "select started_at, as_of_date, project_digest, source_loads "
        f"from {settings.relation('raw', TABLE)} order by started_at desc limit 1"
    )
    if not rows:
        return None
    started_at, as_of_date, digest, loads = rows[0]
    return Record(started_at, as_of_date, digest, json.loads(loads))


def unloaded_since(warehouse: Warehouse, settings: Settings, moment: datetime) -> bool:
    """Whether `runner unload` took a load back after `moment`."""
    # a literal, not a parameter: every engine's SQL reads it (Spark's parameters differ)
    since = f"timestamp '{moment:%Y-%m-%d %H:%M:%S.%f}'"
    _, rows = warehouse.query(
        f"select count(*) from {settings.relation('raw', 'unloads')} where unloaded_at >= {since}"
    )
    return bool(rows[0][0])


def record_whole_build(
    warehouse: Warehouse,
    settings: Settings,
    started_at: datetime,
    as_of_date: date,
    digest: str,
    source_loads: dict[str, str | None],
    selected: str,
) -> None:
    warehouse.append_rows(
        settings.relation("raw", TABLE),
        COLUMNS,
        [
            (
                uuid.uuid4().hex,
                started_at,
                utc_now(),
                as_of_date,
                digest,
                json.dumps(source_loads, sort_keys=True),
                selected,
            )
        ],
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Plan:
    """What a `--changed` build builds: `select` for dbt (None: everything), and why."""

    select: str | None
    reason: str

    @property
    def nothing(self) -> bool:
        return self.select == ""


def plan_changed(
    last: Record | None,
    *,
    as_of_date: date,
    digest: str,
    newest: dict[str, str | None],
    all_sources: Sequence[str],
    unloaded: bool,
) -> Plan:
    """The nodes a `--changed` build runs, given the last whole build's record (`last`),
    this build's as_of_date and project digest, the newest load of each source dbt dated
    (`newest`: dbt's unique id -> time, None when its check failed), every source of the
    project (`all_sources`), and whether a load was taken back since the record."""
    if last is None:
        return Plan(None, "no whole build is recorded in this warehouse: building everything")
    since = f"since the last whole build ({last.started_at:%Y-%m-%d %H:%M} UTC)"
    if last.as_of_date != as_of_date:
        return Plan(
            None,
            f"the as_of_date moved from {last.as_of_date} to {as_of_date} {since}: "
            "building everything",
        )
    if last.project_digest != digest:
        return Plan(None, f"the project's files or vars changed {since}: building everything")
    if unloaded:
        return Plan(None, f"a load was taken back (runner unload) {since}: building everything")
    changed = sorted(
        source
        for source, loaded in newest.items()
        if loaded is None or last.source_loads.get(source, "") != loaded
    )
    undated = sorted(set(all_sources) - set(newest))
    if not changed:
        return Plan("", f"no source has a new load {since}: nothing to build")
    names = ", ".join(_selector_name(source) for source in changed)
    selectors = [f"source:{_selector_name(source)}+" for source in (*changed, *undated)]
    return Plan(
        " ".join(selectors),
        f"new loads {since} in {names}: building them and everything downstream",
    )


def _selector_name(unique_id: str) -> str:
    """source.customer_analytics.web.events -> web.events (dbt's `source:` selector)."""
    return ".".join(unique_id.split(".")[2:])


def project_sources(settings: Settings, manifest: Any = None) -> list[str]:
    """Every source's unique id: from `manifest` (dbt's parse of this build), else from the
    manifest.json dbt wrote when it last parsed the project (the freshness check, just
    before, when it parsed itself)."""
    if manifest is not None:
        return sorted(manifest.sources)
    target = Path(os.environ.get("DBT_TARGET_PATH") or "target")
    if not target.is_absolute():
        target = settings.project_dir / target
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    return sorted(manifest["sources"])


def changed_plan(
    settings: Settings,
    manifest: Any,
    last: Record | None,
    as_of_date: date,
    digest: str,
    newest: dict[str, str | None],
    unloaded: bool,
) -> Plan:
    """plan_changed with the project's sources from dbt's manifest (everything when that
    cannot be read)."""
    try:
        sources = project_sources(settings, manifest)
    except (OSError, ValueError, KeyError) as exc:
        return Plan(None, f"dbt's manifest cannot be read ({exc}): building everything")
    return plan_changed(
        last,
        as_of_date=as_of_date,
        digest=digest,
        newest=newest,
        all_sources=sources,
        unloaded=unloaded,
    )
