"""An independent reference of the web event rules, in plain Python.

It re-implements, without SQL, what staging and the marts promise: which events are
valid (and otherwise their quarantine reason), latest-state orders, and customer
lifetime value with Sunday-Saturday weeks. Tests compare the warehouse to it and use
it to check the generator's output against the contract.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

VERBS = {
    "CUSTOMER": {"NEW", "UPDATE"},
    "SITE_VISIT": {"NEW"},
    "IMAGE": {"UPLOAD"},
    "ORDER": {"NEW", "UPDATE"},
}
TIME_SHAPE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:?\d{2})?$"
)
AMOUNT_SHAPE = re.compile(r"^(-?[0-9]{1,13}(?:[.][0-9]{1,2})?) *([A-Za-z]{3})$")


def parse_time(text: Any) -> datetime | None:
    """An ISO-8601 date-time as a naive UTC datetime; None when it is not one."""
    if not isinstance(text, str):
        return None
    match = TIME_SHAPE.match(text.strip())
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    if len(zone) == 5:  # +HHMM
        zone = zone[:3] + ":" + zone[3:]
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{fraction}{zone}")
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text.strip() or None


def classify(line: str) -> str | None:
    """The quarantine reason of one JSON text, None when the event is valid."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return "invalid_json"
    if not isinstance(value, dict):
        return "not_an_object"
    event_type = (_text(value.get("type")) or "").upper()
    verb = (_text(value.get("verb")) or "").upper()
    if not event_type:
        return "missing_type"
    if event_type not in VERBS:
        return "unknown_type"
    if not verb:
        return "missing_verb"
    if verb not in VERBS[event_type]:
        return "unknown_verb"
    if not _text(value.get("key")):
        return "missing_key"
    if not _text(value.get("event_time")):
        return "missing_event_time"
    if parse_time(value["event_time"]) is None:
        return "unparseable_event_time"
    if event_type != "CUSTOMER" and not _text(value.get("customer_id")):
        return "missing_customer_id"
    if event_type == "ORDER":
        amount = _text(value.get("total_amount"))
        if amount is None:
            return "missing_total_amount"
        match = AMOUNT_SHAPE.match(amount)
        if not match:
            return "unparseable_total_amount"
        if match.group(2).upper() != "USD":
            return "non_usd_total_amount"
    return None


@dataclass(frozen=True)
class Event:
    event_type: str
    verb: str
    key: str
    customer_id: str
    event_at: datetime
    amount: Decimal | None
    identity: str  # content identity: the same event landed twice has the same one


def valid_events(lines: list[str]) -> list[Event]:
    """Valid events in file order, duplicates included."""
    events = []
    for line in lines:
        if not line.strip() or classify(line) is not None:
            continue
        value = json.loads(line)
        event_type = _text(value["type"]).upper()
        key = _text(value["key"])
        amount = None
        if event_type == "ORDER":
            amount = Decimal(AMOUNT_SHAPE.match(_text(value["total_amount"])).group(1))
        event_at = parse_time(value["event_time"])
        identity = json.dumps(
            {**value, "event_time": event_at.isoformat(), "type": event_type}, sort_keys=True
        )
        events.append(
            Event(
                event_type=event_type,
                verb=_text(value["verb"]).upper(),
                key=key,
                customer_id=key if event_type == "CUSTOMER" else _text(value["customer_id"]),
                event_at=event_at,
                amount=amount,
                identity=identity,
            )
        )
    return events


def sunday_week_start(moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=(day.weekday() + 1) % 7)


def sunday_weeks_spanned(first: datetime, last: datetime) -> int:
    return (sunday_week_start(last) - sunday_week_start(first)).days // 7 + 1


@dataclass(frozen=True)
class Ltv:
    weeks_active: int
    site_visits: int
    orders: int
    total_revenue: Decimal
    ltv: Decimal


def customer_ltv(lines: list[str], lifespan_years: int = 10) -> dict[str, Ltv]:
    """Lifetime value per customer of one file's events (the `customer` timeframe)."""
    unique: dict[str, tuple[int, Event]] = {}
    for position, event in enumerate(valid_events(lines)):
        unique.setdefault(event.identity, (position, event))
    events = list(unique.values())

    latest_order: dict[str, tuple[tuple, Event]] = {}
    for position, event in events:
        if event.event_type == "ORDER":
            rank = (event.event_at, event.verb == "UPDATE", position)
            if event.key not in latest_order or rank > latest_order[event.key][0]:
                latest_order[event.key] = (rank, event)

    times: dict[str, list[datetime]] = defaultdict(list)
    visits: dict[str, set[str]] = defaultdict(set)
    for _, event in events:
        times[event.customer_id].append(event.event_at)
        if event.event_type == "SITE_VISIT":
            visits[event.customer_id].add(event.key)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    orders: dict[str, int] = defaultdict(int)
    for _, order in latest_order.values():
        revenue[order.customer_id] += order.amount
        orders[order.customer_id] += 1

    result = {}
    for customer_id, moments in times.items():
        weeks = sunday_weeks_spanned(min(moments), max(moments))
        value = revenue[customer_id] * 52 * lifespan_years / weeks
        result[customer_id] = Ltv(
            weeks_active=weeks,
            site_visits=len(visits[customer_id]),
            orders=orders[customer_id],
            total_revenue=revenue[customer_id],
            ltv=value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
        )
    return result
