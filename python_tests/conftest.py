"""Fixtures: every test runs against its own empty warehouse, never the user's.

- DuckDB: a file that is removed before and after each test (DUCKDB_PATH).
- PostgreSQL: a throwaway database, created and dropped per test, on the server the
  PG* variables point at, or on a throwaway cluster started from local binaries.
  Without either, PostgreSQL tests are skipped, except with CI=true, where they fail.

The DuckDB file and the database keep one name for a whole test process (an xdist
worker): dbt's partial parsing holds only while the connection settings are unchanged
(the path, the database name), and a full parse costs about 7 s per dbt command.

The profile is the project's own profiles.yml.example, copied to a temporary folder
(DBT_PROFILES_DIR), so a developer's profiles.yml never leaks into a test.

Raw rows: tests land them through the loaders, or with the helpers below, whose tables
and columns come from the registry of raw sources (runner/sources.py), never written
out by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest
import requests

from python_tests.postgres import PostgresServer, postgres_server, throwaway_database
from runner.auth import ApiKeys
from runner.config import Settings, load_settings
from runner.sources import MARKETING, sources_of
from runner.warehouse import Warehouse

# The tests send Ctrl-C (SIGINT) to the processes they start, as a terminal would. A shell
# starts a background job (`make test &`, a CI step run in the background) with SIGINT
# ignored, which every process it starts inherits: Python then installs no Ctrl-C handler
# and the runner could not be interrupted. A handler here makes the processes the tests
# start begin with SIGINT's default again (exec keeps an ignored signal, never a handler).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLE_DIR = PROJECT_DIR / "data" / "sample"
TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]

# The API key of the tests' servers: build an app with create_app(settings, API_KEYS)
# and send AUTH with every request but /health.
API_KEY = "test-api-key-not-a-secret"
API_KEYS = ApiKeys.of([API_KEY])
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def api_session() -> Iterator[requests.Session]:
    """An HTTP client that sends the tests' API key (AUTH) with every request, for an
    app built with create_app(settings, API_KEYS) (e.g. test_interactions.served_api)."""
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


@pytest.fixture(scope="session")
def profiles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("profiles")
    shutil.copy(PROJECT_DIR / "profiles.yml.example", folder / "profiles.yml")
    return folder


@pytest.fixture(scope="session")
def dbt_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """dbt's target and log folders for this test process (one per xdist worker), so
    parallel workers never write the same manifest; kept for the session, so partial
    parsing still saves work between tests."""
    return tmp_path_factory.mktemp("dbt-target"), tmp_path_factory.mktemp("dbt-logs")


@pytest.fixture(scope="session")
def warehouse_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of this test process's DuckDB warehouse (see the module's docstring)."""
    return tmp_path_factory.mktemp("warehouse")


def _emptied(folder: Path) -> Path:
    """`folder` with nothing in it: the DuckDB file and what lives beside it (its WAL,
    the intake spool, the API's serving copy)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch,
    warehouse_folder: Path,
    profiles_dir: Path,
    dbt_folders: tuple[Path, Path],
) -> Iterator[None]:
    monkeypatch.setenv("DBT_TARGET_PATH", str(dbt_folders[0]))
    monkeypatch.setenv("DBT_LOG_PATH", str(dbt_folders[1]))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(profiles_dir))
    monkeypatch.setenv("DBT_PROJECT_DIR", str(PROJECT_DIR))
    monkeypatch.setenv("DUCKDB_PATH", str(_emptied(warehouse_folder) / "warehouse.duckdb"))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.delenv("RUNNER_DBT_LOG", raising=False)  # dbt's lines where tests read them
    # Unit tests check the SQL, not the data: they run in the tests that ask for them
    # (with_unit_tests), not in every build a test makes. dbt build and dbt ls read this
    # as --exclude-resource-type unit_test.
    monkeypatch.setenv("DBT_EXCLUDE_RESOURCE_TYPES", "unit_test")
    yield
    _emptied(warehouse_folder)


@pytest.fixture
def with_unit_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt's builds in this test run the unit tests too (see isolated_environment)."""
    monkeypatch.delenv("DBT_EXCLUDE_RESOURCE_TYPES")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except (RuntimeError, OSError) as exc:
        message = f"PostgreSQL is not available: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run, not be skipped)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database_name() -> str:
    """The name of this test process's throwaway databases (see the module's docstring):
    unique to the process, so test runs side by side on one server never meet."""
    return f"ca_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_database(
    pg_server: PostgresServer, pg_database_name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with throwaway_database(pg_server, name=pg_database_name) as name:
        for key, value in pg_server.env(name).items():
            monkeypatch.setenv(key, value)
        yield name


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """Run the test once per warehouse: an empty DuckDB file, an empty PG database."""
    if request.param == "postgres":
        request.getfixturevalue("pg_database")
    return request.param


@pytest.fixture
def settings(target: str) -> Settings:
    return load_settings(target=target)


@pytest.fixture
def bi_role(pg_server: PostgresServer, pg_database: str) -> Iterator[str]:
    """A PostgreSQL role name for the BI role of one test (var bi_role), dropped after it
    with everything granted to it."""
    role = f"bi_test_{uuid.uuid4().hex[:8]}"
    yield role
    con = pg_server.connect(pg_database)
    with con.cursor() as cursor:
        cursor.execute(f'drop owned by "{role}"')
        cursor.execute(f'drop role "{role}"')
    con.close()


DEV_TARGET = "dev"


@pytest.fixture
def dev_settings(target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A non-production target `dev` on the same warehouse as `target` (its connection
    settings), so the runner works in the schemas dev_raw, dev_marts...: a profile with
    that one more target, in place of the project's (DBT_PROFILES_DIR)."""
    import yaml

    example = PROJECT_DIR / "profiles.yml.example"
    profiles = yaml.safe_load(example.read_text(encoding="utf-8"))
    outputs = profiles["customer_analytics"]["outputs"]
    outputs[DEV_TARGET] = dict(outputs[target])
    folder = tmp_path / "dev-profiles"
    folder.mkdir()
    (folder / "profiles.yml").write_text(yaml.safe_dump(profiles), encoding="utf-8")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(folder))
    settings = load_settings(target=DEV_TARGET)
    assert not settings.is_production and settings.schema("marts") == "dev_marts"
    return settings


def marketing_sqlite(path: Path, rows: dict[str, Sequence[Sequence[object]]] | None = None) -> Path:
    """A SQLite database like the marketing system's: each of its tables (the registry's
    sources of `runner load marketing`) with the registry's columns, untyped as SQLite
    allows, holding `rows` (per table, in the order of its columns)."""
    with closing(sqlite3.connect(path)) as con:
        for source in sources_of(MARKETING):
            con.execute(f"create table {source.table} ({', '.join(source.header)})")
            marks = ", ".join("?" for _ in source.header)
            values = (rows or {}).get(source.table, ())
            con.executemany(f"insert into {source.table} values ({marks})", values)
        con.commit()
    return path


def insert_raw_rows(warehouse: Warehouse, table: str, rows: Sequence[dict[str, object]]) -> None:
    """Insert `rows` (column: value) into the landing table `table` of the warehouse's
    target, creating the landing tables first (from the registry): for tests that need
    rows no loader writes, such as attribution results."""
    warehouse.ensure_raw_tables()
    for row in rows:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        warehouse.execute(
            f"insert into {warehouse.raw(table)} ({columns}) values ({marks})", tuple(row.values())
        )
