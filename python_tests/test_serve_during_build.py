"""The API keeps answering while the warehouse builds.

On DuckDB the API reads a published copy of its marts (runner.serving), never the
warehouse file, whose one writer is the build. The end-to-end test runs `runner serve`
and a full `runner build` as a user does, in their own processes, and polls the API for
the whole build, on both warehouses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from python_tests.conftest import API_KEY, AUTH, SAMPLE_DIR
from python_tests.test_interactions import INTERACTIONS, counts, create_marts, served_api
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.errors import RunnerError
from runner.interactions import MARTS
from runner.loading import load_file
from runner.serving import ServingCopies, copies, publish, publish_after_build
from runner.warehouse import DuckDBWarehouse, connect

# The sample's sources, as `make demo` loads them (but the store customer extracts,
# whose loads each run a dbt snapshot).
SAMPLE_FILES = [
    ("web_events", "web_events.jsonl"),
    ("store_sales", "store_sales.csv"),
    ("crm_customers", "crm_customers.csv"),
    ("crm_interactions", "crm_interactions.csv"),
    ("crm_products", "crm_products.csv"),
    ("app_sessions", "app_sessions.jsonl"),
    ("app_purchases", "app_purchases.csv"),
]
BUILD_MINUTES = 20  # the bound of every wait on a build (a busy machine: 1-3 minutes)


@pytest.fixture
def duckdb_settings() -> Settings:
    return load_settings(target="duckdb")


def runner_process(log: Path, *args: str) -> subprocess.Popen:
    """`runner ARGS` in its own process, its output in `log` (a pipe could fill up)."""
    with log.open("w") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "runner", *args], stdout=handle, stderr=subprocess.STDOUT
        )


def run_runner(log: Path, *args: str) -> None:
    process = runner_process(log, *args)
    assert process.wait(timeout=BUILD_MINUTES * 60) == 0, log.read_text()[-5000:]


@contextmanager
def duckdb_writer(path: Path) -> Iterator[None]:
    """Another process holding the DuckDB file read-write, as dbt does during a build."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- publishing and reading the copies (DuckDB) ------------------------------------------


def test_publish_copies_only_the_marts_the_api_reads(duckdb_settings: Settings):
    create_marts(duckdb_settings)
    with connect(duckdb_settings) as warehouse:
        warehouse.execute("create table marts.customer_ltv as select 1 as customer_id")
    path = publish(duckdb_settings)
    assert path is not None and path.parent == duckdb_settings.serving_dir
    assert duckdb_settings.serving_dir == duckdb_settings.duckdb_path.with_name(
        "warehouse.duckdb.serving"
    )
    with DuckDBWarehouse(path, read_only=True) as copy:
        _, tables = copy.query(
            "select table_schema, table_name from information_schema.tables order by 2"
        )
        _, rows = copy.query("select count(*) from marts.fct_crm_interactions")
    assert tables == [("marts", table) for table in sorted(MARTS)]
    assert rows == [(len(INTERACTIONS),)]


def test_publishing_keeps_the_two_newest_copies(duckdb_settings: Settings):
    create_marts(duckdb_settings)
    published = [publish(duckdb_settings) for _ in range(3)]
    assert copies(duckdb_settings.serving_dir) == published[1:]
    assert sorted(p.name for p in duckdb_settings.serving_dir.iterdir()) == [
        p.name for p in published[1:]
    ]  # no temporary file or WAL left behind


def test_a_request_keeps_reading_the_copy_it_opened(duckdb_settings: Settings):
    """A new copy does not disturb a request that is reading the previous one, even once
    the previous file is removed; the next request reads the new copy."""
    create_marts(duckdb_settings)
    publish(duckdb_settings)
    reader = ServingCopies(duckdb_settings)
    sql = "select count(*) from marts.customer_channel_interactions"
    with reader.open() as old:
        with connect(duckdb_settings) as warehouse:
            warehouse.execute(
                "insert into marts.customer_channel_interactions values (104, 0, 0, 0, 0, 0)"
            )
        for _ in range(3):  # the copy `old` reads is removed
            publish(duckdb_settings)
        with reader.open() as new:
            assert new.query(sql)[1] == [(4,)]
        assert old.query(sql)[1] == [(3,)]


def test_requests_in_threads_while_copies_are_published(duckdb_settings: Settings):
    """Requests in parallel (as the API's thread pool runs them) all succeed while new
    copies appear and old ones are removed, and none sees an older copy than before."""
    create_marts(duckdb_settings)
    publish(duckdb_settings)
    reader = ServingCopies(duckdb_settings)
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def ask(answers: list[int]) -> None:
        try:
            for _ in range(10_000):  # bounded; ends when the publications are done
                if stop.is_set():
                    return
                with reader.open() as warehouse:
                    _, rows = warehouse.query(
                        "select count(*) from marts.customer_channel_interactions"
                    )
                answers.append(rows[0][0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(answers,)) for answers in seen]
    for thread in threads:
        thread.start()
    try:
        for customer_id in range(104, 109):
            with connect(duckdb_settings) as warehouse:
                warehouse.execute(
                    "insert into marts.customer_channel_interactions values (?, 0, 0, 0, 0, 0)",
                    (customer_id,),
                )
            publish(duckdb_settings)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    with reader.open() as warehouse:
        assert warehouse.query("select count(*) from marts.customer_channel_interactions")[1] == [
            (8,)
        ]
    for answers in seen:
        assert answers and answers == sorted(answers) and set(answers) <= set(range(3, 9))


def test_the_api_answers_while_another_process_writes_the_warehouse(
    duckdb_settings: Settings,
):
    create_marts(duckdb_settings)
    publish(duckdb_settings)
    with served_api(duckdb_settings) as base, duckdb_writer(duckdb_settings.duckdb_path):
        response = requests.get(f"{base}/api/v1/interactions/101", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["interactions"] == counts(3, 1, 1, 0)


def test_a_failed_build_publishes_nothing(duckdb_settings: Settings, tmp_path: Path):
    create_marts(duckdb_settings)
    published = publish(duckdb_settings)
    log = tmp_path / "build.log"
    failing = runner_process(
        log, "build", "--no-freshness", "--", "--vars", "{ltv_timeframe: forever}"
    )
    assert failing.wait(timeout=BUILD_MINUTES * 60) != 0
    assert "dbt build failed" in log.read_text()
    assert copies(duckdb_settings.serving_dir) == [published]


def test_a_build_that_cannot_publish_says_the_build_succeeded(duckdb_settings: Settings):
    create_marts(duckdb_settings)
    with duckdb_writer(duckdb_settings.duckdb_path), pytest.raises(RunnerError) as raised:
        publish_after_build(duckdb_settings)
    message = raised.value.message
    assert message.startswith("The build succeeded, but the API still serves the previous one.")
    assert "in use by another process (" in message and "`runner publish`" in message
    assert copies(duckdb_settings.serving_dir) == []


# --- `runner serve` as it starts, and `runner publish` ----------------------------------


def serve(monkeypatch: pytest.MonkeyPatch) -> str:
    """`runner serve`'s output on DuckDB up to the point where it would start serving."""
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: None)
    monkeypatch.setenv("RUNNER_API_KEYS", API_KEY)
    result = CliRunner().invoke(cli, ["serve", "--target", "duckdb"])
    assert result.exit_code == 0, result.output
    return result.output


def test_serve_publishes_a_copy_when_there_is_none_or_the_warehouse_is_newer(
    duckdb_settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    create_marts(duckdb_settings)
    assert "Published the marts the API reads" in serve(monkeypatch)
    first = copies(duckdb_settings.serving_dir)
    assert len(first) == 1
    # the copy is up to date: nothing to say but the keys it accepts
    assert serve(monkeypatch) == "The API accepts 1 key(s) (Authorization: Bearer).\n"
    assert copies(duckdb_settings.serving_dir) == first

    newer = first[0].stat().st_mtime + 10  # written after the copy: a plain `dbt build`
    os.utime(duckdb_settings.duckdb_path, (newer, newer))
    assert "Published" in serve(monkeypatch)
    assert len(copies(duckdb_settings.serving_dir)) == 2


def test_serve_starts_while_a_build_holds_the_warehouse(
    duckdb_settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    create_marts(duckdb_settings)
    with duckdb_writer(duckdb_settings.duckdb_path):
        output = serve(monkeypatch)
    assert "is in use by another process" in output
    assert "Until then the API answers 503." in output


def test_publish_command(settings: Settings, target: str):
    create_marts(settings)
    result = CliRunner().invoke(cli, ["publish", "--target", target])
    assert result.exit_code == 0, result.output
    if target == "duckdb":
        assert (
            result.output
            == f"Published the marts the API reads to {copies(settings.serving_dir)[0]}.\n"
        )
    else:
        assert "PostgreSQL: the API reads the marts directly" in result.output


# --- end to end: `runner serve` during a full `runner build` -----------------------------


def interactions_of(settings: Settings, customer_id: int) -> dict[str, int]:
    with connect(settings, read_only=True) as warehouse:
        _, rows = warehouse.query(
            "select channel, count(*) from marts.fct_crm_interactions "
            "where customer_id = ? group by channel",
            (customer_id,),
        )
    return dict(rows)


def test_the_api_answers_every_request_during_a_full_build(
    settings: Settings, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        for table, name in SAMPLE_FILES:
            load_file(warehouse, table, SAMPLE_DIR / name)
    run_runner(tmp_path / "first-build.log", "build", "--target", target)
    with connect(settings, read_only=True) as warehouse:
        _, rows = warehouse.query(
            "select customer_id from marts.fct_crm_interactions where channel = 'Email' "
            "group by customer_id order by count(*) desc, customer_id limit 1"
        )
    customer = rows[0][0]
    emails_before = interactions_of(settings, customer)["Email"]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("RUNNER_API_KEYS", API_KEY)  # the server's environment
    server = runner_process(
        tmp_path / "serve.log", "serve", "--port", str(port), "--target", target
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "runner serve did not answer within 2 minutes"
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        url = f"{base}/api/v1/interactions/{customer}"
        before = requests.get(url, headers=AUTH, timeout=30)
        assert before.status_code == 200, before.text
        assert before.json()["data"]["interactions"]["Email"] == emails_before

        # New interactions of the customer land, and the next build counts them.
        extra = tmp_path / "crm_interactions_extra.csv"
        extra.write_text(
            "Date Start,Interaction,Customers\n"
            + "".join(f"15/03/2017 03:0{minute},Email,{customer}\n" for minute in range(3)),
            encoding="utf-8",
        )
        run_runner(
            tmp_path / "load.log", "load", "crm-interactions", str(extra), "--target", target
        )

        # The other routes answer throughout too (their bodies change with the build).
        listings = [
            f"{base}/api/v1/interactions?limit=5&channel=Email",
            f"{base}/api/v1/customers?limit=5",
            f"{base}/api/v1/channels?per=month",
        ]
        build = runner_process(tmp_path / "build.log", "build", "--target", target)
        answers: list[tuple[str, int, str]] = []
        deadline = time.monotonic() + BUILD_MINUTES * 60
        while build.poll() is None:
            assert time.monotonic() < deadline, "the build did not end in time"
            for path in (url, f"{base}/health", *listings):
                response = requests.get(path, headers=AUTH, timeout=30)
                answers.append((path, response.status_code, response.text))
            time.sleep(0.05)
        assert build.returncode == 0, (tmp_path / "build.log").read_text()[-5000:]
        after = requests.get(url, headers=AUTH, timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=60)

    assert interactions_of(settings, customer)["Email"] == emails_before + 3
    assert after.status_code == 200, after.text
    assert after.json()["data"]["interactions"]["Email"] == emails_before + 3
    assert len(answers) >= 10  # the build takes a while: the API was asked throughout
    failed = [answer for answer in answers if answer[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed: {failed[:3]}"
    bodies = [text for path, _, text in answers if path == url]
    # The previous build's answer until the new build is published, then the new one.
    assert set(bodies) <= {before.text, after.text}
    first_new = bodies.index(after.text) if after.text in bodies else len(bodies)
    assert set(bodies[first_new:]) <= {after.text}
    assert all(text == '{"status":"ok"}' for path, _, text in answers if path.endswith("/health"))


@pytest.mark.usefixtures("pg_database")
def test_the_api_reuses_its_postgresql_connections_and_drops_broken_ones():
    """On PostgreSQL the API keeps its connections between requests (a new one costs the
    server a process); a connection whose session was ended (a restart, an admin's
    pg_terminate_backend) is never handed to a request again."""
    from runner.serving import reader

    open_marts = reader(load_settings(target="postgres"))

    def backend() -> int:
        with open_marts() as warehouse:
            return int(warehouse.query("select pg_backend_pid()")[1][0][0])

    first = backend()
    assert backend() == first  # kept and reused
    with open_marts() as one, open_marts() as other:  # two requests at once: two sessions
        pids = {int(w.query("select pg_backend_pid()")[1][0][0]) for w in (one, other)}
    assert len(pids) == 2
    with connect(load_settings(target="postgres")) as admin:  # both kept sessions end
        admin.query("select pg_terminate_backend(pid) from pg_stat_activity where pid in "
                    f"({', '.join(map(str, pids))})")  # fmt: skip
    survivors = {backend() for _ in range(3)}  # no request gets a dead session
    assert survivors.isdisjoint(pids)
