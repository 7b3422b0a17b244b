"""Which as_of_date a build evaluates the marts at, and why: the rule of
macros/as_of_date.sql, told before `runner build` starts.

The var `as_of_date` when given (on the command line, or in dbt_project.yml), or else the
environment variable DBT_AS_OF_DATE; `today` for the calendar; else the date the
warehouse remembers from the last build given the var (the table as_of_date of the
target's raw schema, written by the on-run-start hook remember_as_of_date); else today.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from runner.config import Settings
from runner.errors import RunnerError
from runner.warehouse import Warehouse


@dataclass(frozen=True)
class AsOf:
    day: date
    reason: str  # "var", "today" (--vars ... today), "remembered" or "calendar"

    def describe(self) -> str:
        if self.reason == "var":
            why = "given with --vars; the warehouse remembers it for later builds"
        elif self.reason == "today":
            why = "--vars as_of_date: today; the remembered date is forgotten"
        elif self.reason == "remembered":
            why = (
                "remembered from an earlier build given it; "
                "--vars '{as_of_date: today}' to use the calendar"
            )
        else:
            why = "today: no as_of_date given, none remembered"
        return f"as_of_date {self.day.isoformat()} ({why})"


AS_OF_ENV = "DBT_AS_OF_DATE"  # read by macros/as_of_date.sql when the var is not set


@contextmanager
def as_of_in_environment(value: str | None) -> Iterator[None]:
    """DBT_AS_OF_DATE set to `value` for the block (nothing when None): how a dbt run in
    this process, or started from it, is given an as_of_date without a --vars that would
    make dbt parse the whole project again (see as_of_to_environment)."""
    if value is None:
        yield
        return
    previous = os.environ.get(AS_OF_ENV)
    os.environ[AS_OF_ENV] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(AS_OF_ENV, None)
        else:
            os.environ[AS_OF_ENV] = previous


def _last_vars(dbt_args: Sequence[str]) -> tuple[int, int, str] | None:
    """The `--vars` among dbt's arguments that dbt uses (the last one given): its first
    index, the index after it and its text; None without any."""
    found = None
    for index, arg in enumerate(dbt_args):
        if arg.startswith("--vars="):
            found = index, index + 1, arg.removeprefix("--vars=")
        elif arg == "--vars" and index + 1 < len(dbt_args):
            found = index, index + 2, dbt_args[index + 1]
    return found


def _vars_mapping(text: str) -> dict[Any, Any] | None:
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunnerError(f"--vars is not a YAML mapping: {exc}") from None
    return values if isinstance(values, dict) else None


def var_in_args(dbt_args: Sequence[str]) -> object:
    """The as_of_date of the `--vars` among dbt's arguments, or None."""
    found = _last_vars(dbt_args)
    values = _vars_mapping(found[2]) if found else None
    if values is None or values.get("as_of_date") in (None, ""):
        return None
    return values["as_of_date"]


def vars_args(dbt_args: Sequence[str]) -> list[str]:
    """Only the `--vars` among dbt's arguments: what another command run with them (`dbt
    source freshness` before a build) must be given to be parsed alike."""
    found = _last_vars(dbt_args)
    return list(dbt_args[found[0] : found[1]]) if found else []


def as_of_to_environment(
    dbt_args: Sequence[str], project_dir: Path
) -> tuple[list[str], str | None]:
    """dbt's arguments without the as_of_date of their `--vars`, and that as_of_date, for
    the environment variable DBT_AS_OF_DATE, which macros/as_of_date.sql reads when the var
    is not set. The marts are evaluated at the same date; what changes is the cost: dbt
    parses the whole project again whenever its vars differ from its last parse's, and only
    the files that read an environment variable when that changes. Left as they are when
    dbt_project.yml sets as_of_date (the project's var would win over the environment)."""
    found = _last_vars(dbt_args)
    if found is None or project_var(project_dir) is not None:
        return list(dbt_args), None
    start, end, text = found
    values = _vars_mapping(text)
    if values is None or values.get("as_of_date") in (None, ""):
        return list(dbt_args), None
    value = str(values.pop("as_of_date"))
    rest = ["--vars", json.dumps(values, default=str)] if values else []
    return [*dbt_args[:start], *rest, *dbt_args[end:]], value


def project_var(project_dir: Path) -> object:
    """An as_of_date set in dbt_project.yml's vars, or None."""
    try:
        project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    values = (project or {}).get("vars") or {}
    return values.get("as_of_date") if isinstance(values, dict) else None


def remembered(warehouse: Warehouse, settings: Settings) -> date | None:
    """The as_of_date recorded by the last build given the var, if any."""
    if not warehouse.table_exists(settings.schema("raw"), "as_of_date"):
        return None
    table = settings.relation("raw", "as_of_date")
    _, rows = warehouse.query(f"select max(as_of_date) from {table}")
    day = rows[0][0] if rows else None
    return day if isinstance(day, date) else None


def build_as_of(
    warehouse: Warehouse, settings: Settings, dbt_args: Sequence[str], today: date | None = None
) -> AsOf:
    """The as_of_date a build with these dbt arguments evaluates the marts at."""
    today = today or date.today()
    value = var_in_args(dbt_args)
    if value is None:
        value = project_var(settings.project_dir)
    if value is None:
        value = os.environ.get(AS_OF_ENV) or None
    if value is not None:
        if str(value) == "today":
            return AsOf(today, "today")
        try:
            return AsOf(date.fromisoformat(str(value)), "var")
        except ValueError:
            raise RunnerError(f"as_of_date must be YYYY-MM-DD or today, got {value!r}.") from None
    day = remembered(warehouse, settings)
    return AsOf(day, "remembered") if day is not None else AsOf(today, "calendar")
