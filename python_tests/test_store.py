"""Store sales end to end, on DuckDB and PostgreSQL: two daily extracts in which a
customer moves, sales before and after the move, and the history that results."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.config import Settings
from runner.warehouse import connect

DAY_1 = "ID,Name,City\r\n1, Ann Lee ,Boston\r\n2,Bob Roe,Denver\r\n3,Cy Doe,Austin\r\n\r\n"
DAY_2 = "ID,Name,City\n1,Ann Lee,Chicago\n2,Bob Roe,Denver\n"  # 1 moved, 3 left
SALES = (
    "CustomerID,Product,SalesAmount,ShopId,TransactionDate\r\n"
    "1,Scarf,10.00,3,2017-02-10\r\n"  # in Boston
    "1,Scarf,10.00,3,2017-02-10\r\n"  # exact duplicate: counts once
    "1,Boots,30.00,3,2017-03-05 10:00:00\r\n"  # in Chicago
    "1,Boots,-30.00,3,2017-03-06T09:00:00Z\r\n"  # refund
    "9,Hat,5.00,1,2017-03-01\r\n"  # a customer no extract has shown
    "2,Hat,,1,2017-03-01\r\n"  # missing amount: quarantined
)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def snapshot_rows(settings: Settings) -> list[tuple]:
    with connect(settings) as warehouse:
        return warehouse.query(
            "select customer_id, city, is_in_extract, cast(dbt_valid_from as date), "
            "cast(dbt_valid_to as date) from snapshots.store_customers_snapshot "
            "order by customer_id, dbt_valid_from"
        )[1]


def test_two_extracts_with_a_move(settings: Settings, target: str, tmp_path: Path):
    (tmp_path / "day1.csv").write_text(DAY_1, encoding="utf-8", newline="")
    (tmp_path / "day2.csv").write_text(DAY_2, encoding="utf-8", newline="")
    (tmp_path / "sales.csv").write_text(SALES, encoding="utf-8", newline="")
    t = ("--target", target)
    invoke(
        "load", "store-customers", str(tmp_path / "day1.csv"), "--extract-date", "2017-01-31", *t
    )
    invoke(
        "load", "store-customers", str(tmp_path / "day2.csv"), "--extract-date", "2017-02-28", *t
    )
    invoke("load", "store-sales", str(tmp_path / "sales.csv"), *t)
    invoke("build", *t, "--", "--vars", "{as_of_date: 2017-03-15}")

    jan31, feb28 = date(2017, 1, 31), date(2017, 2, 28)
    history = snapshot_rows(settings)
    assert history == [
        (1, "Boston", True, jan31, feb28),
        (1, "Chicago", True, feb28, None),
        (2, "Denver", True, jan31, None),
        (3, "Austin", True, jan31, feb28),
        (3, "Austin", False, feb28, None),  # closed, not deleted
    ]

    with connect(settings) as warehouse:
        _, sales = warehouse.query(
            "select orders.amount_usd, orders.is_refund, orders.is_late_arriving_customer, "
            "customers.city from marts.fct_orders as orders "
            "left join marts.dim_customers as customers "
            "on orders.customer_key = customers.customer_key "
            "order by orders.ordered_at, orders.amount_usd"
        )
        _, quarantined = warehouse.query(
            "select reason from staging.stg_store__sales_quarantine order by reason"
        )
        _, ytd = warehouse.query(
            "select cast(month_start as varchar), monthly_spend, ytd_spend from "
            "marts.customer_ytd_spend where customer_id = '1' order by month_start"
        )
        _, recency = warehouse.query(
            "select customer_id, days_since_last_purchase, has_purchased "
            "from marts.customer_days_since_last_purchase order by customer_id"
        )
    assert sales == [
        (D("10.00"), False, False, "Boston"),  # before the move: the city of its time
        (D("5.00"), False, True, None),  # unknown customer: kept, flagged
        (D("30.00"), False, False, "Chicago"),
        (D("-30.00"), True, False, "Chicago"),
    ]
    assert quarantined == [("duplicate_row",), ("missing_amount",)]
    assert ytd == [("2017-02-01", D("10.00"), D("10.00")), ("2017-03-01", D("0.00"), D("10.00"))]
    # the last purchase is 2017-03-05 (the refund on 03-06 is not a purchase)
    assert recency == [("1", 10, True), ("2", None, False), ("3", None, False)]

    # Rerunning on the unchanged extract adds no version; the same file again is
    # skipped; an older extract is refused.
    invoke("build", *t, "--no-freshness", "--", "--select", "store_customers_snapshot")
    assert snapshot_rows(settings) == history
    again = invoke(
        "load", "store-customers", str(tmp_path / "day2.csv"), "--extract-date", "2017-02-28", *t
    )
    assert "already loaded" in again
    (tmp_path / "day0.csv").write_text("ID,Name,City\n1,Ann Lee,Salem\n", encoding="utf-8")
    older = CliRunner().invoke(
        cli,
        ["load", "store-customers", str(tmp_path / "day0.csv"), "--extract-date", "2017-01-01", *t],
    )
    assert older.exit_code == 1 and "date order" in older.output
    assert snapshot_rows(settings) == history


def test_a_file_with_the_wrong_header_is_refused(settings: Settings, tmp_path: Path):
    path = tmp_path / "sales.csv"
    path.write_text("ID,Name,City\n1,Ann,Boston\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["load", "store-sales", str(path)])
    assert result.exit_code == 1
    assert "should be the header CustomerID,Product,SalesAmount,ShopId,TransactionDate" in (
        result.output
    )


def extract_dates(settings: Settings) -> list[tuple]:
    with connect(settings) as warehouse:
        return warehouse.query(
            "select distinct l.file_name, c.extract_date from raw.loads as l "
            "inner join raw.store_customers as c on c.load_id = l.load_id order by 2"
        )[1]


def test_the_extract_date_comes_from_the_file_name_or_the_option(
    settings: Settings, target: str, tmp_path: Path
):
    t = ("--target", target, "--no-snapshot")
    named = tmp_path / "store_customers_2017-03-02.csv"
    named.write_text(DAY_1, encoding="utf-8")
    invoke("load", "store-customers", str(named), *t)
    assert extract_dates(settings) == [(str(named), date(2017, 3, 2))]

    # Both: the option wins, with a warning that they disagree.
    later = tmp_path / "store_customers_2017-03-03.csv"
    later.write_text(DAY_2, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["load", "store-customers", str(later), "--extract-date", "2017-03-04", *t]
    )
    assert result.exit_code == 0, result.output
    assert "--extract-date 2017-03-04 differs from the date in the file name (2017-03-03)" in (
        result.stderr
    )
    assert extract_dates(settings)[-1] == (str(later), date(2017, 3, 4))


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("customers.csv", "Its name holds no date (YYYY-MM-DD)"),
        ("extract_2017-02-30.csv", "2017-02-30 in its name is not a date"),
        ("from_2017-03-01_to_2017-03-02.csv", "several dates (2017-03-01, 2017-03-02)"),
    ],
)
def test_an_extract_without_a_date_is_refused_never_dated_today(
    settings: Settings, target: str, tmp_path: Path, name: str, said: str
):
    path = tmp_path / name
    path.write_text(DAY_1, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["load", "store-customers", str(path), "--no-snapshot", "--target", target]
    )
    assert result.exit_code == 1
    assert said in result.output and "pass --extract-date YYYY-MM-DD" in result.output
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _, counts = warehouse.query(
            "select (select count(*) from raw.loads), (select count(*) from raw.store_customers)"
        )
    assert counts == [(0, 0)]
