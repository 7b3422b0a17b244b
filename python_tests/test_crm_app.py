"""CRM pivots and app engagement end to end, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from dbt.cli.main import dbtRunner

from python_tests.conftest import PROJECT_DIR
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import release_dbt_connections
from runner.warehouse import connect

CRM_CUSTOMERS = (
    "Customer_Id,Occupation,Type\r\n1,Jedi,Red\r\n2,Batman,Orange\r\n3,Santa,Blue\r\n\r\n"
)
# The alternative header spelling, Windows line endings, a trailing empty row, an
# empty field, an interaction of a customer the export lacks.
CRM_INTERACTIONS = (
    "Date Start,Interaction,Customers\r\n"
    "04/01/2019 09:00,Email,1\r\n"
    "20/01/2019 10:00,Email,1\r\n"
    "05/02/2019 11:23,Call,1\r\n"
    "06/03/2019 12:00,Bird,1\r\n"  # March has no product: no topic
    "11/02/2019 16:10,Call,4\r\n"
    "12/02/2019 16:10,,2\r\n"
    ",,\r\n"
    "13/02/2019 10:00,Fax,1\r\n"  # a channel the seed lacks: quarantined, the build goes on
)
CRM_PRODUCTS = "date,product\n01-2019,Sand\n02-2019,Orange\n13-2019,Nope\n"
STORE_EXTRACT = "ID,Name,City\n1,Ann Lee,Boston\n2,Bob Roe,Denver\n"
APP_SESSIONS = (
    "\n".join(
        [
            json.dumps({"customer_id": 1, "session_started_at": f"2019-04-{day:02d}T10:00:00"})
            for day in range(1, 15)
        ]  # 14 sessions in the 8 weeks: 1.75 a week
        + ['{"customer_id": 2, "session_started_at": "2019-05-01T10:00:00Z"}']  # future-dated
        + ["not json"]
    )
    + "\n"
)
APP_PURCHASES = (
    "customer_id,purchased_at,amount\n"
    "1,2019-04-10T12:00:00Z,150.00\n"
    "2,2019-04-10 12:00:00,20.00\n"
    "2,2019-04-11,abc\n"
)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def test_pivots_interactions_and_buckets(settings: Settings, target: str, tmp_path: Path):
    t = ("--target", target)
    invoke("load", "crm-customers", write(tmp_path, "c.csv", CRM_CUSTOMERS), *t)
    invoke("load", "crm-interactions", write(tmp_path, "i.csv", CRM_INTERACTIONS), *t)
    invoke("load", "crm-products", write(tmp_path, "p.csv", CRM_PRODUCTS), *t)
    invoke("load", "app-sessions", write(tmp_path, "s.jsonl", APP_SESSIONS), *t)
    invoke("load", "app-purchases", write(tmp_path, "a.csv", APP_PURCHASES), *t)
    invoke(
        "load", "store-customers", write(tmp_path, "x.csv", STORE_EXTRACT),
        "--extract-date", "2019-01-01", "--no-snapshot", *t,
    )  # fmt: skip
    built = invoke("build", *t, "--", "--vars", "{as_of_date: 2019-04-30}")
    warning = "CRM interactions: channel Fax is not in the channels seed: add it to seeds/"
    assert warning in built and "1 interactions are quarantined as unknown_channel" in built

    with connect(settings) as warehouse:
        columns, rows = warehouse.query(
            "select * from marts.customer_channel_interactions order by customer_id"
        )
        _, topics = warehouse.query(
            "select customer_id, topic, email, call, bird, total_interactions "
            "from marts.customer_topic_channel_interactions order by customer_id, topic"
        )
        _, buckets = warehouse.query(
            "select customer_id, sessions_in_window, spend_in_window, message_bucket "
            "from marts.customer_engagement order by customer_id"
        )
        _, quarantined = warehouse.query(
            "select reason, count(*) from staging.stg_crm__interactions_quarantine "
            "group by reason order by reason"
        )
        _, unknown = warehouse.query(
            "select file_position, reason_detail from staging.stg_crm__interactions_quarantine "
            "where reason = 'unknown_channel'"
        )
    assert columns == [
        "customer_id", "email", "call", "bird", "boat", "post", "sms", "chat", "total_interactions"
    ]  # fmt: skip
    assert rows == [
        (1, 2, 1, 1, 0, 0, 0, 0, 4),
        (2, 0, 0, 0, 0, 0, 0, 0, 0),
        (3, 0, 0, 0, 0, 0, 0, 0, 0),
    ]
    assert topics == [(1, "Orange", 0, 1, 0, 1), (1, "Sand", 2, 0, 0, 2), (1, None, 0, 0, 1, 1)]
    assert quarantined == [
        ("missing_channel", 1),
        ("missing_date_start", 1),
        ("unknown_channel", 1),
    ]
    assert unknown == [(9, "channel Fax is not in the channels seed: add it to seeds/channels.csv")]
    from decimal import Decimal

    assert buckets == [
        ("1", 14, Decimal("150.00"), "NONE"),
        ("2", 0, Decimal("20.00"), "BOOST"),
    ]

    every = json.loads(invoke("interactions", "1", *t))
    assert every == {
        "data": {
            "customer_id": 1,
            "interactions": {
                "Email": 2, "Call": 1, "Bird": 1, "Boat": 0, "Post": 0, "SMS": 0, "Chat": 0
            },
        }
    }  # fmt: skip
    sand = json.loads(invoke("interactions", "1", "--topic", "Sand", "--until", "2019-01-10", *t))
    assert sand["data"]["interactions"]["Email"] == 1
    assert sum(sand["data"]["interactions"].values()) == 1


def test_adding_a_channel_to_the_seed_adds_a_column(tmp_path: Path, profiles_dir: Path):
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "target", "logs", "data", ".tmp", "*.duckdb"
        ),
    )
    with (project / "seeds" / "channels.csv").open("a", encoding="utf-8") as seed:
        seed.write("Pigeon Post,8,A letter by pigeon\n")
    result = dbtRunner().invoke(
        [
            "build", "--project-dir", str(project), "--profiles-dir", str(profiles_dir),
            "--select", "+customer_channel_interactions", "--indirect-selection", "cautious",
        ]
    )  # fmt: skip
    release_dbt_connections()
    assert result.success, result.exception
    settings_path = Path(os.environ["DUCKDB_PATH"])
    import duckdb

    with duckdb.connect(str(settings_path), read_only=True) as con:
        columns = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'marts' and table_name = 'customer_channel_interactions' "
                "order by ordinal_position"
            ).fetchall()
        ]
    assert columns[-2:] == ["pigeon_post", "total_interactions"]
