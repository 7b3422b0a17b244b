"""The IHC attribution round trip: journeys out of the warehouse, to the IHC API, and
the checked results back into the raw table `attribution_customer_journey`.

Every relation is the settings' target's (Settings.relation, AttributionTables): `raw.x`
and `intermediate.x` on a production target, `dev_raw.x`... for a target `dev`.

- Journeys come from the model `int_journeys_built` (the runner's interface to the
  project: documented as such in its YAML and the README), selected by the conversion's
  time in [start, end); conversions that already have results are skipped unless
  `force`.
- They go in requests of at most `max_journeys` journeys and `max_sessions` sessions;
  a journey is never split, and one longer than `max_sessions` is reported (as a
  reject) and not sent.
- Requests run in parallel threads. Each has a timeout; 429 (honouring Retry-After),
  5xx, timeouts and dropped connections are retried (tenacity) with exponential backoff
  and jitter, a bounded number of times; other 4xx are not retried; 401/403 stop the run.
- Every answer is checked: each conversion sent must come back, its ihc must sum to 1
  within `tolerance`, and its sessions must be ones that were sent. What fails, and
  what the API names in partialFailureErrors, goes to `attribution_rejects` (raw) with
  the reason, never to the results.
- Only the main thread writes: each request's results (and rejects) in one
  transaction. A conversion's earlier rows are replaced only by its complete, checked
  new answer, in that transaction; a failed request, a rejected conversion or one
  missing from the answer keeps its earlier rows as they were. Nothing is ever doubled,
  and a crash loses nothing already written; the next run finishes the rest.
- `attribution_runs` (raw) logs each run: "succeeded" when every selected conversion got
  results, "incomplete" when some did not (the summary counts them by reason; the CLI
  exits with EXIT_INCOMPLETE), "failed" after an error, "running" until it ends.
- The API key is only ever put in the request header: it is never printed, logged or
  written, and messages are scrubbed of it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import requests
import tenacity

from runner.config import Settings
from runner.errors import RunnerError, WarehouseConnectionLost
from runner.progress import Progress
from runner.retries import WaitOrRetryAfter, redact, retry_after
from runner.warehouse import Warehouse

logger = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "conv_id",
    "session_id",
    "ihc",
    "initializer",
    "holder",
    "closer",
    "run_id",
    "received_at",
)
REJECT_COLUMNS = ("run_id", "conv_id", "reason", "detail", "rejected_at")
EXIT_INCOMPLETE = 3
"""`runner attribute`'s exit code when the run finished but some selected conversions
got no results (errors exit 1)."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403})
RESULTS_SOURCE = "source:ihc.customer_journey"
"""The dbt selector of the results table (the source `runner attribute` writes back):
after a run, `runner attribute` builds `@` it, what depends on the results."""

ResultRow = tuple[Any, ...]
"""One row of attribution_customer_journey, in RESULT_COLUMNS order."""


@dataclass(frozen=True)
class AttributionTables:
    """The relations a run reads and writes, on the settings' target."""

    journeys: str  # the model int_journeys_built: the runner's interface (see its YAML)
    results: str
    rejects: str
    runs: str
    journeys_schema: str

    @classmethod
    def of(cls, settings: Settings) -> AttributionTables:
        return cls(
            journeys=settings.relation("intermediate", "int_journeys_built"),
            results=settings.relation("raw", "attribution_customer_journey"),
            rejects=settings.relation("raw", "attribution_rejects"),
            runs=settings.relation("raw", "attribution_runs"),
            journeys_schema=settings.schema("intermediate"),
        )


@dataclass(frozen=True)
class AttributionOptions:
    """Everything a run needs; the key comes from the environment (IHC_API_KEY)."""

    api_url: str
    api_key: str = field(repr=False)
    conv_type_id: str
    start_date: date | None = None
    end_date: date | None = None
    workers: int = 4
    max_journeys: int = 100
    max_sessions: int = 3000
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    tolerance: float = 1e-6
    force: bool = False


@dataclass
class Journey:
    """One conversion's journey, as the API wants its sessions."""

    conv_id: str
    sessions: list[dict[str, Any]]


@dataclass
class Reject:
    conv_id: str
    reason: str
    detail: str


@dataclass
class BatchAnswer:
    """What came back for one request: the body, or why there is none."""

    journeys: list[Journey]
    body: dict[str, Any] | None
    attempts: int
    error: str | None = None


@dataclass
class RunSummary:
    run_id: str
    started_at: datetime | None = None
    status: str = "running"
    journeys_selected: int = 0
    journeys_sent: int = 0
    journeys_skipped: int = 0
    conversions_written: int = 0
    conversions_rejected: int = 0
    requests: int = 0
    retries: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    message: str | None = None

    kept_earlier: int = 0
    """Conversions without new results that still have the rows of an earlier run."""

    @property
    def complete(self) -> bool:
        """Every selected conversion got results in this run."""
        return self.conversions_rejected == 0

    rejects_table: str = "attribution_rejects"
    """Where the rejects are (the relation on the run's target)."""

    def without_results(self) -> str:
        """How many selected conversions got no results in this run, and why."""
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reject_reasons.items()))
        text = (
            f"{self.conversions_rejected} of {self.journeys_selected} conversions got no "
            f"results: {reasons} (see {self.rejects_table})"
        )
        if self.kept_earlier:
            text += f"; {self.kept_earlier} of them keep their earlier results"
        return text

    def describe(self) -> str:
        lines = [
            f"Attribution run {self.run_id}: {self.status}.",
            f"  journeys selected {self.journeys_selected}, sent {self.journeys_sent}, "
            f"skipped {self.journeys_skipped} (longer than the session limit)",
            f"  conversions written {self.conversions_written}, "
            f"rejected {self.conversions_rejected}",
            f"  requests {self.requests}, of which retries {self.retries}",
        ]
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# --- selection -------------------------------------------------------------------------


def select_journeys(
    warehouse: Warehouse, tables: AttributionTables, start: date | None, end: date | None,
    force: bool,
) -> list[Journey]:  # fmt: skip
    """Journeys whose conversion time is in [start, end), in conversion order; without
    `force`, only conversions that have no results yet."""
    if not warehouse.table_exists(tables.journeys_schema, "int_journeys_built"):
        raise RunnerError(
            f"{tables.journeys} does not exist yet. Load marketing data "
            "(`runner load marketing PATH`) and run `runner build` first."
        )
    conditions: list[str] = ["1 = 1"]
    params: list[datetime] = []
    if start is not None:
        conditions.append("journeys.converted_at >= ?")
        params.append(datetime.combine(start, datetime.min.time()))
    if end is not None:
        conditions.append("journeys.converted_at < ?")
        params.append(datetime.combine(end, datetime.min.time()))
    if not force:
        conditions.append(
            f"not exists (select 1 from {tables.results} as done "
            "where done.conv_id = journeys.conv_id)"
        )
    _, rows = warehouse.query(
        "select journeys.conv_id, journeys.session_id, journeys.session_at, "
        "journeys.channel_name, journeys.holder_engagement, journeys.closer_engagement, "
        "journeys.conversion, journeys.impression_interaction "
        f"from {tables.journeys} as journeys "
        f"where {' and '.join(conditions)} "
        "order by journeys.converted_at, journeys.conv_id, journeys.session_position",
        params,
    )
    journeys: dict[str, Journey] = {}
    for conv_id, session_id, session_at, channel, holder, closer, conversion, impression in rows:
        journey = journeys.setdefault(conv_id, Journey(conv_id, []))
        journey.sessions.append(
            {
                "conversion_id": conv_id,
                "session_id": session_id,
                "timestamp": session_at.strftime("%Y-%m-%d %H:%M:%S"),
                "channel_label": channel,
                "holder_engagement": int(holder),
                "closer_engagement": int(closer),
                "conversion": int(conversion),
                "impression_interaction": int(impression),
            }
        )
    return list(journeys.values())


def plan_batches(
    journeys: Iterable[Journey], max_journeys: int, max_sessions: int
) -> tuple[list[list[Journey]], list[Journey]]:
    """Requests of whole journeys within both limits, and the journeys too long to send."""
    batches: list[list[Journey]] = []
    too_long: list[Journey] = []
    current: list[Journey] = []
    sessions = 0
    for journey in journeys:
        size = len(journey.sessions)
        if size > max_sessions:
            too_long.append(journey)
            continue
        if current and (len(current) >= max_journeys or sessions + size > max_sessions):
            batches.append(current)
            current, sessions = [], 0
        current.append(journey)
        sessions += size
    if current:
        batches.append(current)
    return batches, too_long


# --- requests --------------------------------------------------------------------------


class FatalAnswer(RunnerError):
    """An answer that makes every further request pointless (wrong or missing key)."""


@dataclass(frozen=True)
class _Attempt:
    """One try of a request: the answer to keep (`answer`), or why another try may help."""

    answer: BatchAnswer | None = None
    error: str = ""
    retry_after: float | None = None


def post_batch(
    http: requests.Session,
    options: AttributionOptions,
    journeys: list[Journey],
    sleep: Callable[[float], None] = time.sleep,
) -> BatchAnswer:
    """Send one request, retrying what can be retried (at most options.max_attempts
    tries, waiting with `sleep` between them); never raises for HTTP trouble except
    401/403 (FatalAnswer)."""
    url = f"{options.api_url.rstrip('/')}/v1/compute_ihc"
    body = {"customer_journeys": [s for journey in journeys for s in journey.sessions]}
    attempts = 0

    def attempt() -> _Attempt:
        nonlocal attempts
        attempts += 1
        try:
            response = http.post(
                url,
                params={"conv_type_id": options.conv_type_id},
                json=body,
                headers={"x-api-key": options.api_key},
                timeout=options.timeout_seconds,
            )
        except requests.Timeout:
            return _Attempt(error=f"no answer within {options.timeout_seconds:g} s")
        except requests.ConnectionError as exc:
            return _Attempt(error=f"connection failed ({type(exc).__name__})")
        if response.status_code in FATAL_STATUSES:
            raise FatalAnswer(
                f"The IHC API refused the API key (HTTP {response.status_code}). "
                "Check IHC_API_KEY (and IHC_API_URL)."
            )
        if response.status_code in (200, 206):
            try:
                return _Attempt(BatchAnswer(journeys, response.json(), attempts))
            except ValueError:
                return _Attempt(BatchAnswer(journeys, None, attempts, "the answer is not JSON"))
        error = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code not in RETRY_STATUSES:
            return _Attempt(BatchAnswer(journeys, None, attempts, error))
        hint = retry_after(response) if response.status_code == 429 else None
        return _Attempt(error=error, retry_after=hint)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(options.max_attempts),
        wait=WaitOrRetryAfter(options.backoff_seconds, options.max_backoff_seconds),
        retry=tenacity.retry_if_result(lambda tried: tried.answer is None),
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    last: _Attempt | None = retrying(attempt)
    if last is not None and last.answer is not None:
        return last.answer
    return BatchAnswer(
        journeys,
        None,
        options.max_attempts,
        f"gave up after {options.max_attempts} attempts: {last.error if last else 'no attempt'}",
    )


# --- checking --------------------------------------------------------------------------


def check_answer(
    answer: BatchAnswer, tolerance: float, run_id: str, received_at: datetime
) -> tuple[list[ResultRow], list[Reject]]:
    """Result rows that passed every check, and a reject for every conversion that did
    not: each conversion sent comes back, its sessions are ones that were sent (once
    each), and its ihc sums to 1 within `tolerance`."""
    if answer.body is None:
        reason = "request_failed"
        return [], [Reject(j.conv_id, reason, answer.error or "") for j in answer.journeys]
    failures: dict[str, str] = {}
    for failure in answer.body.get("partialFailureErrors") or []:
        conv_id = failure.get("conversion_id") if isinstance(failure, dict) else None
        if conv_id is not None:
            failures[str(conv_id)] = str(failure.get("error") or failure)[:500]
    by_conversion: dict[str, list[dict[str, Any]]] = {}
    for row in answer.body.get("value") or []:
        if isinstance(row, dict) and "conversion_id" in row:
            by_conversion.setdefault(str(row["conversion_id"]), []).append(row)

    rows: list[ResultRow] = []
    rejects: list[Reject] = []
    for journey in answer.journeys:
        conv_id = journey.conv_id
        got = by_conversion.get(conv_id, [])
        sent = {s["session_id"] for s in journey.sessions}
        ids = [str(row.get("session_id")) for row in got]
        if conv_id in failures:
            rejects.append(Reject(conv_id, "partial_failure", failures[conv_id]))
            continue
        if not got:
            rejects.append(Reject(conv_id, "missing_from_answer", "the answer has no shares"))
            continue
        unknown = sorted(set(ids) - sent)
        if unknown:
            detail = f"sessions not sent: {', '.join(unknown[:5])}"
            rejects.append(Reject(conv_id, "unknown_session", detail))
            continue
        if len(ids) != len(set(ids)):
            rejects.append(Reject(conv_id, "duplicate_session", "a session came back twice"))
            continue
        try:
            shares = [float(row["ihc"]) for row in got]
        except (KeyError, TypeError, ValueError):
            rejects.append(Reject(conv_id, "malformed_share", "an ihc is missing or not a number"))
            continue
        total = sum(shares)
        if abs(total - 1.0) > tolerance:
            rejects.append(Reject(conv_id, "ihc_sum", f"ihc sums to {total:.9f}, not 1"))
            continue
        for row, share in zip(got, shares, strict=True):
            rows.append(
                (
                    conv_id,
                    str(row["session_id"]),
                    share,
                    _number(row.get("initializer")),
                    _number(row.get("holder")),
                    _number(row.get("closer")),
                    run_id,
                    received_at,
                )
            )
    return rows, rejects


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# --- writing ---------------------------------------------------------------------------


def write_answer(
    warehouse: Warehouse, tables: AttributionTables, rows: list[ResultRow],
    rejects: list[Reject], run_id: str, received_at: datetime,
) -> None:  # fmt: skip
    """One request's outcome in one transaction: the earlier results of exactly the
    conversions in `rows` (checked, complete answers) are replaced by them, never doubled;
    rejects are recorded and their conversions' earlier results left as they were."""
    conv_ids = sorted({row[0] for row in rows})
    with warehouse.transaction():
        if conv_ids and warehouse.updates_in_place:  # on Spark the newer answer is kept
            placeholders = ", ".join("?" for _ in conv_ids)  # by stg_ihc__attribution_results
            warehouse.execute(
                f"delete from {tables.results} where conv_id in ({placeholders})", conv_ids
            )
        warehouse.append_rows(tables.results, RESULT_COLUMNS, rows)
        warehouse.append_rows(
            tables.rejects,
            REJECT_COLUMNS,
            [(run_id, r.conv_id, r.reason, r.detail, received_at) for r in rejects],
        )


def _log_run(
    warehouse: Warehouse, tables: AttributionTables, summary: RunSummary,
    options: AttributionOptions,
) -> None:  # fmt: skip
    """The run's outcome in its line of the run log; on Spark, a newer line of the run
    (stg_runner__attribution_runs keeps each run's last)."""
    outcome = {
        "finished_at": None if summary.status == "running" else _now(),
        "journeys_selected": summary.journeys_selected,
        "journeys_sent": summary.journeys_sent,
        "journeys_skipped": summary.journeys_skipped,
        "conversions_written": summary.conversions_written,
        "conversions_rejected": summary.conversions_rejected,
        "requests": summary.requests,
        "retries": summary.retries,
        "status": summary.status,
        "message": redact(summary.message, options.api_key) if summary.message else None,
    }
    if warehouse.updates_in_place:
        warehouse.execute(
            f"update {tables.runs} set {', '.join(f'{name} = ?' for name in outcome)} "
            "where run_id = ?",
            (*outcome.values(), summary.run_id),
        )
    else:
        line = {**_run_start(summary, options), **outcome}
        warehouse.append_rows(tables.runs, tuple(line), [tuple(line.values())])


def _run_start(summary: RunSummary, options: AttributionOptions) -> dict[str, Any]:
    """The run log's columns known when a run starts."""
    return {
        "run_id": summary.run_id,
        "started_at": summary.started_at,
        "start_date": options.start_date,
        "end_date": options.end_date,
        "conv_type_id": options.conv_type_id,
        "api_url": redact(options.api_url, options.api_key),
        "status": "running",
    }


# --- the run ---------------------------------------------------------------------------


def run_attribution(
    warehouse: Warehouse,
    settings: Settings,
    options: AttributionOptions,
    progress: Progress | None = None,
) -> RunSummary:
    """Attribute every selected journey, on the settings' target; see the module's
    docstring. `progress` is told how far the run is."""
    tables = AttributionTables.of(settings)
    warehouse.ensure_raw_tables()
    if not warehouse.try_exclusive("runner attribute"):
        raise RunnerError(
            "Another `runner attribute` run is in progress on this warehouse; this one did "
            "nothing (two at once would send the same journeys twice). Wait for it to finish, "
            "then run this again: it sends only the conversions still without results."
        )
    started_at = _now()
    summary = RunSummary(
        run_id=f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        started_at=started_at,
        rejects_table=tables.rejects,
    )
    start = _run_start(summary, options)
    warehouse.execute(
        f"insert into {tables.runs} ({', '.join(start)}) values ({', '.join('?' for _ in start)})",
        tuple(start.values()),
    )
    try:
        journeys = select_journeys(
            warehouse, tables, options.start_date, options.end_date, options.force
        )
        summary.journeys_selected = len(journeys)
        batches, too_long = plan_batches(journeys, options.max_journeys, options.max_sessions)
        if progress:
            progress.start(len(journeys))
        if too_long:
            now = _now()
            rejects = [
                Reject(j.conv_id, "journey_too_long",
                       f"{len(j.sessions)} sessions > the limit of {options.max_sessions}")
                for j in too_long
            ]  # fmt: skip
            write_answer(warehouse, tables, [], rejects, summary.run_id, now)
            summary.journeys_skipped = len(too_long)
            _count_rejects(summary, rejects)
            if progress:
                progress.advance(len(too_long))
        _send_all(warehouse, tables, options, batches, summary, progress)
        if summary.complete:
            summary.status = "succeeded"
        else:
            summary.kept_earlier = _kept_earlier(warehouse, tables, summary.run_id)
            summary.status, summary.message = "incomplete", summary.without_results()
    except FatalAnswer as exc:
        summary.status, summary.message = "failed", exc.message
        _log_run(warehouse, tables, summary, options)
        raise
    except WarehouseConnectionLost as exc:  # nothing more can be written, not even the log
        raise RunnerError(
            f"The connection to the warehouse was lost during attribution run {summary.run_id} "
            f"({exc.reason}). What was written before is kept ({summary.conversions_written} "
            f"conversions with results, {summary.conversions_rejected} rejects); the answer "
            f"being written was rolled back, so nothing is doubled. The run stays 'running' in "
            f"{tables.runs}. Run the same command again: it sends only the conversions "
            "still without results."
        ) from None
    except BaseException as exc:
        summary.status = "failed"
        summary.message = redact(f"{type(exc).__name__}: {exc}", options.api_key)[:500]
        try:
            _log_run(warehouse, tables, summary, options)
        except Exception:  # the warehouse itself may be what failed
            logger.warning("could not record the failed run %s", summary.run_id)
        raise
    _log_run(warehouse, tables, summary, options)
    return summary


def _kept_earlier(warehouse: Warehouse, tables: AttributionTables, run_id: str) -> int:
    """Conversions rejected by this run that have results from an earlier one."""
    _, rows = warehouse.query(
        f"select count(distinct rejects.conv_id) from {tables.rejects} as rejects "
        f"where rejects.run_id = ? and exists (select 1 from {tables.results} "
        "as done where done.conv_id = rejects.conv_id)",
        (run_id,),
    )
    return int(rows[0][0])


def _count_rejects(summary: RunSummary, rejects: list[Reject]) -> None:
    summary.conversions_rejected += len(rejects)
    for reject in rejects:
        summary.reject_reasons[reject.reason] = summary.reject_reasons.get(reject.reason, 0) + 1


class RunStopped(Exception):
    """Raised in a request's thread when the run stopped: no further attempt is made."""


def _send_all(
    warehouse: Warehouse,
    tables: AttributionTables,
    options: AttributionOptions,
    batches: list[list[Journey]],
    summary: RunSummary,
    progress: Progress | None,
) -> None:
    """Requests in parallel threads (HTTP only); checking and writing in this thread.
    When this thread stops (Ctrl-C, an error), the requests in flight are not retried:
    their threads end after at most one --timeout instead of their whole backoff."""
    sessions: dict[int, requests.Session] = {}
    stopping = threading.Event()

    def pause(seconds: float) -> None:  # the backoff between attempts, cut short on a stop
        if stopping.wait(seconds):
            raise RunStopped

    def send(batch: list[Journey]) -> BatchAnswer:
        if stopping.is_set():
            raise RunStopped
        http = sessions.setdefault(threading.get_ident(), requests.Session())
        return post_batch(http, options, batch, sleep=pause)

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        pending: set[Future[BatchAnswer]] = {pool.submit(send, batch) for batch in batches}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    answer = future.result()  # FatalAnswer propagates from here
                    received_at = _now()
                    rows, rejects = check_answer(
                        answer, options.tolerance, summary.run_id, received_at
                    )
                    write_answer(warehouse, tables, rows, rejects, summary.run_id, received_at)
                    summary.requests += answer.attempts
                    summary.retries += answer.attempts - 1
                    summary.journeys_sent += len(answer.journeys)
                    summary.conversions_written += len({row[0] for row in rows})
                    _count_rejects(summary, rejects)
                    if progress:
                        progress.advance(len(answer.journeys))
        except BaseException:
            stopping.set()
            for future in pending:
                future.cancel()
            raise
        finally:
            for http in sessions.values():
                http.close()
