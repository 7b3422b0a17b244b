"""Loading web event files into raw.web_events: lossless, idempotent, on both engines."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from python_tests.conftest import marketing_sqlite
from runner import loading
from runner.config import Settings, load_settings
from runner.errors import RunnerError
from runner.loading import (
    RAW_TABLES,
    UTF8_BOM,
    CsvRows,
    PgBinaryRows,
    RowFormat,
    json_error,
    load_file,
    read_json_records,
)
from runner.warehouse import connect, write_csv

ORDER = {
    "type": "ORDER",
    "verb": "NEW",
    "key": "o1",
    "event_time": "2017-01-06T12:46:46.384Z",
    "customer_id": "c1",
    "total_amount": "12.34 USD",
}


def landed(settings: Settings) -> list[tuple]:
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            f"select file_position, raw_text, parse_error from {warehouse.raw('web_events')} "
            "order by load_id, file_position"
        )
    return rows


def test_json_lines_land_line_by_line_with_original_text(settings: Settings, tmp_path: Path):
    lines = [
        json.dumps(ORDER),
        '  {"type": "SITE_VISIT",   "key": "p1"}  ',
        "",
        '{"type": "ORDER", broken',
        '"a string, not an object"',
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\r\n".join(lines) + "\r\n\r\n", encoding="utf-8")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    assert (result.rows_landed, result.rows_unparseable, result.skipped) == (4, 1, False)
    rows = landed(settings)
    # Blank lines are not records; positions are line numbers, text is byte-for-byte.
    assert [(r[0], r[1]) for r in rows] == [
        (1, lines[0]),
        (2, lines[1]),
        (4, lines[3]),
        (5, lines[4]),
    ]
    assert [r[2] is None for r in rows] == [True, True, False, True]


def test_json_array_lands_one_row_per_element(settings: Settings, tmp_path: Path):
    path = tmp_path / "events.json"
    path.write_text('[\n  {"a": 1},\n  {"b":\n    [2, 3]},\n  42\n]\n', encoding="utf-8")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    assert result.rows_landed == 3
    assert landed(settings) == [
        (1, '{"a": 1}', None),
        (2, '{"b":\n    [2, 3]}', None),
        (3, "42", None),
    ]


def test_loading_the_same_file_twice_adds_nothing(settings: Settings, tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(ORDER) + "\n", encoding="utf-8")
    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(path.read_bytes())
    with connect(settings) as warehouse:
        first = load_file(warehouse, "web_events", path)
        again = load_file(warehouse, "web_events", path)
        renamed = load_file(warehouse, "web_events", copy)
        _, loads = warehouse.query(f"select count(*) from {warehouse.raw('loads')}")
    assert not first.skipped
    assert again.skipped and renamed.skipped
    assert again.load_id == first.load_id
    assert loads == [(1,)]
    assert len(landed(settings)) == 1


def test_a_different_file_of_the_same_size_lands_with_its_own_digest(
    settings: Settings, tmp_path: Path
):
    first, second = tmp_path / "day1.jsonl", tmp_path / "day2.jsonl"
    first.write_text(json.dumps(ORDER) + "\n", encoding="utf-8")
    second.write_text(json.dumps({**ORDER, "key": "o2"}) + "\n", encoding="utf-8")
    assert first.stat().st_size == second.stat().st_size
    with connect(settings) as warehouse:
        results = [load_file(warehouse, "web_events", path) for path in (first, second, second)]
        _, loads = warehouse.query(
            f"select load_id, file_sha256 from {warehouse.raw('loads')} order by load_id"
        )
    assert [r.skipped for r in results] == [False, False, True]
    assert loads == [
        (results[0].load_id, hashlib.sha256(first.read_bytes()).hexdigest()),
        (results[1].load_id, hashlib.sha256(second.read_bytes()).hexdigest()),
    ]


def test_undecodable_and_unstorable_text_lands_with_a_reason(settings: Settings, tmp_path: Path):
    path = tmp_path / "dirty.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"type": "ORDER"}\n'  # a byte order mark before the first record
        b'{"name": "caf\xe9"}\n'  # Latin-1, not UTF-8
        b'{"name": "a\\u0000b"}\n'  # valid JSON that PostgreSQL cannot store
        b'{"name": "nul\x00byte"}\n'  # a raw NUL byte
        b'{"x": NaN}\n'
    )
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    assert (result.rows_landed, result.rows_unparseable) == (5, 4)
    rows = landed(settings)
    assert rows[0] == (1, '{"type": "ORDER"}', None)
    assert rows[1][1] == '{"name": "caf\\xe9"}' and "UTF-8" in rows[1][2]
    assert "\\u0000" in rows[2][2]
    assert rows[3][1] == '{"name": "nul\\x00byte"}' and "NUL" in rows[3][2]
    assert rows[4][2]


def test_a_broken_array_keeps_the_rest_as_one_unparseable_record(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text('[{"a": 1}, {"b": 2}, {"c": oops}, {"d": 4}]', encoding="utf-8")
    records = list(read_json_records(path))
    assert [(r.position, r.parse_error is None) for r in records] == [
        (1, True),
        (2, True),
        (3, False),
    ]
    assert records[2].text == '{"c": oops}, {"d": 4}]'


def test_an_unclosed_array_is_reported(tmp_path: Path):
    path = tmp_path / "unclosed.json"
    path.write_text('[{"a": 1},', encoding="utf-8")
    records = list(read_json_records(path))
    assert records[0].parse_error is None
    assert records[-1].parse_error == "the JSON array is not closed"


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (b'{"a": 1}', True),
        (b'{"a": 123456789012345678901234567890}', True),
        (b'{"a": NaN}', False),
        (b'{"a": "\\ud800"}', False),
        (b'{"a": "\\u0000"}', False),
        (b'{"a": "\\\\u0000"}', True),  # an escaped backslash, then the text u0000
        (b"{'a': 1}", False),
    ],
)
def test_json_validity_matches_what_both_warehouses_accept(text: bytes, valid: bool):
    assert (json_error(text) is None) is valid


def test_a_missing_file_is_a_clear_error(settings: Settings, tmp_path: Path):
    with connect(settings) as warehouse, pytest.raises(RunnerError, match="no such file"):
        load_file(warehouse, "web_events", tmp_path / "nope.jsonl")


def test_a_huge_record_lands_whole(settings: Settings, tmp_path: Path):
    event = {**ORDER, "note": "x" * 3_000_000}  # beyond DuckDB's default 2 MB line limit
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(event) + "\n" + json.dumps(ORDER) + "\n", encoding="utf-8")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    assert result.rows_landed == 2
    assert [len(text) for _, text, _ in landed(settings)] == [
        len(json.dumps(event)),
        len(json.dumps(ORDER)),
    ]


def test_marketing_loads_from_sqlite_like_from_csv(settings: Settings):
    from python_tests.conftest import SAMPLE_DIR
    from runner.loading import load_marketing

    with connect(settings) as warehouse:
        first = load_marketing(warehouse, SAMPLE_DIR / "marketing.sqlite")
        again = load_marketing(warehouse, SAMPLE_DIR / "marketing.sqlite")
        counts = {
            table: warehouse.query(f"select count(*) from {warehouse.raw(table)}")[1][0][0]
            for table in ("session_sources", "conversions", "session_costs")
        }
    csv_rows = {
        table: len((SAMPLE_DIR / "marketing" / f"{table}.csv").read_text().splitlines()) - 1
        for table in counts
    }
    assert counts == csv_rows  # the same records as the CSV folder, every one landed
    assert [r.rows_landed for r in first] == list(csv_rows.values())
    assert all(r.skipped for r in again)


def test_marketing_path_that_is_neither_is_refused(settings: Settings, tmp_path: Path):
    from runner.loading import load_marketing

    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    with connect(settings) as warehouse, pytest.raises(RunnerError, match="neither a SQLite"):
        load_marketing(warehouse, junk)
    (tmp_path / "folder").mkdir()
    with connect(settings) as warehouse, pytest.raises(RunnerError, match="missing"):
        load_marketing(warehouse, tmp_path / "folder")


def test_a_nul_in_a_sqlite_value_lands_flagged(settings: Settings, tmp_path: Path):
    from runner.loading import load_marketing

    session = ("s\x001", 1, "2023-01-01", "10:00:00", "Email", 0, 0, 0)
    path = marketing_sqlite(tmp_path / "nul.sqlite", {"session_sources": [session]})
    with connect(settings) as warehouse:
        load_marketing(warehouse, path)
        _, rows = warehouse.query(
            f"select session_id, parse_error from {settings.relation('raw', 'session_sources')}"
        )
    assert rows == [("s\\x001", "contains a NUL character")]


def examples(count: int) -> hypothesis.settings:
    """Hypothesis settings for this file's random tests: `count` examples, the same on
    every run, with no deadline (each example lands files)."""
    return hypothesis.settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


# --- the fast path for JSON Lines, blocks, the bulk formats ------------------------------

# Lines the fast path must treat exactly like the general one (_record per line).
TRICKY_LINES = [
    b'\xef\xbb\xbf{"bom": 1}',  # a byte order mark, only stripped from the first line
    b'{"crlf": 1}\r',
    b'{"cr_inside":\r 1,\t"tab": 2}',  # JSON whitespace: valid, kept as it is
    b"",
    b"  \t ",
    b"\x0b\x0c",  # blank to bytes.strip(), not JSON whitespace
    b"\r\r",
    b'{"latin1": "caf\xe9"}',
    b'{"nul": "a\x00b"}',
    b'{"escaped_nul": "a\\u0000b"}',
    b'{"not_nul": "a\\\\u0000b"}',
    b'{"quote_char": "\x01"}',  # QUOTE raw: refused by orjson, lands whole
    b"\x01\x01,\x01",
    b'{"x": NaN}',
    b'{"lone": "\\ud800"}',
    b'{"big": 123456789012345678901234567890}',
    b'"just a string"',
    b"[1, 2, 3]",
    b'{"unicode": "\xc3\xa9\xf0\x9f\x98\x80"}',
    b'{"long": "' + b"y" * 3000 + b'"}',
    b"{broken",
    b'{"last": "no newline"}',
]
FORMATS = [CsvRows, PgBinaryRows]


def rows_both_ways(path: Path, form: RowFormat) -> tuple[tuple[bytes, int, int], ...]:
    """(rows, row count, unparseable) by the fast path and by the general one."""
    fast = list(loading._json_lines_blocks(path, form))
    general = list(loading._record_blocks(loading._read_json_lines(path), form))
    return tuple(
        (
            b"".join(piece for block in blocks for piece in block.pieces),
            sum(block.rows for block in blocks),
            sum(block.unparseable for block in blocks),
        )
        for blocks in (fast, general)
    )


def small_blocks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(loading, "FIRST_BLOCK_BYTES", size)
    monkeypatch.setattr(loading, "BLOCK_BYTES", size)


def form_of(form_class: type[RowFormat]) -> RowFormat:
    shared = {"load_id": "L", "file_name": "F", "loaded_at": datetime(2024, 5, 6, 7, 8, 9, 10)}
    return form_class(RAW_TABLES["web_events"], shared)


@pytest.mark.parametrize("form_class", FORMATS)
@pytest.mark.parametrize("block_bytes", [1, 50, 4096, 8 << 20])
def test_the_fast_path_writes_the_rows_the_general_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form_class: type[RowFormat], block_bytes: int
):
    small_blocks(monkeypatch, block_bytes)  # lines across reads and blocks
    path = tmp_path / "tricky.jsonl"
    path.write_bytes(b"\n".join(TRICKY_LINES))
    fast, general = rows_both_ways(path, form_of(form_class))
    assert fast == general
    assert fast[1] == len([line for line in TRICKY_LINES if line.strip()])


@examples(300)
@given(
    lines=st.lists(st.sampled_from(TRICKY_LINES) | st.binary(max_size=30), max_size=12),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    block_bytes=st.sampled_from([1, 16, 1 << 20]),
    form_class=st.sampled_from(FORMATS),
)
def test_the_fast_path_agrees_on_random_lines(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    newline: bytes,
    block_bytes: int,
    form_class: type[RowFormat],
):
    path = tmp_path_factory.mktemp("random") / "random.jsonl"
    path.write_bytes(newline.join(lines))
    with pytest.MonkeyPatch.context() as monkeypatch:
        small_blocks(monkeypatch, block_bytes)
        fast, general = rows_both_ways(path, form_of(form_class))
    assert fast == general


@pytest.mark.parametrize(
    "refused",
    [[], [0], [4], [0, 1, 2, 3, 4], [1, 2], [0, 4]],
)
def test_refused_lines_are_found_wherever_they_are(refused: list[int]):
    lines = [b"{oops" if index in refused else b'{"ok": 1}' for index in range(5)]
    assert loading._refused_by_orjson(lines) == refused


# --- JSON Lines landed by the engine (DuckDB): the rows the general path lands ----------

# JSON that DuckDB's parser takes and json_error refuses (or very nearly), next to the same
# shapes that both take: each must land with json_error's verdict (MAYBE_REFUSED).
LAX_LINES = [
    b'{"a": NaN}',
    b'{"a":nan}',
    b'{"a": -Infinity}',
    b'{"a": [1, iNf]}',
    b"NaN",
    b'{"a": [1, 2 , ]}',
    b'{"a": 1 ,\t}',
    b'{"a": 1e400}',
    b'{"a": [-1.5E+400]}',
    b"1e400",
    b'{"a": 1e-400}',  # underflows to 0: valid
    b'{"a": 1.5e300, "b": 2e10}',  # valid
    b'{"a": ' + b"9" * 250 + b"e60}",  # overflows with a 2-digit exponent
    b'{"a": ' + b"9" * 400 + b"}",
    b'{"a": ' + b"1" * 200 + b"}",  # valid
    b"[" * 1100 + b"]" * 1100,  # deeper than orjson goes
    b"[" * 1000 + b"]" * 1000,  # valid
    b'{"a": "\\u0000"}',
    b'{"a": "x,]", "nan": ": nan", "b": "[inf"}',  # look-alikes in strings: valid
    b'{"name": "Nancy", "info": "Infinity scarf"}',  # valid
    b"   ",
    b"\t",
]
# Lines the engine's reader cannot take exactly: their files land by the general path.
REFUSED_BY_THE_READER = [b'{"crlf": 1}\r', b'{"nul": "a\x00b"}', b'{"latin1": "caf\xe9"}']
ENGINE_LINES = [
    line for line in TRICKY_LINES if not any(c in line for c in (b"\r", b"\x00", b"\xe9"))
] + LAX_LINES


def general_rows(path: Path) -> list[tuple[int, str, str | None]]:
    return [(r.position, r.text, r.parse_error) for r in loading._read_json_lines(path)]


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each load's JSON Lines went: "engine", or "refused" (then the general path)."""
    calls: list[str] = []
    engine = loading._land_lines_by_engine

    def spy(*args, **kwargs):
        try:
            result = engine(*args, **kwargs)
        except loading.LinesRefused:
            calls.append("refused")
            raise
        calls.append("engine")
        return result

    monkeypatch.setattr(loading, "_land_lines_by_engine", spy)
    return calls


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_the_engine_lands_the_rows_the_general_path_lands(
    settings: Settings, tmp_path: Path, engine_calls: list[str]
):
    path = tmp_path / "lax.jsonl"
    path.write_bytes(b"\n".join([*ENGINE_LINES, b"", b"{broken"]) + b"\n\n")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    expected = general_rows(path)
    assert engine_calls == ["engine"]
    assert landed(settings) == expected
    refused = sum(error is not None for *_, error in expected)
    assert (result.rows_landed, result.rows_unparseable) == (len(expected), refused)
    verdicts = {text: error is None for _, text, error in expected}
    assert not verdicts['{"a": NaN}'] and not verdicts["[" * 1100 + "]" * 1100]
    assert verdicts['{"name": "Nancy", "info": "Infinity scarf"}']


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
@pytest.mark.parametrize("line", REFUSED_BY_THE_READER, ids=["cr", "nul", "latin1"])
def test_a_file_the_engine_cannot_read_lands_by_the_general_path(
    settings: Settings, tmp_path: Path, engine_calls: list[str], line: bytes
):
    path = tmp_path / "refused.jsonl"
    path.write_bytes(b'{"a": 1}\n' + line + b'\n{"b": 2}\n')
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
        _, loads = warehouse.query(f"select count(*) from {warehouse.raw('loads')}")
        _, ordered = warehouse.query("select current_setting('preserve_insertion_order')")
    assert ordered == [(True,)]  # the engine's setting for its insert is undone, even so
    expected = general_rows(path)
    assert engine_calls == ["refused"]
    assert landed(settings) == expected
    refused = sum(error is not None for *_, error in expected)
    assert (result.rows_landed, result.rows_unparseable, loads) == (3, refused, [(1,)])


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_line_longer_than_the_engine_takes_lands_by_the_general_path(
    settings: Settings, tmp_path: Path, engine_calls: list[str], monkeypatch: pytest.MonkeyPatch
):
    from runner import warehouse as warehouse_module

    monkeypatch.setattr(warehouse_module, "LINE_MAX_BYTES", 4096)
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n{"long": "' + b"y" * 10_000 + b'"}\n')
    with connect(settings) as warehouse:
        load_file(warehouse, "web_events", path)
    assert engine_calls == ["refused"]
    assert landed(settings) == general_rows(path)


@examples(60)
@given(
    lines=st.lists(
        st.sampled_from(ENGINE_LINES) | st.text(max_size=20).map(str.encode), max_size=10
    ),
)
def test_the_engine_agrees_with_the_general_path_on_random_lines(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
):
    path = tmp_path_factory.mktemp("random") / "random.jsonl"
    path.write_bytes(b"\n".join([b'{"first": 1}', *lines]))  # a record: not refused whole
    with connect(load_settings(target="duckdb")) as warehouse:
        load_id = load_file(warehouse, "web_events", path).load_id  # (or the same file's)
        _, rows = warehouse.query(
            f"select file_position, raw_text, parse_error from {warehouse.raw('web_events')} "
            "where load_id = ? order by file_position",
            (load_id,),
        )
    assert rows == general_rows(path)


def test_a_file_in_many_blocks_lands_every_record_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    small_blocks(monkeypatch, 500)  # about 100 blocks, copied in turn
    lines = [json.dumps({**ORDER, "key": f"o{n}"}) for n in range(300)]
    lines[17] = "{broken"
    lines[18] = ""
    lines[250] = '{"cr_inside":\r 1}'
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
        _, shared = warehouse.query(
            "select distinct w.load_id, w.file_name, w.loaded_at = l.loaded_at "
            f"from {warehouse.raw('web_events')} w join {warehouse.raw('loads')} l "
            "on l.load_id = w.load_id"
        )
    assert (result.rows_landed, result.rows_unparseable) == (299, 1)
    expected = [(number, line) for number, line in enumerate(lines, 1) if line]
    assert [(r[0], r[1]) for r in landed(settings)] == expected
    assert shared == [(result.load_id, str(path), True)]


def test_a_failed_copy_lands_nothing_of_the_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    small_blocks(monkeypatch, 500)
    path = tmp_path / "events.jsonl"  # (CRLF: on DuckDB too, the blocks of the general path)
    path.write_bytes(b"".join(json.dumps(ORDER).encode() + b"\r\n" for _ in range(100)))
    with connect(settings) as warehouse:
        copy_csv, calls = type(warehouse).copy_csv, []

        def failing_third_copy(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("the disk is full")
            return copy_csv(self, *args, **kwargs)

        monkeypatch.setattr(type(warehouse), "copy_csv", failing_third_copy)
        with pytest.raises(RuntimeError, match="the disk is full"):
            load_file(warehouse, "web_events", path)
        _, counts = warehouse.query(
            f"select (select count(*) from {warehouse.raw('loads')}), "
            f"(select count(*) from {warehouse.raw('web_events')})"
        )
        assert counts == [(0, 0)]  # the two blocks copied before were rolled back too
        monkeypatch.setattr(type(warehouse), "copy_csv", copy_csv)
        again = load_file(warehouse, "web_events", path)
    assert (again.rows_landed, again.skipped) == (100, False)
    assert len(landed(settings)) == 100


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_failure_after_the_engine_landed_the_lines_lands_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(ORDER) + "\n" for _ in range(100)) + "{oops\n")

    def failing(*args: object) -> tuple[int, int]:
        raise RuntimeError("the disk is full")

    with connect(settings) as warehouse:
        monkeypatch.setattr(loading, "_recheck", failing)
        with pytest.raises(RuntimeError, match="the disk is full"):
            load_file(warehouse, "web_events", path)
        _, counts = warehouse.query(
            f"select (select count(*) from {warehouse.raw('loads')}), "
            f"(select count(*) from {warehouse.raw('web_events')})"
        )
        assert counts == [(0, 0)]  # the lines the engine had landed were rolled back
        monkeypatch.undo()
        again = load_file(warehouse, "web_events", path)
    assert (again.rows_landed, again.rows_unparseable, again.skipped) == (101, 1, False)


def test_bulk_csv_keeps_every_value_as_it_is(settings: Settings, tmp_path: Path):
    """write_csv and Warehouse.copy_csv (also used by attribution) agree on every value."""
    rows = [
        ("", None, 0),
        ("a,b", 'say "hi"', -7),
        ("\x01", "\x01\x01,\x01", 2**40),
        ("line\nbreak\r\nand\rreturn", " spaces ", None),
        ("tab\there", "caf\u00e9 \U0001f600", 1),
    ]
    path = tmp_path / "rows.csv"
    longest = write_csv(rows, path)
    with connect(settings) as warehouse:
        warehouse.execute("create table bulk_check (a varchar, b varchar, c bigint)")
        warehouse.copy_csv("bulk_check", ("a", "b", "c"), path, longest)
        _, back = warehouse.query("select a, b, c from bulk_check")
    assert sorted(back, key=repr) == sorted(rows, key=repr)


# --- files of the wrong kind, empty files -----------------------------------------------


def gzip_of(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def zip_of(data: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("events.jsonl", data)
    return buffer.getvalue()


def sqlite_file(path: Path) -> bytes:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("create table session_sources (session_id)")
    con.commit()
    con.close()
    return path.read_bytes()


EVENTS = (json.dumps(ORDER) + "\n").encode()
STORE_CSV = b"ID,Name,City\n1,Ann Lee,Boston\n"
# (raw table, file, what the refusal says)
WRONG_KINDS = [
    ("web_events", STORE_CSV, "looks like CSV of store customer extracts (first line 'ID,Name,"),
    ("web_events", b"a;b;c\n1;2;3\n", "looks like CSV (first line 'a;b;c')"),
    ("web_events", b"hello world\n", "looks like text (first line 'hello world')"),
    ("web_events", None, "looks like a SQLite database"),
    ("web_events", gzip_of(EVENTS), "looks like gzip-compressed data"),
    ("web_events", zip_of(EVENTS), "looks like a ZIP archive"),
    ("web_events", EVENTS.decode().encode("utf-16"), "looks like UTF-16 text"),
    ("web_events", b"\x00\x01\x02garbage\n", "looks like binary data"),
    ("web_events", b'{\n  "type": "ORDER",\n  "key": "o1"\n}\n', "holds no valid JSON object"),
    ("web_events", b"{oops\n{also broken\n", "holds no valid JSON object (record 1, '{oops'"),
    ("web_events", b"[1, 2, 3]", "holds no valid JSON object (record 1, '1': not an object)"),
    ("app_sessions", None, "looks like a SQLite database"),
    ("app_sessions", b'{"customer_id": 1,\n"x": 2}\n', "holds no valid JSON object"),
    ("app_purchases", gzip_of(b"customer_id,purchased_at,amount\n"), "gzip-compressed"),
    ("store_sales", gzip_of(b"CustomerID,Product\n"), "looks like gzip-compressed data"),
    ("crm_interactions", None, "looks like a SQLite database"),
    ("store_sales", STORE_CSV, "found 'ID,Name,City': the file looks like CSV of store customer"),
]
EMPTY_FILES = [b"", b"\n", b"  \r\n\t\n", UTF8_BOM, UTF8_BOM + b" \n\n"]


def refused_load(settings: Settings, table: str, path: Path, said: str) -> None:
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        with pytest.raises(RunnerError) as refusal:
            load_file(warehouse, table, path)
        _, counts = warehouse.query(
            f"select (select count(*) from {warehouse.raw('loads')}), "
            f"(select count(*) from {warehouse.raw(table)})"
        )
    assert said in refusal.value.message, refusal.value.message
    assert str(path) in refusal.value.message
    assert counts == [(0, 0)], f"{path}: refused, yet something landed"


def test_a_file_of_the_wrong_kind_is_refused_whole(settings: Settings, tmp_path: Path):
    for number, (table, data, said) in enumerate(WRONG_KINDS):
        path = tmp_path / f"file{number}"
        if data is None:
            sqlite_file(path)
        else:
            path.write_bytes(data)
        refused_load(settings, table, path, said)


def test_an_empty_file_is_refused_by_every_loader(settings: Settings, tmp_path: Path):
    for table in RAW_TABLES:
        for number, data in enumerate(EMPTY_FILES):
            path = tmp_path / f"{table}-{number}.txt"
            path.write_bytes(data)
            refused_load(settings, table, path, "is empty: nothing landed")


def test_a_file_without_records_lands_0_rows(settings: Settings, tmp_path: Path):
    """Not empty: a CSV header without rows, a JSON array without elements."""
    files = [("store_sales", b"CustomerID,Product,SalesAmount,ShopId,TransactionDate\r\n\r\n")]
    files += [("web_events", b" [ ]\n"), ("app_sessions", b"customer_id,session_started_at\n")]
    with connect(settings) as warehouse:
        for table, data in files:
            path = tmp_path / f"{table}.txt"
            path.write_bytes(data)
            result = load_file(warehouse, table, path)
            assert (result.rows_landed, result.skipped) == (0, False)
        _, [(loads,)] = warehouse.query(f"select count(*) from {warehouse.raw('loads')}")
    assert loads == len(files)


def test_a_json_file_with_one_good_object_lands_every_line(settings: Settings, tmp_path: Path):
    """Bad lines inside a JSON file land to be quarantined, before or after its object."""
    path = tmp_path / "mostly_bad.jsonl"
    path.write_bytes(b"{broken\nnot json at all\n" + EVENTS + b"42\n")
    with connect(settings) as warehouse:
        result = load_file(warehouse, "web_events", path)
    assert (result.rows_landed, result.rows_unparseable) == (4, 2)
