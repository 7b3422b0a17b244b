"""The HTTP intake of app events (runner.intake): POST /api/v1/app/sessions and
/api/v1/app/purchases, on DuckDB and PostgreSQL.

Accepted events are kept in the intake spool and land in raw.app_sessions /
raw.app_purchases at the next `runner build` or `runner load app-intake`, as the same
lines of a JSON Lines file would, once per event_id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
from click.testing import CliRunner
from hypothesis import strategies as st

from python_tests.conftest import API_KEY, AUTH
from python_tests.processes import wait_for
from python_tests.test_interactions import served_api
from python_tests.test_serve_during_build import BUILD_MINUTES, free_port, runner_process
from runner.cli import cli
from runner.config import INTAKE_DIR_VARIABLE, Settings, load_settings
from runner.intake import BadBody, PurchaseEvent, Spool, parse_body
from runner.warehouse import connect

SESSIONS = "/api/v1/app/sessions"
PURCHASES = "/api/v1/app/purchases"


@pytest.fixture(autouse=True)
def spool_in_the_test_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's spool in its own folder (PostgreSQL's default is the project's .tmp),
    and the tests' API key accepted by the `runner serve` processes the tests start."""
    monkeypatch.setenv(INTAKE_DIR_VARIABLE, str(tmp_path / "intake"))
    monkeypatch.setenv("RUNNER_API_KEYS", API_KEY)


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    with served_api(settings) as base:
        yield base


def post(base: str, route: str, body: Any, raw: bytes | None = None) -> requests.Response:
    data = raw if raw is not None else json.dumps(body).encode()
    response = requests.post(
        base + route, data=data, headers={"content-type": "application/json", **AUTH}, timeout=60
    )
    assert "Traceback" not in response.text
    assert response.headers["content-type"] == "application/json"
    return response


def session(event_id: str, customer_id: object = "c1", at: object = "2019-04-02T10:00:00Z"):
    return {"event_id": event_id, "customer_id": customer_id, "session_started_at": at}


def purchase(event_id: str, customer_id: object = "c1", at: object = "2019-04-02T10:00:00Z",
             amount: object = "12.50"):  # fmt: skip
    return {"event_id": event_id, "customer_id": customer_id, "purchased_at": at, "amount": amount}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def land(target: str) -> str:
    return invoke("load", "app-intake", "--target", target)


def raw_rows(settings: Settings, table: str) -> list[tuple[Any, ...]]:
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _, rows = warehouse.query(
            f"select event_id, raw_text, file_position, file_name, load_id "
            f"from {warehouse.raw(table)} order by load_id, file_position"
        )
    return rows


def waiting(settings: Settings) -> dict[str, tuple[int, int]]:
    """Per raw table: (events in the spool, of which not landed yet)."""
    spool = Spool(settings.intake_spool)
    try:
        return spool.counts()
    finally:
        spool.close()


# --- accepting ------------------------------------------------------------------------------


def test_one_event_or_a_batch_is_accepted_and_lands_with_its_text(
    settings: Settings, target: str, api: str
):
    single = post(api, SESSIONS, session("s-1"))
    assert single.status_code == 202, single.text
    assert single.json() == {"accepted": 1, "duplicates": 0}
    # A batch, written by hand: each event's own text (spaces, key order, other keys) lands.
    batch_text = (
        b'[ {"customer_id": 7, "session_started_at": "2019-04-03T08:00:00Z", '
        b'"event_id": "s-2", "app_version": "4.1"},\n  {"event_id":"s-3","customer_id":"c9",'
        b'"session_started_at":"2019-04-04 09:00:00"} ]'
    )
    batch = post(api, SESSIONS, None, raw=batch_text)
    assert batch.status_code == 202, batch.text
    assert batch.json() == {"accepted": 2, "duplicates": 0}
    bought = post(api, PURCHASES, [purchase("p-1"), purchase("p-2", amount=-3.5)])
    assert bought.json() == {"accepted": 2, "duplicates": 0}
    assert raw_rows(settings, "app_sessions") == []  # kept in the spool until landed
    assert waiting(settings) == {"app_sessions": (3, 3), "app_purchases": (2, 2)}

    output = land(target)
    assert f"{SESSIONS}: 3 events landed in {settings.relation('raw', 'app_sessions')}" in output
    assert f"{PURCHASES}: 2 events landed in {settings.relation('raw', 'app_purchases')}" in output
    rows = raw_rows(settings, "app_sessions")
    assert [(event_id, text, position) for event_id, text, position, _, _ in rows] == [
        ("s-1", json.dumps(session("s-1")), 1),
        (
            "s-2",
            '{"customer_id": 7, "session_started_at": "2019-04-03T08:00:00Z", '
            '"event_id": "s-2", "app_version": "4.1"}',
            2,
        ),
        (
            "s-3",
            '{"event_id":"s-3","customer_id":"c9","session_started_at":"2019-04-04 09:00:00"}',
            3,
        ),
    ]
    assert rows[0][3].startswith(f"{SESSIONS} events 1-3 of ")  # the load's file_name
    with connect(settings) as warehouse:
        _, fields = warehouse.query(
            f"select customer_id, session_started_at from {warehouse.raw('app_sessions')} "
            "order by file_position"
        )
        _, loads = warehouse.query(
            f"select source_table, rows_landed, rows_unparseable from {warehouse.raw('loads')} "
            "order by source_table"
        )
    assert fields == [
        ("c1", "2019-04-02T10:00:00Z"),
        ("7", "2019-04-03T08:00:00Z"),  # a number lands as written, as from a file
        ("c9", "2019-04-04 09:00:00"),
    ]
    assert loads == [("app_purchases", 2, 0), ("app_sessions", 3, 0)]
    assert waiting(settings) == {"app_sessions": (3, 0), "app_purchases": (2, 0)}
    assert "No app events waiting" in land(target)  # landing again: nothing


def test_a_resent_event_lands_once(settings: Settings, target: str, api: str):
    """Resent in the same batch, in a later request, after landing, and to a new server
    (a restart): one row in raw, the first text received."""
    first = post(api, PURCHASES, [purchase("p-1"), purchase("p-1", amount="99.00")])
    assert first.json() == {"accepted": 2, "duplicates": 1}
    assert post(api, PURCHASES, purchase("p-1")).json() == {"accepted": 1, "duplicates": 1}
    land(target)
    assert post(api, PURCHASES, [purchase("p-1"), purchase("p-2")]).json() == {
        "accepted": 2,
        "duplicates": 1,
    }
    with served_api(settings) as restarted:
        assert post(restarted, PURCHASES, purchase("p-1")).json() == {
            "accepted": 1,
            "duplicates": 1,
        }
        # an event_id is per route: a session may carry a purchase's
        assert post(restarted, SESSIONS, session("p-1")).json() == {
            "accepted": 1,
            "duplicates": 0,
        }
    land(target)
    land(target)
    rows = raw_rows(settings, "app_purchases")
    assert [(event_id, json.loads(text)["amount"]) for event_id, text, *_ in rows] == [
        ("p-1", "12.50"),
        ("p-2", "12.50"),
    ]
    assert [event_id for event_id, *_ in raw_rows(settings, "app_sessions")] == ["p-1"]


def test_an_event_the_raw_table_already_holds_is_not_landed_again(
    settings: Settings, target: str, api: str, tmp_path: Path
):
    """Landing twice lands once: a lander killed after its commit and before it marked the
    spool, or a JSON Lines file that carried the event_id, leaves the event in raw."""
    file = tmp_path / "sessions.jsonl"
    file.write_text(json.dumps(session("s-1")) + "\n", encoding="utf-8")
    invoke("load", "app-sessions", str(file), "--target", target)
    assert post(api, SESSIONS, [session("s-1"), session("s-2")]).json() == {
        "accepted": 2,
        "duplicates": 0,
    }
    output = land(target)
    assert "1 event landed" in output and "1 more had landed before" in output
    assert [event_id for event_id, *_ in raw_rows(settings, "app_sessions")] == ["s-1", "s-2"]
    assert waiting(settings)["app_sessions"] == (2, 0)


BAD_BODIES = [
    (b"not json", "The body is not JSON"),
    (b"", "The body is not JSON"),
    (b'"a string"', "The body is a string: send one event as a JSON object"),
    (b"[]", "The body is an empty array"),
    (b"[1]", "Element 0: the event is a number, not a JSON object."),
    (b'{"customer_id": "c1", "session_started_at": "x"}', "The event: missing field event_id"),
    (
        b'[{"event_id": "a", "customer_id": "c1", "session_started_at": "x"},'
        b' {"event_id": "b", "customer_id": "c1"}]',
        "Element 1: missing field session_started_at",
    ),
    (
        b'{"event_id": "a", "customer_id": true, "session_started_at": "x"}',
        "customer_id must be a string, an integer or null, found a boolean: true",
    ),
    (
        b'{"event_id": "a", "customer_id": 1.5, "session_started_at": "x"}',
        "customer_id must be a string, an integer or null, found a number: 1.5",
    ),
    (
        b'{"event_id": "a", "customer_id": "c1", "session_started_at": 20190402}',
        "session_started_at must be an ISO-8601 date-time as a string, or null",
    ),
    (b'{"event_id": 5, "customer_id": "c1", "session_started_at": "x"}', "event_id must be"),
    (b'{"event_id": "  ", "customer_id": "c1", "session_started_at": "x"}', "event_id must be"),
    (b'{"event_id": null, "customer_id": "c1", "session_started_at": "x"}', "found null"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_a_bad_body_is_refused_naming_the_field(body: bytes, message: str, tmp_path: Path):
    settings = load_settings(target="duckdb")
    with served_api(settings) as api:
        good = session("ok")  # a batch with a good event first keeps nothing either
        if body.startswith(b"[{"):
            body = b"[" + json.dumps(good).encode() + b"," + body[1:]
            message = message.replace("Element 1", "Element 2")
        response = post(api, SESSIONS, None, raw=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"
        assert message in response.json()["error"]["message"]
    assert not settings.intake_spool.exists() or waiting(settings) == {}


def test_a_bad_purchase_amount_type_is_refused(tmp_path: Path):
    settings = load_settings(target="duckdb")
    with served_api(settings) as api:
        response = post(api, PURCHASES, purchase("p-1", amount={"value": 1}))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The event: amount must be a number, a decimal as a string, or null, found an "
        'object: {"value":1}.'
    )


def test_a_batch_over_the_limit_is_refused_whole(tmp_path: Path):
    settings = load_settings(target="duckdb")
    with served_api(settings) as api:
        response = post(api, SESSIONS, [session(f"s-{n}") for n in range(10_001)])
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_large",
        "message": "The batch holds 10001 events, more than 10000: split it.",
    }
    assert not settings.intake_spool.exists() or waiting(settings) == {}


# --- through staging, as a file ---------------------------------------------------------------

# Good and bad values: they are accepted, land, and staging quarantines the bad ones with
# the reasons it gives the same lines of a file.
INTAKE_SESSIONS = [
    *(session(f"s-{day}", "1", f"2019-04-{day:02d}T10:00:00Z") for day in range(1, 15)),
    session("s-blank", " "),
    session("s-time", "2", "not a time"),
    session("s-null", "2", None),
    session("s-again", "1", "2019-04-01T10:00:00Z"),  # the same session as s-1
]
INTAKE_PURCHASES = [
    purchase("p-1", "1", "2019-04-10T12:00:00Z", "150.00"),
    purchase("p-2", "2", "2019-04-10 12:00:00", 20),
    purchase("p-refund", "2", "2019-04-12T12:00:00Z", -5),  # a refund: not quarantined
    purchase("p-abc", "2", "2019-04-11T12:00:00Z", "abc"),
    purchase("p-cents", "2", "2019-04-11T13:00:00Z", 1.234),
]
STAGED = {
    "stg_app__sessions": "customer_id, session_started_at",
    "stg_app__sessions_quarantine": "reason, reason_detail, raw_text",
    "stg_app__purchases": "customer_id, purchased_at, amount_usd, is_refund",
    "stg_app__purchases_quarantine": "reason, reason_detail, raw_text",
}


def staged(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    with connect(settings, read_only=True) as warehouse:
        for model, columns in STAGED.items():
            _, found[model] = warehouse.query(
                f"select {columns} from {settings.relation('staging', model)} order by {columns}"
            )
        _, found["customer_engagement"] = warehouse.query(
            "select customer_id, sessions_in_window, spend_in_window, message_bucket from "
            f"{settings.relation('marts', 'customer_engagement')} order by customer_id"
        )
    return found


def build(target: str) -> str:
    selection = "+customer_engagement +stg_app__sessions_quarantine +stg_app__purchases_quarantine"
    return invoke(
        "build", "--no-freshness", "--target", target, "--",
        "--vars", "{as_of_date: 2019-04-30}", "--select", selection,
        "--indirect-selection", "cautious",
    )  # fmt: skip


def test_events_go_through_staging_like_the_same_lines_of_a_file(
    settings: Settings, target: str, api: str, dev_settings: Settings, tmp_path: Path
):
    """The same records, landed over HTTP on the target and from JSON Lines files on a
    `dev` target of the same warehouse, stage and reach the engagement mart the same."""
    store = tmp_path / "store.csv"
    store.write_text("ID,Name,City\n1,Ann Lee,Boston\n2,Bob Roe,Denver\n", encoding="utf-8")
    assert post(api, SESSIONS, INTAKE_SESSIONS).status_code == 202
    assert post(api, PURCHASES, INTAKE_PURCHASES).status_code == 202
    for name in (target, "dev"):
        invoke("load", "store-customers", str(store), "--extract-date", "2019-01-01",
               "--no-snapshot", "--target", name)  # fmt: skip
    for name, events in (("sessions", INTAKE_SESSIONS), ("purchases", INTAKE_PURCHASES)):
        file = tmp_path / f"{name}.jsonl"
        file.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
        invoke("load", f"app-{name}", str(file), "--target", "dev")
    built = build(target)  # lands the intake first
    assert f"{SESSIONS}: 18 events landed" in built and f"{PURCHASES}: 5 events landed" in built
    build("dev")
    over_http, from_files = staged(settings), staged(dev_settings)
    assert over_http == from_files
    reasons = sorted(reason for reason, *_ in over_http["stg_app__sessions_quarantine"])
    assert reasons == [
        "duplicate_row",
        "missing_customer_id",
        "missing_session_started_at",
        "unparseable_session_started_at",
    ]
    assert sorted(r for r, *_ in over_http["stg_app__purchases_quarantine"]) == [
        "unparseable_amount",
        "unparseable_amount",
    ]
    assert len(over_http["stg_app__sessions"]) == 14
    assert over_http["customer_engagement"] == [
        ("1", 14, Decimal("150.00"), "NONE"),
        ("2", 0, Decimal("15.00"), "BOOST"),
    ]


# --- durability and builds (real `runner serve` processes) ------------------------------------


@contextmanager
def serving(target: str, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """`runner serve` in its own process (its output in `log`: a pipe would fill up with
    the access log), answering; killed at the end if still running."""
    process = runner_process(log, "serve", "--target", target, "--port", str(port))

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, "runner serve answers", every=0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def test_a_killed_server_loses_no_accepted_event(settings: Settings, target: str, tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events = [session(f"s-{number}") for number in range(50)]
    with serving(target, port, tmp_path / "serve.log") as server:
        for start_at in range(0, 50, 10):
            assert post(base, SESSIONS, events[start_at : start_at + 10]).status_code == 202
        server.send_signal(signal.SIGKILL)  # right after the answers: nothing landed yet
        server.wait(timeout=60)
    assert raw_rows(settings, "app_sessions") == []

    with serving(target, port, tmp_path / "again.log"):  # restarted: it knows every event_id
        assert post(base, SESSIONS, events).json() == {"accepted": 50, "duplicates": 50}
    land(target)
    assert sorted(e for e, *_ in raw_rows(settings, "app_sessions")) == sorted(
        event["event_id"] for event in events
    )


def test_events_sent_during_a_build_are_accepted_and_land_after_it(
    settings: Settings, target: str, tmp_path: Path
):
    file = tmp_path / "sessions.jsonl"
    file.write_text("".join(json.dumps(session(f"f-{n}")) + "\n" for n in range(3)))
    invoke("load", "app-sessions", str(file), "--target", target)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    build_log = tmp_path / "build.log"
    with serving(target, port, tmp_path / "serve.log"):
        build_process = runner_process(build_log, "build", "--no-freshness", "--target", target)
        sent, answers = 0, []
        deadline = time.monotonic() + BUILD_MINUTES * 60
        try:
            while build_process.poll() is None:
                assert time.monotonic() < deadline, "the build did not end in time"
                batch = [session(f"b-{sent + n}") for n in range(5)]
                response = post(base, SESSIONS, batch)
                answers.append((response.status_code, response.json()))
                sent += len(batch)
                time.sleep(0.05)
        finally:
            if build_process.poll() is None:
                build_process.kill()
            build_process.wait(timeout=60)
    assert build_process.returncode == 0, build_log.read_text()[-5000:]
    assert len(answers) >= 5  # the build took a while: events came in throughout it
    assert {status for status, _ in answers} == {202}
    assert all(body == {"accepted": 5, "duplicates": 0} for _, body in answers)

    land(target)  # (the next `runner build` would do it first)
    intake = [e for e, *_ in raw_rows(settings, "app_sessions") if e and e.startswith("b-")]
    assert sorted(intake) == sorted(f"b-{n}" for n in range(sent))


# --- app tables created before event_id ------------------------------------------------------


def old_app_tables(settings: Settings) -> None:
    """raw.app_sessions and raw.app_purchases as a version without event_id created them,
    with a row each."""
    raw = settings.schema("raw")
    with connect(settings) as warehouse:
        warehouse.execute(f"create schema if not exists {raw}")
        for table, fields in (
            ("app_sessions", ("customer_id", "session_started_at")),
            ("app_purchases", ("customer_id", "purchased_at", "amount")),
        ):
            columns = ", ".join(f"{name} varchar" for name in fields)
            warehouse.execute(
                f"create table {raw}.{table} (load_id varchar not null, file_name varchar not "
                "null, file_position bigint not null, raw_text varchar not null, parse_error "
                f"varchar, {columns}, loaded_at timestamp not null)"
            )
            warehouse.execute(
                f"insert into {raw}.{table} (load_id, file_name, file_position, raw_text, "
                "loaded_at) values ('old', 'old.csv', 1, 'x', current_timestamp)"
            )


def event_ids(settings: Settings) -> dict[str, list[Any]]:
    with connect(settings) as warehouse:
        return {
            table: warehouse.query(f"select event_id from {warehouse.raw(table)}")[1]
            for table in ("app_sessions", "app_purchases")
        }


def test_the_runner_adds_event_id_to_app_tables_created_before_it(settings: Settings):
    old_app_tables(settings)
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
    assert event_ids(settings) == {"app_sessions": [(None,)], "app_purchases": [(None,)]}


def test_dbts_hook_adds_event_id_to_app_tables_created_before_it(
    settings: Settings, target: str, profiles_dir: Path
):
    from dbt.cli.main import dbtRunner

    from python_tests.conftest import PROJECT_DIR
    from runner.dbt_invoke import release_dbt_connections

    old_app_tables(settings)
    for _ in range(2):  # the second time, the column is there: nothing to alter
        result = dbtRunner().invoke(
            ["run", "--select", "base_app__sessions", "--target", target,
             "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(profiles_dir)]
        )  # fmt: skip
        release_dbt_connections()
        assert result.success, result.exception
    assert event_ids(settings) == {"app_sessions": [(None,)], "app_purchases": [(None,)]}


# --- any body: refused with a reason, or accepted whole and losslessly -----------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(max_size=20)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELD_VALUES = st.sampled_from(["", " ", "c1", "2019-04-02T10:00:00Z", "abc", "-1.5"])
EVENTS = st.fixed_dictionaries(  # mostly good events, with a bad field now and then
    {
        "event_id": st.text(min_size=1, max_size=8),
        "customer_id": FIELD_VALUES | st.integers() | st.none() | JSON_VALUES,
        "purchased_at": FIELD_VALUES | st.none(),
        "amount": FIELD_VALUES | st.floats(allow_nan=False, allow_infinity=False) | st.none(),
    },
    optional={"other": JSON_VALUES},
)
ANY_BODY = EVENTS | st.lists(EVENTS, min_size=1, max_size=5) | st.lists(EVENTS | JSON_VALUES,
    max_size=5) | JSON_VALUES  # fmt: skip


@hypothesis.settings(derandomize=True, database=None, deadline=None, max_examples=300)
@hypothesis.given(body=ANY_BODY, indent=st.booleans())
def test_any_body_is_refused_with_a_reason_or_kept_whole(body: Any, indent: bool):
    """No body makes the intake fail: it is refused (BadBody, with a message), or every
    event of it is kept with its own text, which reads back as the event sent."""
    data = json.dumps(body, indent=2 if indent else None).encode()
    try:
        events = parse_body(data, PurchaseEvent)
    except BadBody as exc:
        assert exc.message
        return
    sent = body if isinstance(body, list) else [body]
    assert [json.loads(event.text) for event in events] == sent
    assert [event.event_id for event in events] == [element["event_id"] for element in sent]
    for element in sent:
        assert {"event_id", "customer_id", "purchased_at", "amount"} <= set(element)


def test_where_the_spool_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Beside the DuckDB file, in the project's .tmp/intake/ for PostgreSQL, one per
    target and warehouse; RUNNER_INTAKE_DIR moves them."""
    monkeypatch.delenv(INTAKE_DIR_VARIABLE)
    duckdb = load_settings(target="duckdb")
    warehouse = Path(os.environ["DUCKDB_PATH"])
    assert duckdb.intake_spool == warehouse.with_name("warehouse.duckdb.intake-duckdb.sqlite")
    monkeypatch.setenv("PGHOST", "db.example")
    monkeypatch.setenv("PGPORT", "5433")
    monkeypatch.setenv("PGDATABASE", "analytics")
    postgres = load_settings(target="postgres")
    assert postgres.intake_spool == (
        postgres.project_dir / ".tmp" / "intake" / "postgres-db.example-5433-analytics.sqlite"
    )
    monkeypatch.setenv(INTAKE_DIR_VARIABLE, str(tmp_path / "spools"))
    assert load_settings(target="postgres").intake_spool.parent == tmp_path / "spools"
