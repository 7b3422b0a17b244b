"""Queries of the marts behind the runner's reporting commands (`top-ltv`, `summary`,
`export`), and their output formats. Every relation comes from the settings' target
(Settings.relation: `marts.x` on a production target, `<target>_marts.x` on another)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tabulate import tabulate

from runner.config import Settings
from runner.errors import RunnerError
from runner.interactions import customer_interactions
from runner.warehouse import Rows, Warehouse

Table = tuple[list[str], Rows]
"""Column names and rows, as Warehouse.query returns them."""

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


def require_mart(warehouse: Warehouse, settings: Settings, table: str) -> str:
    """The mart's relation (`schema.table`); RunnerError saying what to do when it is
    not built yet."""
    if not warehouse.table_exists(settings.schema("marts"), table):
        raise RunnerError(
            f"{settings.relation('marts', table)} does not exist yet in this warehouse. "
            "Load data and run `runner build` first."
        )
    return settings.relation("marts", table)


def top_ltv(warehouse: Warehouse, settings: Settings, limit: int) -> Table:
    """The `limit` customers with the highest lifetime value, best first."""
    customer_ltv = require_mart(warehouse, settings, "customer_ltv")
    return warehouse.query(
        f"select {', '.join(TOP_LTV_COLUMNS)} from {customer_ltv} "
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


def render(columns: Sequence[str], rows: Sequence[tuple[Any, ...]], fmt: str) -> str:
    """Rows as an aligned text table (numbers to the right), a JSON array of objects, or
    CSV with a header."""
    if fmt == "json":
        records = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]
    table = tabulate(
        [[_text(v) for v in row] for row in rows],
        headers=list(columns),
        tablefmt="simple",
        disable_numparse=True,  # the cells are already text: show them as they are
        colalign=["right" if is_number else "left" for is_number in numeric],
        headersalign=["left"] * len(columns),
    )
    return "\n".join(line.rstrip() for line in table.splitlines())


QUALITY_COLUMNS = ["source", "landed", "valid", "quarantined", "percent", "reasons"]


def data_quality(warehouse: Warehouse, settings: Settings, reasons: int = 3) -> Table:
    """One line per raw source (the mart data_quality): rows landed, valid, quarantined,
    the quarantined percent, and the most frequent quarantine reasons (the `reasons`
    first, then how many more)."""
    mart = require_mart(warehouse, settings, "data_quality")
    _, counts = warehouse.query(
        f"select source_table, outcome, sum(row_count) from {mart} "
        "group by source_table, outcome order by source_table"
    )
    per_source: dict[str, dict[str, int]] = {}
    for source, outcome, row_count in counts:
        per_source.setdefault(source, {})[outcome] = int(row_count)
    rows: Rows = []
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


def ytd_spend_leaders(warehouse: Warehouse, settings: Settings, limit: int) -> Table:
    """Customers with the highest year-to-date spend in the latest month of the mart."""
    mart = require_mart(warehouse, settings, "customer_ytd_spend")
    return warehouse.query(
        "select customer_id, month_start, ytd_spend, monthly_spend, orders "
        f"from {mart} "
        f"where month_start = (select max(month_start) from {mart}) "
        "order by ytd_spend desc, customer_id limit ?",
        (limit,),
    )


def recency_buckets(warehouse: Warehouse, settings: Settings) -> Table:
    """How many current customers last bought within a week, a month, a quarter..."""
    mart = require_mart(warehouse, settings, "customer_days_since_last_purchase")
    return warehouse.query(
        "select case "
        "when not has_purchased then '5 never' "
        "when days_since_last_purchase <= 7 then '1 within 7 days' "
        "when days_since_last_purchase <= 30 then '2 within 30 days' "
        "when days_since_last_purchase <= 90 then '3 within 90 days' "
        "else '4 over 90 days' end as last_purchase, "
        "count(*) as customers, min(as_of_date) as as_of_date "
        f"from {mart} group by 1 order by 1"
    )


def message_buckets(warehouse: Warehouse, settings: Settings) -> Table:
    """How many current customers each messaging bucket holds, with the window used."""
    mart = require_mart(warehouse, settings, "customer_engagement")
    return warehouse.query(
        "select message_bucket, count(*) as customers, min(evaluated_at) as evaluated_at, "
        "min(engagement_window_weeks) as window_weeks, "
        "min(low_spend_threshold) as low_spend_threshold, "
        "min(high_activity_threshold) as high_activity_threshold "
        f"from {mart} group by message_bucket order by message_bucket"
    )


def most_contacted_crm_customer(warehouse: Warehouse, settings: Settings) -> int | None:
    """The CRM customer with the most interactions (lowest id on a tie), if any."""
    mart = require_mart(warehouse, settings, "customer_channel_interactions")
    _, rows = warehouse.query(
        f"select customer_id from {mart} order by total_interactions desc, customer_id limit 1"
    )
    return int(rows[0][0]) if rows else None


def check_day_range(start: date | None, end: date | None) -> None:
    """Refuse a range of days [start, end) that holds no day."""
    if start is not None and end is not None and start >= end:
        how = "is after" if start > end else "is the same day as"
        raise RunnerError(
            f"--start-date ({start}) {how} --end-date ({end}): days from the start to before "
            "the end are exported, so nothing can match."
        )


def channel_reporting(
    warehouse: Warehouse, settings: Settings, start: date | None, end: date | None
) -> Table:
    """The mart channel_reporting for days in [start, end), by day and channel (a range
    that holds no day is refused by check_day_range, before connecting)."""
    mart = require_mart(warehouse, settings, "channel_reporting")
    conditions: list[str] = ["1 = 1"]
    params: list[date] = []
    if start is not None:
        conditions.append("event_date >= ?")
        params.append(start)
    if end is not None:
        conditions.append("event_date < ?")
        params.append(end)
    return warehouse.query(
        "select event_date, channel_name, sessions, cost, ihc, ihc_revenue, cpo, roas "
        f"from {mart} where {' and '.join(conditions)} "
        "order by event_date, channel_name",
        params,
    )


def channel_totals(warehouse: Warehouse, settings: Settings) -> Table:
    """The mart channel_reporting summed over all days, per channel, by cost."""
    mart = require_mart(warehouse, settings, "channel_reporting")
    return warehouse.query(
        "select channel_name, sum(sessions) as sessions, sum(cost) as cost, "
        "cast(sum(ihc) as decimal(18, 2)) as ihc, sum(ihc_revenue) as ihc_revenue, "
        "cast(case when sum(ihc) <> 0 then sum(cost) / sum(ihc) end as decimal(18, 2)) as cpo, "
        "cast(case when sum(cost) <> 0 then sum(ihc_revenue) / sum(cost) end as decimal(18, 2)) "
        f"as roas from {mart} group by channel_name order by cost desc"
    )


@dataclass(frozen=True)
class Summary:
    """What `runner summary` shows: titled tables, and one CRM customer's interactions
    as the API serves them (None when there is no CRM customer)."""

    sections: list[tuple[str, Table]]
    contacted: int | None
    interactions: dict[str, Any] | None

    def describe(self) -> str:
        text = "\n\n".join(f"{title}\n{render(*table, 'table')}" for title, table in self.sections)
        if self.interactions is not None:
            text += (
                f"\n\nInteractions of CRM customer {self.contacted} (`runner interactions "
                f"{self.contacted}`, GET /api/v1/interactions/{self.contacted}):\n"
                f"{json.dumps(self.interactions)}"
            )
        return text


def summary(warehouse: Warehouse, settings: Settings, top: int) -> Summary:
    """What the marts hold: rows landed, valid and quarantined per source; the `top`
    customers by lifetime value and year-to-date spend; recency; messaging buckets;
    channel totals; and the most contacted CRM customer's interactions."""

    def mart(name: str) -> str:
        return settings.relation("marts", name)

    quality = data_quality(warehouse, settings)
    ltv = top_ltv(warehouse, settings, top)
    ytd = ytd_spend_leaders(warehouse, settings, top)
    recency = recency_buckets(warehouse, settings)
    buckets = message_buckets(warehouse, settings)
    channels = channel_totals(warehouse, settings)
    contacted = most_contacted_crm_customer(warehouse, settings)
    example = (
        customer_interactions(warehouse, settings, contacted) if contacted is not None else None
    )
    sections = [
        (
            "Rows landed per source: valid, quarantined, the main reasons "
            f"({mart('data_quality')}):",
            quality,
        ),
        (f"Top {top} customers by lifetime value ({mart('customer_ltv')}):", ltv),
        (f"Top {top} customers by year-to-date spend ({mart('customer_ytd_spend')}):", ytd),
        (
            f"Days since last purchase ({mart('customer_days_since_last_purchase')}):",
            recency,
        ),
        (f"App messaging buckets ({mart('customer_engagement')}):", buckets),
        (f"Channel report, all days ({mart('channel_reporting')}):", channels),
    ]
    return Summary(sections, contacted, example)
