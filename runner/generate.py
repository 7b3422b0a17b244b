"""Deterministic generator of realistic raw source files (for now: the web event stream).

Everything is drawn from one ``random.Random(seed)``, so the same arguments give byte-identical
files. Memory stays bounded whatever the number of customers: customers are generated one at a
time, their events are produced by a per-customer function, and the only buffer is the fixed-size
one that simulates out-of-order arrival.

The web stream is JSON Lines. Besides valid events it contains what real feeds contain: events
out of time order, verbatim duplicates, a few valid times with an explicit UTC offset, and a
trickle of deliberately bad records of every kind in ``BAD_KINDS`` (named after the quarantine
reasons of ``base_web__events``); each kind appears at least once in every file.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

WEB_EVENTS_SOURCE = "web-events"
WEB_EVENTS_FILE = "web_events.jsonl"
FIRST_CUSTOMER_ID = 10001

BUFFER_SIZE = 2000  # lines held back to simulate out-of-order arrival
BAD_RATE = 0.02  # bad records per valid event
DUPLICATE_RATE = 0.01  # valid lines repeated verbatim later
OFFSET_TIME_RATE = 0.005  # valid event times written with an offset instead of Z
HEAVY_CUSTOMER_RATE = 0.05
CUSTOMER_UPDATE_RATE = 0.15
IMAGE_RATE = 0.05  # per site visit
ORDER_RATE = 0.08  # per site visit
ORDER_UPDATE_RATE = 0.10  # per order
MEDIAN_ORDER_CENTS = 4000

BAD_KINDS = (
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "unknown_verb",
    "missing_key",
    "missing_customer_id",
    "unparseable_event_time",
    "non_usd_total_amount",
    "unparseable_total_amount",
    "missing_total_amount",
)

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Nguyen", "Kim", "O'Brien", "Muñoz", "Schmidt", "Patel",
)  # fmt: skip
CITIES = (
    ("New York", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"),
    ("Phoenix", "AZ"), ("Philadelphia", "PA"), ("San Antonio", "TX"), ("San Diego", "CA"),
    ("Dallas", "TX"), ("Seattle", "WA"), ("Denver", "CO"), ("Boston", "MA"),
    ("Portland", "OR"), ("Atlanta", "GA"), ("Miami", "FL"), ("Minneapolis", "MN"),
)  # fmt: skip
CAMERAS = (
    ("Apple", "iPhone 7"), ("Apple", "iPhone 6s"), ("Samsung", "Galaxy S7"),
    ("Google", "Pixel"), ("Canon", "EOS 80D"), ("Nikon", "D750"), ("Sony", "ILCE-7M2"),
)  # fmt: skip
TAGS = (
    ("utm_source", ("google", "facebook", "newsletter", "instagram")),
    ("utm_medium", ("cpc", "email", "social", "organic")),
    ("utm_campaign", ("winter_sale", "spring_launch", "loyalty")),
    ("page_category", ("shoes", "outerwear", "accessories", "kids")),
)
OFFSETS = (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)),
           timezone(timedelta(hours=5, minutes=30)))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class GeneratedFile:
    """One raw file written by ``generate``."""

    source: str  # the `runner load <source>` name that loads it
    path: Path
    rows: int  # records written (lines)


@dataclasses.dataclass(frozen=True)
class Customer:
    """A customer's profile at join time, shared by every source generated for them."""

    customer_id: int
    joined_at: datetime
    last_name: str
    city: str
    state: str
    visits_per_week: float


def generate(
    out_dir: Path, customers: int, seed: int, start_date: date = date(2017, 1, 1), days: int = 120
) -> list[GeneratedFile]:
    """Write raw files for every source the project has (for now only web events) into out_dir."""
    if customers < 0 or days < 1:
        raise ValueError("customers must be >= 0 and days >= 1")
    rng = random.Random(seed)
    start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc)
    end = start + timedelta(days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEB_EVENTS_FILE
    rows = 0
    with path.open("w", encoding="utf-8", newline="\n") as file:
        for line in web_event_lines(rng, iter_customers(rng, customers, start, end), start, end):
            file.write(line + "\n")
            rows += 1
    return [GeneratedFile(WEB_EVENTS_SOURCE, path, rows)]


def iter_customers(
    rng: random.Random, count: int, start: datetime, end: datetime
) -> Iterator[Customer]:
    """Yield ``count`` customers lazily, in join order, joining evenly over [start, end)."""
    window = (end - start).total_seconds()
    for index in range(count):
        joined_at = start + timedelta(seconds=window * (index + rng.random()) / count)
        city, state = rng.choice(CITIES)
        if rng.random() < HEAVY_CUSTOMER_RATE:
            visits_per_week = rng.uniform(8.0, 20.0)
        else:
            visits_per_week = rng.lognormvariate(0.0, 0.7)
        name = rng.choice(LAST_NAMES)
        yield Customer(FIRST_CUSTOMER_ID + index, joined_at, name, city, state, visits_per_week)


def web_events_for_customer(
    rng: random.Random, customer: Customer, end: datetime
) -> list[dict[str, Any]]:
    """All valid web events of one customer before ``end``, sorted by time.

    ``event_time`` is a timezone-aware datetime here; ``web_event_lines`` serialises it.
    """
    cid = customer.customer_id
    events = [_customer_event("NEW", customer, customer.joined_at)]
    if rng.random() < CUSTOMER_UPDATE_RATE:  # moved house
        city, state = rng.choice(CITIES)
        moved = dataclasses.replace(customer, city=city, state=state)
        events.append(_customer_event("UPDATE", moved, _between(rng, customer.joined_at, end)))
    serial = itertools.count(1)
    seconds_per_visit = 7 * 86400 / customer.visits_per_week
    when = customer.joined_at + timedelta(seconds=rng.uniform(1, 120))
    while when < end:
        events.append(_site_visit(rng, cid, when, next(serial)))
        if rng.random() < IMAGE_RATE:
            events.append(_image(rng, cid, _minutes_later(rng, when), next(serial)))
        if rng.random() < ORDER_RATE:
            order = _order(rng, cid, _minutes_later(rng, when), next(serial))
            events.append(order)
            if rng.random() < ORDER_UPDATE_RATE:
                events.append(_order_update(rng, order))
        when += timedelta(seconds=rng.expovariate(1 / seconds_per_visit))
    events = [event for event in events if event["event_time"] < end]
    events.sort(key=lambda event: event["event_time"])
    return events


def web_event_lines(
    rng: random.Random,
    customers: Iterable[Customer],
    start: datetime,
    end: datetime,
    buffer_size: int = BUFFER_SIZE,
) -> Iterator[str]:
    """Lazily yield the lines of the web event file, in arrival order."""
    return arrival_order(rng, _web_records(rng, customers, start, end), buffer_size)


def arrival_order(
    rng: random.Random, records: Iterable[tuple[str, bool]], buffer_size: int = BUFFER_SIZE
) -> Iterator[str]:
    """Reorder ``(line, may_duplicate)`` records through a buffer of at most ``buffer_size``.

    Lines leave the buffer in random order; a line that may be duplicated is, with probability
    ``DUPLICATE_RATE``, put back once so that it is written again later.
    """
    buffer: list[tuple[str, bool]] = []

    def release() -> str:
        index = rng.randrange(len(buffer))
        buffer[index], buffer[-1] = buffer[-1], buffer[index]
        line, may_duplicate = buffer.pop()
        if may_duplicate and rng.random() < DUPLICATE_RATE:
            buffer.append((line, False))
        return line

    for record in records:
        buffer.append(record)
        while len(buffer) > buffer_size:
            yield release()
    while buffer:
        yield release()


def format_event_time(when: datetime, offset: timezone = timezone.utc) -> str:
    """ISO-8601 with milliseconds: ``...T12:46:46.384Z`` in UTC, else ``...+02:00``."""
    if offset is timezone.utc:
        when = when.astimezone(timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.astimezone(offset).isoformat(timespec="milliseconds")


def _web_records(
    rng: random.Random, customers: Iterable[Customer], start: datetime, end: datetime
) -> Iterator[tuple[str, bool]]:
    """``(line, is_valid)`` in generation order: one bad record of each kind, then each
    customer's events with a trickle of bad records among them."""
    serial = itertools.count(1)  # makes the keys of bad records unique
    for kind in BAD_KINDS:
        when = _between(rng, start, end)
        yield _bad_record(rng, kind, FIRST_CUSTOMER_ID, when, next(serial)), False
    for customer in customers:
        cid = customer.customer_id
        for event in web_events_for_customer(rng, customer, end):
            when = event["event_time"]
            offset = rng.choice(OFFSETS) if rng.random() < OFFSET_TIME_RATE else timezone.utc
            yield _dumps({**event, "event_time": format_event_time(when, offset)}), True
            if rng.random() < BAD_RATE:
                yield _bad_record(rng, rng.choice(BAD_KINDS), cid, when, next(serial)), False


def _bad_record(
    rng: random.Random, kind: str, customer_id: int, when: datetime, serial: int
) -> str:
    """One line that the staging layer must quarantine for reason ``kind``."""
    if kind in ("non_usd_total_amount", "unparseable_total_amount", "missing_total_amount"):
        event = _order(rng, customer_id, when, serial)
    else:
        make = rng.choice((_site_visit, _image, _order))
        event = make(rng, customer_id, when, serial)
    event["key"] = f"{event['key']}-x"  # never the key of a valid event
    event["event_time"] = format_event_time(when)
    if kind == "invalid_json":  # a strict prefix of an object never parses
        text = _dumps(event)
        return text[: rng.randrange(1, len(text) - 1)]
    if kind == "not_an_object":
        return rng.choice(("[1,2]", '"ORDER"', "42", _dumps([event])))
    if kind == "unknown_type":
        event["type"] = rng.choice(("CLICK", "PAGE_VIEW", "REFUND"))
    elif kind == "unknown_verb":
        event["verb"] = rng.choice(("UPLOAD", "DELETE")) if event["type"] == "ORDER" else "CANCEL"
    elif kind == "missing_key":
        del event["key"]
    elif kind == "missing_customer_id":
        del event["customer_id"]
    elif kind == "unparseable_event_time":
        bad_times = ("2017-02-30T10:00:00Z", "2017-13-01T00:00:00.000Z", "yesterday", "06/01/2017")
        event["event_time"] = rng.choice(bad_times)
    elif kind == "non_usd_total_amount":
        event["total_amount"] = event["total_amount"].replace("USD", rng.choice(("EUR", "GBP")))
    elif kind == "unparseable_total_amount":
        event["total_amount"] = rng.choice(("twelve USD", "12,34 USD", "USD 12.34"))
    elif kind == "missing_total_amount":
        del event["total_amount"]
    else:
        raise ValueError(f"unknown bad record kind {kind!r}")
    return _dumps(event)


def _event(event_type: str, verb: str, key: str, when: datetime, **fields: Any) -> dict[str, Any]:
    """A valid event; ``event_time`` stays a datetime until the line is serialised."""
    return {"type": event_type, "verb": verb, "key": key, "event_time": when, **fields}


def _customer_event(verb: str, customer: Customer, when: datetime) -> dict[str, Any]:
    return _event(
        "CUSTOMER",
        verb,
        str(customer.customer_id),
        when,
        last_name=customer.last_name,
        adr_city=customer.city,
        adr_state=customer.state,
    )


def _site_visit(rng: random.Random, cid: int, when: datetime, serial: int) -> dict[str, Any]:
    names = rng.sample(TAGS, rng.choice((0, 1, 1, 2, 3)))
    tags = [{name: rng.choice(values)} for name, values in names]
    return _event(
        "SITE_VISIT", "NEW", f"p-{cid}-{serial:04d}", when, customer_id=str(cid), tags=tags
    )


def _image(rng: random.Random, cid: int, when: datetime, serial: int) -> dict[str, Any]:
    make, model = rng.choice(CAMERAS)
    key = f"i-{cid}-{serial:04d}"
    return _event(
        "IMAGE", "UPLOAD", key, when, customer_id=str(cid), camera_make=make, camera_model=model
    )


def _order(rng: random.Random, cid: int, when: datetime, serial: int) -> dict[str, Any]:
    """A new order with a log-normal amount (median ``MEDIAN_ORDER_CENTS``, at least 1 USD)."""
    cents = max(100, round(rng.lognormvariate(math.log(MEDIAN_ORDER_CENTS), 0.75)))
    amount = _usd(cents)
    return _event(
        "ORDER", "NEW", f"o-{cid}-{serial:04d}", when, customer_id=str(cid), total_amount=amount
    )


def _order_update(rng: random.Random, order: dict[str, Any]) -> dict[str, Any]:
    """The same order a few hours or days later, with an item added or removed."""
    cents = int(order["total_amount"].split()[0].replace(".", ""))
    item = max(100, round(cents * rng.uniform(0.1, 0.5)))
    cents = cents - item if cents - item >= 100 and rng.random() < 0.6 else cents + item
    when = order["event_time"] + timedelta(seconds=rng.expovariate(1 / (2 * 86400)))
    return {**order, "verb": "UPDATE", "event_time": when, "total_amount": _usd(cents)}


def _usd(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d} USD"


def _between(rng: random.Random, low: datetime, high: datetime) -> datetime:
    return low + timedelta(seconds=rng.uniform(0, (high - low).total_seconds()))


def _minutes_later(rng: random.Random, when: datetime) -> datetime:
    return when + timedelta(seconds=rng.uniform(60, 1800))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
