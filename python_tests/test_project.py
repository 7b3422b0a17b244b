"""The dbt project's own rules, read from its manifest: every model, source and macro
is described, every model has a primary-key test, marts have enforced contracts with
every column documented, and the schemas are exactly the agreed ones."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dbt.cli.main import dbtRunner

from python_tests.conftest import PROJECT_DIR

SCHEMAS = {"raw", "staging", "intermediate", "snapshots", "marts"}
DISPATCH_PREFIXES = ("default__", "duckdb__", "postgres__", "spark__")


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


def lineage_group(node) -> tuple[str, str]:
    """Where a node sits in the README's lineage picture: (layer, label). Sources and
    staging by source system, intermediate by area, and every mart, snapshot and seed
    by name."""
    parts = node.original_file_path.split("/")
    if node.resource_type == "source":
        return "raw", parts[2]
    if node.resource_type in ("snapshot", "seed"):
        return f"{node.resource_type}s", node.name
    layer = parts[1]
    return layer, node.name if layer == "marts" else parts[2]


def lineage_mermaid(manifest) -> str:
    """The Mermaid flowchart of the README, from the manifest: an arrow wherever a node
    of one box reads a node of another."""
    layers = ["raw", "staging", "seeds", "snapshots", "intermediate", "marts"]
    nodes = {
        **{key: source for key, source in manifest.sources.items()},
        **{
            key: node
            for key, node in manifest.nodes.items()
            if node.resource_type in ("model", "snapshot", "seed")
            and node.package_name == "customer_analytics"
        },
    }
    groups = {key: lineage_group(node) for key, node in nodes.items()}
    edges = {
        (groups[parent], groups[key])
        for key, node in nodes.items()
        if node.resource_type != "source"
        for parent in getattr(node.depends_on, "nodes", ())
        if parent in groups and groups[parent] != groups[key]
    }

    def ident(group: tuple[str, str]) -> str:
        return f"{group[0]}_{group[1]}"

    lines = ["flowchart LR"]
    for layer in layers:
        members = sorted({group for group in groups.values() if group[0] == layer})
        lines.append(f"    subgraph {layer}")
        lines.extend(f'        {ident(group)}["{group[1]}"]' for group in members)
        lines.append("    end")
    lines.extend(
        f"    {ident(parent)} --> {ident(child)}"
        for parent, child in sorted(edges, key=lambda edge: (ident(edge[0]), ident(edge[1])))
    )
    return "\n".join(lines)


def test_readme_lineage_picture_is_the_manifest(manifest):
    """The README's Mermaid picture is generated from the manifest; when a model moves,
    this test fails and prints the new picture to paste."""
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```mermaid\n(.*?)\n```", readme, re.DOTALL)
    expected = lineage_mermaid(manifest)
    assert found, f"README.md has no ```mermaid block; paste:\n{expected}"
    assert found.group(1) == expected, f"README.md's lineage is stale; paste:\n{expected}"
    marts = {
        node.name
        for node in project_nodes(manifest, "model")
        if node.original_file_path.startswith("models/marts/")
    }
    assert all(f'["{mart}"]' in expected for mart in marts)


def test_attribute_builds_what_depends_on_the_results_it_writes(manifest):
    """`runner attribute` rebuilds `@RESULTS_SOURCE` after writing results: the selector
    must name the source the results land in, with channel_reporting downstream (a stale
    name selects nothing and dbt only warns)."""
    from runner.attribution import RESULTS_SOURCE
    from runner.sources import landing_tables

    source_name, table_name = RESULTS_SOURCE.removeprefix("source:").split(".")
    [source] = [
        node
        for node in manifest.sources.values()
        if node.source_name == source_name and node.name == table_name
    ]
    results = [table.table for table in landing_tables() if table.system == "ihc"]
    assert source.identifier in results
    downstream = {source.unique_id}
    for _ in range(len(manifest.nodes)):
        grown = downstream | {
            node.unique_id
            for node in manifest.nodes.values()
            if set(getattr(node.depends_on, "nodes", ())) & downstream
        }
        if grown == downstream:
            break
        downstream = grown
    assert "model.customer_analytics.channel_reporting" in downstream
