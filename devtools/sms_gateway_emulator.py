"""A local emulator of an SMS gateway in the shape of Twilio's Messages API, with faults, to
test `runner message`'s HTTP sender (runner/messaging.py TwilioSender) without an account.

The contract (the part of Twilio's API the runner uses):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``, ``From``
  (or ``MessagingServiceSid``) and ``Body``, HTTP basic auth ``AccountSid:AuthToken``.
  ``201`` with the message as JSON (``sid`` ``SM`` + 32 hex digits, ``status`` ``queued``,
  ``to``, ``from``, ``body``, ``date_created``, ...). Errors are Twilio's JSON,
  ``{"code", "message", "more_info", "status"}``: 401 code 20003 (wrong or missing
  credentials, or another account's path), 400 code 21604 / 21602 / 21603 (no To, Body,
  From), 400 code 21211 (To is not an E.164 number), 400 code 21610 (To is in
  ``blocked_numbers``: an unsubscribed recipient), 429 code 20429 with ``Retry-After``.
- ``I-Twilio-Idempotency-Token``: a request with a token already seen is answered with the
  first request's message (same sid) and delivers nothing.
- ``GET /health``: ``{"service": SERVICE, "instance": ...}``.

Faults (``FaultPlan``, rates drawn from a seeded generator, so a run is repeatable): 429 with
``Retry-After``, 500/503, a slow answer (``slow_ms`` more), and ``drop``: the message is
delivered, then the connection is closed without an answer (the answer is lost). ``hold_after``
delivers each message after the first N, then keeps its answer until ``release()``: a test
kills the client while it waits.

Every delivery is recorded (``GatewayStats.deliveries``), so a test can check that no customer
got two messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from devtools.ihc_emulator import DROP_KEY, _Protocol, _Uvicorn

SERVICE = "customer_analytics sms gateway emulator"
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


@dataclass(frozen=True)
class FaultPlan:
    """Shares of message requests (0 to 1) that get each fault, drawn in this order."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0  # delivered, then the connection closed without an answer
    rate_slow: float = 0.0
    slow_ms: int = 200
    retry_after_s: int = 1
    seed: int = 0
    script: tuple[str, ...] = ()
    """Faults for the first message requests, in order, before the rates apply: "429",
    "500", "503", "drop", "slow", or "" for none (deterministic tests)."""


@dataclass(frozen=True)
class GatewayConfig:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "emulator-token"
    latency_ms: int = 0
    faults: FaultPlan = field(default_factory=FaultPlan)
    blocked_numbers: frozenset[str] = frozenset()
    hold_after: int | None = None


@dataclass(frozen=True)
class Delivered:
    sid: str
    to: str
    sender: str
    body: str
    idempotency_token: str | None


class GatewayStats:
    """What the gateway did, thread-safe: requests by outcome, and every delivery."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self._deliveries: list[Delivered] = []
        self.held = 0

    def count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def deliver(self, delivery: Delivered) -> int:
        with self._lock:
            self._deliveries.append(delivery)
            return len(self._deliveries)

    @property
    def deliveries(self) -> list[Delivered]:
        with self._lock:
            return list(self._deliveries)

    def per_recipient(self) -> Counter[str]:
        return Counter(delivery.to for delivery in self.deliveries)


def _error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }
    return JSONResponse(body, status, dict(headers or {}))


class _Drop(Response):
    """No answer: the connection is closed."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["state"][DROP_KEY]()
        await asyncio.sleep(0)


def _form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body's fields (the last of a repeated one)."""
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def create_app(server: GatewayServer) -> FastAPI:
    app = FastAPI(title="SMS gateway emulator (Twilio Messages API shape)", openapi_url=None)
    config, stats = server.config, server.stats

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"service": SERVICE, "instance": server.instance}

    @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json")
    async def messages(account_sid: str, request: Request) -> Response:
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if not server.authorized(request.headers.get("authorization", ""), account_sid):
            stats.count("401")
            return _error(401, 20003, "Authenticate")
        form = _form(await request.body())
        token = request.headers.get("I-Twilio-Idempotency-Token")
        if token and token in server.answers:
            stats.count("replayed")
            return JSONResponse(server.answers[token], 201)
        fault, status = server.draw()
        if fault == "429":
            stats.count("429")
            seconds = config.faults.retry_after_s
            return _error(429, 20429, "Too Many Requests", {"Retry-After": str(seconds)})
        if fault == "5xx":
            stats.count(str(status))
            return _error(status, 20500, "Internal Server Error")
        if fault == "slow":
            await asyncio.sleep(config.faults.slow_ms / 1000)
        to = str(form.get("To") or "").strip()
        body = str(form.get("Body") or "")
        sender = str(form.get("From") or form.get("MessagingServiceSid") or "").strip()
        if not to:
            stats.count("400")
            return _error(400, 21604, "A 'To' phone number is required.")
        if not body:
            stats.count("400")
            return _error(400, 21602, "Message body is required.")
        if not sender:
            stats.count("400")
            return _error(400, 21603, "A 'From' phone number is required.")
        if not E164.fullmatch(to):
            stats.count("400")
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in config.blocked_numbers:
            stats.count("400")
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(timezone.utc), usegmt=True)
        answer = {
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "status": "queued",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }
        if token:
            server.answers[token] = answer
        delivered = stats.deliver(Delivered(sid, to, sender, body, token))
        if config.hold_after is not None and delivered > config.hold_after:
            stats.held += 1
            await asyncio.to_thread(server.released.wait)
        if fault == "drop":
            stats.count("drop")
            return _Drop()
        stats.count("201")
        return JSONResponse(answer, 201)

    return app


class GatewayServer:
    """The emulator's HTTP server, listening from construction (a port in use is an OSError
    at once); it answers while ``serve_forever`` runs, until ``shutdown``."""

    def __init__(self, config: GatewayConfig, address: tuple[str, int]) -> None:
        self.config = config
        self.instance = secrets.token_hex(8)
        self.stats = GatewayStats()
        self.answers: dict[str, dict[str, Any]] = {}
        self.released = threading.Event()
        self.stopping = False
        self._rng = random.Random(config.faults.seed)
        self._rng_lock = threading.Lock()
        self._drawn = 0
        host, port = address
        self.socket = socket.create_server((host, port), backlog=128)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._uvicorn = _Uvicorn(
            uvicorn.Config(
                create_app(self),
                http=_Protocol,
                loop="asyncio",
                lifespan="off",
                ws="none",
                log_config=None,
                access_log=False,
                server_header=False,
                timeout_keep_alive=300,
            ),
            self,  # type: ignore[arg-type]
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host}:{port}"

    def authorized(self, header: str, account_sid: str) -> bool:
        import base64
        import hmac

        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            hmac.compare_digest(user, self.config.account_sid)
            and hmac.compare_digest(password, self.config.auth_token)
            and account_sid == self.config.account_sid
        )

    def draw(self) -> tuple[str | None, int]:
        """The next request's fault (None: none) and, for 5xx, its status."""
        faults = self.config.faults
        with self._rng_lock:
            position, self._drawn = self._drawn, self._drawn + 1
            value = self._rng.random()
            status = self._rng.choice((500, 503))
        if position < len(faults.script):
            scripted = faults.script[position]
            if scripted in ("500", "503"):
                return "5xx", int(scripted)
            return scripted or None, status
        for kind, rate in (
            ("429", faults.rate_429),
            ("5xx", faults.rate_5xx),
            ("drop", faults.rate_drop),
            ("slow", faults.rate_slow),
        ):
            if value < rate:
                return kind, status
            value -= rate
        return None, status

    def release(self) -> None:
        """Answer the held requests (``hold_after``), and every later one at once."""
        self.released.set()

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        self._stopped.clear()
        self._uvicorn.poll_interval = poll_interval
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self.stopping = True
        self.released.set()
        self._uvicorn.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()


@dataclass(frozen=True)
class RunningGateway:
    """A gateway serving in a background thread (``serve_in_thread``)."""

    url: str
    config: GatewayConfig
    stats: GatewayStats
    server: GatewayServer

    def environment(self, from_number: str = "+15005550006") -> dict[str, str]:
        """The runner's environment for the twilio sender against this gateway."""
        return {
            "RUNNER_MESSAGE_SENDER": "twilio",
            "TWILIO_API_URL": self.url,
            "TWILIO_ACCOUNT_SID": self.config.account_sid,
            "TWILIO_AUTH_TOKEN": self.config.auth_token,
            "TWILIO_FROM": from_number,
        }


@contextlib.contextmanager
def serve_in_thread(
    config: GatewayConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningGateway]:
    """Serve the gateway in a background thread while the block runs, then shut it down."""
    server = GatewayServer(config or GatewayConfig(), (host, port))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = "sms-gateway-emulator"
    thread.start()
    try:
        yield RunningGateway(server.url, server.config, server.stats, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
