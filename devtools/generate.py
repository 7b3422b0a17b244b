"""Deterministic generator of realistic raw source files: the web event stream and the store
system's customer extracts and sales.

The web stream is drawn from one ``random.Random(seed)``, the store files from their own
``random.Random(f"store-{seed}")``, so the same arguments give byte-identical files and adding
store data never changed a web file. Memory stays bounded whatever the number of customers:
customers are generated one at a time, their records are produced by per-customer functions, and
the only buffers are the fixed-size ones that simulate out-of-order arrival.

The web stream is JSON Lines. Event keys are 12 lowercase hex digits, as in the Shutterfly sample
(``_key``); customer ids are text: the number shared with the other systems (see below) or, for
web-only customers, 12 hex digits. Besides valid events it contains what real feeds contain: events
out of time order, verbatim duplicates, a few valid times with an explicit UTC offset, and a trickle
of deliberately bad records of every kind in ``BAD_KINDS`` (named after the quarantine reasons of
``base_web__events``); each kind appears at least once in every file.

Every run also writes two files that are not raw data: the manifest ``generate.json``
(``MANIFEST_FILE``), which records the world (``customers``, ``seed``, ``start_date`` and
``days`` of the initial window, ``days_appended`` so far, the files written: name, ``runner
load`` source, records) and names its customers file, ``generate-customers-<YYYY-MM-DD>.csv``:
one line per web customer, in join order, with what later days need to know of them (id, join
time, last name, current city and state, visits per week) as they stand at the end of that day,
written as the stream goes. A new run in a folder removes the appended days and the customers
file of the world generated there before.

``append_days`` (``runner generate --append``) continues the web stream of such a folder one day
at a time: ``web_events_<YYYY-MM-DD>.jsonl`` and the next customers file are new files, the
manifest is rewritten (it commits the day) and the previous customers file is removed; no other
file changes. Each day is drawn from its own ``random.Random(f"web-{seed}-{YYYY-MM-DD}")`` in
one streaming pass over the customers file (whatever the history's size, memory stays bounded),
so appending one day twice writes exactly what appending two days at once does. In a day: every
customer visits at their weekly rate (images, orders and order updates as before), a few move
house (customer UPDATE events, about ``CUSTOMER_UPDATE_RATE`` per customer per initial window),
new customers join at the initial rate (``customers / days`` a day: web-only customers, with
the web shop's own 12-hex ids, see ``web_only_customer_id``), a few visits are late
(``LATE_RATE``: they happened on one of the ``LATE_DAYS`` days before and arrive in this file;
every file has at least one), and the file has the stream's disorder, duplicates, offset times
and bad records of every kind. The labels hashed into the keys of appended events carry the day
(``_key``), so they never equal a key of another file, except for updates of an entity (a
customer who moves, an order) and verbatim duplicates. Only the web
stream grows: the store, CRM, app and marketing files keep their initial window.

The store system delivers CSV files (see ``StoreWriter``): full customer extracts on up to three
delivery days, ``store_customers_<YYYY-MM-DD>.csv`` (``ID,Name,City``; each overwrites the last,
no history), and its sales, ``store_sales.csv``
(``CustomerID,Product,SalesAmount,ShopId,TransactionDate``). ``customer_id`` is the company-wide
key: about 60% of the web customers also shop in stores, next to store-only customers (ids from
90001) and late-arriving customers (ids from 95001) whose sales arrive but whom no extract shows.
Between extracts customers move city (a few move back), disappear, or appear. The files carry the
dirt such exports carry: surrounding spaces, CRLF line endings, empty trailing lines, quoted names
with commas, non-ASCII names, blank ids, exact duplicate rows, refunds, mixed date formats and
rows of every kind in ``STORE_SALES_BAD_KINDS`` (named after the quarantine reasons of
``base_store__sales``); every kind appears at least once in every run, however small. With
``store_format="parquet"`` (``runner generate --store-format parquet``) the same files are
written as Parquet, string columns holding the CSV's fields as they are
(``store_file_as_parquet``): the store team's preferred format, for trying that path.

The CRM (``CrmWriter``, ``random.Random(f"crm-{seed}")``) delivers ``crm_customers.csv``
(``Customer_Id,Occupation,Type``: about half the web customers and a few CRM-only ones, ids from
80001), ``crm_interactions.csv`` (``Date Start,Interaction,Customers``: contacts on the channels
of ``CRM_CHANNELS`` only, dated ``DD/MM/YYYY HH:MM``) and ``crm_products.csv``
(``date,product``: the product discussed each month, ``MM-YYYY``, one month without). Both
activity files use CRLF line endings, end with empty lines, and carry rows of every kind in
``CRM_INTERACTION_BAD_KINDS`` and a month 13.

The mobile app (``AppWriter``, ``random.Random(f"app-{seed}")``) delivers
``app_sessions.jsonl`` (``customer_id``, ``session_started_at``) and ``app_purchases.csv``
(``customer_id,purchased_at,amount``) for about 40% of the web customers, with ISO-8601 times
(some without a zone, meaning UTC), heavy and light users, big and small spenders, bad records of
every kind in ``APP_SESSION_BAD_KINDS`` and ``APP_PURCHASE_BAD_KINDS``, and records dated after
the window. Each new source has its own random stream, so the web and store files are the same
bytes as before they existed.

The marketing system (``MarketingWriter``, ``random.Random(f"marketing-{seed}")``) delivers the same
three tables twice: as a folder ``marketing/`` of CSV files (``session_sources.csv``,
``conversions.csv``, ``session_costs.csv``) and as the SQLite database ``marketing.sqlite`` (tables
of those names; byte-identical for a seed with a given SQLite library). Its ids (``conv_id``,
``session_id``, ``user_id``) are 64 lowercase hex digits, as in the IHC challenge's ``challenge.db``
(``marketing_id``). ``user_id`` is the marketing platform's own id, never a customer id of another
system: its users are about 70% of the web customers (the platform's id of each is a hash, which no
model can join to them) and some marketing-only users. Sessions come from the channels of
``MARKETING_CHANNELS``; conversions follow some of their user's sessions; costs are missing for some
sessions (always for Direct) and null for a few. Every run, however small, has a conversion without
an earlier session, one at exactly the time of a session, two conversions of one user and one
journey of more than 200 sessions, and rows of every kind in ``MARKETING_SESSION_BAD_KINDS`` and
``CONVERSION_BAD_KINDS`` and an exact duplicate session row.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import math
import random
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from runner.errors import RunnerError

WEB_EVENTS_SOURCE = "web-events"
WEB_EVENTS_FILE = "web_events.jsonl"
FIRST_CUSTOMER_ID = 10001
DEFAULT_START_DATE = date(2017, 1, 1)
DEFAULT_DAYS = 120
MANIFEST_FILE = "generate.json"
CUSTOMERS_HEADER = ("customer_id", "joined_at", "last_name", "city", "state", "visits_per_week")
DAY_FILE = re.compile(r"web_events_\d{4}-\d{2}-\d{2}\.jsonl")  # an appended day's file

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
LATE_RATE = 0.02  # visits of an appended day that happened on an earlier day
LATE_DAYS = 3  # how many days before their file late visits happened, at most

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

STORE_CUSTOMERS_SOURCE = "store-customers"
STORE_SALES_SOURCE = "store-sales"
STORE_SALES_FILE = "store_sales.csv"
STORE_CUSTOMERS_HEADER = ("ID", "Name", "City")
STORE_SALES_HEADER = ("CustomerID", "Product", "SalesAmount", "ShopId", "TransactionDate")

STORE_SHARE = 0.6  # web customers who also shop in stores
STORE_ONLY_RATE = 0.10  # store-only customers per web customer
LATE_CUSTOMER_RATE = 0.015  # customers with sales that no extract shows, per web customer
MOVE_RATE = 0.10  # per customer and extract after their first: shown in another city
MOVE_BACK_RATE = 0.30  # per customer who moved and is in a later extract: moved back
DISAPPEAR_RATE = 0.03  # customers missing from every extract after some point
NAME_SUFFIX_RATE = 0.02  # names like "Maria Garcia, Jr." (quoted in the CSV)
EXTRACT_PAD_RATE = 0.02  # extract rows with spaces around their fields
EXTRACT_DUPLICATE_RATE = 0.005  # extract rows written twice
EXTRACT_BLANK_ID_RATE = 0.003  # extra extract rows with a blank ID
HEAVY_SHOPPER_RATE = 0.03
MEDIAN_SALES_PER_WEEK = 0.35
MEDIAN_SALE_CENTS = 5000
HOME_SHOP_RATE = 0.75  # sales in the customer's usual shop
SHOP_COUNT = 12  # ShopId 1..12
SHOP_HOURS = (9, 21)  # sales happen between 09:00 and 21:00
REFUND_RATE = 0.03  # per sale: refunded later (a negative amount)
REFUND_DAYS = 14  # refunds come within two weeks of the sale
SALES_PAD_RATE = 0.02  # valid sales rows with spaces around their fields
SALES_BAD_RATE = 0.01  # bad rows per sale

# Named after the quarantine reasons of base_store__sales.
STORE_SALES_BAD_KINDS = (
    "missing_customer_id",
    "unparseable_customer_id",
    "missing_amount",
    "unparseable_amount",
    "missing_transaction_date",
    "unparseable_transaction_date",
)
SALE_TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ")
SALE_TIME_WEIGHTS = (3, 4, 3)
FIRST_NAMES = (
    "Maria", "James", "José", "Linda", "Wei", "Zoë", "Michael", "Aisha",
    "David", "Chloé", "Robert", "Ana", "Björn", "Sarah", "Luis", "Emily",
)  # fmt: skip
NAME_SUFFIXES = ("Jr.", "Sr.", "III")
NON_ASCII_LAST_NAMES = ("Muñoz", "Müller", "Sørensen")
CITY_NAMES = tuple(city for city, _ in CITIES)
PRODUCTS = (
    "Sneakers", "Rain Jacket", "Scarf", "Wool Socks", "Backpack", "Beanie",
    "Hiking Boots", "Sunglasses", "T-Shirt", "Gloves",
)  # fmt: skip

CRM_CUSTOMERS_SOURCE = "crm-customers"
CRM_INTERACTIONS_SOURCE = "crm-interactions"
CRM_PRODUCTS_SOURCE = "crm-products"
CRM_CUSTOMERS_FILE = "crm_customers.csv"
CRM_INTERACTIONS_FILE = "crm_interactions.csv"
CRM_PRODUCTS_FILE = "crm_products.csv"
CRM_CUSTOMERS_HEADER = ("Customer_Id", "Occupation", "Type")
CRM_INTERACTIONS_HEADER = ("Date Start", "Interaction", "Customers")
CRM_PRODUCTS_HEADER = ("date", "product")
CRM_TIME_FORMAT = "%d/%m/%Y %H:%M"  # Date Start, 24h, CRM-local (naive)
CRM_MONTH_FORMAT = "%m-%Y"  # the month of a product row

CRM_SHARE = 0.5  # web customers who are also in the CRM
CRM_ONLY_RATE = 0.03  # CRM-only customers per web customer
CRM_UNKNOWN_SPAN = 100  # ids right after the CRM-only ones, used for unknown customers
CRM_NO_CONTACT_RATE = 0.15  # CRM customers never contacted
MEDIAN_INTERACTIONS_PER_WEEK = 0.2
CRM_STRAY_RATE = 0.01  # web customers outside the CRM with one interaction logged anyway
CRM_BAD_RATE = 0.01  # bad interaction rows per interaction
OFFICE_HOURS = (8, 20)  # interactions start between 08:00 and 19:59
# The channels of the dbt seed: any other value would fail the build. Boat is rare.
CRM_CHANNELS = ("Email", "Call", "Bird", "Boat", "Post", "SMS", "Chat")
CRM_CHANNEL_WEIGHTS = (30, 20, 3, 1, 8, 18, 20)
OCCUPATIONS = (
    "Engineer", "Teacher", "Nurse", "Chef", "Designer", "Accountant", "Electrician",
    "Pharmacist", "Journalist", "Architect", "Student", "Retired",
)  # fmt: skip
CRM_TYPES = ("Red", "Orange", "Blue")
CRM_TYPE_WEIGHTS = (5, 3, 2)

# Why a CRM interaction row cannot be used as it is (the loader or staging drops or flags it).
CRM_INTERACTION_BAD_KINDS = (
    "missing_date",
    "unparseable_date",
    "missing_channel",
    "missing_customer_id",
    "unparseable_customer_id",
    "unknown_customer_id",  # a well-formed id that crm_customers.csv does not list
)

APP_SESSIONS_SOURCE = "app-sessions"
APP_PURCHASES_SOURCE = "app-purchases"
APP_SESSIONS_FILE = "app_sessions.jsonl"
APP_PURCHASES_FILE = "app_purchases.csv"
APP_PURCHASES_HEADER = ("customer_id", "purchased_at", "amount")
APP_CONTACTS_SOURCE = "app-contacts"
APP_CONTACTS_FILE = "app_contacts.csv"
APP_CONTACTS_HEADER = ("customer_id", "phone_number")
CONTACT_SHARE = 0.9  # app users the app team has a phone number for
CONTACT_STYLED_RATE = 0.1  # numbers written with spaces and dashes (+1 415-555-0100)
CONTACT_INVALID_RATE = 0.03  # numbers not in E.164 (a national 0... number): quarantined

APP_SHARE = 0.4  # web customers who use the app
APP_HEAVY_RATE = 0.12  # app users with many sessions a week
HEAVY_SESSIONS_PER_WEEK = (7.0, 15.0)
MEDIAN_SESSIONS_PER_WEEK = 1.0
MEDIAN_PURCHASES_PER_SESSION = 0.25
MEDIAN_PURCHASE_CENTS = 3000
NAIVE_TIME_RATE = 0.2  # app times written without a zone (meaning UTC)
APP_BAD_RATE = 0.003  # bad lines per session, bad rows per purchase
APP_FUTURE_RATE = 0.01  # app users with a session dated after the window (a wrong clock)
FUTURE_DAYS = (1.0, 5.0)  # how far after the window future-dated records are
FINAL_WEEKS = 8  # the period the app messages look at: the window's last 8 weeks

APP_SESSION_BAD_KINDS = ("invalid_json", "missing_customer_id", "unparseable_session_started_at")
APP_PURCHASE_BAD_KINDS = ("missing_customer_id", "unparseable_amount", "unparseable_purchased_at")

MARKETING_SOURCE = "marketing"  # both the CSV folder and the SQLite file load with this name
MARKETING_DIR = "marketing"
MARKETING_SQLITE_FILE = "marketing.sqlite"
SESSION_SOURCES_TABLE = "session_sources"
CONVERSIONS_TABLE = "conversions"
SESSION_COSTS_TABLE = "session_costs"
# Each table's columns with their SQLite types, in order: the CSV header and the SQLite schema.
MARKETING_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    SESSION_SOURCES_TABLE: (
        ("session_id", "TEXT"),
        ("user_id", "TEXT"),
        ("event_date", "TEXT"),
        ("event_time", "TEXT"),
        ("channel_name", "TEXT"),
        ("holder_engagement", "INTEGER"),
        ("closer_engagement", "INTEGER"),
        ("impression_interaction", "INTEGER"),
    ),
    CONVERSIONS_TABLE: (
        ("conv_id", "TEXT"),
        ("user_id", "TEXT"),
        ("conv_date", "TEXT"),
        ("conv_time", "TEXT"),
        ("revenue", "REAL"),
    ),
    SESSION_COSTS_TABLE: (("session_id", "TEXT"), ("cost", "REAL")),
}
SQLITE_PAGE_SIZE = 4096

MARKETING_SHARE = 0.7  # web customers the marketing system knows
MARKETING_ONLY_RATE = 0.10  # marketing-only users per web customer
FIRST_TOUCH_DAYS = 10.0  # mean days from a web customer's first session to their joining
MEDIAN_MARKETING_SESSIONS_PER_WEEK = 0.8
MAX_SESSIONS_PER_USER = 120  # well below HEAVY_JOURNEY_SESSIONS
HEAVY_JOURNEY_SESSIONS = 210  # the scripted heavy user's sessions before their conversion
FAVOURITE_CHANNEL_RATE = 0.4  # sessions from the user's favourite channel
CONVERTER_RATE = 0.3  # users who convert (1 to 3 times)
CONVERSIONS_PER_CONVERTER = ((1, 2, 3), (6, 3, 1))  # counts and their weights
MEDIAN_CONVERSION_DELAY = 1200.0  # seconds from a session to the conversion that follows it
MAX_CONVERSION_DELAY = 2 * 86400.0
MEDIAN_REVENUE_CENTS = 6000
MISSING_COST_RATE = 0.04  # sessions of a paid or free channel without a cost row
NULL_COST_RATE = 0.02  # cost rows with an empty cost
SESSION_DUPLICATE_RATE = 0.005  # session rows written twice
MARKETING_BAD_RATE = 0.005  # bad rows per session and per conversion

MARKETING_CHANNELS = (
    "Paid Search", "Organic Search", "Email", "FB & IG Ads", "Social Organic", "Display",
    "Affiliate", "Direct",
)  # fmt: skip
MARKETING_CHANNEL_WEIGHTS = (20, 22, 12, 10, 8, 10, 5, 13)


class ChannelProfile(NamedTuple):
    """How sessions of a marketing channel look: the chances of their three flags and the range
    of their cost in cents (None: the channel never costs anything and has no cost rows)."""

    impression: float
    holder: float
    closer: float
    cost_cents: tuple[int, int] | None


CHANNEL_PROFILES = {
    "Paid Search": ChannelProfile(0.05, 0.30, 0.25, (30, 500)),
    "Organic Search": ChannelProfile(0.02, 0.35, 0.20, (0, 0)),
    "Email": ChannelProfile(0.10, 0.40, 0.30, (0, 20)),
    "FB & IG Ads": ChannelProfile(0.80, 0.25, 0.10, (20, 400)),
    "Social Organic": ChannelProfile(0.60, 0.30, 0.08, (0, 0)),
    "Display": ChannelProfile(0.90, 0.15, 0.05, (5, 150)),
    "Affiliate": ChannelProfile(0.05, 0.30, 0.30, (50, 500)),
    "Direct": ChannelProfile(0.00, 0.45, 0.35, None),
}

# Why a marketing row cannot be used as it is.
MARKETING_SESSION_BAD_KINDS = ("unparseable_event_time", "missing_user_id")
CONVERSION_BAD_KINDS = ("unparseable_revenue", "missing_conv_date")
BAD_EVENT_TIMES = ("25:61:00", "12:75:00", "24:00:01")  # the first is in every run
BAD_REVENUES = ("abc", "n/a", "12.5.0")  # the first is in every run


@dataclasses.dataclass(frozen=True)
class GeneratedFile:
    """One raw file written by ``generate``."""

    source: str  # the `runner load <source>` name that loads it
    path: Path
    rows: int  # records written (data lines: no CSV header, no blank lines)
    extract_date: date | None = None  # the delivery day of a store customer extract


@dataclasses.dataclass(frozen=True)
class Customer:
    """A customer's profile at join time, shared by every source generated for them. The id is
    the number the web shop shares with the store, CRM, app and marketing systems, or (a
    web-only customer: those who join on appended days) the web shop's own 12-hex id."""

    customer_id: int | str
    joined_at: datetime
    last_name: str
    city: str
    state: str
    visits_per_week: float


def generate(
    out_dir: Path,
    customers: int,
    seed: int,
    start_date: date = DEFAULT_START_DATE,
    days: int = DEFAULT_DAYS,
    store_format: str = "csv",
) -> list[GeneratedFile]:
    """Write raw files for every source into out_dir and describe them, in this order: the web
    events, the store customer extracts (by date), the store sales, the CRM customers,
    interactions and products, the app sessions and purchases, the marketing CSV folder and the
    marketing SQLite database (one entry each, ``rows`` counting the rows of all three tables).
    ``store_format`` "parquet" writes the store's files as Parquet instead of CSV, with the same
    records (``store_file_as_parquet``).

    All files are written in one pass over the customers: the store, the CRM, the app and the
    marketing system see the web customers as the web stream generates them (``StoreWriter.tap``,
    ``CrmWriter.tap``, ``AppWriter.tap``, ``MarketingWriter.tap``), each drawing from its own
    random stream and never from the web's, so adding a source never changes the files of the
    others.

    Also writes the customers file and the manifest (see the module docstring), after removing
    the appended days and customers file of a world generated there before.
    """
    if customers < 0 or days < 1:
        raise ValueError("customers must be >= 0 and days >= 1")
    if store_format not in STORE_FORMATS:
        raise ValueError(f"store_format must be one of {', '.join(STORE_FORMATS)}")
    rng = random.Random(seed)
    start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc)
    end = start + timedelta(days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_world(out_dir)
    manifest = Manifest(customers, seed, start_date, days, 0, ())
    path = out_dir / WEB_EVENTS_FILE
    rows = 0
    with ExitStack() as stack:
        file = stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
        customers_out = _CustomersOut(stack, out_dir / manifest.customers_file)
        store = StoreWriter(stack, out_dir, seed, start_date, days, customers)
        crm = CrmWriter(stack, out_dir, seed, start_date, days, customers)
        app = AppWriter(stack, out_dir, seed, start_date, days)
        marketing = MarketingWriter(stack, out_dir, seed, start_date, days, customers)
        web_customers = marketing.tap(
            app.tap(crm.tap(store.tap(iter_customers(rng, customers, start, end))))
        )
        lines = web_event_lines(rng, web_customers, start, end, customers_out=customers_out)
        for line in lines:
            file.write(line + "\n")
            rows += 1
        store_files = store.finish()
        crm_files = crm.finish()
        app_files = [*app.finish(), app.contacts.finish()]
        marketing_files = marketing.finish()
    if store_format == "parquet":  # the CSV files are closed and complete: rewrite them
        store_files = [store_file_as_parquet(generated) for generated in store_files]
    written = [
        GeneratedFile(WEB_EVENTS_SOURCE, path, rows),
        *store_files,
        *crm_files,
        *app_files,
        *marketing_files,
    ]
    files = tuple(_manifest_entry(generated) for generated in written)
    _write_manifest(out_dir, dataclasses.replace(manifest, files=files))
    return written


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
    events = [_customer_event("NEW", customer, customer.joined_at)]
    if rng.random() < CUSTOMER_UPDATE_RATE:
        events.append(_move(rng, customer, customer.joined_at, end))
    serials = itertools.count(1)
    seconds_per_visit = 7 * 86400 / customer.visits_per_week
    when = customer.joined_at + timedelta(seconds=rng.uniform(1, 120))
    while when < end:
        events.extend(_visit(rng, customer.customer_id, when, serials))
        when += timedelta(seconds=rng.expovariate(1 / seconds_per_visit))
    return _sorted_before(events, end)


def _move(rng: random.Random, customer: Customer, low: datetime, high: datetime) -> dict[str, Any]:
    """The customer moved house: an UPDATE with a random city, at a random time in [low, high)."""
    city, state = rng.choice(CITIES)
    moved = dataclasses.replace(customer, city=city, state=state)
    return _customer_event("UPDATE", moved, _between(rng, low, high))


def _visit(
    rng: random.Random, cid: int | str, when: datetime, serials: Iterator[int | str]
) -> list[dict[str, Any]]:
    """The events of one site visit: the visit, maybe an image upload, maybe an order (which
    maybe gets updated later; the caller drops events past its window)."""
    events = [_site_visit(rng, cid, when, next(serials))]
    if rng.random() < IMAGE_RATE:
        events.append(_image(rng, cid, _minutes_later(rng, when), next(serials)))
    if rng.random() < ORDER_RATE:
        order = _order(rng, cid, _minutes_later(rng, when), next(serials))
        events.append(order)
        if rng.random() < ORDER_UPDATE_RATE:
            events.append(_order_update(rng, order))
    return events


def _sorted_before(events: list[dict[str, Any]], end: datetime) -> list[dict[str, Any]]:
    """The events before ``end``, sorted by time."""
    events = [event for event in events if event["event_time"] < end]
    events.sort(key=lambda event: event["event_time"])
    return events


def web_event_lines(
    rng: random.Random,
    customers: Iterable[Customer],
    start: datetime,
    end: datetime,
    buffer_size: int = BUFFER_SIZE,
    customers_out: _CustomersOut | None = None,
) -> Iterator[str]:
    """Lazily yield the lines of the web event file, in arrival order; write each customer's
    line of the customers file to ``customers_out``, if given."""
    customer_events = ((c, web_events_for_customer(rng, c, end)) for c in customers)
    records = _web_records(rng, customer_events, start, end, itertools.count(1), customers_out)
    return arrival_order(rng, records, buffer_size)


def arrival_order(
    rng: random.Random, records: Iterable[tuple[str, bool]], buffer_size: int = BUFFER_SIZE
) -> Iterator[str]:
    """Reorder ``(line, may_duplicate)`` records through a buffer of at most ``buffer_size``.

    Lines leave the buffer in random order; a line that may be duplicated is, with probability
    ``DUPLICATE_RATE``, put back once so that it is written again later.
    """
    buffer: list[tuple[str, bool]] = []
    for record in records:
        buffer.append(record)
        while len(buffer) > buffer_size:
            yield release_line(rng, buffer)
    while buffer:
        yield release_line(rng, buffer)


def release_line(rng: random.Random, buffer: list[tuple[str, bool]]) -> str:
    """Take a random line out of a non-empty arrival buffer of ``(line, may_duplicate)``.

    A line that may be duplicated is, with probability ``DUPLICATE_RATE``, put back once.
    """
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    line, may_duplicate = buffer.pop()
    if may_duplicate and rng.random() < DUPLICATE_RATE:
        buffer.append((line, False))
    return line


def format_event_time(when: datetime, offset: timezone = timezone.utc) -> str:
    """ISO-8601 with milliseconds: ``...T12:46:46.384Z`` in UTC, else ``...+02:00``."""
    if offset is timezone.utc:
        when = when.astimezone(timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.astimezone(offset).isoformat(timespec="milliseconds")


def _web_records(
    rng: random.Random,
    customer_events: Iterable[tuple[Customer, list[dict[str, Any]]]],
    start: datetime,
    end: datetime,
    serials: Iterator[int | str],
    customers_out: _CustomersOut | None = None,
) -> Iterator[tuple[str, bool]]:
    """``(line, is_valid)`` in generation order: one bad record of each kind (at a time in
    [start, end)), then each customer's events with a trickle of bad records among them.

    ``serials`` make the keys of bad records unique. ``customers_out`` gets each customer's line
    of the customers file, as the customer stands after their events.
    """
    for kind in BAD_KINDS:
        when = _between(rng, start, end)
        yield _bad_record(rng, kind, FIRST_CUSTOMER_ID, when, next(serials)), False
    for customer, events in customer_events:
        if customers_out is not None:
            customers_out.write(customer, events)
        cid = customer.customer_id
        for event in events:
            when = event["event_time"]
            offset = rng.choice(OFFSETS) if rng.random() < OFFSET_TIME_RATE else timezone.utc
            yield _dumps({**event, "event_time": format_event_time(when, offset)}), True
            if rng.random() < BAD_RATE:
                yield _bad_record(rng, rng.choice(BAD_KINDS), cid, when, next(serials)), False


def _bad_record(
    rng: random.Random, kind: str, customer_id: int, when: datetime, serial: int | str
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


def _key(prefix: str, cid: int | str, serial: int | str) -> str:
    """An event key: 12 lowercase hex digits, like the Shutterfly sample's (``96f55c7d8f42``),
    the start of the SHA-256 of the event's ``_key_label``. 48 bits: two keys of a stream of n
    events are equal with a chance of about n * n / 2**49 (1 in 560 for a million events, 1 in
    6 for ten million)."""
    return hashlib.sha256(_key_label(prefix, cid, serial).encode()).hexdigest()[:12]


def _key_label(prefix: str, cid: int | str, serial: int | str) -> str:
    """A label unique to an event: ``p-10001-0042`` for the site visit of serial 42 of customer
    10001. Appended days use text serials (``20170501-0042``, see ``_day_serials``), so their
    labels never equal one of the initial file nor of another day."""
    return f"{prefix}-{cid}-{serial:04d}" if isinstance(serial, int) else f"{prefix}-{cid}-{serial}"


def _site_visit(
    rng: random.Random, cid: int | str, when: datetime, serial: int | str
) -> dict[str, Any]:
    names = rng.sample(TAGS, rng.choice((0, 1, 1, 2, 3)))
    tags = [{name: rng.choice(values)} for name, values in names]
    return _event(
        "SITE_VISIT", "NEW", _key("p", cid, serial), when, customer_id=str(cid), tags=tags
    )


def _image(rng: random.Random, cid: int | str, when: datetime, serial: int | str) -> dict[str, Any]:
    make, model = rng.choice(CAMERAS)
    key = _key("i", cid, serial)
    return _event(
        "IMAGE", "UPLOAD", key, when, customer_id=str(cid), camera_make=make, camera_model=model
    )


def _order(rng: random.Random, cid: int | str, when: datetime, serial: int | str) -> dict[str, Any]:
    """A new order with a log-normal amount (median ``MEDIAN_ORDER_CENTS``, at least 1 USD)."""
    cents = max(100, round(rng.lognormvariate(math.log(MEDIAN_ORDER_CENTS), 0.75)))
    amount = _usd(cents)
    return _event(
        "ORDER", "NEW", _key("o", cid, serial), when, customer_id=str(cid), total_amount=amount
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


# --- The manifest and appended days ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What ``MANIFEST_FILE`` records about the world generated in a folder."""

    customers: int  # of the initial window
    seed: int
    start_date: date
    days: int  # the initial window
    days_appended: int
    files: tuple[dict[str, Any], ...]  # see _manifest_entry

    @property
    def next_day(self) -> date:
        """The first day not generated yet."""
        return self.start_date + timedelta(days=self.days + self.days_appended)

    @property
    def customers_file(self) -> str:
        """``generate-customers-<YYYY-MM-DD>.csv``: the customers as they stand at the end of
        the last day generated."""
        return f"generate-customers-{self.next_day - timedelta(days=1)}.csv"


def web_events_day_file(day: date) -> str:
    """``web_events_<YYYY-MM-DD>.jsonl``: the name of the file of an appended day."""
    return f"web_events_{day.isoformat()}.jsonl"


def read_manifest(out_dir: Path) -> Manifest:
    """The manifest of the world generated in ``out_dir``; a ``RunnerError`` saying what to do
    if there is none or it is not one ``generate`` wrote."""
    path = out_dir / MANIFEST_FILE
    if not path.is_file():
        raise RunnerError(
            f"{path} does not exist: run `runner generate --customers N --seed S --out {out_dir}` "
            "first, then --append adds days to the world it wrote."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(
            customers=int(data["customers"]),
            seed=int(data["seed"]),
            start_date=date.fromisoformat(data["start_date"]),
            days=int(data["days"]),
            days_appended=int(data["days_appended"]),
            files=tuple(dict(entry) for entry in data["files"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RunnerError(
            f"{path} is not a manifest written by `runner generate` ({exc!r}): generate the "
            "world again."
        ) from exc


def append_days(
    out_dir: Path,
    days: int = 1,
    customers: int | None = None,
    seed: int | None = None,
    start_date: date | None = None,
) -> list[GeneratedFile]:
    """Write the next ``days`` days of the world generated in ``out_dir`` (see the module
    docstring), one ``web_events_<YYYY-MM-DD>.jsonl`` each, and describe them in order.

    ``customers``, ``seed`` and ``start_date`` come from the manifest; if given, they must be
    the manifest's. Each day is complete before the next starts: its file and the next
    customers file are written aside and renamed into place, then the manifest, which commits
    the day, and only then is the previous customers file removed. A run interrupted before
    the manifest leaves the world as it was (the files it wrote are written again, with the
    same bytes).
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    manifest = read_manifest(out_dir)
    recorded = {
        "--customers": (customers, manifest.customers),
        "--seed": (seed, manifest.seed),
        "--start-date": (start_date, manifest.start_date),
    }
    for option, (given, value) in recorded.items():
        if given is not None and given != value:
            raise RunnerError(
                f"The world in {out_dir} was generated with {option} {value}, not {given}: "
                f"leave {option} out to append to it, or generate another world elsewhere."
            )
    written = []
    for _ in range(days):
        manifest, day_file = _append_day(out_dir, manifest)
        written.append(day_file)
    return written


def _append_day(out_dir: Path, manifest: Manifest) -> tuple[Manifest, GeneratedFile]:
    """Write the file of ``manifest.next_day`` and the customers file and manifest after it."""
    customers_before = out_dir / manifest.customers_file
    if not customers_before.is_file():
        raise RunnerError(
            f"{customers_before} is missing: generate the world again with `runner generate`."
        )
    day = manifest.next_day
    rng = random.Random(f"web-{manifest.seed}-{day.isoformat()}")
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    path = out_dir / web_events_day_file(day)
    after = dataclasses.replace(manifest, days_appended=manifest.days_appended + 1)
    customers_after = out_dir / after.customers_file
    rows = 0
    with ExitStack() as stack:
        file = stack.enter_context(_aside(path).open("w", encoding="utf-8", newline="\n"))
        customers_out = _CustomersOut(stack, _aside(customers_after))
        customers = _read_customers(customers_before)
        customer_events = _day_customer_events(rng, customers, manifest, start, end)
        serials = _day_serials(day)
        records = _web_records(rng, customer_events, start, end, serials, customers_out)
        for line in arrival_order(rng, records):
            file.write(line + "\n")
            rows += 1
    _aside(path).replace(path)
    _aside(customers_after).replace(customers_after)
    written = GeneratedFile(WEB_EVENTS_SOURCE, path, rows)
    after = dataclasses.replace(after, files=(*manifest.files, _manifest_entry(written)))
    _write_manifest(out_dir, after)
    customers_before.unlink()
    return after, written


def _day_customer_events(
    rng: random.Random,
    customers: Iterable[Customer],
    manifest: Manifest,
    start: datetime,
    end: datetime,
) -> Iterator[tuple[Customer, list[dict[str, Any]]]]:
    """Each customer of the day [start, end) with their events: the existing ``customers`` (the
    first with a late visit for sure), then those who join that day, at the initial rate."""
    move_rate = CUSTOMER_UPDATE_RATE / manifest.days
    first = True
    for customer in customers:
        yield customer, _day_events_for_customer(rng, customer, start, end, move_rate, first)
        first = False
    # customers * n // days have joined by n days into the world, as in the initial window
    n = (start.date() - manifest.start_date).days
    joining = (
        manifest.customers * (n + 1) // manifest.days - manifest.customers * n // manifest.days
    )
    for index, joined in enumerate(iter_customers(rng, joining, start, end)):
        customer_id = web_only_customer_id(manifest.seed, start.date(), index)
        customer = dataclasses.replace(joined, customer_id=customer_id)
        yield customer, web_events_for_customer(rng, customer, end)


def _day_events_for_customer(
    rng: random.Random,
    customer: Customer,
    start: datetime,
    end: datetime,
    move_rate: float,
    force_late: bool,
) -> list[dict[str, Any]]:
    """An existing customer's events of the day [start, end), sorted by time: maybe a move,
    and visits at their weekly rate, of which about ``LATE_RATE`` (and one more if
    ``force_late``)
    happened on one of the ``LATE_DAYS`` days before (never before the customer joined)."""
    events = []
    if rng.random() < move_rate:
        events.append(_move(rng, customer, start, end))
    visits = [_late_visit_time(rng, customer, start)] if force_late else []
    seconds_per_visit = 7 * 86400 / customer.visits_per_week
    when = start + timedelta(seconds=rng.expovariate(1 / seconds_per_visit))
    while when < end:
        late = rng.random() < LATE_RATE
        visits.append(_late_visit_time(rng, customer, start) if late else when)
        when += timedelta(seconds=rng.expovariate(1 / seconds_per_visit))
    if visits:  # most customers have none in a day: spare them the rest
        serials = _day_serials(start.date())
        for visit in visits:
            events.extend(_visit(rng, customer.customer_id, visit, serials))
    return _sorted_before(events, end) if events else events


def _late_visit_time(rng: random.Random, customer: Customer, start: datetime) -> datetime:
    """A time on one of the ``LATE_DAYS`` days before ``start``, after the customer joined."""
    return _between(rng, max(customer.joined_at, start - timedelta(days=LATE_DAYS)), start)


def _day_serials(day: date) -> Iterator[str]:
    """Serials of the keys made on an appended day: ``20170501-0001``, ``20170501-0002``..."""
    prefix = f"{day:%Y%m%d}"
    return (f"{prefix}-{number:04d}" for number in itertools.count(1))


def web_only_customer_id(seed: int, day: date, index: int) -> str:
    """The id of the ``index``-th customer who joins on appended ``day``: a web-only customer,
    whom no other system knows, so the id is the web shop's own, 12 lowercase hex digits like
    the Shutterfly sample's (``96f55c7d8f42``): the start of the SHA-256 of a label unique to the
    seed, day and index. Never all digits (the next hash is taken), so it never looks like the
    numbers the web shop shares with the other systems."""
    label = f"web-{seed}-customer-{day.isoformat()}-{index}"
    while True:
        label = hashlib.sha256(label.encode()).hexdigest()
        if not label[:12].isdigit():
            return label[:12]


class _CustomersOut:
    """A customers file being written (LF line endings, a header), one customer at a time."""

    def __init__(self, stack: ExitStack, path: Path) -> None:
        file = stack.enter_context(path.open("w", encoding="utf-8", newline=""))
        self._rows = csv.writer(file, lineterminator="\n")
        self._rows.writerow(CUSTOMERS_HEADER)

    def write(self, customer: Customer, events: list[dict[str, Any]]) -> None:
        """The customer's row, with the city of their latest customer event (``events`` sorted
        by time), if any. Times and rates are written so that they read back exactly."""
        city, state = customer.city, customer.state
        for event in reversed(events):
            if event["type"] == "CUSTOMER":
                city, state = event["adr_city"], event["adr_state"]
                break
        joined_at = customer.joined_at.isoformat()
        rate = repr(customer.visits_per_week)
        self._rows.writerow(
            (customer.customer_id, joined_at, customer.last_name, city, state, rate)
        )


def _read_customers(path: Path) -> Iterator[Customer]:
    """Stream the customers of a customers file."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file)
        if tuple(next(rows, ())) != CUSTOMERS_HEADER:
            raise RunnerError(f"{path}: not a customers file written by `runner generate`.")
        for cid, joined_at, last_name, city, state, visits_per_week in rows:
            joined = datetime.fromisoformat(joined_at)
            customer_id = int(cid) if cid.isdigit() else cid  # a shared number, or 12-hex
            yield Customer(customer_id, joined, last_name, city, state, float(visits_per_week))


def _manifest_entry(generated: GeneratedFile) -> dict[str, Any]:
    """A written file as the manifest lists it: its name in the folder, how to load it, its
    records (and a store extract's delivery day)."""
    entry: dict[str, Any] = {
        "path": generated.path.name,
        "source": generated.source,
        "rows": generated.rows,
    }
    if generated.extract_date is not None:
        entry["extract_date"] = generated.extract_date.isoformat()
    return entry


def _write_manifest(out_dir: Path, manifest: Manifest) -> None:
    data = {
        "customers": manifest.customers,
        "seed": manifest.seed,
        "start_date": manifest.start_date.isoformat(),
        "days": manifest.days,
        "days_appended": manifest.days_appended,
        "customers_file": manifest.customers_file,
        "files": list(manifest.files),
    }
    path = out_dir / MANIFEST_FILE
    aside = _aside(path)
    aside.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8", newline="\n")
    aside.replace(path)


def _remove_previous_world(out_dir: Path) -> None:
    """Remove the day files and the customers file of the world whose manifest is in
    ``out_dir``, if any: a new ``generate`` replaces that world."""
    try:
        previous = read_manifest(out_dir)
    except RunnerError:
        return
    names = [str(entry.get("path", "")) for entry in previous.files]
    for name in [*filter(DAY_FILE.fullmatch, names), previous.customers_file]:
        (out_dir / name).unlink(missing_ok=True)


def _aside(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place."""
    return path.with_name(path.name + ".tmp")


# --- The store system ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StoreCustomer:
    """A store customer: from which day they shop, and their city in each extract.

    ``cities[i]`` is the city shown by the i-th extract, None when that extract does not show the
    customer (not joined yet, or gone for good).
    """

    customer_id: int
    name: str
    joined_on: date
    cities: tuple[str | None, ...]


class Sale(NamedTuple):
    """One store sale (or refund, when ``cents`` is negative)."""

    customer_id: int
    product: str
    cents: int
    shop_id: int
    when: datetime  # naive, store-local time


def store_extract_dates(start_date: date, days: int) -> list[date]:
    """The store's delivery days: a quarter, a half and three quarters into the window.

    Windows shorter than 3 days have fewer, as the three days would not be distinct.
    """
    offsets = {days // 4, days // 2, 3 * days // 4}
    return [start_date + timedelta(days=offset) for offset in sorted(offsets)]


STORE_FORMATS = ("csv", "parquet")


def store_file_as_parquet(generated: GeneratedFile) -> GeneratedFile:
    """The store CSV file ``generated`` rewritten as Parquet, as the store team exports it (the
    same name ending in ``.parquet``; the CSV file is removed): one string column per header
    name, every field exactly as the CSV line holds it (surrounding spaces included, a blank
    field an empty string), the records in the same order. Blank lines are not records, so
    the file holds the same records: they land and stage as the CSV's do."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with generated.path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(field.strip() for field in row)]
    header, records = rows[0], rows[1:]
    if any(len(record) != len(header) for record in records):
        raise ValueError(f"{generated.path}: a line does not split into {len(header)} fields")
    columns = {
        name: pa.array([record[index] for record in records], pa.string())
        for index, name in enumerate(header)
    }
    target = generated.path.with_suffix(".parquet")
    pq.write_table(pa.table(columns), target)
    generated.path.unlink()
    return dataclasses.replace(generated, path=target)


def store_customers_file(extract_date: date) -> str:
    """``store_customers_<YYYY-MM-DD>.csv``: the name of the extract delivered that day."""
    return f"store_customers_{extract_date.isoformat()}.csv"


def store_id_ranges(customers: int) -> tuple[int, int]:
    """The first store-only customer id and the first late-arriving customer id.

    90001 and 95001 while they stay clear of the web ids (10001 up) and of each other; for very
    large runs 900001 and 950001, and so on.
    """
    scale = 100_000
    needed = max(_store_only_count(customers), _late_count(customers))
    while FIRST_CUSTOMER_ID + customers > scale * 9 // 10 or needed > scale // 20:
        scale *= 10
    return scale * 9 // 10 + 1, scale * 19 // 20 + 1


def _store_only_count(customers: int) -> int:
    return max(len(StoreWriter.SCRIPTED), math.ceil(customers * STORE_ONLY_RATE))


def _late_count(customers: int) -> int:
    return max(1, math.ceil(customers * LATE_CUSTOMER_RATE))


class _CsvOut:
    """A CSV file being written: its header, its line ending and a count of its data rows."""

    def __init__(self, stack: ExitStack, path: Path, header: Sequence[str], newline: str) -> None:
        self.path = path
        self.newline = newline
        self.rows = 0
        self._file = stack.enter_context(path.open("w", encoding="utf-8", newline=""))
        self._file.write(",".join(header) + newline)

    def write(self, line: str) -> None:
        self._file.write(line + self.newline)
        self.rows += 1

    def end(self, blank_lines: int) -> None:
        """Finish the file with ``blank_lines`` empty lines, as some exports do."""
        self._file.write(self.newline * blank_lines)


class StoreWriter:
    """Writes the store system's files in one pass over its customers, in bounded memory.

    The three extract files and the sales file are open together: each customer's rows go to
    every extract that shows them as soon as the customer is made, and their sales go through a
    ``BUFFER_SIZE`` arrival buffer (which also duplicates about ``DUPLICATE_RATE`` of them).
    Everything is drawn from ``random.Random(f"store-{seed}")``.

    Use: ``tap`` the web customers (about ``STORE_SHARE`` of them become store customers, with
    the web's last name and city), then ``finish``, which adds the store-only customers (ids from
    ``store_id_ranges()[0]``) and the late-arriving ones (sales only, ids from
    ``store_id_ranges()[1]``), flushes the sales and returns the files' descriptions. The files
    are closed by ``stack``.

    The first store-only customers are ``SCRIPTED``: they make sure every situation and every
    kind of dirt is present even in tiny runs (a move and a move back, a disappearance, a newcomer
    with a sale before their first extract, a quoted name, a non-ASCII name, a padded row, a
    duplicate row and a blank ID in the extracts; a refund, a duplicate and a padded row in the
    sales). One bad sales row of every kind in ``STORE_SALES_BAD_KINDS`` is written up front.
    """

    SCRIPTED = ("mover", "leaver", "newcomer")

    def __init__(
        self,
        stack: ExitStack,
        out_dir: Path,
        seed: int,
        start_date: date,
        days: int,
        customers: int,
    ) -> None:
        self.rng = random.Random(f"store-{seed}")
        self.start_date = start_date
        self.end = datetime(start_date.year, start_date.month, start_date.day) + timedelta(
            days=days
        )
        self.extract_dates = store_extract_dates(start_date, days)
        self.customers = customers
        crlf = [self.rng.random() < 0.5 for _ in self.extract_dates]
        if not any(crlf):
            crlf[self.rng.randrange(len(crlf))] = True
        self._extracts = [
            _CsvOut(
                stack,
                out_dir / store_customers_file(day),
                STORE_CUSTOMERS_HEADER,
                "\r\n" if windows else "\n",
            )
            for day, windows in zip(self.extract_dates, crlf, strict=True)
        ]
        self._sales = _CsvOut(stack, out_dir / STORE_SALES_FILE, STORE_SALES_HEADER, "\r\n")
        self._sales_buffer: list[tuple[str, bool]] = []
        self._bad_rows_written = False

    @property
    def buffered_sales(self) -> int:
        """Sales lines generated but not written yet (never more than ``BUFFER_SIZE``)."""
        return len(self._sales_buffer)

    def tap(self, customers: Iterable[Customer]) -> Iterator[Customer]:
        """Yield the web customers unchanged; add about ``STORE_SHARE`` of them to the store."""
        for customer in customers:
            if self.rng.random() < STORE_SHARE:
                name = self._full_name(customer.last_name)
                self._add(self._random_customer(customer.customer_id, name, customer.city))
            yield customer

    def finish(self) -> list[GeneratedFile]:
        """Add the store-only and late-arriving customers, write what is buffered, and describe
        the extracts (in date order) and the sales file."""
        rng = self.rng
        store_only_first, late_first = store_id_ranges(self.customers)
        for index in range(_store_only_count(self.customers)):
            customer_id = store_only_first + index
            if index < len(self.SCRIPTED):
                self._add_scripted(self.SCRIPTED[index], customer_id)
            else:
                name = self._full_name(rng.choice(LAST_NAMES))
                self._add(self._random_customer(customer_id, name, rng.choice(CITY_NAMES)))
        for index in range(_late_count(self.customers)):
            self._add_late(late_first + index)
        while self._sales_buffer:
            self._sales.write(release_line(rng, self._sales_buffer))
        blank_lines = [rng.choice((0, 1, 2)) for _ in self._extracts]
        if not any(blank_lines):
            blank_lines[rng.randrange(len(blank_lines))] = 1
        for out, count in zip(self._extracts, blank_lines, strict=True):
            out.end(count)
        self._sales.end(rng.randint(1, 2))
        extracts = [
            GeneratedFile(STORE_CUSTOMERS_SOURCE, out.path, out.rows, extract_date=day)
            for out, day in zip(self._extracts, self.extract_dates, strict=True)
        ]
        return [*extracts, GeneratedFile(STORE_SALES_SOURCE, self._sales.path, self._sales.rows)]

    # -- customers --

    def _random_customer(self, customer_id: int, name: str, city: str) -> StoreCustomer:
        """A customer joining on a random day up to the last extract, who may move (and move
        back) between extracts, or disappear from the later ones."""
        rng, dates = self.rng, self.extract_dates
        joined_on = self.start_date + timedelta(
            days=rng.randrange((dates[-1] - self.start_date).days + 1)
        )
        first = next(index for index, day in enumerate(dates) if day >= joined_on)
        gone = len(dates)
        if rng.random() < DISAPPEAR_RATE and first < len(dates) - 1:
            gone = rng.randrange(first + 1, len(dates))
        cities: list[str | None] = [None] * len(dates)
        previous: str | None = None
        for index in range(first, gone):
            if index > first:
                if previous is not None and rng.random() < MOVE_BACK_RATE:
                    city, previous = previous, None
                elif rng.random() < MOVE_RATE:
                    previous, city = city, rng.choice([c for c in CITY_NAMES if c != city])
            cities[index] = city
        return StoreCustomer(customer_id, name, joined_on, tuple(cities))

    def _add_scripted(self, role: str, customer_id: int) -> None:
        """Add one of the ``SCRIPTED`` customers (see the class docstring)."""
        rng, dates = self.rng, self.extract_dates
        count = len(dates)
        city, other = rng.sample(CITY_NAMES, 2)
        first_name = rng.choice(FIRST_NAMES)
        if role == "mover":  # other city in the 2nd extract, back in the 3rd; sales around
            name = f"{first_name} {rng.choice(LAST_NAMES)}, {rng.choice(NAME_SUFFIXES)}"
            cities = (city, other, city)[:count]
            joined_on = self.start_date
            anchors = [joined_on]
            if count > 1:  # a sale right after the move
                anchors.append(dates[1] + timedelta(days=1))
            self._add(StoreCustomer(customer_id, name, joined_on, cities), anchors, "refund", "pad")
        elif role == "leaver":  # in every extract but the last
            name = f"{first_name} {rng.choice(NON_ASCII_LAST_NAMES)}"
            cities = (city,) * (count - 1) + (None,) if count > 1 else (city,)
            joined_on = self.start_date
            self._add(
                StoreCustomer(customer_id, name, joined_on, cities),
                [joined_on],
                "duplicate",
                "duplicate",
            )
        else:  # newcomer: joins between the 1st and 2nd extracts, buys before the 2nd
            name = self._full_name(rng.choice(LAST_NAMES))
            if count > 1:
                joined_on = dates[0] + timedelta(days=max(1, (dates[1] - dates[0]).days // 2))
                cities = (None,) + (city,) * (count - 1)
            else:
                joined_on, cities = self.start_date, (city,)
            self._add(
                StoreCustomer(customer_id, name, joined_on, cities), [joined_on], "pad", "blank_id"
            )

    def _add_late(self, customer_id: int) -> None:
        """A customer who joins after the last extract: sales, but in no extract."""
        last_day = self.end.date() - timedelta(days=1)
        low = min(self.extract_dates[-1] + timedelta(days=1), last_day)
        joined_on = low + timedelta(days=self.rng.randint(0, (last_day - low).days))
        self._write_sales(customer_id, joined_on, [joined_on], None)

    def _full_name(self, last_name: str) -> str:
        name = f"{self.rng.choice(FIRST_NAMES)} {last_name}"
        if self.rng.random() < NAME_SUFFIX_RATE:
            name += f", {self.rng.choice(NAME_SUFFIXES)}"
        return name

    def _add(
        self,
        customer: StoreCustomer,
        anchors: Sequence[date] = (),
        sale_dirt: str | None = None,
        extract_dirt: str | None = None,
    ) -> None:
        """Write a customer's extract rows and sales; ``anchors`` are days with a sure sale, the
        first of which gets ``sale_dirt``; the first extract row gets ``extract_dirt``."""
        self._write_extract_rows(customer, extract_dirt)
        self._write_sales(customer.customer_id, customer.joined_on, anchors, sale_dirt)

    def _write_extract_rows(self, customer: StoreCustomer, forced: str | None) -> None:
        """One row in each extract that shows the customer, now and then with dirt: ``pad``
        (spaces around the fields), ``duplicate`` (the row twice) or ``blank_id`` (an extra row
        without ID)."""
        rng = self.rng
        for index, city in enumerate(customer.cities):
            if city is None:
                continue
            if forced:
                dirt, forced = forced, None
            else:
                dirt = self._extract_dirt()
            line = _csv_line((str(customer.customer_id), customer.name, city), rng, dirt == "pad")
            out = self._extracts[index]
            out.write(line)
            if dirt == "duplicate":
                out.write(line)
            elif dirt == "blank_id":
                stranger = self._full_name(rng.choice(LAST_NAMES))
                out.write(_csv_line((rng.choice(("", "", " ")), stranger, city)))

    def _extract_dirt(self) -> str | None:
        draw = self.rng.random()
        if draw < EXTRACT_PAD_RATE:
            return "pad"
        if draw < EXTRACT_PAD_RATE + EXTRACT_DUPLICATE_RATE:
            return "duplicate"
        if draw < EXTRACT_PAD_RATE + EXTRACT_DUPLICATE_RATE + EXTRACT_BLANK_ID_RATE:
            return "blank_id"
        return None

    # -- sales --

    def _write_sales(
        self, customer_id: int, joined_on: date, anchors: Sequence[date], dirt: str | None
    ) -> None:
        """A customer's sales from ``joined_on`` to the end of the window: one on each anchor
        day, the others at a per-customer weekly rate; plus refunds and bad rows."""
        rng = self.rng
        if rng.random() < HEAVY_SHOPPER_RATE:
            per_week = rng.uniform(2.0, 5.0)
        else:
            per_week = rng.lognormvariate(math.log(MEDIAN_SALES_PER_WEEK), 0.7)
        home_shop = rng.randint(1, SHOP_COUNT)
        days = [day for day in anchors if day < self.end.date()]
        moment = datetime(joined_on.year, joined_on.month, joined_on.day)
        while True:
            moment += timedelta(days=rng.expovariate(per_week / 7))
            if moment >= self.end:
                break
            days.append(moment.date())
        for index, day in enumerate(days):
            sale = self._sale(customer_id, day, home_shop)
            if not self._bad_rows_written:
                self._bad_rows_written = True
                for kind in STORE_SALES_BAD_KINDS:
                    self._push(self._bad_sale_line(sale, kind), False)
            self._push_sale(sale, dirt if index == 0 else None)

    def _sale(self, customer_id: int, day: date, home_shop: int) -> Sale:
        rng = self.rng
        when = self._shop_time(day)
        shop = home_shop if rng.random() < HOME_SHOP_RATE else rng.randint(1, SHOP_COUNT)
        cents = max(100, round(rng.lognormvariate(math.log(MEDIAN_SALE_CENTS), 0.8)))
        return Sale(customer_id, rng.choice(PRODUCTS), cents, shop, when)

    def _shop_time(self, day: date) -> datetime:
        """A random second of ``day`` within ``SHOP_HOURS``."""
        opens, closes = SHOP_HOURS
        seconds = self.rng.randrange(opens * 3600, closes * 3600)
        return datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)

    def _push_sale(self, sale: Sale, forced: str | None) -> None:
        """Queue a sale's line, maybe padded or written twice, maybe its refund, maybe a bad row
        made from it; ``forced`` (``pad``, ``duplicate`` or ``refund``) makes one of them sure."""
        rng = self.rng
        line = self._sale_line(sale, pad=forced == "pad" or rng.random() < SALES_PAD_RATE)
        if forced == "duplicate":
            self._push(line, False)
            self._push(line, False)
        else:
            self._push(line, True)
        if forced == "refund" or rng.random() < REFUND_RATE:
            refund_at = self._shop_time(
                sale.when.date() + timedelta(days=rng.randint(1, REFUND_DAYS))
            )
            if refund_at >= self.end and forced == "refund":  # the same day, later
                closing = sale.when.replace(hour=SHOP_HOURS[1], minute=0, second=0)
                refund_at = sale.when + (closing - sale.when) // 2
            if refund_at < self.end:
                refund = sale._replace(cents=-sale.cents, when=refund_at)
                self._push(self._sale_line(refund), True)
        if rng.random() < SALES_BAD_RATE:
            self._push(self._bad_sale_line(sale, rng.choice(STORE_SALES_BAD_KINDS)), False)

    def _sale_line(self, sale: Sale, pad: bool = False) -> str:
        fmt = self.rng.choices(SALE_TIME_FORMATS, SALE_TIME_WEIGHTS)[0]
        fields = (
            str(sale.customer_id),
            sale.product,
            _amount(sale.cents),
            str(sale.shop_id),
            sale.when.strftime(fmt),
        )
        return _csv_line(fields, self.rng, pad)

    def _bad_sale_line(self, sale: Sale, kind: str) -> str:
        """A sales row that staging must quarantine for reason ``kind``."""
        rng = self.rng
        fields = [
            str(sale.customer_id),
            sale.product,
            _amount(sale.cents),
            str(sale.shop_id),
            sale.when.strftime(rng.choice(SALE_TIME_FORMATS)),
        ]
        cid, dollars, cents = sale.customer_id, sale.cents // 100, sale.cents % 100
        if kind == "missing_customer_id":
            fields[0] = rng.choice(("", " "))
        elif kind == "unparseable_customer_id":
            fields[0] = rng.choice(("x12", f"x{cid}", f"{cid}a", f"#{cid}"))
        elif kind == "missing_amount":
            fields[2] = rng.choice(("", " "))
        elif kind == "unparseable_amount":
            fields[2] = rng.choice(("12,50", "abc", f"{dollars},{cents:02d}", "1.2.3"))
        elif kind == "missing_transaction_date":
            fields[4] = rng.choice(("", " "))
        elif kind == "unparseable_transaction_date":
            bad_dates = ("2017-13-45", "31/01/2017", sale.when.strftime("%d/%m/%Y"), "2017-02-30")
            fields[4] = rng.choice(bad_dates)
        else:
            raise ValueError(f"unknown bad sales row kind {kind!r}")
        return _csv_line(fields)

    def _push(self, line: str, may_duplicate: bool) -> None:
        """Queue a sales line; write random ones once more than ``BUFFER_SIZE`` wait."""
        self._sales_buffer.append((line, may_duplicate))
        while len(self._sales_buffer) > BUFFER_SIZE:
            self._sales.write(release_line(self.rng, self._sales_buffer))


def _amount(cents: int) -> str:
    """Cents as a decimal with two places: ``-12.05``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _csv_line(fields: Sequence[str], rng: random.Random | None = None, pad: bool = False) -> str:
    """Fields as one CSV line, quoted only when needed (a comma, a quote, a line break).

    With ``pad``, unquoted fields get random spaces around them (the first field at least one
    before it); quoted fields never do, as spaces outside quotes break CSV readers.
    """
    parts = []
    for index, field in enumerate(fields):
        if any(char in field for char in ',"\r\n'):
            parts.append('"' + field.replace('"', '""') + '"')
        elif pad and rng is not None:
            before = " " * rng.randint(1 if index == 0 else 0, 2)
            parts.append(before + field + " " * rng.randint(0, 2))
        else:
            parts.append(field)
    return ",".join(parts)


# --- The CRM ---------------------------------------------------------------------------------


def crm_months(start_date: date, days: int) -> list[date]:
    """The first day of every month the window touches, in order."""
    last_day = start_date + timedelta(days=days - 1)
    months = []
    month = start_date.replace(day=1)
    while month <= last_day:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def crm_id_range(customers: int) -> tuple[int, int]:
    """The first CRM-only customer id and the first id of the unknown customers (ids that
    interactions use but crm_customers.csv never lists, ``CRM_UNKNOWN_SPAN`` of them).

    80001 while it stays clear of the web ids (10001 up) and below the store ids; for very large
    runs 800001, and so on (see ``store_id_ranges``).
    """
    scale = 100_000
    needed = _crm_only_count(customers) + CRM_UNKNOWN_SPAN
    while FIRST_CUSTOMER_ID + customers > scale * 8 // 10 or needed > scale // 10:
        scale *= 10
    first = scale * 8 // 10 + 1
    return first, first + _crm_only_count(customers)


def _crm_only_count(customers: int) -> int:
    return max(len(CrmWriter.SCRIPTED), math.ceil(customers * CRM_ONLY_RATE))


class CrmWriter:
    """Writes the CRM's files in one pass over its customers, in bounded memory.

    ``crm_customers.csv`` (``Customer_Id,Occupation,Type``) lists about ``CRM_SHARE`` of the web
    customers and a few CRM-only ones (ids from ``crm_id_range()[0]``). ``crm_interactions.csv``
    (``Date Start,Interaction,Customers``, Windows line endings, empty lines at the end) holds
    their contacts: a few per customer over the window at a per-customer weekly rate, some
    customers none at all, on the channels of ``CRM_CHANNELS`` only, through a ``BUFFER_SIZE``
    arrival buffer (mild disorder, no duplicates). ``crm_products.csv`` (``date,product``, CRLF,
    empty lines at the end) names the product discussed each month of the window (``MM-YYYY``),
    at most one per month; one month, ``quiet_month``, has none: its only row has an empty
    product. Everything is drawn from ``random.Random(f"crm-{seed}")``.

    Dirt present in every run, however small: one bad interaction row of every kind in
    ``CRM_INTERACTION_BAD_KINDS`` up front (more trickle in at ``CRM_BAD_RATE``), a few web
    customers outside the CRM with an interaction anyway, and a month row ``13-YYYY``. The first
    CRM-only customers are ``SCRIPTED``: ``silent`` is never contacted, ``topicless`` is
    contacted in the quiet month (an interaction without a topic).

    Use: ``tap`` the web customers, then ``finish``; the files are closed by ``stack``.
    """

    SCRIPTED = ("silent", "topicless")

    def __init__(
        self,
        stack: ExitStack,
        out_dir: Path,
        seed: int,
        start_date: date,
        days: int,
        customers: int,
    ) -> None:
        self.rng = random.Random(f"crm-{seed}")
        self.start = datetime(start_date.year, start_date.month, start_date.day)  # CRM-local
        self.end = self.start + timedelta(days=days)
        self.customers = customers
        self.months = crm_months(start_date, days)
        self.quiet_month = self.rng.choice(self.months)
        self.only_first, self.unknown_first = crm_id_range(customers)
        self._customers = _CsvOut(stack, out_dir / CRM_CUSTOMERS_FILE, CRM_CUSTOMERS_HEADER, "\n")
        self._interactions = _CsvOut(
            stack, out_dir / CRM_INTERACTIONS_FILE, CRM_INTERACTIONS_HEADER, "\r\n"
        )
        self._products = _CsvOut(stack, out_dir / CRM_PRODUCTS_FILE, CRM_PRODUCTS_HEADER, "\r\n")
        self._buffer: list[tuple[str, bool]] = []
        topicless = self.only_first + self.SCRIPTED.index("topicless")
        for kind in CRM_INTERACTION_BAD_KINDS:
            self._push(self._bad_interaction(kind, topicless, self._moment(self.start)))

    @property
    def buffered_interactions(self) -> int:
        """Interaction lines generated but not written yet (never more than ``BUFFER_SIZE``)."""
        return len(self._buffer)

    def tap(self, customers: Iterable[Customer]) -> Iterator[Customer]:
        """Yield the web customers unchanged; add about ``CRM_SHARE`` of them to the CRM."""
        rng = self.rng
        for customer in customers:
            joined = customer.joined_at.replace(tzinfo=None)
            if rng.random() < CRM_SHARE:
                self._add(customer.customer_id, joined)
            elif rng.random() < CRM_STRAY_RATE:  # logged for someone the export leaves out
                self._push(self._interaction_line(self._moment(joined), customer.customer_id))
            yield customer

    def finish(self) -> list[GeneratedFile]:
        """Add the CRM-only customers, write what is buffered and the products, and describe
        the customers, interactions and products files."""
        rng = self.rng
        for index in range(_crm_only_count(self.customers)):
            customer_id = self.only_first + index
            if index < len(self.SCRIPTED):
                self._add(customer_id, self.start, self.SCRIPTED[index])
            else:
                self._add(customer_id, self._moment(self.start))
        while self._buffer:
            self._interactions.write(release_line(rng, self._buffer))
        self._interactions.end(rng.randint(1, 2))
        self._write_products()
        self._products.end(rng.randint(1, 2))
        return [
            GeneratedFile(CRM_CUSTOMERS_SOURCE, self._customers.path, self._customers.rows),
            GeneratedFile(
                CRM_INTERACTIONS_SOURCE, self._interactions.path, self._interactions.rows
            ),
            GeneratedFile(CRM_PRODUCTS_SOURCE, self._products.path, self._products.rows),
        ]

    def _add(self, customer_id: int, joined: datetime, role: str | None = None) -> None:
        """Write a CRM customer's row and queue their interactions from ``joined`` on."""
        rng = self.rng
        occupation = rng.choice(OCCUPATIONS)
        kind = rng.choices(CRM_TYPES, CRM_TYPE_WEIGHTS)[0]
        self._customers.write(_csv_line((str(customer_id), occupation, kind)))
        if role == "silent" or (role is None and rng.random() < CRM_NO_CONTACT_RATE):
            return
        if role == "topicless":
            month = self.quiet_month
            low = max(self.start.date(), month)
            high = min(self.end.date(), (month + timedelta(days=32)).replace(day=1))
            day = low + timedelta(days=rng.randrange((high - low).days))
            self._push_interaction(self._office_time(day), customer_id)
        per_week = rng.lognormvariate(math.log(MEDIAN_INTERACTIONS_PER_WEEK), 0.8)
        moment = joined
        while True:
            moment += timedelta(days=rng.expovariate(per_week / 7))
            if moment >= self.end:
                break
            self._push_interaction(self._office_time(moment.date()), customer_id)

    def _push_interaction(self, when: datetime, customer_id: int) -> None:
        self._push(self._interaction_line(when, customer_id))
        if self.rng.random() < CRM_BAD_RATE:
            kind = self.rng.choice(CRM_INTERACTION_BAD_KINDS)
            self._push(self._bad_interaction(kind, customer_id, self._moment(self.start)))

    def _interaction_line(self, when: datetime, customer_id: int) -> str:
        channel = self.rng.choices(CRM_CHANNELS, CRM_CHANNEL_WEIGHTS)[0]
        return _csv_line((when.strftime(CRM_TIME_FORMAT), channel, str(customer_id)))

    def _bad_interaction(self, kind: str, customer_id: int, when: datetime) -> str:
        """An interaction row that cannot be used as it is, for reason ``kind``."""
        rng = self.rng
        fields = [
            when.strftime(CRM_TIME_FORMAT),
            rng.choices(CRM_CHANNELS, CRM_CHANNEL_WEIGHTS)[0],
            str(customer_id),
        ]
        if kind == "missing_date":
            fields[0] = ""
        elif kind == "unparseable_date":
            bad_dates = (
                when.strftime("31/02/%Y %H:%M"),
                when.strftime("%Y-%m-%d %H:%M"),
                when.strftime("%d/13/%Y %H:%M"),
            )
            fields[0] = rng.choice(bad_dates)
        elif kind == "missing_channel":
            fields[1] = ""
        elif kind == "missing_customer_id":
            fields[2] = ""
        elif kind == "unparseable_customer_id":
            fields[2] = rng.choice(("abc", f"C{customer_id}", f"{customer_id}.5"))
        elif kind == "unknown_customer_id":
            fields[2] = str(self.unknown_first + rng.randrange(CRM_UNKNOWN_SPAN))
        else:
            raise ValueError(f"unknown bad interaction kind {kind!r}")
        return _csv_line(fields)

    def _write_products(self) -> None:
        """One row per month of the window, in order (the quiet month's product empty), and a
        row for month 13 somewhere among them."""
        rng = self.rng
        rows = []
        previous = None
        for month in self.months:
            product = ""
            if month != self.quiet_month:
                product = rng.choice([name for name in PRODUCTS if name != previous])
                previous = product
            rows.append((month.strftime(CRM_MONTH_FORMAT), product))
        rows.insert(rng.randint(0, len(rows)), (f"13-{self.start.year}", rng.choice(PRODUCTS)))
        for row in rows:
            self._products.write(_csv_line(row))

    def _moment(self, low: datetime) -> datetime:
        """A random minute in office hours between ``low`` and the end of the window."""
        return self._office_time(_between(self.rng, low, self.end).date())

    def _office_time(self, day: date) -> datetime:
        """A random minute of ``day`` within ``OFFICE_HOURS``."""
        opens, closes = OFFICE_HOURS
        minutes = self.rng.randrange(opens * 60, closes * 60)
        return datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)

    def _push(self, line: str) -> None:
        """Queue an interaction line; write random ones once more than ``BUFFER_SIZE`` wait."""
        self._buffer.append((line, False))
        while len(self._buffer) > BUFFER_SIZE:
            self._interactions.write(release_line(self.rng, self._buffer))


# --- The app ---------------------------------------------------------------------------------


def format_app_time(when: datetime, zoned: bool = True) -> str:
    """ISO-8601 to the second in UTC: ``2017-03-01T10:00:00Z``, without the ``Z`` if not
    ``zoned`` (an app time without a zone means UTC)."""
    text = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if zoned else text


class ContactsWriter:
    """Writes the app team's ``app_contacts.csv`` (``customer_id,phone_number``) as the app
    users are made: about ``CONTACT_SHARE`` of them have a number (always the scripted users
    and the first user), US numbers in E.164 (``+1`` and 10 digits), ``CONTACT_STYLED_RATE``
    of them written with spaces and dashes (accepted), ``CONTACT_INVALID_RATE`` in a national
    form that is not E.164 (quarantined). The first user's number comes after a row with a
    blank number (quarantined as missing). Drawn from ``random.Random(f"contacts-{seed}")``,
    so the app's other files are the same bytes as before it existed."""

    def __init__(self, stack: ExitStack, out_dir: Path, seed: int) -> None:
        self.rng = random.Random(f"contacts-{seed}")
        self._out = _CsvOut(stack, out_dir / APP_CONTACTS_FILE, APP_CONTACTS_HEADER, "\n")
        self._first = True

    def add(self, customer_id: int, always: bool = False) -> None:
        rng = self.rng
        if self._first:
            self._first = False
            self._out.write(_csv_line((str(customer_id), "")))
        if not always and rng.random() >= CONTACT_SHARE:
            return
        area, exchange, line = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
        kind = rng.random()
        if not always and kind < CONTACT_INVALID_RATE:
            number = f"0{area} {exchange} {line:04d}"
        elif kind < CONTACT_INVALID_RATE + CONTACT_STYLED_RATE:
            number = f"+1 {area}-{exchange}-{line:04d}"
        else:
            number = f"+1{area}{exchange}{line:04d}"
        self._out.write(_csv_line((str(customer_id), number)))

    def finish(self) -> GeneratedFile:
        return GeneratedFile(APP_CONTACTS_SOURCE, self._out.path, self._out.rows)


class AppWriter:
    """Writes the mobile app's files in one pass over its users, in bounded memory.

    About ``APP_SHARE`` of the web customers use the app. ``app_sessions.jsonl`` holds one JSON
    object per session (``customer_id``, an integer, and ``session_started_at``); sessions are a
    Poisson process at a per-user weekly rate, ``HEAVY_SESSIONS_PER_WEEK`` for a few heavy users
    and log-normal around ``MEDIAN_SESSIONS_PER_WEEK`` for the others. ``app_purchases.csv``
    (``customer_id,purchased_at,amount``) holds purchases made during sessions, at a per-user
    conversion rate, with log-normal amounts around a per-user typical amount. About
    ``NAIVE_TIME_RATE`` of the times carry no zone (meaning UTC). Both files go through
    ``BUFFER_SIZE`` arrival buffers (mild disorder, no duplicates). Everything is drawn from
    ``random.Random(f"app-{seed}")``.

    The first web customer always uses the app; with them come one bad record of every kind in
    ``APP_SESSION_BAD_KINDS`` and ``APP_PURCHASE_BAD_KINDS`` (more trickle in at
    ``APP_BAD_RATE``) and a session and a purchase dated after the window (a wrong device clock;
    a few more users have a future session). Without customers the sessions file is empty and
    the purchases file holds only its header.

    The first three customers who joined before the window's last ``FINAL_WEEKS`` weeks are
    ``SCRIPTED`` app users (in a random order), so that every message the app sends about those
    weeks has someone to go to (in windows of at least 8 weeks, given three such customers):
    ``reward`` (more than 5 sessions a week and at least 100 spent), ``boost`` (one small
    purchase, under 100 spent) and ``none`` (at least 100 spent, a session a week or so).

    Use: ``tap`` the web customers, then ``finish``; the files are closed by ``stack``.
    """

    SCRIPTED = ("reward", "boost", "none")

    def __init__(
        self, stack: ExitStack, out_dir: Path, seed: int, start_date: date, days: int
    ) -> None:
        self.rng = random.Random(f"app-{seed}")
        self.start = datetime(
            start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc
        )
        self.end = self.start + timedelta(days=days)
        self.final_start = self.end - timedelta(weeks=FINAL_WEEKS)
        self._roles = list(self.SCRIPTED)
        self.rng.shuffle(self._roles)
        self._sessions_path = out_dir / APP_SESSIONS_FILE
        self._sessions_file = stack.enter_context(
            self._sessions_path.open("w", encoding="utf-8", newline="\n")
        )
        self._session_rows = 0
        self._purchases = _CsvOut(stack, out_dir / APP_PURCHASES_FILE, APP_PURCHASES_HEADER, "\n")
        self._session_buffer: list[tuple[str, bool]] = []
        self._purchase_buffer: list[tuple[str, bool]] = []
        self._dirt_written = False
        self.contacts = ContactsWriter(stack, out_dir, seed)

    @property
    def buffered_lines(self) -> int:
        """Session and purchase lines generated but not written yet (at most 2 BUFFER_SIZE)."""
        return len(self._session_buffer) + len(self._purchase_buffer)

    def tap(self, customers: Iterable[Customer]) -> Iterator[Customer]:
        """Yield the web customers unchanged; about ``APP_SHARE`` of them use the app, always
        the first one (who carries the dirt)."""
        for customer in customers:
            uses_app = self.rng.random() < APP_SHARE or not self._dirt_written
            role = None
            if self._roles and customer.joined_at <= self.final_start:
                role, uses_app = self._roles.pop(), True
            if uses_app:
                self._add(customer.customer_id, customer.joined_at, role)
            yield customer

    def finish(self) -> list[GeneratedFile]:
        """Write what is buffered and describe the sessions and purchases files."""
        while self._session_buffer:
            self._write_session(release_line(self.rng, self._session_buffer))
        while self._purchase_buffer:
            self._purchases.write(release_line(self.rng, self._purchase_buffer))
        return [
            GeneratedFile(APP_SESSIONS_SOURCE, self._sessions_path, self._session_rows),
            GeneratedFile(APP_PURCHASES_SOURCE, self._purchases.path, self._purchases.rows),
        ]

    def _add(self, customer_id: int, joined: datetime, role: str | None) -> None:
        """Queue an app user's sessions and purchases from ``joined`` to the end of the window
        (and, for the first user, the bad and future-dated records)."""
        rng = self.rng
        if role == "reward":
            per_week = rng.uniform(10.0, 14.0)
        elif role is not None:
            per_week = rng.uniform(0.5, 2.0)
        elif rng.random() < APP_HEAVY_RATE:
            per_week = rng.uniform(*HEAVY_SESSIONS_PER_WEEK)
        else:
            per_week = rng.lognormvariate(math.log(MEDIAN_SESSIONS_PER_WEEK), 0.8)
        conversion = min(0.9, rng.lognormvariate(math.log(MEDIAN_PURCHASES_PER_SESSION), 0.6))
        if role == "boost":
            conversion = 0.0
        typical_cents = rng.lognormvariate(math.log(MEDIAN_PURCHASE_CENTS), 0.5)
        self.contacts.add(customer_id, always=role is not None or not self._dirt_written)
        if not self._dirt_written:
            self._dirt_written = True
            self._write_dirt(customer_id, typical_cents)
        if role is not None:  # the purchase that puts the user in their bucket
            when = _between(rng, max(joined, self.final_start), self.end)
            low, high = (500, 6000) if role == "boost" else (12000, 30000)
            self._push_purchase(customer_id, when, rng.randint(low, high))
        if rng.random() < APP_FUTURE_RATE:
            self._push_session(customer_id, self._future())
        moment = joined
        while True:
            moment += timedelta(seconds=rng.expovariate(per_week / (7 * 86400)))
            if moment >= self.end:
                break
            self._push_session(customer_id, moment)
            if rng.random() < conversion:
                bought_at = _minutes_later(rng, moment)
                if bought_at < self.end:
                    self._push_purchase(customer_id, bought_at, self._cents(typical_cents))

    def _write_dirt(self, customer_id: int, typical_cents: float) -> None:
        """One bad record of every kind and one future-dated session and purchase (both
        without a zone, so that every run has such times)."""
        for kind in APP_SESSION_BAD_KINDS:
            self._push(self._session_buffer, self._bad_session(kind, customer_id))
        for kind in APP_PURCHASE_BAD_KINDS:
            self._push(self._purchase_buffer, self._bad_purchase(kind, customer_id, typical_cents))
        future = format_app_time(self._future(), zoned=False)  # a device clock, zone and all
        self._push(
            self._session_buffer, _dumps({"customer_id": customer_id, "session_started_at": future})
        )
        future = format_app_time(self._future(), zoned=False)
        row = (str(customer_id), future, _amount(self._cents(typical_cents)))
        self._push(self._purchase_buffer, _csv_line(row))

    def _push_session(self, customer_id: int, when: datetime) -> None:
        self._push(self._session_buffer, self._session_line(customer_id, when))
        if self.rng.random() < APP_BAD_RATE:
            kind = self.rng.choice(APP_SESSION_BAD_KINDS)
            self._push(self._session_buffer, self._bad_session(kind, customer_id))

    def _push_purchase(self, customer_id: int, when: datetime, cents: int) -> None:
        self._push(self._purchase_buffer, self._purchase_line(customer_id, when, cents))
        if self.rng.random() < APP_BAD_RATE:
            kind = self.rng.choice(APP_PURCHASE_BAD_KINDS)
            self._push(self._purchase_buffer, self._bad_purchase(kind, customer_id, cents))

    def _session_line(self, customer_id: int, when: datetime) -> str:
        return _dumps({"customer_id": customer_id, "session_started_at": self._time(when)})

    def _purchase_line(self, customer_id: int, when: datetime, cents: int) -> str:
        return _csv_line((str(customer_id), self._time(when), _amount(cents)))

    def _bad_session(self, kind: str, customer_id: int) -> str:
        """A session line that cannot be used, for reason ``kind``."""
        rng = self.rng
        when = self._time(_between(rng, self.start, self.end))
        if kind == "invalid_json":  # a strict prefix of an object never parses
            text = _dumps({"customer_id": customer_id, "session_started_at": when})
            return text[: rng.randrange(1, len(text) - 1)]
        if kind == "missing_customer_id":
            return _dumps({"session_started_at": when})
        if kind == "unparseable_session_started_at":
            bad_times = ("yesterday", "2017-02-30T10:00:00Z", "01/03/2017 10:00")
            return _dumps({"customer_id": customer_id, "session_started_at": rng.choice(bad_times)})
        raise ValueError(f"unknown bad session kind {kind!r}")

    def _bad_purchase(self, kind: str, customer_id: int, cents: float) -> str:
        """A purchase row that cannot be used, for reason ``kind``."""
        rng = self.rng
        fields = [
            str(customer_id),
            self._time(_between(rng, self.start, self.end)),
            _amount(round(cents)),
        ]
        if kind == "missing_customer_id":
            fields[0] = ""
        elif kind == "unparseable_amount":
            fields[2] = rng.choice(("abc", "12.5.0", "twelve"))
        elif kind == "unparseable_purchased_at":
            fields[1] = rng.choice(("yesterday", "2017-13-01T10:00:00Z", "31/01/2017"))
        else:
            raise ValueError(f"unknown bad purchase kind {kind!r}")
        return _csv_line(fields)

    def _cents(self, typical_cents: float) -> int:
        return max(99, round(self.rng.lognormvariate(math.log(typical_cents), 0.5)))

    def _time(self, when: datetime) -> str:
        return format_app_time(when, zoned=self.rng.random() >= NAIVE_TIME_RATE)

    def _future(self) -> datetime:
        """A moment ``FUTURE_DAYS`` after the end of the window."""
        return self.end + timedelta(days=self.rng.uniform(*FUTURE_DAYS))

    def _push(self, buffer: list[tuple[str, bool]], line: str) -> None:
        """Queue a line; write random ones once more than ``BUFFER_SIZE`` wait."""
        buffer.append((line, False))
        while len(buffer) > BUFFER_SIZE:
            line = release_line(self.rng, buffer)
            if buffer is self._session_buffer:
                self._write_session(line)
            else:
                self._purchases.write(line)

    def _write_session(self, line: str) -> None:
        self._sessions_file.write(line + "\n")
        self._session_rows += 1


# --- The marketing system --------------------------------------------------------------------

MarketingValue = str | int | float | None
MarketingRow = tuple[MarketingValue, ...]


def marketing_id_range(customers: int) -> int:
    """The number of the first marketing-only user (its id is ``marketing_id`` of it).

    70001 while the web ids (10001 up) stay below it and the marketing-only users fit below the
    CRM ids (80001); for very large runs 700001, and so on: at any scale S the marketing-only
    ids lie in [0.7 S, 0.8 S), clear of the CRM's [0.8 S, 0.9 S) and the store's [0.9 S, S)
    (see ``crm_id_range`` and ``store_id_ranges``).
    """
    scale = 100_000
    while (
        FIRST_CUSTOMER_ID + customers > scale * 7 // 10
        or _marketing_only_count(customers) > scale // 10
    ):
        scale *= 10
    return scale * 7 // 10 + 1


def _marketing_only_count(customers: int) -> int:
    return max(len(MarketingWriter.SCRIPTED), math.ceil(customers * MARKETING_ONLY_RATE))


def marketing_id(seed: int, kind: str, number: int) -> str:
    """A marketing id as the IHC challenge's are: 64 lowercase hex digits, the SHA-256 of a
    label unique to the seed, the kind of id (``user``, ``session``, ``conversion``) and its
    number."""
    return hashlib.sha256(f"marketing-{seed}-{kind}-{number}".encode()).hexdigest()


def marketing_text(value: MarketingValue) -> str:
    """A marketing value as CSV text: empty for NULL, two decimal places for a REAL."""
    if value is None:
        return ""
    if type(value) is float:
        return f"{value:.2f}"
    return value if type(value) is str else str(value)


class _MarketingTable:
    """One marketing table being written: each row goes to its CSV file and to its SQLite table
    at once, so both carry the same rows in the same order. ``buffer`` holds its rows waiting
    to be written (see ``MarketingWriter._push``)."""

    def __init__(
        self, stack: ExitStack, folder: Path, connection: sqlite3.Connection, name: str
    ) -> None:
        columns = MARKETING_TABLES[name]
        self.csv = _CsvOut(stack, folder / f"{name}.csv", [column for column, _ in columns], "\n")
        definition = ", ".join(f"{column} {kind}" for column, kind in columns)
        connection.execute(f"CREATE TABLE {name} ({definition})")
        self._insert = f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))})"
        self._connection = connection
        self._unsaved: list[MarketingRow] = []  # written to the CSV, not yet to the database
        self.buffer: list[MarketingRow] = []

    @property
    def rows(self) -> int:
        return self.csv.rows

    def write(self, row: MarketingRow) -> None:
        fields = [marketing_text(value) for value in row]
        line = ",".join(fields)
        if line.count(",") != len(fields) - 1 or any(char in line for char in '"\r\n'):
            line = _csv_line(fields)  # some field needs quotes
        self.csv.write(line)
        self._unsaved.append(row)
        if len(self._unsaved) >= 1000:
            self.save()

    def save(self) -> None:
        """Insert the rows written to the CSV since the last save, in the same order."""
        self._connection.executemany(self._insert, self._unsaved)
        self._unsaved.clear()


class MarketingWriter:
    """Writes the marketing system's tables, as CSV files and as a SQLite database, in one pass
    over its users, in bounded memory.

    ``marketing/session_sources.csv`` (one row per session: its user, date, time, channel and
    three 0/1 flags), ``marketing/conversions.csv`` (``conv_id``, user, date, time, revenue) and
    ``marketing/session_costs.csv`` (``session_id,cost``), LF line endings, a header; and
    ``marketing.sqlite`` with tables of the same names and rows, typed as in
    ``MARKETING_TABLES`` (an empty CSV field is NULL; dirty values are stored as TEXT, as SQLite
    allows). The database is built in a fresh file with fixed page settings, filled in one
    transaction in the order the CSV rows are written, then vacuumed: the same seed gives the
    same bytes (with the same SQLite library). Each table goes through a ``BUFFER_SIZE``
    arrival buffer. Everything is drawn from ``random.Random(f"marketing-{seed}")``.

    Users: about ``MARKETING_SHARE`` of the web customers (their sessions start on average
    ``FIRST_TOUCH_DAYS`` before they join the web shop) and marketing-only users (numbered from
    ``marketing_id_range()``). Every id written is ``marketing_id`` of such a number (a user's) or
    of a serial (sessions, conversions): 64 hex digits, which no other system's id equals. Sessions
    are a Poisson process at a per-user weekly rate, at most ``MAX_SESSIONS_PER_USER``; a user's
    favourite channel brings ``FAVOURITE_CHANNEL_RATE`` of them. ``CONVERTER_RATE`` of the users
    convert 1 to 3 times, each some minutes or hours after one of their sessions, with log-normal
    revenue (median ``MEDIAN_REVENUE_CENTS``). Direct sessions never have a cost row; others miss it
    at ``MISSING_COST_RATE`` or have an empty cost at ``NULL_COST_RATE``; organic sessions cost
    0.00.

    The first marketing-only users are ``SCRIPTED`` so that even tiny runs have every situation:
    ``cold`` converts before their first session (a conversion without a journey), ``tie``
    converts at exactly the time of their third session (which is not part of the journey, as
    journeys take sessions strictly before), ``repeat`` converts twice (their first sessions are
    in both journeys) and ``heavy`` has ``HEAVY_JOURNEY_SESSIONS`` sessions, the first a Direct
    one, before converting (the only journey longer than 200 sessions). Every run also has one
    bad row of every kind in ``MARKETING_SESSION_BAD_KINDS`` and ``CONVERSION_BAD_KINDS`` (more
    trickle in at ``MARKETING_BAD_RATE``), an exact duplicate session row (more at
    ``SESSION_DUPLICATE_RATE``), and a zero, a null and a missing cost of a non-Direct session.

    Use: ``tap`` the web customers, then ``finish``; the CSV files and the database are closed
    by ``stack``.
    """

    SCRIPTED = ("cold", "tie", "repeat", "heavy")

    def __init__(
        self,
        stack: ExitStack,
        out_dir: Path,
        seed: int,
        start_date: date,
        days: int,
        customers: int,
    ) -> None:
        self.rng = random.Random(f"marketing-{seed}")
        self.seed = seed
        self.start = datetime(start_date.year, start_date.month, start_date.day)  # naive UTC
        self.end = self.start + timedelta(days=days)
        self.customers = customers
        self.only_first = marketing_id_range(customers)
        self.folder = out_dir / MARKETING_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sqlite_path = out_dir / MARKETING_SQLITE_FILE
        for suffix in ("", "-journal", "-wal", "-shm"):  # always a fresh database
            Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        connection = sqlite3.connect(self.sqlite_path, isolation_level=None)
        self._db = stack.enter_context(closing(connection))
        self._db.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        self._db.execute("PRAGMA auto_vacuum = NONE")
        self._db.execute("PRAGMA encoding = 'UTF-8'")
        self._db.execute("BEGIN")
        self._sessions = _MarketingTable(stack, self.folder, self._db, SESSION_SOURCES_TABLE)
        self._conversions = _MarketingTable(stack, self.folder, self._db, CONVERSIONS_TABLE)
        self._costs = _MarketingTable(stack, self.folder, self._db, SESSION_COSTS_TABLE)
        self._session_serial = itertools.count(1)
        self._conversion_serial = itertools.count(1)
        self._forced_costs = ["zero", "null", "missing"]  # for the first non-Direct sessions
        self._duplicate_written = False
        self._write_dirt()

    @property
    def buffered_rows(self) -> int:
        """Rows generated but not written to the CSV files yet (at most 3 BUFFER_SIZE; up to
        1000 more per table wait to be inserted into the database)."""
        return sum(len(table.buffer) for table in self._tables)

    @property
    def _tables(self) -> tuple[_MarketingTable, ...]:
        return (self._sessions, self._conversions, self._costs)

    def tap(self, customers: Iterable[Customer]) -> Iterator[Customer]:
        """Yield the web customers unchanged; about ``MARKETING_SHARE`` of them become users."""
        rng = self.rng
        for customer in customers:
            if rng.random() < MARKETING_SHARE:
                joined = customer.joined_at.astimezone(timezone.utc).replace(tzinfo=None)
                before = timedelta(days=rng.expovariate(1 / FIRST_TOUCH_DAYS))
                self._add_user(customer.customer_id, max(self.start, joined - before))
            yield customer

    def finish(self) -> list[GeneratedFile]:
        """Add the marketing-only users, write what is buffered, complete the database, and
        describe the CSV folder and the SQLite file (each with the rows of all three tables)."""
        rng = self.rng
        for index in range(_marketing_only_count(self.customers)):
            user_id = self.only_first + index
            if index < len(self.SCRIPTED):
                self._add_scripted(self.SCRIPTED[index], user_id)
            else:
                self._add_user(user_id, _between(rng, self.start, self.end))
        for table in self._tables:
            while table.buffer:
                table.write(_release(rng, table.buffer))
            table.save()
        self._db.execute("COMMIT")
        self._db.execute("VACUUM")
        self._db.close()
        rows = sum(table.rows for table in self._tables)
        return [
            GeneratedFile(MARKETING_SOURCE, self.folder, rows),
            GeneratedFile(MARKETING_SOURCE, self.sqlite_path, rows),
        ]

    def _add_user(self, user_id: int, first_touch: datetime) -> None:
        """Queue a user's sessions from ``first_touch`` to the end of the window, and maybe
        conversions after some of them."""
        rng = self.rng
        per_week = rng.lognormvariate(math.log(MEDIAN_MARKETING_SESSIONS_PER_WEEK), 0.8)
        favourite = self._channel()
        times = []
        moment = first_touch
        while moment < self.end and len(times) < MAX_SESSIONS_PER_USER:
            times.append(moment.replace(microsecond=0))
            moment += timedelta(seconds=rng.expovariate(per_week / (7 * 86400)))
        for when in times:
            self._push_session(user_id, when, self._channel(favourite))
        if rng.random() < CONVERTER_RATE:
            for _ in range(rng.choices(*CONVERSIONS_PER_CONVERTER)[0]):
                delay = min(
                    MAX_CONVERSION_DELAY,
                    max(30.0, rng.lognormvariate(math.log(MEDIAN_CONVERSION_DELAY), 1.2)),
                )
                when = (rng.choice(times) + timedelta(seconds=delay)).replace(microsecond=0)
                if when < self.end:
                    self._push_conversion(user_id, when)

    def _add_scripted(self, role: str, user_id: int) -> None:
        """Queue the sessions and conversions of a scripted user (see the class docstring)."""
        rng = self.rng
        span = int((self.end - self.start).total_seconds())
        early = self.start + timedelta(seconds=span * 4 // 5)
        if role == "cold":
            converted = self.start + timedelta(seconds=rng.randrange(span // 5, span * 2 // 5))
            self._push_conversion(user_id, converted)
            for when in self._moments(converted + timedelta(minutes=1), rng.randint(1, 3)):
                self._push_session(user_id, when, self._channel())
        elif role == "tie":
            sessions = self._moments(self.start, 3, early)
            for when in sessions:
                self._push_session(user_id, when, self._channel())
            self._push_conversion(user_id, sessions[-1])
        elif role == "repeat":
            sessions = self._moments(self.start, 4, early)
            for when in sessions:
                self._push_session(user_id, when, self._channel())
            for index in (1, 3):
                after = timedelta(seconds=rng.randint(60, 1800))
                self._push_conversion(user_id, sessions[index] + after)
        elif role == "heavy":
            sessions = self._moments(self.start, HEAVY_JOURNEY_SESSIONS, early)
            favourite = self._channel()
            for index, when in enumerate(sessions):
                self._push_session(
                    user_id, when, "Direct" if index == 0 else self._channel(favourite)
                )
            self._push_conversion(user_id, sessions[-1] + timedelta(seconds=rng.randint(60, 1800)))
        else:
            raise ValueError(f"unknown scripted marketing user {role!r}")

    def _moments(self, low: datetime, count: int, high: datetime | None = None) -> list[datetime]:
        """``count`` distinct whole seconds in [low, high) (high: the end of the window), sorted;
        ``low`` must be a whole second."""
        seconds = int(((high or self.end) - low).total_seconds())
        return [low + timedelta(seconds=s) for s in sorted(self.rng.sample(range(seconds), count))]

    def _channel(self, favourite: str | None = None) -> str:
        """The favourite channel now and then, else any channel by its weight."""
        if favourite is not None and self.rng.random() < FAVOURITE_CHANNEL_RATE:
            return favourite
        return self.rng.choices(MARKETING_CHANNELS, MARKETING_CHANNEL_WEIGHTS)[0]

    def _session_row(self, user_id: int | None, when: datetime, channel: str) -> MarketingRow:
        rng = self.rng
        profile = CHANNEL_PROFILES[channel]
        day, clock = _day_and_clock(when)
        return (
            marketing_id(self.seed, "session", next(self._session_serial)),
            None if user_id is None else marketing_id(self.seed, "user", user_id),
            day,
            clock,
            channel,
            int(rng.random() < profile.holder),
            int(rng.random() < profile.closer),
            int(rng.random() < profile.impression),
        )

    def _push_session(self, user_id: int, when: datetime, channel: str) -> None:
        """Queue a session (maybe twice), its cost and now and then a bad row."""
        rng = self.rng
        row = self._session_row(user_id, when, channel)
        self._push(self._sessions, row)
        if not self._duplicate_written or rng.random() < SESSION_DUPLICATE_RATE:
            self._duplicate_written = True
            self._push(self._sessions, row)
        self._push_cost(str(row[0]), channel)
        if rng.random() < MARKETING_BAD_RATE:
            kind = rng.choice(MARKETING_SESSION_BAD_KINDS)
            self._push(self._sessions, self._bad_session(kind, user_id, when))

    def _push_cost(self, session_id: str, channel: str) -> None:
        """Queue a session's cost row: none for Direct and now and then for others, an empty
        cost now and then, 0.00 for organic channels."""
        rng = self.rng
        cents = CHANNEL_PROFILES[channel].cost_cents
        if cents is None:
            return
        forced = self._forced_costs.pop(0) if self._forced_costs else None
        if forced == "missing" or (forced is None and rng.random() < MISSING_COST_RATE):
            return
        cost: float | None
        if forced == "null" or (forced is None and rng.random() < NULL_COST_RATE):
            cost = None
        elif forced == "zero":
            cost = 0.0
        else:
            cost = rng.randint(*cents) / 100
        self._push(self._costs, (session_id, cost))

    def _conversion_row(self, user_id: int, when: datetime) -> MarketingRow:
        cents = max(100, round(self.rng.lognormvariate(math.log(MEDIAN_REVENUE_CENTS), 0.8)))
        day, clock = _day_and_clock(when)
        conv_id = marketing_id(self.seed, "conversion", next(self._conversion_serial))
        user = marketing_id(self.seed, "user", user_id)
        return (conv_id, user, day, clock, cents / 100)

    def _push_conversion(self, user_id: int, when: datetime) -> None:
        self._push(self._conversions, self._conversion_row(user_id, when))
        if self.rng.random() < MARKETING_BAD_RATE:
            kind = self.rng.choice(CONVERSION_BAD_KINDS)
            self._push(self._conversions, self._bad_conversion(kind, user_id, when))

    def _write_dirt(self) -> None:
        """One bad row of every kind, for a scripted user, with the first of the bad values."""
        rng = self.rng
        user_id = self.only_first + rng.randrange(len(self.SCRIPTED))
        when = _between(rng, self.start, self.end).replace(microsecond=0)
        for kind in MARKETING_SESSION_BAD_KINDS:
            self._push(self._sessions, self._bad_session(kind, user_id, when, first=True))
        for kind in CONVERSION_BAD_KINDS:
            self._push(self._conversions, self._bad_conversion(kind, user_id, when, first=True))

    def _bad_session(
        self, kind: str, user_id: int, when: datetime, first: bool = False
    ) -> MarketingRow:
        """A session row that cannot be used as it is, for reason ``kind``."""
        row = list(self._session_row(user_id, when, self._channel()))
        if kind == "unparseable_event_time":
            row[3] = BAD_EVENT_TIMES[0] if first else self.rng.choice(BAD_EVENT_TIMES)
        elif kind == "missing_user_id":
            row[1] = None
        else:
            raise ValueError(f"unknown bad session kind {kind!r}")
        return tuple(row)

    def _bad_conversion(
        self, kind: str, user_id: int, when: datetime, first: bool = False
    ) -> MarketingRow:
        """A conversion row that cannot be used as it is, for reason ``kind``."""
        row = list(self._conversion_row(user_id, when))
        if kind == "unparseable_revenue":
            row[4] = BAD_REVENUES[0] if first else self.rng.choice(BAD_REVENUES)
        elif kind == "missing_conv_date":
            row[2] = None
        else:
            raise ValueError(f"unknown bad conversion kind {kind!r}")
        return tuple(row)

    def _push(self, table: _MarketingTable, row: MarketingRow) -> None:
        """Queue a row of ``table``; write random ones once more than ``BUFFER_SIZE`` wait."""
        table.buffer.append(row)
        while len(table.buffer) > BUFFER_SIZE:
            table.write(_release(self.rng, table.buffer))


def _day_and_clock(when: datetime) -> tuple[str, str]:
    """``YYYY-MM-DD`` and ``HH:MM:SS`` (to the second) of a naive datetime."""
    day, clock = when.isoformat(sep=" ", timespec="seconds").split(" ")
    return day, clock


def _release(rng: random.Random, buffer: list[MarketingRow]) -> MarketingRow:
    """Take a random row out of a non-empty arrival buffer."""
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()
