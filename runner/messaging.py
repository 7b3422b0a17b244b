"""App messaging: the engagement buckets become messages (`runner message`).

A messaging cycle is the `engagement_window_weeks` window that ends on the date the mart
`customer_engagement` was evaluated at (its `evaluated_at`, the build's as_of_date). For a
cycle the runner:

1. checks the templates (`messages/<BUCKET>.txt`, Jinja2, StrictUndefined): a template
   naming a placeholder that is not a figure of the customer's row fails before anything
   is read or written, naming the file and the placeholder;
2. reads `customer_engagement` as built, refusing (with the command to run) when it was
   evaluated at another date than the cycle asked for (`--as-of`), and refusing a new cycle
   that overlaps one already in the outbox (ends less than the window after or before it);
3. adds to the outbox (`app_messages` in the target's raw schema) one `pending` row per
   customer in BOOST or REWARD who has none for the cycle yet, with the rendered text, in
   one transaction; customers in NONE get nothing;
4. sends every message of the cycle that is not delivered (`pending`, `failed`, or
   `sending` left by a killed run), in chunks sent by parallel workers: a chunk's
   `sending` is committed before any of its requests, then each outcome (`queued` or
   `sent` with the gateway's id, or `failed` with the reason). The message's id is the
   gateway's idempotency key, so a message whose answer was lost (or whose run was
   killed) is sent again with the same key and the gateway answers with the first
   delivery instead of making a second one; the file sender finds the line it wrote.

Rerunning a cycle never messages anyone twice; a later cycle messages again. Dry runs
render and count, and write nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import requests
import tenacity

from runner.config import MessagingSettings, Settings
from runner.errors import RunnerError
from runner.progress import Progress
from runner.retries import WaitOrRetryAfter, redact, retry_after
from runner.warehouse import Warehouse

logger = logging.getLogger(__name__)

TEMPLATE_DIR = "messages"
MESSAGED_BUCKETS = ("BOOST", "REWARD")
"""The buckets that get a message, each with its template messages/<BUCKET>.txt."""
ENGAGEMENT_COLUMNS = (
    "customer_id",
    "message_bucket",
    "sessions_in_window",
    "purchases_in_window",
    "engagement_window_weeks",
    "avg_weekly_sessions",
    "spend_in_window",
    "low_spend_threshold",
    "high_activity_threshold",
    "evaluated_at",
)
"""The columns of marts.customer_engagement the runner reads (its contract)."""
PLACEHOLDERS = (*ENGAGEMENT_COLUMNS, "cycle_start_date", "cycle_end_date")
"""What a template may name: the customer's row of customer_engagement and the cycle."""

OUTBOX_COLUMNS = (
    "message_id",
    "customer_id",
    "cycle_start_date",
    "cycle_end_date",
    "message_bucket",
    "message_text",
    "template_file",
    "sender",
    "status",
    "status_reason",
    "provider_message_id",
    "attempts",
    "created_at",
    "sent_at",
    "updated_at",
)
PENDING, SENDING, QUEUED, SENT, FAILED = "pending", "sending", "queued", "sent", "failed"
STATUSES = (PENDING, SENDING, QUEUED, SENT, FAILED)
DELIVERED = (QUEUED, SENT)
NO_PHONE_NUMBER = "no phone number"
EXIT_INCOMPLETE = 3
"""`runner message`'s exit code when the run finished but some messages failed."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403})
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
CHUNK_PER_WORKER = 16
"""Messages marked `sending` together per worker (one transaction per chunk)."""
OUTBOX_SOURCE = "source:app.messages"
"""The dbt selector of the outbox: `runner message` builds what depends on it afterwards."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# --- templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    bucket: str
    path: Path
    relative: str  # messages/BOOST.txt, as the outbox records it
    render: Callable[[Mapping[str, Any]], str]


def load_templates(project_dir: Path) -> dict[str, Template]:
    """The template of every messaged bucket, checked: it exists, parses, and names only
    placeholders of PLACEHOLDERS (else a RunnerError naming the file and the placeholder)."""
    import jinja2
    import jinja2.meta

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
    )
    templates: dict[str, Template] = {}
    for bucket in MESSAGED_BUCKETS:
        relative = f"{TEMPLATE_DIR}/{bucket}.txt"
        path = project_dir / relative
        if not path.is_file():
            raise RunnerError(
                f"The template of the {bucket} messages, {path}, does not exist. Write it "
                f"(Jinja2 text with placeholders such as {{{{ spend_in_window }}}}); nothing "
                "was sent."
            )
        source = path.read_text(encoding="utf-8")
        try:
            parsed = environment.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise RunnerError(
                f"{path}, line {exc.lineno}: {exc.message}. Fix the template; nothing was sent."
            ) from None
        unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - set(PLACEHOLDERS))
        if unknown:
            raise RunnerError(
                f"{path} names the placeholder {', '.join(unknown)}, which is not a figure of "
                f"customer_engagement. Known placeholders: {', '.join(PLACEHOLDERS)}. Fix the "
                "template; nothing was sent."
            )
        compiled = environment.from_string(source)

        def render(values: Mapping[str, Any], compiled: Any = compiled, path: Path = path) -> str:
            try:
                return str(compiled.render(**values)).strip()
            except jinja2.TemplateError as exc:
                raise RunnerError(f"{path}: {exc}. Fix the template; nothing was sent.") from None

        templates[bucket] = Template(bucket, path, relative, render)
    return templates


def _template_value(value: Any) -> Any:
    """A figure as the text shows it: decimals as written (42.50), dates ISO."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


# --- the cycle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    start: date
    end: date
    weeks: int

    def describe(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()} ({self.weeks} weeks)"


@dataclass
class Message:
    """One outbox row, as the runner handles it."""

    message_id: str
    customer_id: str
    bucket: str
    text: str
    status: str = PENDING
    template_file: str = ""


def message_id(customer_id: str, cycle_end: date) -> str:
    """The message's id, the same on every run of the cycle: the gateway's idempotency key."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"app-message/{cycle_end.isoformat()}/{customer_id}"))


@dataclass
class Outbox:
    """The cycle's messages as rendered from the mart (not yet compared with the outbox)."""

    cycle: Cycle
    messages: list[Message]
    not_messaged: int  # customers in NONE

    def by_bucket(self) -> dict[str, int]:
        counts = Counter(message.bucket for message in self.messages)
        return {bucket: counts.get(bucket, 0) for bucket in MESSAGED_BUCKETS}


@dataclass(frozen=True)
class MessagingTables:
    engagement: str
    engagement_schema: str
    outbox: str
    contacts: str
    contacts_schema: str

    @classmethod
    def of(cls, settings: Settings) -> MessagingTables:
        return cls(
            engagement=settings.relation("marts", "customer_engagement"),
            engagement_schema=settings.schema("marts"),
            outbox=settings.relation("raw", "app_messages"),
            contacts=settings.relation("staging", "stg_app__contacts"),
            contacts_schema=settings.schema("staging"),
        )


def build_outbox(
    warehouse: Warehouse, tables: MessagingTables, templates: Mapping[str, Template],
    as_of: date | None,
) -> Outbox:  # fmt: skip
    """The cycle's messages rendered from customer_engagement as built; refuses figures
    evaluated at another date than `as_of`."""
    if not warehouse.table_exists(tables.engagement_schema, "customer_engagement"):
        raise RunnerError(
            f"{tables.engagement} does not exist yet. Load the app data and run "
            "`runner build` first."
        )
    _, rows = warehouse.query(
        f"select {', '.join(ENGAGEMENT_COLUMNS)} from {tables.engagement} order by customer_id"
    )
    evaluated = sorted({row[ENGAGEMENT_COLUMNS.index("evaluated_at")] for row in rows})
    weeks_seen = sorted({row[ENGAGEMENT_COLUMNS.index("engagement_window_weeks")] for row in rows})
    if not rows:
        raise RunnerError(
            f"{tables.engagement} is empty: there are no current customers to message. Load "
            "customers and app data, then run `runner build`."
        )
    end = evaluated[-1]
    weeks = int(weeks_seen[-1])
    if as_of is not None and as_of != end:
        raise RunnerError(
            f"{tables.engagement} was evaluated at {end.isoformat()}, not at "
            f"{as_of.isoformat()}: its figures are not those of the cycle asked for, so "
            "nothing was sent. Build the marts for that date first: `runner build -- --vars "
            f"'{{as_of_date: {as_of.isoformat()}}}'`, then run `runner message --as-of "
            f"{as_of.isoformat()}` again."
        )
    cycle = Cycle(end - timedelta(days=7 * weeks - 1), end, weeks)
    messages: list[Message] = []
    not_messaged = 0
    for row in rows:
        values = {name: _template_value(v) for name, v in zip(ENGAGEMENT_COLUMNS, row, strict=True)}
        bucket = str(values["message_bucket"])
        if bucket not in templates:
            not_messaged += 1
            continue
        values |= {"cycle_start_date": cycle.start, "cycle_end_date": cycle.end}
        template = templates[bucket]
        customer_id = str(values["customer_id"])
        messages.append(
            Message(
                message_id(customer_id, cycle.end),
                customer_id,
                bucket,
                template.render(values),
                template_file=template.relative,
            )
        )
    return Outbox(cycle, messages, not_messaged)


def check_overlap(warehouse: Warehouse, tables: MessagingTables, cycle: Cycle) -> None:
    """Refuse a new cycle that shares days with a cycle already in the outbox (rerunning a
    cycle itself is always allowed: it sends only what was not sent)."""
    _, rows = warehouse.query(
        f"select distinct cycle_end_date from {tables.outbox} order by cycle_end_date"
    )
    ends = [row[0] for row in rows]
    if cycle.end in ends:
        return
    length = 7 * cycle.weeks
    for other in ends:
        if abs((cycle.end - other).days) < length:
            after = other + timedelta(days=length)
            raise RunnerError(
                f"The outbox already has the cycle ending {other.isoformat()}, and a cycle is "
                f"{cycle.weeks} weeks long: a cycle ending {cycle.end.isoformat()} would "
                "message customers again about the same weeks, so nothing was sent. Message "
                f"the next cycle on or after {after.isoformat()} (`runner build -- --vars "
                f"'{{as_of_date: {after.isoformat()}}}'`, then `runner message`), or rerun "
                f"the cycle ending {other.isoformat()} (`runner build -- --vars "
                f"'{{as_of_date: {other.isoformat()}}}'`, then `runner message`): it sends "
                "only what was not sent."
            )


# --- senders -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A sender's answer for one message."""

    status: str  # queued, sent or failed
    reason: str | None = None
    provider_message_id: str | None = None
    attempts: int = 1


class Sender(Protocol):
    """Sends one message; never raises for a message's own trouble (it returns a failed
    Delivery), only for what stops the run (RunnerError)."""

    name: str
    needs_phone_number: bool

    def send(self, message: Message, cycle: Cycle, phone_number: str | None) -> Delivery: ...

    def stop(self) -> None:
        """The run is stopping (Ctrl-C, an error): no new attempt, no more waiting."""

    def close(self) -> None: ...


class FileSender:
    """Writes one JSON line per message to a file (and logs it): for development, demos and
    systems that pick the file up. A message already in the file (a killed run's) is not
    written again."""

    name = "file"
    needs_phone_number = False

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written: set[str] = set()
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        self.written.add(str(json.loads(line)["message_id"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill: its message is written again
        self._handle = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def send(self, message: Message, cycle: Cycle, phone_number: str | None) -> Delivery:
        with self._lock:
            return self._send(message, cycle)

    def _send(self, message: Message, cycle: Cycle) -> Delivery:
        if message.message_id not in self.written:
            line = {
                "message_id": message.message_id,
                "customer_id": message.customer_id,
                "cycle_end_date": cycle.end.isoformat(),
                "message_bucket": message.bucket,
                "body": message.text,
                "written_at": _now().isoformat(sep=" "),
            }
            self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.written.add(message.message_id)
            logger.info(
                "message %s to customer %s written", message.message_id, message.customer_id
            )
        return Delivery(SENT, provider_message_id=None)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self._handle.close()


class _Stopped(Exception):
    """Raised in a sending thread when the run stops: the message stays `sending`."""


@dataclass(frozen=True)
class _Attempt:
    delivery: Delivery | None = None
    error: str = ""
    retry_after: float | None = None


class TwilioSender:
    """Twilio's Messages API over plain HTTP: `POST {api_url}/2010-04-01/Accounts/{sid}/
    Messages.json`, form-encoded To, From (or MessagingServiceSid) and Body, HTTP basic auth
    AccountSid:AuthToken, the message's id as I-Twilio-Idempotency-Token. 429 (honouring
    Retry-After), 5xx, timeouts and dropped connections are retried with exponential backoff
    and jitter; another 4xx fails the message with Twilio's code and message; 401/403 stop
    the run."""

    name = "twilio"
    needs_phone_number = True

    def __init__(
        self, settings: MessagingSettings, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.url = (
            f"{settings.api_url.rstrip('/')}/2010-04-01/Accounts/{settings.account_sid}"
            "/Messages.json"
        )
        self._stopping = threading.Event()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @property
    def http(self) -> requests.Session:
        """This thread's HTTP session (a requests.Session is not shared between threads)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = (self.settings.account_sid, self.settings.auth_token)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def stop(self) -> None:
        self._stopping.set()

    def _pause(self, seconds: float) -> None:
        """The backoff between attempts, cut short when the run stops."""
        if self._stopping.wait(seconds):
            raise _Stopped

    def _scrub(self, text: str) -> str:
        return redact(text, self.settings.auth_token)

    def send(self, message: Message, cycle: Cycle, phone_number: str | None) -> Delivery:
        settings = self.settings
        form = {"To": phone_number or "", "Body": message.text}
        if settings.messaging_service_sid:
            form["MessagingServiceSid"] = settings.messaging_service_sid
        else:
            form["From"] = settings.from_number
        attempts = 0

        def attempt() -> _Attempt:
            nonlocal attempts
            if self._stopping.is_set():
                raise _Stopped
            attempts += 1
            try:
                response = self.http.post(
                    self.url,
                    data=form,
                    headers={IDEMPOTENCY_HEADER: message.message_id},
                    timeout=settings.timeout_seconds,
                )
            except requests.Timeout:
                return _Attempt(error=f"no answer within {settings.timeout_seconds:g} s")
            except requests.ConnectionError as exc:
                return _Attempt(error=f"connection failed ({type(exc).__name__})")
            if response.status_code in FATAL_STATUSES:
                raise RunnerError(
                    f"The SMS gateway refused the account (HTTP {response.status_code}: "
                    f"{self._scrub(_twilio_reason(response))}). Check TWILIO_ACCOUNT_SID and "
                    "TWILIO_AUTH_TOKEN (and TWILIO_API_URL); the messages not sent stay in "
                    "the outbox for the next run."
                )
            if response.status_code in (200, 201):
                return _Attempt(_accepted(response, attempts))
            reason = self._scrub(_twilio_reason(response))
            if response.status_code not in RETRY_STATUSES:
                return _Attempt(Delivery(FAILED, reason, attempts=attempts))
            hint = retry_after(response) if response.status_code == 429 else None
            return _Attempt(error=reason, retry_after=hint)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.max_attempts),
            wait=WaitOrRetryAfter(settings.backoff_seconds, settings.max_backoff_seconds),
            retry=tenacity.retry_if_result(lambda tried: tried.delivery is None),
            sleep=self._pause if self.sleep is time.sleep else self.sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        last: _Attempt | None = retrying(attempt)
        if last is not None and last.delivery is not None:
            return last.delivery
        error = last.error if last else "no attempt"
        return Delivery(
            FAILED, f"gave up after {settings.max_attempts} attempts: {error}", attempts=attempts
        )

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()


def _twilio_reason(response: requests.Response) -> str:
    """Twilio's error as one line: `Twilio error 21211: The 'To' number ... (HTTP 400,
    more_info)`, or the status and the start of the body when it is not Twilio's JSON."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        code = body.get("code")
        more = body.get("more_info")
        where = f"HTTP {response.status_code}" + (f", {more}" if more else "")
        return f"Twilio error {code}: {body['message']} ({where})"
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _accepted(response: requests.Response, attempts: int) -> Delivery:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = str(body.get("status") or "queued").lower()
    sid = body.get("sid")
    if status in ("failed", "undelivered"):
        reason = f"Twilio error {body.get('error_code')}: {body.get('error_message')}"
        return Delivery(FAILED, reason, sid, attempts)
    mapped = SENT if status in ("sent", "delivered", "read") else QUEUED
    return Delivery(mapped, None, str(sid) if sid else None, attempts)


def make_sender(settings: MessagingSettings) -> Sender:
    if settings.sender == "twilio":
        return TwilioSender(settings)
    return FileSender(settings.message_file)


# --- the run -------------------------------------------------------------------------------


@dataclass
class MessageSummary:
    cycle: Cycle
    sender: str
    outbox: str
    dry_run: bool = False
    rendered: int = 0
    by_bucket: dict[str, int] = field(default_factory=dict)
    not_messaged: int = 0
    new: int = 0
    already_in_outbox: int = 0
    already_delivered: int = 0
    resolved_sending: int = 0  # left `sending` by an earlier run, resolved now
    outcomes: Counter[str] = field(default_factory=Counter)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    samples: list[Message] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.outcomes[FAILED]

    @property
    def complete(self) -> bool:
        return self.failed == 0

    def describe(self) -> str:
        buckets = ", ".join(f"{b} {n}" for b, n in self.by_bucket.items())
        lines = [
            f"Messaging cycle {self.cycle.describe()}, sender {self.sender}.",
            f"  {self.rendered} messages ({buckets}); {self.not_messaged} customers in NONE "
            "get none.",
        ]
        if self.dry_run:
            lines[0] = f"Dry run: nothing sent, nothing written. {lines[0]}"
            lines.append(
                f"  {self.already_in_outbox} already in the outbox {self.outbox} "
                f"({self.already_delivered} delivered); a run would add {self.new}."
            )
            for sample in self.samples:
                lines.append(f"  {sample.bucket} to customer {sample.customer_id}: {sample.text}")
            return "\n".join(lines)
        sent_now = self.outcomes[SENT] + self.outcomes[QUEUED]
        lines.append(
            f"  outbox {self.outbox}: {self.new} new, {self.already_in_outbox} there before "
            f"({self.already_delivered} of them delivered earlier: not sent again)."
        )
        line = (
            f"  sent now {sent_now} (sent {self.outcomes[SENT]}, queued "
            f"{self.outcomes[QUEUED]}), failed {self.failed}"
        )
        if self.failure_reasons:
            reasons = "; ".join(f"{r}: {n}" for r, n in self.failure_reasons.most_common(5))
            line += f" ({reasons})"
        lines.append(line)
        if self.resolved_sending:
            lines.append(
                f"  {self.resolved_sending} left 'sending' by an earlier run were resolved "
                "with the same idempotency key (none delivered twice)."
            )
        return "\n".join(lines)


def _reason_kind(reason: str | None) -> str:
    text = reason or "unknown"
    return text.split(" (HTTP")[0][:120]


def run_messaging(
    warehouse: Warehouse,
    settings: Settings,
    messaging: MessagingSettings,
    as_of: date | None = None,
    dry_run: bool = False,
    sender: Sender | None = None,
    progress: Progress | None = None,
    samples: int = 3,
) -> MessageSummary:
    """Build the cycle's outbox and send it (see the module's docstring)."""
    templates = load_templates(settings.project_dir)
    if not dry_run and not warehouse.updates_in_place:
        raise RunnerError(
            f"`runner message` cannot send on target {settings.target!r}: the outbox records "
            "each delivery by updating its message's row, and Spark's Parquet tables (no Delta "
            "Lake) cannot update rows. Nothing was sent. `runner message --dry-run` works "
            "here; send from a DuckDB or PostgreSQL target."
        )
    if not dry_run:
        messaging.check_credentials()
    tables = MessagingTables.of(settings)
    outbox_exists = warehouse.table_exists(settings.schema("raw"), "app_messages")
    rendered = build_outbox(warehouse, tables, templates, as_of)
    cycle = rendered.cycle
    summary = MessageSummary(
        cycle,
        messaging.describe() if sender is None else sender.name,
        tables.outbox,
        dry_run=dry_run,
        rendered=len(rendered.messages),
        by_bucket=rendered.by_bucket(),
        not_messaged=rendered.not_messaged,
    )
    existing: dict[str, str] = {}
    if outbox_exists:
        check_overlap(warehouse, tables, cycle)
        existing = _statuses(warehouse, tables, cycle)
    summary.already_in_outbox = len(existing)
    summary.already_delivered = sum(1 for status in existing.values() if status in DELIVERED)
    new = [m for m in rendered.messages if m.customer_id not in existing]
    summary.new = len(new)
    if dry_run:
        summary.samples = rendered.messages[:samples]
        return summary

    warehouse.ensure_raw_tables()
    if not warehouse.try_exclusive("runner message"):
        raise RunnerError(
            "Another `runner message` run is in progress on this warehouse; this one did "
            "nothing (two at once could send the same message twice). Wait for it to finish, "
            "then run this again: it sends only what was not sent."
        )
    _insert_new(warehouse, tables, cycle, new, messaging.sender if sender is None else sender.name)
    to_send = _to_send(warehouse, tables, cycle)
    owned = sender is None
    active = make_sender(messaging) if sender is None else sender
    contacts = _contacts(warehouse, tables) if active.needs_phone_number else {}
    if progress:
        progress.start(len(to_send))
    try:
        _send_all(warehouse, tables, cycle, to_send, contacts, active, messaging, summary, progress)
    finally:
        if owned:
            active.close()
    return summary


def _send_all(
    warehouse: Warehouse, tables: MessagingTables, cycle: Cycle, to_send: Sequence[Message],
    contacts: Mapping[str, str], sender: Sender, messaging: MessagingSettings,
    summary: MessageSummary, progress: Progress | None,
) -> None:  # fmt: skip
    """Send in chunks: a chunk's messages are marked `sending` in one transaction (durable
    before any of their requests), sent by `messaging.workers` threads, and each outcome
    is written as it comes (those that come together in one transaction). Only this thread
    writes. A run stopped half-way leaves at most one chunk `sending`, which the next run
    resolves with the idempotency keys."""

    def count(outcome: Delivery) -> None:
        summary.outcomes[outcome.status] += 1
        if outcome.status == FAILED:
            summary.failure_reasons[_reason_kind(outcome.reason)] += 1
        if progress:
            progress.advance(1)

    workers = max(1, messaging.workers)
    chunk_size = CHUNK_PER_WORKER * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runner-message") as pool:
        for first in range(0, len(to_send), chunk_size):
            chunk = to_send[first : first + chunk_size]
            summary.resolved_sending += sum(1 for m in chunk if m.status == SENDING)
            unreachable = [
                m for m in chunk if sender.needs_phone_number and not contacts.get(m.customer_id)
            ]
            sendable = [m for m in chunk if m not in unreachable]
            with warehouse.transaction():
                for message in unreachable:
                    _record(
                        warehouse, tables, message, Delivery(FAILED, NO_PHONE_NUMBER, attempts=0)
                    )
                if sendable:
                    ids = [m.message_id for m in sendable]
                    warehouse.execute(
                        f"update {tables.outbox} set status = ?, sender = ?, updated_at = ? "
                        f"where message_id in ({', '.join('?' for _ in ids)})",
                        (SENDING, sender.name, _now(), *ids),
                    )
            for _ in unreachable:
                count(Delivery(FAILED, NO_PHONE_NUMBER))
            futures = {
                pool.submit(sender.send, m, cycle, contacts.get(m.customer_id)): m for m in sendable
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    outcomes: list[tuple[Message, Delivery]] = []
                    stop: RunnerError | None = None
                    for future in done:
                        try:
                            outcomes.append((futures[future], future.result()))
                        except RunnerError as exc:  # 401/403: not accepted; the run stops
                            outcomes.append((futures[future], Delivery(FAILED, exc.message[:500])))
                            stop = exc
                    with warehouse.transaction():
                        for message, outcome in outcomes:
                            _record(warehouse, tables, message, outcome)
                    for _, outcome in outcomes:
                        count(outcome)
                    if stop is not None:
                        raise stop
            except BaseException:
                sender.stop()
                for future in pending:
                    future.cancel()
                raise


def _statuses(warehouse: Warehouse, tables: MessagingTables, cycle: Cycle) -> dict[str, str]:
    _, rows = warehouse.query(
        f"select customer_id, status from {tables.outbox} where cycle_end_date = ?",
        (cycle.end,),
    )
    return {str(customer_id): str(status) for customer_id, status in rows}


def _insert_new(
    warehouse: Warehouse, tables: MessagingTables, cycle: Cycle, messages: Sequence[Message],
    sender: str,
) -> None:  # fmt: skip
    """The new messages, `pending`, in one transaction (a rerun finds them there)."""
    if not messages:
        return
    now = _now().isoformat(sep=" ")
    rows = [
        (
            m.message_id, m.customer_id, cycle.start.isoformat(), cycle.end.isoformat(),
            m.bucket, m.text, m.template_file, sender, PENDING, None, None, 0, now, None, now,
        )
        for m in messages
    ]  # fmt: skip
    with warehouse.transaction():
        warehouse.append_rows(tables.outbox, OUTBOX_COLUMNS, rows)


def _to_send(warehouse: Warehouse, tables: MessagingTables, cycle: Cycle) -> list[Message]:
    """The cycle's messages not delivered: pending, failed, or left sending by a killed run."""
    _, rows = warehouse.query(
        f"select message_id, customer_id, message_bucket, message_text, status, template_file "
        f"from {tables.outbox} where cycle_end_date = ? and status in (?, ?, ?) "
        "order by customer_id",
        (cycle.end, PENDING, SENDING, FAILED),
    )
    return [Message(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows]


def _contacts(warehouse: Warehouse, tables: MessagingTables) -> dict[str, str]:
    """Each customer's phone number (E.164), from the staged app contacts."""
    if not warehouse.table_exists(tables.contacts_schema, "stg_app__contacts"):
        return {}
    _, rows = warehouse.query(f"select customer_id, phone_number from {tables.contacts}")
    return {str(customer_id): str(phone) for customer_id, phone in rows}


def _record(
    warehouse: Warehouse, tables: MessagingTables, message: Message, delivery: Delivery
) -> None:
    now = _now()
    delivered = delivery.status in DELIVERED
    warehouse.execute(
        f"update {tables.outbox} set status = ?, status_reason = ?, "
        "provider_message_id = coalesce(?, provider_message_id), "
        "attempts = attempts + ?, sent_at = ?, updated_at = ? where message_id = ?",
        (
            delivery.status,
            delivery.reason,
            delivery.provider_message_id,
            delivery.attempts,
            now if delivered else None,
            now,
            message.message_id,
        ),
    )
