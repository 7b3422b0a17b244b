"""Tests for devtools.generate: determinism, the file contracts, realism and the deliberate noise.

``classify`` (python_tests.reference) re-implements the staging validation rules of web events
independently of the generator, and ``classify_sale`` / ``classify_extract_row`` below do the
same for the store files, so every generated line is checked against the contract, not against
the generator. The CRM, app and marketing files get the same treatment (``classify_interaction``,
``classify_session``, ``classify_purchase``, ``classify_session_source``, ``classify_conversion``
and ``journeys``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner

from devtools import generate as gen
from python_tests.reference import classify, parse_time
from runner.cli import cli

VALID_AMOUNT = re.compile(r"^\d+\.\d{2} USD$")
START = datetime(2017, 1, 1)  # naive UTC, as parse_time returns
END = START + timedelta(days=120)


def web_file(files: list[gen.GeneratedFile]) -> gen.GeneratedFile:
    [web] = [written for written in files if written.source == "web-events"]
    return web


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert b"\r" not in data
    return data.decode("utf-8").split("\n")[:-1]


def valid_events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if classify(line) is None]


def contents(path: Path) -> bytes | dict[str, bytes]:
    """A generated file's bytes; for a generated folder (marketing), each file's bytes."""
    if path.is_dir():
        return {child.name: child.read_bytes() for child in sorted(path.iterdir())}
    return path.read_bytes()


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> list[gen.GeneratedFile]:
    return gen.generate(tmp_path_factory.mktemp("small"), customers=20, seed=7)


@pytest.fixture(scope="module")
def small_run(small_files) -> tuple[gen.GeneratedFile, list[str]]:
    generated = web_file(small_files)
    return generated, read_lines(generated.path)


@pytest.fixture(scope="module")
def medium_files(tmp_path_factory: pytest.TempPathFactory) -> list[gen.GeneratedFile]:
    return gen.generate(tmp_path_factory.mktemp("medium"), customers=400, seed=11)


@pytest.fixture(scope="module")
def medium_run(medium_files) -> list[str]:
    return read_lines(web_file(medium_files).path)


TINY_SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[gen.GeneratedFile]]:
    """customers=20 for each of TINY_SEEDS: every kind of dirt must show even this small."""
    return {
        seed: gen.generate(tmp_path_factory.mktemp(f"tiny{seed}"), customers=20, seed=seed)
        for seed in TINY_SEEDS
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = gen.generate(tmp_path / "a", customers=50, seed=3)
    second = gen.generate(tmp_path / "b", customers=50, seed=3)
    assert {f.source for f in first} == {
        "web-events",
        "store-customers",
        "store-sales",
        "crm-customers",
        "crm-interactions",
        "crm-products",
        "app-sessions",
        "app-purchases",
        "app-contacts",
        "marketing",
    }
    assert [(f.source, f.rows) for f in first] == [(f.source, f.rows) for f in second]
    for one, other in zip(first, second, strict=True):
        assert contents(one.path) == contents(other.path), one.path.name


def test_same_seed_gives_identical_bytes_in_another_process(tmp_path: Path) -> None:
    """Nothing depends on per-process state such as string hashing (PYTHONHASHSEED)."""
    here = gen.generate(tmp_path / "here", customers=20, seed=3)
    code = "import sys; from pathlib import Path; from devtools.generate import generate; "
    code += "generate(Path(sys.argv[1]), customers=20, seed=3)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    project = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", code, str(tmp_path / "there")]
    subprocess.run(command, check=True, env=env, cwd=project)
    for written in here:
        assert contents(written.path) == contents(tmp_path / "there" / written.path.name)


def test_different_seed_gives_different_output(tmp_path: Path) -> None:
    first = gen.generate(tmp_path / "a", customers=50, seed=3)
    second = gen.generate(tmp_path / "b", customers=50, seed=4)
    assert [f.path.name for f in first] == [f.path.name for f in second]
    for one, other in zip(first, second, strict=True):
        if one.path.is_dir():
            for name, data in contents(one.path).items():
                assert data != (other.path / name).read_bytes(), name
        else:
            assert one.path.read_bytes() != other.path.read_bytes(), one.path.name


def test_returned_file_matches_what_was_written(small_run, tmp_path: Path) -> None:
    generated, lines = small_run
    assert generated.source == "web-events"
    assert generated.path.name == "web_events.jsonl"
    assert generated.rows == len(lines)
    assert gen.generate(tmp_path / "new" / "dir", customers=0, seed=1)[0].rows == len(gen.BAD_KINDS)


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        gen.generate(tmp_path, customers=-1, seed=1)
    with pytest.raises(ValueError):
        gen.generate(tmp_path, customers=1, seed=1, days=0)


def test_every_line_is_valid_or_a_deliberate_bad_record(medium_run) -> None:
    reasons = Counter(classify(line) for line in medium_run)
    assert set(reasons) - {None} <= set(gen.BAD_KINDS)
    bad_share = (len(medium_run) - reasons[None]) / len(medium_run)
    assert 0.01 < bad_share < 0.04


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_bad_kind_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    reasons = {classify(line) for line in read_lines(web_file(tiny_runs[seed]).path)}
    assert reasons == {None, *gen.BAD_KINDS}


def test_valid_events_carry_their_fields(medium_run) -> None:
    for event in valid_events(medium_run):
        kind = event["type"]
        if kind == "CUSTOMER":
            assert event["last_name"] and event["adr_city"] and len(event["adr_state"]) == 2
        elif kind == "SITE_VISIT":
            assert all(isinstance(tag, dict) and len(tag) == 1 for tag in event["tags"])
        elif kind == "IMAGE":
            assert event["camera_make"] and event["camera_model"]
        assert START <= parse_time(event["event_time"]) < END


def test_customer_ids_are_integer_like(medium_run) -> None:
    ids = [
        event["key"] if event["type"] == "CUSTOMER" else event["customer_id"]
        for event in valid_events(medium_run)
    ]
    assert all(re.fullmatch(r"[1-9]\d*", customer_id) for customer_id in ids)
    customer_keys = {e["key"] for e in valid_events(medium_run) if e["type"] == "CUSTOMER"}
    assert customer_keys == {str(10001 + i) for i in range(400)}


def test_keys_are_unique_and_updates_refer_to_known_entities(medium_run) -> None:
    events = valid_events(list(dict.fromkeys(medium_run)))  # duplicates removed
    created = Counter((e["type"], e["key"]) for e in events if e["verb"] != "UPDATE")
    assert max(created.values()) == 1
    updates = [(e["type"], e["key"]) for e in events if e["verb"] == "UPDATE"]
    assert {kind for kind, _ in updates} == {"CUSTOMER", "ORDER"}
    assert all(update in created for update in updates)


def test_stream_has_duplicates_and_out_of_order_times(medium_run) -> None:
    # Bad records such as "[1,2]" may repeat by chance; valid events repeat only as duplicates.
    counts = Counter(line for line in medium_run if classify(line) is None)
    repeated = [line for line, n in counts.items() if n > 1]
    assert 0.003 < len(repeated) / len(medium_run) < 0.03
    times = [parse_time(event["event_time"]) for event in valid_events(medium_run)]
    assert any(later < earlier for earlier, later in itertools.pairwise(times))


def test_some_valid_times_carry_an_explicit_offset(medium_run) -> None:
    offsets = [e["event_time"] for e in valid_events(medium_run) if e["event_time"][-1] != "Z"]
    assert offsets
    assert all(re.search(r"[+-]\d{2}:\d{2}$", text) for text in offsets)


def test_valid_order_amounts_are_usd_with_cents(medium_run) -> None:
    orders = [e for e in valid_events(medium_run) if e["type"] == "ORDER"]
    assert {e["verb"] for e in orders} == {"NEW", "UPDATE"}
    assert all(VALID_AMOUNT.match(e["total_amount"]) for e in orders)
    median = statistics.median(float(e["total_amount"].split()[0]) for e in orders)
    assert 25 < median < 65


def test_arrival_buffer_is_bounded() -> None:
    """The shuffle never reads more than ``buffer_size`` lines ahead of what it wrote."""
    pulled = 0

    def records() -> Iterator[tuple[str, bool]]:
        nonlocal pulled
        for number in itertools.count():
            pulled += 1
            yield str(number), True

    lines = gen.arrival_order(random.Random(1), records(), buffer_size=50)
    for written in range(1, 1001):
        next(lines)
        assert pulled <= written + 50


def test_customers_are_generated_lazily() -> None:
    """Writing the first lines of a huge run only generates the first few customers."""
    rng = random.Random(1)
    customers = gen.iter_customers(rng, 10**9, START, END)
    pulled = 0

    def counted() -> Iterator[gen.Customer]:
        nonlocal pulled
        for customer in customers:
            pulled += 1
            assert pulled <= 1000 + gen.BUFFER_SIZE, "customers are being materialised"
            yield customer

    lines = gen.web_event_lines(rng, counted(), START, END)
    assert len(list(itertools.islice(lines, 1000))) == 1000


def test_custom_window_is_respected(tmp_path: Path) -> None:
    files = gen.generate(tmp_path, customers=30, seed=5, start_date=date(2020, 6, 1), days=7)
    start = datetime(2020, 6, 1)
    times = [parse_time(e["event_time"]) for e in valid_events(read_lines(web_file(files).path))]
    assert min(times) >= start
    assert max(times) < start + timedelta(days=7)
    store = read_store(files)
    assert [extract.day for extract in store.extracts] == [
        date(2020, 6, 2),
        date(2020, 6, 4),
        date(2020, 6, 6),
    ]
    sale_times = [sale.when for sale in store.valid_sales]
    assert min(sale_times) >= start
    assert max(sale_times) < start + timedelta(days=7)


# The SHA-256 of web_events.jsonl for --customers 200 --seed 42 before the store files existed:
# generating the store files must never change a web file. The web keys of that file were their
# labels (``p-10001-0042``); they are hashed to 12 hex digits since, nothing else changed: the
# pins hold for the files generated with the labels as keys (``pinned_files``).
WEB_SAMPLE_SHA256 = "e86f78eda088a6de5594ed886d6ba42f18a8a774cf7ac41fed5de777be7e7979"


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[gen.GeneratedFile]:
    """What `runner generate --customers 200 --seed 42` writes (data/sample)."""
    return gen.generate(tmp_path_factory.mktemp("sample"), customers=200, seed=42)


@pytest.fixture(scope="module")
def pinned_files(tmp_path_factory: pytest.TempPathFactory) -> list[gen.GeneratedFile]:
    """The sample generated with the web keys' labels as keys, as the pinned hashes were."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gen, "_key", gen._key_label)
        return gen.generate(tmp_path_factory.mktemp("pinned"), customers=200, seed=42)


def test_store_files_leave_the_web_file_unchanged(pinned_files) -> None:
    written = web_file(pinned_files)
    assert hashlib.sha256(written.path.read_bytes()).hexdigest() == WEB_SAMPLE_SHA256


def test_web_keys_are_12_hex_digits_of_their_labels(sample_files, pinned_files) -> None:
    """The web stream is the pinned one with each key replaced by 12 hex digits of it."""
    lines = read_lines(web_file(sample_files).path)
    pinned = read_lines(web_file(pinned_files).path)
    assert len(lines) == len(pinned)
    for line, old in zip(lines, pinned, strict=True):
        if line == old:  # no key, or no object
            continue
        if classify(old) == "invalid_json":  # a prefix of an event, of the same length
            assert classify(line) == "invalid_json" and len(line) == len(old)
            continue
        event, old_event = json.loads(line), json.loads(old)
        if isinstance(old_event, list):  # not_an_object: an event in a list
            [event], [old_event] = event, old_event
        label = old_event["key"]
        if label.endswith("-x"):  # the key of a bad record: a valid event's key, marked
            key, label = event["key"].removesuffix("-x"), label.removesuffix("-x")
        else:
            key = event["key"]
        if old_event["type"] == "CUSTOMER" and old_event.get("verb") in ("NEW", "UPDATE"):
            assert key == label  # a customer's key is their id
        else:
            assert key == hashlib.sha256(label.encode()).hexdigest()[:12], label
            assert re.fullmatch(r"[0-9a-f]{12}", key)
        assert {**event, "key": old_event["key"]} == old_event


def test_bundled_sample_is_what_the_generator_makes(sample_files) -> None:
    """data/sample is documented as `runner generate --customers 200 --seed 42`: every file
    the generator makes is bundled, byte for byte (the manifest and the customers file for
    --append too), and nothing else is (a folder holds exactly the generated files). A SQLite
    database records the version of the SQLite library that wrote it in its header, so a
    database written by another version must hold the same schema and the same typed rows in
    the same order; by the same version, the same bytes."""
    bundled = Path(__file__).resolve().parents[1] / "data" / "sample"
    written = [f.path for f in sample_files]
    folder = written[0].parent
    written += [folder / gen.MANIFEST_FILE, folder / gen.read_manifest(folder).customers_file]
    assert sorted(p.name for p in bundled.iterdir()) == sorted(path.name for path in written)
    for path in written:
        copy = bundled / path.name
        if path.suffix == ".sqlite" and sqlite_writer_version(copy) != sqlite_version():
            assert sqlite_dump(path) == sqlite_dump(copy)
        else:
            assert contents(path) == contents(copy), path.name


def sqlite_version() -> int:
    """SQLITE_VERSION_NUMBER of the library Python uses: 3040001 for 3.40.1."""
    major, minor, patch = sqlite3.sqlite_version_info
    return major * 1_000_000 + minor * 1000 + patch


def sqlite_writer_version(path: Path) -> int:
    """The SQLITE_VERSION_NUMBER of the library that last wrote a database (header, byte 96)."""
    return int.from_bytes(path.read_bytes()[96:100], "big")


def sqlite_dump(path: Path) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    """A database's schema and, per table, its rows in rowid order with each value's type."""
    with sqlite_reader(path) as connection:
        schema = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
        tables = {}
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({name})")]
            typed = ", ".join(f"{column}, typeof({column})" for column in columns)
            query = f"SELECT {typed} FROM {name} ORDER BY rowid"
            tables[name] = connection.execute(query).fetchall()
    return schema, tables


@contextlib.contextmanager
def sqlite_reader(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a database file (never modifies it)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        yield connection
    finally:
        connection.close()


# --- Store files: an independent reading of their CSV contract ---------------------------------

CUSTOMERS_HEADER = "ID,Name,City"
SALES_HEADER = "CustomerID,Product,SalesAmount,ShopId,TransactionDate"
SALES_REASONS = {
    "missing_customer_id",
    "unparseable_customer_id",
    "missing_amount",
    "unparseable_amount",
    "missing_transaction_date",
    "unparseable_transaction_date",
}
WHOLE_NUMBER = re.compile(r"^[0-9]{1,18}$")
DECIMAL = re.compile(r"^-?[0-9]{1,13}(\.[0-9]{1,2})?$")
SALE_TIME_FORMATS = {  # name: (shape, strptime format)
    "date": (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
    "date_time": (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S"),
    "iso_utc": (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"), "%Y-%m-%dT%H:%M:%SZ"),
}
STORE_ONLY_IDS = range(90001, 95001)
LATE_FIRST_ID = 95001


def csv_fields(line: str) -> list[str]:
    """The fields of one CSV line, spaces kept; strict, so a malformed line raises."""
    return next(csv.reader([line], strict=True))


def sale_time_format(text: str) -> str | None:
    """Which of the accepted TransactionDate shapes ``text`` has, if any."""
    return next((name for name, (shape, _) in SALE_TIME_FORMATS.items() if shape.match(text)), None)


def parse_sale_time(text: str) -> datetime | None:
    """A TransactionDate (already trimmed) as a naive datetime; None when it is not one."""
    name = sale_time_format(text)
    if name is None:
        return None
    try:
        return datetime.strptime(text, SALE_TIME_FORMATS[name][1])
    except ValueError:  # the right shape, but not a calendar date or time
        return None


def classify_sale(fields: list[str]) -> str | None:
    """Why staging must quarantine a store sales row (None: it is valid)."""
    assert len(fields) == 5, fields
    customer_id, _product, amount, _shop, when = (field.strip() for field in fields)
    if not customer_id:
        return "missing_customer_id"
    if not WHOLE_NUMBER.match(customer_id):
        return "unparseable_customer_id"
    if not amount:
        return "missing_amount"
    if not DECIMAL.match(amount):
        return "unparseable_amount"
    if not when:
        return "missing_transaction_date"
    if parse_sale_time(when) is None:
        return "unparseable_transaction_date"
    return None


def classify_extract_row(fields: list[str]) -> str | None:
    """Why staging must quarantine a store customer extract row (None: it is valid)."""
    assert len(fields) == 3, fields
    customer_id = fields[0].strip()
    if not customer_id:
        return "missing_id"
    if not WHOLE_NUMBER.match(customer_id):
        return "unparseable_id"
    return None


@dataclasses.dataclass(frozen=True)
class CsvFile:
    """A store CSV file as written: line ending, header, data lines, empty lines at the end."""

    newline: str
    header: str
    lines: list[str]
    trailing_blank_lines: int


def read_csv_file(path: Path) -> CsvFile:
    data = path.read_bytes()
    newline = "\r\n" if data.split(b"\n", 1)[0].endswith(b"\r") else "\n"
    if newline == "\r\n":
        assert data.count(b"\n") == data.count(b"\r\n"), "mixed line endings"
    else:
        assert b"\r" not in data
    text = data.decode("utf-8")
    assert text.endswith(newline)
    header, *lines = text[: -len(newline)].split(newline)
    trailing = 0
    while lines and lines[-1] == "":
        lines.pop()
        trailing += 1
    assert all(line.strip() for line in lines), "blank lines only at the end"
    return CsvFile(newline, header, lines, trailing)


@dataclasses.dataclass(frozen=True)
class StoreSale:
    """A valid store sales row, typed."""

    customer_id: int
    product: str
    amount_text: str
    shop: int
    when: datetime
    time_format: str
    line: str

    @property
    def amount(self) -> float:
        return float(self.amount_text)


@dataclasses.dataclass(frozen=True)
class Extract:
    day: date
    file: CsvFile
    customers: dict[int, tuple[str, str]]  # valid rows: id -> (name, city), trimmed


@dataclasses.dataclass(frozen=True)
class StoreRun:
    extracts: list[Extract]
    sales: CsvFile
    sale_reasons: Counter
    valid_sales: list[StoreSale]

    def cities(self, customer_id: int) -> list[str | None]:
        """The customer's city in each extract, None where the extract does not show them."""
        return [
            extract.customers[customer_id][1] if customer_id in extract.customers else None
            for extract in self.extracts
        ]

    @property
    def extract_ids(self) -> set[int]:
        return {cid for extract in self.extracts for cid in extract.customers}

    def first_seen(self, customer_id: int) -> date | None:
        return next((e.day for e in self.extracts if customer_id in e.customers), None)


def read_extract(written: gen.GeneratedFile) -> Extract:
    assert written.extract_date is not None
    assert written.path.name == f"store_customers_{written.extract_date:%Y-%m-%d}.csv"
    file = read_csv_file(written.path)
    customers: dict[int, tuple[str, str]] = {}
    for line in dict.fromkeys(file.lines):  # exact duplicates once
        fields = csv_fields(line)
        if classify_extract_row(fields) is None:
            customer_id = int(fields[0].strip())
            assert customer_id not in customers, f"two different rows for {customer_id}"
            customers[customer_id] = (fields[1].strip(), fields[2].strip())
    return Extract(written.extract_date, file, customers)


def read_store(files: list[gen.GeneratedFile]) -> StoreRun:
    extracts = [read_extract(f) for f in files if f.source == "store-customers"]
    [sales_file] = [f for f in files if f.source == "store-sales"]
    sales = read_csv_file(sales_file.path)
    reasons: Counter = Counter()
    valid = []
    for line in sales.lines:
        fields = csv_fields(line)
        reason = classify_sale(fields)
        reasons[reason] += 1
        if reason is None:
            customer_id, product, amount, shop, when = (field.strip() for field in fields)
            moment = parse_sale_time(when)
            assert moment is not None
            valid.append(
                StoreSale(
                    int(customer_id),
                    product,
                    amount,
                    int(shop),
                    moment,
                    sale_time_format(when),
                    line,
                )
            )
    return StoreRun(extracts, sales, reasons, valid)


@pytest.fixture(scope="module")
def medium_store(medium_files) -> StoreRun:
    return read_store(medium_files)


def moves(store: StoreRun) -> list[tuple[int, int]]:
    """(customer, i): the customer is in extracts i and i + 1, in different cities."""
    return [
        (cid, index)
        for cid in store.extract_ids
        for index, (before, after) in enumerate(itertools.pairwise(store.cities(cid)))
        if before is not None and after is not None and before != after
    ]


def move_backs(store: StoreRun) -> set[int]:
    return {
        cid
        for cid in store.extract_ids
        for a, b, c in [store.cities(cid)]
        if None not in (a, b, c) and a == c != b
    }


def presence(store: StoreRun, customer_id: int) -> str:
    """'x' per extract that shows the customer, '.' per extract that does not."""
    return "".join("." if city is None else "x" for city in store.cities(customer_id))


def test_store_files_are_described_in_order(small_files) -> None:
    assert [f.source for f in small_files] == [
        "web-events",
        "store-customers",
        "store-customers",
        "store-customers",
        "store-sales",
        *NEW_SOURCES,
        "marketing",
        "marketing",
    ]
    assert [f.path.name for f in small_files[1:]] == [
        "store_customers_2017-01-31.csv",
        "store_customers_2017-03-02.csv",
        "store_customers_2017-04-01.csv",
        "store_sales.csv",
        *NEW_FILES,
        "marketing",
        "marketing.sqlite",
    ]
    assert [f.extract_date for f in small_files] == [
        None,
        date(2017, 1, 31),
        date(2017, 3, 2),
        date(2017, 4, 1),
        *[None] * (3 + len(NEW_FILES)),
    ]
    for written in small_files[1:5]:
        assert written.rows == len(read_csv_file(written.path).lines) > 0


def test_short_windows_get_fewer_extracts(tmp_path: Path) -> None:
    for days, expected in ((1, 1), (2, 2), (3, 3)):
        files = gen.generate(tmp_path / str(days), customers=10, seed=1, days=days)
        store = read_store(files)
        assert len(store.extracts) == expected
        assert len({extract.day for extract in store.extracts}) == expected
        assert store.valid_sales


def test_store_bad_kinds_are_the_staging_reasons() -> None:
    assert set(gen.STORE_SALES_BAD_KINDS) == SALES_REASONS


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_store_headers_are_exact(tiny_runs, seed: int) -> None:
    store = read_store(tiny_runs[seed])
    assert [extract.file.header for extract in store.extracts] == [CUSTOMERS_HEADER] * 3
    assert store.sales.header == SALES_HEADER


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_extract_dirt_kind_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    files = [extract.file for extract in read_store(tiny_runs[seed]).extracts]
    lines = [line for file in files for line in file.lines]
    rows = [csv_fields(line) for line in lines]
    assert any(file.newline == "\r\n" for file in files), "CRLF"
    assert any(file.trailing_blank_lines for file in files), "empty trailing lines"
    assert any(field != field.strip() for row in rows for field in row), "surrounding spaces"
    assert any(classify_extract_row(row) == "missing_id" for row in rows), "blank ID"
    assert any(max(Counter(file.lines).values()) > 1 for file in files), "exact duplicate row"
    assert any(re.search(r'^[^,]*,"[^"]*,[^"]*",', line) for line in lines), "quoted comma"
    assert any(not row[1].isascii() for row in rows), "non-ASCII name"


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_sales_dirt_kind_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    store = read_store(tiny_runs[seed])
    assert store.sales.newline == "\r\n"
    assert store.sales.trailing_blank_lines >= 1
    assert set(store.sale_reasons) == {None, *SALES_REASONS}
    valid_lines = [sale.line for sale in store.valid_sales]
    assert any(field != field.strip() for line in valid_lines for field in csv_fields(line))
    assert any(sale.amount < 0 for sale in store.valid_sales), "refund"
    assert max(Counter(valid_lines).values()) > 1, "exact duplicate"
    assert any(sale.customer_id not in store.extract_ids for sale in store.valid_sales), "late"


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_store_situation_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    store = read_store(tiny_runs[seed])
    ids = store.extract_ids
    assert moves(store) and move_backs(store)
    patterns = {presence(store, cid) for cid in ids}
    assert "xx." in patterns, "a disappearance"
    assert patterns & {".xx", "..x"}, "a newcomer in a later extract"
    days: dict[int, set[date]] = defaultdict(set)
    for sale in store.valid_sales:
        days[sale.customer_id].add(sale.when.date())
    assert any(min(days[cid]) < store.first_seen(cid) for cid in ids & set(days))
    assert any(
        cid in days
        and min(days[cid]) < store.extracts[index].day
        and max(days[cid]) > store.extracts[index + 1].day
        for cid, index in moves(store)
    ), "a mover with sales before and after the move"


def test_store_customers_overlap_the_web_customers(medium_run, medium_store) -> None:
    web_names = {
        int(e["key"]): e["last_name"]
        for e in valid_events(medium_run)
        if e["type"] == "CUSTOMER" and e["verb"] == "NEW"
    }
    ids = medium_store.extract_ids
    shared = ids & set(web_names)
    assert 0.5 < len(shared) / len(web_names) < 0.7
    store_only = ids - shared
    assert all(cid in STORE_ONLY_IDS for cid in store_only)
    assert 0.05 < len(store_only) / len(web_names) < 0.15
    # The same person: the store's full name ends with the web's last name (before a suffix).
    for extract in medium_store.extracts:
        for cid, (name, _) in extract.customers.items():
            if cid in shared:
                assert name.split(", ")[0].endswith(" " + web_names[cid]), (cid, name)


def test_extracts_show_moves_returns_disappearances_and_newcomers(medium_store) -> None:
    ids = medium_store.extract_ids
    patterns = Counter(presence(medium_store, cid) for cid in ids)
    # A customer is in every extract from their first on, until they disappear for good.
    assert set(patterns) <= {"xxx", ".xx", "..x", "xx.", "x..", ".x."}
    assert patterns[".xx"] and patterns["..x"], "newcomers"
    gone = sum(n for pattern, n in patterns.items() if pattern.endswith("."))
    assert 0 < gone / len(ids) < 0.08
    pairs = sum(
        1
        for cid in ids
        for before, after in itertools.pairwise(medium_store.cities(cid))
        if before and after
    )
    assert 0.04 < len(moves(medium_store)) / pairs < 0.2
    assert move_backs(medium_store)
    for extract in medium_store.extracts:
        assert all(name and city for name, city in extract.customers.values())


def test_store_sales_are_valid_and_realistic(medium_store) -> None:
    sales = medium_store.valid_sales
    bad_share = 1 - len(sales) / len(medium_store.sales.lines)
    assert 0.003 < bad_share < 0.04
    assert all(re.fullmatch(r"-?\d+\.\d{2}", sale.amount_text) for sale in sales)
    assert all(1 <= sale.shop <= 12 for sale in sales)
    assert 5 <= len({sale.product for sale in sales}) <= 20
    assert all(START <= sale.when < END for sale in sales)
    assert 35 < statistics.median(sale.amount for sale in sales if sale.amount > 0) < 70
    formats = Counter(sale.time_format for sale in sales)
    assert set(formats) == set(SALE_TIME_FORMATS)
    assert min(formats.values()) / len(sales) > 0.15


def test_store_sales_have_refunds_and_duplicates(medium_store) -> None:
    sales = medium_store.valid_sales
    refunds = [sale for sale in sales if sale.amount < 0]
    assert 0.015 < len(refunds) / len(sales) < 0.05
    for refund in refunds:  # each refunds an earlier sale of the same customer and product
        assert any(
            sale.customer_id == refund.customer_id
            and sale.product == refund.product
            and sale.amount == -refund.amount
            and sale.when.date() <= refund.when.date()
            for sale in sales
        ), refund.line
    repeated = [line for line, n in Counter(sale.line for sale in sales).items() if n > 1]
    assert 0.003 < len(repeated) / len(sales) < 0.03


def test_store_sales_belong_to_store_or_late_arriving_customers(medium_store) -> None:
    ids = medium_store.extract_ids
    late = [sale for sale in medium_store.valid_sales if sale.customer_id not in ids]
    assert late
    assert all(sale.customer_id >= LATE_FIRST_ID for sale in late)
    assert 0.003 < len(late) / len(medium_store.valid_sales) < 0.03
    early = [
        sale
        for sale in medium_store.valid_sales
        if sale.customer_id in ids and sale.when.date() < medium_store.first_seen(sale.customer_id)
    ]
    assert early, "sales before the customer's first extract"


def test_store_id_ranges_stay_clear_of_the_web_ids() -> None:
    assert gen.store_id_ranges(200) == (90001, 95001)
    for customers in (0, 20, 49_000, 80_000, 10**6):
        store_only, late = gen.store_id_ranges(customers)
        assert 10_000 + customers < store_only
        assert store_only + customers // 10 + 3 <= late


def test_store_files_are_written_in_bounded_memory(tmp_path: Path) -> None:
    """Customers stream through the store one at a time; sales wait in a bounded buffer."""
    joined = datetime(2017, 1, 1, tzinfo=timezone.utc)
    customers = (gen.Customer(10001 + n, joined, "Kim", "Boston", "MA", 1.0) for n in range(10**9))
    with ExitStack() as stack:
        store = gen.StoreWriter(stack, tmp_path, 1, date(2017, 1, 1), 120, customers=10**9)
        tapped = store.tap(customers)
        for _ in range(3000):
            next(tapped)
            assert store.buffered_sales <= gen.BUFFER_SIZE
    assert len(read_csv_file(tmp_path / "store_sales.csv").lines) > 3000
    for path in tmp_path.glob("store_customers_*.csv"):
        assert read_csv_file(path).lines


# --- CRM and app files: an independent reading of their contracts ------------------------------

NEW_SOURCES = (
    "crm-customers", "crm-interactions", "crm-products", "app-sessions", "app-purchases",
    "app-contacts",
)  # fmt: skip
NEW_FILES = (
    "crm_customers.csv",
    "crm_interactions.csv",
    "crm_products.csv",
    "app_sessions.jsonl",
    "app_purchases.csv",
    "app_contacts.csv",
)
# SHA-256 of the web and store files for --customers 200 --seed 42 before the CRM and app files
# existed: adding sources must never change the files of the others.
SAMPLE_SHA256 = {
    "web_events.jsonl": "e86f78eda088a6de5594ed886d6ba42f18a8a774cf7ac41fed5de777be7e7979",
    "store_customers_2017-01-31.csv": (
        "7e55ec0e712a6f4fde67c032d2cb8c8d58298f36fed869617a4c417e96118a9f"
    ),
    "store_customers_2017-03-02.csv": (
        "b87224a77b342c91f3aa245ee2717b2b8739075cc6bb9c365623a8ebe7abc8ce"
    ),
    "store_customers_2017-04-01.csv": (
        "65f4851fbd46dc20d4adfbf042780d10b71541de95192f2629393e07389e9291"
    ),
    "store_sales.csv": "d51e6ab3a07435f5de6fb230d8fbd3ec8736f34daece1eeaa9eba71be1d7f141",
}
CRM_CUSTOMERS_HEADER = "Customer_Id,Occupation,Type"
CRM_INTERACTIONS_HEADER = "Date Start,Interaction,Customers"
CRM_PRODUCTS_HEADER = "date,product"
APP_PURCHASES_HEADER = "customer_id,purchased_at,amount"
CHANNELS = {"Email", "Call", "Bird", "Boat", "Post", "SMS", "Chat"}  # the dbt seed's channels
CRM_TYPES = {"Red", "Orange", "Blue"}
INTERACTION_REASONS = {
    "missing_date",
    "unparseable_date",
    "missing_channel",
    "missing_customer_id",
    "unparseable_customer_id",
    "unknown_customer_id",
}
SESSION_REASONS = {"invalid_json", "missing_customer_id", "unparseable_session_started_at"}
PURCHASE_REASONS = {"missing_customer_id", "unparseable_amount", "unparseable_purchased_at"}
CRM_TIME = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$")
CRM_MONTH = re.compile(r"^(\d{2})-(\d{4})$")
APP_AMOUNT = re.compile(r"^\d+\.\d{2}$")
LAST_DAY = date(2017, 4, 30)  # the last day of the default window
CRM_ONLY_IDS = range(80001, 90001)


def new_file(files: list[gen.GeneratedFile], source: str) -> gen.GeneratedFile:
    [written] = [f for f in files if f.source == source]
    return written


def web_ids(files: list[gen.GeneratedFile]) -> set[int]:
    return set(_web_ids(web_file(files).path))


@functools.lru_cache(maxsize=32)
def _web_ids(path: Path) -> frozenset[int]:
    """The web customers of a web events file (read once per file: it never changes)."""
    return frozenset(
        int(e["key"])
        for e in valid_events(read_lines(path))
        if e["type"] == "CUSTOMER" and e["verb"] == "NEW"
    )


def parse_crm_time(text: str) -> datetime | None:
    """A Date Start (DD/MM/YYYY HH:MM) as a naive datetime; None when it is not one."""
    if not CRM_TIME.match(text):
        return None
    try:
        return datetime.strptime(text, "%d/%m/%Y %H:%M")
    except ValueError:
        return None


def parse_crm_month(text: str) -> date | None:
    """A product month (MM-YYYY) as its first day; None when it is not one."""
    match = CRM_MONTH.match(text)
    if not match or not 1 <= int(match[1]) <= 12:
        return None
    return date(int(match[2]), int(match[1]), 1)


def classify_interaction(fields: list[str], crm_ids: set[int]) -> str | None:
    """Why an interaction row cannot be used as it is (None: it is valid)."""
    assert len(fields) == 3, fields
    when, channel, customer = (field.strip() for field in fields)
    if not when:
        return "missing_date"
    if not channel:
        return "missing_channel"
    if not customer:
        return "missing_customer_id"
    if channel not in CHANNELS:
        return "unknown_channel"
    if not WHOLE_NUMBER.match(customer):
        return "unparseable_customer_id"
    if parse_crm_time(when) is None:
        return "unparseable_date"
    if int(customer) not in crm_ids:
        return "unknown_customer_id"
    return None


@dataclasses.dataclass(frozen=True)
class CrmRun:
    customers: CsvFile
    crm_ids: set[int]
    occupations: Counter
    types: Counter
    interactions: CsvFile
    interaction_rows: list[list[str]]
    reasons: Counter
    valid_interactions: list[tuple[datetime, str, int]]
    products: CsvFile
    product_rows: list[list[str]]

    @property
    def topics(self) -> dict[date, str]:
        """Valid month -> product (the test fails if a valid month has two rows)."""
        topics: dict[date, str] = {}
        for month_text, product in self.product_rows:
            month = parse_crm_month(month_text.strip())
            if month is not None:
                assert month not in topics, f"two rows for {month_text}"
                topics[month] = product.strip()
        return topics


def read_crm(files: list[gen.GeneratedFile]) -> CrmRun:
    customers = read_csv_file(new_file(files, "crm-customers").path)
    rows = [csv_fields(line) for line in customers.lines]
    assert all(len(row) == 3 and WHOLE_NUMBER.match(row[0]) for row in rows)
    crm_ids = [int(row[0]) for row in rows]
    assert len(crm_ids) == len(set(crm_ids)), "one row per CRM customer"
    interactions = read_csv_file(new_file(files, "crm-interactions").path)
    interaction_rows = [csv_fields(line) for line in interactions.lines]
    reasons: Counter = Counter()
    valid = []
    for fields in interaction_rows:
        reason = classify_interaction(fields, set(crm_ids))
        reasons[reason] += 1
        if reason is None:
            when = parse_crm_time(fields[0].strip())
            assert when is not None
            valid.append((when, fields[1].strip(), int(fields[2])))
    products = read_csv_file(new_file(files, "crm-products").path)
    product_rows = [csv_fields(line) for line in products.lines]
    assert all(len(row) == 2 for row in product_rows)
    return CrmRun(
        customers,
        set(crm_ids),
        Counter(row[1] for row in rows),
        Counter(row[2] for row in rows),
        interactions,
        interaction_rows,
        reasons,
        valid,
        products,
        product_rows,
    )


def classify_session(line: str) -> str | None:
    """Why an app session line cannot be used (None: it is valid)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return "invalid_json"
    if not isinstance(value, dict):
        return "not_an_object"
    customer_id = value.get("customer_id")
    if customer_id is None:
        return "missing_customer_id"
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        return "unparseable_customer_id"
    if parse_time(value.get("session_started_at")) is None:
        return "unparseable_session_started_at"
    return None


def classify_purchase(fields: list[str]) -> str | None:
    """Why an app purchase row cannot be used (None: it is valid)."""
    assert len(fields) == 3, fields
    customer_id, when, amount = (field.strip() for field in fields)
    if not customer_id:
        return "missing_customer_id"
    if not WHOLE_NUMBER.match(customer_id):
        return "unparseable_customer_id"
    if not amount:
        return "missing_amount"
    if not DECIMAL.match(amount):
        return "unparseable_amount"
    if parse_time(when) is None:
        return "unparseable_purchased_at"
    return None


@dataclasses.dataclass(frozen=True)
class AppRun:
    session_lines: list[str]
    session_reasons: Counter
    sessions: list[tuple[int, datetime, str]]  # customer, naive UTC start, text as written
    purchases_file: CsvFile
    purchase_reasons: Counter
    purchases: list[tuple[int, datetime, str]]  # customer, naive UTC time, amount text

    @property
    def users(self) -> set[int]:
        return {cid for cid, _, _ in self.sessions} | {cid for cid, _, _ in self.purchases}


def read_app(files: list[gen.GeneratedFile]) -> AppRun:
    lines = read_lines(new_file(files, "app-sessions").path)
    session_reasons: Counter = Counter()
    sessions = []
    for line in lines:
        reason = classify_session(line)
        session_reasons[reason] += 1
        if reason is None:
            value = json.loads(line)
            assert set(value) == {"customer_id", "session_started_at"}
            moment = parse_time(value["session_started_at"])
            sessions.append((value["customer_id"], moment, value["session_started_at"]))
    purchases_file = read_csv_file(new_file(files, "app-purchases").path)
    purchase_reasons: Counter = Counter()
    purchases = []
    for line in purchases_file.lines:
        fields = csv_fields(line)
        reason = classify_purchase(fields)
        purchase_reasons[reason] += 1
        if reason is None:
            customer_id, when, amount = (field.strip() for field in fields)
            purchases.append((int(customer_id), parse_time(when), amount))
    return AppRun(lines, session_reasons, sessions, purchases_file, purchase_reasons, purchases)


def message_buckets(app: AppRun, last_day: date = LAST_DAY) -> dict[int, str]:
    """The app message of every app user over the 8 weeks ending on ``last_day``: BOOST when
    they spent under 100, else REWARD with more than 5 sessions a week, else NONE."""
    first_day = last_day - timedelta(days=55)
    spend: dict[int, float] = defaultdict(float)
    sessions: Counter = Counter()
    for cid, when, amount in app.purchases:
        if first_day <= when.date() <= last_day:
            spend[cid] += float(amount)
    for cid, when, _ in app.sessions:
        if first_day <= when.date() <= last_day:
            sessions[cid] += 1
    return {
        cid: "BOOST" if spend[cid] < 100 else "REWARD" if sessions[cid] / 8 > 5 else "NONE"
        for cid in app.users
    }


@pytest.fixture(scope="module")
def medium_crm(medium_files) -> CrmRun:
    return read_crm(medium_files)


@pytest.fixture(scope="module")
def medium_app(medium_files) -> AppRun:
    return read_app(medium_files)


def test_new_sources_leave_the_web_and_store_files_unchanged(pinned_files) -> None:
    written = pinned_files
    hashes = {
        f.path.name: hashlib.sha256(f.path.read_bytes()).hexdigest()
        for f in written
        if f.source.startswith(("web-", "store-"))
    }
    assert hashes == SAMPLE_SHA256


def test_new_files_are_deterministic_and_described(tmp_path: Path) -> None:
    first, second, other = (
        [
            f
            for f in gen.generate(tmp_path / name, customers=30, seed=seed)
            if f.source in NEW_SOURCES
        ]
        for name, seed in (("a", 9), ("b", 9), ("c", 10))
    )
    assert [f.source for f in first] == list(NEW_SOURCES)
    assert [f.path.name for f in first] == list(NEW_FILES)
    for one, again, different in zip(first, second, other, strict=True):
        assert one.path.read_bytes() == again.path.read_bytes(), one.path.name
        assert one.path.read_bytes() != different.path.read_bytes(), one.path.name
        assert one.rows == again.rows and one.extract_date is None
    assert first[0].rows == len(read_crm(first).crm_ids)
    assert first[1].rows == len(read_crm(first).interactions.lines)
    assert first[2].rows == len(read_crm(first).products.lines)
    assert first[3].rows == len(read_app(first).session_lines)
    assert first[4].rows == len(read_app(first).purchases_file.lines)


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_new_headers_are_exact(tiny_runs, seed: int) -> None:
    crm = read_crm(tiny_runs[seed])
    assert crm.customers.header == CRM_CUSTOMERS_HEADER
    assert crm.interactions.header == CRM_INTERACTIONS_HEADER
    assert crm.products.header == CRM_PRODUCTS_HEADER
    assert read_app(tiny_runs[seed]).purchases_file.header == APP_PURCHASES_HEADER


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_crm_dirt_kind_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    crm = read_crm(tiny_runs[seed])
    assert crm.interactions.newline == crm.products.newline == "\r\n"
    assert crm.interactions.trailing_blank_lines >= 1
    assert crm.products.trailing_blank_lines >= 1
    assert set(crm.reasons) == {None, *INTERACTION_REASONS}
    months = [row[0].strip() for row in crm.product_rows]
    assert any(parse_crm_month(month) is None for month in months), "a bad month"
    assert "13-2017" in months
    assert any(not product.strip() for _, product in crm.product_rows), "an empty product"


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_crm_situation_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    crm = read_crm(tiny_runs[seed])
    web = web_ids(tiny_runs[seed])
    window = gen.crm_months(date(2017, 1, 1), 120)
    topics = crm.topics
    assert set(topics) <= set(window)
    quiet = [month for month in window if not topics.get(month)]
    assert quiet, "a month without a product"
    mentioned = {row[2].strip() for row in crm.interaction_rows}
    assert any(str(cid) not in mentioned for cid in crm.crm_ids), "a customer never contacted"
    assert any(when.date().replace(day=1) in quiet for when, _, _ in crm.valid_interactions)
    assert crm.crm_ids - web and all(cid in CRM_ONLY_IDS for cid in crm.crm_ids - web)


def test_crm_customers_overlap_the_web_customers(medium_files, medium_crm) -> None:
    web = web_ids(medium_files)
    shared = medium_crm.crm_ids & web
    assert 0.4 < len(shared) / len(web) < 0.6
    crm_only = medium_crm.crm_ids - web
    assert crm_only and all(cid in CRM_ONLY_IDS for cid in crm_only)
    assert len(crm_only) / len(web) < 0.06
    assert set(medium_crm.types) == CRM_TYPES
    assert 4 <= len(medium_crm.occupations) <= 15
    assert all(occupation.strip() == occupation != "" for occupation in medium_crm.occupations)


def test_crm_interactions_are_valid_and_realistic(medium_crm) -> None:
    valid = medium_crm.valid_interactions
    assert "unknown_channel" not in medium_crm.reasons
    channels = Counter(channel for _, channel, _ in valid)
    assert set(channels) == CHANNELS
    assert channels["Boat"] == min(channels.values()) and channels["Boat"] / len(valid) < 0.03
    assert all(START <= when < END for when, _, _ in valid)
    assert all(8 <= when.hour < 20 for when, _, _ in valid)
    per_customer = Counter(cid for _, _, cid in valid)
    never = len(medium_crm.crm_ids - set(per_customer)) / len(medium_crm.crm_ids)
    assert 0.1 < never < 0.5
    assert 1 <= statistics.median(per_customer.values()) <= 6
    bad_share = 1 - len(valid) / len(medium_crm.interaction_rows)
    assert 0.003 < bad_share < 0.05
    # Mild disorder: the file is not in time order.
    assert any(b < a for (a, _, _), (b, _, _) in itertools.pairwise(valid))


def test_crm_products_cover_the_window_but_one_month(medium_crm) -> None:
    window = gen.crm_months(date(2017, 1, 1), 120)
    topics = medium_crm.topics
    assert set(topics) == set(window)  # every month has a row ...
    assert sum(1 for product in topics.values() if not product) == 1  # ... one without product
    assert all(product in gen.PRODUCTS for product in topics.values() if product)


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_app_dirt_kind_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    app = read_app(tiny_runs[seed])
    assert set(app.session_reasons) == {None, *SESSION_REASONS}
    assert set(app.purchase_reasons) == {None, *PURCHASE_REASONS}
    assert any(when >= END for _, when, _ in app.sessions), "a future-dated session"
    assert any(when >= END for _, when, _ in app.purchases), "a future-dated purchase"
    assert any(text.endswith("Z") for _, _, text in app.sessions)
    assert any(not text.endswith("Z") for _, _, text in app.sessions), "a time without zone"


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_session_lines_are_json_but_the_deliberate_bad_ones(tiny_runs, seed: int) -> None:
    app = read_app(tiny_runs[seed])
    not_json = []
    for line in app.session_lines:
        try:
            assert isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            not_json.append(line)
    assert 1 <= len(not_json) == app.session_reasons["invalid_json"]


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_message_bucket_is_represented_in_a_small_run(tiny_runs, seed: int) -> None:
    app = read_app(tiny_runs[seed])
    assert app.users <= web_ids(tiny_runs[seed])
    assert set(message_buckets(app).values()) == {"BOOST", "REWARD", "NONE"}


def test_app_users_sessions_and_purchases_are_realistic(medium_files, medium_app) -> None:
    web = web_ids(medium_files)
    assert medium_app.users <= web
    assert 0.3 < len(medium_app.users) / len(web) < 0.5
    buckets = Counter(message_buckets(medium_app).values())
    assert min(buckets.values()) / sum(buckets.values()) > 0.03, buckets
    naive = sum(1 for _, _, text in medium_app.sessions if not text.endswith("Z"))
    assert 0.15 < naive / len(medium_app.sessions) < 0.25
    future = [when for _, when, _ in medium_app.sessions if when >= END]
    assert 1 <= len(future) < 20
    assert all(END < when < END + timedelta(days=6) for when in future)
    assert all(when >= START for _, when, _ in medium_app.sessions)
    assert all(APP_AMOUNT.match(amount) for _, _, amount in medium_app.purchases)
    amounts = [float(amount) for _, _, amount in medium_app.purchases]
    assert 15 < statistics.median(amounts) < 60
    assert max(amounts) > 5 * statistics.median(amounts), "a long tail"
    # Some heavy users: more than 5 sessions a week on average over the window.
    weeks = (END - START).days / 7
    per_user = Counter(cid for cid, _, _ in medium_app.sessions)
    assert 0.02 < sum(1 for n in per_user.values() if n / weeks > 5) / len(per_user) < 0.2
    bad_share = 1 - len(medium_app.sessions) / len(medium_app.session_lines)
    assert 0 < bad_share < 0.02
    times = [when for _, when, _ in medium_app.sessions]
    assert any(b < a for a, b in itertools.pairwise(times)), "mild disorder"


def test_new_files_respect_a_custom_window(tmp_path: Path) -> None:
    files = gen.generate(tmp_path, customers=30, seed=5, start_date=date(2020, 6, 1), days=7)
    start, end = datetime(2020, 6, 1), datetime(2020, 6, 8)
    crm = read_crm(files)
    assert all(start <= when < end for when, _, _ in crm.valid_interactions)
    assert {row[0].strip() for row in crm.product_rows} == {"06-2020", "13-2020"}
    assert not any(crm.topics.values()), "the only month is the one without a product"
    app = read_app(files)
    assert all(start <= when < end + timedelta(days=6) for _, when, _ in app.sessions)
    assert any(when >= end for _, when, _ in app.sessions)


def test_crm_months() -> None:
    assert gen.crm_months(date(2017, 1, 1), 120) == [date(2017, m, 1) for m in (1, 2, 3, 4)]
    assert gen.crm_months(date(2017, 1, 31), 1) == [date(2017, 1, 1)]
    assert gen.crm_months(date(2017, 12, 31), 2) == [date(2017, 12, 1), date(2018, 1, 1)]


def test_crm_id_range_stays_clear_of_the_web_and_store_ids() -> None:
    assert gen.crm_id_range(200) == (80001, 80001 + 6)  # 6 CRM-only customers
    for customers in (0, 20, 1000, 59_000, 69_000, 75_000, 100_000, 10**6):
        crm_first, unknown_first = gen.crm_id_range(customers)
        crm_last = unknown_first + gen.CRM_UNKNOWN_SPAN - 1
        store_first, late_first = gen.store_id_ranges(customers)
        store_last = late_first + customers  # far more than the late customers
        assert 10_000 + customers < crm_first
        assert crm_last < store_first or crm_first > store_last, customers


def test_crm_and_app_files_are_written_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRM and app users stream through one at a time; their lines wait in bounded buffers."""
    monkeypatch.setattr(gen, "BUFFER_SIZE", 100)
    joined = datetime(2017, 1, 1, tzinfo=timezone.utc)
    customers = (gen.Customer(10001 + n, joined, "Kim", "Boston", "MA", 1.0) for n in range(10**9))
    with ExitStack() as stack:
        crm = gen.CrmWriter(stack, tmp_path, 1, date(2017, 1, 1), 120, customers=10**9)
        app = gen.AppWriter(stack, tmp_path, 1, date(2017, 1, 1), 120)
        tapped = app.tap(crm.tap(customers))
        for _ in range(500):
            next(tapped)
            assert crm.buffered_interactions <= 100
            assert app.buffered_lines <= 2 * 100
    # Lines were released while the customers streamed through (finish never ran).
    assert len(read_csv_file(tmp_path / "crm_interactions.csv").lines) > 300
    assert len(read_lines(tmp_path / "app_sessions.jsonl")) > 1000
    assert len(read_csv_file(tmp_path / "app_purchases.csv").lines) > 300


# --- Marketing: an independent reading of its CSV folder and SQLite database -------------------

MARKETING_COLUMNS = {  # table: (column, SQLite type) in order
    "session_sources": [
        ("session_id", "TEXT"),
        ("user_id", "TEXT"),
        ("event_date", "TEXT"),
        ("event_time", "TEXT"),
        ("channel_name", "TEXT"),
        ("holder_engagement", "INTEGER"),
        ("closer_engagement", "INTEGER"),
        ("impression_interaction", "INTEGER"),
    ],
    "conversions": [
        ("conv_id", "TEXT"),
        ("user_id", "TEXT"),
        ("conv_date", "TEXT"),
        ("conv_time", "TEXT"),
        ("revenue", "REAL"),
    ],
    "session_costs": [("session_id", "TEXT"), ("cost", "REAL")],
}
MARKETING_HEADERS = {
    "session_sources": (
        "session_id,user_id,event_date,event_time,channel_name,"
        "holder_engagement,closer_engagement,impression_interaction"
    ),
    "conversions": "conv_id,user_id,conv_date,conv_time,revenue",
    "session_costs": "session_id,cost",
}
MARKETING_CHANNELS = {
    "Paid Search",
    "Organic Search",
    "Email",
    "FB & IG Ads",
    "Social Organic",
    "Display",
    "Affiliate",
    "Direct",
}
SESSION_SOURCE_REASONS = {"unparseable_event_time", "missing_user_id"}
CONVERSION_REASONS = {"unparseable_revenue", "missing_conv_date"}
MARKETING_ONLY_NUMBERS = range(70001, 80001)
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DAY_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CLOCK_SHAPE = re.compile(r"^\d{2}:\d{2}:\d{2}$")
MONEY = re.compile(r"^\d+\.\d{2}$")
# SHA-256 of every file for --customers 200 --seed 42 before the marketing files existed.
PRE_MARKETING_SHA256 = {
    **SAMPLE_SHA256,
    "crm_customers.csv": "d7b804a757159a762e0dbd57048ecf3efa7ec89614ac5d19ae9edf495586b525",
    "crm_interactions.csv": "5f9e5161f8d1f923389311357da80593bfe549ed1e1bbd434183394698ddaa00",
    "crm_products.csv": "84f2ccc11faf546af0736ec2182ff225ce1050fafb5ff1521d2b8471036c624d",
    "app_sessions.jsonl": "a96510052bed75962c82fae4117014b21906f21f0fd9a0b6779da9a124e2830f",
    "app_purchases.csv": "433a9196b5f2dafd7ac962ec09f16796acaf0c267ac35a19d4a238a4b91f97ce",
}


def parse_day_clock(day: str, clock: str) -> datetime | None:
    """A ``YYYY-MM-DD`` date and ``HH:MM:SS`` time as a naive datetime; None if not one."""
    if not DAY_SHAPE.match(day) or not CLOCK_SHAPE.match(clock):
        return None
    try:
        return datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def classify_session_source(fields: list[str]) -> str | None:
    """Why a session_sources row cannot be used as it is (None: it is valid)."""
    assert len(fields) == 8, fields
    session_id, user_id, day, clock, channel, *flags = fields
    if not session_id:
        return "missing_session_id"
    if not user_id:
        return "missing_user_id"
    if not day:
        return "missing_event_date"
    if not DAY_SHAPE.match(day):
        return "unparseable_event_date"
    if parse_day_clock(day, clock) is None:
        return "unparseable_event_time"
    if channel not in MARKETING_CHANNELS:
        return "unknown_channel"
    if any(flag not in ("0", "1") for flag in flags):
        return "unparseable_flag"
    return None


def classify_conversion(fields: list[str]) -> str | None:
    """Why a conversions row cannot be used as it is (None: it is valid)."""
    assert len(fields) == 5, fields
    conv_id, user_id, day, clock, revenue = fields
    if not conv_id:
        return "missing_conv_id"
    if not user_id:
        return "missing_user_id"
    if not day:
        return "missing_conv_date"
    if parse_day_clock(day, clock) is None:
        return "unparseable_conv_time"
    if not revenue:
        return "missing_revenue"
    if not DECIMAL.match(revenue):
        return "unparseable_revenue"
    return None


class MarketingSession(NamedTuple):
    session_id: str
    user_id: str
    when: datetime
    channel: str
    flags: tuple[int, int, int]  # holder, closer, impression


class Conversion(NamedTuple):
    conv_id: str
    user_id: str
    when: datetime
    revenue: str


@dataclasses.dataclass(frozen=True)
class MarketingRun:
    folder: gen.GeneratedFile
    database: gen.GeneratedFile
    files: dict[str, CsvFile]  # table: its CSV file
    rows: dict[str, list[list[str]]]  # table: its CSV rows, as fields
    session_reasons: Counter
    conversion_reasons: Counter
    sessions: list[MarketingSession]  # valid, exact duplicates once
    conversions: list[Conversion]  # valid
    costs: dict[str, str]  # session_id: cost text ("" when null)

    @property
    def users(self) -> set[str]:
        return {s.user_id for s in self.sessions} | {c.user_id for c in self.conversions}


def read_marketing(files: list[gen.GeneratedFile]) -> MarketingRun:
    folder, database = [f for f in files if f.source == "marketing"]
    assert folder.path.name == "marketing" and folder.path.is_dir()
    assert database.path.name == "marketing.sqlite" and database.path.is_file()
    return _read_marketing(folder, database)


@functools.lru_cache(maxsize=32)
def _read_marketing(folder: gen.GeneratedFile, database: gen.GeneratedFile) -> MarketingRun:
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(
        f"{table}.csv" for table in MARKETING_COLUMNS
    )
    csv_files = {table: read_csv_file(folder.path / f"{table}.csv") for table in MARKETING_COLUMNS}
    rows = {table: list(csv.reader(file.lines, strict=True)) for table, file in csv_files.items()}
    session_reasons: Counter = Counter()
    sessions = []
    for fields in dict.fromkeys(tuple(row) for row in rows["session_sources"]):
        reason = classify_session_source(list(fields))
        session_reasons[reason] += 1
        if reason is None:
            session_id, user_id, day, clock, channel, *flags = fields
            when = parse_day_clock(day, clock)
            assert when is not None
            holder, closer, impression = (int(flag) for flag in flags)
            session = MarketingSession(
                session_id, user_id, when, channel, (holder, closer, impression)
            )
            sessions.append(session)
    conversion_reasons: Counter = Counter()
    conversions = []
    for fields in rows["conversions"]:
        reason = classify_conversion(fields)
        conversion_reasons[reason] += 1
        if reason is None:
            conv_id, user_id, day, clock, revenue = fields
            when = parse_day_clock(day, clock)
            assert when is not None
            conversions.append(Conversion(conv_id, user_id, when, revenue))
    costs = {}
    for session_id, cost in rows["session_costs"]:
        assert session_id not in costs, f"two cost rows for {session_id}"
        costs[session_id] = cost
    return MarketingRun(
        folder,
        database,
        csv_files,
        rows,
        session_reasons,
        conversion_reasons,
        sessions,
        conversions,
        costs,
    )


def journeys(run: MarketingRun) -> dict[str, list[MarketingSession]]:
    """Each valid conversion's journey: its user's valid sessions strictly before it."""
    by_user: dict[str, list[MarketingSession]] = defaultdict(list)
    for session in run.sessions:
        by_user[session.user_id].append(session)
    return {
        conversion.conv_id: [s for s in by_user[conversion.user_id] if s.when < conversion.when]
        for conversion in run.conversions
    }


def sqlite_text(value: Any) -> str:
    """A SQLite value as the CSV writes it: NULL empty, a REAL with two decimals."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_marketing_headers_and_schema_are_exact(tiny_runs, seed: int) -> None:
    run = read_marketing(tiny_runs[seed])
    for table, header in MARKETING_HEADERS.items():
        file = run.files[table]
        assert (file.header, file.newline, file.trailing_blank_lines) == (header, "\n", 0)
        assert all(len(row) == len(MARKETING_COLUMNS[table]) for row in run.rows[table])
    with sqlite_reader(run.database.path) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert sorted(name for (name,) in tables) == sorted(MARKETING_COLUMNS)
        for table, columns in MARKETING_COLUMNS.items():
            info = connection.execute(f"PRAGMA table_info({table})").fetchall()
            assert [(row[1], row[2]) for row in info] == columns


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_marketing_csv_and_sqlite_carry_the_same_records(tiny_runs, seed: int) -> None:
    run = read_marketing(tiny_runs[seed])
    total = sum(len(rows) for rows in run.rows.values())
    assert run.folder.rows == run.database.rows == total
    with sqlite_reader(run.database.path) as connection:
        for table, columns in MARKETING_COLUMNS.items():
            names = ", ".join(column for column, _ in columns)
            stored = connection.execute(f"SELECT {names} FROM {table} ORDER BY rowid").fetchall()
            assert [[sqlite_text(v) for v in row] for row in stored] == run.rows[table], table
            types = connection.execute(
                f"SELECT {', '.join(f'typeof({column})' for column, _ in columns)} FROM {table}"
            ).fetchall()
            assert len(types) == len(run.rows[table])
            for row, fields in zip(types, run.rows[table], strict=True):
                for (column, declared), kind, field in zip(columns, row, fields, strict=True):
                    expected = {"TEXT": "text", "INTEGER": "integer", "REAL": "real"}[declared]
                    # Empty is NULL; a dirty value of a number column stays text.
                    assert kind in (("null",) if not field else (expected, "text")), field
                    if kind == "text" and declared != "TEXT":
                        assert field in ("25:61:00", "abc", "n/a", "12.5.0"), (column, field)
    assert any(row[4] == "abc" for row in run.rows["conversions"])


def test_marketing_files_are_deterministic(tiny_runs, tmp_path: Path) -> None:
    """The same seed gives the same CSV bytes and the same SQLite bytes; another seed not."""
    again = read_marketing(gen.generate(tmp_path, customers=20, seed=1))
    first, other = read_marketing(tiny_runs[1]), read_marketing(tiny_runs[2])
    assert first.folder.rows == again.folder.rows
    assert contents(first.folder.path) == contents(again.folder.path)
    assert first.database.path.read_bytes() == again.database.path.read_bytes()
    assert sqlite_writer_version(first.database.path) == sqlite_version()
    for name, data in contents(first.folder.path).items():
        assert data != (other.folder.path / name).read_bytes(), name
    assert first.database.path.read_bytes() != other.database.path.read_bytes()
    # A second run into the same folder starts a fresh database: same bytes again.
    rerun = read_marketing(gen.generate(tmp_path, customers=20, seed=1))
    assert rerun.database.path.read_bytes() == first.database.path.read_bytes()


def test_marketing_leaves_every_other_file_unchanged(pinned_files) -> None:
    hashes = {
        f.path.name: hashlib.sha256(f.path.read_bytes()).hexdigest()
        for f in pinned_files
        if f.source not in ("marketing", "app-contacts")  # app-contacts: written after
    }
    assert hashes == PRE_MARKETING_SHA256


def assert_marketing_situations(run: MarketingRun) -> None:
    """Every situation a journey consumer must handle, computed from the valid rows only."""
    paths = journeys(run)
    conversions = {c.conv_id: c for c in run.conversions}
    by_user: dict[str, list[MarketingSession]] = defaultdict(list)
    for session in run.sessions:
        by_user[session.user_id].append(session)
    assert any(not path for path in paths.values()), "a conversion without an earlier session"
    assert any(
        session.when == conversions[conv_id].when and session not in path
        for conv_id, path in paths.items()
        for session in by_user[conversions[conv_id].user_id]
    ), "a conversion at exactly the time of one of its user's sessions"
    assert any(
        set(paths[a.conv_id]) & set(paths[b.conv_id])
        for a, b in itertools.combinations(run.conversions, 2)
        if a.user_id == b.user_id and a.conv_id != b.conv_id
    ), "a session in the journeys of two conversions"
    long = {conversions[conv_id].user_id for conv_id, path in paths.items() if len(path) > 200}
    assert len(long) == 1, "exactly one user with a journey of more than 200 sessions"


def assert_marketing_costs(run: MarketingRun) -> None:
    """Missing, null and zero costs, and a channel-date whose sessions all miss their cost."""
    sessions = run.sessions
    assert not any(s.session_id in run.costs for s in sessions if s.channel == "Direct")
    assert any(s.channel != "Direct" and s.session_id not in run.costs for s in sessions)
    assert "" in run.costs.values(), "a null cost"
    assert "0.00" in run.costs.values(), "a zero cost"
    assert all(not cost or MONEY.match(cost) for cost in run.costs.values())
    assert all(0 <= float(cost) <= 5 for cost in run.costs.values() if cost)
    costed: dict[tuple[str, date], bool] = defaultdict(bool)  # any cost row that day?
    for s in sessions:
        costed[s.channel, s.when.date()] |= s.session_id in run.costs
    assert not all(costed.values()), "a channel-date whose sessions all miss their cost"


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_every_marketing_situation_and_dirt_appears_in_a_small_run(tiny_runs, seed: int) -> None:
    run = read_marketing(tiny_runs[seed])
    assert_marketing_situations(run)
    assert_marketing_costs(run)
    assert set(run.session_reasons) == {None, *SESSION_SOURCE_REASONS}
    assert set(run.conversion_reasons) == {None, *CONVERSION_REASONS}
    assert any(row[3] == "25:61:00" for row in run.rows["session_sources"])
    assert any(row[4] == "abc" for row in run.rows["conversions"])
    lines = run.files["session_sources"].lines
    assert max(Counter(lines).values()) > 1, "an exact duplicate session row"
    assert run.users & marketing_users(seed, web_ids(tiny_runs[seed])), "web customers too"


def test_marketing_situations_hold_in_a_one_day_window(tmp_path: Path) -> None:
    files = gen.generate(tmp_path, customers=3, seed=8, start_date=date(2020, 6, 1), days=1)
    run = read_marketing(files)
    assert_marketing_situations(run)
    assert_marketing_costs(run)
    start, end = datetime(2020, 6, 1), datetime(2020, 6, 2)
    assert all(start <= s.when < end for s in run.sessions)
    assert all(start <= c.when < end for c in run.conversions)


def marketing_users(seed: int, numbers: Iterable[int]) -> set[str]:
    """The marketing platform's ids of the customers or users of these numbers."""
    return {hashlib.sha256(f"marketing-{seed}-user-{n}".encode()).hexdigest() for n in numbers}


def test_marketing_users_overlap_the_web_customers(medium_files) -> None:
    """About 70% of the web customers are users too, under the platform's own ids."""
    run = read_marketing(medium_files)
    web = marketing_users(11, web_ids(medium_files))
    assert 0.6 < len(run.users & web) / len(web) < 0.8
    only = run.users - web
    assert only and only <= marketing_users(11, MARKETING_ONLY_NUMBERS)
    assert len(only) / len(web) < 0.15
    assert not run.users & {str(n) for n in web_ids(medium_files)}


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_marketing_ids_are_64_hex_digits_as_in_the_challenge(tiny_runs, seed: int) -> None:
    """conv_id, session_id and user_id as the IHC challenge's challenge.db has them: 64
    lowercase hex digits, in the CSV files and in the database (as TEXT)."""
    run = read_marketing(tiny_runs[seed])
    ids = {"session_sources": (0, 1), "conversions": (0, 1), "session_costs": (0,)}
    for table, columns in ids.items():
        for row in run.rows[table]:
            for column in columns:
                assert row[column] == "" or HEX64.match(row[column]), (table, row)
    sessions = {s.session_id for s in run.sessions}
    conversions = {c.conv_id for c in run.conversions}
    assert sessions and conversions and not (sessions & conversions) and not run.users & sessions


def test_marketing_sessions_conversions_and_costs_are_realistic(medium_files) -> None:
    run = read_marketing(medium_files)
    sessions = run.sessions
    assert all(START <= s.when < END for s in sessions)
    assert all(START <= c.when < END for c in run.conversions)
    channels = Counter(s.channel for s in sessions)
    assert set(channels) == MARKETING_CHANNELS
    impressions = {
        channel: statistics.mean(s.flags[2] for s in sessions if s.channel == channel)
        for channel in channels
    }
    assert min(impressions[c] for c in ("Display", "FB & IG Ads", "Social Organic")) > 0.4
    assert max(impressions[c] for c in ("Paid Search", "Email", "Direct", "Affiliate")) < 0.2
    for flag in (0, 1):  # holder and closer engagement: sometimes, not always
        assert 0.05 < statistics.mean(s.flags[flag] for s in sessions) < 0.6
    per_user = Counter(s.user_id for s in sessions)
    assert statistics.median(per_user.values()) >= 3
    assert len({s.session_id for s in sessions}) == len(sessions), "unique ids but duplicates"
    # Conversions: a fraction of the users, 1 to 3 times, minutes or hours after a session.
    per_converter = Counter(c.user_id for c in run.conversions)
    assert 0.15 < len(per_converter) / len(run.users) < 0.45
    assert max(per_converter.values()) <= 3
    assert all(MONEY.match(c.revenue) for c in run.conversions)
    assert 40 < statistics.median(float(c.revenue) for c in run.conversions) < 90
    paths = journeys(run)
    times = {(s.user_id, s.when) for s in sessions}
    gaps = [  # from the last session before (conversions at a session's time aside)
        c.when - max(s.when for s in paths[c.conv_id])
        for c in run.conversions
        if paths[c.conv_id] and (c.user_id, c.when) not in times
    ]
    assert len(gaps) / len(run.conversions) > 0.9
    assert all(timedelta(0) < gap <= timedelta(days=2) for gap in gaps)
    assert statistics.median(gaps) < timedelta(hours=3)
    assert sum(1 for path in paths.values() if len(path) > 200) == 1, "one heavy journey only"
    # Costs: for sessions of the file, most of the paying channels' sessions, none for Direct.
    assert set(run.costs) <= {row[0] for row in run.rows["session_sources"]}
    paying = [s for s in sessions if s.channel != "Direct"]
    missing = sum(1 for s in paying if s.session_id not in run.costs) / len(paying)
    null = sum(1 for cost in run.costs.values() if not cost) / len(run.costs)
    assert 0.01 < missing < 0.1 and 0.005 < null < 0.05
    assert_marketing_costs(run)
    # Dirt stays a trickle.
    bad = sum(n for reason, n in run.session_reasons.items() if reason) / len(sessions)
    assert 0 < bad < 0.02
    lines = run.files["session_sources"].lines
    assert 0 < (len(lines) - len(set(lines))) / len(lines) < 0.02


def test_marketing_id_range_stays_clear_of_the_other_ids() -> None:
    assert gen.marketing_id_range(200) == 70001
    for customers in (0, 20, 1000, 59_000, 60_000, 69_000, 75_000, 100_000, 10**6):
        first = gen.marketing_id_range(customers)
        last = first + max(4, -(-customers // 10)) - 1
        crm_first, unknown_first = gen.crm_id_range(customers)
        crm_last = unknown_first + gen.CRM_UNKNOWN_SPAN - 1
        store_first, late_first = gen.store_id_ranges(customers)
        store_last = late_first + customers
        assert 10_000 + customers < first, customers
        assert last < crm_first or first > crm_last, customers
        assert last < store_first or first > store_last, customers


def test_marketing_is_written_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marketing users stream through one at a time; their rows wait in bounded buffers."""
    monkeypatch.setattr(gen, "BUFFER_SIZE", 100)
    joined = datetime(2017, 1, 1, tzinfo=timezone.utc)
    customers = (gen.Customer(10001 + n, joined, "Kim", "Boston", "MA", 1.0) for n in range(10**9))
    with ExitStack() as stack:
        marketing = gen.MarketingWriter(stack, tmp_path, 1, date(2017, 1, 1), 120, 10**9)
        tapped = marketing.tap(customers)
        for _ in range(100):
            next(tapped)
            assert marketing.buffered_rows <= 3 * 100
    # Rows were released while the customers streamed through (finish never ran).
    assert len(read_csv_file(tmp_path / "marketing" / "session_sources.csv").lines) > 500


# --- The manifest and appended days -----------------------------------------------------------

WORLD_START = date(2020, 6, 1)
WORLD_DAYS = 7
WORLD_CUSTOMERS = 40
FIRST_CUSTOMERS_FILE = "generate-customers-2020-06-07.csv"  # at the end of the initial window
LAST_CUSTOMERS_FILE = "generate-customers-2020-06-09.csv"  # after the two appended days


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def folder_contents(folder: Path) -> dict[str, bytes | dict[str, bytes]]:
    return {path.name: contents(path) for path in sorted(folder.iterdir())}


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)  # naive UTC, as parse_time returns


def creations(lines: list[str]) -> set[tuple[str, str]]:
    """(type, key) of the valid events that create an entity (anything but an UPDATE)."""
    return {(e["type"], e["key"]) for e in valid_events(lines) if e["verb"] != "UPDATE"}


def customer_id_of(event: dict[str, Any]) -> str:
    return event["key"] if event["type"] == "CUSTOMER" else event["customer_id"]


def customer_rows(data: bytes) -> list[list[str]]:
    """The rows of a customers file, without its header."""
    header, *rows = csv.reader(data.decode("utf-8").splitlines())
    assert header == list(gen.CUSTOMERS_HEADER)
    return rows


def file_day(written: gen.GeneratedFile) -> date:
    """The day of an appended day's file, from its name."""
    return date.fromisoformat(written.path.stem.removeprefix("web_events_"))


class World(NamedTuple):
    folder: Path
    before: dict[str, bytes | dict[str, bytes]]  # the folder's contents before appending
    days: list[gen.GeneratedFile]  # the appended days, in order


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A week from 2020-06-01 with 40 customers, then two appended days."""
    folder = tmp_path_factory.mktemp("world")
    gen.generate(folder, WORLD_CUSTOMERS, seed=8, start_date=WORLD_START, days=WORLD_DAYS)
    before = folder_contents(folder)
    return World(folder, before, gen.append_days(folder, days=2))


def test_start_date_and_days_place_the_world_in_time(tmp_path: Path) -> None:
    out = tmp_path / "w"
    result = invoke(
        "generate", "--customers", "20", "--seed", "3", "--start-date", "2019-03-10",
        "--days", "10", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    start = datetime(2019, 3, 10)
    times = [
        parse_time(e["event_time"]) for e in valid_events(read_lines(out / "web_events.jsonl"))
    ]
    assert all(start <= when < start + timedelta(days=10) for when in times)
    assert min(times) < start + timedelta(days=2) and max(times) >= start + timedelta(days=8)
    manifest = json.loads((out / gen.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert {key: manifest[key] for key in ("start_date", "days", "days_appended")} == {
        "start_date": "2019-03-10",
        "days": 10,
        "days_appended": 0,
    }


def test_generate_requires_customers_and_seed_without_append(tmp_path: Path) -> None:
    result = invoke("generate", "--seed", "3", "--out", str(tmp_path / "w"))
    assert result.exit_code == 2 and "--customers" in result.output
    assert not (tmp_path / "w").exists()


def test_manifest_describes_the_world_and_what_was_written(world: World) -> None:
    manifest = json.loads((world.folder / gen.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert {key: manifest[key] for key in ("customers", "seed", "start_date", "days")} == {
        "customers": WORLD_CUSTOMERS,
        "seed": 8,
        "start_date": "2020-06-01",
        "days": WORLD_DAYS,
    }
    assert manifest["days_appended"] == 2
    assert manifest["customers_file"] == LAST_CUSTOMERS_FILE
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(world.before) - set(listed) == {gen.MANIFEST_FILE, FIRST_CUSTOMERS_FILE}
    assert list(listed)[-2:] == ["web_events_2020-06-08.jsonl", "web_events_2020-06-09.jsonl"]
    for name, entry in listed.items():
        path = world.folder / name
        assert path.exists(), name
        if path.suffix == ".jsonl":
            assert entry["rows"] == len(read_lines(path)), name
    assert listed["store_sales.csv"]["source"] == "store-sales"
    assert "extract_date" in listed["store_customers_2020-06-02.csv"]


def test_append_writes_only_new_files(world: World) -> None:
    """New day files and customers file; the manifest is rewritten, the customers file it
    named is gone, and nothing else changes."""
    after = folder_contents(world.folder)
    new = [f"web_events_{day}.jsonl" for day in ("2020-06-08", "2020-06-09")]
    kept = set(world.before) - {FIRST_CUSTOMERS_FILE}
    assert sorted(after) == sorted([*kept, *new, LAST_CUSTOMERS_FILE])
    assert [(f.source, f.path.name) for f in world.days] == [("web-events", n) for n in new]
    for name in kept - {gen.MANIFEST_FILE}:
        assert after[name] == world.before[name], name
    for written in world.days:
        assert written.rows == len(read_lines(written.path))


def test_customers_file_keeps_profiles_and_follows_moves(world: World) -> None:
    """Old customers keep their profile, newcomers are added, and every customer's city is
    the one of their latest customer event in the web files."""
    before = customer_rows(world.before[FIRST_CUSTOMERS_FILE])
    after = customer_rows((world.folder / LAST_CUSTOMERS_FILE).read_bytes())
    assert len(before) == WORLD_CUSTOMERS and len(after) > len(before)
    for old, now in zip(before, after, strict=False):  # id, joined_at, last_name, visits
        assert (old[0], old[1], old[2], old[5]) == (now[0], now[1], now[2], now[5])
    customer_events = [
        event
        for path in [world.folder / gen.WEB_EVENTS_FILE, *(f.path for f in world.days)]
        for event in valid_events(read_lines(path))
        if event["type"] == "CUSTOMER"
    ]
    customer_events.sort(key=lambda event: parse_time(event["event_time"]))
    latest = {event["key"]: (event["adr_city"], event["adr_state"]) for event in customer_events}
    assert {row[0]: (row[3], row[4]) for row in after} == latest


def test_append_is_deterministic_and_listed_by_the_cli(world: World, tmp_path: Path) -> None:
    """The same manifest gives the same bytes; the CLI lists each file it wrote."""
    again = tmp_path / "again"
    gen.generate(again, WORLD_CUSTOMERS, seed=8, start_date=WORLD_START, days=WORLD_DAYS)
    result = invoke("generate", "--append", "--days", "2", "--out", str(again))
    assert result.exit_code == 0, result.output
    paths = [again / written.path.name for written in world.days]
    assert result.output.splitlines() == [
        f"{path}: {written.rows} records; load with `runner load web-events {path}`"
        for path, written in zip(paths, world.days, strict=True)
    ]
    assert folder_contents(again) == folder_contents(world.folder)


def test_one_day_twice_is_two_days_at_once(tmp_path: Path) -> None:
    gen.generate(tmp_path / "once", customers=25, seed=4, start_date=WORLD_START, days=5)
    shutil.copytree(tmp_path / "once", tmp_path / "twice")
    gen.append_days(tmp_path / "once", days=2)
    gen.append_days(tmp_path / "twice")
    gen.append_days(tmp_path / "twice")
    assert folder_contents(tmp_path / "once") == folder_contents(tmp_path / "twice")


def test_appended_keys_never_meet_earlier_keys(world: World) -> None:
    """Entities created on a day are new; updates refer to entities created so far."""
    known = creations(read_lines(world.folder / gen.WEB_EVENTS_FILE))
    for written in world.days:
        lines = read_lines(written.path)
        created = creations(lines)
        assert created and not created & known, written.path.name
        events = valid_events(list(dict.fromkeys(lines)))  # verbatim duplicates removed
        counts = Counter((e["type"], e["key"]) for e in events if e["verb"] != "UPDATE")
        assert max(counts.values()) == 1
        known |= created
        updates = {(e["type"], e["key"]) for e in events if e["verb"] == "UPDATE"}
        assert updates <= known


def test_appended_days_bring_new_customers_and_keep_the_old_ones(world: World) -> None:
    """Those who join on an appended day are web-only customers: their ids are the web shop's
    own, 12 hex digits (never all digits), unlike the numbers of the initial window's customers,
    which the web shop shares with the other systems."""
    known = {str(gen.FIRST_CUSTOMER_ID + n) for n in range(WORLD_CUSTOMERS)}
    for written in world.days:
        n = (file_day(written) - WORLD_START).days
        events = valid_events(read_lines(written.path))
        joined = [e["key"] for e in events if e["type"] == "CUSTOMER" and e["verb"] == "NEW"]
        joining = WORLD_CUSTOMERS * (n + 1) // WORLD_DAYS - WORLD_CUSTOMERS * n // WORLD_DAYS
        assert len(joined) == len(set(joined)) == joining, written.path.name
        assert all(re.fullmatch(r"[0-9a-f]{12}", cid) and not cid.isdigit() for cid in joined)
        assert not set(joined) & known
        visitors = {customer_id_of(e) for e in events if e["type"] == "SITE_VISIT"}
        assert visitors & known, "old customers keep visiting"
        known |= set(joined)
        assert {customer_id_of(e) for e in events} <= known


def test_appended_days_have_late_events_and_every_bad_kind(world: World) -> None:
    joined = {}  # to the millisecond, as event times are written
    for cid, when, *_ in customer_rows((world.folder / LAST_CUSTOMERS_FILE).read_bytes()):
        moment = datetime.fromisoformat(when).replace(tzinfo=None)
        joined[cid] = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    for written in world.days:
        lines = read_lines(written.path)
        assert {classify(line) for line in lines} == {None, *gen.BAD_KINDS}
        start = day_start(file_day(written))
        events = valid_events(lines)
        late = [e for e in events if parse_time(e["event_time"]) < start]
        assert late, written.path.name
        for event in events:
            when = parse_time(event["event_time"])
            assert joined[customer_id_of(event)] <= when < start + timedelta(days=1)
            assert when >= start - timedelta(days=gen.LATE_DAYS)


def test_append_without_manifest_says_what_to_do(tmp_path: Path) -> None:
    result = invoke("generate", "--append", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "runner generate" in result.output
    assert list(tmp_path.iterdir()) == []


def test_append_rejects_another_world_s_options(tmp_path: Path) -> None:
    gen.generate(tmp_path, customers=10, seed=2, start_date=WORLD_START, days=3)
    for option, value in (("--customers", "11"), ("--seed", "3"), ("--start-date", "2020-06-02")):
        result = invoke("generate", "--append", option, value, "--out", str(tmp_path))
        assert result.exit_code == 1, option
        assert result.output.startswith("Error: ") and option in result.output
    same = invoke(
        "generate", "--append", "--customers", "10", "--seed", "2", "--out", str(tmp_path)
    )
    assert same.exit_code == 0, same.output
    assert (tmp_path / "web_events_2020-06-04.jsonl").exists()


def test_generate_again_removes_the_appended_days(tmp_path: Path) -> None:
    gen.generate(tmp_path, customers=10, seed=2, start_date=WORLD_START, days=3)
    gen.append_days(tmp_path, days=2)
    gen.generate(tmp_path, customers=10, seed=5, start_date=WORLD_START, days=2)
    assert not list(tmp_path.glob("web_events_*-*.jsonl"))
    assert gen.read_manifest(tmp_path).days_appended == 0
    assert [path.name for path in tmp_path.glob("generate-customers-*")] == [
        "generate-customers-2020-06-02.csv"
    ]


def test_web_only_customer_ids_are_12_hex_digits_never_all_digits() -> None:
    ids = [gen.web_only_customer_id(7, date(2020, 6, 8), index) for index in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{12}", cid) and not cid.isdigit() for cid in ids)
    assert ids[0] != gen.web_only_customer_id(8, date(2020, 6, 8), 0)  # the seed's own
    assert ids[0] != gen.web_only_customer_id(7, date(2020, 6, 9), 0)  # the day's own


def test_appended_days_stream_through_the_customers() -> None:
    """Writing the first lines of a day of a huge world reads only the first customers."""
    manifest = gen.Manifest(10**9, 1, date(2017, 1, 1), 120, 0, ())
    joined = datetime(2017, 1, 1, tzinfo=timezone.utc)
    pulled = 0

    def customers() -> Iterator[gen.Customer]:
        nonlocal pulled
        for n in range(10**9):
            pulled += 1
            assert pulled <= 1000 + gen.BUFFER_SIZE, "customers are being materialised"
            yield gen.Customer(10001 + n, joined, "Kim", "Boston", "MA", 20.0)

    rng = random.Random(1)
    start = datetime(2017, 5, 1, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    events = gen._day_customer_events(rng, customers(), manifest, start, end)
    records = gen._web_records(rng, events, start, end, gen._day_serials(start.date()))
    assert len(list(itertools.islice(gen.arrival_order(rng, records), 1000))) == 1000


def test_appended_day_loads_with_the_base(tmp_path: Path) -> None:
    """Into a throwaway DuckDB warehouse (see conftest.py): every line of both files lands."""
    from runner.config import load_settings
    from runner.warehouse import connect

    out = tmp_path / "w"
    gen.generate(out, customers=15, seed=6, start_date=WORLD_START, days=4)
    [day] = gen.append_days(out)
    for path in (out / gen.WEB_EVENTS_FILE, day.path):
        result = invoke("load", "web-events", str(path))
        assert result.exit_code == 0, result.output
    with connect(load_settings()) as warehouse:
        _, rows = warehouse.query("select count(*) from raw.web_events")
    assert rows[0][0] == len(read_lines(out / gen.WEB_EVENTS_FILE)) + len(read_lines(day.path))
