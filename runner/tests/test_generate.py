"""Tests for runner.generate: determinism, the event contract, realism and the deliberate noise.

``classify`` (runner.tests.reference) re-implements the staging validation rules independently
of the generator, so every generated line is checked against the contract, not the generator.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner import generate as gen
from runner.tests.reference import classify, parse_time

VALID_AMOUNT = re.compile(r"^\d+\.\d{2} USD$")
START = datetime(2017, 1, 1)  # naive UTC, as parse_time returns
END = START + timedelta(days=120)


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert b"\r" not in data
    return data.decode("utf-8").split("\n")[:-1]


def valid_events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if classify(line) is None]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[gen.GeneratedFile, list[str]]:
    [generated] = gen.generate(tmp_path_factory.mktemp("small"), customers=20, seed=7)
    return generated, read_lines(generated.path)


@pytest.fixture(scope="module")
def medium_run(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    [generated] = gen.generate(tmp_path_factory.mktemp("medium"), customers=400, seed=11)
    return read_lines(generated.path)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = gen.generate(tmp_path / "a", customers=50, seed=3)
    second = gen.generate(tmp_path / "b", customers=50, seed=3)
    assert [(f.source, f.rows) for f in first] == [(f.source, f.rows) for f in second]
    for one, other in zip(first, second, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()


def test_different_seed_gives_different_output(tmp_path: Path) -> None:
    [first] = gen.generate(tmp_path / "a", customers=50, seed=3)
    [second] = gen.generate(tmp_path / "b", customers=50, seed=4)
    assert first.path.read_bytes() != second.path.read_bytes()


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


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_every_bad_kind_appears_in_a_small_run(tmp_path: Path, seed: int) -> None:
    [generated] = gen.generate(tmp_path, customers=20, seed=seed)
    reasons = {classify(line) for line in read_lines(generated.path)}
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
    [generated] = gen.generate(tmp_path, customers=30, seed=5, start_date=date(2020, 6, 1), days=7)
    start = datetime(2020, 6, 1)
    times = [parse_time(e["event_time"]) for e in valid_events(read_lines(generated.path))]
    assert min(times) >= start
    assert max(times) < start + timedelta(days=7)


def test_bundled_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    """data/sample is documented as `runner generate --customers 200 --seed 42`."""
    bundled = Path(__file__).resolve().parents[2] / "data" / "sample"
    for written in gen.generate(tmp_path, customers=200, seed=42):
        assert written.path.read_bytes() == (bundled / written.path.name).read_bytes()
