"""Which as_of_date a build evaluates the marts at, and why: the rule of
macros/as_of_date.sql, told before `runner build` starts.

The var `as_of_date` when given (on the command line, or in dbt_project.yml), `today`
for the calendar; else the date the warehouse remembers from the last build given the
var (the table as_of_date of the target's raw schema, written by the on-run-start hook
remember_as_of_date); else today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

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


def var_in_args(dbt_args: Sequence[str]) -> object:
    """The as_of_date of a `--vars` argument among dbt's arguments, or None."""
    for index, arg in enumerate(dbt_args):
        if arg.startswith("--vars="):
            text = arg.removeprefix("--vars=")
        elif arg == "--vars" and index + 1 < len(dbt_args):
            text = dbt_args[index + 1]
        else:
            continue
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RunnerError(f"--vars is not a YAML mapping: {exc}") from None
        if isinstance(values, dict) and values.get("as_of_date") not in (None, ""):
            return values["as_of_date"]
    return None


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
    if value is not None:
        if str(value) == "today":
            return AsOf(today, "today")
        try:
            return AsOf(date.fromisoformat(str(value)), "var")
        except ValueError:
            raise RunnerError(f"as_of_date must be YYYY-MM-DD or today, got {value!r}.") from None
    day = remembered(warehouse, settings)
    return AsOf(day, "remembered") if day is not None else AsOf(today, "calendar")
