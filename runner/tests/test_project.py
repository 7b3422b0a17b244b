"""The dbt project's own rules, read from its manifest: every model, source and macro
is described, every model has a primary-key test, marts have enforced contracts with
every column documented, and the schemas are exactly the agreed ones."""

from __future__ import annotations

from typing import Any

import pytest
from dbt.cli.main import dbtRunner

from runner.tests.conftest import PROJECT_DIR

SCHEMAS = {"raw", "staging", "intermediate", "snapshots", "marts"}
DISPATCH_PREFIXES = ("default__", "duckdb__", "postgres__")


@pytest.fixture(scope="module")
def manifest(profiles_dir) -> Any:
    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(profiles_dir)]
    )
    assert result.success, result.exception
    return result.result


def project_nodes(manifest, resource_type: str) -> list:
    return [
        node
        for node in manifest.nodes.values()
        if node.resource_type == resource_type and node.package_name == "customer_analytics"
    ]


def test_every_model_has_a_description_and_an_agreed_schema(manifest):
    models = project_nodes(manifest, "model")
    assert models
    for model in models:
        assert model.description.strip(), f"{model.name} has no description"
        assert model.schema in SCHEMAS, f"{model.name} builds in {model.schema}"


def test_every_model_has_a_primary_key_test(manifest):
    tested: dict[str, set[str]] = {}
    for test in project_nodes(manifest, "test"):
        metadata = getattr(test, "test_metadata", None)
        if metadata is None:
            continue
        for parent in test.depends_on.nodes:
            if metadata.name == "unique_combination_of_columns":
                tested.setdefault(parent, set()).add("*")
            elif metadata.name in ("unique", "not_null"):
                tested.setdefault(parent, set()).add(f"{metadata.name}:{test.column_name}")
    for model in project_nodes(manifest, "model"):
        checks = tested.get(model.unique_id, set())
        unique_columns = {c.split(":")[1] for c in checks if c.startswith("unique:")}
        not_null_columns = {c.split(":")[1] for c in checks if c.startswith("not_null:")}
        assert "*" in checks or unique_columns & not_null_columns, (
            f"{model.name} has no primary-key test (unique + not_null, or "
            "unique_combination_of_columns)"
        )


def test_marts_have_enforced_contracts_and_documented_columns(manifest):
    """A mart without a contract must say why (meta.contract_exempt) and carry a test
    that holds its shape instead (the seed-driven pivots)."""
    marts = [m for m in project_nodes(manifest, "model") if m.schema == "marts"]
    assert marts
    tests_by_model: dict[str, set[str]] = {}
    for test in project_nodes(manifest, "test"):
        if getattr(test, "test_metadata", None) is not None:
            for parent in test.depends_on.nodes:
                tests_by_model.setdefault(parent, set()).add(test.test_metadata.name)
    for mart in marts:
        assert mart.columns, f"{mart.name} documents no columns"
        for column in mart.columns.values():
            assert column.description.strip(), f"{mart.name}.{column.name} is undocumented"
        if mart.config.meta.get("contract_exempt"):
            assert "columns_match_channels" in tests_by_model.get(mart.unique_id, set())
            continue
        assert mart.config.contract.enforced, f"{mart.name} has no enforced contract"
        for column in mart.columns.values():
            assert column.data_type, f"{mart.name}.{column.name} has no data_type"


def test_every_source_and_macro_is_described(manifest):
    for source in manifest.sources.values():
        assert source.description.strip() or source.source_description.strip(), source.name
    for macro in manifest.macros.values():
        if macro.package_name != "customer_analytics" or macro.name.startswith(DISPATCH_PREFIXES):
            continue
        assert macro.description.strip(), f"macro {macro.name} has no description"


def test_no_hub_packages():
    assert not (PROJECT_DIR / "packages.yml").exists()
    assert not (PROJECT_DIR / "dependencies.yml").exists()
