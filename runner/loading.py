"""Land raw files in the target's raw schema: losslessly, idempotently, in bulk.

Every record of a file lands as one row with its original text, the file it came from
and its position in it, valid or not: typing and validation happen in dbt staging,
which quarantines what it cannot use. A file whose SHA-256 was already landed in the
same raw table is skipped, so loading the same file twice adds nothing. Rows go in
through the engines' bulk paths (DuckDB's CSV reader, PostgreSQL COPY), all of a
file in one transaction together with its line in the load log (`loads`). Which raw
tables there are, their columns and the files they take come from the registry
(runner.sources); every raw relation comes from the connection's settings
(Warehouse.raw: `raw.web_events` on a production target).

Speed: on DuckDB, a JSON Lines file of web events (the big files) is landed by the
engine itself, which reads, numbers and judges the lines on every core; Python only
gives the few lines it flags their parse error (_land_lines_by_engine). Any other file,
or one that the engine's reader cannot take exactly, is read by Python and turned into
rows in blocks, each copied into the warehouse (on another thread: the engines work
without the GIL) while the next one is read. Rows are CSV for DuckDB, PostgreSQL's binary
COPY format for PostgreSQL (RowFormat). JSON Lines skip the per-record Python objects
there too: a line orjson accepts goes into its row as its bytes; any other line takes
the general path (_record).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
import secrets
import signal
import sqlite3
import struct
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import chain, repeat
from operator import length_hint
from pathlib import Path

import orjson

from runner.errors import RunnerError, WarehouseConnectionLost
from runner.sources import MARKETING, RAW_SOURCES, FileFormat, Loader, RawSource, sources_of
from runner.warehouse import QUOTE, DuckDBWarehouse, LinesRefused, Warehouse, csv_field

UTF8_BOM = b"\xef\xbb\xbf"
HASH_CHUNK = 1 << 20
BLOCK_BYTES = 8 << 20  # a file is read, turned into rows and copied in blocks of this size
FIRST_BLOCK_BYTES = 1 << 20  # but the first one is small: the warehouse starts sooner
COPIES_AHEAD = 8  # blocks read and waiting for the warehouse, at most (in memory)
GIL_SWITCH_SECONDS = 0.0005  # see _quick_thread_switches
JSON_ROW_OVERHEAD = 64  # bytes a JSON line's row adds to it, at most (position, quotes...)
QUOTE_BYTES = QUOTE.encode()


@dataclass(frozen=True)
class RawRecord:
    """One record of a file: its 1-based position, its text, why it does not parse, and
    (CSV files) its fields as they appear, None when the line could not be split."""

    position: int
    text: str
    parse_error: str | None
    fields: tuple[str | None, ...] | None = None


@dataclass(frozen=True)
class LoadResult:
    source_table: str
    file_name: str
    load_id: str
    rows_landed: int
    rows_unparseable: int
    skipped: bool  # the file was already landed: nothing was added
    relation: str  # schema.table of source_table on the target (raw.web_events)

    def summary(self) -> str:
        if self.skipped:
            return (
                f"{self.file_name}: already loaded into {self.relation} "
                f"(load {self.load_id}); nothing added."
            )
        return (
            f"{self.file_name}: {self.rows_landed} rows landed in {self.relation} "
            f"(load {self.load_id}), {self.rows_unparseable} of them unparseable "
            "(they go to quarantine in staging)."
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _decode(raw: bytes) -> tuple[str, str | None]:
    """Text of a record's bytes. Bytes that are not UTF-8, and NUL characters (which
    PostgreSQL text cannot hold), are kept as visible escapes and reported."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="backslashreplace")
        return text.replace("\x00", "\\x00"), f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    if "\x00" in text:
        return text.replace("\x00", "\\x00"), "contains a NUL character"
    return text, None


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def json_error(raw: bytes) -> str | None:
    """Why `raw` is not one JSON document that both warehouses accept; None when it is.

    orjson is strict RFC 8259 (no NaN, no lone surrogates), like PostgreSQL's jsonb;
    PostgreSQL additionally refuses the escape \\u0000 in strings.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    if b"\\u0000" in raw and _contains_nul(value):
        return "contains the escape \\u0000, which PostgreSQL cannot store"
    return None


def _record(position: int, raw: bytes) -> RawRecord:
    text, error = _decode(raw)
    if error is None:
        error = json_error(raw)
    return RawRecord(position, text, error)


def read_json_records(path: Path) -> Iterator[RawRecord]:
    """The records of a web event file: a JSON array (one record per element) or JSON
    Lines (one record per non-blank line; the position is the line number)."""
    if _is_json_array(path):
        yield from _read_json_array(path)
    else:
        yield from _read_json_lines(path)


def _is_json_array(path: Path) -> bool:
    return _first_bytes(path)[1].startswith(b"[")


def _read_json_lines(path: Path) -> Iterator[RawRecord]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM) :]
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield _record(number, line)


def _read_json_array(path: Path) -> Iterator[RawRecord]:
    """Elements of a top-level JSON array, each with its original text. If the array
    breaks off, whatever follows the last good element lands as one unparseable record,
    so nothing is lost."""
    return json_array_records(path.read_bytes())


def json_array_records(data: bytes) -> Iterator[RawRecord]:
    """The elements of the JSON array `data` (a file's bytes, or a request's body), each
    with its original text, as _read_json_array reads a file."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield _record(1, data)
        return
    decoder = json.JSONDecoder()  # finds where each element ends; orjson judges validity
    index = text.index("[") + 1
    position = 0
    while True:
        index = _skip_whitespace(text, index)
        if index < len(text) and text[index] == "]":
            rest = text[index + 1 :]
            if rest.strip():
                yield RawRecord(position + 1, rest.strip(), "unexpected text after the array")
            return
        try:
            _, end = decoder.raw_decode(text, index)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            remainder = text[index:].strip()
            if remainder:
                yield RawRecord(position + 1, remainder, f"broken JSON array: {exc}")
            else:
                yield RawRecord(position + 1, "", "the JSON array is not closed")
            return
        position += 1
        yield _record(position, text[index:end].encode("utf-8"))
        index = _skip_whitespace(text, end)
        if index < len(text) and text[index] == ",":
            index += 1
        elif index >= len(text) or text[index] != "]":
            remainder = text[index:].strip()
            yield RawRecord(position + 1, remainder, "expected ',' or ']' in the JSON array")
            return


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def read_csv_records(
    path: Path, header: tuple[str, ...], aliases: tuple[tuple[str, ...], ...] = ()
) -> Iterator[RawRecord]:
    """The data lines of a CSV file whose first non-blank line is `header` or one of its
    `aliases` (compared without case and surrounding spaces; fields are always in the
    order of `header`). Blank lines are not records; the position is the line number;
    each field keeps its text exactly (spaces included)."""
    accepted = [[name.strip().lower() for name in names] for names in (header, *aliases)]
    with path.open("rb") as handle:
        seen_header = False
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM) :]
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            text, error = _decode(line)
            if not seen_header:
                try:
                    found = next(csv.reader([text]), [])
                except csv.Error:  # e.g. a line break inside it, or a field over csv's limit
                    found = []
                if [name.strip().lower() for name in found] not in accepted:
                    raise RunnerError(
                        f"{path}: the first line should be the header {','.join(header)}, "
                        f"found {text[:200]!r}: the file looks like {_looks_like(line)}. "
                        "Is this the right file for this source? Nothing landed."
                    )
                seen_header = True
                continue
            yield _csv_record(number, text, error, len(header))
    if not seen_header:
        raise _empty(path)


def read_csv_or_json_lines(
    path: Path, keys: tuple[str, ...], json_keys: tuple[str, ...] = ()
) -> Iterator[RawRecord]:
    """A file that is either CSV with the header `keys` or JSON Lines with objects
    carrying those keys (told apart by its first non-blank character). From JSON each
    key's value lands as text (numbers as written, a missing key or null as null), and so
    do the `json_keys` (a source's json_fields, such as event_id), which CSV rows leave
    null."""
    if not _first_bytes(path)[1].startswith(b"{"):
        missing = (None,) * len(json_keys)
        for record in read_csv_records(path, keys):
            if record.fields is not None and missing:
                record = RawRecord(record.position, record.text, None, (*record.fields, *missing))
            yield record
        return
    for record in _read_json_lines(path):
        if record.parse_error is not None:
            yield record
            continue
        yield json_object_record(record.position, record.text, (*keys, *json_keys))


def json_object_record(position: int, text: str, keys: tuple[str, ...]) -> RawRecord:
    """The record of one JSON value's text, as JSON Lines app files land it: a JSON
    object's `keys` as text fields (_json_field), or why the text cannot be used (not JSON
    both warehouses take, not an object), with no fields. Also the HTTP intake's
    (runner.intake), so an event lands exactly as the same line of a file would."""
    error = json_error(text.encode("utf-8"))
    if error is not None:
        return RawRecord(position, text, error)
    value = orjson.loads(text)
    if not isinstance(value, dict):
        return RawRecord(position, text, "the JSON value is not an object")
    return RawRecord(position, text, None, tuple(_json_field(value.get(k)) for k in keys))


def _json_field(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 50_000  # a Parquet file is read in batches of this many rows


def is_parquet(path: Path) -> bool:
    """Whether the file is Parquet: by its content (it starts with the magic PAR1)."""
    with path.open("rb") as handle:
        return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def parquet_columns(
    path: Path, header: tuple[str, ...], aliases: tuple[tuple[str, ...], ...] = (), noun: str = ""
) -> list[str]:
    """The Parquet file's column names that hold the fields of `header`, in its order.

    The columns are matched by name as a CSV header is (read_csv_records): without case
    and surrounding spaces, `header` or one of its `aliases`, in any order (Parquet
    columns are named). Like a CSV header, a missing or an extra column refuses the file
    with a RunnerError that names them: nothing lands."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names: list[str] = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise RunnerError(
            f"{path} starts like a Parquet file but cannot be read as one ({exc}); is it "
            "complete (not cut off while copying)? Nothing landed."
        ) from None
    found: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        if key in found:
            raise RunnerError(
                f"{path}: the Parquet columns {found[key]!r} and {name!r} have the same name "
                "(case and spaces aside): which one holds the field? Nothing landed."
            )
        found[key] = name
    for names_ in (header, *aliases):
        wanted = [name.strip().lower() for name in names_]
        if set(wanted) == set(found):
            return [found[name] for name in wanted]
    wanted = [name.lower() for name in header]
    missing = [name for name in header if name.lower() not in found]
    extra = [name for name in names if name.strip().lower() not in wanted]
    problems = []
    if missing:
        problems.append(f"no column {', '.join(missing)}")
    if extra:
        problems.append(f"the unexpected column{'s' * (len(extra) > 1)} {', '.join(extra)}")
    what = f"{noun} in Parquet" if noun else "a Parquet file of this source"
    raise RunnerError(
        f"{path}: the Parquet file has {' and '.join(problems)} (its columns: "
        f"{', '.join(names) or 'none'}). {what[0].upper() + what[1:]} have exactly the "
        f"columns {','.join(header)} (in any order, any case), like the CSV header. "
        "Nothing landed."
    )


def _parquet_texts(column: object) -> list[str | None]:
    """A Parquet column's values as text, as a CSV file would hold them: strings as they
    are, integers, decimals and booleans (true/false) as written, floats as plain decimal
    digits that read back as the same value (10166.0, 0.00001: as a SQLite REAL lands),
    dates as YYYY-MM-DD, timestamps as ISO-8601 (YYYY-MM-DD HH:MM:SS.ffffff, with Z or the
    offset when the type has a time zone), binary as UTF-8, anything else (lists,
    structs) as JSON; null as null, like a CSV field that is empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column
    if pa.types.is_dictionary(array.type):  # type: ignore[attr-defined]
        array = array.dictionary_decode()  # type: ignore[attr-defined]
    kind = array.type  # type: ignore[attr-defined]
    values: list[object] = array.to_pylist()  # type: ignore[attr-defined]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return values  # type: ignore[return-value]
    if pa.types.is_floating(kind):
        return [None if value is None else _sqlite_text(value) for value in values]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [None if value is None else _sqlite_text(value) for value in values]
    if (
        pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
    ):
        texts: list[str | None] = pc.cast(array, pa.string()).to_pylist()
        return texts
    return [None if value is None else _any_text(value) for value in values]


def _any_text(value: object) -> str:
    """Text of a value of another Parquet type: a string (string views) as it is, bytes as
    UTF-8, anything else (lists, structs, maps, durations) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return _sqlite_text(value)
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _parquet_json_values(column: object, texts: list[str | None]) -> list[object]:
    """A column's values for a record's JSON text: strings, numbers, booleans and null as
    JSON has them, any other value as its text (`texts`)."""
    import pyarrow as pa

    kind = column.type  # type: ignore[attr-defined]
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    plain = (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )
    return column.to_pylist() if plain else list(texts)  # type: ignore[attr-defined]


def read_parquet_records(
    path: Path, header: tuple[str, ...], aliases: tuple[tuple[str, ...], ...] = ()
) -> Iterator[RawRecord]:
    """The records of a Parquet file whose columns are `header`'s (parquet_columns), read
    in batches: one per row, its position the row number (1 is the first row), its text
    the row as a JSON object with the file's column names, its fields the values as text
    (_parquet_texts), so they land in the columns a CSV file's fields land in and staging
    judges them alike. A field holding a NUL character (which PostgreSQL text cannot
    hold) is kept as a visible escape and the row reported, as for a SQLite table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = parquet_columns(path, header, aliases)
    position = 0
    try:
        with closing(pq.ParquetFile(path)) as parquet:
            names = parquet.schema_arrow.names
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                by_name = {name: batch.column(index) for index, name in enumerate(names)}
                texts = {name: _parquet_texts(by_name[name]) for name in names}
                json_values = [_parquet_json_values(by_name[name], texts[name]) for name in names]
                fields = zip(*(texts[name] for name in columns), strict=True)
                for row, values in zip(zip(*json_values, strict=True), fields, strict=True):
                    position += 1
                    text = orjson.dumps(dict(zip(names, row, strict=True))).decode()
                    if any(value is not None and "\x00" in value for value in values):
                        escaped = tuple(
                            value if value is None else value.replace("\x00", "\\x00")
                            for value in values
                        )
                        yield RawRecord(position, text, "contains a NUL character", escaped)
                        continue
                    yield RawRecord(position, text, None, values)
    except (pa.ArrowException, OSError) as exc:
        raise RunnerError(
            f"{path}: cannot read the Parquet file after row {position} ({exc}); is it "
            "complete? Nothing landed."
        ) from None


def read_csv_or_parquet(
    path: Path, header: tuple[str, ...], aliases: tuple[tuple[str, ...], ...] = ()
) -> Iterator[RawRecord]:
    """A file that is either CSV with the header `header` (or an alias) or Parquet with
    those columns, told apart by its content (Parquet starts with PAR1)."""
    if is_parquet(path):
        yield from read_parquet_records(path, header, aliases)
    else:
        yield from read_csv_records(path, header, aliases)


def _csv_record(position: int, text: str, error: str | None, width: int) -> RawRecord:
    if error is not None:
        return RawRecord(position, text, error)
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return RawRecord(position, text, f"not a valid CSV line: {exc}")
    if len(fields) != width:
        return RawRecord(position, text, f"expected {width} fields, found {len(fields)}")
    return RawRecord(position, text, None, tuple(fields))


@dataclass(frozen=True)
class RawTable:
    """A raw source's loader: how to read its files (`read`), for the source's entry in
    the registry. `blocks`, when given, turns a file straight into the rows that `read`'s
    records make, only faster (see _json_blocks). `kind` is what a file of it is ("json",
    "csv", "csv_or_json_lines", "csv_or_parquet"; see check_file_kind), `header` a CSV
    file's header, `field_columns` the columns its fields go to: all from the registry."""

    source: RawSource
    read: Callable[[Path], Iterator[RawRecord]]
    blocks: Callable[[Path, RowFormat], Iterator[Block]] | None = None

    @property
    def name(self) -> str:
        return self.source.table

    @property
    def field_columns(self) -> tuple[str, ...]:
        return self.source.field_columns

    @property
    def header(self) -> tuple[str, ...]:
        return self.source.header

    @property
    def kind(self) -> str:
        return _file_kind(self.source.formats)


# --- rows for the bulk paths ------------------------------------------------------------


class RowFormat:
    """How the rows of one load are written for the warehouse's bulk path (a file per
    Block). A row starts with its record's position and text; the values every row of
    the load shares (`shared`: load_id, file_name, constants such as extract_date,
    loaded_at) come last or, on DuckDB, not at all (copy_csv adds them)."""

    file_start = file_end = b""  # what a file of rows starts and ends with

    def __init__(self, table: RawTable, shared: dict[str, object]):
        self.width = len(table.field_columns)
        self.columns = ("file_position", "raw_text", "parse_error", *table.field_columns)
        self.shared = shared
        self.no_fields = (None,) * self.width

    def row(self, record: RawRecord) -> bytes:
        raise NotImplementedError

    def json_rows(self, first: int, texts: list[bytes]) -> bytes:
        """The rows of the records at positions first, first + 1, ... whose texts are
        JSON that orjson accepts, as its bytes (UTF-8, no control characters: no QUOTE),
        with no parse error and no fields: the same as row() of each, but made by C code
        (map, zip, join), without Python per row."""
        raise NotImplementedError

    def copy(self, warehouse: Warehouse, table: str, path: Path, longest: int) -> None:
        """Bulk-copy the file of rows `path` (longest row: `longest` bytes) into `table`."""
        raise NotImplementedError

    def values(self, record: RawRecord) -> tuple[str | int | None, ...]:
        fields = (record.fields or self.no_fields) if self.width else ()
        return (record.position, record.text, record.parse_error, *fields)


class CsvRows(RowFormat):
    """CSV as Warehouse.copy_csv reads it (see write_csv), without the shared values:
    copy_csv gives every row those (DuckDB)."""

    def row(self, record: RawRecord) -> bytes:
        return (",".join(map(csv_field, self.values(record))) + "\n").encode()

    def json_rows(self, first: int, texts: list[bytes]) -> bytes:
        nulls = b"," * (1 + self.width)  # the parse error and the fields
        template = b"%d," + QUOTE_BYTES + b"%b" + QUOTE_BYTES + nulls + b"\n"
        positions = range(first, first + len(texts))
        return b"".join(map(template.__mod__, zip(positions, texts, strict=True)))

    def copy(self, warehouse: Warehouse, table: str, path: Path, longest: int) -> None:
        warehouse.copy_csv(table, self.columns, path, longest, self.shared)


PG_EPOCH = datetime(2000, 1, 1)
PG_NULL = b"\xff\xff\xff\xff"
PG_ROW_START = struct.Struct(">hiqi")  # field count; position (8 bytes); text length


def _pg_binary_field(value: object) -> bytes:
    """One field in PostgreSQL's binary COPY format, for the raw tables' column types:
    str for varchar, int for bigint, datetime for timestamp, date for date, None: NULL."""
    if value is None:
        return PG_NULL
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int):
        data = value.to_bytes(8, "big", signed=True)
    elif isinstance(value, datetime):
        data = ((value - PG_EPOCH) // timedelta(microseconds=1)).to_bytes(8, "big", signed=True)
    elif isinstance(value, date):
        data = (value - PG_EPOCH.date()).days.to_bytes(4, "big", signed=True)
    else:
        raise TypeError(f"no binary COPY format for {value!r}")
    return len(data).to_bytes(4, "big") + data


class PgBinaryRows(RowFormat):
    """PostgreSQL's binary COPY format, with the shared values in every row (COPY has no
    other way): nothing to quote or parse, so the server copies it much faster than CSV."""

    file_start = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
    file_end = b"\xff\xff"

    def __init__(self, table: RawTable, shared: dict[str, object]):
        super().__init__(table, shared)
        self.columns = (*self.columns, *shared)
        self._count = len(self.columns).to_bytes(2, "big")
        self._shared = b"".join(map(_pg_binary_field, shared.values()))

    def row(self, record: RawRecord) -> bytes:
        fields = map(_pg_binary_field, self.values(record))
        return b"".join((self._count, *fields, self._shared))

    def json_rows(self, first: int, texts: list[bytes]) -> bytes:
        starts = map(
            PG_ROW_START.pack,
            repeat(len(self.columns)),
            repeat(8),
            range(first, first + len(texts)),
            map(len, texts),
        )
        end = PG_NULL * (1 + self.width) + self._shared  # NULL parse error and fields
        return b"".join(chain.from_iterable(zip(starts, texts, repeat(end), strict=False)))

    def copy(self, warehouse: Warehouse, table: str, path: Path, longest: int) -> None:
        warehouse.copy_csv(table, self.columns, path, longest, binary=True)


@dataclass
class Block:
    """Consecutive rows of a file, as the load's RowFormat writes them (in pieces of one
    or more rows); how many, how many unparseable, and a bound on the longest in bytes."""

    pieces: list[bytes] = field(default_factory=list)
    rows: int = 0
    unparseable: int = 0
    longest: int = 0

    def add(self, row: bytes, unparseable: bool) -> None:
        self.pieces.append(row)
        self.rows += 1
        self.unparseable += unparseable
        self.longest = max(self.longest, len(row))


def _record_blocks(records: Iterable[RawRecord], form: RowFormat) -> Iterator[Block]:
    """The rows of `records`, in blocks of about BLOCK_BYTES."""
    block, size = Block(), 0
    for record in records:
        row = form.row(record)
        block.add(row, record.parse_error is not None)
        size += len(row)
        if size >= BLOCK_BYTES:
            yield block
            block, size = Block(), 0
    if block.rows:
        yield block


def _json_blocks(path: Path, form: RowFormat) -> Iterator[Block]:
    """The rows of read_json_records(path), JSON Lines by _json_lines_blocks."""
    if _is_json_array(path):
        return _record_blocks(_read_json_array(path), form)
    return _json_lines_blocks(path, form)


def _json_lines_blocks(path: Path, form: RowFormat) -> Iterator[Block]:
    """The same rows as _record_blocks(_read_json_lines(path), form), faster. A line
    orjson accepts is valid UTF-8 without control characters (so without NUL or QUOTE):
    unless it holds the escape \\u0000 (see json_error), its record is its bytes with no
    parse error, and runs of such lines go to form.json_rows. Every other line, blank or
    not, goes through _record, as in _read_json_lines."""
    last = 0  # the number of the line before the batch
    for lines, parts in _line_batches(path):
        anywhere = functools.partial(_anywhere, parts)
        if last == 0 and lines[0].startswith(UTF8_BOM):
            lines[0] = lines[0][len(UTF8_BOM) :]
        if anywhere(b"\r"):
            lines = [line.rstrip(b"\r") for line in lines]  # as _read_json_lines' rstrip
        if anywhere(QUOTE_BYTES):  # only in lines orjson refuses; rare: all the long way
            others = list(range(len(lines)))
        else:
            others = _refused_by_orjson(lines)
            if anywhere(b"\\") and anywhere(b"\\u0000"):  # (no backslash: a quicker no)
                nul = [index for index, line in enumerate(lines) if b"\\u0000" in line]
                others = sorted({*others, *nul})
        block, start = Block(), 0
        for index in [*others, len(lines)]:
            if index > start:  # lines start..index-1 are JSON orjson accepts
                block.pieces.append(form.json_rows(last + 1 + start, lines[start:index]))
                block.rows += index - start
            if index < len(lines) and lines[index].strip():  # a blank line is no record
                record = _record(last + 1 + index, lines[index])
                block.add(form.row(record), record.parse_error is not None)
            start = index + 1
        block.longest = max(block.longest, JSON_ROW_OVERHEAD + max(map(len, lines)))
        last += len(lines)
        if block.rows:
            yield block


def _anywhere(parts: tuple[bytes, ...], sought: bytes) -> bool:
    return any(sought in part for part in parts)


def _refused_by_orjson(lines: list[bytes]) -> list[int]:
    """The indexes of the lines orjson.loads refuses, in order. The lines are parsed by
    map() in C; after a refusal, how far it got is what is left of the list iterator."""
    refused: list[int] = []
    remaining = iter(lines)
    while True:
        try:
            deque(map(orjson.loads, remaining), maxlen=0)
        except orjson.JSONDecodeError:
            refused.append(len(lines) - length_hint(remaining) - 1)
        else:
            return refused


def _line_batches(path: Path) -> Iterator[tuple[list[bytes], tuple[bytes, ...]]]:
    """The lines of a file, each without its \\n, in batches of about BLOCK_BYTES (the
    first FIRST_BLOCK_BYTES): the lines iterating the file in binary gives. With each
    batch, `parts`: bytes holding all of its lines (and maybe the start of the next
    ones), to look for a character in."""
    with path.open("rb") as handle:
        pending: list[bytes] = []  # the start of the next line
        size = FIRST_BLOCK_BYTES
        while data := handle.read(size):
            size = BLOCK_BYTES
            lines = data.split(b"\n")
            if len(lines) == 1:  # no line ends in this read
                pending.append(data)
                continue
            lines[0] = b"".join([*pending, lines[0]])
            pending = [lines.pop()]
            yield lines, (lines[0], data)
        rest = b"".join(pending)
        if rest:
            yield [rest], (rest,)


# --- landing ----------------------------------------------------------------------------


def land_records(
    warehouse: Warehouse,
    table: RawTable,
    path: Path,
    records: Iterable[RawRecord] | None,
    sha256: str | Future[str],
    constants: dict[str, object] | None = None,
    *,
    file_name: str | None = None,
    file_bytes: int | None = None,
) -> LoadResult:
    """Write `records` of file `path` to the raw table and log the load, atomically.
    `constants` are columns with one value for the whole file (e.g. extract_date).
    `records` None: the file's records, as the table reads them. `sha256`: the file's
    digest, or its future (a thread hashing the file while it lands). `file_name` and
    `file_bytes`, for records that come from no file of their own (the HTTP intake's
    batches, runner.intake): what the load log says in place of the path and its size."""
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    load_id = f"{loaded_at:%Y%m%dT%H%M%S%f}-{secrets.token_hex(6)}"
    file_name = str(path) if file_name is None else file_name
    shared = {
        "load_id": load_id,
        "file_name": file_name,
        **(constants or {}),
        "loaded_at": loaded_at,
    }
    relation = warehouse.raw(table.name)

    def logged(rows: int, unparseable: int) -> LoadResult:
        size = path.stat().st_size if file_bytes is None else file_bytes
        _log_load(
            warehouse, load_id, table.name, file_name, sha256, size, rows, unparseable, loaded_at
        )
        return LoadResult(table.name, file_name, load_id, rows, unparseable, False, relation)

    if warehouse.kind == "spark":  # no transactions: the rows in one Spark job, then the log
        source = table.read(path) if records is None else records
        return logged(*_land_arrow(warehouse, table, relation, source, shared))
    if records is None and _engine_reads_lines(warehouse, table, path):
        try:
            with warehouse.transaction(), _interrupts_between_blocks():
                return logged(*_land_lines_by_engine(warehouse, relation, path, shared))
        except LinesRefused:
            pass  # rolled back: the file takes the path that reads it in Python, below
    with warehouse.transaction(), _interrupts_between_blocks() as checkpoint:
        return logged(*_copy_blocks(warehouse, table, relation, path, records, shared, checkpoint))


# --- JSON Lines on DuckDB: the engine does the per-line work -----------------------------
# DuckDB's reader splits, numbers and lands the lines (DuckDBWarehouse.copy_lines), and
# its JSON parser judges them. That parser is laxer than json_error: it also takes NaN and
# Infinity (any case), trailing commas, numbers too big for a double and any nesting depth;
# PostgreSQL takes none of those, nor the escape \u0000. So a line is flagged (RECHECK)
# when DuckDB refuses it, or when it might hold one of those: a NaN or Infinity or a
# 3-digit exponent after `:`, `,` or `[` (or first), a comma before `]` or `}`, \u0000, a
# run of 209 digits (with an exponent under 100, the least that can overflow), more than
# 1024 brackets. Only flagged lines come back to Python (_recheck), few in a real file:
# json_error gives them the same parse error as on every other path, and blank ones go.
RECHECK = "\x01"  # a flagged line's parse_error until _recheck: never a real message
_SPECIAL = r"(-?[nNiI][aAnN]|-?[0-9.]+[eE][-+]?[0-9]{3})"  # NaN, Inf..., 1e308
MAYBE_REFUSED = " or ".join(
    [
        "not json_valid(line)",
        *(
            f"regexp_matches(line, '{start}\\s*{special}')"  # a literal (or ^) first: fast
            for start, special in (
                ("^", _SPECIAL),
                (":", _SPECIAL),
                (",", _SPECIAL[:-1] + r"|[\]}])"),
                (r"\[", _SPECIAL),
            )
        ),
        "contains(line, '\\u0000')",
        "(length(line) >= 209 and regexp_matches(line, '[0-9]{209}'))",
        "(length(line) > 2048 and "
        "length(line) - length(replace(replace(line, '[', ''), '{', '')) > 1024)",
    ]
)


def _engine_reads_lines(warehouse: Warehouse, table: RawTable, path: Path) -> bool:
    """Whether the engine lands this file (_land_lines_by_engine): JSON Lines on DuckDB."""
    return warehouse.kind == "duckdb" and table.kind == "json" and not _is_json_array(path)


def _land_lines_by_engine(
    warehouse: Warehouse, relation: str, path: Path, shared: dict[str, object]
) -> tuple[int, int]:
    """The records of a JSON Lines file, landed by the engine (see MAYBE_REFUSED), as the
    general path lands them (_record_blocks(_read_json_lines(path), ...)): the same rows.
    Returns the rows and unparseable rows; LinesRefused when the engine cannot read the
    file exactly (the caller rolls back and takes the general path)."""
    if not isinstance(warehouse, DuckDBWarehouse):
        raise TypeError(f"the engine lands lines on DuckDB, not {warehouse.kind}")
    if _holds(path, b"\r", b"\x00"):  # which the reader miscounts, or may drop, silently
        raise LinesRefused("a carriage return or a NUL")
    columns = ("file_position", "raw_text", "parse_error")
    rows = warehouse.copy_lines(relation, path, columns, (MAYBE_REFUSED, RECHECK), shared)
    blank, unparseable = _recheck(warehouse, relation, str(shared["load_id"]))
    return rows - blank, unparseable


def _holds(path: Path, *sought: bytes) -> bool:
    """Whether the file holds any of these bytes (one byte each)."""
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            if any(byte in chunk for byte in sought):
                return True
    return False


def _recheck(warehouse: Warehouse, relation: str, load_id: str) -> tuple[int, int]:
    """Give the load's flagged rows their parse error (json_error: None for those it
    accepts), and drop the blank ones (a line of whitespace, like an empty one, is no
    record). Returns how many were blank, and how many are unparseable."""
    _, flagged = warehouse.query(
        f"select file_position, raw_text from {relation} where load_id = ? and parse_error = ?",
        (load_id, RECHECK),
    )
    blank: list[int] = []
    judged: list[tuple[int, str | None]] = []
    for position, text in flagged:
        raw = text.encode()
        if raw.strip():
            judged.append((position, json_error(raw)))
        else:
            blank.append(position)
    if blank:
        warehouse.execute(
            f"delete from {relation} where load_id = ? and file_position in "
            "(select unnest(?::bigint[]))",
            (load_id, blank),
        )
    if judged:
        positions, errors = zip(*judged, strict=True)
        warehouse.execute(
            f"update {relation} set parse_error = judged.error from (select "
            "unnest(?::bigint[]) as file_position, unnest(?::varchar[]) as error) as judged "
            f"where {relation}.load_id = ? and {relation}.file_position = judged.file_position",
            (list(positions), list(errors), load_id),
        )
    return len(blank), sum(error is not None for _, error in judged)


def _copy_blocks(
    warehouse: Warehouse,
    table: RawTable,
    relation: str,
    path: Path,
    records: Iterable[RawRecord] | None,
    shared: dict[str, object],
    checkpoint: Callable[[], None],
) -> tuple[int, int]:
    """DuckDB and PostgreSQL: the records in blocks, each bulk-copied (CSV files, or
    PostgreSQL's binary COPY) inside the caller's transaction, with Ctrl-C taken at
    `checkpoint()` between blocks. Returns the rows and unparseable rows."""
    form = (PgBinaryRows if warehouse.kind == "postgres" else CsvRows)(table, shared)
    if records is not None:
        blocks = _record_blocks(records, form)
    elif table.blocks is not None:
        blocks = table.blocks(path, form)
    else:
        blocks = _record_blocks(table.read(path), form)
    rows = unparseable = 0
    with tempfile.TemporaryDirectory(prefix="runner-load-") as tmp:
        # Blocks are copied in order on the copier's thread while the next ones are read;
        # at most COPIES_AHEAD wait their turn.
        copies: deque[Future[None]] = deque()
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner-copy") as copier,
            _quick_thread_switches(),
        ):
            try:
                for number, block in enumerate(blocks):
                    checkpoint()
                    rows += block.rows
                    unparseable += block.unparseable
                    file = Path(tmp) / f"{table.name}-{number}"
                    copies.append(copier.submit(_copy, form, warehouse, relation, block, file))
                    while len(copies) > COPIES_AHEAD or (copies and copies[0].done()):
                        copies.popleft().result()  # raises what the copy raised
                while copies:
                    copies.popleft().result()
            except BaseException:
                for copy in copies:
                    copy.cancel()  # the transaction rolls back: copy no more
                raise
    return rows, unparseable


def _log_load(
    warehouse: Warehouse,
    load_id: str,
    source_table: str,
    file_name: str,
    sha256: str | Future[str],
    file_bytes: int,
    rows: int,
    unparseable: int,
    loaded_at: datetime,
) -> None:
    """The load's line in raw.loads."""
    warehouse.execute(
        f"insert into {warehouse.raw('loads')} (load_id, source_table, file_name, "
        "file_sha256, file_bytes, rows_landed, rows_unparseable, loaded_at) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            load_id,
            source_table,
            file_name,
            sha256 if isinstance(sha256, str) else sha256.result(),
            file_bytes,
            rows,
            unparseable,
            loaded_at,
        ),
    )


# Rows per Arrow batch of a load on Spark.
ARROW_BATCH_ROWS = 100_000


def _land_arrow(
    warehouse: Warehouse,
    table: RawTable,
    relation: str,
    records: Iterable[RawRecord],
    shared: dict[str, object],
) -> tuple[int, int]:
    """Spark: the records as Arrow batches of ARROW_BATCH_ROWS rows (the same values the
    other engines' bulk paths copy: position, text, parse error, fields, then the values
    every row shares), appended in one Spark job. Returns the rows and unparseable rows."""
    import pyarrow as pa

    from runner.warehouse import SparkWarehouse

    if not isinstance(warehouse, SparkWarehouse):
        raise TypeError(f"Arrow batches land on Spark, not {warehouse.kind}")
    names = ("file_position", "raw_text", "parse_error", *table.field_columns)
    types = (pa.int64(), *(pa.string() for _ in names[1:]))
    shared_types = {
        name: pa.date32() if isinstance(value, date) and not isinstance(value, datetime)
        else pa.timestamp("us") if isinstance(value, datetime) else pa.string()
        for name, value in shared.items()
    }  # fmt: skip
    width = len(table.field_columns)
    no_fields = (None,) * width
    batches, rows, unparseable = [], 0, 0
    pending: list[tuple[object, ...]] = []

    def flush() -> None:
        columns = list(zip(*pending, strict=True)) if pending else [() for _ in names]
        arrays = [pa.array(column, type=kind) for column, kind in zip(columns, types, strict=True)]
        for name, value in shared.items():
            arrays.append(pa.array([value] * len(pending), type=shared_types[name]))
        batches.append(pa.table(arrays, names=[*names, *shared]))
        pending.clear()

    for record in records:
        fields = (record.fields or no_fields) if width else ()
        pending.append((record.position, record.text, record.parse_error, *fields))
        rows += 1
        unparseable += record.parse_error is not None
        if len(pending) >= ARROW_BATCH_ROWS:
            flush()
    if pending:
        flush()
    warehouse.append_arrow(relation, batches)
    return rows, unparseable


@contextmanager
def _interrupts_between_blocks() -> Iterator[Callable[[], None]]:
    """Ctrl-C while a file lands takes effect between blocks (at `checkpoint()`) or at the
    end of the block, before the commit: never in the middle of starting the copier's
    thread or of a warehouse call, which would leave the copier using the connection while
    the transaction rolls back (DuckDB refuses that: "connection is busy"). The landing
    transaction then rolls back whole. Only the main thread receives signals: elsewhere
    this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def checkpoint() -> None:
        if received:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    previous = previous if previous is not None else signal.default_int_handler
    try:
        yield checkpoint
    finally:
        signal.signal(signal.SIGINT, previous)
    checkpoint()  # one that came after the last checkpoint: still before the commit


def _copy(form: RowFormat, warehouse: Warehouse, table: str, block: Block, path: Path) -> None:
    with path.open("wb") as handle:  # a few big writes, each without the GIL
        handle.write(form.file_start)
        handle.writelines(block.pieces)
        handle.write(form.file_end)
    form.copy(warehouse, table, path, block.longest)
    path.unlink()


@contextmanager
def _quick_thread_switches() -> Iterator[None]:
    """Let a thread waiting for the GIL have it after GIL_SWITCH_SECONDS, not Python's
    default 5 ms. The copier's thread needs the GIL only for moments between long waits
    for the warehouse (which works without it), but after each wait it must get it from
    the reading thread: with the default, the warehouse would sit idle meanwhile."""
    default = sys.getswitchinterval()
    sys.setswitchinterval(min(default, GIL_SWITCH_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(default)


def _file_kind(formats: tuple[FileFormat, ...]) -> str:
    """What one file of a source with these formats is, for check_file_kind: "json"
    (a JSON array or JSON Lines), "csv_or_json_lines", "csv_or_parquet", or "csv" (a
    marketing table's CSV file; its SQLite tables are read by read_sqlite_table)."""
    accepted = set(formats)
    if FileFormat.CSV not in accepted:
        return "json"
    if FileFormat.JSON_LINES in accepted:
        return "csv_or_json_lines"
    if FileFormat.PARQUET in accepted:
        return "csv_or_parquet"
    return "csv"


def _raw_table(source: RawSource) -> RawTable:
    """The loader of a raw source, by the file formats it accepts."""
    kind = _file_kind(source.formats)
    if kind == "json":
        return RawTable(source, read_json_records, blocks=_json_blocks)
    if kind == "csv_or_json_lines":
        json_keys = tuple(column.name for column in source.json_fields)
        return RawTable(
            source,
            functools.partial(read_csv_or_json_lines, keys=source.header, json_keys=json_keys),
        )
    if kind == "csv_or_parquet":
        return RawTable(
            source,
            functools.partial(
                read_csv_or_parquet, header=source.header, aliases=source.header_aliases
            ),
        )
    return RawTable(
        source,
        functools.partial(read_csv_records, header=source.header, aliases=source.header_aliases),
    )


# The marketing system's tables, with the columns `runner load marketing` reads from each
# (a SQLite table's columns, or a CSV file's header).
MARKETING_TABLES = {source.table: source.header for source in sources_of(MARKETING)}
SQLITE_MAGIC = b"SQLite format 3\x00"

RAW_TABLES = {source.table: _raw_table(source) for source in RAW_SOURCES}


# --- files of the wrong kind -----------------------------------------------------------
# A file is refused whole, before anything lands, when it is empty or plainly not what
# its command takes (what it looks like is said, and which command fits). Bad records
# inside a file of the right kind still land, to be quarantined by staging.

SOURCE_NAMES = {  # raw table: (what its records are, the command that loads them)
    source.table: (source.noun, source.command.invocation) for source in RAW_SOURCES
}
# The first bytes of file formats that are never text records.
MAGIC_NUMBERS = (
    (SQLITE_MAGIC, "a SQLite database"),
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (unpack it, or export CSV, first)"),
    (b"BZh", "bzip2-compressed data (decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed data (decompress it first)"),
    (b"(\xb5/\xfd", "zstd-compressed data (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (unpack it first)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (export CSV first)"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF-", "a PDF document"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)
WHITESPACE = b" \t\r\n\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank


def _first_bytes(path: Path) -> tuple[bytes, bytes]:
    """The file's first bytes, and its first bytes after a UTF-8 BOM and any
    whitespace (b"" when the file holds nothing else)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
        rest = head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head
        while rest and not rest.lstrip(WHITESPACE):  # whitespace so far: read on
            rest = handle.read(HASH_CHUNK)
        start = rest.lstrip(WHITESPACE)
        if start and len(start) < 4096:
            start += handle.read(4096 - len(start))
    return head, start


def _looks_like(start: bytes) -> str:
    """What a file starting with `start` (its first non-blank bytes) looks like."""
    line = start.split(b"\n", 1)[0].rstrip(b"\r")
    if any(byte < 32 and byte != 9 for byte in line[:200]):  # control characters, NUL
        return f"binary data (first bytes {start[:40]!r})"
    text = line[:200].decode("utf-8", errors="replace")
    quoted = repr(text[:80] + ("..." if len(text) > 80 else ""))
    if text.lstrip().startswith(("{", "[")):
        return f"JSON (first line {quoted})"
    try:
        names = [name.strip().lower() for name in next(csv.reader([text]), [])]
    except csv.Error:
        names = []
    for table in RAW_TABLES.values():
        if table.header and names == [name.lower() for name in table.header]:
            noun, command = SOURCE_NAMES[table.name]
            return f"CSV of {noun} (first line {quoted}: load it with `{command}`)"
    if len(names) > 1 or ";" in text or "\t" in text:
        return f"CSV (first line {quoted})"
    return f"text (first line {quoted})"


def _empty(path: Path) -> RunnerError:
    return RunnerError(f"{path} is empty: nothing landed.")


def check_file_kind(path: Path, source_table: str) -> None:
    """Refuse, with a RunnerError that says what the file looks like, a file that
    the raw table `source_table` cannot take: an empty one (nothing but whitespace), a binary
    format (MAGIC_NUMBERS), and for JSON sources a file that does not start as JSON
    Lines or a JSON array of objects, or holds no valid JSON object at all (a CSV file,
    one JSON document spread over lines). A CSV file's header is checked as it is read
    (read_csv_records); a header without rows is a file with no records: it lands 0 rows."""
    table = RAW_TABLES[source_table]
    noun, _ = SOURCE_NAMES[source_table]
    head, start = _first_bytes(path)
    if not start:
        raise _empty(path)
    expected = {
        "json": f"not JSON Lines or a JSON array: {noun} are JSON",
        "csv": f"not CSV: {noun} are CSV with the header {','.join(table.header)}",
        "csv_or_json_lines": (
            f"not CSV or JSON Lines: {noun} are CSV with the header "
            f"{','.join(table.header)}, or JSON Lines"
        ),
        "csv_or_parquet": (
            f"not CSV or Parquet: {noun} are CSV with the header {','.join(table.header)}, "
            "or Parquet with those columns"
        ),
    }[table.kind]
    if table.kind == "csv_or_parquet":
        if head.startswith(PARQUET_MAGIC):
            parquet_columns(path, table.header, table.source.header_aliases, noun)
            return  # the columns are right: its records land as read_parquet_records reads
        if path.suffix.lower() == ".parquet":
            raise RunnerError(
                f"{path} is named .parquet but is not a Parquet file (it does not start with "
                f"PAR1; it looks like {_looks_like(start)}): {noun} are CSV with the header "
                f"{','.join(table.header)}, or Parquet with those columns. Nothing landed."
            )
    for magic, what in MAGIC_NUMBERS:
        if head.startswith(magic):
            if magic == SQLITE_MAGIC and table.kind != "json":
                what += f" (`{MARKETING.invocation}` takes the marketing system's)"
            raise RunnerError(
                f"{path} looks like {what}, {expected}; is this the right file? Nothing landed."
            )
    json_lines = table.kind == "json" or (
        table.kind == "csv_or_json_lines" and start.startswith(b"{")
    )
    if not json_lines:
        return
    if not start.startswith((b"{", b"[")):
        raise RunnerError(
            f"{path} looks like {_looks_like(start)}, {expected}; is this the right file? "
            "Nothing landed."
        )
    records = _read_json_array(path) if start.startswith(b"[") else _read_json_lines(path)
    first: RawRecord | None = None
    for record in records:
        if record.parse_error is None and record.text.lstrip().startswith("{"):
            return  # a valid JSON object: a JSON file, whatever else it holds
        first = first or record
    if first is None:
        return  # an array without elements: no records, it lands 0 rows
    why = first.parse_error or "not an object"
    raise RunnerError(
        f"{path} holds no valid JSON object (record {first.position}, "
        f"{first.text[:80]!r}: {why[:120]}): {noun} are JSON objects, one per line (JSON "
        "Lines) or in an array; is this the right file, or one JSON document written over "
        "several lines? Nothing landed."
    )


def _landed_before(warehouse: Warehouse, source_table: str, size: int) -> bool:
    """Whether a file of `size` bytes was landed in `source_table` before: only such a
    file can be the same file again."""
    _, rows = warehouse.query(
        f"select count(*) from {warehouse.raw('loads')} where source_table = ? and file_bytes = ?",
        (source_table, size),
    )
    return bool(rows[0][0] > 0)


def previous_load(warehouse: Warehouse, source_table: str, sha256: str) -> str | None:
    _, rows = warehouse.query(
        f"select load_id from {warehouse.raw('loads')} where source_table = ? and file_sha256 = ?",
        (source_table, sha256),
    )
    return rows[0][0] if rows else None


def load_file(
    warehouse: Warehouse,
    source_table: str,
    path: Path,
    constants: dict[str, object] | None = None,
) -> LoadResult:
    """Land one file in the raw table `source_table`, unless the same bytes were landed
    before.
    `constants` fill columns that hold one value per file (e.g. extract_date)."""
    if not path.is_file():
        raise RunnerError(f"{path}: no such file.")
    table = RAW_TABLES[source_table]
    check_file_kind(path, source_table)
    warehouse.ensure_raw_tables()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner-hash") as hasher:
            sha256: str | Future[str]
            if _landed_before(warehouse, source_table, path.stat().st_size):
                # the same bytes may have landed: find out before reading the file
                sha256 = file_sha256(path)
                earlier = previous_load(warehouse, source_table, sha256)
                if earlier is not None:
                    relation = warehouse.raw(source_table)
                    return LoadResult(source_table, str(path), earlier, 0, 0, True, relation)
            else:  # no earlier file of this size: a new file, hashed while it lands
                sha256 = hasher.submit(file_sha256, path)
            return land_records(warehouse, table, path, None, sha256, constants)
    except WarehouseConnectionLost as exc:
        raise RunnerError(
            f"{path}: the connection to the warehouse was lost while loading it into "
            f"{warehouse.raw(source_table)} ({exc.reason}). Nothing from this file was "
            f"landed: its rows and its line in {warehouse.raw('loads')} were one transaction, "
            "which was rolled back. Run the same command again (files it already loaded are "
            "skipped)."
        ) from None
    except Exception as exc:
        if "unique" in str(exc).lower() or "duplicate key" in str(exc).lower():
            raise RunnerError(
                f"{path} was loaded into {warehouse.raw(source_table)} by another run at the "
                "same time; "
                "nothing was added by this one."
            ) from None
        raise


DATE_IN_NAME = re.compile(r"(?<![0-9])([0-9]{4}-[0-9]{2}-[0-9]{2})(?![0-9])")


def extract_date_of(path: Path, given: date | None = None) -> tuple[date, str | None]:
    """The date of a store customer extract: `given` (--extract-date) if any, else the
    YYYY-MM-DD in the file's name (store_customers_2017-03-02.csv). Never today: an
    extract dated wrongly closes every customer it lacks, and an extract dated today
    blocks every older one (they are historized in date order). Returns the date and
    a warning when `given` and the name disagree."""
    found = sorted(set(DATE_IN_NAME.findall(path.name)))
    named: date | None = None
    problem = None
    if len(found) > 1:
        problem = f"its name holds several dates ({', '.join(found)})"
    elif found:
        try:
            named = date.fromisoformat(found[0])
        except ValueError:
            problem = f"{found[0]} in its name is not a date"
    if given is not None:
        if named is not None and named != given:
            return given, (
                f"{path.name}: --extract-date {given} differs from the date in the file name "
                f"({named}); using --extract-date {given}."
            )
        return given, None
    if named is None:
        raise RunnerError(
            f"{path}: which day is this extract of? "
            f"{problem or 'Its name holds no date (YYYY-MM-DD)'}: pass --extract-date "
            "YYYY-MM-DD (the day the store system wrote it). Nothing landed."
        )
    return named, None


def load_store_customers(warehouse: Warehouse, path: Path, extract_date: date) -> LoadResult:
    """Land one full customer extract, dated `extract_date`.

    A full extract describes the whole customer base on its date, and the snapshot
    historizes extracts in date order, so extracts must arrive in date order: an
    extract dated before (or on the same day as) one already landed is refused,
    unless it is that very file again, which is skipped.
    """
    if not path.is_file():
        raise RunnerError(f"{path}: no such file.")
    warehouse.ensure_raw_tables()
    if previous_load(warehouse, "store_customers", file_sha256(path)) is None:
        _, rows = warehouse.query(
            f"select max(extract_date) from {warehouse.raw('store_customers')}"
        )
        latest = rows[0][0]
        if latest is not None and extract_date <= latest:
            raise RunnerError(
                f"{path}: an extract dated {extract_date} cannot be added after the one dated "
                f"{latest}: extracts are historized in date order. Load extracts oldest first, "
                "each with its own --extract-date."
            )
    return load_file(warehouse, "store_customers", path, {"extract_date": extract_date})


def read_sqlite_table(path: Path, table: str, columns: tuple[str, ...]) -> Iterator[RawRecord]:
    """The rows of one table of a SQLite database, in rowid order: each lands with its
    values as text (numbers as SQLite holds them, NULL as null) and, as its original
    text, the row as a JSON object."""
    uri = f"file:{path}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as con:
        found = {row[1] for row in con.execute(f'pragma table_info("{table}")')}
        missing = [column for column in columns if column not in found]
        if missing:
            what = "no table" if not found else f"no column {', '.join(missing)} in table"
            raise RunnerError(f"{path}: {what} {table!r}; expected columns {', '.join(columns)}.")
        select = ", ".join(f'"{column}"' for column in columns)
        cursor = con.execute(f'select {select} from "{table}" order by rowid')
        for position, row in enumerate(cursor, start=1):
            values = tuple(None if value is None else _sqlite_text(value) for value in row)
            text = orjson.dumps(dict(zip(columns, row, strict=True)), default=str).decode()
            if any(value is not None and "\x00" in value for value in values):
                # PostgreSQL text cannot hold NUL: keep it visible, quarantine the row
                escaped = tuple(v if v is None else v.replace("\x00", "\\x00") for v in values)
                yield RawRecord(position, text, "contains a NUL character", escaped)
                continue
            yield RawRecord(position, text, None, values)


def _sqlite_text(value: object) -> str:
    """A SQLite value as text: INTEGER as its digits, REAL as plain decimal digits that read
    back as the same float (0.00001, never the 1e-05 of str()), TEXT as it is."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def sqlite_tables(path: Path) -> dict[str, int]:
    """The tables of a SQLite database with their row counts, in name order."""
    uri = f"file:{path}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as con:
        names = [
            name
            for (name,) in con.execute(
                "select name from sqlite_master where type = 'table' "
                "and name not like 'sqlite%' order by name"
            )
        ]
        return {name: con.execute(f'select count(*) from "{name}"').fetchone()[0] for name in names}


def describe_marketing_sqlite(path: Path) -> str:
    """What `load marketing` takes from a SQLite database and what it leaves: the marketing
    tables it reads, with their rows, and by name every other table (such as the IHC
    challenge's own results, attribution_customer_journey and channel_reporting)."""
    tables = sqlite_tables(path)

    def rows(name: str) -> str:
        count = tables.get(name, 0)
        return f"{name} ({count} row{'' if count == 1 else 's'})"

    read = ", ".join(rows(name) for name in MARKETING_TABLES)
    others = [rows(name) for name in tables if name not in MARKETING_TABLES]
    ignored = (
        f"; ignored the other tables, which are not marketing source data: {', '.join(others)}"
        if others
        else ""
    )
    return f"{path.name}: read the tables {read}{ignored}."


def _marketing_files(separator: str, last: str) -> str:
    """The CSV files of a marketing folder, by name: "a.csv, b.csv and c.csv"."""
    names = [f"{name}.csv" for name in MARKETING_TABLES]
    return last.join([separator.join(names[:-1]), names[-1]])


def load_marketing(warehouse: Warehouse, path: Path) -> list[LoadResult]:
    """Land the marketing system's tables (session_sources, conversions, session_costs)
    from a SQLite database or from a folder of CSV files named after the tables. Each
    table is its own load, idempotent like any file: the same bytes land once."""
    if path.is_dir():
        files = {name: path / f"{name}.csv" for name in MARKETING_TABLES}
        present = {name: file for name, file in files.items() if file.is_file()}
        if len(present) < len(files):
            missing = ", ".join(f"{name}.csv" for name in files if name not in present)
            raise RunnerError(
                f"{path}: missing {missing}. A marketing folder holds "
                f"{_marketing_files(', ', ' and ')}."
            )
        return [load_file(warehouse, name, file) for name, file in present.items()]
    if not path.is_file():
        raise RunnerError(f"{path}: no such file or folder.")
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise RunnerError(
                f"{path} is neither a SQLite database nor a folder of CSV files "
                f"({_marketing_files(', ', ', ')})."
            )
    warehouse.ensure_raw_tables()
    sha256 = file_sha256(path)
    results = []
    for name, columns in MARKETING_TABLES.items():
        earlier = previous_load(warehouse, name, sha256)
        if earlier is not None:
            results.append(LoadResult(name, str(path), earlier, 0, 0, True, warehouse.raw(name)))
            continue
        # A bad table fails its load with nothing landed from it: its rows are copied in
        # the transaction of its line in the load log, which an error rolls back.
        records = read_sqlite_table(path, name, columns)
        try:
            results.append(land_records(warehouse, RAW_TABLES[name], path, records, sha256))
        except sqlite3.DatabaseError as exc:  # a damaged file, text that is not UTF-8
            raise RunnerError(f"{path}: cannot read the table {name!r}: {exc}.") from None
    return results


# --- taking a load back -----------------------------------------------------------------


@dataclass(frozen=True)
class UnloadResult:
    load_id: str
    source_table: str
    file_name: str
    rows_removed: int
    attributions_removed: int = 0  # conversions whose attribution results went with it
    relation: str = field(kw_only=True)  # schema.table of source_table (raw.web_events)
    load_log: str = field(kw_only=True)  # schema.table of the load log (raw.loads)

    def summary(self) -> str:
        text = (
            f"Unloaded load {self.load_id}: {self.rows_removed} rows of {self.file_name} "
            f"removed from {self.relation}, and its line in {self.load_log}. The next build "
            "(`runner build` or `dbt build`) rebuilds the incremental models in full, once, "
            "so the warehouse holds nothing of it."
        )
        if self.attributions_removed:
            text += (
                f" The attribution results of {self.attributions_removed} conversions whose "
                "conversion or journey sessions it held were removed too: `runner attribute` "
                "attributes them again."
            )
        return text


def _stale_attributions(warehouse: Warehouse) -> str:
    """The attribution results that no longer fit the marketing data once a load is gone:
    those of conversions no raw row holds, and of conversions whose journey had a session
    none holds (a condition on the results table)."""
    return f"""
    conv_id not in (
        select trim(conv_id) from {warehouse.raw("conversions")} where conv_id is not null
    )
    or conv_id in (
        select results.conv_id from {warehouse.raw("attribution_customer_journey")} as results
        where results.session_id not in (
            select trim(session_id) from {warehouse.raw("session_sources")}
            where session_id is not null
        )
    )
"""


def unload(warehouse: Warehouse, load_id: str) -> UnloadResult:
    """Take a load back: delete its rows from its raw table and its line in the load log,
    and record it in the unloads table, in one transaction. The next dbt build rebuilds
    the incremental models in full once (macros/unloads.sql), so the marts are those of a
    warehouse that never had the load. Full extracts (store customers) cannot be unloaded:
    the snapshot historized them as they landed."""
    if not warehouse.updates_in_place:
        raise RunnerError(
            f"`runner unload` cannot take load {load_id} back on Spark: its Parquet tables "
            "(no Delta Lake) cannot delete rows. Nothing was removed. To rebuild without the "
            "load, land the other files into a fresh SPARK_DATA_DIR."
        )
    warehouse.ensure_raw_tables()
    loads, unloads = warehouse.raw("loads"), warehouse.raw("unloads")
    columns = "source_table, file_name, file_sha256, loaded_at"
    _, found = warehouse.query(f"select {columns} from {loads} where load_id = ?", (load_id,))
    if not found:
        _, gone = warehouse.query(
            f"select source_table, file_name, unloaded_at from {unloads} where load_id = ?",
            (load_id,),
        )
        if gone:
            table, file_name, when = gone[0]
            raise RunnerError(
                f"Load {load_id} ({file_name} in {warehouse.raw(table)}) was already unloaded, "
                f"at {when:%Y-%m-%d %H:%M:%S} UTC: nothing to do."
            )
        raise RunnerError(
            f"No load {load_id!r} in {loads}: nothing was removed. The ids are in {loads} "
            f"(`select load_id, source_table, file_name from {loads}`) and in what "
            "`runner load` printed."
        )
    source_table, file_name, sha256, loaded_at = found[0]
    relation = warehouse.raw(source_table)
    if source_table not in RAW_TABLES:
        raise RunnerError(f"Load {load_id} is in {relation}, which no loader writes.")
    if RAW_TABLES[source_table].source.command.loader is Loader.EXTRACT:
        raise RunnerError(
            f"Load {load_id} is a store customer extract ({file_name}): the snapshot "
            "historized it when it landed, and history cannot be taken back. Load a "
            "corrected extract with a later --extract-date instead. Nothing was removed."
        )
    with warehouse.transaction():
        _, [(rows,)] = warehouse.query(
            f"select count(*) from {relation} where load_id = ?", (load_id,)
        )
        warehouse.execute(f"delete from {relation} where load_id = ?", (load_id,))
        warehouse.execute(f"delete from {loads} where load_id = ?", (load_id,))
        attributions = 0
        if source_table in ("conversions", "session_sources"):
            results, stale = (
                warehouse.raw("attribution_customer_journey"),
                _stale_attributions(warehouse),
            )
            _, [(attributions,)] = warehouse.query(
                f"select count(distinct conv_id) from {results} where {stale}"
            )
            warehouse.execute(f"delete from {results} where {stale}")
        warehouse.execute(
            f"insert into {unloads} (load_id, source_table, file_name, file_sha256, "
            "rows_removed, loaded_at, unloaded_at) values (?, ?, ?, ?, ?, ?, ?)",
            (
                load_id,
                source_table,
                file_name,
                sha256,
                rows,
                loaded_at,
                datetime.now(timezone.utc).replace(tzinfo=None),
            ),
        )
    return UnloadResult(
        load_id, source_table, file_name, rows, attributions, relation=relation, load_log=loads
    )
