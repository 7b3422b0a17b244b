"""Customer ids are text of any shape: a web-only customer with a 12-hex id (the Shutterfly
sample's shape) and the app system's records of that id flow through every join to the marts,
on DuckDB and PostgreSQL; no model casts them to a number."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from runner.cli import cli
from runner.config import Settings
from runner.warehouse import connect

HEX = "96f55c7d8f42"  # a customer id as the Shutterfly sample writes them
LEADING_ZERO = "0042"  # text: not the number 42


def event(kind: str, verb: str, key: str, when: str, **fields: str) -> str:
    return json.dumps({"type": kind, "verb": verb, "key": key, "event_time": when, **fields})


WEB_EVENTS = "\n".join(
    [
        event("CUSTOMER", "NEW", HEX, "2019-03-01T09:00:00Z", last_name="Lee", adr_city="Boston"),
        event("CUSTOMER", "NEW", LEADING_ZERO, "2019-03-01T09:00:00Z", last_name="Roe"),
        event("SITE_VISIT", "NEW", "a1b2c3d4e5f6", "2019-04-02T10:00:00Z", customer_id=HEX),
        event(
            "ORDER",
            "NEW",
            "0f0e0d0c0b0a",
            "2019-04-02T10:05:00Z",
            customer_id=HEX,
            total_amount="30.00 USD",
        ),
    ]
)
APP_SESSIONS = "\n".join(
    json.dumps({"customer_id": customer, "session_started_at": f"2019-04-{day:02d}T10:00:00Z"})
    for customer, days in ((HEX, range(1, 11)), (LEADING_ZERO, range(1, 3)), ("42", range(1, 6)))
    for day in days
)
APP_PURCHASES = (
    "customer_id,purchased_at,amount\n"
    f"{HEX},2019-04-10T12:00:00Z,150.00\n"
    f" {LEADING_ZERO} ,2019-04-11T12:00:00Z,20.00\n"
)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_text_customer_ids_join_web_app_and_orders(settings: Settings, tmp_path: Path):
    t = ("--target", settings.target)
    for name, text in (
        ("w.jsonl", WEB_EVENTS),
        ("s.jsonl", APP_SESSIONS),
        ("p.csv", APP_PURCHASES),
    ):
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
    invoke("load", "web-events", str(tmp_path / "w.jsonl"), *t)
    invoke("load", "app-sessions", str(tmp_path / "s.jsonl"), *t)
    invoke("load", "app-purchases", str(tmp_path / "p.csv"), *t)
    invoke("build", "--no-freshness", *t, "--", "--vars", "{as_of_date: 2019-04-30}")

    with connect(settings) as warehouse:
        _, engagement = warehouse.query(
            "select customer_id, sessions_in_window, purchases_in_window, spend_in_window "
            "from marts.customer_engagement order by customer_id"
        )
        _, orders = warehouse.query(
            "select channel, customer_id, customer_key is not null, amount_usd "
            "from marts.fct_orders order by channel, customer_id"
        )
        _, app_quarantine = warehouse.query(
            "select count(*) from staging.stg_app__sessions_quarantine"
        )
    # "42" is not "0042": the app's customer 42 is no customer the web knows.
    assert engagement == [
        (LEADING_ZERO, 2, 1, Decimal("20.00")),
        (HEX, 10, 1, Decimal("150.00")),
    ]
    assert orders == [
        ("app", LEADING_ZERO, True, Decimal("20.00")),
        ("app", HEX, True, Decimal("150.00")),
        ("web", HEX, True, Decimal("30.00")),
    ]
    assert app_quarantine == [(0,)]
