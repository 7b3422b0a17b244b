"""Tests for runner.generate: determinism, the file contracts, realism and the deliberate noise.

``classify`` (runner.tests.reference) re-implements the staging validation rules of web events
independently of the generator, and ``classify_sale`` / ``classify_extract_row`` below do the
same for the store files, so every generated line is checked against the contract, not against
the generator.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from runner import generate as gen
from runner.tests.reference import classify, parse_time

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
    assert {f.source for f in first} == {"web-events", "store-customers", "store-sales"}
    assert [(f.source, f.rows) for f in first] == [(f.source, f.rows) for f in second]
    for one, other in zip(first, second, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()


def test_same_seed_gives_identical_bytes_in_another_process(tmp_path: Path) -> None:
    """Nothing depends on per-process state such as string hashing (PYTHONHASHSEED)."""
    here = gen.generate(tmp_path / "here", customers=20, seed=3)
    code = "import sys; from pathlib import Path; from runner.generate import generate; "
    code += "generate(Path(sys.argv[1]), customers=20, seed=3)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    project = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", code, str(tmp_path / "there")]
    subprocess.run(command, check=True, env=env, cwd=project)
    for written in here:
        assert written.path.read_bytes() == (tmp_path / "there" / written.path.name).read_bytes()


def test_different_seed_gives_different_output(tmp_path: Path) -> None:
    first = gen.generate(tmp_path / "a", customers=50, seed=3)
    second = gen.generate(tmp_path / "b", customers=50, seed=4)
    assert [f.path.name for f in first] == [f.path.name for f in second]
    for one, other in zip(first, second, strict=True):
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
# generating the store files must never change a web file.
WEB_SAMPLE_SHA256 = "e86f78eda088a6de5594ed886d6ba42f18a8a774cf7ac41fed5de777be7e7979"


def test_store_files_leave_the_web_file_unchanged(tmp_path: Path) -> None:
    written = web_file(gen.generate(tmp_path, customers=200, seed=42))
    assert hashlib.sha256(written.path.read_bytes()).hexdigest() == WEB_SAMPLE_SHA256


def test_bundled_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    """data/sample is documented as `runner generate --customers 200 --seed 42`: every file
    the generator makes is bundled, byte for byte, and nothing else is."""
    bundled = Path(__file__).resolve().parents[2] / "data" / "sample"
    written = gen.generate(tmp_path, customers=200, seed=42)
    assert sorted(p.name for p in bundled.iterdir()) == sorted(f.path.name for f in written)
    for generated in written:
        assert generated.path.read_bytes() == (bundled / generated.path.name).read_bytes()


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
    ]
    assert [f.path.name for f in small_files[1:]] == [
        "store_customers_2017-01-31.csv",
        "store_customers_2017-03-02.csv",
        "store_customers_2017-04-01.csv",
        "store_sales.csv",
    ]
    assert [f.extract_date for f in small_files] == [
        None,
        date(2017, 1, 31),
        date(2017, 3, 2),
        date(2017, 4, 1),
        None,
    ]
    for written in small_files[1:]:
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
