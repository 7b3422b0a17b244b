"""Store customers and sales from Parquet files, on DuckDB and PostgreSQL: the same rules,
quarantine and idempotence as CSV (files written by pyarrow, as the store team writes
them), and the shop and product dimensions built from the sales."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from python_tests.postgres import throwaway_database
from runner import loading
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.dbt_invoke import run_dbt
from runner.loading import read_parquet_records
from runner.warehouse import connect

SALES_HEADER = ("CustomerID", "Product", "SalesAmount", "ShopId", "TransactionDate")
# Store sales as the store system writes them, None for a blank field: valid ones, an
# exact duplicate, and one of each staging rule.
SALES = [
    ("1", "Scarf", "10.00", "3", "2017-02-10"),
    ("1", "Scarf", "10.00", "3", "2017-02-10"),  # exact duplicate: counts once
    (" 2 ", " Boots ", " 30.5 ", "3", "2017-03-05 10:00:00"),  # spaces are trimmed
    ("2", "Boots", "-30.50", "3", "2017-03-06T09:00:00Z"),  # a refund
    ("9", "Hat", "5.00", None, "2017-03-01"),  # no shop: valid
    ("3", "Hat", None, "1", "2017-03-01"),  # missing_amount
    (None, "Hat", "1.00", "1", "2017-03-01"),  # missing_customer_id
    ("4", "Hat", "abc", "1", "2017-03-01"),  # unparseable_amount
    ("5", "Hat", "1.00", "x", "2017-03-01"),  # unparseable_shop_id
    ("6", "Hat", "1.00", "1", "2017-02-30"),  # unparseable_transaction_date
    ("7", None, "2.00", "2", "2017-03-02"),  # no product: valid
    ("8", 'Say "hi", ok', "2.00", "2", "2017-03-02"),  # quotes and a comma
    ("10", "Cap\x00", "2.00", "2", "2017-03-02"),  # NUL: malformed_line
]
CUSTOMERS_HEADER = ("ID", "Name", "City")
EXTRACTS = {  # extract date: records (ID, Name, City), None for a blank field
    "2017-01-31": [("1", " Ann Lee ", "Boston"), ("2", "Bob Roe", None), ("3", "Cy Doe", "Austin")],
    "2017-02-28": [("1", "Ann Lee", "Chicago"), ("2", "Bob Roe", None), ("x", "Bad Id", "Rome")],
    "2017-03-31": [("1", "Ann Lee", "Chicago"), ("2", "Bob Roe", "Denver"), ("4", "Di Ray", None)],
}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def refused(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1, result.output
    return result.output


def write_csv(path: Path, header: Sequence[str], records: Sequence[Sequence[str | None]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if value is None else value for value in row] for row in records])
    return path


def write_parquet(path: Path, columns: dict[str, pa.Array | list[object]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def text_columns(
    header: Sequence[str], records: Sequence[Sequence[str | None]], names: Sequence[str]
) -> dict[str, list[object]]:
    """The records as string columns (null for a blank field), named `names`."""
    return {name: [row[index] for row in records] for index, name in enumerate(names)}


@contextmanager
def fresh_warehouse(
    target: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, path: Path
) -> Iterator[Settings]:
    """Another empty warehouse on the same engine: a second DuckDB file, or a second
    throwaway PostgreSQL database, for the rest of the test."""
    if target == "duckdb":
        monkeypatch.setenv("DUCKDB_PATH", str(path))
        yield load_settings(target=target)
        return
    server = request.getfixturevalue("pg_server")
    with throwaway_database(server) as name:
        for key, value in server.env(name).items():
            monkeypatch.setenv(key, value)
        yield load_settings(target=target)


def build(settings: Settings, *models: str) -> None:
    selection = [f"+{model}" for model in models]
    extra = ["--select", *selection, "--indirect-selection", "cautious"]
    assert run_dbt(settings, ["build"], extra), "dbt build failed"


def staged_sales(settings: Settings, position_offset: int = 0) -> tuple[list[tuple], list[tuple]]:
    """The valid and the quarantined store sales (position_offset: added to the file
    position, so a CSV line and a Parquet row of the same record compare)."""
    staging = settings.relation("staging", "stg_store__sales")
    with connect(settings) as warehouse:
        _, valid = warehouse.query(
            f"select file_position + {position_offset}, sale_id, customer_id, product, shop_id, "
            f"amount_usd, is_refund, transacted_at from {staging} order by file_position"
        )
        _, quarantined = warehouse.query(
            f"select file_position + {position_offset}, reason, reason_detail "
            f"from {staging}_quarantine order by file_position"
        )
    return valid, quarantined


def raw_rows(settings: Settings, table: str, columns: str) -> list[tuple]:
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            f"select {columns} from {warehouse.raw(table)} order by load_id, file_position"
        )
    return rows


def counts(settings: Settings, table: str) -> tuple[int, int]:
    """Rows in the raw table, and its loads in the load log."""
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _, [(rows, loads)] = warehouse.query(
            f"select (select count(*) from {warehouse.raw(table)}), "
            f"(select count(*) from {warehouse.raw('loads')} where source_table = ?)",
            (table,),
        )
    return rows, loads


def test_parquet_sales_stage_exactly_like_the_same_csv(
    settings: Settings,
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
):
    t = ("--target", target)
    csv_file = write_csv(tmp_path / "sales.csv", SALES_HEADER, SALES)
    invoke("load", "store-sales", str(csv_file), *t)
    build(settings, "stg_store__sales", "stg_store__sales_quarantine")
    from_csv = staged_sales(settings, position_offset=-1)  # line 2 is the first record

    # The same records as Parquet string columns (blank fields as nulls), the column
    # names in another case and order: matched by name like the CSV header.
    names = ["customerid", "PRODUCT", "salesAmount", "ShopID", "transactiondate"]
    columns = text_columns(SALES_HEADER, SALES, names)
    parquet_file = write_parquet(
        tmp_path / "sales.parquet", {name: columns[name] for name in reversed(names)}
    )
    with fresh_warehouse(target, request, monkeypatch, tmp_path / "other.duckdb") as other:
        landed = invoke("load", "store-sales", str(parquet_file), *t)
        assert f"{len(SALES)} rows landed" in landed and "1 of them unparseable" in landed
        build(other, "stg_store__sales", "stg_store__sales_quarantine")
        from_parquet = staged_sales(other)

        # Each record lands with its row number and the row as JSON (the file's names).
        rows = raw_rows(other, "store_sales", "file_position, raw_text, parse_error")
        assert [row[0] for row in rows] == list(range(1, len(SALES) + 1))
        assert json.loads(rows[2][1]) == dict(zip(reversed(names), reversed(SALES[2]), strict=True))
        assert [row[2] for row in rows].count("contains a NUL character") == 1

        # The same file again lands nothing.
        again = invoke("load", "store-sales", str(parquet_file), *t)
        assert "already loaded" in again
        assert counts(other, "store_sales") == (len(SALES), 1)

    assert from_parquet == from_csv
    valid, quarantined = from_parquet
    assert [row[0] for row in valid] == [1, 3, 4, 5, 11, 12]
    assert [(row[0], row[1]) for row in quarantined] == [
        (2, "duplicate_row"),
        (6, "missing_amount"),
        (7, "missing_customer_id"),
        (8, "unparseable_amount"),
        (9, "unparseable_shop_id"),
        (10, "unparseable_transaction_date"),
        (13, "malformed_line"),
    ]


def test_parquet_column_types_land_as_their_text(settings: Settings, target: str, tmp_path: Path):
    """Typed Parquet columns: a field lands as the text of its value, and staging judges
    that text as it would the same text in a CSV file."""
    t = ("--target", target)
    utc = timezone.utc
    typed = write_parquet(
        tmp_path / "typed.parquet",
        {
            "CustomerID": pa.array([1, 2, 3, None], pa.int64()),
            "Product": pa.array(["Hat", "Hat", "Cap", "Cap"]).dictionary_encode(),
            "SalesAmount": pa.array([19.99, 0.1 + 0.2, 10.0, 5.0], pa.float64()),
            "ShopId": pa.array([4, None, 2, 1], pa.int32()),
            "TransactionDate": pa.array(
                [datetime(2017, 3, 29, 13, 54, 33, 250000, tzinfo=utc)] * 4,
                pa.timestamp("ms", "UTC"),
            ),
        },
    )
    texts = write_parquet(
        tmp_path / "texts.parquet",
        {
            "CustomerID": pa.array([5, 6], pa.int64()),
            "Product": ["Hat", "Cap"],
            "SalesAmount": ["abc", " 12.00 "],
            "ShopId": ["7", ""],  # an empty string, like a blank CSV field
            "TransactionDate": pa.array([datetime(2017, 4, 1, 8)] * 2, pa.timestamp("us")),
        },
    )
    doubles = write_parquet(
        tmp_path / "double_ids.parquet",
        {
            "CustomerID": pa.array([10166.0, 10166.5], pa.float64()),
            "Product": ["Hat", "Cap"],
            "SalesAmount": ["1.00", "2.00"],
            "ShopId": ["1", "1"],
            "TransactionDate": pa.array([date(2017, 4, 2)] * 2, pa.date32()),
        },
    )
    for path in (typed, texts, doubles):
        invoke("load", "store-sales", str(path), *t)
    fields = "customerid, product, salesamount, shopid, transactiondate"
    assert raw_rows(settings, "store_sales", fields) == [
        ("1", "Hat", "19.99", "4", "2017-03-29 13:54:33.250Z"),
        ("2", "Hat", "0.30000000000000004", None, "2017-03-29 13:54:33.250Z"),
        ("3", "Cap", "10.0", "2", "2017-03-29 13:54:33.250Z"),
        (None, "Cap", "5.0", "1", "2017-03-29 13:54:33.250Z"),
        ("5", "Hat", "abc", "7", "2017-04-01 08:00:00.000000"),
        ("6", "Cap", " 12.00 ", "", "2017-04-01 08:00:00.000000"),
        ("10166.0", "Hat", "1.00", "1", "2017-04-02"),
        ("10166.5", "Cap", "2.00", "1", "2017-04-02"),
    ]
    # The record's text keeps the values as JSON has them (numbers as numbers).
    [(first,)] = raw_rows(settings, "store_sales", "raw_text")[:1]
    assert json.loads(first)["SalesAmount"] == 19.99 and json.loads(first)["CustomerID"] == 1

    build(settings, "stg_store__sales", "stg_store__sales_quarantine")
    with connect(settings) as warehouse:
        _, valid = warehouse.query(
            "select customer_id, product, shop_id, amount_usd, transacted_at from "
            f"{settings.relation('staging', 'stg_store__sales')} "
            "order by transacted_at, customer_id"
        )
        _, quarantined = warehouse.query(
            "select reason, reason_detail from "
            f"{settings.relation('staging', 'stg_store__sales_quarantine')}"
        )
    assert valid == [
        (1, "Hat", 4, D("19.99"), datetime(2017, 3, 29, 13, 54, 33, 250000)),
        (3, "Cap", 2, D("10.00"), datetime(2017, 3, 29, 13, 54, 33, 250000)),
        (6, "Cap", None, D("12.00"), datetime(2017, 4, 1, 8)),
    ]
    # A double id is not a whole-number text (10166.0 would be quarantined from CSV
    # too): kept in quarantine with its value, never silently rounded.
    not_a_decimal = "SalesAmount is not a decimal with at most 2 places: "
    assert sorted(quarantined) == [
        ("missing_customer_id", "CustomerID is blank"),
        ("unparseable_amount", not_a_decimal + "0.30000000000000004"),
        ("unparseable_amount", not_a_decimal + "abc"),
        ("unparseable_customer_id", "CustomerID is not a whole number: 10166.0"),
        ("unparseable_customer_id", "CustomerID is not a whole number: 10166.5"),
    ]


def test_a_parquet_file_without_a_column_is_refused_and_nothing_lands(
    settings: Settings, target: str, tmp_path: Path
):
    t = ("--target", target)
    columns = text_columns(SALES_HEADER, SALES[:2], SALES_HEADER)
    missing = write_parquet(
        tmp_path / "no_shop.parquet", {k: v for k, v in columns.items() if k != "ShopId"}
    )
    output = refused("load", "store-sales", str(missing), *t)
    assert str(missing) in output and "no column ShopId" in output and "Nothing landed" in output

    extra = write_parquet(tmp_path / "extra.parquet", {**columns, "Note": ["a", "b"]})
    output = refused("load", "store-sales", str(extra), *t)
    assert "unexpected column Note" in output and "Nothing landed" in output

    customers = write_parquet(tmp_path / "store_customers_2017-01-31.parquet", {"ID": ["1"]})
    output = refused("load", "store-customers", str(customers), *t)
    assert "no column Name, City" in output

    whole = write_parquet(tmp_path / "whole.parquet", columns)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:200])  # starts with PAR1, but cut off
    assert "cannot be read as one" in refused("load", "store-sales", str(cut), *t)

    named = tmp_path / "sales.parquet"
    write_csv(named, SALES_HEADER, SALES[:2])  # CSV named .parquet
    assert "is not a Parquet file" in refused("load", "store-sales", str(named), *t)

    # A source that takes no Parquet says so.
    assert "looks like a Parquet file" in refused("load", "crm-products", str(whole), *t)

    assert counts(settings, "store_sales") == (0, 0)
    assert counts(settings, "store_customers") == (0, 0)


def test_rows_are_numbered_across_batches_and_an_empty_file_lands_nothing(
    settings: Settings, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(loading, "PARQUET_BATCH_ROWS", 2)  # 5 rows: 3 batches
    columns = text_columns(SALES_HEADER, SALES[:5], SALES_HEADER)
    path = write_parquet(tmp_path / "sales.parquet", columns)
    records = list(read_parquet_records(path, SALES_HEADER))
    assert [record.position for record in records] == [1, 2, 3, 4, 5]
    assert [record.fields for record in records] == [tuple(row) for row in SALES[:5]]

    empty = write_parquet(
        tmp_path / "empty.parquet", {name: pa.array([], pa.string()) for name in SALES_HEADER}
    )
    landed = invoke("load", "store-sales", str(empty), "--target", target)
    assert "0 rows landed" in landed
    assert counts(settings, "store_sales") == (0, 1)  # a load of no rows, like a bare header


def snapshot_history(settings: Settings) -> list[tuple]:
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            "select customer_id, customer_name, city, is_in_extract, extract_date, "
            "dbt_valid_from, dbt_valid_to "
            f"from {settings.relation('snapshots', 'store_customers_snapshot')} "
            "order by customer_id, dbt_valid_from"
        )
    return rows


def test_parquet_extracts_give_the_same_snapshot_as_csv(
    settings: Settings,
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
):
    """Extracts dated by their names, loaded in date order, as CSV in one warehouse and
    as Parquet (IDs an integer column where they are whole numbers) in another."""
    t = ("--target", target)
    for day, records in EXTRACTS.items():
        path = write_csv(tmp_path / f"store_customers_{day}.csv", CUSTOMERS_HEADER, records)
        invoke("load", "store-customers", str(path), *t)
    from_csv = snapshot_history(settings)
    assert len(from_csv) > len({row[0] for row in from_csv})  # a history, not one version

    with fresh_warehouse(target, request, monkeypatch, tmp_path / "other.duckdb") as other:
        for day, records in EXTRACTS.items():
            columns: dict[str, pa.Array | list[object]] = {
                **text_columns(CUSTOMERS_HEADER, records, CUSTOMERS_HEADER)
            }
            ids = columns["ID"]
            if all(str(value).isdigit() for value in ids):
                columns["ID"] = pa.array([int(str(value)) for value in ids], pa.int64())
            path = write_parquet(tmp_path / f"store_customers_{day}.parquet", columns)
            invoke("load", "store-customers", str(path), *t)
        assert snapshot_history(other) == from_csv
        again = invoke(
            "load", "store-customers", str(tmp_path / "store_customers_2017-03-31.parquet"), *t
        )
        assert "already loaded" in again
        assert snapshot_history(other) == from_csv


# Store sales for the dimensions: (CustomerID, Product, SalesAmount, ShopId,
# TransactionDate), all valid but the last two.
DIM_SALES = [
    ("1", "Scarf", "10.00", "1", "2017-02-10"),
    ("2", "Scarf", "12.50", "1", "2017-02-11 10:00:00"),
    ("1", "Boots", "30.00", "2", "2017-03-05"),
    ("1", "Boots", "-30.00", "2", "2017-03-06"),  # refund
    ("3", "Hat", "5.00", "", "2017-03-07"),  # no shop
    ("4", "", "7.00", "1", "2017-03-08"),  # no product
    ("5", "Scarf", "abc", "3", "2017-03-09"),  # quarantined: counts nowhere
    ("5", "Gloves", "1.00", "4", "2017-02-30"),  # quarantined: counts nowhere
]
CRM_PRODUCTS = "date,product\n01-2017,Gloves\n02-2017,Scarf\n03-2017,Scarf\n"


def expected_dimension(key_index: int) -> dict[object, tuple]:
    """(customers, sales, refunds, revenue, first and last sale date) per shop or product
    of the valid DIM_SALES, computed here in Python."""
    groups: dict[object, list[tuple]] = {}
    for sale in DIM_SALES[:6]:
        if sale[key_index]:
            key = int(sale[key_index]) if key_index == 3 else sale[key_index]
            groups.setdefault(key, []).append(sale)
    result = {}
    for key, sales in groups.items():
        amounts = [D(sale[2]) for sale in sales]
        days = [date.fromisoformat(sale[4][:10]) for sale in sales]
        result[key] = (
            len({sale[0] for sale in sales}),
            sum(amount >= 0 for amount in amounts),
            sum(amount < 0 for amount in amounts),
            sum(amounts),
            min(days),
            max(days),
        )
    return result


def test_shop_and_product_dimensions(settings: Settings, target: str, tmp_path: Path):
    t = ("--target", target)
    sales = write_csv(tmp_path / "sales.csv", SALES_HEADER, DIM_SALES)
    (tmp_path / "crm_products.csv").write_text(CRM_PRODUCTS, encoding="utf-8")
    (tmp_path / "app.csv").write_text(
        "customer_id,purchased_at,amount\n1,2017-03-01T10:00:00Z,9.99\n", encoding="utf-8"
    )
    invoke("load", "store-sales", str(sales), *t)
    invoke("load", "crm-products", str(tmp_path / "crm_products.csv"), *t)
    invoke("load", "app-purchases", str(tmp_path / "app.csv"), *t)
    build(settings, "fct_orders", "dim_shops", "dim_products")

    marts = settings.schema("marts")
    with connect(settings) as warehouse:
        _, shops = warehouse.query(
            "select shop_id, customers, sales, refunds, revenue_usd, first_sale_date, "
            f"last_sale_date from {marts}.dim_shops order by shop_id"
        )
        _, products = warehouse.query(
            "select product, customers, sales, refunds, revenue_usd, first_sale_date, "
            "last_sale_date, months_discussed, is_sold_in_store, is_discussed_in_crm, "
            "first_discussed_month_start, last_discussed_month_start "
            f"from {marts}.dim_products order by product"
        )
        _, orders = warehouse.query(
            "select orders.channel, orders.shop_id, shops.shop_id, orders.product, "
            "products.product, orders.shop_key is null, orders.product_key is null "
            f"from {marts}.fct_orders as orders "
            f"left join {marts}.dim_shops as shops on orders.shop_key = shops.shop_key "
            f"left join {marts}.dim_products as products "
            "on orders.product_key = products.product_key "
            "order by orders.channel, orders.ordered_at"
        )
    assert shops == [(key, *figures) for key, figures in sorted(expected_dimension(3).items())]
    sold = expected_dimension(1)
    discussed = {"Gloves": (1, date(2017, 1, 1), date(2017, 1, 1))}
    discussed["Scarf"] = (2, date(2017, 2, 1), date(2017, 3, 1))
    expected_products = []
    for product in sorted({*sold, *discussed}):
        figures = sold.get(product, (0, 0, 0, D("0.00"), None, None))
        months, first, last = discussed.get(product, (0, None, None))
        expected_products.append(
            (product, *figures, months, product in sold, product in discussed, first, last)
        )
    assert products == expected_products
    # Store orders join their shop and product; web and app orders have neither.
    assert orders == [
        ("app", None, None, None, None, True, True),
        ("store", 1, 1, "Scarf", "Scarf", False, False),
        ("store", 1, 1, "Scarf", "Scarf", False, False),
        ("store", 2, 2, "Boots", "Boots", False, False),
        ("store", 2, 2, "Boots", "Boots", False, False),
        ("store", None, None, "Hat", "Hat", True, False),
        ("store", 1, 1, None, None, False, True),
    ]


def load_generated_store_files(folder: Path, target: str) -> None:
    """Land the store files of a generated world, as its manifest lists them (extracts in
    date order, each snapshotted as it lands)."""
    manifest = json.loads((folder / "generate.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        if entry["source"] in ("store-customers", "store-sales"):
            invoke("load", entry["source"], str(folder / entry["path"]), "--target", target)


def test_a_generated_world_stages_the_same_from_parquet_store_files(
    settings: Settings,
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
):
    """`runner generate --store-format parquet` writes the store's files as Parquet with
    the records of the CSV world of the same seed (dirt included): they stage alike."""
    for store_format in ("csv", "parquet"):
        world = ("--customers", "15", "--seed", "7", "--store-format", store_format)
        invoke("generate", *world, "--out", str(tmp_path / store_format))
    assert sorted(path.name for path in (tmp_path / "parquet").glob("store_*")) == sorted(
        path.name.replace(".csv", ".parquet") for path in (tmp_path / "csv").glob("store_*")
    )

    def staged(settings: Settings) -> tuple[list[tuple], list[tuple], list[tuple]]:
        build(settings, "stg_store__sales", "stg_store__sales_quarantine")
        valid, quarantined = staged_sales(settings)
        return (
            sorted(row[1:] for row in valid),
            sorted(row[1:] for row in quarantined),
            snapshot_history(settings),
        )

    load_generated_store_files(tmp_path / "csv", target)
    from_csv = staged(settings)
    with fresh_warehouse(target, request, monkeypatch, tmp_path / "other.duckdb") as other:
        load_generated_store_files(tmp_path / "parquet", target)
        from_parquet = staged(other)
    assert from_csv[1], "the generated sales hold bad rows: some are quarantined"
    assert from_parquet == from_csv
