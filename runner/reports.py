"""Queries of the marts behind the runner's reporting commands, and their output formats."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from runner.errors import RunnerError
from runner.warehouse import Warehouse

TOP_LTV_COLUMNS = (
    "ltv_rank",
    "customer_id",
    "ltv",
    "total_revenue",
    "orders",
    "site_visits",
    "weeks_active",
    "avg_weekly_value",
    "revenue_per_visit",
    "visits_per_week",
    "first_event_at",
    "last_event_at",
)


def require_mart(warehouse: Warehouse, table: str) -> None:
    if not warehouse.table_exists("marts", table):
        raise RunnerError(
            f"marts.{table} does not exist yet in this warehouse. Load data and run "
            "`runner build` first."
        )


def top_ltv(warehouse: Warehouse, limit: int) -> tuple[list[str], list[tuple]]:
    """The `limit` customers with the highest lifetime value, best first."""
    require_mart(warehouse, "customer_ltv")
    return warehouse.query(
        f"select {', '.join(TOP_LTV_COLUMNS)} from marts.customer_ltv "
        "where ltv_rank <= ? order by ltv_rank",
        (limit,),
    )


def _plain(value: object) -> object:
    """JSON-safe value: money stays exact as a decimal string, times as ISO-8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def render(columns: Sequence[str], rows: Sequence[tuple], fmt: str) -> str:
    """Rows as an aligned text table, a JSON array of objects, or CSV with a header."""
    if fmt == "json":
        records = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    cells = [list(columns), *[[_text(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]
    lines = []
    for index, row in enumerate(cells):
        parts = [
            cell.rjust(width) if is_number and index else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def data_quality(warehouse: Warehouse) -> tuple[list[str], list[tuple]]:
    """Per raw source: rows landed, rows valid, rows quarantined, by reason."""
    require_mart(warehouse, "customer_ltv")
    return warehouse.query(
        "with landed as (select count(*) as n from raw.web_events), "
        "valid as (select count(*) as n from staging.stg_web__events), "
        "quarantined as ("
        "    select reason, count(*) as n from staging.stg_web__events_quarantine group by reason"
        ") "
        "select 'web_events' as source, landed.n as landed, valid.n as valid, "
        "quarantined.reason as quarantine_reason, quarantined.n as quarantined "
        "from landed cross join valid left join quarantined on true "
        "order by quarantine_reason"
    )
