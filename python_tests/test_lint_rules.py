"""The dbt metadata linter of `make lint` (dbt-score with devtools/dbt_score_rules.py)
fails on a violation: a scratch copy of the project, broken on purpose, is linted
through the Makefile's own `lint-dbt` target. Then each project rule on its own: it
passes on the project's node and fails, saying what to do, once the node is broken."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner
from dbt_score.models import Macro, ManifestLoader, Model, Snapshot, Source

from devtools import dbt_score_rules as rules
from python_tests.conftest import PROJECT_DIR

# What `make lint-dbt` needs: the dbt project, the linter's configuration and rules.
COPIED = [
    "Makefile",
    "profiles.yml.example",
    "dbt_project.yml",
    "pyproject.toml",
    "models",
    "macros",
    "tests",
    "seeds",
    "snapshots",
    "devtools/__init__.py",
    "devtools/dbt_score_rules.py",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lint_dbt(project: Path) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), "lint-dbt", f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=False,
    )
    result.stdout = ANSI.sub("", result.stdout + result.stderr)
    return result


def failing_rules(output: str, item: str) -> set[str]:
    """The rules an item fails in dbt-score's plain output (`Model: fct_orders`)."""
    rules: set[str] = set()
    lines = [line for line in output.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.endswith(")") and f" {item} (score:" in line:
            for follower in lines[index + 1 :]:
                found = re.match(r"\s+(?:WARN|ERR) \(\w+\) ([\w.]+):", follower)
                if not found:
                    break
                rules.add(found.group(1).rsplit(".", 1)[-1])
    return rules


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for name in COPIED:
        source, target = PROJECT_DIR / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    return project


def test_metadata_linter_fails_on_a_broken_convention(project_copy: Path):
    marts = project_copy / "models" / "marts" / "customers" / "_customers__models.yml"
    before = lint_dbt(project_copy)
    assert "Project score" in before.stdout, before.stdout
    for item in ("Model: fct_orders", "Model: customer_ltv"):
        assert not failing_rules(before.stdout, item), before.stdout

    # A fact table declared as a reporting table, a mart an exposure reads made
    # protected, a mart column without a description.
    replace_once(
        marts,
        "      meta:\n        mart_kind: fact\n",
        "      meta:\n        mart_kind: reporting\n",
    )
    replace_once(
        marts,
        "    config:\n      access: public\n      contract:\n        enforced: true\n",
        "    config:\n      access: protected\n      contract:\n        enforced: true\n",
    )
    replace_once(
        marts,
        "        description: Distinct site visits (SITE_VISIT page ids) of the customer.\n",
        "        description: ''\n",
    )
    after = lint_dbt(project_copy)

    assert after.returncode != 0, after.stdout
    assert "evaluable score too low" in after.stdout, after.stdout
    assert failing_rules(after.stdout, "Model: fct_orders") == {"mart_name_matches_its_kind"}
    assert failing_rules(after.stdout, "Model: customer_ltv") == {"mart_columns_have_descriptions"}
    assert "exposure_reads_public_models" in failing_rules(
        after.stdout, "Exposure: customer_value_dashboard"
    ), after.stdout
    assert "Make customer_ltv access: public" in after.stdout


# --- Each project rule on its own, against the project's parsed manifest ------------------


@pytest.fixture(scope="module")
def loader(profiles_dir, tmp_path_factory) -> ManifestLoader:
    target = tmp_path_factory.mktemp("rules-target")
    result = dbtRunner().invoke(
        [
            "parse",
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(profiles_dir),
            "--target-path",
            str(target),
        ]
    )
    assert result.success, result.exception
    return ManifestLoader(target / "manifest.json")


def evaluable(loader: ManifestLoader, unique_id: str, change=None):
    """The evaluable of a manifest node, after `change` edits a copy of its values."""
    if unique_id.startswith("source."):
        values, kind = loader.raw_sources[unique_id], Source
    elif unique_id.startswith("macro."):
        values, kind = loader.raw_macros[unique_id], Macro
    else:
        values = loader.raw_nodes[unique_id]
        kind = Snapshot if values["resource_type"] == "snapshot" else Model
    values = copy.deepcopy(values)
    tests = copy.deepcopy(loader.tests.get(unique_id, []))
    if change is not None:
        change(values, tests)
    if kind is Macro:
        return Macro.from_node(values)
    return kind.from_node(values, tests)


def check(rule, item) -> str | None:
    violation = rule().evaluate(item)
    return None if violation is None else violation.message


def model(name: str) -> str:
    return f"model.customer_analytics.{name}"


def set_meta(key: str, value):
    def change(values, _tests):
        values["config"]["meta"][key] = value
        values["meta"][key] = value

    return change


def set_path(path: str):
    def change(values, _tests):
        values["original_file_path"] = path

    return change


def set_patch_path(path: str):
    def change(values, _tests):
        values["patch_path"] = path

    return change


def drop_tests(values, tests):
    tests.clear()


def set_config(key: str, value):
    def change(values, _tests):
        values["config"][key] = value
        if key == "access":
            values["access"] = value

    return change


def reads_a_source(values, _tests):
    values["depends_on"]["nodes"].append("source.customer_analytics.web.events")


def no_freshness(values, _tests):
    values["freshness"] = None
    values["config"]["freshness"] = None


def exempt_from_freshness(values, tests):
    no_freshness(values, tests)
    values["meta"]["freshness_exempt"] = "written by the runner itself"


def no_description(values, _tests):
    values["description"] = ""


def undocumented_column(column: str):
    def change(values, _tests):
        values["columns"][column]["description"] = ""

    return change


CASES = [
    # (rule, node, change that breaks it, what the message says)
    (
        rules.mart_name_matches_its_kind,
        model("fct_orders"),
        set_meta("mart_kind", "dimension"),
        "dim_",
    ),
    (
        rules.mart_name_matches_its_kind,
        model("dim_customers"),
        set_meta("mart_kind", None),
        "meta.mart_kind",
    ),
    (
        rules.mart_name_matches_its_kind,
        model("customer_ltv"),
        set_meta("mart_kind", "fact"),
        "fct_",
    ),
    (
        rules.mart_name_matches_its_kind,
        model("customer_ltv"),
        set_meta("mart_kind", "kpi"),
        "use fact",
    ),
    (
        rules.model_in_its_layer_directory,
        model("int_customer_versions_merged"),
        set_path("models/intermediate/int_customer_versions_merged.sql"),
        "models/intermediate/<area>/",
    ),
    (
        rules.model_in_its_layer_directory,
        model("stg_web__events"),
        set_path("models/staging/store/stg_web__events.sql"),
        "models/staging/web/",
    ),
    (
        rules.model_in_its_layer_directory,
        model("fct_orders"),
        set_path("models/marts/fct_orders.sql"),
        "models/marts/<area>/",
    ),
    (
        rules.model_yaml_in_its_area_file,
        model("fct_orders"),
        set_patch_path("customer_analytics://models/marts/customers/_store_marts__models.yml"),
        "models/marts/customers/_customers__models.yml",
    ),
    (rules.model_has_a_primary_key_test, model("fct_orders"), drop_tests, "unique and not_null"),
    (
        rules.model_has_a_primary_key_test,
        model("customer_ytd_spend"),
        drop_tests,
        "unique_combination",
    ),
    (
        rules.mart_columns_have_descriptions,
        model("fct_orders"),
        undocumented_column("channel"),
        "channel",
    ),
    (
        rules.public_model_has_an_enforced_contract,
        model("fct_orders"),
        set_config("contract", {"enforced": False, "alias_types": True}),
        "contract_exempt",
    ),
    (
        rules.public_model_has_an_enforced_contract,
        model("customer_channel_interactions"),
        drop_tests,
        "columns_match_channels",
    ),
    (
        rules.intermediate_model_is_not_public,
        model("int_journeys_built"),
        set_config("access", "public"),
        "protected",
    ),
    (
        rules.only_staging_reads_sources,
        model("int_journeys_built"),
        reads_a_source,
        "staging model",
    ),
    (
        rules.source_has_freshness,
        "source.customer_analytics.web.events",
        no_freshness,
        "freshness",
    ),
    (
        rules.snapshot_is_described,
        "snapshot.customer_analytics.store_customers_snapshot",
        no_description,
        "Describe",
    ),
    (
        rules.macro_is_described,
        "macro.customer_analytics.channel_pivot_columns",
        no_description,
        "Describe",
    ),
]


@pytest.mark.parametrize(("rule", "unique_id", "change", "message"), CASES)
def test_rule_passes_on_the_project_and_fails_when_broken(loader, rule, unique_id, change, message):
    assert check(rule, evaluable(loader, unique_id)) is None
    found = check(rule, evaluable(loader, unique_id, change))
    assert found is not None and message in found, found


def test_freshness_exemption_and_dispatched_macros_pass(loader):
    web_events = "source.customer_analytics.web.events"
    assert (
        check(rules.source_has_freshness, evaluable(loader, web_events, exempt_from_freshness))
        is None
    )
    variants = [key for key in loader.raw_macros if key.split(".")[-1].startswith("default__")]
    assert variants
    for key in variants:
        assert check(rules.macro_is_described, evaluable(loader, key, no_description)) is None


def test_a_source_is_named_for_its_system_and_declared_in_its_folder(loader):
    web_events = "source.customer_analytics.web.events"

    def declared_by(system: str, path: str):
        def change(values, _tests):
            values["source_name"] = system
            values["original_file_path"] = path

        return change

    rule = rules.source_declared_by_its_system
    assert (
        check(
            rule,
            evaluable(
                loader, web_events, declared_by("web", "models/staging/web/_web__sources.yml")
            ),
        )
        is None
    )
    found = check(
        rule,
        evaluable(loader, web_events, declared_by("raw", "models/staging/web/_web__sources.yml")),
    )
    assert found is not None and "models/staging/raw/_raw__sources.yml" in found
    found = check(
        rule, evaluable(loader, web_events, declared_by("web", "models/staging/web/sources.yml"))
    )
    assert found is not None and "models/staging/web/_web__sources.yml" in found


def test_an_exposure_reads_public_models_only(loader):
    exposure = loader.exposures["exposure.customer_analytics.orders_dashboard"]
    assert {parent.name for parent in exposure.parents} == {
        "fct_orders",
        "dim_customers",
        "dim_shops",
        "dim_products",
    }
    assert check(rules.exposure_reads_public_models, exposure) is None
    protected = copy.copy(exposure)
    protected.parents = [
        dataclasses.replace(parent, access="protected")
        if parent.name == "dim_customers"
        else parent
        for parent in exposure.parents
    ]
    found = check(rules.exposure_reads_public_models, protected)
    assert found is not None and "Make dim_customers access: public" in found
