"""Incremental builds give exactly what a full refresh of the same data gives, on DuckDB and
PostgreSQL: the sample's growing sources are landed in three loads, with a `runner build
--changed` after each, then a fourth load of web events alone (which --changed builds
without the other sources' models), then every mart and every incremental model is
compared with a `--full-refresh` of the same warehouse. The loads carry what real feeds
carry: events out of order across loads (each load holds events from the whole window),
repeats of events already built, and order updates arriving before or after their
order."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from python_tests.conftest import SAMPLE_DIR
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import run_dbt
from runner.warehouse import connect

AS_OF = ["--vars", "{as_of_date: 2017-04-30}"]
MODELS_ONLY = ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
PARTS = 3
RESENT = 40  # the last lines of the first load, sent again in the last one

# (source, sample file) of the sources that grow: split into PARTS loads.
SPLIT = [
    ("web-events", "web_events.jsonl"),
    ("store-sales", "store_sales.csv"),
    ("crm-interactions", "crm_interactions.csv"),
    ("app-sessions", "app_sessions.jsonl"),
    ("app-purchases", "app_purchases.csv"),
]
MARKETING = ("session_sources.csv", "conversions.csv", "session_costs.csv")
INCREMENTAL_MODELS = [
    "staging.base_web__events",
    "staging.base_store__sales",
    "staging.base_crm__interactions",
    "staging.base_app__sessions",
    "staging.base_app__purchases",
    "staging.base_marketing__sessions",
    "staging.base_marketing__conversions",
    "staging.base_marketing__session_costs",
    "intermediate.int_web_events_deduplicated",
    "intermediate.int_web_orders_resolved",
    "intermediate.int_journeys_built",
]


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output


def split_file(source: Path, out_dir: Path) -> list[Path]:
    """The file cut into PARTS consecutive slices (a CSV keeps its header in each), the last
    one also repeating the final RESENT records of the first."""
    data = source.read_bytes()
    lines = data.splitlines(keepends=True)
    header = [lines.pop(0)] if source.suffix == ".csv" else []
    size = -(-len(lines) // PARTS)
    slices = [lines[i * size : (i + 1) * size] for i in range(PARTS)]
    slices[-1] = slices[-1] + slices[0][-RESENT:]
    paths = []
    for number, part in enumerate(slices, start=1):
        folder = out_dir / f"part{number}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / source.name
        path.write_bytes(b"".join(header + part))
        paths.append(path)
    return paths


def model_rows(settings: Settings, relation: str) -> list[tuple]:
    """Every row of a relation, in a stable order, with values made comparable."""
    with connect(settings) as warehouse:
        columns, rows = warehouse.query(f"select * from {relation}")
    return sorted((tuple(str(value) for value in row) for row in rows), key=repr), columns


def marts(settings: Settings) -> list[str]:
    with connect(settings) as warehouse:
        _, rows = warehouse.query(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    return sorted(f"marts.{name}" for (name,) in rows)


def built_models() -> set[str]:
    """The models the last dbt build ran (its run_results.json)."""
    results = Path(os.environ["DBT_TARGET_PATH"]) / "run_results.json"
    return {
        result["unique_id"].split(".")[-1]
        for result in json.loads(results.read_text(encoding="utf-8"))["results"]
        if result["unique_id"].startswith("model.")
    }


def test_incremental_runs_equal_a_full_refresh(settings: Settings, target: str, tmp_path: Path):
    parts: dict[str, list[Path]] = {
        source: split_file(SAMPLE_DIR / name, tmp_path / source) for source, name in SPLIT
    }
    for name in MARKETING:
        split_file(SAMPLE_DIR / "marketing" / name, tmp_path / "marketing")
    marketing_parts = [tmp_path / "marketing" / f"part{n}" for n in range(1, PARTS + 1)]

    # What does not grow is landed once: the customer extracts and the CRM lists.
    for extract in sorted(SAMPLE_DIR.glob("store_customers_*.csv")):
        day = extract.stem.rsplit("_", 1)[1]
        invoke("load", "store-customers", str(extract), "--extract-date", day, "--target", target)
    for source in ("crm-customers", "crm-products"):
        invoke(
            "load", source, str(SAMPLE_DIR / f"{source.replace('-', '_')}.csv"), "--target", target
        )

    for number in range(PARTS):
        for source, paths in parts.items():
            invoke("load", source, str(paths[number]), "--target", target)
        invoke("load", "marketing", str(marketing_parts[number]), "--target", target)
        # The data tests and unit tests run elsewhere (test_build.py): models only here.
        # The first build is whole (nothing recorded yet); the next ones build what the
        # new loads touch, which is every growing source's models.
        invoke("build", "--changed", "--target", target, "--", *AS_OF, *MODELS_ONLY)

    # The last runs took the incremental path: they inserted into the built tables.
    ran = Path(os.environ["DBT_TARGET_PATH"]) / "run" / "customer_analytics" / "models"
    for relation in INCREMENTAL_MODELS:
        name = relation.split(".")[1]
        (sql_file,) = ran.glob(f"**/{name}.sql")  # base models sit one folder deeper
        assert "insert into" in sql_file.read_text(encoding="utf-8").lower(), relation

    # A day of web events alone: --changed builds the web events' models and what is
    # downstream of them, not the other sources' (the full refresh below checks that
    # what it left is still right).
    web_day = tmp_path / "web_day.jsonl"
    web_day.write_bytes(b"".join(parts["web-events"][0].read_bytes().splitlines(True)[:50]))
    invoke("load", "web-events", str(web_day), "--target", target)
    invoke("build", "--changed", "--target", target, "--", *AS_OF, *MODELS_ONLY)
    built = built_models()
    assert {"base_web__events", "int_web_orders_resolved", "fct_orders", "customer_ltv"} <= built
    assert not built & {"base_store__sales", "base_crm__interactions", "int_journeys_built"}

    relations = [*INCREMENTAL_MODELS, *marts(settings)]
    assert len(relations) > len(INCREMENTAL_MODELS) + 10
    incremental = {relation: model_rows(settings, relation) for relation in relations}

    with connect(settings) as warehouse:
        _, counts = warehouse.query(
            "select (select count(*) from raw.web_events), "
            "(select count(*) from staging.base_web__events), "
            "(select count(*) from intermediate.int_web_events_deduplicated), "
            "(select count(distinct event_id) from staging.stg_web__events)"
        )
    raw, base, deduplicated, distinct_events = counts[0]
    assert raw == base  # every landed row typed once, none twice
    assert deduplicated == distinct_events

    assert run_dbt(settings, ["build"], [*AS_OF, *MODELS_ONLY, "--full-refresh"])
    for relation in relations:
        assert model_rows(settings, relation) == incremental[relation], relation
