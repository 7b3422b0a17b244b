"""`make demo-attribution` attributes with the demo's own emulator, never with whatever
else listens on its port: a stranger on the port stops it loudly before any journey is
sent, and with the port free every conversion gets results. DuckDB only, like the demo.

The Makefile is run for real (`make -s demo-attribution`, with the venv of this test run
as BIN and the test's warehouse from DUCKDB_PATH); `-o` keeps make from reinstalling it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from devtools.ihc_emulator import NotTheEmulator, check_identity
from python_tests import test_attribution
from python_tests.conftest import PROJECT_DIR
from python_tests.test_faults import write_journeys
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.warehouse import connect

journeys = test_attribution.journeys  # the fixture: marketing loaded, journeys built
TIMEOUT = 600  # seconds: the free-port run builds what depends on the results
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@dataclass
class Stranger:
    """Another program on a port: answers 200 "ok" to anything, counts what it got."""

    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stranger() -> Iterator[Stranger]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Stranger(server.server_address[1], seen)
    finally:
        server.shutdown()
        server.server_close()


def make_demo_attribution(log: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IHC_API_KEY", "EMULATOR_PORT")}
    settings = [f"{name}={value}" for name, value in variables.items()]
    command = [
        "make", "-s", "-C", str(PROJECT_DIR), "-o", ".venv/.installed", "-o", "profiles.yml",
        "demo-attribution", f"BIN={Path(sys.executable).parent}", f"EMULATOR_LOG={log}",
        *settings,
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def attribution_rows(settings: Settings) -> tuple[int, int]:
    """Rows in raw.attribution_runs and raw.attribution_customer_journey (0 if absent)."""
    with connect(settings) as warehouse:
        return tuple(  # type: ignore[return-value]
            warehouse.query(f"select count(*) from raw.{table}")[1][0][0]
            if warehouse.table_exists("raw", table)
            else 0
            for table in ("attribution_runs", "attribution_customer_journey")
        )


def test_check_identity_refuses_a_program_that_is_not_the_emulator(stranger: Stranger):
    with pytest.raises(NotTheEmulator, match=f"another program answers at {stranger.url}"):
        check_identity(stranger.url, "any-instance")
    assert stranger.requests == ["GET /health"]


def test_the_emulator_refuses_a_port_in_use_and_runs_nothing(stranger: Stranger, tmp_path):
    marker = tmp_path / "ran"
    command = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    from_env = CliRunner().invoke(
        cli, ["ihc-emulator", *command], env={"EMULATOR_PORT": str(stranger.port)}
    )
    assert from_env.exit_code == 1
    assert (
        f"Port {stranger.port} (from EMULATOR_PORT) is in use by another program; "
        "unset EMULATOR_PORT or choose a free one." in from_env.output
    )
    from_option = CliRunner().invoke(cli, ["ihc-emulator", "--port", str(stranger.port)])
    assert from_option.exit_code == 1
    assert "is in use by another program; choose a free one with --port" in from_option.output
    assert not marker.exists()
    assert stranger.requests == []


def test_the_emulator_runs_nothing_when_another_program_answers_at_its_url(
    stranger: Stranger, tmp_path, monkeypatch
):
    """As if the port were shared (SO_REUSEPORT) and the stranger got the health check."""
    from devtools import ihc_emulator

    monkeypatch.setattr(
        ihc_emulator, "check_identity", lambda url, instance: check_identity(stranger.url, instance)
    )
    marker = tmp_path / "ran"
    result = CliRunner().invoke(
        cli, ["ihc-emulator", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    )
    assert result.exit_code == 1
    assert f"but another program answers at {stranger.url}" in result.output
    assert "Nothing was run" in result.output
    assert not marker.exists()


@needs_make
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_make_demo_attribution_with_its_port_taken_fails_loudly_and_sends_nothing(
    target, stranger: Stranger, tmp_path
):
    settings = load_settings(target=target)
    write_journeys(settings)  # journeys ready to send
    result = make_demo_attribution(tmp_path / "emulator.log", EMULATOR_PORT=str(stranger.port))
    assert result.returncode != 0, result.stdout + result.stderr
    assert (
        f"Error: Port {stranger.port} (from EMULATOR_PORT) is in use by another program; "
        "unset EMULATOR_PORT or choose a free one." in result.stderr
    )
    assert stranger.requests == []  # no journey went to the stranger
    assert attribution_rows(settings) == (0, 0)  # nothing written


@needs_make
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_make_demo_attribution_on_a_free_port_attributes_every_conversion(
    target, journeys: set[str], tmp_path
):
    settings = load_settings(target=target)
    log = tmp_path / "emulator.log"
    result = make_demo_attribution(log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Attribution run" in result.stdout and ": succeeded." in result.stdout
    with connect(settings) as warehouse:
        _, done = warehouse.query("select distinct conv_id from raw.attribution_customer_journey")
        _, runs = warehouse.query("select api_url, status from raw.attribution_runs")
    assert {conv_id for (conv_id,) in done} == journeys
    ((api_url, status),) = runs
    assert status == "succeeded" and api_url.startswith("http://127.0.0.1:")
    assert api_url in result.stderr  # the emulator this run started, on a port of its own
    assert "GET /health -> 200 health" in log.read_text()
    assert "POST /v1/compute_ihc -> 200 ok" in log.read_text()
