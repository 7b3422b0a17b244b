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
        return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")
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


QUALITY_COLUMNS = ["source", "landed", "valid", "quarantined", "percent", "reasons"]


def data_quality(warehouse: Warehouse, reasons: int = 3) -> tuple[list[str], list[tuple]]:
    """One line per raw source (marts.data_quality): rows landed, valid, quarantined, the
    quarantined percent, and the most frequent quarantine reasons (the `reasons` first,
    then how many more)."""
    require_mart(warehouse, "data_quality")
    _, counts = warehouse.query(
        "select source_table, outcome, sum(row_count) from marts.data_quality "
        "group by source_table, outcome order by source_table"
    )
    per_source: dict[str, dict[str, int]] = {}
    for source, outcome, row_count in counts:
        per_source.setdefault(source, {})[outcome] = int(row_count)
    rows = []
    for source, outcomes in per_source.items():
        valid = outcomes.pop("valid", 0)
        quarantined = sum(outcomes.values())
        landed = valid + quarantined
        ranked = sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))
        listed = ", ".join(f"{reason} {count}" for reason, count in ranked[:reasons])
        if len(ranked) > reasons:
            listed += f", {len(ranked) - reasons} more"
        percent = Decimal(100 * quarantined / landed).quantize(Decimal("0.01")) if landed else None
        rows.append((source, landed, valid, quarantined, percent, listed))
    return list(QUALITY_COLUMNS), rows


def ytd_spend_leaders(warehouse: Warehouse, limit: int) -> tuple[list[str], list[tuple]]:
    """Customers with the highest year-to-date spend in the latest month of the mart."""
    require_mart(warehouse, "customer_ytd_spend")
    return warehouse.query(
        "select customer_id, month_start, ytd_spend, monthly_spend, orders "
        "from marts.customer_ytd_spend "
        "where month_start = (select max(month_start) from marts.customer_ytd_spend) "
        "order by ytd_spend desc, customer_id limit ?",
        (limit,),
    )


def recency_buckets(warehouse: Warehouse) -> tuple[list[str], list[tuple]]:
    """How many current customers last bought within a week, a month, a quarter..."""
    require_mart(warehouse, "customer_days_since_last_purchase")
    return warehouse.query(
        "select case "
        "when not has_purchased then '5 never' "
        "when days_since_last_purchase <= 7 then '1 within 7 days' "
        "when days_since_last_purchase <= 30 then '2 within 30 days' "
        "when days_since_last_purchase <= 90 then '3 within 90 days' "
        "else '4 over 90 days' end as last_purchase, "
        "count(*) as customers, min(as_of_date) as as_of_date "
        "from marts.customer_days_since_last_purchase group by 1 order by 1"
    )


def message_buckets(warehouse: Warehouse) -> tuple[list[str], list[tuple]]:
    """How many current customers each messaging bucket holds, with the window used."""
    require_mart(warehouse, "customer_engagement")
    return warehouse.query(
        "select message_bucket, count(*) as customers, min(evaluated_at) as evaluated_at, "
        "min(engagement_window_weeks) as window_weeks, "
        "min(low_spend_threshold) as low_spend_threshold, "
        "min(high_activity_threshold) as high_activity_threshold "
        "from marts.customer_engagement group by message_bucket order by message_bucket"
    )


def most_contacted_crm_customer(warehouse: Warehouse) -> int | None:
    """The CRM customer with the most interactions (lowest id on a tie), if any."""
    require_mart(warehouse, "customer_channel_interactions")
    _, rows = warehouse.query(
        "select customer_id from marts.customer_channel_interactions "
        "order by total_interactions desc, customer_id limit 1"
    )
    return rows[0][0] if rows else None


def check_day_range(start: date | None, end: date | None) -> None:
    """Refuse a range of days [start, end) that holds no day."""
    if start is not None and end is not None and start >= end:
        how = "is after" if start > end else "is the same day as"
        raise RunnerError(
            f"--start-date ({start}) {how} --end-date ({end}): days from the start to before "
            "the end are exported, so nothing can match."
        )


def channel_reporting(
    warehouse: Warehouse, start: date | None, end: date | None
) -> tuple[list[str], list[tuple]]:
    """marts.channel_reporting for days in [start, end), by day and channel (a range
    that holds no day is refused by check_day_range, before connecting)."""
    require_mart(warehouse, "channel_reporting")
    conditions, params = ["1 = 1"], []
    if start is not None:
        conditions.append("event_date >= ?")
        params.append(start)
    if end is not None:
        conditions.append("event_date < ?")
        params.append(end)
    return warehouse.query(
        "select event_date, channel_name, sessions, cost, ihc, ihc_revenue, cpo, roas "
        f"from marts.channel_reporting where {' and '.join(conditions)} "
        "order by event_date, channel_name",
        params,
    )


def channel_totals(warehouse: Warehouse) -> tuple[list[str], list[tuple]]:
    """marts.channel_reporting summed over all days, per channel, by cost."""
    require_mart(warehouse, "channel_reporting")
    return warehouse.query(
        "select channel_name, sum(sessions) as sessions, sum(cost) as cost, "
        "cast(sum(ihc) as decimal(18, 2)) as ihc, sum(ihc_revenue) as ihc_revenue, "
        "cast(case when sum(ihc) <> 0 then sum(cost) / sum(ihc) end as decimal(18, 2)) as cpo, "
        "cast(case when sum(cost) <> 0 then sum(ihc_revenue) / sum(cost) end as decimal(18, 2)) "
        "as roas from marts.channel_reporting group by channel_name order by cost desc"
    )
