"""A local emulator of the IHC attribution service (``POST /v1/compute_ihc``), for tests,
benchmarks and offline development. Run it with ``runner ihc-emulator`` or, in Python, with
``serve_in_thread``. Standard library only.

The contract is the real service's::

    POST {base_url}/v1/compute_ihc?conv_type_id={conv_type_id}
    headers: x-api-key: {key}, Content-Type: application/json
    body: {"customer_journeys": [<session>, ...], "redistribution_parameter": {...}}

``customer_journeys`` is one flat list of the sessions of every journey in the request; the
sessions of a journey share a ``conversion_id``. A session has ``conversion_id``,
``session_id``, ``timestamp`` ("YYYY-MM-DD HH:MM:SS", UTC), ``channel_label`` (strings) and
``holder_engagement``, ``closer_engagement``, ``conversion``, ``impression_interaction`` (0 or
1). Other keys are ignored. ``redistribution_parameter`` is optional; it must be an object
when given, and the emulator ignores it.

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
  ``max_journeys`` journeys or ``max_sessions`` sessions; 404 for another path, 405 for
  another method. Error bodies are ``{"statusCode": <status>, "message": "..."}``.
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
the endpoint sleeps ``latency_ms`` before its key is checked (one thread per connection, so
parallel requests overlap). ``stats`` counts requests and outcomes. The API key is never
logged nor echoed in an answer.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import random
import re
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

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


def validate_session(index: int, session: Any) -> None:
    """Raise BadRequest unless ``session`` is a valid session (``index``: its position)."""
    where = f"customer_journeys[{index}]"
    if not isinstance(session, dict):
        raise BadRequest(f"{where} must be an object, not {type(session).__name__}.")
    for name in TEXT_FIELDS:
        if name not in session:
            raise BadRequest(f"{where} has no {name}.")
        if not isinstance(session[name], str) or not session[name]:
            raise BadRequest(f"{where}.{name} must be a non-empty string.")
    timestamp = session["timestamp"]
    if not TIMESTAMP.fullmatch(timestamp):
        raise BadRequest(
            f"{where}.timestamp must look like 'YYYY-MM-DD HH:MM:SS' (UTC), "
            f"not {_short(timestamp)}."
        )
    try:
        datetime.fromisoformat(timestamp)
    except ValueError:
        raise BadRequest(f"{where}.timestamp is not a valid time: {_short(timestamp)}.") from None
    for name in FLAG_FIELDS:
        if name not in session:
            raise BadRequest(f"{where} has no {name}.")
        value = session[name]
        if type(value) is not int or value not in (0, 1):
            raise BadRequest(f"{where}.{name} must be 0 or 1, not {_short(value)}.")


def parse_request(body: bytes, config: EmulatorConfig) -> list[dict[str, Any]]:
    """The sessions of a request body, validated and within the limits of ``config``;
    BadRequest otherwise."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise BadRequest('The body must be a JSON object with "customer_journeys".')
    if "customer_journeys" not in payload:
        raise BadRequest('The body has no "customer_journeys".')
    sessions = payload["customer_journeys"]
    if not isinstance(sessions, list):
        raise BadRequest('"customer_journeys" must be a list of sessions.')
    if not sessions:
        raise BadRequest('"customer_journeys" is empty: send at least one session.')
    redistribution = payload.get("redistribution_parameter")
    if redistribution is not None and not isinstance(redistribution, dict):
        raise BadRequest('"redistribution_parameter" must be an object when given.')
    if len(sessions) > config.max_sessions:
        raise BadRequest(
            f"Too many sessions: {len(sessions)} in one request, at most "
            f"{config.max_sessions}. Split the journeys over more requests."
        )
    for index, session in enumerate(sessions):
        validate_session(index, session)
    journeys = len({session["conversion_id"] for session in sessions})
    if journeys > config.max_journeys:
        raise BadRequest(
            f"Too many journeys: {journeys} conversion_ids in one request, at most "
            f"{config.max_journeys}. Split the journeys over more requests."
        )
    return sessions


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
    journeys = list(dict.fromkeys(row["conversion_id"] for row in rows))
    chosen = random.Random(seed).choice(journeys)
    current = sum(row["ihc"] for row in rows if row["conversion_id"] == chosen)
    for row in rows:
        if row["conversion_id"] == chosen:
            row["ihc"] = row["ihc"] * total / current
    return chosen


# The server -----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: drop the connection
    body: dict[str, Any] | None = None
    outcome: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    journeys: int = 0
    sessions: int = 0
    close: bool = False


def _error(status: int, message: str, **headers: str) -> Answer:
    return Answer(status, {"statusCode": status, "message": message}, str(status), headers)


class EmulatorServer(ThreadingHTTPServer):
    """The emulator's HTTP server: one daemon thread per connection."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, config: EmulatorConfig, address: tuple[str, int]) -> None:
        self.config = config
        self.instance = secrets.token_hex(8)
        """Random per server: what GET /health names, to tell this server from others."""
        self.stats = EmulatorStats()
        self.decider = FaultDecider(config.faults)
        super().__init__(address, EmulatorHandler)

    @property
    def url(self) -> str:
        """The base URL (without /v1/compute_ihc)."""
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up make a late answer fail: not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            logger.debug("Connection from %s failed", client_address[0], exc_info=True)
        else:
            logger.exception("Unexpected error serving %s", client_address[0])


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "ihc-emulator"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator logs one line per request itself."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path == HEALTH_PATH:
            identity = {"service": SERVICE, "instance": self.server.instance}
            self._serve(lambda: Answer(200, identity, outcome="health"))
        else:
            self._serve(lambda: _error(405, "Use POST /v1/compute_ihc.", Allow="POST"))

    def do_POST(self) -> None:
        self._serve(self._compute)

    def _serve(self, handle: Callable[[], Answer]) -> None:
        """Handle a request and count and log it before answering (so a client that has
        its answer sees it in the stats)."""
        stats = self.server.stats
        started = time.monotonic()
        stats._begin()
        try:
            answer = handle()
        except Exception:
            logger.exception("The emulator failed on %s %s", self.command, self.path)
            answer = _error(500, "Internal emulator error.")
            answer.close = True
        stats._end(answer.outcome, answer.status, answer.journeys, answer.sessions)
        status = "dropped" if answer.status is None else str(answer.status)
        logger.info(
            "%s %s -> %s: %d journeys, %d sessions, %d ms",
            self.command,
            urlsplit(self.path).path,
            status if answer.outcome in (status, "drop") else f"{status} {answer.outcome}",
            answer.journeys,
            answer.sessions,
            (time.monotonic() - started) * 1000,
        )
        if answer.status is None:
            self._drop()
        else:
            self._send(answer)

    def _compute(self) -> Answer:
        config = self.server.config
        url = urlsplit(self.path)
        body, problem = self._read_body()
        if url.path != PATH:
            answer = _error(404, f"Not found: the endpoint is POST {PATH}.")
            answer.close = problem is not None
            return answer
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        key = self.headers.get("x-api-key")
        if key is None:
            return _error(401, "Unauthorized: send the API key in the x-api-key header.")
        if not hmac.compare_digest(key.encode(), config.api_key.encode()):
            return _error(403, "Forbidden: the x-api-key is not valid.")

        decision = self.server.decider.decide()
        if decision.kind == "429":
            seconds = config.faults.retry_after_s
            answer = _error(
                429,
                f"Too many requests (emulated throttling): retry after {seconds} s.",
                **{"Retry-After": str(seconds)},
            )
            answer.outcome = "429"
            return answer
        if decision.kind == "5xx":
            answer = _error(decision.status, "Emulated server error: try again later.")
            answer.outcome = "5xx"
            return answer
        if decision.kind == "drop":
            return Answer(None, outcome="drop")
        if decision.kind == "slow":
            time.sleep(config.faults.slow_ms / 1000)

        try:
            if problem is not None:
                raise BadRequest(problem)
            conv_type_ids = parse_qs(url.query).get("conv_type_id", [])
            if len(conv_type_ids) != 1:
                raise BadRequest("Give exactly one conv_type_id query parameter.")
            if conv_type_ids[0] not in config.conv_type_ids:
                raise BadRequest(
                    f"Unknown conv_type_id {_short(conv_type_ids[0])}; known: "
                    f"{', '.join(sorted(config.conv_type_ids))}."
                )
            sessions = parse_request(body, config)
        except BadRequest as exc:
            answer = _error(400, exc.message)
            answer.close = problem is not None
            return answer

        rows = compute_ihc(sessions)
        errors: list[dict[str, str]] = []
        if decision.kind == "partial":
            rows, errors = partial_failures(rows, decision.seed)
        elif decision.kind == "wrong_sum":
            scale_one_journey(rows, decision.seed, config.faults.wrong_sum_total)
        status = 206 if errors else 200
        return Answer(
            status,
            {"statusCode": status, "value": rows, "partialFailureErrors": errors},
            outcome=decision.kind,
            journeys=len({row["conversion_id"] for row in rows}),
            sessions=len(rows),
        )

    def _read_body(self) -> tuple[bytes, str | None]:
        """The body, or a problem with it (then the connection is closed after answering)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"", "Send the body with a Content-Length, not chunked."
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return b"", "The Content-Length header is not a number."
        if length < 0 or length > MAX_BODY_BYTES:
            return b"", f"The body must be at most {MAX_BODY_BYTES} bytes."
        return self.rfile.read(length), None

    def _send(self, answer: Answer) -> None:
        data = json.dumps(answer.body, separators=(",", ":")).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection without writing a byte."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


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
    Handlers still sleeping (latency, slow faults) are daemon threads and are not waited
    for."""
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
