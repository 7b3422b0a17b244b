"""Spark, the third engine (issue 17): the sample lands on Spark exactly as on DuckDB.

Marked `spark`: plain `make test` leaves these out (pyproject.toml's addopts);
`make test-spark` installs requirements-spark.lock into .venv and runs them. One Spark
session serves the whole module (its embedded Derby metastore allows one process at a
time, and starting Spark takes most of a minute), with its metastore and warehouse
folder in a temporary SPARK_DATA_DIR.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devtools.ihc_emulator import EmulatorConfig, serve_in_thread
from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR
from runner.cli import cli
from runner.config import Settings, _render_profile_with_dbt, load_settings, read_simple_profile
from runner.errors import RunnerError
from runner.loading import LoadResult, load_file, load_marketing, load_store_customers
from runner.sources import RAW_SOURCES, Loader
from runner.warehouse import Warehouse, connect

pytestmark = pytest.mark.spark

# What the sample's demo loads (Makefile, demo), by raw table: the files of each.
SAMPLE_FILES = {
    "web_events": ["web_events.jsonl"],
    "store_sales": ["store_sales.csv"],
    "crm_customers": ["crm_customers.csv"],
    "crm_interactions": ["crm_interactions.csv"],
    "crm_products": ["crm_products.csv"],
    "app_sessions": ["app_sessions.jsonl"],
    "app_purchases": ["app_purchases.csv"],
    "app_contacts": ["app_contacts.csv"],
}
# Columns that differ between two loads of the same file by design.
PER_LOAD = {"load_id", "loaded_at"}
# The date `make demo` evaluates the sample at.
AS_OF = "{as_of_date: 2017-04-30}"
KEY = "spark-test-key"  # the emulator's API key
STAGED_RESULTS = "stg_ihc__attribution_results"
# Every mart (models/marts/), and the store customer history the customer marts read:
# the snapshot on DuckDB, rebuilt from the extracts on Spark.
MARTS = sorted(path.stem for path in (PROJECT_DIR / "models" / "marts").rglob("*.sql"))
COMPARED = [("marts", name) for name in MARTS] + [("intermediate", "int_store_customers_versioned")]


def land_sample(warehouse: Warehouse, store_customers: bool = True) -> list[LoadResult]:
    """Every source of the sample, as `make demo` lands it (without the store customer
    extracts when store_customers is false: demo_build lands them)."""
    results = []
    for table, names in SAMPLE_FILES.items():
        for name in names:
            results.append(load_file(warehouse, table, SAMPLE_DIR / name))
    for path in sorted(SAMPLE_DIR.glob("store_customers_*.csv")) if store_customers else []:
        day = dt.date.fromisoformat(path.stem.rsplit("_", 1)[1])
        results.append(load_store_customers(warehouse, path, day))
    results.extend(load_marketing(warehouse, SAMPLE_DIR / "marketing"))
    results.extend(load_marketing(warehouse, SAMPLE_DIR / "marketing.sqlite"))
    return results


def normalised(value: Any) -> Any:
    """A value as both engines' drivers give it, for comparison."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return value


def comparable(value: Any) -> Any:
    """A value of a model's row in one form for every engine: decimals and floats as
    floats rounded to 6 places, timestamps (naive, UTC) and dates as ISO texts."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (Decimal, float)):
        number = float(value)
        return number if math.isnan(number) else round(number, 6) + 0.0
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def model_rows(warehouse: Warehouse, layer: str, name: str) -> list[tuple[Any, ...]]:
    """A model's rows, normalised (comparable) and sorted, after its columns' names,
    without the per-load columns (data_quality's load_id and loaded_at)."""
    assert warehouse.settings is not None
    relation = warehouse.settings.relation(layer, name)
    columns, _ = warehouse.query(f"select * from {relation} limit 0")
    kept = [column.lower() for column in columns if column.lower() not in PER_LOAD]
    _, rows = warehouse.query(f"select {', '.join(kept)} from {relation}")
    data = sorted((tuple(comparable(v) for v in row) for row in rows), key=repr)
    return [tuple(kept), *data]


def attribute(target: str, url: str, *more: str) -> None:
    """`runner attribute` against the emulator at `url`, then its build of what depends
    on the results: what make demo-attribution runs."""
    result = CliRunner().invoke(
        cli,
        ["attribute", "--target", target, "--api-url", url, "--conv-type-id", "default", *more],
        env={"IHC_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output[-5000:]


def without_run(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of stg_ihc__attribution_results without the run and the time of the answer:
    conversion, session and the shares."""
    kept = [i for i, name in enumerate(rows[0]) if name not in ("run_id", "received_at")]
    return [tuple(row[i] for i in kept) for row in rows]


def demo_build(target: str) -> None:
    """What `make demo` does after landing the rest of the sample: each store customer
    extract through `runner load store-customers` (on DuckDB it snapshots each one as
    it lands), then `runner build` at the demo's as_of_date."""
    for path in sorted(SAMPLE_DIR.glob("store_customers_*.csv")):
        result = CliRunner().invoke(cli, ["load", "store-customers", str(path), "--target", target])
        assert result.exit_code == 0, result.output
    built = CliRunner().invoke(
        cli, ["build", "--target", target, "--no-freshness", "--", "--vars", AS_OF]
    )
    assert built.exit_code == 0, built.output[-5000:]


def raw_rows(warehouse: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """The rows of a raw table without the per-load columns, sorted, with their columns'
    names first (so a column missing on one engine fails the comparison)."""
    columns, _ = warehouse.query(f"select * from {warehouse.raw(table)} limit 0")
    kept = [column for column in columns if column not in PER_LOAD]
    _, rows = warehouse.query(f"select {', '.join(kept)} from {warehouse.raw(table)}")
    data = sorted((tuple(normalised(v) for v in row) for row in rows), key=repr)
    return [tuple(kept), *data]


@pytest.fixture(scope="module")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    pytest.importorskip("pyspark", reason="make test-spark installs requirements-spark.lock")
    folder = tmp_path_factory.mktemp("spark")
    patch = pytest.MonkeyPatch()
    profiles = tmp_path_factory.mktemp("spark-profiles")
    (profiles / "profiles.yml").write_bytes((PROJECT_DIR / "profiles.yml.example").read_bytes())
    patch.setenv("SPARK_DATA_DIR", str(folder))
    patch.setenv("SPARK_MASTER", "local[2]")
    try:
        yield load_settings(target="spark", profiles_dir=profiles)
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def spark(spark_settings: Settings) -> Iterator[Warehouse]:
    with connect(spark_settings) as warehouse:
        yield warehouse


def test_spark_target_keeps_its_files_in_spark_data_dir(spark_settings: Settings) -> None:
    conf = spark_settings.spark_conf
    assert spark_settings.adapter_type == "spark"
    assert spark_settings.schema("raw") == "spark_raw"
    folder = Path(conf["spark.sql.warehouse.dir"]).parent
    assert folder.name.startswith("spark")
    assert str(folder / "metastore_db") in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]


def test_every_source_lands_on_spark_as_on_duckdb(spark: Warehouse, tmp_path: Path) -> None:
    spark_results = land_sample(spark)
    assert all(not result.skipped and result.rows_landed > 0 for result in spark_results)
    assert {result.source_table for result in spark_results} == {
        source.table for source in RAW_SOURCES
    }
    with connect(load_settings(target="duckdb")) as duckdb:
        duckdb_results = land_sample(duckdb)
        assert [(r.source_table, r.rows_landed, r.rows_unparseable) for r in spark_results] == [
            (r.source_table, r.rows_landed, r.rows_unparseable) for r in duckdb_results
        ]
        for source in RAW_SOURCES:
            assert raw_rows(spark, source.table) == raw_rows(duckdb, source.table), source.table
        # the load log: the same files, digests, sizes and counts
        loads = "source_table, file_name, file_sha256, file_bytes, rows_landed, rows_unparseable"
        _, spark_loads = spark.query(f"select {loads} from {spark.raw('loads')}")
        _, duckdb_loads = duckdb.query(f"select {loads} from {duckdb.raw('loads')}")
        assert sorted(spark_loads) == sorted(duckdb_loads)

    # idempotent: the same files again add nothing
    before = {source.table: raw_rows(spark, source.table) for source in RAW_SOURCES}
    again = land_sample(spark)
    assert all(result.skipped for result in again)
    assert {source.table: raw_rows(spark, source.table) for source in RAW_SOURCES} == before
    _, count = spark.query(f"select count(*) from {spark.raw('loads')}")
    assert count[0][0] == len(spark_results)

    # a store extract older than the latest landed is refused, nothing lands
    late = tmp_path / "store_customers_2017-02-01.csv"
    late.write_text("ID,Name,City\n99999,Late Extract,Austin\n", encoding="utf-8")
    with pytest.raises(RunnerError, match="date order"):
        load_store_customers(spark, late, dt.date(2017, 2, 1))
    assert raw_rows(spark, "store_customers") == before["store_customers"]


def test_the_registry_covers_what_the_sample_lands() -> None:
    extract_or_marketing = {
        source.table for source in RAW_SOURCES if source.command.loader is not Loader.FILES
    }
    assert set(SAMPLE_FILES) | extract_or_marketing == {source.table for source in RAW_SOURCES}


@pytest.mark.parametrize(
    "environment", [{}, {"SPARK_DATA_DIR": "/data/spark", "SPARK_MASTER": "local[1]"}]
)
def test_the_spark_target_reads_as_dbt_spark_reads_it(
    monkeypatch: pytest.MonkeyPatch, profiles_dir: Path, environment: dict[str, str]
) -> None:
    """The runner reads the spark target without dbt, and gets what dbt-spark gets: the
    same session configuration, so its SparkSession is the one dbt reuses."""
    pytest.importorskip("dbt.adapters.spark", reason="make test-spark installs dbt-spark")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    simple = read_simple_profile(profiles_dir / "profiles.yml", "spark")
    assert simple is not None
    _, credentials = _render_profile_with_dbt(profiles_dir, "spark")
    described = ("type", "schema", "host", "server_side_parameters")
    assert [getattr(simple[1], name) for name in described] == [
        getattr(credentials, name) for name in described
    ]
    assert str(getattr(credentials.method, "value", credentials.method)) == simple[1].method


@pytest.mark.usefixtures("with_unit_tests")  # every unit test passes on Spark too
def test_every_mart_on_spark_is_the_same_as_on_duckdb(
    spark: Warehouse, spark_settings: Settings
) -> None:
    """The sample landed, built and attributed on both engines, as make demo does it:
    every mart (and the store customer history, the snapshot on DuckDB, and the
    attribution results) holds the same rows, column for column."""
    assert MARTS, "no marts found under models/marts"
    land_sample(spark, store_customers=False)  # what an earlier test has not landed
    with connect(load_settings(target="duckdb")) as duckdb:
        results = land_sample(duckdb, store_customers=False)
        assert all(not result.skipped for result in results)
    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        for target in ("spark", "duckdb"):
            demo_build(target)
            attribute(target, emulator.url)

    differing = []
    with connect(load_settings(target="duckdb"), read_only=True) as duckdb:
        for layer, name in [*COMPARED, ("staging", STAGED_RESULTS)]:
            on_spark, on_duckdb = model_rows(spark, layer, name), model_rows(duckdb, layer, name)
            if name == STAGED_RESULTS:  # each engine's own run and time of the answer
                on_spark, on_duckdb = without_run(on_spark), without_run(on_duckdb)
            if on_spark != on_duckdb:
                only_spark = sorted(set(on_spark) - set(on_duckdb), key=repr)[:3]
                only_duckdb = sorted(set(on_duckdb) - set(on_spark), key=repr)[:3]
                differing.append(
                    f"{name}: {len(on_spark) - 1} rows on Spark, {len(on_duckdb) - 1} on "
                    f"DuckDB; only on Spark {only_spark}; only on DuckDB {only_duckdb}"
                )
    assert not differing, "\n".join(differing)
    # the sample fills the customer marts and the attribution: not empty tables compared
    assert len(model_rows(spark, "marts", "customer_ltv")) > 1
    reporting = model_rows(spark, "marts", "channel_reporting")
    attributed = reporting[0].index("ihc")  # attributed conversions
    assert sum(row[attributed] or 0 for row in reporting[1:]) > 0


def test_a_forced_attribution_rerun_on_spark_replaces_the_results(
    spark: Warehouse, spark_settings: Settings
) -> None:
    """After the demo above: a --force rerun on Spark (append-only Parquet) lands its
    answer beside the first, and the staging model and the marts keep exactly one per
    conversion, the newer; the run log's staging model one row per run."""
    results = spark_settings.relation("raw", "attribution_customer_journey")
    first = model_rows(spark, "staging", STAGED_RESULTS)
    reporting = model_rows(spark, "marts", "channel_reporting")
    _, [(first_rows,)] = spark.query(f"select count(*) from {results}")
    assert first_rows == len(first) - 1 > 0  # one answer so far

    with serve_in_thread(EmulatorConfig(api_key=KEY)) as emulator:
        attribute("spark", emulator.url, "--force")
    _, [(both,)] = spark.query(f"select count(*) from {results}")
    assert both == 2 * first_rows  # appended: the raw table keeps both answers
    again = model_rows(spark, "staging", STAGED_RESULTS)
    run = again[0].index("run_id")
    assert {row[run] for row in again[1:]}.isdisjoint({row[run] for row in first[1:]})
    assert without_run(again) == without_run(first)  # the newer answer, once
    assert model_rows(spark, "marts", "channel_reporting") == reporting
    runs = model_rows(spark, "staging", "stg_runner__attribution_runs")
    status = runs[0].index("status")
    assert [row[status] for row in runs[1:]] == ["succeeded", "succeeded"]


def test_what_spark_cannot_do_is_refused_and_changes_nothing(spark: Warehouse) -> None:
    """Taking a load back and sending messages rewrite rows, which Spark's Parquet tables
    cannot: each is refused with what to do instead, and nothing changes."""
    _, loads_before = spark.query(f"select load_id from {spark.raw('loads')} order by load_id")
    unload = CliRunner().invoke(cli, ["unload", str(loads_before[0][0]), "--target", "spark"])
    assert unload.exit_code == 1
    assert "cannot delete rows. Nothing was removed" in " ".join(unload.output.split())
    message = CliRunner().invoke(cli, ["message", "--target", "spark"])
    assert message.exit_code == 1
    assert "Nothing was sent" in " ".join(message.output.split())
    _, loads_after = spark.query(f"select load_id from {spark.raw('loads')} order by load_id")
    assert loads_after == loads_before
