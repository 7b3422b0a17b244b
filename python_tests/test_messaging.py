"""App messaging (`runner message`) end to end, on DuckDB and PostgreSQL: the outbox of a
cycle, its texts, reruns, a later cycle, the file sender, the Twilio-shaped HTTP sender
against the SMS gateway emulator with faults, a run killed half-way, dry runs and the marts.

The world: five current store customers and their app activity in the 8 weeks that end on
2019-04-30 (2019-03-06 to 2019-04-30):

| customer | app activity in the window | bucket | phone number |
| --- | --- | --- | --- |
| 1 | 45 sessions (5.6 a week), 150.00 spent | REWARD | +14155550101 |
| 2 | 2 sessions, 20.00 spent | BOOST | `+1 (415) 555-0102`, staged as +14155550102 |
| 3 | 2 sessions, 150.00 spent | NONE | +14155550103 |
| 4 | none | BOOST | none (a row with a number that is not E.164: quarantined) |
| 5 | none | BOOST | +14155550105, which the gateway refuses (code 21610) |
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from devtools.sms_gateway_emulator import FaultPlan, GatewayConfig, RunningGateway, serve_in_thread
from python_tests.processes import finish, no_process_left_behind, runner_command, start
from runner.cli import cli
from runner.config import MessagingSettings, Settings
from runner.errors import RunnerError
from runner.messaging import PLACEHOLDERS, load_templates
from runner.warehouse import connect

__all__ = ["no_process_left_behind"]

CYCLE_END = "2019-04-30"
LATER_CYCLE_END = "2019-06-25"  # 8 weeks later: the next cycle
OVERLAPPING_END = "2019-05-14"  # 2 weeks later: shares 6 weeks with the first
BLOCKED = "+14155550105"
STORE_EXTRACT = "ID,Name,City\n" + "".join(f"{n},Name {n},Boston\n" for n in range(1, 6))
APP_SESSIONS = (
    "customer_id,session_started_at\n"
    + "".join(
        f"1,{(date(2019, 3, 10) + timedelta(days=day)).isoformat()}T10:00:00Z\n"
        for day in range(45)
    )
    + "2,2019-04-01T10:00:00Z\n2,2019-04-02T10:00:00Z\n"
    + "3,2019-04-01T09:00:00Z\n3,2019-04-20T09:00:00Z\n"
)
APP_PURCHASES = (
    "customer_id,purchased_at,amount\n"
    "1,2019-04-10T12:00:00Z,150.00\n"
    "2,2019-04-10T12:00:00Z,20.00\n"
    "3,2019-04-11T12:00:00Z,150.00\n"
)
CONTACTS = (
    "customer_id,phone_number\n"
    "1,+14155550101\n"
    "2,+1 (415) 555-0102\n"
    "3,+14155550103\n"
    "4,0415 555 0104\n"  # not E.164: quarantined, so customer 4 has no number
    f"5,{BLOCKED}\n"
)
BUILD_SELECTION = (
    "+customer_engagement +stg_app__contacts +stg_app__contacts_quarantine "
    "+fct_app_messages +app_message_delivery"
)


def invoke(*args: str, code: int = 0, **env: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env or None)
    assert result.exit_code == code, result.output
    return result


def build_at(target: str, day: str) -> None:
    invoke(
        "build", "--no-freshness", "--target", target, "--",
        "--vars", f"{{as_of_date: {day}}}", "--select", *BUILD_SELECTION.split(),
        "--indirect-selection", "cautious",
    )  # fmt: skip


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def world(settings: Settings, target: str, tmp_path: Path) -> Settings:
    """The five customers, their app activity and contacts, built at CYCLE_END."""
    t = ("--target", target)
    invoke(
        "load", "store-customers", write(tmp_path, "x.csv", STORE_EXTRACT),
        "--extract-date", "2019-01-01", "--no-snapshot", *t,
    )  # fmt: skip
    invoke("load", "app-sessions", write(tmp_path, "s.csv", APP_SESSIONS), *t)
    invoke("load", "app-purchases", write(tmp_path, "p.csv", APP_PURCHASES), *t)
    invoke("load", "app-contacts", write(tmp_path, "contacts.csv", CONTACTS), *t)
    build_at(target, CYCLE_END)
    return settings


@pytest.fixture
def message_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "messages.jsonl"
    monkeypatch.setenv("RUNNER_MESSAGE_FILE", str(path))
    for name in ("RUNNER_MESSAGE_SENDER", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return path


def outbox(settings: Settings) -> dict[tuple[str, date], dict[str, object]]:
    """The outbox by (customer, cycle end)."""
    with connect(settings) as warehouse:
        columns, rows = warehouse.query(f"select * from {settings.relation('raw', 'app_messages')}")
    found = [dict(zip(columns, row, strict=True)) for row in rows]
    return {(str(r["customer_id"]), r["cycle_end_date"]): r for r in found}  # type: ignore[misc]


def mart(settings: Settings, name: str, order: str) -> list[tuple[object, ...]]:
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            f"select * from {settings.relation('marts', name)} order by {order}"
        )
    return rows


def lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the file sender: outbox, reruns, later cycles, dry runs, marts -----------------------


def test_a_cycle_is_messaged_once_and_a_later_cycle_again(
    world: Settings, target: str, message_file: Path
):
    t = ("--target", target)
    end = date.fromisoformat(CYCLE_END)

    dry = invoke("message", "--dry-run", *t).output
    assert "Dry run: nothing sent, nothing written." in dry
    assert "4 messages (BOOST 3, REWARD 1); 1 customers in NONE get none." in dry
    assert "REWARD to customer 1: Thank you! 45 sessions and 150.00 USD" in dry
    assert not message_file.exists()  # dry run: nothing sent
    with connect(world) as warehouse:
        raw = world.schema("raw")
        assert not warehouse.table_exists(raw, "app_messages") or not outbox(world)

    sent = invoke("message", *t).output
    assert "4 new, 0 there before" in sent and "sent now 4 (sent 4, queued 0), failed 0" in sent
    messages = outbox(world)
    assert sorted(messages) == [("1", end), ("2", end), ("4", end), ("5", end)]  # 3: NONE
    assert {key[0]: row["message_bucket"] for key, row in messages.items()} == {
        "1": "REWARD", "2": "BOOST", "4": "BOOST", "5": "BOOST",
    }  # fmt: skip
    assert messages[("1", end)]["message_text"] == (
        "Thank you! 45 sessions and 150.00 USD in the app over the last 8 weeks (5.6 a week): "
        "here is a reward of 500 points."
    )
    assert "You spent 20.00 USD in the app over the last 8 weeks (2 sessions)" in str(
        messages[("2", end)]["message_text"]
    )
    assert all(row["status"] == "sent" and row["sent_at"] for row in messages.values())
    assert all(row["cycle_start_date"] == date(2019, 3, 6) for row in messages.values())
    written = lines(message_file)
    assert sorted(line["customer_id"] for line in written) == ["1", "2", "4", "5"]
    assert {line["body"] for line in written} == {str(r["message_text"]) for r in messages.values()}

    again = invoke("message", *t).output  # a rerun messages nobody twice
    assert "0 new, 4 there before (4 of them delivered earlier: not sent again)" in again
    assert "sent now 0" in again
    assert len(lines(message_file)) == 4 and outbox(world) == messages

    # the marts (built by `runner message`) count what the outbox holds
    assert mart(world, "app_message_delivery", "message_bucket") == [
        ("BOOST", 3, 3, 3, 0, 0, 0, date(2019, 3, 6), end),
        ("REWARD", 1, 1, 1, 0, 0, 0, date(2019, 3, 6), end),
    ]
    facts = mart(world, "fct_app_messages", "customer_id")
    assert [(row[1], row[2], row[5], row[9]) for row in facts] == [
        ("1", "REWARD", "sent", True), ("2", "BOOST", "sent", True),
        ("4", "BOOST", "sent", True), ("5", "BOOST", "sent", True),
    ]  # fmt: skip

    # figures evaluated at another date are refused, with the command to run
    stale = invoke("message", "--as-of", LATER_CYCLE_END, *t, code=1).output
    assert f"was evaluated at {CYCLE_END}, not at {LATER_CYCLE_END}" in stale
    assert f"runner build -- --vars '{{as_of_date: {LATER_CYCLE_END}}}'" in stale

    # a cycle overlapping the first is refused; the next cycle messages again
    build_at(target, OVERLAPPING_END)
    overlap = invoke("message", *t, code=1).output
    assert f"already has the cycle ending {CYCLE_END}" in overlap
    assert f"on or after {LATER_CYCLE_END}" in overlap
    build_at(target, LATER_CYCLE_END)
    later = invoke("message", "--as-of", LATER_CYCLE_END, *t).output
    assert "5 messages (BOOST 5, REWARD 0); 0 customers in NONE" in later
    assert "5 new, 0 there before" in later
    messages = outbox(world)
    assert len(messages) == 9
    assert {key[0] for key in messages if key[1] == date.fromisoformat(LATER_CYCLE_END)} == {
        "1", "2", "3", "4", "5",
    }  # fmt: skip
    assert len(lines(message_file)) == 9


# --- the HTTP sender against the gateway emulator -------------------------------------------


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningGateway]:
    """The emulator with every fault (429, 500, 503, a dropped answer after delivering, a
    slow answer), refusing BLOCKED; the runner's environment pointing at it, retries
    quick, one request at a time (so customer 1's message meets 429, 500 and the dropped
    answer, and customer 2's 503 and the slow answer)."""
    faults = FaultPlan(script=("429", "500", "drop", "503", "slow"), slow_ms=50, retry_after_s=0)
    config = GatewayConfig(faults=faults, blocked_numbers=frozenset({BLOCKED}))
    with serve_in_thread(config) as running:
        for name, value in running.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RUNNER_MESSAGE_BACKOFF_SECONDS", "0")
        monkeypatch.setenv("RUNNER_MESSAGE_MAX_ATTEMPTS", "20")
        monkeypatch.setenv("RUNNER_MESSAGE_WORKERS", "1")  # the script's faults in order
        yield running


def test_the_http_sender_retries_faults_records_refusals_and_never_sends_twice(
    world: Settings, target: str, gateway: RunningGateway, tmp_path: Path
):
    t = ("--target", target)
    first = invoke("message", *t, code=3)
    assert "sent now 2 (sent 0, queued 2), failed 2" in first.output
    assert "no phone number: 1" in first.output and "Twilio error 21610" in first.output
    end = date.fromisoformat(CYCLE_END)
    messages = outbox(world)
    assert {key[0]: row["status"] for key, row in messages.items()} == {
        "1": "queued", "2": "queued", "4": "failed", "5": "failed",
    }  # fmt: skip
    assert messages[("4", end)]["status_reason"] == "no phone number"
    assert str(messages[("5", end)]["status_reason"]).startswith(
        "Twilio error 21610: Attempt to send to unsubscribed recipient (HTTP 400"
    )
    sids = {d.sid for d in gateway.stats.deliveries}
    assert {messages[(c, end)]["provider_message_id"] for c in ("1", "2")} <= sids
    # every fault happened, and each delivered message reached its number once
    assert {"429", "500", "drop", "503"} <= set(gateway.stats.outcomes)
    assert gateway.stats.per_recipient() == {"+14155550101": 1, "+14155550102": 1}
    assert gateway.stats.deliveries[0].body == messages[("1", end)]["message_text"]
    # the token is never printed nor stored
    assert gateway.config.auth_token not in first.output
    assert all(gateway.config.auth_token not in str(row) for row in messages.values())

    # customer 4's number arrives: the rerun sends it, and only what was not delivered
    contact = write(tmp_path, "contacts-2.csv", "customer_id,phone_number\n4,+14155550104\n")
    invoke("load", "app-contacts", contact, *t)
    build_at(target, CYCLE_END)
    rerun = invoke("message", *t, code=3).output  # customer 5 is still refused
    assert "0 new, 4 there before (2 of them delivered earlier" in rerun
    assert "sent now 1 (sent 0, queued 1), failed 1" in rerun
    assert outbox(world)[("4", end)]["status"] == "queued"
    assert gateway.stats.per_recipient() == {
        "+14155550101": 1, "+14155550102": 1, "+14155550104": 1,
    }  # fmt: skip
    assert mart(world, "app_message_delivery", "message_bucket") == [
        ("BOOST", 3, 2, 0, 2, 1, 0, date(2019, 3, 6), end),
        ("REWARD", 1, 1, 0, 1, 0, 0, date(2019, 3, 6), end),
    ]
    with connect(world) as warehouse:
        _, quarantined = warehouse.query(
            "select reason from "
            f"{world.relation('staging', 'stg_app__contacts_quarantine')} order by reason"
        )
    assert quarantined == [("invalid_phone_number",)]


def test_a_run_killed_half_way_is_finished_by_the_next_without_a_second_delivery(
    world: Settings, target: str, monkeypatch: pytest.MonkeyPatch
):
    """The gateway delivers the third message and keeps its answer; the run is killed while
    it waits (the message is left `sending`, and so may those answered but not yet
    recorded). The rerun sends it again with the same
    idempotency key: the gateway answers with the first delivery, so each customer got
    exactly one message."""
    monkeypatch.setenv("RUNNER_MESSAGE_BACKOFF_SECONDS", "0")
    with serve_in_thread(GatewayConfig(hold_after=2)) as gateway:
        env = {**gateway.environment(), "RUNNER_MESSAGE_FILE": os.devnull}
        process = start(runner_command("message", "--target", target), **env)
        deadline = time.monotonic() + 120
        while gateway.stats.held == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.stats.held == 1, finish(process).stderr
        process.kill()
        assert finish(process).returncode != 0
        statuses = {key[0]: row["status"] for key, row in outbox(world).items()}
        assert statuses["4"] == "failed"  # no number: no request
        assert "sending" in statuses.values()  # the held one, at least
        assert set(statuses.values()) <= {"queued", "sending", "failed"}  # nothing pending
        gateway.server.release()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        rerun = invoke("message", "--target", target, code=3).output  # customer 4: no number
        assert "left 'sending' by an earlier run were resolved" in rerun
        assert gateway.stats.outcomes["replayed"] >= 1  # the held one, answered the same
        assert sorted(gateway.stats.per_recipient().values()) == [1, 1, 1]
    statuses = {key[0]: row["status"] for key, row in outbox(world).items()}
    assert statuses == {"1": "queued", "2": "queued", "4": "failed", "5": "queued"}


# --- what fails before anything is written ---------------------------------------------------


def test_a_template_with_an_unknown_placeholder_fails_naming_file_and_placeholder(tmp_path: Path):
    (tmp_path / "messages").mkdir()
    (tmp_path / "messages" / "REWARD.txt").write_text("{{ sessions_in_window }} sessions")
    (tmp_path / "messages" / "BOOST.txt").write_text("Hi, you spent {{ spent_in_window }}")
    with pytest.raises(RunnerError) as error:
        load_templates(tmp_path)
    assert str(tmp_path / "messages" / "BOOST.txt") in error.value.message
    assert "spent_in_window" in error.value.message and "nothing was sent" in error.value.message
    (tmp_path / "messages" / "BOOST.txt").unlink()
    with pytest.raises(RunnerError, match=r"BOOST\.txt, does not exist"):
        load_templates(tmp_path)


def test_the_projects_templates_name_only_known_placeholders():
    templates = load_templates(Path(__file__).resolve().parents[1])
    figures = {name: 1 for name in PLACEHOLDERS} | {"avg_weekly_sessions": 5.5}
    assert "5.5 a week" in templates["REWARD"].render(figures)


def test_the_twilio_sender_without_credentials_is_refused_before_anything_is_written(
    settings: Settings, target: str, message_file: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNNER_MESSAGE_SENDER", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    refused = invoke("message", "--target", target, code=1).output
    assert "lacks TWILIO_AUTH_TOKEN, TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID)" in refused
    with connect(settings) as warehouse:
        assert not warehouse.table_exists(settings.schema("raw"), "app_messages")
    assert not message_file.exists()


def test_messaging_settings_come_from_the_environment(tmp_path: Path):
    env = {
        "RUNNER_MESSAGE_SENDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "s3cret", "TWILIO_FROM": "+15005550006",
        "TWILIO_API_URL": "http://127.0.0.1:1",
    }  # fmt: skip
    settings = MessagingSettings.from_environment(tmp_path, env)
    settings.check_credentials()
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.describe()
    assert MessagingSettings.from_environment(tmp_path, {}).message_file == (
        tmp_path / ".tmp" / "messages.jsonl"
    )
    with pytest.raises(RunnerError, match="RUNNER_MESSAGE_SENDER is 'sms': set it to one of file"):
        MessagingSettings.from_environment(tmp_path, {"RUNNER_MESSAGE_SENDER": "sms"})


def test_a_dry_run_on_a_warehouse_never_built_says_what_to_do(target: str, message_file: Path):
    out = invoke("message", "--dry-run", "--target", target, code=1).output
    assert "does not exist yet" in out and "runner build" in out
    assert not message_file.exists()


def test_the_sms_emulator_command_serves_a_command_with_the_twilio_settings():
    """`runner sms-emulator -- COMMAND` runs COMMAND with the twilio sender's settings
    pointing at itself, and exits with COMMAND's exit code."""
    script = (
        "import os, sys, requests\n"
        "assert os.environ['RUNNER_MESSAGE_SENDER'] == 'twilio'\n"
        "sid = os.environ['TWILIO_ACCOUNT_SID']\n"
        "url = f\"{os.environ['TWILIO_API_URL']}/2010-04-01/Accounts/{sid}/Messages.json\"\n"
        "form = {'To': '+14155550101', 'From': os.environ['TWILIO_FROM'], 'Body': 'Hi'}\n"
        "auth = (sid, os.environ['TWILIO_AUTH_TOKEN'])\n"
        "answer = requests.post(url, data=form, auth=auth, timeout=30)\n"
        "wrong = requests.post(url, data=form, auth=(sid, 'wrong'), timeout=30)\n"
        "assert answer.status_code == 201 and answer.json()['sid'].startswith('SM')\n"
        "assert wrong.status_code == 401 and wrong.json()['code'] == 20003\n"
        "sys.exit(7)\n"
    )
    result = CliRunner().invoke(cli, ["sms-emulator", "--", sys.executable, "-c", script])
    assert result.exit_code == 7, result.output
    assert "1 messages delivered" in result.output
