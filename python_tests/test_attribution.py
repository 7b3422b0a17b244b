"""`runner attribute` against the IHC emulator, with faults, on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from devtools.ihc_emulator import EmulatorConfig, FaultPlan, serve_in_thread
from runner.attribution import (
    EXIT_INCOMPLETE,
    AttributionOptions,
    BatchAnswer,
    Journey,
    check_answer,
    plan_batches,
    run_attribution,
)
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import run_dbt
from runner.loading import load_marketing
from runner.warehouse import connect

KEY = "test-key-3f9a1c-not-real"
CONVERSIONS = 120
LONG_JOURNEY = 25  # sessions: above the tests' session limit of 20


def write_marketing(folder: Path) -> set[str]:
    """Small marketing data: CONVERSIONS conversions with 1-6 earlier sessions each, one
    with LONG_JOURNEY sessions, one with none. Returns the ids with a journey."""
    rng = random.Random(5)
    folder.mkdir()
    start = datetime(2023, 9, 1)
    sessions = ["session_id,user_id,event_date,event_time,channel_name,holder_engagement,"
                "closer_engagement,impression_interaction"]  # fmt: skip
    conversions = ["conv_id,user_id,conv_date,conv_time,revenue"]
    costs = ["session_id,cost"]
    journeyed = set()
    for user in range(1, CONVERSIONS + 2):
        count = LONG_JOURNEY if user == 1 else (0 if user == 2 else rng.randint(1, 6))
        moment = start + timedelta(hours=user)
        for number in range(count):
            at = moment + timedelta(minutes=number)
            session_id = f"s{user}-{number}"
            channel = rng.choice(["Email", "Display", "Paid Search", "Direct"])
            sessions.append(
                f"{session_id},{user},{at:%Y-%m-%d},{at:%H:%M:%S},{channel},"
                f"{rng.randint(0, 1)},{rng.randint(0, 1)},{rng.randint(0, 1)}"
            )
            costs.append(f"{session_id},{rng.randint(0, 300) / 100:.2f}")
        converted = moment + timedelta(minutes=count + 5)
        conversions.append(f"c{user},{user},{converted:%Y-%m-%d},{converted:%H:%M:%S},49.90")
        if count:
            journeyed.add(f"c{user}")
    for name, lines in [("session_sources", sessions), ("conversions", conversions),
                        ("session_costs", costs)]:  # fmt: skip
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return journeyed


@pytest.fixture
def journeys(settings: Settings, tmp_path: Path) -> set[str]:
    journeyed = write_marketing(tmp_path / "marketing")
    with connect(settings) as warehouse:
        load_marketing(warehouse, tmp_path / "marketing")
    assert run_dbt(settings, ["run"], ["--select", "+int_journeys_built", "--quiet"])
    return journeyed


def options(url: str, **overrides) -> AttributionOptions:
    base = dict(
        api_url=url, api_key=KEY, conv_type_id="default", workers=4, max_journeys=10,
        max_sessions=20, timeout_seconds=2.0, max_attempts=4, backoff_seconds=0.01,
        max_backoff_seconds=0.05,
    )  # fmt: skip
    base.update(overrides)
    return AttributionOptions(**base)


def state(settings: Settings) -> dict:
    """The attribution tables of the target's raw schema."""

    def raw(name: str) -> str:
        return settings.relation("raw", name)

    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            f"select conv_id, session_id, ihc from {raw('attribution_customer_journey')}"
        )
        _, rejects = warehouse.query(
            f"select run_id, conv_id, reason from {raw('attribution_rejects')}"
        )
        _, runs = warehouse.query(
            "select run_id, status, conversions_written, conversions_rejected, journeys_skipped "
            f"from {raw('attribution_runs')} order by started_at"
        )
    sums: dict[str, float] = {}
    for conv_id, _, ihc in rows:
        sums[conv_id] = sums.get(conv_id, 0.0) + ihc
    return {"rows": rows, "rejects": rejects, "runs": runs, "sums": sums}


def test_faults_lose_nothing_double_nothing_and_reruns_finish(settings, journeys):
    faults = FaultPlan(
        rate_429=0.15, rate_5xx=0.1, rate_drop=0.05, rate_partial=0.1, rate_wrong_sum=0.1,
        retry_after_s=0, seed=11,
    )  # fmt: skip
    config = EmulatorConfig(api_key=KEY, max_journeys=10, max_sessions=20, faults=faults)
    with serve_in_thread(config) as emulator, connect(settings) as warehouse:
        first = run_attribution(warehouse, settings, options(emulator.url))
    after_first = state(settings)
    written = set(after_first["sums"])
    rejected = {conv_id for run, conv_id, _ in after_first["rejects"] if run == first.run_id}

    assert first.journeys_selected == len(journeys)
    assert written | rejected == journeys  # every conversion accounted for...
    assert not written & rejected  # ...exactly once
    assert len(after_first["rows"]) == len({(r[0], r[1]) for r in after_first["rows"]})
    assert all(abs(total - 1) <= 1e-6 for total in after_first["sums"].values())
    reasons = {reason for _, _, reason in after_first["rejects"]}
    assert {"journey_too_long", "partial_failure", "ihc_sum"} <= reasons
    assert first.retries > 0 and first.status == "incomplete"
    assert first.conversions_written == len(written)

    # A fault-free rerun sends only what has no result yet, and finishes it.
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator, connect(settings) as wh:
        second = run_attribution(wh, settings, options(emulator.url))
    assert second.journeys_selected == len(journeys) - len(written)
    done = state(settings)
    assert set(done["sums"]) == journeys - {"c1"}  # c1 is longer than the session limit
    assert second.journeys_skipped == 1
    assert len(done["rows"]) == len({(r[0], r[1]) for r in done["rows"]})

    # --force replaces every result, never doubles one.
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator, connect(settings) as wh:
        forced = run_attribution(wh, settings, options(emulator.url, force=True))
    assert forced.journeys_selected == len(journeys)
    assert sorted(state(settings)["rows"]) == sorted(done["rows"])
    assert [run[1] for run in state(settings)["runs"]] == ["incomplete"] * 3  # c1: too long


def test_a_killed_run_resumes_to_completion(settings, target, journeys, tmp_path):
    config = EmulatorConfig(api_key=KEY, latency_ms=150)
    with serve_in_thread(config) as emulator:
        env = {**os.environ, "IHC_API_KEY": KEY}
        command = [
            sys.executable, "-m", "runner", "attribute", "--target", target,
            "--api-url", emulator.url, "--conv-type-id", "default", "--workers", "1",
            "--max-journeys", "5", "--max-sessions", "20", "--no-build",
        ]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while emulator.stats.requests < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        partial = state(settings)
        assert 0 < len(partial["sums"]) < len(journeys) - 1
        assert partial["runs"][0][1] == "running"  # killed: never finished

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == EXIT_INCOMPLETE, resumed.stderr  # c1 is too long
    assert "got no results: journey_too_long 1" in " ".join(resumed.stderr.split())
    final = state(settings)
    assert set(final["sums"]) == journeys - {"c1"}
    assert len(final["rows"]) == len({(r[0], r[1]) for r in final["rows"]})
    assert set(partial["rows"]) <= set(final["rows"])  # nothing written before was lost


def test_the_key_never_appears(settings, target, journeys):
    runner = CliRunner()
    t = ["--target", target]
    with serve_in_thread(EmulatorConfig(api_key="the-right-key")) as emulator:
        refused = runner.invoke(
            cli,
            ["attribute", *t, "--api-url", emulator.url, "--conv-type-id", "default", "--no-build"],
            env={"IHC_API_KEY": KEY},
        )
    assert refused.exit_code == 1
    assert "refused the API key" in refused.output and KEY not in refused.output
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        ok = runner.invoke(
            cli,
            ["attribute", *t, "--api-url", emulator.url, "--conv-type-id", "default", "--no-build"],
            env={"IHC_API_KEY": KEY},
        )
    assert ok.exit_code == 0, ok.output
    assert KEY not in ok.output
    with connect(settings) as warehouse:
        _, runs = warehouse.query("select * from raw.attribution_runs")
    assert KEY not in repr(runs)
    missing = runner.invoke(cli, ["attribute", *t, "--conv-type-id", "x"], env={"IHC_API_KEY": ""})
    assert missing.exit_code == 1 and "IHC_API_KEY" in missing.output


def test_batches_never_split_a_journey_and_respect_both_limits():
    rng = random.Random(3)
    journeys = [
        Journey(f"c{i}", [{"session_id": f"s{i}-{j}"} for j in range(rng.randint(1, 30))])
        for i in range(300)
    ]
    batches, too_long = plan_batches(journeys, max_journeys=7, max_sessions=40)
    assert [j.conv_id for b in batches for j in b] + [j.conv_id for j in too_long] == [
        j.conv_id for j in journeys if len(j.sessions) <= 40
    ] + [j.conv_id for j in too_long]
    for batch in batches:
        assert len(batch) <= 7
        assert sum(len(j.sessions) for j in batch) <= 40
    assert not too_long
    _, long_ones = plan_batches([Journey("big", [{}] * 41)], 7, 40)
    assert [j.conv_id for j in long_ones] == ["big"]


def test_every_answer_is_checked():
    sent = [
        Journey("ok", [{"session_id": "a"}, {"session_id": "b"}]),
        Journey("wrong_sum", [{"session_id": "c"}]),
        Journey("absent", [{"session_id": "d"}]),
        Journey("stranger", [{"session_id": "e"}]),
        Journey("failed", [{"session_id": "f"}]),
    ]
    body = {
        "statusCode": 206,
        "value": [
            {"conversion_id": "ok", "session_id": "a", "ihc": 0.25},
            {"conversion_id": "ok", "session_id": "b", "ihc": 0.75},
            {"conversion_id": "wrong_sum", "session_id": "c", "ihc": 0.8},
            {"conversion_id": "stranger", "session_id": "zzz", "ihc": 1.0},
        ],
        "partialFailureErrors": [{"conversion_id": "failed", "error": "boom"}],
    }
    rows, rejects = check_answer(BatchAnswer(sent, body, 1), 1e-6, "run", datetime(2023, 1, 1))
    assert [(r[0], r[1], r[2]) for r in rows] == [("ok", "a", 0.25), ("ok", "b", 0.75)]
    assert {(r.conv_id, r.reason) for r in rejects} == {
        ("wrong_sum", "ihc_sum"),
        ("absent", "missing_from_answer"),
        ("stranger", "unknown_session"),
        ("failed", "partial_failure"),
    }
    _, all_failed = check_answer(BatchAnswer(sent[:2], None, 4, "HTTP 503"), 1e-6, "r", None)
    assert [(r.conv_id, r.reason) for r in all_failed] == [
        ("ok", "request_failed"),
        ("wrong_sum", "request_failed"),
    ]


def test_attribute_builds_the_report_and_export_writes_it(settings, target, journeys, tmp_path):
    with serve_in_thread(EmulatorConfig(api_key=KEY, max_sessions=20)) as emulator:
        result = CliRunner().invoke(
            cli,
            [
                "attribute", "--target", target, "--api-url", emulator.url,
                "--conv-type-id", "default", "--max-sessions", "20",
            ],
            env={"IHC_API_KEY": KEY},
        )  # fmt: skip
    assert result.exit_code == EXIT_INCOMPLETE, result.output  # c1 is too long: no results
    assert "Building what depends on the attribution results" in result.output
    out = tmp_path / "report" / "channel_reporting.csv"
    exported = CliRunner().invoke(
        cli, ["export", "channel-reporting", "--target", target, "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    import csv
    from decimal import Decimal

    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "event_date", "channel_name", "sessions", "cost", "ihc", "ihc_revenue", "cpo", "roas"
    ]  # fmt: skip
    costs = (tmp_path / "marketing" / "session_costs.csv").read_text().splitlines()[1:]
    # every session's cost once (no fan-out), every attributed conversion's share once
    assert sum(Decimal(r["cost"]) for r in rows) == sum(Decimal(c.split(",")[1]) for c in costs)
    assert abs(sum(float(r["ihc"]) for r in rows) - (len(journeys) - 1)) < 1e-3
    assert sum(int(r["sessions"]) for r in rows) == len(costs)
    part = CliRunner().invoke(
        cli,
        ["export", "channel-reporting", "--target", target, "--out", str(out),
         "--start-date", "2023-09-03", "--end-date", "2023-09-04"],
    )  # fmt: skip
    assert part.exit_code == 0
    days = {line.split(",")[0] for line in out.read_text().splitlines()[1:]}
    assert days == {"2023-09-03"}


def test_retry_after_is_honoured_and_4xx_is_not_retried():
    from runner.attribution import post_batch

    journeys = [Journey("c1", [{"session_id": "s1"}])]
    waits: list[float] = []
    faults = FaultPlan(script=("429", "429", "ok"), retry_after_s=3)
    with serve_in_thread(EmulatorConfig(api_key=KEY, faults=faults)) as emulator:
        import requests

        opts = options(emulator.url, backoff_seconds=0.01, max_backoff_seconds=10)
        body = [{"conversion_id": "c1", "session_id": "s1", "timestamp": "2023-09-01 10:00:00",
                 "channel_label": "Email", "holder_engagement": 0, "closer_engagement": 0,
                 "conversion": 1, "impression_interaction": 0}]  # fmt: skip
        answer = post_batch(requests.Session(), opts, [Journey("c1", body)], sleep=waits.append)
    assert answer.body is not None and answer.attempts == 3
    assert waits == [3, 3]  # Retry-After: 3 seconds, not the 10 ms backoff
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        bad = post_batch(requests.Session(), options(emulator.url, conv_type_id="nope"), journeys)
    assert bad.body is None and bad.attempts == 1 and "HTTP 400" in bad.error


def test_a_dev_target_reads_and_writes_its_own_schemas(settings: Settings, dev_settings):
    """Target `dev` (not production) reads dev_intermediate.int_journeys_built and writes
    dev_raw's attribution tables; production's stay empty."""
    journeys = dev_settings.relation("intermediate", "int_journeys_built")
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()  # production's landing tables, to see them stay empty
    with connect(dev_settings) as warehouse:
        warehouse.ensure_raw_tables()  # dev_raw's, from the registry
        warehouse.execute(f"create schema if not exists {dev_settings.schema('intermediate')}")
        warehouse.execute(
            f"create table {journeys} (conv_id varchar, session_id varchar, "
            "session_position integer, session_at timestamp, converted_at timestamp, "
            "channel_name varchar, holder_engagement integer, closer_engagement integer, "
            "conversion integer, impression_interaction integer)"
        )
        for number in range(3):
            at = datetime(2023, 9, 1, 10 + number)
            warehouse.execute(
                f"insert into {journeys} values (?, ?, 1, ?, ?, 'Email', 0, 0, 1, 0)",
                (f"c{number}", f"s{number}", at, at + timedelta(minutes=5)),
            )
        with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
            summary = run_attribution(warehouse, dev_settings, options(emulator.url))
    assert summary.status == "succeeded" and summary.conversions_written == 3
    dev = state(dev_settings)
    assert sorted(dev["sums"]) == ["c0", "c1", "c2"]
    assert [run[1] for run in dev["runs"]] == ["succeeded"]
    production = state(settings)
    assert production["rows"] == [] and production["runs"] == []
