"""A local emulator of the IHC attribution service (``POST /v1/compute_ihc``), for tests,
benchmarks and offline development. Run it with ``runner ihc-emulator`` or, in Python, with
``serve_in_thread``. Built on the API's web framework: FastAPI routes the requests, pydantic
models (``ComputeRequest``, ``Session``, ``RedistributionParameter``) hold the contract of the
request body, and uvicorn serves it.

The contract is the real service's::

    POST {base_url}/v1/compute_ihc?conv_type_id={conv_type_id}
    headers: x-api-key: {key}, Content-Type: application/json
    body: {"customer_journeys": [<session>, ...], "redistribution_parameter": {...}}

``customer_journeys`` is one flat list of the sessions of every journey in the request; the
sessions of a journey share a ``conversion_id``. A session has ``conversion_id``,
``session_id``, ``timestamp`` ("YYYY-MM-DD HH:MM:SS", UTC), ``channel_label`` (strings) and
``holder_engagement``, ``closer_engagement``, ``conversion``, ``impression_interaction`` (0 or
1). Other keys are ignored. ``redistribution_parameter`` is optional; it must be an object
when given, whose phases (``initializer``, ``holder``, ``closer``) are objects with an
optional ``direction``, ``receive_threshold`` and ``redistribution_channel_labels`` of the
contract's types; the emulator ignores it otherwise.

Answers (every body is JSON):

- 200 ``{"statusCode": 200, "value": [<row>, ...], "partialFailureErrors": []}``, one row per
  session, ``{"conversion_id", "session_id", "initializer", "holder", "closer", "ihc"}``:
  journeys in the order of their first session in the request, sessions in timestamp order.
- 206 (HTTP and ``statusCode``) when some journeys failed: they are listed in
  ``partialFailureErrors`` as ``{"conversion_id": ..., "error": ...}`` and absent from
  ``value``.
- ``GET /health`` (no key needed): 200 ``{"service": "ihc-emulator", "instance": "<token>"}``,
  the token random per server, so a client can check that the emulator it started is the
  one answering (``check_identity``), not another program on the same port.
- 401 without an ``x-api-key`` header, 403 with a wrong one; 400 for a malformed body, an
  empty ``customer_journeys``, a missing or unknown ``conv_type_id``, or more than
  ``max_journeys`` journeys or ``max_sessions`` sessions; 404 for a POST to another path,
  405 for another method. Error bodies are ``{"statusCode": <status>, "message": "..."}``.
- 429 with ``Retry-After`` (seconds) and 500/502/503 only when fault injection asks for them.

The model is NOT the real, trained IHC model: it is a transparent, deterministic rule whose
results can be computed by hand. For the sessions of a journey, ordered by timestamp (ties by
session_id), each phase hands out a share of 1:

- initializer: 1.0 to the first session;
- closer: 1.0 to the converting session (``conversion`` = 1);
- holder: spread equally over the sessions with ``holder_engagement`` = 1 strictly between the
  first and the last one, or over all sessions of the journey when there is none;

and ``ihc = INITIALIZER_WEIGHT * initializer + HOLDER_WEIGHT * holder + CLOSER_WEIGHT * closer``
(0.3, 0.4, 0.3). With exactly one converting session the ihc of a journey sums to 1 (within
float rounding). Examples: first, holder, converting -> 0.3, 0.4, 0.3; one session -> 1.0;
two sessions -> 0.5, 0.5 (the holder phase is split over both).

Like the real service, the emulator does not refuse a journey without exactly one session with
``conversion`` = 1; its shares then do not sum to 1: the closer phase goes to every converting
session, so a journey without one sums to 0.7 and one with two to 1.3. Clients must check.

Fault injection (``FaultPlan``), deterministic for a seed and the order in which requests
arrive: each request with a valid key first consumes the next step of ``script``, if any, then
draws from the per-request rates. A request gets at most one fault:

- ``429``: answered 429 with ``Retry-After: retry_after_s`` at once;
- ``5xx``: answered 500, 502 or 503 at once;
- ``slow``: answered after an extra ``slow_ms`` of sleep (to trigger client timeouts);
- ``drop``: the connection is closed without any answer;
- ``partial``: answered 206 with about a third of its journeys (at least one) failed;
- ``wrong_sum``: one journey's ihc is scaled to sum to ``wrong_sum_total`` (0.8).

``partial`` and ``wrong_sum`` only alter an answer that would have been 200. Every request to
the endpoint sleeps ``latency_ms`` before its key is checked (the sleeps of parallel requests
overlap), then the fault is drawn, then the body is validated. ``stats`` counts requests and
outcomes. The API key is never logged nor echoed in an answer. Stopping the server does not
wait for requests still sleeping (latency, slow faults): their connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.error import HTTPError
from urllib.parse import parse_qs
from urllib.request import urlopen

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException
from typing_extensions import TypedDict
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

PATH = "/v1/compute_ihc"
HEALTH_PATH = "/health"
SERVICE = "ihc-emulator"
INITIALIZER_WEIGHT = 0.3
HOLDER_WEIGHT = 0.4
CLOSER_WEIGHT = 0.3
DEFAULT_CONV_TYPE_IDS = frozenset({"default", "coding_challenge"})
DEFAULT_API_KEY = "emulator-key"
API_KEY_ENV = "IHC_API_KEY"
MAX_BODY_BYTES = 64 * 1024 * 1024

TEXT_FIELDS = ("conversion_id", "session_id", "timestamp", "channel_label")
FLAG_FIELDS = ("holder_engagement", "closer_engagement", "conversion", "impression_interaction")
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

FAULT_KINDS = ("429", "5xx", "slow", "drop", "partial", "wrong_sum")
"""The faults, in the order their rates are stacked on one uniform draw."""
SCRIPT_STEPS = frozenset({"ok", *FAULT_KINDS, "500", "502", "503"})
"""What a ``FaultPlan.script`` may hold: "ok" (no fault), a fault kind, or an exact 5xx."""
SERVER_ERRORS = (500, 502, 503)
PARTIAL_FAILURE_ERROR = "Emulated failure: the attribution of this journey could not be computed."


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject. Rates are per-request probabilities (their sum at most 1);
    ``script`` is consumed first, one step per request in arrival order (see
    ``SCRIPT_STEPS``); ``seed`` makes the draws reproducible."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    rate_drop: float = 0.0
    rate_partial: float = 0.0
    rate_wrong_sum: float = 0.0
    seed: int = 0
    retry_after_s: int = 1
    slow_ms: int = 5000
    wrong_sum_total: float = 0.8
    script: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "script", tuple(self.script))
        for kind, rate in self.rates().items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"The rate of fault {kind} must be between 0 and 1, not {rate}.")
        if sum(self.rates().values()) > 1.0 + 1e-9:
            raise ValueError("The fault rates add up to more than 1.")
        unknown = sorted(set(self.script) - SCRIPT_STEPS)
        if unknown:
            raise ValueError(
                f"Unknown fault script steps {unknown}; known: {sorted(SCRIPT_STEPS)}."
            )
        if self.retry_after_s < 0 or self.slow_ms < 0:
            raise ValueError("retry_after_s and slow_ms must not be negative.")

    def rates(self) -> dict[str, float]:
        """The rate of each fault kind, in ``FAULT_KINDS`` order."""
        return dict(
            zip(
                FAULT_KINDS,
                (
                    self.rate_429,
                    self.rate_5xx,
                    self.rate_slow,
                    self.rate_drop,
                    self.rate_partial,
                    self.rate_wrong_sum,
                ),
                strict=True,
            )
        )

    def active(self) -> bool:
        return bool(self.script) or any(self.rates().values())


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. ``api_key`` is the key clients must send in ``x-api-key``
    (left out of the repr, so it is never logged by accident)."""

    api_key: str = field(repr=False)
    latency_ms: int = 0
    max_journeys: int = 100
    max_sessions: int = 3000
    conv_type_ids: frozenset[str] = DEFAULT_CONV_TYPE_IDS
    faults: FaultPlan = field(default_factory=FaultPlan)

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("The emulator needs a non-empty API key.")
        object.__setattr__(self, "conv_type_ids", frozenset(self.conv_type_ids))
        if not self.conv_type_ids:
            raise ValueError("The emulator needs at least one conv_type_id.")
        if self.latency_ms < 0 or self.max_journeys < 1 or self.max_sessions < 1:
            raise ValueError("latency_ms must be >= 0, max_journeys and max_sessions >= 1.")


class EmulatorStats:
    """What the emulator did, counted thread-safely. ``outcomes`` counts requests by
    outcome: "ok", "slow", "partial" or "wrong_sum" for a scored request; "429", "5xx" or
    "drop" for those faults; "health" for GET /health; else the status of the refusal
    ("400", "401", "403", "404", "405")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._outcomes: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._journeys_scored = 0
        self._sessions_scored = 0
        self._in_flight = 0
        self._max_in_flight = 0

    def _begin(self) -> None:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _end(self, outcome: str, status: int | None, journeys: int, sessions: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._outcomes[outcome] += 1
            if status is not None:
                self._statuses[status] += 1
            self._journeys_scored += journeys
            self._sessions_scored += sessions

    def _abandon(self) -> None:
        """A request given up unanswered (the server stopped while it slept)."""
        with self._lock:
            self._in_flight -= 1

    @property
    def requests(self) -> int:
        """Requests received (answered, dropped or still in flight)."""
        with self._lock:
            return self._requests

    @property
    def outcomes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._outcomes)

    @property
    def statuses(self) -> dict[int, int]:
        """Answers by HTTP status (dropped connections have none)."""
        with self._lock:
            return dict(self._statuses)

    @property
    def journeys_scored(self) -> int:
        """Journeys in the ``value`` of 200 and 206 answers."""
        with self._lock:
            return self._journeys_scored

    @property
    def sessions_scored(self) -> int:
        """Sessions (rows) in the ``value`` of 200 and 206 answers."""
        with self._lock:
            return self._sessions_scored

    @property
    def max_in_flight(self) -> int:
        """The most requests handled at the same time."""
        with self._lock:
            return self._max_in_flight

    def snapshot(self) -> dict[str, Any]:
        """All counters at one instant, as plain data."""
        with self._lock:
            return {
                "requests": self._requests,
                "outcomes": dict(self._outcomes),
                "statuses": dict(self._statuses),
                "journeys_scored": self._journeys_scored,
                "sessions_scored": self._sessions_scored,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }


# The model ------------------------------------------------------------------------------


def attribute_journey(sessions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one journey (sessions of one conversion_id), in timestamp order, scored
    by the model of the module docstring. Assumes valid sessions."""
    ordered = sorted(sessions, key=lambda s: (s["timestamp"], s["session_id"]))
    count = len(ordered)
    holders = [i for i in range(1, count - 1) if ordered[i]["holder_engagement"] == 1]
    holders = holders or list(range(count))
    holder_share = 1.0 / len(holders)
    rows = []
    for i, session in enumerate(ordered):
        initializer = 1.0 if i == 0 else 0.0
        holder = holder_share if i in holders else 0.0
        closer = 1.0 if session["conversion"] == 1 else 0.0
        ihc = INITIALIZER_WEIGHT * initializer + HOLDER_WEIGHT * holder + CLOSER_WEIGHT * closer
        rows.append(
            {
                "conversion_id": session["conversion_id"],
                "session_id": session["session_id"],
                "initializer": initializer,
                "holder": holder,
                "closer": closer,
                "ihc": ihc,
            }
        )
    return rows


def group_journeys(sessions: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The sessions of each conversion_id, journeys in the order of their first session."""
    journeys: dict[str, list[Mapping[str, Any]]] = {}
    for session in sessions:
        journeys.setdefault(session["conversion_id"], []).append(session)
    return journeys


def compute_ihc(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``value`` of a 200 answer for a flat list of valid sessions (no faults)."""
    return [
        row for journey in group_journeys(sessions).values() for row in attribute_journey(journey)
    ]


# Requests -------------------------------------------------------------------------------


class BadRequest(Exception):
    """The request is malformed or over a limit (answered 400 with this message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _utc_timestamp(value: str) -> str:
    if not TIMESTAMP.fullmatch(value):
        raise ValueError(f"must look like 'YYYY-MM-DD HH:MM:SS' (UTC), not {_short(value)}.")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"is not a valid time: {_short(value)}.") from None
    return value


Text = Annotated[StrictStr, Field(min_length=1)]
"""A non-empty string (never a number)."""
Timestamp = Annotated[StrictStr, Field(min_length=1), AfterValidator(_utc_timestamp)]
"""``YYYY-MM-DD HH:MM:SS``, a real time, UTC."""
Flag = Annotated[StrictInt, Field(ge=0, le=1)]
"""0 or 1: an integer, never true/false nor 1.0."""


@with_config(ConfigDict(extra="ignore"))
class Session(TypedDict):
    """One session of a journey, as the contract gives it (validated into a plain dict,
    cheaper than a model for thousands of sessions). Other keys are ignored."""

    conversion_id: Text
    session_id: Text
    timestamp: Timestamp
    channel_label: Text
    holder_engagement: Flag
    closer_engagement: Flag
    conversion: Flag
    impression_interaction: Flag


class RedistributionPhase(BaseModel):
    """How one phase redistributes its shares (accepted, not applied by the emulator)."""

    direction: Literal["earlier_sessions_only", "any_session", "later_sessions_only"] | None = None
    receive_threshold: float | None = None
    redistribution_channel_labels: list[str] | None = None


class RedistributionParameter(BaseModel):
    """The optional ``redistribution_parameter``: one entry per phase."""

    initializer: RedistributionPhase | None = None
    holder: RedistributionPhase | None = None
    closer: RedistributionPhase | None = None


class ComputeRequest(BaseModel):
    """The body of ``POST /v1/compute_ihc``. Validated with ``context={"max_sessions": ...,
    "max_journeys": ...}`` it also holds a request to those limits (see ``parse_request``)."""

    customer_journeys: Annotated[list[Session], Field(min_length=1)]
    redistribution_parameter: RedistributionParameter | None = None

    @field_validator("customer_journeys", mode="before")
    @classmethod
    def _at_most_max_sessions(cls, value: Any, info: ValidationInfo) -> Any:
        limit = (info.context or {}).get("max_sessions")
        if limit is not None and isinstance(value, list) and len(value) > limit:
            raise ValueError(
                f"Too many sessions: {len(value)} in one request, at most {limit}. "
                "Split the journeys over more requests."
            )
        return value

    @model_validator(mode="after")
    def _at_most_max_journeys(self, info: ValidationInfo) -> ComputeRequest:
        limit = (info.context or {}).get("max_journeys")
        journeys = len({session["conversion_id"] for session in self.customer_journeys})
        if limit is not None and journeys > limit:
            raise ValueError(
                f"Too many journeys: {journeys} conversion_ids in one request, at most "
                f"{limit}. Split the journeys over more requests."
            )
        return self


def _rank(error: ErrorDetails) -> tuple[int, ...]:
    """Where a problem comes in the order the body is checked in (the first one is
    answered): the body's shape, the redistribution_parameter, the session limit, then each
    session in turn (its strings, its timestamp, its flags), then the journey limit."""
    loc = error["loc"]
    if not loc:
        return (0,) if error["type"] == "model_type" else (9,)
    if loc[0] == "redistribution_parameter":
        return (2,)
    if loc[0] != "customer_journeys":
        return (8,)
    if len(loc) == 1:
        return (3,) if error["type"] == "value_error" else (1,)
    index = int(loc[1])
    name = loc[2] if len(loc) > 2 else None
    if name is None:
        step = 0
    elif name in TEXT_FIELDS and error["type"] != "value_error":
        step = 1 + TEXT_FIELDS.index(str(name))
    elif name in FLAG_FIELDS:
        step = 1 + len(TEXT_FIELDS) + 1 + FLAG_FIELDS.index(str(name))
    else:  # the timestamp's format or value
        step = 1 + len(TEXT_FIELDS)
    return (4, index, step)


def _message(error: ErrorDetails) -> str:
    """The answer's message for one validation problem of a ComputeRequest."""
    loc, kind = error["loc"], error["type"]
    reason = error["msg"].removeprefix("Value error, ")
    if kind == "value_error" and len(loc) <= 1:  # the limits
        return reason
    if not loc:
        return 'The body must be a JSON object with "customer_journeys".'
    if loc == ("customer_journeys",):
        return {
            "missing": 'The body has no "customer_journeys".',
            "too_short": '"customer_journeys" is empty: send at least one session.',
        }.get(kind, '"customer_journeys" must be a list of sessions.')
    if loc == ("redistribution_parameter",):
        return '"redistribution_parameter" must be an object when given.'
    if loc[0] == "customer_journeys":
        where = f"customer_journeys[{loc[1]}]"
        if len(loc) == 2:
            return f"{where} must be an object, not {type(error['input']).__name__}."
        name = loc[2]
        if kind == "missing":
            return f"{where} has no {name}."
        if kind == "value_error":
            return f"{where}.{name} {reason}"
        if name in FLAG_FIELDS:
            return f"{where}.{name} must be 0 or 1, not {_short(error['input'])}."
        return f"{where}.{name} must be a non-empty string."
    return f"{'.'.join(str(part) for part in loc)}: {reason}."


def parse_request(body: bytes, config: EmulatorConfig) -> list[Session]:
    """The sessions of a request body (as plain dicts of the contract's fields), validated
    by ComputeRequest within the limits of ``config``; BadRequest with the first problem
    otherwise."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    limits = {"max_sessions": config.max_sessions, "max_journeys": config.max_journeys}
    try:
        request = ComputeRequest.model_validate(payload, context=limits)
    except ValidationError as exc:
        raise BadRequest(_message(min(exc.errors(), key=_rank))) from None
    return list(request.customer_journeys)


# Faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The fate of one request: ``kind`` "ok" or a fault kind; ``status`` the 5xx to answer;
    ``seed`` for choosing which journeys a partial or wrong_sum fault hits."""

    kind: str
    status: int = 200
    seed: int = 0


class FaultDecider:
    """Draws one Decision per request, thread-safely, from a FaultPlan."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._lock = threading.Lock()
        self._random = random.Random(plan.seed)
        self._script = list(plan.script)
        self._next = 0

    def decide(self) -> Decision:
        with self._lock:
            if self._next < len(self._script):
                step = self._script[self._next]
                self._next += 1
            else:
                step = self._draw()
            status = self._random.choice(SERVER_ERRORS)
            seed = self._random.getrandbits(32)
        if step.isdigit() and step != "429":
            return Decision("5xx", int(step), seed)
        return Decision(step, status if step == "5xx" else 200, seed)

    def _draw(self) -> str:
        draw = self._random.random()
        bound = 0.0
        for kind, rate in self._plan.rates().items():
            bound += rate
            if draw < bound:
                return kind
        return "ok"


def partial_failures(
    rows: list[dict[str, Any]], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Fail about a third of the journeys of ``rows`` (at least one): the remaining rows and
    the ``partialFailureErrors``."""
    journeys = list(dict.fromkeys(row["conversion_id"] for row in rows))
    failed = set(random.Random(seed).sample(journeys, max(1, len(journeys) // 3)))
    errors = [
        {"conversion_id": conversion_id, "error": PARTIAL_FAILURE_ERROR}
        for conversion_id in journeys
        if conversion_id in failed
    ]
    return [row for row in rows if row["conversion_id"] not in failed], errors


def scale_one_journey(rows: list[dict[str, Any]], seed: int, total: float) -> str:
    """Scale the ihc of one journey of ``rows`` (in place) to sum to ``total``; its id."""
    journeys: list[str] = list(dict.fromkeys(row["conversion_id"] for row in rows))
    chosen = random.Random(seed).choice(journeys)
    current = sum(row["ihc"] for row in rows if row["conversion_id"] == chosen)
    for row in rows:
        if row["conversion_id"] == chosen:
            row["ihc"] = row["ihc"] * total / current
    return chosen


# The server -----------------------------------------------------------------------------

DROP_KEY = "ihc_emulator.drop_connection"
"""The scope["state"] entry that closes the request's connection without an answer."""
DROP_MESSAGE = "ihc_emulator.drop"
"""A private ASGI message: the outermost layer closes the connection instead of answering."""


class Refused(Exception):
    """An error answer of the contract, ``{"statusCode": status, "message": message}``;
    ``outcome`` is what the stats count (default: the status); ``close`` asks the client
    to close the connection."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        outcome: str | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome
        self.headers = {**(headers or {}), **({"Connection": "close"} if close else {})}


class _JSONResponse(JSONResponse):
    """Compact JSON, ASCII-escaped (as the emulator has always answered)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _JSONResponse({"statusCode": status, "message": message}, status, dict(headers or {}))


class _DropResponse(Response):
    """No answer: the connection is closed (the ``drop`` fault)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": DROP_MESSAGE})


@dataclass
class _Exchange:
    """What the route that answered a request tells the accounting layer about it."""

    outcome: str | None = None
    journeys: int = 0
    sessions: int = 0


def _exchange(request: Request) -> _Exchange:
    exchange: _Exchange = request.scope["state"]["ihc_emulator.exchange"]
    return exchange


@dataclass(frozen=True)
class _Admission:
    """A request to the endpoint past its key: its fault, its body or what is wrong with
    how it was sent."""

    decision: Decision
    body: bytes
    problem: str | None


async def _read_body(request: Request) -> tuple[bytes, str | None]:
    """The body, or a problem with it (then the connection is closed after answering)."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return b"", "Send the body with a Content-Length, not chunked."
    try:
        length = int(request.headers.get("Content-Length", "0"))
    except ValueError:
        return b"", "The Content-Length header is not a number."
    if length < 0 or length > MAX_BODY_BYTES:
        return b"", f"The body must be at most {MAX_BODY_BYTES} bytes."
    return await request.body(), None


async def admitted(
    request: Request, key: Annotated[str | None, Header(alias="x-api-key")] = None
) -> _Admission:
    """Read the body, sleep the latency, check the key, then draw the request's fault:
    429 and 5xx are answered here, the others are left to the endpoint."""
    server: EmulatorServer = request.app.state.emulator
    config = server.config
    body, problem = await _read_body(request)
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    if key is None:
        raise Refused(401, "Unauthorized: send the API key in the x-api-key header.")
    if not hmac.compare_digest(key.encode(), config.api_key.encode()):
        raise Refused(403, "Forbidden: the x-api-key is not valid.")
    decision = server.decider.decide()
    if decision.kind == "429":
        seconds = config.faults.retry_after_s
        raise Refused(
            429,
            f"Too many requests (emulated throttling): retry after {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )
    if decision.kind == "5xx":
        raise Refused(decision.status, "Emulated server error: try again later.", outcome="5xx")
    return _Admission(decision, body, problem)


def create_app(server: EmulatorServer) -> _Accounting:
    """The emulator's ASGI application for ``server`` (its config, stats and faults)."""
    config = server.config
    app = FastAPI(title="IHC emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = server

    @app.get(HEALTH_PATH)
    async def health(request: Request) -> Response:
        """Which emulator this is (no key needed)."""
        _exchange(request).outcome = "health"
        return _JSONResponse({"service": SERVICE, "instance": server.instance})

    @app.post(PATH)
    async def compute(
        request: Request, admission: Annotated[_Admission, Depends(admitted)]
    ) -> Response:
        """Score the journeys of the body, with the request's fault."""
        exchange = _exchange(request)
        decision = admission.decision
        if decision.kind == "drop":
            exchange.outcome = "drop"
            return _DropResponse()
        if decision.kind == "slow":
            await asyncio.sleep(config.faults.slow_ms / 1000)
        if admission.problem is not None:
            raise Refused(400, admission.problem, close=True)
        conv_type_ids = parse_qs(request.url.query).get("conv_type_id", [])
        if len(conv_type_ids) != 1:
            raise BadRequest("Give exactly one conv_type_id query parameter.")
        if conv_type_ids[0] not in config.conv_type_ids:
            raise BadRequest(
                f"Unknown conv_type_id {_short(conv_type_ids[0])}; known: "
                f"{', '.join(sorted(config.conv_type_ids))}."
            )
        rows = compute_ihc(parse_request(admission.body, config))
        errors: list[dict[str, str]] = []
        if decision.kind == "partial":
            rows, errors = partial_failures(rows, decision.seed)
        elif decision.kind == "wrong_sum":
            scale_one_journey(rows, decision.seed, config.faults.wrong_sum_total)
        status = 206 if errors else 200
        exchange.outcome = decision.kind
        exchange.journeys = len({row["conversion_id"] for row in rows})
        exchange.sessions = len(rows)
        body = {"statusCode": status, "value": rows, "partialFailureErrors": errors}
        return _JSONResponse(body, status)

    @app.post("/{path:path}")
    async def not_found(request: Request) -> Response:
        _, problem = await _read_body(request)
        raise Refused(404, f"Not found: the endpoint is POST {PATH}.", close=problem is not None)

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def wrong_method() -> Response:
        raise Refused(405, f"Use POST {PATH}.", headers={"Allow": "POST"})

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        _exchange(request).outcome = exc.outcome
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return _error(400, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette raises the exception again after this answer: _Accounting logs it.
        return _error(500, "Internal emulator error.", {"Connection": "close"})

    return _Accounting(app, server)


class _Accounting:
    """The outermost ASGI layer: counts and logs each request before its answer goes out
    (so a client that has its answer sees it in the stats), closes the connection of a
    dropped one, and lets requests still sleeping at shutdown end quietly."""

    def __init__(self, app: FastAPI, server: EmulatorServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        stats = self.server.stats
        exchange = _Exchange()
        state = scope.setdefault("state", {})
        state["ihc_emulator.exchange"] = exchange
        started = time.monotonic()
        answered = False
        stats._begin()

        def account(status: int | None) -> None:
            nonlocal answered
            answered = True
            outcome = exchange.outcome or ("drop" if status is None else str(status))
            stats._end(outcome, status, exchange.journeys, exchange.sessions)
            shown = "dropped" if status is None else str(status)
            logger.info(
                "%s %s -> %s: %d journeys, %d sessions, %d ms",
                scope["method"],
                scope["path"],
                shown if outcome in (shown, "drop") else f"{shown} {outcome}",
                exchange.journeys,
                exchange.sessions,
                (time.monotonic() - started) * 1000,
            )

        async def accounted(message: Any) -> None:
            if message["type"] == "http.response.start":
                account(message["status"])
            elif message["type"] == DROP_MESSAGE:
                account(None)
                state[DROP_KEY]()
                await asyncio.sleep(0)  # the server sees the connection lost, sends nothing
                return
            await send(message)

        try:
            await self.app(scope, receive, accounted)
        except asyncio.CancelledError:
            if not self.server.stopping:
                raise
            if not answered:
                stats._abandon()
        except Exception:
            logger.exception("The emulator failed on %s %s", scope["method"], scope["path"])
            if not answered:
                raise


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, giving each request a way to close its connection
    without an answer (ASGI has no message for that): ``scope["state"][DROP_KEY]``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, DROP_KEY: transport.abort}


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, stopping within ``poll_interval`` of a shutdown and without
    waiting for requests still in flight (their connections are closed)."""

    poll_interval = 0.1

    def __init__(self, config: uvicorn.Config, emulator: EmulatorServer) -> None:
        super().__init__(config)
        self.emulator = emulator

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 1
            await asyncio.sleep(self.poll_interval)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.emulator.stopping = True
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.transport.abort()
        await asyncio.sleep(0)  # the connections learn that they are closed
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class EmulatorServer:
    """The emulator's HTTP server (uvicorn). Listening from construction, so a port in use
    is an OSError at once and clients that connect early wait; it answers while
    ``serve_forever`` runs, until ``shutdown``; ``server_close`` releases the port."""

    def __init__(self, config: EmulatorConfig, address: tuple[str, int]) -> None:
        self.config = config
        self.instance = secrets.token_hex(8)
        """Random per server: what GET /health names, to tell this server from others."""
        self.stats = EmulatorStats()
        self.decider = FaultDecider(config.faults)
        self.stopping = False
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._uvicorn = _Uvicorn(
            uvicorn.Config(
                create_app(self),
                http=_Protocol,
                loop="asyncio",
                lifespan="off",
                ws="none",
                interface="asgi3",
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                headers=[("Server", SERVICE)],
                backlog=128,
                # Clients keep their connections between requests (as the runner's pool
                # does); uvicorn's 5 s default would close them under a slow client's
                # feet, racing its next request.
                timeout_keep_alive=300,
            ),
            self,
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """The base URL (without /v1/compute_ihc)."""
        host, port = self.server_address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        """Answer requests until ``shutdown`` (or, in the main thread, SIGINT or SIGTERM:
        then the signal is raised again once stopped, e.g. as KeyboardInterrupt)."""
        self._stopped.clear()
        self._uvicorn.poll_interval = poll_interval
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (running in another thread) and wait until it has."""
        self.stopping = True
        self._uvicorn.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        """Release the port."""
        self.socket.close()


def make_server(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """A bound emulator server (port 0: any free port); run it with ``serve_forever()``."""
    return EmulatorServer(config, (host, port))


@dataclass(frozen=True)
class RunningEmulator:
    """An emulator serving in a background thread (see ``serve_in_thread``)."""

    url: str
    stats: EmulatorStats
    config: EmulatorConfig
    instance: str

    def compute_url(self, conv_type_id: str = "default") -> str:
        return f"{self.url}{PATH}?conv_type_id={conv_type_id}"


@contextlib.contextmanager
def serve_in_thread(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Serve the emulator in a background thread while the block runs, then shut it down.
    Requests still sleeping (latency, slow faults) are not waited for."""
    server = make_server(config, host, port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = "ihc-emulator"
    thread.start()
    try:
        yield RunningEmulator(server.url, server.stats, config, server.instance)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class NotTheEmulator(Exception):
    """What answers at a URL is not the emulator instance that was expected there."""


def check_identity(url: str, instance: str, timeout: float = 10.0) -> None:
    """Return if GET {url}/health names the emulator ``instance``; NotTheEmulator, saying
    what answered instead, otherwise."""
    try:
        with urlopen(f"{url}{HEALTH_PATH}", timeout=timeout) as answer:
            text = answer.read(4096).decode("utf-8", "replace")
    except HTTPError as exc:
        raise NotTheEmulator(f"another program answers at {url} (HTTP {exc.code})") from None
    except OSError as exc:  # URLError included: nothing answers, or not in time
        raise NotTheEmulator(f"nothing answers at {url} ({exc})") from None
    try:
        identity = json.loads(text)
    except json.JSONDecodeError:
        identity = None
    if not isinstance(identity, dict) or identity.get("service") != SERVICE:
        raise NotTheEmulator(f"another program answers at {url} (it said {text[:80]!r})")
    if identity.get("instance") != instance:
        raise NotTheEmulator(
            f"another IHC emulator answers at {url} (instance {identity.get('instance')!r}, "
            f"not {instance!r})"
        )
