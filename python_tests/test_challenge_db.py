"""The IHC attribution challenge's own SQLite file, as it ships, end to end on both targets:
`runner load marketing challenge.db` reads its three marketing tables and names the result
tables it ignores; the build gives journeys; the attribution round trip against the emulator
writes results; `marts.channel_reporting` adds them up.

The file is built from the challenge's exact DDL, with its kind of values: 64-hex ids, REAL
costs small enough that str() writes them in scientific notation, channel names with spaces
and '&'."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from devtools.ihc_emulator import EmulatorConfig, serve_in_thread
from runner.attribution import AttributionOptions, run_attribution
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import run_dbt
from runner.warehouse import connect

KEY = "test-key-challenge-not-real"

# The challenge's DDL, as challenge.db declares it.
CHALLENGE_DDL = """
create table session_sources (session_id text, user_id text, event_date text, event_time text,
    channel_name text, holder_engagement integer, closer_engagement integer,
    impression_interaction integer);
create table conversions (conv_id text, user_id text, conv_date text, conv_time text,
    revenue real);
create table session_costs (session_id text, cost real);
create table attribution_customer_journey (conv_id text, session_id text, ihc real);
create table channel_reporting (channel_name text, date text, cost real, ihc real,
    ihc_revenue real);
"""


def hex_id(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


ANN, BOB, CAT = hex_id("user-ann"), hex_id("user-bob"), hex_id("user-cat")
S1, S2, S3, S4, S5 = (hex_id(f"session-{n}") for n in range(1, 6))
C1, C2, C3 = (hex_id(f"conversion-{n}") for n in range(1, 4))
FB, BRAND = "FB & IG Ads", "Paid Search Brand"

# session, user, date, time, channel, holder, closer, impression
SESSIONS = [
    (S1, ANN, "2023-09-01", "10:00:00", FB, 1, 0, 1),
    (S2, ANN, "2023-09-01", "12:30:00", BRAND, 0, 1, 0),
    (S3, ANN, "2023-09-02", "09:00:00", FB, 0, 0, 0),  # after Ann's conversion
    (S4, BOB, "2023-09-01", "08:15:00", FB, 1, 1, 0),
    (S5, BOB, "2023-09-02", "18:00:00", BRAND, 0, 0, 1),  # after Bob's conversion
]
CONVERSIONS = [
    (C1, ANN, "2023-09-01", "13:00:00", 120.5),
    (C2, BOB, "2023-09-01", "20:00:00", 35.25),
    (C3, CAT, "2023-09-03", "11:00:00", 10.0),  # Cat has no session: no journey
]
COSTS = [(S1, 0.00001), (S2, 1.25), (S3, None), (S4, 0.5), (S5, 0.00002)]
JOURNEYS = {C1: [S1, S2], C2: [S4]}  # sessions strictly before, in time order


def challenge_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as con:
        con.executescript(CHALLENGE_DDL)
        con.executemany("insert into session_sources values (?, ?, ?, ?, ?, ?, ?, ?)", SESSIONS)
        con.executemany("insert into conversions values (?, ?, ?, ?, ?)", CONVERSIONS)
        con.executemany("insert into session_costs values (?, ?)", COSTS)
        # the challenge's own results, which must not land anywhere
        con.executemany(
            "insert into attribution_customer_journey values (?, ?, ?)",
            [(C1, S1, 0.25), (C1, S2, 0.75), (C2, S4, 1.0)],
        )
        con.execute(
            "insert into channel_reporting values (?, '2023-09-01', 0.5, 1.25, 64.3)", (FB,)
        )
        con.commit()
    assert str(0.00001) == "1e-05"  # what str() would have landed
    return path


def test_challenge_db_loads_builds_attributes_and_reports(settings: Settings, tmp_path: Path):
    path = challenge_db(tmp_path / "challenge.db")
    args = ["load", "marketing", str(path), "--target", settings.target]
    loaded = CliRunner().invoke(cli, args)
    assert loaded.exit_code == 0, loaded.output
    assert (
        "challenge.db: read the tables session_sources (5 rows), conversions (3 rows), "
        "session_costs (5 rows); ignored the other tables, which are not marketing source data: "
        "attribution_customer_journey (3 rows), channel_reporting (1 row)."
    ) in loaded.output
    with connect(settings) as warehouse:
        _, landed = warehouse.query("select session_id, cost from raw.session_costs")
        _, results = warehouse.query("select count(*) from raw.attribution_customer_journey")
    assert dict(landed) == {S1: "0.00001", S2: "1.25", S3: None, S4: "0.5", S5: "0.00002"}
    assert results == [(0,)]  # the file's own results were not loaded

    assert run_dbt(
        settings, ["run"], ["--select", "+int_journeys_built", "+channel_reporting", "--quiet"]
    )
    with connect(settings) as warehouse:
        _, quarantined = warehouse.query(
            " union all ".join(
                f"select reason from staging.base_marketing__{name} where reason is not null"
                for name in ("sessions", "conversions", "session_costs")
            )
        )
        _, rows = warehouse.query(
            "select conv_id, session_id, user_id, channel_name, session_position, "
            "journey_sessions, conversion from intermediate.int_journeys_built "
            "order by conv_id, session_position"
        )
    assert quarantined == []
    channel = {session[0]: session[4] for session in SESSIONS}
    user = {conversion[0]: conversion[1] for conversion in CONVERSIONS}
    expected = sorted(
        (conv_id, session_id, user[conv_id], channel[session_id], n, len(ids), int(n == len(ids)))
        for conv_id, ids in JOURNEYS.items()
        for n, session_id in enumerate(ids, start=1)
    )
    assert sorted(rows) == expected

    options = AttributionOptions(
        api_url="", api_key=KEY, conv_type_id="default", workers=2, max_journeys=10,
        max_sessions=20, timeout_seconds=5.0, max_attempts=2, backoff_seconds=0.01,
        max_backoff_seconds=0.05,
    )  # fmt: skip
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator, connect(settings) as wh:
        options = dataclasses.replace(options, api_url=emulator.url)
        summary = run_attribution(wh, settings, options)
    assert summary.conversions_written == len(JOURNEYS)
    with connect(settings) as warehouse:
        _, shares = warehouse.query(
            "select conv_id, session_id, ihc from raw.attribution_customer_journey"
        )
    ihc = {(conv_id, session_id): value for conv_id, session_id, value in shares}
    assert set(ihc) == {(c, s) for c, ids in JOURNEYS.items() for s in ids}
    assert abs(ihc[C1, S1] + ihc[C1, S2] - 1) < 1e-9 and ihc[C2, S4] == 1

    assert run_dbt(settings, ["run"], ["--select", "channel_reporting", "--quiet"])
    with connect(settings) as warehouse:
        _, report = warehouse.query(
            "select channel_name, event_date, sessions, cost, ihc, ihc_revenue "
            "from marts.channel_reporting"
        )
    revenue = {conversion[0]: conversion[4] for conversion in CONVERSIONS}
    cost = dict(COSTS)
    expected_report = {}
    for session_id, _, day, _, name, *_ in SESSIONS:
        key = (name, day)
        n, total_cost, total_ihc, total_revenue = expected_report.get(key, (0, 0, 0.0, 0.0))
        mine = {c: v for (c, s), v in ihc.items() if s == session_id}
        expected_report[key] = (
            n + 1,
            total_cost + Decimal(repr(cost[session_id] or 0)),
            total_ihc + sum(mine.values()),
            total_revenue + sum(v * revenue[c] for c, v in mine.items()),
        )
    got = {(name, str(day)): rest for name, day, *rest in report}
    assert set(got) == set(expected_report)
    for key, (n, total_cost, total_ihc, total_revenue) in expected_report.items():
        sessions, cost_got, ihc_got, revenue_got = got[key]
        assert sessions == n
        assert Decimal(str(cost_got)) == total_cost.quantize(Decimal("0.0001")), key
        assert abs(float(ihc_got) - total_ihc) < 1e-6, key
        assert abs(float(revenue_got) - total_revenue) < 1e-4, key
    # the FB & IG Ads day of Ann's and Bob's first sessions, by hand
    fb_day = got[FB, "2023-09-01"]
    assert fb_day[0] == 2 and Decimal(str(fb_day[1])) == Decimal("0.5000")
    assert abs(float(fb_day[2]) - (ihc[C1, S1] + 1)) < 1e-6
    assert abs(float(fb_day[3]) - (ihc[C1, S1] * 120.5 + 35.25)) < 1e-4
