"""Bad input, tried for real: hypothesis feeds every loader random and malformed files.

Sources: web events (JSON Lines and JSON arrays), store customer extracts (with their
extract dates), store sales, the CRM exports (both interaction headers), app sessions
and purchases (CSV and JSON Lines) and the marketing CSV folder. The files carry broken
JSON, other encodings (Latin-1, CP-1252, UTF-16, stray bytes, lone surrogates), fields of
hundreds of KB, missing and extra columns, odd dates, absurd amounts and injection
attempts in every text field (the file names included).

Each file either lands or is refused with a RunnerError (any other exception fails the
test), and a file that landed lost nothing: its rows in raw.<table> are exactly its
non-blank records (counted here from the bytes, not by the loader's code), each with
its original text, escaped as documented in loading._decode. Loading a file again adds
nothing. Once every file has landed, one `dbt build` passes: every raw row is valid or
quarantined (all_rows_accounted_for) and every mart test holds. raw.loads and the raw
tables hold exactly the loads made, before and after the build.

Generation is derandomized (the same files on every run and on both targets) and the
warehouse test builds once per target. Findings this suite cannot fix from here:

- KNOWN_DUCKDB_CR_BUG (below), found by this suite and fixed in DuckDBWarehouse.copy_csv
  (new_line is given, never guessed): should it come back, the tests fail with its
  description.
- An unknown CRM channel in an otherwise valid interaction used to fail `dbt build`; it
  is now quarantined as unknown_channel with a warning, so the generator draws unknown
  channels (and injections) as channels too (see values()).
- A CSV field longer than Python's csv limit (131072 characters) makes its line
  unparseable: it lands whole and is quarantined as malformed_line (see utf8_clean()).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from runner.config import Settings
from runner.dbt_invoke import run_dbt
from runner.errors import RunnerError
from runner.loading import (
    MARKETING_TABLES,
    RAW_TABLES,
    LoadResult,
    check_file_kind,
    json_error,
    load_file,
    load_marketing,
    load_store_customers,
)
from runner.warehouse import Warehouse, connect

# Reproducible on every run and in CI: no random seed, no example database on disk.
REPRODUCIBLE = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "print_blob": False,
    "suppress_health_check": list(HealthCheck),
    # No shrinking: examples share one warehouse and land hundreds of KB each; the
    # assertion messages name the file, the line and the difference instead.
    "phases": (hypothesis.Phase.explicit, hypothesis.Phase.generate),
}
BATCHES_PER_TARGET = 10  # each batch lands one file (or folder) of every kind

UTF8_BOM = b"\xef\xbb\xbf"
SQLITE_MAGIC = b"SQLite format 3\x00"
CSV_FIELD_LIMIT = csv.field_size_limit()  # Python's csv refuses longer fields

# The documented headers (README, loading.py), written out here rather than read
# from the loader so that a changed header breaks this test.
HEADERS = {
    "store_customers": ("ID", "Name", "City"),
    "store_sales": ("CustomerID", "Product", "SalesAmount", "ShopId", "TransactionDate"),
    "crm_customers": ("Customer_Id", "Occupation", "Type"),
    "crm_interactions": ("date_start", "event", "customers"),
    "crm_products": ("date", "product"),
    "app_sessions": ("customer_id", "session_started_at"),
    "app_purchases": ("customer_id", "purchased_at", "amount"),
    "app_contacts": ("customer_id", "phone_number"),
    "session_sources": (
        "session_id",
        "user_id",
        "event_date",
        "event_time",
        "channel_name",
        "holder_engagement",
        "closer_engagement",
        "impression_interaction",
    ),
    "conversions": ("conv_id", "user_id", "conv_date", "conv_time", "revenue"),
    "session_costs": ("session_id", "cost"),
}
ALIASES = {"crm_interactions": ("Date Start", "Interaction", "Customers")}
APP_SOURCES = ("app_sessions", "app_purchases")  # CSV or JSON Lines
# What each column holds, to draw plausible values as well as bad ones.
KINDS = {
    "store_customers": ("id", "text", "text"),
    "store_sales": ("id", "text", "amount", "small", "datetime"),
    "crm_customers": ("id", "text", "text"),
    "crm_interactions": ("dmy", "channel", "id"),
    "crm_products": ("month", "text"),
    "app_sessions": ("id", "datetime"),
    "app_purchases": ("id", "datetime", "amount"),
    "app_contacts": ("id", "phone"),
    "session_sources": ("key", "id", "date", "time", "channel", "flag", "flag", "flag"),
    "conversions": ("key", "id", "date", "time", "amount"),
    "session_costs": ("key", "amount"),
}
# raw.<table> -> its staging pair stg_<model> and stg_<model>_quarantine.
STAGING = {
    "web_events": "web__events",
    "store_customers": "store__customers",
    "store_sales": "store__sales",
    "crm_customers": "crm__customers",
    "crm_interactions": "crm__interactions",
    "crm_products": "crm__products",
    "app_sessions": "app__sessions",
    "app_purchases": "app__purchases",
    "app_contacts": "app__contacts",
    "session_sources": "marketing__sessions",
    "conversions": "marketing__conversions",
    "session_costs": "marketing__session_costs",
}

INJECTIONS = (
    "'; drop table raw.loads; --",
    "'); delete from raw.loads where ('1' = '1",
    '"; drop table raw.web_events; --',
    "1; truncate raw.store_sales",
    "'",
    '"',
    '""',
    "\\",
    "\\'",
    '\\"',
    '"a\nb"',  # a line break inside quotes
    "a\r\nb",
    "a\rb",
    "{{ }}",
    "{{ var('as_of_date') }}",
    "{% raw %}{{ x }}",
    "{# comment",
    "%s",
    "%(name)s",
    "%%",
    "?",
    "$1",
    ":name",
    "\x00",
    "nul\x00inside",
    "\\x00",
    "\\u0000",
    "\\ud800",  # a lone surrogate as a JSON escape
    "\ud800",  # a lone surrogate character: its bytes are not UTF-8
    "a\udcffb",
    "\\.",  # PostgreSQL's COPY end-of-data marker
    "\\N",
    "NULL",
    "null",
    "",
    " ",
    "\t",
    ",",
    ",,,",
    '","',
    "\ufeff",
    "\u2028",
    "\u202e",
    "caf\xe9 \U0001f4a5",
    "<script>alert(1)</script>",
)
ODD_IDS = (
    "-1",
    "0",
    "007",
    " 42 ",
    "1.0",
    "1e3",
    "+1",
    "1_000",
    "0x1F",
    "\uff11",  # a full-width digit
    "999999999999999999",
    "9999999999999999999",
    "99999999999999999999",
)
ODD_AMOUNTS = (
    "1e308",
    "-1e308",
    "1e-308",
    "-0",
    "-0.0",
    "0",
    "99999999999999999999",
    "9999999999999.99",
    "-9999999999999.99",
    "99999999999999.99",
    "0.001",
    "1,000.00",
    "NaN",
    "Infinity",
    "-inf",
    ".5",
    "5.",
    "12.34 USD",
)
ODD_DATES = (
    "2017-02-29",
    "2016-02-29",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2017-13-01T00:00:00",
    "2017-00-10 10:00:00",
    "2017-04-31T10:00:00Z",
    "2017-01-01T24:00:00",
    "2017-01-01T23:60:00",
    "2017-01-01T23:59:60Z",
    "2017-01-01T12:00:00.1234567890123Z",
    "2017-01-01T12:00:00+99:99",
    "2017-1-1",
    "01/02/2017",
    "31/12/2017 23:59",
    "32/01/2017 10:00",
    "29/02/2019 10:00",
    "00/00/0000 00:00",
    "12-2017",
    "00-2017",
    "13-2017",
    "01-0000",
    "25:61:61",
    "now",
    "infinity",
    "-infinity",
    "epoch",
    "2017-01-01 00:00:00 BC",
    "294277-01-01",
)
NAMES = ("Ann Lee", "Bob Roe", " Cy Doe ", "Boston", "Denver", "Jedi", "Red", "Scarf")
CRM_CHANNELS = ("Email", "Call", "Bird", "Boat", "Post", "SMS", "Chat")
MARKETING_CHANNELS = ("Organic Search", "Paid Search", "Email", "Display", "Referral")
HUGE_SIZES = (100_000, 140_000, 300_000)  # beside and beyond csv's 131072-character limit
HUGE_CHARS = ("x", "\xe9", '"', "'", "\\", ",", "{")
ENCODINGS = ("utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16")
BLANKS = st.lists(st.sampled_from(["", " ", "\t", "  \t "]), max_size=2)  # not records
STRAY_BYTES = st.lists(st.binary(min_size=1, max_size=40), max_size=2)
# File names are text fields too.
FILE_NAMES = (
    "plain",
    "'; drop table raw.loads; --",
    '"quoted" name',
    "back\\slash",
    "new\nline",
    "{{ jinja }}",
    "%s%(x)s?$1",
    "tab\tand space",
    "caf\xe9 \U0001f4a5",
)


def odd_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=12))


def datetimes_text() -> st.SearchStrategy[str]:
    moments = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2019, 12, 31))
    return st.builds(
        lambda moment, sep, fraction, zone: (
            moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + zone
        ),
        moments,
        st.sampled_from(["T", " "]),
        st.sampled_from(["", ".5", ".123456"]),
        st.sampled_from(["", "Z", "+02:00", "-0530"]),
    )


# Valid, if extreme: staging accepts them, so they reach the marts.
EXTREME_AMOUNTS = ("-0", "0", "-0.00", "0.01", " 12.5 ", "9999999999999.99", "-9999999999999.99")
EXTREME_MOMENTS = (
    "0001-01-01T00:00:00",
    "0001-01-01 00:00:00+23:59",  # 1 BC in UTC
    "9999-12-31T23:59:59-23:59",  # 10000 AD in UTC
    "2016-02-29T23:59:59.999999999Z",
    "1970-01-01 00:00:00Z",
    "2038-01-19T03:14:08+00:00",
)


def plausible(kind: str) -> st.SearchStrategy[str]:
    """Values staging accepts; text columns take the injections too."""
    days = st.dates(min_value=date(2015, 1, 1), max_value=date(2019, 12, 31))
    moments = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2019, 12, 31))
    common = {
        "id": st.one_of(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10**18 - 1)).map(str),
        "small": st.integers(1, 9).map(str),
        "key": st.integers(1, 40).map(lambda n: f"S{n:05d}"),
        "text": st.one_of(st.sampled_from(NAMES), st.sampled_from(INJECTIONS)),
        "amount": st.decimals(-(10**6), 10**6, places=2, allow_nan=False).map(str),
        "date": days.map(date.isoformat),
        "time": st.times().map(lambda t: t.strftime("%H:%M:%S")),
        "datetime": datetimes_text(),
        "dmy": moments.map(lambda moment: moment.strftime("%d/%m/%Y %H:%M")),
        "month": days.map(lambda day: day.strftime("%m-%Y")),
        "channel": st.sampled_from(CRM_CHANNELS),
        "marketing_channel": st.sampled_from(MARKETING_CHANNELS),
        "flag": st.sampled_from(["0", "1"]),
        "phone": st.integers(10**7, 10**14).map(lambda n: f"+{n}"),
    }[kind]
    extreme = {
        "amount": EXTREME_AMOUNTS,
        "datetime": EXTREME_MOMENTS,
        "date": ("0001-01-01", "9999-12-31", "2016-02-29"),
        "dmy": ("29/02/2016 23:59", "01/01/0001 00:00", "31/12/9999 23:59:59"),
        "month": ("01-0001", "12-9999"),
        "id": ("0", "999999999999999999", " 7 "),
        "phone": ("+1 (415) 555-0100", "+999999999999999", "0415 555 0100", "+0123456"),
    }.get(kind)
    if extreme is None:
        return common
    return st.one_of(common, common, common, st.sampled_from(extreme))


def values(kind: str) -> st.SearchStrategy[str]:
    """Mostly plausible values of a column, else odd ones of its kind or injections."""
    odd = {
        "id": ODD_IDS,
        "small": ODD_IDS,
        "key": ODD_IDS,
        "amount": ODD_AMOUNTS,
        "date": ODD_DATES,
        "time": ODD_DATES,
        "datetime": ODD_DATES,
        "dmy": ODD_DATES,
        "month": ODD_DATES,
        "flag": ("2", "-1", "true", "0.0"),
    }.get(kind, INJECTIONS)
    good = plausible(kind)
    if kind == "channel":  # blank, unknown to the channels seed (Fax), or odd
        unknown = st.sampled_from(["", "  ", "Fax", "email", "Pigeon Post"])
        return st.one_of(good, good, good, unknown, odd_text())
    return st.one_of(good, good, good, st.sampled_from(odd), odd_text())


def escaped(raw: bytes) -> str:
    """A record's text as the loaders document it (loading._decode): bytes that are not
    UTF-8 as \\xNN escapes, NUL characters as the text \\x00."""
    return raw.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def encode(text: str, encoding: str) -> bytes:
    if encoding.startswith("utf"):
        return text.encode(encoding, errors="surrogatepass")
    return text.encode(encoding, errors="replace")


def utf8_clean(value: str) -> bool:
    """True when a CSV field survives a line unchanged: no line break, no NUL, no lone
    surrogate, within Python csv's field size limit."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(c in value for c in "\r\n\x00") and len(value) <= CSV_FIELD_LIMIT


@dataclass(frozen=True)
class Generated:
    """A generated file and what the test knows about it from generating it."""

    source: str
    name: str
    data: bytes
    header_ok: bool = True  # CSV: written with an accepted header, in a readable encoding
    array_records: tuple[tuple[int, str], ...] | None = None  # JSON array: its elements
    # JSON array: the position of a record of text after the closing bracket, which the
    # loader lands with a parse error ("unexpected text after the array") even when it
    # reads as JSON (`]\n{}`): never a valid object
    after_array: int | None = None
    fields: dict[int, tuple[str | None, ...]] = field(default_factory=dict)  # by line

    def __repr__(self) -> str:  # the bytes can be hundreds of KB
        head = self.data[:300] + (b"..." if len(self.data) > 300 else b"")
        return f"Generated({self.source}, {self.name!r}, {len(self.data)} bytes: {head!r})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # hypothesis's report
        printer.text(repr(self))


@dataclass(frozen=True)
class Expected:
    refused: bool
    records: tuple[tuple[int, str], ...] = ()  # (file_position, raw_text)


def non_blank_lines(body: bytes) -> list[tuple[int, str]]:
    """The records of a line-based file: its non-blank lines (blank: only ASCII
    whitespace), numbered from 1, without their line ending."""
    lines = enumerate(body.split(b"\n"), start=1)
    return [(n, escaped(line.rstrip(b"\r\n"))) for n, line in lines if line.strip()]


def is_json_object(raw: bytes) -> bool:
    """Whether a record is a JSON object both warehouses accept (what makes a file JSON)."""
    return raw.lstrip().startswith(b"{") and json_error(raw) is None


def expected(file: Generated) -> Expected:
    """What loading `file` must do, worked out from its bytes and how it was made. A
    file is refused whole when it is empty (only whitespace), UTF-16 (its byte order
    mark), or a JSON file (web events; app files starting with a brace) in which no
    record is a valid JSON object."""
    body = file.data[len(UTF8_BOM) :] if file.data.startswith(UTF8_BOM) else file.data
    if not body.strip() or file.data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Expected(True)
    if file.array_records is not None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:  # not text: one unparseable record, so no object
            return Expected(True)
        objects = [
            is_json_object(text.encode("utf-8")) and position != file.after_array
            for position, text in file.array_records
        ]
        return Expected(bool(objects) and not any(objects), file.array_records)
    lines = non_blank_lines(body)
    json_lines = file.source == "web_events" or (
        file.source in APP_SOURCES and body.lstrip().startswith(b"{")
    )
    if json_lines:
        raw_lines = [line.rstrip(b"\r\n") for line in body.split(b"\n") if line.strip()]
        return Expected(not any(map(is_json_object, raw_lines)), tuple(lines))
    if not file.header_ok:
        return Expected(True)
    return Expected(False, tuple(lines[1:]))


Line = tuple[str | bytes, tuple[str | None, ...] | None]  # text or stray bytes, its fields


def assemble(
    lines: list[Line], encoding: str, newline: str, trailing: str
) -> tuple[bytes, dict[int, tuple[str | None, ...]]]:
    """Join text lines (encoded) and stray byte lines into a file. Also returns, by line
    number, the fields of the lines that must land parsed (only for UTF-8 files)."""
    if encoding == "utf-16":
        text = newline.join(line for line, _ in lines if isinstance(line, str)) + trailing
        return encode(text, "utf-16"), {}
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    parts = [line if isinstance(line, bytes) else encode(line, codec) for line, _ in lines]
    fields, number = {}, 1
    for part, (_, cells) in zip(parts, lines, strict=True):
        if cells is not None and codec == "utf-8":
            fields[number] = cells
        number += part.count(b"\n") + 1
    data = encode(newline, codec).join(parts) + encode(trailing, codec)
    return (UTF8_BOM if encoding == "utf-8-sig" else b"") + data, fields


def with_strays(draw: st.DrawFn, lines: list[Line], after: int) -> list[Line]:
    """`lines` with lines of stray bytes inserted after its first `after` lines."""
    for stray in draw(STRAY_BYTES):
        lines.insert(draw(st.integers(after, len(lines))), (stray, None))
    return lines


def blanks(draw: st.DrawFn) -> list[Line]:
    return [(blank, None) for blank in draw(BLANKS)]


@st.composite
def huge_value(draw: st.DrawFn) -> str | None:
    if draw(st.sampled_from([False, False, True])):
        return draw(st.sampled_from(HUGE_CHARS)) * draw(st.sampled_from(HUGE_SIZES))
    return None


def file_names(suffix: str) -> st.SearchStrategy[str]:
    return st.sampled_from(FILE_NAMES).map(lambda name: name + suffix)


def csv_line(fields: list[str], quote_all: bool) -> str:
    buffer = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    csv.writer(buffer, quoting=quoting, lineterminator="\n").writerow(fields)
    return buffer.getvalue()[:-1]


ACCEPTED_HEADERS = ["exact"] * 6 + ["styled", "alias"]
REFUSED_HEADERS = ["other_source", "missing_column", "extra_column", "no_header", "garbage"]
REFUSED_HEADERS += ["empty", "blank_only"]


@st.composite
def csv_files(draw: st.DrawFn, source: str, refusable: bool = True) -> Generated:
    """A CSV file for `source`: its header (or, when `refusable`, a wrong or missing one,
    or UTF-16), rows whose fields are plausible, odd, injected or huge, some with missing
    or extra columns or no quoting, blank lines, stray bytes, one of several encodings
    and line endings."""
    header, kinds = HEADERS[source], KINDS[source]
    if source == "session_sources":
        kinds = (*kinds[:4], "marketing_channel", *kinds[5:])
    variants = ACCEPTED_HEADERS + (REFUSED_HEADERS if refusable else [])
    variant = draw(st.sampled_from(variants))
    encodings = ENCODINGS if refusable else [e for e in ENCODINGS if e != "utf-16"]
    encoding = draw(st.sampled_from(encodings))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = blanks(draw)
    header_line = {
        "exact": ",".join(header),
        "alias": ",".join(ALIASES.get(source, header)),
        "other_source": ",".join(
            draw(st.sampled_from([h for s, h in HEADERS.items() if s != source]))
        ),
        "missing_column": ",".join(header[:-1]),
        "extra_column": ",".join((*header, "extra")),
    }.get(variant)
    if variant == "styled":
        style = draw(st.sampled_from(["upper", "lower", "padded", "quoted"]))
        styled = {
            "upper": str.upper,
            "lower": str.lower,
            "padded": lambda name: f"  {name}\t",
            "quoted": lambda name: f'"{name}"',
        }[style]
        header_line = ",".join(styled(name) for name in header)
    elif variant == "garbage":
        header_line = draw(
            st.one_of(
                st.sampled_from(["x" * 200_000, "ID;Name;City", "ID\tName\tCity", '"ID,Name', '"']),
                st.text(min_size=1, max_size=20).map(lambda text: "#" + text),
            )
        )
    if header_line is not None:
        lines.append((header_line, None))
    header_ok = variant in ("exact", "styled", "alias") and encoding != "utf-16"
    rows: list[tuple[bool, tuple[str, ...]]] = []
    if variant not in ("empty", "blank_only"):
        good = st.tuples(st.just(True), st.tuples(*(plausible(kind) for kind in kinds)))
        odd = st.tuples(st.just(False), st.tuples(*(values(kind) for kind in kinds)))
        rows = draw(st.lists(st.one_of(good, good, odd), max_size=6))
    first_row = len(lines)
    huge = draw(huge_value())
    for number, (is_good, row) in enumerate(rows):
        cells = list(row)
        if huge is not None and number == 0:
            cells[draw(st.integers(0, len(cells) - 1))] = huge
        styles = ["csv", "quote_all"] if is_good else ["csv", "raw", "short", "long"]
        style = draw(st.sampled_from(styles))
        if style == "short":
            cells = cells[: draw(st.integers(0, len(cells) - 1))]
        elif style == "long":
            cells += draw(st.lists(odd_text(), min_size=1, max_size=3))
        if style == "raw":
            lines.append((",".join(cells), None))
        else:
            clean = style in ("csv", "quote_all") and all(map(utf8_clean, cells))
            lines.append((csv_line(cells, style == "quote_all"), tuple(cells) if clean else None))
        if draw(st.booleans()):
            lines.extend(blanks(draw))
    if rows:
        lines = with_strays(draw, lines, after=first_row + 1)
    trailing = draw(st.sampled_from(["", newline, newline * 3, newline + "  "]))
    data, fields = assemble(lines, encoding, newline, trailing)
    name = draw(file_names(".csv"))
    return Generated(source, name, data, header_ok=header_ok, fields=fields)


VERBS = {"CUSTOMER": ("NEW", "UPDATE"), "SITE_VISIT": ("NEW",), "IMAGE": ("UPLOAD",)}
VERBS["ORDER"] = VERBS["CUSTOMER"]
# Injections a JSON event can carry and still be valid (PostgreSQL's jsonb holds no NUL,
# JSON no lone surrogate).
STORABLE = [i for i in INJECTIONS if "\x00" not in i and utf8_clean(i.replace("\n", ""))]
CUSTOMERS = st.one_of(
    st.integers(1, 6).map(lambda n: f"c{n}"),
    st.integers(1, 6).map(lambda n: f"c{n}"),
    st.sampled_from([i for i in STORABLE if i.strip()]),
)
EVENT_TEXT = st.one_of(st.sampled_from(NAMES), st.sampled_from(STORABLE))


@st.composite
def valid_event(draw: st.DrawFn) -> dict:
    """A web event staging accepts, with injections in its text fields."""
    kind = draw(st.sampled_from(sorted(VERBS)))
    event = {
        "type": draw(st.sampled_from([kind, kind.lower(), f" {kind} "])),
        "verb": draw(st.sampled_from(VERBS[kind])),
        "key": draw(st.one_of(st.integers(1, 8).map(lambda n: f"k{n}"), CUSTOMERS)),
        "event_time": draw(plausible("datetime")),
        "customer_id": draw(CUSTOMERS),
    }
    if kind == "ORDER":
        event["total_amount"] = draw(plausible("amount")) + draw(st.sampled_from([" USD", "usd"]))
    for name in ("last_name", "adr_city", "adr_state", "camera_make", "camera_model"):
        if draw(st.booleans()):
            event[name] = draw(EVENT_TEXT)
    if kind == "SITE_VISIT" and draw(st.booleans()):
        tags = st.fixed_dictionaries({"name": EVENT_TEXT, "value": EVENT_TEXT})
        event["tags"] = draw(st.lists(tags, max_size=2))
    return event


def web_event() -> st.SearchStrategy[dict]:
    """A web event, valid (mostly) or not: unknown types and verbs, odd values, missing
    keys, values of the wrong JSON type."""
    types = ("CUSTOMER", "SITE_VISIT", "IMAGE", "ORDER")
    verbs = ("NEW", "UPDATE", "UPLOAD")
    text = st.one_of(st.sampled_from(NAMES), odd_text())
    amount = st.one_of(
        st.builds(lambda a: f"{a} USD", st.sampled_from(ODD_AMOUNTS)),
        st.sampled_from(["12.34 EUR", "12.34", "USD 12.34", "12.345 USD"]),
        odd_text(),
    )
    scalar = st.one_of(
        st.sampled_from([1e308, -0.0, 99999999999999999999, None, True, float("nan")]),
        st.lists(odd_text(), max_size=2),
    )
    events = st.fixed_dictionaries(
        {
            "type": st.one_of(st.sampled_from(types), odd_text()),
            "verb": st.one_of(st.sampled_from(verbs), odd_text()),
            "key": st.one_of(st.integers(1, 8).map(lambda n: f"k{n}"), odd_text(), scalar),
            "event_time": st.one_of(datetimes_text(), st.sampled_from(ODD_DATES), scalar),
            "customer_id": st.one_of(CUSTOMERS, odd_text(), scalar),
        },
        optional={
            "total_amount": amount,
            "last_name": text,
            "adr_city": text,
            "camera_make": scalar,
            "tags": st.one_of(scalar, st.just({"not": "a list"})),
            "extra '; drop table raw.loads; --": scalar,
        },
    )
    required = ("type", "verb", "key", "event_time", "customer_id")
    invalid = st.builds(  # sometimes without one of the keys every event needs
        lambda event, missing: {k: v for k, v in event.items() if k != missing},
        events,
        st.sampled_from([None, None, *required]),
    )
    return st.one_of(valid_event(), valid_event(), invalid)


BROKEN_JSON = (
    '{"type": "ORDER", broken',
    "{'type': 'ORDER'}",
    '{"type": "ORDER"',
    '{"a": NaN}',
    '{"a": 1e400}',
    '{"a": "\\u0000"}',
    '{"a": "\\ud800"}',
    '{"a": 1}{"b": 2}',
    '"just a string"',
    "42",
    "null",
    "[1, 2]",
    "[" * 3000 + "]" * 3000,
    "{" + '"a":{' * 2000 + "}" * 2001,
)


def json_record_text(huge: str | None) -> st.SearchStrategy[str]:
    dumped = st.builds(
        lambda event, ascii_only, pad: pad + json.dumps(event, ensure_ascii=ascii_only) + pad,
        web_event(),
        st.booleans(),
        st.sampled_from(["", " ", "\t"]),
    )
    options = [dumped, dumped, dumped, st.sampled_from(BROKEN_JSON), odd_text()]
    if huge is not None:  # a valid event with a huge name
        event = {"type": "CUSTOMER", "verb": "NEW", "key": "c1", "customer_id": "c1"}
        event |= {"event_time": "2017-01-01T00:00:00Z", "last_name": huge}
        options.append(st.just(json.dumps(event)))
    return st.one_of(options)


@st.composite
def web_json_lines(draw: st.DrawFn) -> Generated:
    """Web events as JSON Lines (an object first, so the file is not read as an array):
    events with odd values, broken JSON, stray bytes, a multi-line event."""
    huge = draw(huge_value())
    lines = [*blanks(draw), (json.dumps(draw(web_event())), None)]
    first = len(lines)
    for text in draw(st.lists(json_record_text(huge), max_size=8)):
        lines.append((text, None))
        lines.extend(blanks(draw))
    if draw(st.sampled_from([False, False, True])):  # a multi-line event: broken lines
        lines.append((json.dumps(draw(web_event()), indent=2), None))
    lines = with_strays(draw, lines, after=first)
    encoding = draw(st.sampled_from(ENCODINGS))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    data, _ = assemble(lines, encoding, newline, draw(st.sampled_from(["", newline])))
    return Generated("web_events", draw(file_names(".jsonl")), data)


# Elements at which the array breaks off: the rest of the file becomes one record.
ARRAY_BREAKERS = (
    '{"c": oops}',
    "{'a': 1}",
    "oops",
    '"line\nbreak"',
    ",",
    "[" * 5000 + "]" * 5000,  # nesting deeper than Python's recursion limit
    '{"a": [' + "[" * 5000 + "]" * 5000 + "]}",
    '{"a": ' * 3000 + "1" + "}" * 3000,
)


@st.composite
def web_json_arrays(draw: st.DrawFn) -> Generated:
    """A JSON array of events; the elements it should land as are recorded as it is
    written. It may break off at a bad element, stop unclosed, or carry text after its
    closing bracket."""
    huge = draw(huge_value())
    element = st.one_of(
        st.builds(
            lambda event, indent: json.dumps(event, indent=indent),
            web_event(),
            st.sampled_from([None, None, 2]),
        ),
        st.sampled_from(['"a string"', "42", "null", "NaN", "-Infinity", "1e400", "[]", "{}"]),
        st.sampled_from(['{"a": "\\u0000"}', '{"a": "\\ud800"}', '{"\\u0000": 1}']),
    )
    elements = draw(st.lists(element, max_size=6))
    if huge is not None:
        elements.append(json.dumps({"type": "IMAGE", "camera_make": huge}))
    separators = st.sampled_from([",", ", ", ",\n  ", " ,\r\n", "\n,\t"])
    text = draw(st.sampled_from(["[", "[\n  ", " \n[ ", "\t["]))
    records: list[tuple[int, str]] = []
    after_array = None
    for position, item in enumerate(elements, start=1):
        if position > 1:
            text += draw(separators)
        text += item
        records.append((position, item))
    ending = draw(
        st.sampled_from(["close", "close", "junk", "break", "break", "unclosed", "dangling"])
    )
    if ending == "close":
        text += draw(st.sampled_from(["]", "\n]\n", " ] \n\n"]))
    elif ending == "junk":
        junk = draw(st.sampled_from([" trailing", "\n{}", "]", ' , "x"']))
        text += "]" + junk
        records.append((len(elements) + 1, junk.strip()))
        after_array = len(elements) + 1
    elif ending == "break":
        if elements:
            text += draw(separators)
        start = len(text)
        text += draw(st.sampled_from(ARRAY_BREAKERS)) + ', {"type": "SITE_VISIT"}]\n'
        records.append((len(elements) + 1, text[start:].strip()))
    elif ending == "unclosed" or not elements:
        records.append((len(elements) + 1, ""))
    else:  # a comma, then the end of the file
        text += ",\n"
        records.append((len(elements) + 1, ""))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1"]))
    data, _ = assemble([(text, None)], encoding, "\n", "")
    return Generated(
        "web_events",
        draw(file_names(".json")),
        data,
        array_records=tuple(records),
        after_array=after_array,
    )


@st.composite
def app_json_lines(draw: st.DrawFn, source: str) -> Generated:
    """App sessions or purchases as JSON Lines: objects with the keys as strings,
    numbers or nulls, missing keys, extra keys, and broken lines."""
    keys, kinds = HEADERS[source], KINDS[source]
    scalar = st.sampled_from([1e308, -0.0, 99999999999999999999, 12, None, True, [1], {}])
    good = st.fixed_dictionaries(
        {key: plausible(kind) for key, kind in zip(keys, kinds, strict=True)}
    )
    odd = st.fixed_dictionaries(
        {},
        optional={
            **{key: st.one_of(values(kind), scalar) for key, kind in zip(keys, kinds, strict=True)},
            "extra": odd_text(),
            "%s?": scalar,
        },
    )
    objects = st.one_of(good, good, odd)
    first = {key: draw(plausible(kind)) for key, kind in zip(keys, kinds, strict=True)}
    huge = draw(huge_value())
    if huge is not None:
        first[keys[-1]] = huge
    lines = [*blanks(draw), (json.dumps(first), tuple(first[key] for key in keys))]
    after_first = len(lines)
    for number, obj in enumerate(draw(st.lists(objects, max_size=6))):
        if number % 3 == 2:
            lines.append((draw(st.sampled_from(BROKEN_JSON)), None))
        clean = all(isinstance(v, str) and utf8_clean(v) for v in obj.values())
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
        lines.append((text, tuple(obj.get(key) for key in keys) if clean else None))
        lines.extend(blanks(draw))
    lines = with_strays(draw, lines, after=after_first)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    data, fields = assemble(lines, encoding, newline, newline)
    return Generated(source, draw(file_names(".jsonl")), data, header_ok=False, fields=fields)


@dataclass(frozen=True)
class StoreExtract:
    file: Generated
    days_after_latest: int | None  # None: the odd date below
    odd_date: date


@dataclass(frozen=True)
class MarketingFolder:
    files: dict[str, Generated]
    missing: str | None  # a table whose CSV file is left out


@st.composite
def marketing_folders(draw: st.DrawFn) -> MarketingFolder:
    """The three CSV files, with readable headers, but for at most one file that may be
    anything; or a folder missing one of them."""
    files = {name: draw(csv_files(name, refusable=False)) for name in MARKETING_TABLES}
    any_file = draw(st.sampled_from([None, None, *MARKETING_TABLES]))
    if any_file is not None:
        files[any_file] = draw(csv_files(any_file))
    missing = draw(st.sampled_from([None] * 8 + list(MARKETING_TABLES)))
    return MarketingFolder(files, missing)


@dataclass(frozen=True)
class MarketingFile:
    kind: str  # random bytes, a damaged SQLite file, or a SQLite file without the tables
    data: bytes


@dataclass(frozen=True)
class Batch:
    """One file of every kind, landed in order."""

    files: tuple[Generated, ...]
    extract: StoreExtract
    folder: MarketingFolder
    marketing_file: MarketingFile


def csv_source(source: str) -> st.SearchStrategy[Generated]:
    """Mostly files with a header the loader accepts, so that rows reach the marts."""
    readable = csv_files(source, refusable=False)
    return st.one_of(readable, readable, csv_files(source))


def batches() -> st.SearchStrategy[Batch]:
    plain_csv = ("store_sales", "crm_customers", "crm_interactions", "crm_products", *APP_SOURCES)
    plain_csv += ("app_contacts",)
    files = st.tuples(
        web_json_lines(),
        web_json_arrays(),
        *(csv_source(source) for source in plain_csv),
        *(app_json_lines(source) for source in APP_SOURCES),
    )
    extract = st.builds(
        StoreExtract,
        csv_source("store_customers"),
        st.one_of(st.integers(1, 400), st.integers(1, 400), st.integers(-400, 0), st.none()),
        st.sampled_from([date(1, 1, 1), date(1970, 1, 1), date(2038, 1, 19), date(9999, 12, 31)]),
    )
    folder = marketing_folders()
    marketing_file = st.builds(
        MarketingFile,
        st.sampled_from(["random", "damaged_sqlite", "sqlite_without_tables"]),
        st.binary(max_size=300),
    )
    return st.builds(Batch, files, extract, folder, marketing_file)


# ---- landing and checking ---------------------------------------------------------


@dataclass
class Ledger:
    """What the test has landed: (table, sha256) -> (load_id, rows)."""

    folder: Path
    landed: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    latest_extract: date | None = None  # of the extracts that landed rows
    created: int = 0
    duckdb_cr_bug: list[Path] = field(default_factory=list)  # see KNOWN_DUCKDB_CR_BUG

    def new_folder(self, name: str = "") -> Path:
        self.created += 1
        folder = self.folder / f"{self.created:04d}{name}"
        folder.mkdir(parents=True)
        return folder

    def write(self, file: Generated) -> Path:
        path = self.new_folder() / file.name
        path.write_bytes(file.data)
        return path

    def rows(self, table: str) -> int:
        return sum(rows for (t, _), (_, rows) in self.landed.items() if t == table)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def counts(warehouse: Warehouse) -> tuple[int, ...]:
    """Rows of raw.loads and of every raw table."""
    tables = ["loads", *sorted(RAW_TABLES)]
    sql = "select " + ", ".join(f"(select count(*) from raw.{t})" for t in tables)
    return tuple(warehouse.query(sql)[1][0])


def describe(text: str) -> str:
    return repr(text) if len(text) <= 120 else f"{text[:60]!r}...{text[-40:]!r} ({len(text)} chars)"


def check_landed(
    warehouse: Warehouse,
    table: str,
    path: Path,
    file: Generated,
    expect: Expected,
    extract_date: date | None = None,
) -> str:
    """The load of `path` is in raw.loads and raw.<table> holds exactly its records.
    Returns its load_id."""
    digest = sha256(file.data)
    _, logged = warehouse.query(
        "select load_id, file_name, file_bytes, rows_landed, rows_unparseable "
        "from raw.loads where source_table = ? and file_sha256 = ?",
        (table, digest),
    )
    assert len(logged) == 1, f"{path}: {len(logged)} lines in raw.loads"
    load_id, file_name, size, rows_landed, rows_unparseable = logged[0]
    assert (file_name, size) == (str(path), len(file.data))
    columns = RAW_TABLES[table].field_columns
    _, rows = warehouse.query(
        f"select file_position, raw_text, parse_error, file_name"
        f"{''.join(', ' + c for c in columns)}"
        f"{', extract_date' if extract_date else ''} "
        f"from raw.{table} where load_id = ? order by file_position",
        (load_id,),
    )
    got = [(row[0], row[1]) for row in rows]
    if got != list(expect.records):
        for index, (have, want) in enumerate(zip(got, expect.records, strict=False)):
            assert have[0] == want[0], f"{path}: record {index + 1} at {have[0]}, not {want[0]}"
            assert have[1] == want[1], (
                f"{path}, position {have[0]}: stored {describe(have[1])}, "
                f"the file has {describe(want[1])}"
            )
        raise AssertionError(f"{path}: {len(got)} rows landed, the file has {len(expect.records)}")
    assert rows_landed == len(rows)
    assert rows_unparseable == sum(row[2] is not None for row in rows)
    assert {row[3] for row in rows} <= {str(path)}
    if extract_date is not None:
        assert {row[-1] for row in rows} <= {extract_date}
    by_position = {row[0]: row for row in rows}
    for position, cells in file.fields.items():
        row = by_position[position]
        assert row[2] is None, f"{path}, line {position}: a clean line is unparseable: {row[2]}"
        # (the header's fields; the app sources' event_id, a key these files never have,
        # comes after them: python_tests/test_intake.py checks it)
        assert tuple(row[4 : 4 + len(cells)]) == cells, f"{path}, line {position}: fields"
    return load_id


KNOWN_DUCKDB_CR_BUG = (
    "Regression of a fixed bug: on DuckDB a file whose first record holds a "
    "carriage return (a bare CR inside a line, a CRLF inside a JSON array element, a "
    "UTF-16 file with CRLF line ends) fails to load with DuckDB's 'CSV Error on Line: 1': "
    "DuckDBWarehouse.copy_csv lets read_csv auto-detect the line end from the first row of "
    "the runner's temporary CSV, and a CR inside that quoted row makes it pick CR (the "
    "fix passes new_line = '\\n' to read_csv there). Files hit: {files}"
)


def is_known_duckdb_cr_bug(warehouse: Warehouse, exc: Exception, file: Generated) -> bool:
    """The DuckDB newline detection bug (KNOWN_DUCKDB_CR_BUG), and nothing else."""
    records = expected(file).records
    return (
        warehouse.kind == "duckdb"
        and type(exc).__name__ == "InvalidInputException"
        and "CSV Error on Line: 1" in str(exc)
        and bool(records)
        and "\r" in records[0][1]
    )


def land(
    warehouse: Warehouse,
    ledger: Ledger,
    table: str,
    path: Path,
    file: Generated,
    load: Callable[[], LoadResult],
    refused: bool,
    extract_date: date | None = None,
) -> LoadResult | None:
    """Load a file twice, checking that the first load lands it whole (or skips it as
    already landed, or refuses it with a RunnerError, as predicted) and the second adds
    nothing. Any other exception propagates and fails the test."""
    known = ledger.landed.get((table, sha256(file.data)))
    before = counts(warehouse)
    try:
        result = load()
    except RunnerError as exc:
        assert known is None, f"{path}: landed before, now refused: {exc.message}"
        assert refused, f"{path}: refused, yet it should load: {exc.message}"
        assert counts(warehouse) == before, f"{path}: refused, yet something was written"
        return None
    except Exception as exc:
        if known is not None or refused or not is_known_duckdb_cr_bug(warehouse, exc, file):
            raise
        ledger.duckdb_cr_bug.append(path)
        assert counts(warehouse) == before, f"{path}: failed, yet something was written"
        return None
    assert known is not None or not refused, f"{path}: loaded, yet it should be refused"
    if known is not None:
        assert result.skipped and result.load_id == known[0]
        assert counts(warehouse) == before
    else:
        assert not result.skipped
        load_id = check_landed(warehouse, table, path, file, expected(file), extract_date)
        assert result.load_id == load_id
        ledger.landed[(table, sha256(file.data))] = (load_id, result.rows_landed)
    after = counts(warehouse)
    again = load()
    assert again.skipped and again.load_id == result.load_id, f"{path}: loaded twice"
    assert counts(warehouse) == after, f"{path}: the second load added rows"
    return result


def land_batch(warehouse: Warehouse, ledger: Ledger, batch: Batch) -> None:
    for file in batch.files:
        path = ledger.write(file)
        land(
            warehouse,
            ledger,
            file.source,
            path,
            file,
            lambda path=path, source=file.source: load_file(warehouse, source, path),
            refused=expected(file).refused,
        )
    land_extract(warehouse, ledger, batch.extract)
    land_marketing_folder(warehouse, ledger, batch.folder)
    land_marketing_file(warehouse, ledger, batch.marketing_file)


def land_extract(warehouse: Warehouse, ledger: Ledger, extract: StoreExtract) -> None:
    """A store customer extract with its date: refused when dated on or before the
    latest extract landed (unless it is that same file again)."""
    latest = ledger.latest_extract
    extract_date = extract.odd_date
    if extract.days_after_latest is not None:
        base = latest or date(2017, 1, 1)
        try:
            extract_date = base + timedelta(days=extract.days_after_latest)
        except OverflowError:
            extract_date = date.max
    path = ledger.write(extract.file)
    out_of_order = latest is not None and extract_date <= latest
    result = land(
        warehouse,
        ledger,
        "store_customers",
        path,
        extract.file,
        lambda: load_store_customers(warehouse, path, extract_date),
        refused=out_of_order or expected(extract.file).refused,
        extract_date=extract_date,
    )
    if result is not None and not result.skipped and result.rows_landed:
        ledger.latest_extract = extract_date


def land_marketing_folder(warehouse: Warehouse, ledger: Ledger, folder: MarketingFolder) -> None:
    """The marketing folder lands table by table: each file before the first refused
    one lands (or is skipped as landed before), then the refusal is a RunnerError. A
    folder missing a file is refused before anything lands."""
    path = ledger.new_folder(" marketing '; drop table raw.loads; --")
    for name, file in folder.files.items():
        if name != folder.missing:
            (path / f"{name}.csv").write_bytes(file.data)
    before = counts(warehouse)
    outcome: list[LoadResult] | Exception
    try:
        outcome = load_marketing(warehouse, path)
    except Exception as exc:  # checked below: a RunnerError, or the known DuckDB bug
        outcome = exc
    if folder.missing is not None:
        assert isinstance(outcome, RunnerError) and "missing" in outcome.message
        assert counts(warehouse) == before
        return
    stopped = False
    for name in MARKETING_TABLES:  # the order load_marketing lands them in
        file = folder.files[name]
        csv_path = path / f"{name}.csv"
        known = ledger.landed.get((name, sha256(file.data)))
        crashed = isinstance(outcome, Exception) and not isinstance(outcome, RunnerError)
        if crashed and known is None and is_known_duckdb_cr_bug(warehouse, outcome, file):
            ledger.duckdb_cr_bug.append(csv_path)
            stopped = True
            break
        if known is None and expected(file).refused:
            assert isinstance(outcome, RunnerError), f"{csv_path}: should be refused"
            assert str(csv_path) in outcome.message, f"{csv_path}: refused {outcome.message}"
            stopped = True
            break
        if known is None:
            load_id = check_landed(warehouse, name, csv_path, file, expected(file))
            _, [(rows,)] = warehouse.query(
                f"select count(*) from raw.{name} where load_id = ?", (load_id,)
            )
            ledger.landed[(name, sha256(file.data))] = (load_id, rows)
    if not stopped and isinstance(outcome, Exception):
        raise outcome
    after = counts(warehouse)
    try:
        again = load_marketing(warehouse, path)
    except Exception:
        if not stopped:
            raise
    else:
        assert not stopped and all(result.skipped for result in again)
    assert counts(warehouse) == after, f"{path}: the second load added rows"


def land_marketing_file(warehouse: Warehouse, ledger: Ledger, bad: MarketingFile) -> None:
    """A file that is not a marketing export: refused with a RunnerError."""
    path = ledger.new_folder() / "marketing.sqlite"
    if bad.kind == "sqlite_without_tables":
        con = sqlite3.connect(path)
        con.execute("create table other (x)")
        con.commit()
        con.close()
    else:
        prefix = SQLITE_MAGIC if bad.kind == "damaged_sqlite" else b""
        path.write_bytes(prefix + bad.data)
    before = counts(warehouse)
    with pytest.raises(RunnerError):
        load_marketing(warehouse, path)
    assert counts(warehouse) == before


def check_raw_intact(warehouse: Warehouse, ledger: Ledger) -> None:
    """raw.loads holds exactly the loads made, and every raw table exactly their rows."""
    _, loads = warehouse.query(
        "select source_table, file_sha256, load_id, rows_landed from raw.loads"
    )
    assert sorted(loads) == sorted((t, s, i, r) for (t, s), (i, r) in ledger.landed.items())
    for table in RAW_TABLES:
        _, per_load = warehouse.query(f"select load_id, count(*) from raw.{table} group by load_id")
        landed = {i: r for (t, _), (i, r) in ledger.landed.items() if t == table and r}
        assert dict(per_load) == landed, f"raw.{table} does not hold exactly its loads"


def failed_dbt_nodes(settings: Settings) -> list[str]:
    """The nodes the last dbt invocation failed or errored on, from its run_results.json."""
    target = Path(os.environ.get("DBT_TARGET_PATH", settings.project_dir / "target"))
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    return [
        f"{result['unique_id']}: {result['status']}: {(result.get('message') or '')[:300]}"
        for result in results
        if result["status"] in ("fail", "error", "runtime error")
    ]


def test_bad_input_lands_whole_or_is_refused_and_the_build_holds(
    settings: Settings, tmp_path: Path
):
    ledger = Ledger(tmp_path / "files")
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()

        @hypothesis.settings(max_examples=BATCHES_PER_TARGET, **REPRODUCIBLE)
        @given(batch=batches())
        def land_every_kind(batch: Batch) -> None:
            land_batch(warehouse, ledger, batch)

        land_every_kind()
        check_raw_intact(warehouse, ledger)
        _, [(injected,)] = warehouse.query(
            "select count(*) from raw.web_events where raw_text like '%drop table%'"
        )
    assert injected > 0, "no injection attempt was landed: the generator lost them"

    built = run_dbt(settings, ["build"])
    assert built, "dbt build failed on the landed files:\n" + "\n".join(failed_dbt_nodes(settings))

    valid_rows = quarantined_rows = 0
    with connect(settings) as warehouse:
        check_raw_intact(warehouse, ledger)
        for table, model in STAGING.items():
            _, [(raw, valid, quarantined)] = warehouse.query(
                f"select (select count(*) from raw.{table}), "
                f"(select count(*) from staging.stg_{model}), "
                f"(select count(*) from staging.stg_{model}_quarantine)"
            )
            assert raw == valid + quarantined == ledger.rows(table), (
                f"raw.{table}: {raw} rows, {valid} valid + {quarantined} quarantined, "
                f"{ledger.rows(table)} landed"
            )
            valid_rows += valid
            quarantined_rows += quarantined
    assert valid_rows > 0 and quarantined_rows > 0, "the files reached no mart, or hid no fault"
    if ledger.duckdb_cr_bug:
        pytest.fail(KNOWN_DUCKDB_CR_BUG.format(files=len(ledger.duckdb_cr_bug)))


# ---- the readers alone: many more files, no warehouse ------------------------------


@st.composite
def random_files(draw: st.DrawFn) -> bytes:
    """Random bytes, or a first line (a header, a bracket, a brace) then random lines."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    headers = [*HEADERS.values(), *ALIASES.values()]
    first = st.sampled_from([b"", UTF8_BOM, b"[", b" [", b"{", b"\xff\xfe"])
    first |= st.sampled_from(headers).map(lambda header: ",".join(header).encode())
    lines = draw(st.lists(st.binary(max_size=60), max_size=8))
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    return newline.join([draw(first), *lines])


DEEP_ARRAY = b"[" * 5000 + b"]" * 5000  # nested deeper than Python's recursion limit


@hypothesis.settings(max_examples=400, **REPRODUCIBLE)
@given(table=st.sampled_from(sorted(RAW_TABLES)), data=random_files())
@hypothesis.example(table="web_events", data=b"[" + DEEP_ARRAY + b", {}]")
@hypothesis.example(table="web_events", data=DEEP_ARRAY + b"\n{}\n")
@hypothesis.example(table="store_sales", data=b"x" * 200_000 + b"\n1,2,3,4,5\n")
@hypothesis.example(table="crm_products", data=b"date,prod\ruct\n01-2019,Sand\n")
@hypothesis.example(table="app_sessions", data=b'"customer_id,session_started_at\n1,2\n')
def test_every_reader_keeps_every_line_of_random_bytes(tmp_path: Path, table: str, data: bytes):
    """Each loader's check and reader refuse a file only with a RunnerError: a CSV file
    without its header, an empty file, a web events file that does not start with a
    brace or a bracket, a JSON file with no valid JSON object. Otherwise the reader
    returns exactly the file's non-blank lines (after the header, for CSV), numbered and
    with their text, or a JSON array's elements numbered 1, 2, 3... Records without a
    parse error are valid JSON, or CSV of the right width."""
    path = tmp_path / "random"
    path.write_bytes(data)
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    json_array = table == "web_events" and body.lstrip().startswith(b"[")
    json_lines = not json_array and (
        table in ("web_events", *APP_SOURCES) and body.lstrip().startswith(b"{")
    )
    try:
        check_file_kind(path, table)
        records = list(RAW_TABLES[table].read(path))
    except RunnerError:
        if json_array or json_lines:
            texts = [record.text.encode("utf-8") for record in RAW_TABLES[table].read(path)]
            assert texts and not any(map(is_json_object, texts)), f"{table}: a JSON file refused"
        return
    assert body.strip(), f"{table}: an empty file landed"
    if table == "web_events":
        assert json_array or json_lines, "a file that is no JSON landed as web events"
    if json_lines or (json_array and records):
        texts = [record.text.encode("utf-8") for record in records]
        assert any(map(is_json_object, texts)), f"{table}: a JSON file without objects landed"
    got = [(record.position, record.text) for record in records]
    if json_array:
        assert [position for position, _ in got] == list(range(1, len(got) + 1))
    elif json_lines:
        assert got == non_blank_lines(body)
    else:
        assert got == non_blank_lines(body)[1:]
    width = len(RAW_TABLES[table].field_columns)
    for record in records:
        if record.parse_error is not None:
            continue
        if json_array or json_lines:
            assert json_error(record.text.encode("utf-8")) is None, record
        if width:
            assert record.fields is not None and len(record.fields) == width, record


def test_a_first_record_with_a_carriage_return_lands(settings: Settings, tmp_path: Path):
    """A Windows-formatted JSON array (CRLF inside its first element) and a CSV file whose
    first row holds a bare CR land whole. On DuckDB this is the known bug
    KNOWN_DUCKDB_CR_BUG, a regression test: it must land."""
    elements = ('{"type": "SITE_VISIT",\r\n  "key": "p1"}', '{"b": 2}')
    array = ("[" + ",\r\n ".join(elements) + "]\r\n").encode()
    csv_data = b"date,product\r\n01-2019,Sand\rstorm\r\n02-2019,Orange\r\n"
    files = [
        Generated("web_events", "windows.json", array, array_records=tuple(enumerate(elements, 1))),
        Generated("crm_products", "bare_cr.csv", csv_data),
    ]
    with connect(settings) as warehouse:
        for file in files:
            path = tmp_path / file.name
            path.write_bytes(file.data)
            try:
                load_file(warehouse, file.source, path)
            except Exception as exc:
                if not is_known_duckdb_cr_bug(warehouse, exc, file):
                    raise
                pytest.fail(KNOWN_DUCKDB_CR_BUG.format(files=file.name))
            check_landed(warehouse, file.source, path, file, expected(file))
