"""The Dagster code location (orchestration/), in-process with Dagster's test helpers:
landing folders and their sensors, the downstream build of a landed file, the alert of a
failed run, and the run config of the schedules; on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    RunRequest,
    SensorResult,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
    validate_run_config,
)

from orchestration.assets import build_definitions, is_cycle_week
from orchestration.landing import FAILED, LOADED
from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR
from python_tests.test_docs import chromium, run_chromium  # noqa: F401 (a fixture)
from runner.config import Settings
from runner.dbt_invoke import invoke_dbt
from runner.warehouse import connect

CONTACTS = "app-contacts"


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "landing"
    monkeypatch.setenv("LANDING_DIR", str(folder))
    monkeypatch.setenv("LANDING_SETTLE_SECONDS", "0")
    return folder


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as dagster_instance:
        yield dagster_instance


def tick(defs: Any, name: str, instance: DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.get_sensor_def(name)
    return sensor(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def count(settings: Settings, layer: str, table: str) -> int:
    with connect(settings, read_only=True) as warehouse:
        _, rows = warehouse.query(f"select count(*) from {settings.relation(layer, table)}")
    return int(rows[0][0])


def prepare_other_parents(settings: Settings) -> None:
    """What the models downstream of app contacts read besides them (the other staging
    views of the data_quality mart), as an earlier build would have left it."""
    result = invoke_dbt(
        settings,
        ["build"],
        [
            "--quiet",
            "--select",
            "+data_quality",
            "--exclude",
            "source:app.contacts+",
            "--exclude-resource-type",
            "test",
            "unit_test",
        ],
    )
    assert result.success, result.exception


def test_dropped_file_is_landed_once_and_its_downstream_built(
    settings: Settings, landing: Path, instance: DagsterInstance
):
    defs = build_definitions(settings)
    prepare_other_parents(settings)
    folder = landing / CONTACTS
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_DIR / "app_contacts.csv", folder / "app_contacts.csv")

    result = tick(defs, "landing_app_contacts", instance, None)
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests
    assert request.run_config == {
        "ops": {"land_app_contacts": {"config": {"files": ["app_contacts.csv"]}}}
    }
    job = defs.resolve_job_def("load_app_contacts")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == {
        "app/contacts",
        "staging/base_app__contacts",
        "staging/stg_app__contacts",
        "staging/stg_app__contacts_quarantine",
        "marts/data_quality",
    }
    # only what depends on the source (messaging reads the contacts, but on its schedule)

    run = job.execute_in_process(run_config=request.run_config, instance=instance)
    assert run.success
    assert count(settings, "raw", "app_contacts") == 64  # every line of the file, once
    assert count(settings, "staging", "stg_app__contacts") > 0
    assert count(settings, "marts", "data_quality") > 0
    assert not (folder / "app_contacts.csv").exists()
    assert (folder / LOADED / "app_contacts.csv").read_bytes() == (
        SAMPLE_DIR / "app_contacts.csv"
    ).read_bytes()
    # dbt's tests of what was built are the assets' checks
    checks = {
        evaluation.check_name: evaluation.passed
        for evaluation in run.get_asset_check_evaluations()
        if evaluation.asset_key.to_user_string() == "staging/stg_app__contacts"
    }
    assert checks["unique_stg_app__contacts_customer_id"] is True

    # The next tick asks for nothing: the file was landed once.
    again = tick(defs, "landing_app_contacts", instance, result.cursor)
    assert isinstance(again, SkipReason) or not again.run_requests

    # The same bytes dropped again are requested, and the loader skips them.
    shutil.copy(SAMPLE_DIR / "app_contacts.csv", folder / "app_contacts.csv")
    third = tick(defs, "landing_app_contacts", instance, result.cursor)
    (request,) = third.run_requests
    land_only = materialize(
        [defs.get_assets_def(AssetKey(["app", "contacts"]))],
        run_config=request.run_config,
        instance=instance,
    )
    assert land_only.success
    assert count(settings, "raw", "app_contacts") == 64


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local receiver of the alerts; ALERT_WEBHOOK_URL points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/alerts")
    try:
        yield server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_bad_file_fires_the_alert_loses_nothing_and_blocks_nothing(
    settings: Settings,
    landing: Path,
    instance: DagsterInstance,
    webhook: list[dict[str, Any]],
):
    defs = build_definitions(settings)
    folder = landing / CONTACTS
    folder.mkdir(parents=True, exist_ok=True)
    bad = b'{"customer_id": "10001"}\n'  # JSON: app contacts are CSV
    (folder / "a_bad.csv").write_bytes(bad)
    shutil.copy(SAMPLE_DIR / "app_contacts.csv", folder / "b_good.csv")

    result = tick(defs, "landing_app_contacts", instance, None)
    first, second = result.run_requests
    raw_asset = defs.get_assets_def(AssetKey(["app", "contacts"]))
    failed = materialize(
        [raw_asset], run_config=first.run_config, instance=instance, raise_on_error=False
    )
    assert not failed.success
    moved = folder / FAILED / "a_bad.csv"
    assert moved.read_bytes() == bad  # nothing lost
    error = (folder / FAILED / "a_bad.csv.error.txt").read_text(encoding="utf-8")
    assert "looks like JSON" in error

    sensor = defs.get_sensor_def("alert_on_failure")
    context = build_run_status_sensor_context(
        sensor_name="alert_on_failure",
        dagster_event=failed.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
    ).for_run_failure()
    sensor(context)
    (alert,) = webhook
    assert alert["run_id"] == failed.run_id
    (step,) = alert["steps"]
    assert step["step"] == "land_app_contacts"
    assert "a_bad.csv" in step["error"] and "looks like JSON" in step["error"]

    # The next file lands as if the bad one had never been there.
    landed = materialize([raw_asset], run_config=second.run_config, instance=instance)
    assert landed.success
    assert count(settings, "raw", "app_contacts") == 64
    assert (folder / LOADED / "b_good.csv").is_file()
    # Both moved away: the next tick asks for nothing.
    again = tick(defs, "landing_app_contacts", instance, result.cursor)
    assert isinstance(again, SkipReason) or not again.run_requests


@pytest.mark.parametrize("target", ["duckdb"])
def test_schedules_give_the_run_day_and_the_cycle(
    settings: Settings, landing: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DAGSTER_BUILD_HOUR", "4")
    defs = build_definitions(settings)
    daily = defs.get_schedule_def("daily_full_build")
    assert daily.cron_schedule == "0 4 * * *"
    when = datetime(2026, 12, 2, 4, tzinfo=timezone.utc)
    request = daily.evaluate_tick(build_schedule_context(scheduled_execution_time=when))
    (run,) = request.run_requests
    config = {"config": {"as_of_date": "2026-12-02"}}
    assert run.run_config == {"ops": {"dbt_models": config, "dbt_after_runner": config}}
    assert validate_run_config(defs.resolve_job_def("full_build"), run.run_config)

    cycle = defs.get_schedule_def("messaging_cycle")
    weeks = 8  # dbt_project.yml: engagement_window_weeks
    first = datetime(2026, 1, 5, 4, 30, tzinfo=timezone.utc)  # a Monday
    mondays = [first + timedelta(weeks=n) for n in range(2 * weeks)]
    runs = []
    for monday in mondays:
        tick_ = cycle.evaluate_tick(build_schedule_context(scheduled_execution_time=monday))
        if tick_.run_requests:
            runs.append(monday.date())
            assert isinstance(tick_.run_requests[0], RunRequest)
    assert len(runs) == 2 and (runs[1] - runs[0]).days == 7 * weeks
    assert all(is_cycle_week(day, weeks) for day in runs)


def test_source_freshness_is_a_check_of_the_raw_asset(
    settings: Settings, landing: Path, instance: DagsterInstance
):
    defs = build_definitions(settings)
    sessions = AssetKey(["app", "sessions"])
    job = defs.resolve_implicit_global_asset_job_def()
    folder = landing / "app-sessions"
    folder.mkdir(parents=True, exist_ok=True)

    def freshness() -> Any:
        run = job.execute_in_process(instance=instance, asset_selection=[sessions])
        assert run.success
        (evaluation,) = [
            item for item in run.get_asset_check_evaluations() if item.check_name == "freshness"
        ]
        return evaluation

    never = freshness()  # nothing waiting, nothing ever landed
    assert never.passed is False
    assert never.metadata["max_loaded_at"].value == "never loaded" or (
        never.metadata["status"].value != "pass"
    )
    shutil.copy(SAMPLE_DIR / "app_sessions.jsonl", folder / "app_sessions.jsonl")
    fresh = freshness()  # lands the waiting file, then checks
    assert fresh.passed is True
    assert fresh.metadata["status"].value == "pass"


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_new_instance_asks_for_one_full_build(
    settings: Settings, landing: Path, instance: DagsterInstance
):
    defs = build_definitions(settings)
    request = tick(defs, "first_full_build", instance, None)
    assert isinstance(request, RunRequest)
    assert request.run_key == "first-full-build"  # once per instance: Dagster keeps run keys
    sensor = defs.get_sensor_def("first_full_build")
    assert sensor.job_name == "full_build"
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=AssetKey(["marts", "customer_ltv"]))
    )
    built = tick(defs, "first_full_build", instance, None)
    assert isinstance(built, SkipReason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dagster_ui(tmp_path: Path) -> Iterator[str]:
    """The code location's web UI (dagster-webserver, as `make orchestrate` starts it,
    without the daemon) on a free loopback port, with its own DAGSTER_HOME."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DBT_TARGET": "duckdb"}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    command = [str(webserver), "-m", "orchestration.definitions", "-h", "127.0.0.1"]
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(
        [*command, "-p", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"dagster-webserver did not answer within 180 s: {' '.join(command)}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_ui_shows_the_asset_graph_in_chromium(
    dagster_ui: str,
    chromium: Path,  # noqa: F811 (the fixture of test_docs)
    tmp_path: Path,
):
    """The global asset lineage, group by group, left to right as the layers flow. Set
    DOCS_SCREENSHOT_DIR to keep the screenshot (README: docs/images/dagster_asset_graph.png)."""
    lineage = f"{dagster_ui}/asset-groups"
    dom = run_chromium(chromium, tmp_path / "dom", "--dump-dom", lineage)
    text = re.sub(r"<[^>]+>", " ", dom)
    for group in ("raw", "staging", "intermediate", "marts", "snapshots", "runner"):
        assert re.search(rf"\b{group}\b", text), f"group {group} is not on the graph"
    assert "Global asset lineage" in text
    picture = tmp_path / "dagster_asset_graph.png"
    run_chromium(
        chromium, tmp_path / "shot", f"--screenshot={picture}", "--window-size=1400,800", lineage
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = os.environ.get("DOCS_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(picture, Path(folder) / picture.name)
