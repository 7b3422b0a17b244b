"""The IHC emulator, over real HTTP: its documented model, the contract's errors, every
injected fault, and latency that overlaps between parallel requests. No warehouse needed."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from devtools.ihc_emulator import (
    EmulatorConfig,
    FaultPlan,
    NotTheEmulator,
    RunningEmulator,
    check_identity,
    compute_ihc,
    serve_in_thread,
)
from runner.cli import cli

KEY = "test-secret-key-3f9a"


def session(
    conversion_id: str,
    session_id: str,
    timestamp: str,
    *,
    holder: int = 0,
    conversion: int = 0,
    channel: str = "Direct",
) -> dict[str, Any]:
    return {
        "conversion_id": conversion_id,
        "session_id": session_id,
        "timestamp": timestamp,
        "channel_label": channel,
        "holder_engagement": holder,
        "closer_engagement": 0,
        "conversion": conversion,
        "impression_interaction": 0,
    }


def three_journeys() -> list[dict[str, Any]]:
    """c3: first, a holder in the middle, converting last (sent out of order); c1: one
    converting session; c2: two sessions."""
    return [
        session("c3", "s3c", "2024-01-03 10:00:00", conversion=1, channel="Email"),
        session("c3", "s3a", "2024-01-01 10:00:00", channel="SEO"),
        session("c3", "s3b", "2024-01-02 10:00:00", holder=1, channel="SEA"),
        session("c1", "s1", "2024-02-01 08:00:00", conversion=1),
        session("c2", "s2a", "2024-03-01 08:00:00", channel="Social"),
        session("c2", "s2b", "2024-03-01 09:00:00", conversion=1),
    ]


def many_journeys(count: int, sessions_each: int = 1) -> list[dict[str, Any]]:
    return [
        session(
            f"j{j}",
            f"s{j}-{i}",
            f"2024-01-01 00:00:{i:02d}",
            conversion=int(i == sessions_each - 1),
        )
        for j in range(count)
        for i in range(sessions_each)
    ]


def post(
    emulator: RunningEmulator,
    journeys: Any,
    *,
    key: str | None = KEY,
    conv_type_id: str = "default",
    timeout: float = 5,
    session_: requests.Session | None = None,
    **extra: Any,
) -> requests.Response:
    headers = {"x-api-key": key} if key is not None else {}
    body = extra.pop("data", None)
    kwargs: dict[str, Any] = {"data": body} if body is not None else {"json": journeys}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return (session_ or requests).post(
        emulator.compute_url(conv_type_id), headers=headers, timeout=timeout, **kwargs, **extra
    )


def body_of(journeys: list[dict[str, Any]]) -> dict[str, Any]:
    return {"customer_journeys": journeys}


def sums(rows: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["conversion_id"]] += row["ihc"]
    return dict(totals)


@pytest.fixture
def emulator():
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as running:
        yield running


def faulty(**plan: Any):
    return serve_in_thread(EmulatorConfig(api_key=KEY, faults=FaultPlan(**plan)))


# The model ------------------------------------------------------------------------------


def test_hand_computed_example(emulator: RunningEmulator):
    response = post(emulator, body_of(three_journeys()))
    assert response.status_code == 200
    answer = response.json()
    assert answer["statusCode"] == 200 and answer["partialFailureErrors"] == []
    rows = {row["session_id"]: row for row in answer["value"]}
    # first, holder in the middle, converting last
    assert rows["s3a"] == {
        "conversion_id": "c3",
        "session_id": "s3a",
        "initializer": 1.0,
        "holder": 0.0,
        "closer": 0.0,
        "ihc": pytest.approx(0.3),
    }
    assert (rows["s3b"]["initializer"], rows["s3b"]["holder"], rows["s3b"]["closer"]) == (0, 1, 0)
    assert rows["s3b"]["ihc"] == pytest.approx(0.4)
    assert (rows["s3c"]["initializer"], rows["s3c"]["holder"], rows["s3c"]["closer"]) == (0, 0, 1)
    assert rows["s3c"]["ihc"] == pytest.approx(0.3)
    # one session takes everything
    assert rows["s1"]["ihc"] == pytest.approx(1.0)
    assert (rows["s1"]["initializer"], rows["s1"]["holder"], rows["s1"]["closer"]) == (1, 1, 1)
    # two sessions: no session between, so the holder phase is split over both
    assert rows["s2a"]["holder"] == rows["s2b"]["holder"] == 0.5
    assert rows["s2a"]["ihc"] == pytest.approx(0.5) and rows["s2b"]["ihc"] == pytest.approx(0.5)
    # journeys in order of first appearance, sessions in timestamp order
    order = [row["session_id"] for row in answer["value"]]
    assert order == ["s3a", "s3b", "s3c", "s1", "s2a", "s2b"]
    for total in sums(answer["value"]).values():
        assert total == pytest.approx(1.0, abs=1e-12)
    assert emulator.stats.sessions_scored == 6 and emulator.stats.journeys_scored == 3


def test_holder_phase_without_holders_and_timestamp_ties(emulator: RunningEmulator):
    journeys = [
        session("c", "b", "2024-01-01 10:00:00"),
        session("c", "a", "2024-01-01 10:00:00"),  # same time: session_id breaks the tie
        session("c", "c", "2024-01-01 11:00:00"),
        session("c", "d", "2024-01-01 12:00:00", conversion=1),
        session("h", "h1", "2024-01-01 10:00:00", holder=1),  # first: not a holder
        session("h", "h2", "2024-01-01 11:00:00", holder=1),
        session("h", "h3", "2024-01-01 12:00:00"),
        session("h", "h4", "2024-01-01 13:00:00", holder=1),
        session("h", "h5", "2024-01-01 14:00:00", holder=1, conversion=1),  # last: neither
    ]
    rows = {row["session_id"]: row for row in post(emulator, body_of(journeys)).json()["value"]}
    assert rows["a"]["initializer"] == 1.0 and rows["b"]["initializer"] == 0.0
    assert {rows[s]["holder"] for s in "abcd"} == {0.25}
    assert rows["a"]["ihc"] == pytest.approx(0.3 + 0.1)
    assert rows["d"]["ihc"] == pytest.approx(0.1 + 0.3)
    assert [rows[s]["holder"] for s in ("h1", "h2", "h3", "h4", "h5")] == [0, 0.5, 0, 0.5, 0]
    for total in sums(list(rows.values())).values():
        assert total == pytest.approx(1.0, abs=1e-12)


def test_shares_are_deterministic_and_match_compute_ihc(emulator: RunningEmulator):
    journeys = three_journeys() + many_journeys(20, sessions_each=7)
    first = post(emulator, body_of(journeys)).json()
    second = post(emulator, body_of(journeys)).json()
    assert first == second
    assert first["value"] == compute_ihc(journeys)
    for total in sums(first["value"]).values():
        assert total == pytest.approx(1.0, abs=1e-9)


def test_journey_without_one_conversion_is_scored_but_does_not_sum_to_one(
    emulator: RunningEmulator,
):
    journeys = [
        session("none", "n1", "2024-01-01 10:00:00"),
        session("none", "n2", "2024-01-01 11:00:00"),
        session("two", "t1", "2024-01-01 10:00:00", conversion=1),
        session("two", "t2", "2024-01-01 11:00:00", conversion=1),
        session("ok", "o1", "2024-01-01 10:00:00", conversion=1),
    ]
    response = post(emulator, body_of(journeys))
    assert response.status_code == 200
    totals = sums(response.json()["value"])
    assert totals["none"] == pytest.approx(0.7)
    assert totals["two"] == pytest.approx(1.3)
    assert totals["ok"] == pytest.approx(1.0)


def test_redistribution_parameter_is_accepted(emulator: RunningEmulator):
    body = body_of(three_journeys()) | {"redistribution_parameter": {"initializer": {}}}
    assert post(emulator, body, conv_type_id="coding_challenge").status_code == 200


def test_redistribution_parameter_phases_have_the_contracts_types(emulator: RunningEmulator):
    phase = {
        "direction": "earlier_sessions_only",
        "receive_threshold": 0.1,
        "redistribution_channel_labels": ["SEO", "Email"],
    }
    full = {name: phase for name in ("initializer", "holder", "closer")}
    body = body_of(three_journeys()) | {"redistribution_parameter": full}
    assert post(emulator, body).status_code == 200
    wrong = body | {"redistribution_parameter": {"holder": phase | {"direction": "sideways"}}}
    response = post(emulator, wrong)
    assert response.status_code == 400
    assert "redistribution_parameter.holder.direction" in response.json()["message"]


# Errors of the contract -------------------------------------------------------------------


def test_missing_key_is_401_and_wrong_key_403(emulator: RunningEmulator):
    assert post(emulator, body_of(three_journeys()), key=None).status_code == 401
    response = post(emulator, body_of(three_journeys()), key="not-the-key")
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403
    assert emulator.stats.outcomes == {"401": 1, "403": 1}


def test_an_empty_key_is_a_wrong_key(emulator: RunningEmulator):
    assert post(emulator, body_of(three_journeys()), key="").status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "not valid JSON"),  # replaced by raw bytes below
        ([], "must be a JSON object"),
        ({"journeys": []}, 'no "customer_journeys"'),
        ({"customer_journeys": {}}, "must be a list"),
        ({"customer_journeys": []}, "is empty"),
        ({"customer_journeys": [1]}, "customer_journeys[0] must be an object"),
        (
            {"customer_journeys": [{**session("c", "s", "2024-01-01 00:00:00"), "conversion": 2}]},
            "customer_journeys[0].conversion must be 0 or 1",
        ),
        (
            {
                "customer_journeys": [
                    {**session("c", "s", "2024-01-01 00:00:00"), "conversion": True}
                ]
            },
            "must be 0 or 1",
        ),
        (
            {"customer_journeys": [session("c", "s", "2024-01-01T00:00:00Z")]},
            "timestamp must look like",
        ),
        (
            {"customer_journeys": [session("c", "s", "2024-13-01 00:00:00")]},
            "not a valid time",
        ),
        (
            {
                "customer_journeys": [
                    {k: v for k, v in session("c", "s", "x").items() if k != "session_id"}
                ]
            },
            "has no session_id",
        ),
        (
            {
                "customer_journeys": [session("c", "s", "2024-01-01 00:00:00")],
                "redistribution_parameter": 3,
            },
            "redistribution_parameter",
        ),
    ],
)
def test_malformed_bodies_are_400(emulator: RunningEmulator, body: Any, message: str):
    if body is None:
        response = post(emulator, None, data=b'{"customer_journeys": [')
    else:
        response = post(emulator, body)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert message in response.json()["message"]


def test_unknown_or_missing_conv_type_id_is_400(emulator: RunningEmulator):
    response = post(emulator, body_of(three_journeys()), conv_type_id="purchase")
    assert response.status_code == 400
    assert "Unknown conv_type_id" in response.json()["message"]
    no_id = requests.post(
        emulator.url + "/v1/compute_ihc",
        json=body_of(three_journeys()),
        headers={"x-api-key": KEY},
        timeout=5,
    )
    assert no_id.status_code == 400


def test_limits_are_400_with_a_clear_message():
    config = EmulatorConfig(api_key=KEY, max_journeys=5, max_sessions=12)
    with serve_in_thread(config) as emulator:
        assert post(emulator, body_of(many_journeys(5, sessions_each=2))).status_code == 200
        too_many_journeys = post(emulator, body_of(many_journeys(6)))
        assert too_many_journeys.status_code == 400
        assert "Too many journeys: 6" in too_many_journeys.json()["message"]
        assert "at most 5" in too_many_journeys.json()["message"]
        too_many_sessions = post(emulator, body_of(many_journeys(2, sessions_each=7)))
        assert too_many_sessions.status_code == 400
        assert "Too many sessions: 14" in too_many_sessions.json()["message"]
        assert "at most 12" in too_many_sessions.json()["message"]


def test_default_limits_are_100_journeys_and_3000_sessions(emulator: RunningEmulator):
    assert post(emulator, body_of(many_journeys(100, sessions_each=30))).status_code == 200
    assert post(emulator, body_of(many_journeys(101))).status_code == 400
    assert post(emulator, body_of(many_journeys(1, sessions_each=3001))).status_code == 400


def test_other_paths_and_methods(emulator: RunningEmulator):
    assert requests.post(emulator.url + "/v2/other", json={}, timeout=5).status_code == 404
    assert requests.get(emulator.compute_url(), timeout=5).status_code == 405


def test_every_other_method_is_405_in_the_contracts_error_body(emulator: RunningEmulator):
    for method in ("PUT", "PATCH", "DELETE"):
        response = requests.request(method, emulator.compute_url(), json={}, timeout=5)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.json() == {"statusCode": 405, "message": "Use POST /v1/compute_ihc."}
    assert requests.head(emulator.url + "/health", timeout=5).status_code == 405
    assert emulator.stats.outcomes == {"405": 4}


# Faults ---------------------------------------------------------------------------------


def test_429_with_retry_after():
    with faulty(rate_429=1.0, retry_after_s=0) as emulator:
        response = post(emulator, body_of(three_journeys()))
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "0"
        assert response.json()["statusCode"] == 429
    with faulty(script=["429"]) as emulator:
        assert post(emulator, body_of(three_journeys())).headers["Retry-After"] == "1"


def test_server_errors():
    with faulty(rate_5xx=1.0, seed=7) as emulator:
        statuses = {post(emulator, body_of(three_journeys())).status_code for _ in range(12)}
        assert statuses <= {500, 502, 503} and len(statuses) > 1
        assert emulator.stats.outcomes == {"5xx": 12}


def test_slow_answer_exceeds_a_short_client_timeout():
    with faulty(script=["slow", "ok"], slow_ms=1500) as emulator:
        started = time.monotonic()
        with pytest.raises(requests.Timeout):
            post(emulator, body_of(three_journeys()), timeout=0.3)
        assert time.monotonic() - started < 1.0
        assert post(emulator, body_of(three_journeys()), timeout=0.3).status_code == 200


def test_dropped_connection_is_a_connection_error():
    with faulty(script=["drop", "ok"]) as emulator, requests.Session() as client:
        with pytest.raises(requests.ConnectionError):
            post(emulator, body_of(three_journeys()), session_=client)
        assert post(emulator, body_of(three_journeys()), session_=client).status_code == 200
        assert emulator.stats.outcomes == {"drop": 1, "ok": 1}


def test_partial_failure_is_206_without_the_failed_journeys():
    journeys = many_journeys(9, sessions_each=2)
    with faulty(rate_partial=1.0) as emulator:
        response = post(emulator, body_of(journeys))
    assert response.status_code == 206
    answer = response.json()
    assert answer["statusCode"] == 206
    failed = {error["conversion_id"] for error in answer["partialFailureErrors"]}
    assert len(failed) == 3 and all(error["error"] for error in answer["partialFailureErrors"])
    scored = {row["conversion_id"] for row in answer["value"]}
    assert scored.isdisjoint(failed) and scored | failed == {f"j{j}" for j in range(9)}
    assert all(total == pytest.approx(1.0) for total in sums(answer["value"]).values())


def test_partial_failure_of_a_single_journey_fails_it():
    with faulty(script=["partial"]) as emulator:
        answer = post(emulator, body_of(many_journeys(1))).json()
    assert answer["statusCode"] == 206 and answer["value"] == []
    assert [error["conversion_id"] for error in answer["partialFailureErrors"]] == ["j0"]


def test_wrong_sum_scales_one_journey():
    with faulty(rate_wrong_sum=1.0) as emulator:
        response = post(emulator, body_of(three_journeys()))
    assert response.status_code == 200
    totals = sums(response.json()["value"])
    assert sorted(round(total, 9) for total in totals.values()) == [0.8, 1.0, 1.0]


def test_scripted_sequence_is_honoured_then_rates_apply():
    script = ["429", "ok", "503", "partial", "wrong_sum", "500"]
    with faulty(script=script, retry_after_s=0) as emulator, requests.Session() as client:
        statuses = [
            post(emulator, body_of(three_journeys()), session_=client).status_code
            for _ in range(len(script) + 2)
        ]
        assert statuses == [429, 200, 503, 206, 200, 500, 200, 200]
        assert emulator.stats.outcomes == {
            "429": 1,
            "ok": 3,
            "5xx": 2,
            "partial": 1,
            "wrong_sum": 1,
        }
        assert emulator.stats.requests == 8


def test_fault_draws_are_reproducible_for_a_seed():
    def statuses(seed: int) -> list[int]:
        with faulty(rate_429=0.3, rate_5xx=0.3, retry_after_s=0, seed=seed) as emulator:
            return [post(emulator, body_of(many_journeys(1))).status_code for _ in range(20)]

    first = statuses(3)
    assert first == statuses(3)
    assert {200, 429} <= set(first)


def test_invalid_fault_plans_are_refused():
    with pytest.raises(ValueError, match="more than 1"):
        FaultPlan(rate_429=0.6, rate_5xx=0.6)
    with pytest.raises(ValueError, match="Unknown fault script"):
        FaultPlan(script=["boom"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan(rate_drop=-0.1)


# Concurrency, stats, secrecy --------------------------------------------------------------


def test_latency_applies_per_request_but_parallel_requests_overlap():
    with serve_in_thread(EmulatorConfig(api_key=KEY, latency_ms=300)) as emulator:
        started = time.monotonic()
        assert post(emulator, body_of(many_journeys(1))).status_code == 200
        assert time.monotonic() - started >= 0.3

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            responses = list(
                pool.map(lambda _: post(emulator, body_of(three_journeys())), range(4))
            )
        elapsed = time.monotonic() - started
        assert [response.status_code for response in responses] == [200] * 4
        assert 0.3 <= elapsed < 0.8  # far under 4 * 300 ms
        assert emulator.stats.max_in_flight >= 2
        assert emulator.stats.snapshot()["in_flight"] == 0


def test_stopping_does_not_wait_for_a_sleeping_request():
    failures: list[Exception] = []

    def slow_client(emulator: RunningEmulator) -> None:
        try:
            post(emulator, body_of(three_journeys()), timeout=30)
        except requests.ConnectionError as exc:
            failures.append(exc)

    with faulty(script=["slow"], slow_ms=20_000) as emulator:
        client = threading.Thread(target=slow_client, args=(emulator,))
        client.start()
        deadline = time.monotonic() + 10
        while emulator.stats.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emulator.stats.snapshot()["in_flight"] == 1
        started = time.monotonic()
    assert time.monotonic() - started < 5  # far under the 20 s the answer sleeps
    client.join(10)
    assert len(failures) == 1  # its connection was closed, without an answer


def test_the_key_never_appears_in_answers_nor_in_the_config_repr():
    config = EmulatorConfig(api_key=KEY, faults=FaultPlan(script=["429", "503", "partial"]))
    assert KEY not in repr(config)
    with serve_in_thread(config) as emulator:
        responses = [post(emulator, body_of(three_journeys())) for _ in range(4)]
        responses += [
            post(emulator, body_of(three_journeys()), key=None),
            post(emulator, body_of(three_journeys()), key=KEY + "x"),
            post(emulator, body_of(three_journeys()), conv_type_id="nope"),
            post(emulator, None, data=b"{"),
        ]
    for response in responses:
        assert KEY not in response.text
        assert all(KEY not in value for value in response.headers.values())


def test_requests_are_logged_without_the_key(caplog: pytest.LogCaptureFixture):
    caplog.set_level("INFO", logger="devtools.ihc_emulator")
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        post(emulator, body_of(three_journeys()))
        post(emulator, body_of(three_journeys()), key=KEY + "x")
    lines = [record.getMessage() for record in caplog.records]
    assert any("200 ok: 3 journeys, 6 sessions" in line for line in lines)
    assert any("403" in line for line in lines)
    assert not any(KEY in line for line in lines)


def test_cli_help_documents_the_model_and_faults():
    result = CliRunner().invoke(cli, ["ihc-emulator", "--help"])
    assert result.exit_code == 0
    for words in ("0.4 holder", "--fault-429", "--fault-drop", "IHC_API_KEY", "not the trained"):
        assert words in result.output


def test_cli_refuses_fault_rates_over_one():
    result = CliRunner().invoke(cli, ["ihc-emulator", "--fault-429", "0.7", "--fault-5xx", "0.7"])
    assert result.exit_code == 1
    assert "more than 1" in result.output


# Identity and running a command beside it ----------------------------------------------


def test_health_names_the_service_and_this_instance():
    with (
        serve_in_thread(EmulatorConfig(api_key=KEY)) as one,
        serve_in_thread(EmulatorConfig(api_key=KEY)) as two,
    ):
        answer = requests.get(one.url + "/health", timeout=5)  # no key needed
        assert answer.status_code == 200
        assert answer.json() == {"service": "ihc-emulator", "instance": one.instance}
        assert one.instance != two.instance
        check_identity(one.url, one.instance)
        with pytest.raises(NotTheEmulator, match="another IHC emulator answers at"):
            check_identity(two.url, one.instance)
        assert one.stats.outcomes == {"health": 2}


CHILD = """
import json, os, sys, urllib.request
url = os.environ["IHC_API_URL"]
with urllib.request.urlopen(url + "/health") as answer:
    health = json.load(answer)
out = {"url": url, "key": os.environ["IHC_API_KEY"], "health": health}
open(sys.argv[1], "w").write(json.dumps(out))
sys.exit(7)
"""


def test_cli_runs_a_command_against_itself_and_exits_with_its_code(tmp_path, monkeypatch):
    monkeypatch.delenv("EMULATOR_PORT", raising=False)
    out, log = tmp_path / "child.json", tmp_path / "emulator.log"
    result = CliRunner().invoke(
        cli,
        ["ihc-emulator", "--log-file", str(log), "--", sys.executable, "-c", CHILD, str(out)],
        env={"IHC_API_KEY": KEY},
    )
    assert result.exit_code == 7, result.output
    seen = json.loads(out.read_text())
    assert seen["key"] == KEY
    assert seen["health"]["service"] == "ihc-emulator"
    assert not seen["url"].endswith(":8765")  # with a command: any free port
    assert seen["url"] in result.output
    assert "GET /health -> 200 health" in log.read_text()
