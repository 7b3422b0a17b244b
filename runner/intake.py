"""The HTTP intake of app events: `POST /api/v1/app/sessions` and `POST /api/v1/app/purchases`.

The mobile app sends one event (a JSON object) or a batch (a JSON array of objects) with
the fields of the app files (`customer_id`, `session_started_at`; `customer_id`,
`purchased_at`, `amount`) and its own `event_id`. They end up in the raw tables that
`runner load app-sessions` / `app-purchases` fill, as the same records of a JSON Lines
file would, so staging types, quarantines and deduplicates them by the same rules.

What is refused, and what is accepted:

- 400 (nothing of the request is kept): a body that is not JSON, not an object or an
  array of objects, an empty array; an event without `event_id` or without one of its
  source's fields (the key absent); a field of a JSON type it can never be: `event_id`
  a non-blank string of at most 200 characters, `customer_id` a string or an integer,
  the times strings, `amount` a number or a string (any of the fields but event_id may
  be null). The message names the field and, in a batch, the element (0-based).
- 202 for the rest, even when a value is bad (customer_id "abc" is a valid app id, a
  time that does not parse, a blank customer_id): such events land and staging
  quarantines them with its reason, exactly as the same line of a file. Other keys are
  kept in the event's text (raw_text), as in a file.

Durable, idempotent, and open during builds, on both warehouses: the answer 202 comes
after the events are committed (fsync'd) to a spool, a SQLite file per target
(Settings.intake_spool; WAL, synchronous=FULL), keyed by (raw table, event_id). An
event_id received before, in an earlier request or earlier in the same batch, is counted
as a duplicate and kept once: the first text received for an event_id is the one that
lands. The server never opens the warehouse (on DuckDB a build holds the file's one
writer lock, and `runner serve` reads published copies: runner.serving), so events are
accepted whatever the warehouse is doing.

Landing (`land_intake`): `runner build` does it first, before dbt, and `runner load
app-intake` does it alone. The spooled events of a raw table land in batches, each one
load through the file loaders' code (runner.loading.land_records: one transaction with
its line in `loads`, so data_quality, accounting and `runner unload` treat it as a
file), with `event_id` in its own column (null for CSV loads) and the event's text in
raw_text; the load's file_name says which intake events it holds. A spooled event whose
event_id is already in the raw table (landed by a run killed before it could mark it in
the spool, or by a JSON Lines file that carried it) is not landed again, so landing twice
lands once. A landed event's text is dropped from the spool; its key stays, so a resend
after landing is still a duplicate (after `runner unload` of its load too: send it with
a new event_id to land it again). On PostgreSQL one lander runs at a time (an advisory
lock); on DuckDB the file's lock already sees to that.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from runner.config import Settings
from runner.errors import RunnerError
from runner.loading import (
    RAW_TABLES,
    LoadResult,
    RawRecord,
    json_array_records,
    json_object_record,
    land_records,
)
from runner.warehouse import Warehouse

MAX_EVENTS = 10_000  # per request
MAX_BODY_BYTES = 16 << 20
LAND_BATCH = 50_000  # events per load when landing the spool
EVENT_ID_MAX = 200
LANDER_LOCK = "runner intake lander"


# --- what each route takes ----------------------------------------------------------------

# Printable: no control characters (PostgreSQL text cannot hold NUL), not only spaces.
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=EVENT_ID_MAX,
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    ),
]


class SessionEvent(BaseModel):
    """An app session: the fields of app_sessions' files, and the client's event_id."""

    model_config = ConfigDict(strict=True, extra="allow")
    event_id: EventId
    customer_id: str | int | None
    session_started_at: str | None


class PurchaseEvent(BaseModel):
    """An app purchase: the fields of app_purchases' files, and the client's event_id."""

    model_config = ConfigDict(strict=True, extra="allow")
    event_id: EventId
    customer_id: str | int | None
    purchased_at: str | None
    amount: float | int | str | None


# What a field must be, in the words of a 400.
EXPECTED = {
    "event_id": (
        f"a non-blank string of at most {EVENT_ID_MAX} characters, without control characters"
    ),
    "customer_id": "a string, an integer or null",
    "session_started_at": "an ISO-8601 date-time as a string, or null",
    "purchased_at": "an ISO-8601 date-time as a string, or null",
    "amount": "a number, a decimal as a string, or null",
}


@dataclass(frozen=True)
class IntakeRoute:
    """One intake route: the raw table its events land in and the model checking them."""

    path: str
    table: str  # the raw table (runner.sources), also the spool's key with event_id
    model: type[BaseModel]
    noun: str


ROUTES = (
    IntakeRoute("/api/v1/app/sessions", "app_sessions", SessionEvent, "app sessions"),
    IntakeRoute("/api/v1/app/purchases", "app_purchases", PurchaseEvent, "app purchases"),
)
ROUTE_OF_TABLE = {route.table: route for route in ROUTES}


class BadBody(Exception):
    """A request body the intake refuses (400, or 413 when too big): `message` says why
    and where."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Event:
    event_id: str
    text: str  # the event's original JSON text


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def parse_body(body: bytes, model: type[BaseModel]) -> list[Event]:
    """The events of a request body, each with its original text; BadBody for a body the
    intake refuses (see the module's docstring)."""
    if len(body) > MAX_BODY_BYTES:
        raise _too_big()
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"The body is not JSON: {exc}.") from None
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [(body.decode("utf-8").strip(), value)]
        where = ""
    elif isinstance(value, list):
        if not value:
            raise BadBody("The body is an empty array: send at least one event.")
        if len(value) > MAX_EVENTS:
            raise BadBody(
                f"The batch holds {len(value)} events, more than {MAX_EVENTS}: split it.", 413
            )
        records = list(json_array_records(body))
        if len(records) != len(value):  # (orjson accepted it: not expected to happen)
            raise BadBody("The body is not a JSON array of objects.")
        # An element both warehouses cannot take as it is (a \u0000 escape) is accepted,
        # as a single event is: it lands with the parse error and staging quarantines it.
        items = [(record.text, element) for record, element in zip(records, value, strict=True)]
        where = "Element {index}: "
    else:
        raise BadBody(
            f"The body is {_json_type(value)}: send one event as a JSON object or a batch "
            "as a JSON array of objects."
        )
    events = []
    for index, (text, element) in enumerate(items):
        prefix = where.format(index=index)
        if not isinstance(element, dict):
            raise BadBody(f"{prefix}the event is {_json_type(element)}, not a JSON object.")
        if not prefix:
            prefix = "The event: "
        try:
            model.model_validate(element)
        except ValidationError as exc:
            raise BadBody(prefix + _problem(exc, element)) from None
        events.append(Event(element["event_id"], text))
    return events


def _too_big() -> BadBody:
    return BadBody(f"The body is over {MAX_BODY_BYTES >> 20} MB: send smaller batches.", 413)


async def read_body(request: Request) -> bytes:
    """The request's body, read no further than MAX_BODY_BYTES (BadBody beyond)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_big()
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(exc: ValidationError, element: dict[str, Any]) -> str:
    """The first problem of an event, naming its field."""
    first = exc.errors()[0]
    field = str(first["loc"][0])
    if first["type"] == "missing":
        if field == "event_id":
            return "missing field event_id (the client's id of the event)."
        return f"missing field {field} (it may be null, but it must be there)."
    value = element.get(field)
    shown = orjson.dumps(value).decode()
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{field} must be {EXPECTED[field]}, found {_json_type(value)}: {shown}."


# --- the spool ------------------------------------------------------------------------------

SPOOL_SCHEMA = """
create table if not exists events (
    seq integer primary key autoincrement,
    source_table text not null,
    event_id text not null,
    raw_text text,
    received_at text not null,
    load_id text,
    unique (source_table, event_id)
)
"""


@dataclass(frozen=True)
class Accepted:
    accepted: int
    duplicates: int


class Spool:
    """The intake's SQLite spool (see the module's docstring). Thread-safe: one
    connection, one writer at a time in this process; other processes (a lander, another
    server) wait for SQLite's lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(
                path, timeout=60, isolation_level=None, check_same_thread=False
            )
            self._con.execute("pragma journal_mode = wal")
            self._con.execute("pragma synchronous = full")  # fsync'd at every commit
            self._con.execute(SPOOL_SCHEMA)
        except sqlite3.Error as exc:
            raise RunnerError(
                f"Cannot open the intake spool {path}: {exc}. Check that its folder is "
                "writable (RUNNER_INTAKE_DIR moves it)."
            ) from None

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("begin immediate")
            try:
                yield self._con
            except BaseException:
                self._con.execute("rollback")
                raise
            self._con.execute("commit")

    def accept(self, source_table: str, events: Sequence[Event]) -> Accepted:
        """Keep `events` (committed and fsync'd when this returns); an event_id received
        before for the table is a duplicate, kept once."""
        received_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        with self._transaction() as con:
            before = con.total_changes
            con.executemany(
                "insert or ignore into events (source_table, event_id, raw_text, received_at) "
                "values (?, ?, ?, ?)",
                [(source_table, event.event_id, event.text, received_at) for event in events],
            )
            added = con.total_changes - before
        return Accepted(len(events), len(events) - added)

    def pending(self, source_table: str, limit: int) -> list[tuple[int, str, str]]:
        """(seq, event_id, text) of events not landed yet, in the order received."""
        with self._lock:
            return self._con.execute(
                "select seq, event_id, raw_text from events "
                "where source_table = ? and load_id is null order by seq limit ?",
                (source_table, limit),
            ).fetchall()

    def mark_landed(self, landed: dict[int, str]) -> None:
        """Record the load of each landed event (seq: load_id) and drop its text."""
        with self._transaction() as con:
            con.executemany(
                "update events set load_id = ?, raw_text = null where seq = ?",
                [(load_id, seq) for seq, load_id in landed.items()],
            )

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per raw table: (events received, of which not landed yet)."""
        with self._lock:
            rows = self._con.execute(
                "select source_table, count(*), count(*) - count(load_id) from events "
                "group by source_table"
            ).fetchall()
        return {table: (received, waiting) for table, received, waiting in rows}


# --- the routes -----------------------------------------------------------------------------


class AcceptedBody(BaseModel):
    """The answer 202: the request's events, all now kept, and how many were sent before."""

    accepted: int = Field(description="The events of the request, all now kept durably.")
    duplicates: int = Field(
        description="Of them, those whose event_id the route received before (kept once)."
    )


def intake_router(
    settings: Settings, error_responses: dict[int | str, dict[str, Any]] | None = None
) -> APIRouter:
    """The intake routes, spooling to the settings' spool (opened at the first request).
    `error_responses` documents their error answers in the OpenAPI description (the API's
    error body, runner.api)."""
    router = APIRouter(tags=["app intake"])
    spool: list[Spool] = []
    opening = threading.Lock()

    def the_spool() -> Spool:
        with opening:
            if not spool:
                spool.append(Spool(settings.intake_spool))
            return spool[0]

    def add(route: IntakeRoute) -> None:
        schema = route.model.model_json_schema()
        body_schema = {"oneOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}

        async def take(request: Request) -> JSONResponse:
            try:
                events = parse_body(await read_body(request), route.model)
            except BadBody as exc:
                code = "bad_request" if exc.status == 400 else "too_large"
                return _error(exc.status, code, exc.message)
            result = await run_in_threadpool(lambda: the_spool().accept(route.table, events))
            return JSONResponse(
                {"accepted": result.accepted, "duplicates": result.duplicates}, status_code=202
            )

        router.add_api_route(
            route.path,
            take,
            methods=["POST"],
            status_code=202,
            summary=f"Send {route.noun} (one event or a batch)",
            description=(
                f"One event (a JSON object) or a batch (a JSON array) of {route.noun}. 202: "
                "`accepted` (every event of the request, now kept durably; they land in "
                f"the raw table {route.table} at the next `runner build` or `runner load "
                "app-intake`) and `duplicates` (of them, event_ids received before, kept "
                "once). 400 names the field and element refused; nothing of such a "
                "request is kept."
            ),
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body_schema}},
                }
            },
            response_model=None,
            responses={
                202: {"model": AcceptedBody, "description": "Accepted: every event is kept."},
                **(error_responses or {}),
            },
        )

    for route in ROUTES:
        add(route)
    return router


def _error(status: int, code: str, message: str) -> JSONResponse:
    from runner.api import error  # (runner.api includes this module's router)

    return error(status, code, message)


# --- landing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landing:
    """What landing one raw table's spooled events did."""

    source_table: str
    relation: str
    loads: tuple[LoadResult, ...]
    already_landed: int  # events whose event_id the raw table held already

    @property
    def landed(self) -> int:
        return sum(load.rows_landed for load in self.loads)

    def summary(self) -> str:
        route = ROUTE_OF_TABLE[self.source_table]
        ids = ", ".join(load.load_id for load in self.loads) or "none"
        events = "event" if self.landed == 1 else "events"
        text = (
            f"{route.path}: {self.landed} {events} landed in {self.relation} (load {ids}); "
            "staging checks them like the same lines of a file."
        )
        if self.already_landed:
            text += (
                f" {self.already_landed} more had landed before (their event_id is in "
                f"{self.relation}): not landed again."
            )
        return text


def land_intake(warehouse: Warehouse, settings: Settings) -> list[Landing]:
    """Land the events waiting in the settings' intake spool in their raw tables (see the
    module's docstring); [] when nothing waits (or there is no spool)."""
    path = settings.intake_spool
    if not path.exists():
        return []
    try:
        return _land_spool(warehouse, path)
    except sqlite3.Error as exc:
        raise RunnerError(
            f"Cannot read the intake spool {path}: {exc}. Its events were not landed (what "
            "landed before is kept); they stay in the spool until it can be read."
        ) from None


def _land_spool(warehouse: Warehouse, path: Path) -> list[Landing]:
    with closing(Spool(path)) as spool:
        waiting = {table for table, (_, left) in spool.counts().items() if left}
        if not waiting:
            return []
        warehouse.ensure_raw_tables()
        if not warehouse.try_exclusive(LANDER_LOCK):
            raise RunnerError(
                f"Another run is landing the intake spool {path} into this warehouse right "
                "now; its events will be landed by it. Nothing was landed by this one."
            )
        return [
            _land_table(warehouse, spool, route.table) for route in ROUTES if route.table in waiting
        ]


def _land_table(warehouse: Warehouse, spool: Spool, source_table: str) -> Landing:
    table = RAW_TABLES[source_table]
    keys = (*(name.lower() for name in table.source.header), "event_id")
    relation = warehouse.raw(source_table)
    loads: list[LoadResult] = []
    already = 0
    while pending := spool.pending(source_table, LAND_BATCH):
        earlier = _landed_event_ids(warehouse, relation, [event_id for _, event_id, _ in pending])
        fresh = [event for event in pending if event[1] not in earlier]
        marks = {seq: earlier[event_id] for seq, event_id, _ in pending if event_id in earlier}
        already += len(marks)
        if fresh:
            records = [
                _record(position, event_id, text, keys)
                for position, (_, event_id, text) in enumerate(fresh, start=1)
            ]
            digest = hashlib.sha256()
            for _, event_id, text in fresh:
                digest.update(orjson.dumps([source_table, event_id, text]) + b"\n")
            result = land_records(
                warehouse,
                table,
                spool.path,
                records,
                digest.hexdigest(),
                file_name=(
                    f"{ROUTE_OF_TABLE[source_table].path} events {fresh[0][0]}-{fresh[-1][0]} "
                    f"of {spool.path.name}"
                ),
                file_bytes=sum(len(text.encode("utf-8")) for _, _, text in fresh),
            )
            loads.append(result)
            marks.update({seq: result.load_id for seq, _, _ in fresh})
        spool.mark_landed(marks)
    return Landing(source_table, relation, tuple(loads), already)


def _record(position: int, event_id: str, text: str, keys: tuple[str, ...]) -> RawRecord:
    """The raw record of a spooled event: as a JSON Lines line of an app file (its
    fields, event_id among them), the event_id always the spool's."""
    record = json_object_record(position, text, keys)
    if record.fields is None:  # (JSON the warehouses cannot store: \u0000)
        fields = (*(None for _ in keys[:-1]), event_id)
        return RawRecord(position, text, record.parse_error, fields)
    return record


def _landed_event_ids(warehouse: Warehouse, relation: str, event_ids: list[str]) -> dict[str, str]:
    """event_id: load_id of those of `event_ids` the raw table holds."""
    found: dict[str, str] = {}
    for start in range(0, len(event_ids), 1000):
        chunk = event_ids[start : start + 1000]
        marks = ", ".join("?" for _ in chunk)
        _, rows = warehouse.query(
            f"select event_id, min(load_id) from {relation} "
            f"where event_id in ({marks}) group by event_id",
            chunk,
        )
        found.update(dict(rows))
    return found
