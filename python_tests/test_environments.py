"""Environments: production targets write raw, staging, intermediate, snapshots, marts;
any other target writes `<target>_<layer>` and grants the BI role nothing.

One rule, two sides: dbt's macro generate_schema_name and the runner's
Settings.schema. The first tests parse the project for production and non-production
targets and compare every node's schema with Settings.schema, so the two cannot drift.
The others build production from the bundled sample, then build a dev target on the
same warehouse, and check that production is exactly as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR
from runner.cli import cli
from runner.config import LAYERS, load_settings
from runner.warehouse import connect

DBT = str(Path(sys.executable).with_name("dbt"))
AS_OF = "2017-04-30"
# The layers dbt builds (raw belongs to the runner's loaders and dbt's sources).
BUILT_LAYERS = ("staging", "intermediate", "snapshots", "marts")


def dbt(
    *args: str, target_path: Path, project_dir: Path = PROJECT_DIR
) -> subprocess.CompletedProcess:
    """dbt as a user runs it, from the project folder, with the test's profile."""
    return subprocess.run(
        [DBT, *args, "--target-path", str(target_path), "--project-dir", str(project_dir)],
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=False,
    )


def parsed_manifest(target: str, target_path: Path, project_dir: Path = PROJECT_DIR) -> dict:
    parsed = dbt("parse", "--target", target, target_path=target_path, project_dir=project_dir)
    assert parsed.returncode == 0, parsed.stdout[-3000:] + parsed.stderr[-3000:]
    return json.loads((target_path / "manifest.json").read_text(encoding="utf-8"))


def wrong_schemas(manifest: dict, settings) -> dict[str, tuple[str, str]]:
    """Models, seeds and snapshots whose schema is not Settings.schema of their layer."""
    return {
        node["unique_id"]: (node["schema"], node["config"]["schema"])
        for node in manifest["nodes"].values()
        if node["resource_type"] in {"model", "seed", "snapshot"}
        and (
            node["config"]["schema"] not in LAYERS
            or node["schema"] != settings.schema(node["config"]["schema"])
        )
    }


# --- one rule: dbt's schemas are the runner's -------------------------------------------


@pytest.mark.parametrize(
    ("target", "production"),
    [("duckdb", True), ("postgres", True), ("dev", False), ("ci", False)],
)
def test_every_model_seed_and_snapshot_is_in_the_schema_the_runner_resolves(
    target: str, production: bool, tmp_path: Path
):
    settings = load_settings(target=target)
    assert settings.is_production is production
    manifest = parsed_manifest(target, tmp_path / "target")

    nodes = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] in {"model", "seed", "snapshot"}
    ]
    assert {node["resource_type"] for node in nodes} == {"model", "seed", "snapshot"}
    wrong = wrong_schemas(manifest, settings)
    assert not wrong, f"schema (built, configured) differs from Settings.schema: {wrong}"
    built = {node["schema"] for node in nodes}
    assert built == {settings.schema(layer) for layer in BUILT_LAYERS}
    if production:
        assert built == set(BUILT_LAYERS)
    else:
        assert built == {f"{target}_{layer}" for layer in BUILT_LAYERS}


def test_the_production_targets_var_moves_both_sides(tmp_path: Path):
    """Another list in dbt_project.yml: dbt and the runner both follow it."""
    project = tmp_path / "project"
    for name in ("models", "macros", "seeds", "snapshots", "tests"):
        shutil.copytree(PROJECT_DIR / name, project / name)
    text = (PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8")
    declared = '  production_targets: ["duckdb", "postgres"]\n'
    assert text.count(declared) == 1
    text = text.replace(declared, '  production_targets: ["duckdb", "postgres", "ci"]\n')
    (project / "dbt_project.yml").write_text(text, encoding="utf-8")

    for target, production in (("ci", True), ("dev", False)):
        settings = load_settings(target=target, project_dir=project)
        assert settings.is_production is production
        manifest = parsed_manifest(target, tmp_path / target, project_dir=project)
        assert not wrong_schemas(manifest, settings), target
        marts = {
            node["schema"]
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["config"]["schema"] == "marts"
        }
        assert marts == {"marts" if production else f"{target}_marts"}


def test_every_source_is_in_the_raw_schema_the_runner_resolves(tmp_path: Path):
    for target in ("postgres", "dev"):
        settings = load_settings(target=target)
        manifest = parsed_manifest(target, tmp_path / target)
        schemas = {source["unique_id"]: source["schema"] for source in manifest["sources"].values()}
        assert schemas
        wrong = {
            name: schema for name, schema in schemas.items() if schema != settings.schema("raw")
        }
        assert not wrong, f"{target}: sources outside {settings.schema('raw')}: {wrong}"


# --- a dev build leaves production untouched ----------------------------------------------


def land_the_sample(target: str) -> None:
    """The bundled sample, landed as `make demo` lands it."""
    runner = CliRunner()
    loads = [("web-events", SAMPLE_DIR / "web_events.jsonl")]
    loads += [
        ("store-customers", path) for path in sorted(SAMPLE_DIR.glob("store_customers_*.csv"))
    ]
    loads += [
        ("store-sales", SAMPLE_DIR / "store_sales.csv"),
        ("crm-customers", SAMPLE_DIR / "crm_customers.csv"),
        ("crm-interactions", SAMPLE_DIR / "crm_interactions.csv"),
        ("crm-products", SAMPLE_DIR / "crm_products.csv"),
        ("app-sessions", SAMPLE_DIR / "app_sessions.jsonl"),
        ("app-purchases", SAMPLE_DIR / "app_purchases.csv"),
        ("marketing", SAMPLE_DIR / "marketing"),
    ]
    for command, path in loads:
        loaded = runner.invoke(cli, ["load", command, str(path), "--target", target])
        assert loaded.exit_code == 0, loaded.output


def relations(warehouse, schemas: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """(schema, name) -> table type of every table and view in those schemas."""
    listed = ", ".join(f"'{schema}'" for schema in schemas)
    _, rows = warehouse.query(
        "select table_schema, table_name, table_type from information_schema.tables "
        f"where table_schema in ({listed})"
    )
    return {(schema, name): kind for schema, name, kind in rows}


def contents(warehouse, schema: str, name: str) -> list[str]:
    """Every row of a relation, as text, in a fixed order."""
    _, rows = warehouse.query(f'select * from {schema}."{name}"')
    return sorted(repr(row) for row in rows)


def postgres_acl(warehouse, schemas: tuple[str, ...]) -> dict[str, object]:
    """PostgreSQL: each schema's and relation's owner, ACL and oid (a rebuilt table gets a
    new oid, so equal oids mean production was not rebuilt)."""
    listed = ", ".join(f"'{schema}'" for schema in schemas)
    _, namespaces = warehouse.query(
        "select nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '') "
        f"from pg_namespace where nspname in ({listed})"
    )
    _, classes = warehouse.query(
        "select namespace.nspname, class.relname, class.relkind, class.oid::bigint, "
        "pg_get_userbyid(class.relowner), coalesce(class.relacl::text, '') "
        "from pg_class as class join pg_namespace as namespace on namespace.oid = "
        f"class.relnamespace where namespace.nspname in ({listed})"
    )
    return {
        "schemas": sorted(map(tuple, namespaces)),
        "relations": sorted(map(tuple, classes)),
    }


def record(target: str, schemas: tuple[str, ...]) -> dict[str, object]:
    settings = load_settings(target=target)
    with connect(settings, read_only=settings.adapter_type == "duckdb") as warehouse:
        listed = relations(warehouse, schemas)
        state: dict[str, object] = {
            "relations": listed,
            "rows": {key: contents(warehouse, *key) for key in sorted(listed)},
        }
        if settings.adapter_type == "postgres":
            state["acl"] = postgres_acl(warehouse, schemas)
    return state


def copy_raw(production: str, dev: str) -> None:
    """Land the production raw rows in the dev target's raw schema with plain SQL (what
    `runner load --target dev` lands when the loaders write the target's own schema)."""
    prod, dev_settings = load_settings(target=production), load_settings(target=dev)
    source, copy = prod.schema("raw"), dev_settings.schema("raw")
    with connect(dev_settings) as warehouse, warehouse.transaction():
        tables = sorted(name for _, name in relations(warehouse, (source,)))
        warehouse.execute(f"create schema if not exists {copy}")
        for name in tables:
            if name == "as_of_date":  # the dev build records its own (hook remember_as_of_date)
                continue
            if dev_settings.adapter_type == "postgres":
                warehouse.execute(
                    f"create table {copy}.{name} (like {source}.{name} including all)"
                )
                warehouse.execute(f"insert into {copy}.{name} select * from {source}.{name}")
            else:
                warehouse.execute(f"create table {copy}.{name} as select * from {source}.{name}")


@pytest.fixture
def duckdb_dev_profile(tmp_path: Path, profiles_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The project's profile plus `dev_duckdb`: the duckdb target under another name,
    on the same file."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    profile = yaml.safe_load((profiles_dir / "profiles.yml").read_text(encoding="utf-8"))
    outputs = profile["customer_analytics"]["outputs"]
    outputs["dev_duckdb"] = dict(outputs["duckdb"])
    (folder / "profiles.yml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(folder))
    return "dev_duckdb"


def build(target: str, variables: str, target_path: Path) -> None:
    built = dbt("build", "--target", target, "--vars", variables, target_path=target_path)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]


def check_dev_build_leaves_production_untouched(
    production: str, dev: str, variables: str, tmp_path: Path
) -> tuple[dict[str, object], dict[str, object]]:
    prod_settings, dev_settings = load_settings(target=production), load_settings(target=dev)
    assert prod_settings.is_production and not dev_settings.is_production
    prod_schemas = tuple(prod_settings.schema(layer) for layer in LAYERS)
    dev_schemas = tuple(dev_settings.schema(layer) for layer in LAYERS)
    assert prod_schemas == LAYERS
    assert dev_schemas == tuple(f"{dev}_{layer}" for layer in LAYERS)

    land_the_sample(production)
    build(production, variables, tmp_path / "target")
    before = record(production, prod_schemas)
    assert {schema for schema, _ in before["relations"]} == set(LAYERS)

    copy_raw(production, dev)
    build(dev, variables, tmp_path / "target")

    after = record(production, prod_schemas)
    assert after == before, "the dev build changed production"

    dev_state = record(dev, dev_schemas)
    dev_relations = dev_state["relations"]
    for layer in BUILT_LAYERS:
        production_names = {name for schema, name in before["relations"] if schema == layer}
        dev_names = {name for schema, name in dev_relations if schema == f"{dev}_{layer}"}
        assert dev_names == production_names, layer
    # The hooks used the target's raw schema: the dev build recorded its as_of_date there.
    assert dev_state["rows"][(f"{dev}_raw", "as_of_date")][0].startswith(
        "(datetime.date(2017, 4, 30)"
    )
    # Same raw rows, same rules: the dev marts hold what the production marts hold, but
    # for those built on the snapshot: `runner load` snapshots each store extract as it
    # lands, which one dev build of the same raw rows does not replay.
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    historical = downstream(manifest, "snapshot.customer_analytics.store_customers_snapshot")
    compared = [
        name
        for schema, name in before["relations"]
        if schema == "marts" and f"model.customer_analytics.{name}" not in historical
    ]
    assert {"channel_reporting", "data_quality", "fct_crm_interactions"} <= set(compared)
    for name in compared:
        assert dev_state["rows"][(f"{dev}_marts", name)] == before["rows"][("marts", name)], name
    return before, dev_state


def downstream(manifest: dict, unique_id: str) -> set[str]:
    """Every node built from `unique_id`, directly or not."""
    found: set[str] = set()
    todo = [unique_id]
    while todo:
        for child in manifest["child_map"].get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.postgres
def test_a_dev_build_on_postgres_leaves_production_untouched_and_grants_bi_nothing(
    pg_database: str, bi_role: str, tmp_path: Path
):
    setup = CliRunner().invoke(cli, ["setup-postgres", "-t", "postgres", "--bi-role", bi_role])
    assert setup.exit_code == 0, setup.output
    variables = f"{{as_of_date: {AS_OF}, bi_role: {bi_role}}}"
    before, dev_state = check_dev_build_leaves_production_untouched(
        "postgres", "dev", variables, tmp_path
    )

    with connect(load_settings(target="dev")) as warehouse:
        # production: the BI role enters marts and reads every mart (the grants it had)
        _, usage = warehouse.query(f"select has_schema_privilege('{bi_role}', 'marts', 'usage')")
        assert usage == [(True,)]
        marts = [name for schema, name in before["relations"] if schema == "marts"]
        for name in marts:
            _, readable = warehouse.query(
                f"select has_table_privilege('{bi_role}', 'marts.{name}', 'select')"
            )
            assert readable == [(True,)], name
        # dev: no schema it may enter, no relation it may read
        for schema in sorted({schema for schema, _ in dev_state["relations"]}):
            _, usage = warehouse.query(
                f"select has_schema_privilege('{bi_role}', '{schema}', 'usage')"
            )
            assert usage == [(False,)], schema
        for schema, name in dev_state["relations"]:
            _, readable = warehouse.query(
                f"select has_table_privilege('{bi_role}', '{schema}.\"{name}\"', 'select')"
            )
            assert readable == [(False,)], (schema, name)
        _, granted = warehouse.query(
            "select table_schema, table_name, privilege_type from "
            f"information_schema.role_table_grants where grantee = '{bi_role}' "
            "and table_schema like 'dev\\_%'"
        )
        assert granted == []


def test_a_dev_build_on_duckdb_leaves_production_untouched(duckdb_dev_profile: str, tmp_path: Path):
    check_dev_build_leaves_production_untouched(
        "duckdb", duckdb_dev_profile, f"{{as_of_date: {AS_OF}}}", tmp_path
    )


def test_the_example_profile_documents_its_targets():
    """duckdb and postgres are the production targets; dev and ci write their own."""
    text = (PROJECT_DIR / "profiles.yml.example").read_text(encoding="utf-8")
    outputs = yaml.safe_load(text)["customer_analytics"]["outputs"]
    assert {"duckdb", "postgres", "dev", "ci"} <= set(outputs)
    production = {name for name in outputs if load_settings(target=name).is_production}
    assert production == {"duckdb", "postgres"}


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_dev_build_on_an_empty_warehouse_writes_only_dev_schemas(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """`dbt build --target dev` from nothing: seeds, snapshots, unit and data tests pass,
    and neither a production schema nor the BI role is created."""
    if engine == "postgres":
        request.getfixturevalue("pg_database")
        dev, role = "dev", f"bi_test_{uuid.uuid4().hex[:8]}"
        variables = f"{{bi_role: {role}}}"  # a role that does not exist: none is needed
    else:
        dev, role = request.getfixturevalue("duckdb_dev_profile"), None
        variables = "{}"
    build(dev, variables, tmp_path / "target")

    settings = load_settings(target=dev)
    with connect(settings) as warehouse:
        if engine == "postgres":
            _, schemas = warehouse.query(
                "select nspname, coalesce(nspacl::text, '') from pg_namespace "
                "where nspname not like 'pg\\_%' and nspname <> 'information_schema'"
            )
            _, roles = warehouse.query(f"select rolname from pg_roles where rolname = '{role}'")
            assert roles == []
            assert {name: acl for name, acl in schemas if name != "public"} == {
                settings.schema(layer): "" for layer in LAYERS
            }
        else:
            _, schemas = warehouse.query(
                "select distinct table_schema from information_schema.tables"
            )
            assert {name for (name,) in schemas} == {settings.schema(layer) for layer in LAYERS}
