"""The registry of raw sources (runner/sources.py) and what is derived from it: the
generated dbt macro file, the landing DDL on both warehouses, the loaders and load
commands, the dbt sources and staging models it names, and raw schemas per target."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from python_tests.conftest import PROJECT_DIR, insert_raw_rows
from runner import sources
from runner.cli import FILE_SOURCES, INTAKE_COMMAND, cli, load
from runner.config import Settings
from runner.errors import RunnerError
from runner.loading import MARKETING_TABLES, RAW_TABLES, SOURCE_NAMES, load_file, unload
from runner.sources import (
    LOAD_COMMANDS,
    MACRO_FILE,
    RAW_SOURCES,
    RUNNER_TABLES,
    FileFormat,
    Loader,
    landing_tables,
    render_macro_file,
)
from runner.warehouse import DuckDBWarehouse, connect

SYSTEMS = {"web", "store", "crm", "app", "marketing"}
# The registry's portable types, as each engine's information_schema names them.
TYPES = {
    "duckdb": {
        "varchar": "VARCHAR",
        "bigint": "BIGINT",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "double precision": "DOUBLE",
    },
    "postgres": {
        "varchar": "character varying",
        "bigint": "bigint",
        "timestamp": "timestamp without time zone",
        "date": "date",
        "double precision": "double precision",
    },
}


def test_the_macro_file_is_generated_from_the_registry():
    current = (PROJECT_DIR / MACRO_FILE).read_text(encoding="utf-8")
    assert current == render_macro_file(), (
        f"{MACRO_FILE} is stale: run `python -m runner.sources` to regenerate it from "
        "runner/sources.py"
    )
    assert sources.main(["--check", "--project-dir", str(PROJECT_DIR)]) == 0


def test_the_check_fails_on_a_stale_file_and_the_command_rewrites_it(tmp_path: Path, capsys):
    shutil.copy(PROJECT_DIR / "dbt_project.yml", tmp_path / "dbt_project.yml")
    (tmp_path / "macros").mkdir()
    stale = tmp_path / MACRO_FILE
    stale.write_text(render_macro_file().replace("bigint", "integer"), encoding="utf-8")
    assert sources.main(["--check", "--project-dir", str(tmp_path)]) == 1
    assert "python -m runner.sources" in capsys.readouterr().err
    assert sources.main(["--project-dir", str(tmp_path)]) == 0
    assert stale.read_text(encoding="utf-8") == render_macro_file()
    assert sources.main(["--check", "--project-dir", str(tmp_path)]) == 0


def test_every_entry_is_complete_and_named_once():
    tables = [table.table for table in landing_tables()]
    assert len(tables) == len(set(tables)), "a landing table is in the registry twice"
    assert len(tables) == len(RAW_SOURCES) + len(RUNNER_TABLES)
    for source in RAW_SOURCES:
        assert source.system in SYSTEMS, source.table
        assert source.description and source.noun and source.formats, source.table
        names = [column.name for column in source.columns]
        assert len(names) == len(set(names)), f"{source.table} repeats a column"
        assert names[:3] == ["load_id", "file_name", "file_position"]
        assert {"raw_text", "parse_error", "loaded_at"} <= set(names)
        for alias in source.header_aliases:
            assert len(alias) == len(source.header), f"{source.table}: alias {alias}"
        if FileFormat.CSV in source.formats:
            assert source.header, f"{source.table} takes CSV but names no header"
    for table in RUNNER_TABLES:
        assert table.system in {"runner", "ihc", "app"}, table.table
        names = {column.name for column in table.columns}
        assert set(table.primary_key) <= names and set(table.unique) <= names, table.table


def test_the_staged_and_quarantine_models_exist_in_the_systems_staging_folder():
    for source in RAW_SOURCES:
        folder = PROJECT_DIR / "models" / "staging" / source.system
        for model in (source.staged_model, source.quarantine_model):
            found = list(folder.rglob(f"{model}.sql"))
            assert found, f"{source.table}: no model {model}.sql under {folder}"


def test_the_loaders_and_commands_are_the_registrys():
    assert list(RAW_TABLES) == [source.table for source in RAW_SOURCES]
    for source in RAW_SOURCES:
        table = RAW_TABLES[source.table]
        assert table.field_columns == source.field_columns
        assert SOURCE_NAMES[source.table] == (source.noun, f"runner load {source.command.name}")
    marketing = {s.table: s.header for s in RAW_SOURCES if s.command.loader is Loader.MARKETING}
    assert marketing == MARKETING_TABLES
    assert set(load.commands) == {c.name for c in LOAD_COMMANDS} | {INTAKE_COMMAND}
    assert set(FILE_SOURCES) == {c.name for c in LOAD_COMMANDS if c.loader is Loader.FILES}
    for command in LOAD_COMMANDS:
        assert load.commands[command.name].help == command.help
        filled = [source for source in RAW_SOURCES if source.command == command]
        for source in filled:  # the help says where the files land, and their header
            assert source.table in command.help, (command.name, source.table)
            if command.loader is not Loader.MARKETING and source.header:
                assert ",".join(source.header) in command.help, command.name


def test_the_landing_ddl_creates_the_registrys_columns(settings: Settings):
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        warehouse.ensure_raw_tables()  # again: changes nothing
        for table in landing_tables():
            _, rows = warehouse.query(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                (settings.schema("raw"), table.table),
            )
            assert [(name, nullable == "NO") for name, _, nullable in rows] == [
                (column.name, column.not_null) for column in table.columns
            ], table.table
            types = [TYPES[settings.adapter_type][column.type] for column in table.columns]
            assert [found for _, found, _ in rows] == types, table.table


def test_the_dbt_sources_are_the_registrys_tables(profiles_dir: Path):
    """Every table of the raw schema that dbt declares is in the registry, with the columns
    it documents; every raw source of the registry is declared in dbt."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(profiles_dir)]
    )
    assert result.success, result.exception
    registry = {table.table: table for table in landing_tables()}
    declared = {}
    for node in result.result.sources.values():
        if node.package_name != "customer_analytics" or node.schema != "raw":
            continue
        declared[node.identifier] = node
        assert node.identifier in registry, f"dbt declares {node.identifier}, not in the registry"
        assert node.source_name == registry[node.identifier].system, (
            f"{node.identifier} is declared under the source {node.source_name}, "
            f"the registry says {registry[node.identifier].system}"
        )
        names = {column.name for column in registry[node.identifier].columns}
        documented = set(node.columns)
        assert documented <= names, (node.identifier, documented - names)
    missing = {source.table for source in RAW_SOURCES} - set(declared)
    assert not missing, f"raw sources no dbt source declares: {missing}"


def as_dev_target(settings: Settings) -> Settings:
    """The same warehouse as `settings`, as a non-production target `dev`."""
    assert not dataclasses.replace(settings, target="dev").is_production
    return dataclasses.replace(settings, target="dev")


def test_a_non_production_target_lands_in_its_own_raw_schema(settings: Settings, tmp_path: Path):
    dev = as_dev_target(settings)
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "ORDER", "key": "o1"}) + "\n")
    with connect(dev) as warehouse:
        result = load_file(warehouse, "web_events", path)
        assert result.relation == "dev_raw.web_events"
        assert "rows landed in dev_raw.web_events" in result.summary()
        _, rows = warehouse.query("select count(*) from dev_raw.web_events")
        assert rows == [(1,)]
        _, rows = warehouse.query("select source_table from dev_raw.loads")
        assert rows == [("web_events",)]
        assert not warehouse.table_exists("raw", "loads")  # production untouched
        taken_back = unload(warehouse, result.load_id)
        assert "removed from dev_raw.web_events, and its line in dev_raw.loads" in (
            taken_back.summary()
        )
        _, rows = warehouse.query("select count(*) from dev_raw.unloads")
        assert rows == [(1,)]
        assert not warehouse.table_exists("raw", "unloads")


def test_the_load_commands_land_in_the_targets_raw_schema(settings: Settings, tmp_path: Path):
    path = tmp_path / "products.csv"
    path.write_text("date,product\n01-2019,Sand\n")
    result = CliRunner().invoke(cli, ["load", "crm-products", str(path), "-t", settings.target])
    assert result.exit_code == 0, result.output
    assert f"1 rows landed in {settings.relation('raw', 'crm_products')} (load " in result.output


def test_rows_for_tables_no_loader_writes_use_the_registrys_tables(settings: Settings):
    with connect(settings) as warehouse:
        insert_raw_rows(
            warehouse,
            "attribution_customer_journey",
            [{"conv_id": "c1", "session_id": "s1", "ihc": 1.0, "run_id": "r"} | RECEIVED],
        )
        _, rows = warehouse.query(
            f"select conv_id, ihc from {settings.relation('raw', 'attribution_customer_journey')}"
        )
    assert rows == [("c1", 1.0)]


RECEIVED = {"received_at": "2017-01-01 00:00:00"}


def test_a_connection_without_settings_says_how_to_open_one(tmp_path: Path):
    with (
        DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse,
        pytest.raises(RunnerError, match=r"connect\(settings\)"),
    ):
        warehouse.ensure_raw_tables()
