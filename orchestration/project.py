"""The dbt project as Dagster sees it: the runner's settings (same profile, target and
DuckDB file as `runner`), the manifest dagster-dbt reads, and the asset keys of the
dbt sources the runner writes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import AssetKey, AssetSpec
from dagster_dbt import DagsterDbtTranslator, DbtProject

from runner.config import Settings, load_settings
from runner.dbt_invoke import invoke_dbt
from runner.errors import RunnerError

# The dbt target the code location runs on; the same variable dbt itself reads.
TARGET_VARIABLE = "DBT_TARGET"
# The folders of the project whose changes make a new manifest necessary.
PROJECT_FOLDERS = ("models", "macros", "seeds", "snapshots", "tests")


def orchestration_settings() -> Settings:
    """The runner's settings for the target of DBT_TARGET (default: the profile's)."""
    return load_settings(target=os.environ.get(TARGET_VARIABLE) or None)


def dbt_target_path(settings: Settings) -> Path:
    """Where the code location's manifest lives: DBT_TARGET_PATH when set, else
    .tmp/dagster/dbt-<target>/ in the project."""
    explicit = os.environ.get("DBT_TARGET_PATH")
    if explicit:
        return Path(explicit) / f"dagster-{settings.target}"
    return settings.project_dir / ".tmp" / "dagster" / f"dbt-{settings.target}"


def _newest_change(project_dir: Path) -> float:
    newest = (project_dir / "dbt_project.yml").stat().st_mtime
    for folder in PROJECT_FOLDERS:
        for path in (project_dir / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def prepare_manifest(settings: Settings) -> Path:
    """The manifest of the project on the settings' target, parsed with `dbt parse`
    (through the runner, so profile, target and vars are the runner's) when missing or
    older than a file of the project."""
    target_path = dbt_target_path(settings)
    manifest = target_path / "manifest.json"
    if manifest.is_file() and manifest.stat().st_mtime >= _newest_change(settings.project_dir):
        return manifest
    target_path.mkdir(parents=True, exist_ok=True)
    result = invoke_dbt(settings, ["parse"], ["--quiet", "--target-path", str(target_path)])
    if not result.success or not manifest.is_file():
        raise RunnerError(
            f"dbt parse failed on target {settings.target}, so Dagster has no manifest to "
            "read: see dbt's output above, fix the project and reload the code location."
        )
    return manifest


def dbt_project(settings: Settings) -> DbtProject:
    return DbtProject(
        project_dir=settings.project_dir,
        profiles_dir=settings.profiles_dir,
        target=settings.target,
        target_path=dbt_target_path(settings),
    )


class LayerTranslator(DagsterDbtTranslator):
    """dagster-dbt's default keys; each model's group is its layer (staging,
    intermediate, marts), snapshots and seeds have their own: the UI's asset graph
    reads left to right like the layer picture of the README."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id)
        if node is None:  # a source: its asset is the runner's (raw, runner groups)
            return spec
        kind = node["resource_type"]
        group = node["fqn"][1] if kind == "model" and len(node["fqn"]) > 2 else f"{kind}s"
        return spec.replace_attributes(group_name=group)


def source_keys(manifest: Mapping[str, Any], project: DbtProject) -> dict[str, AssetKey]:
    """dagster-dbt's asset key of every dbt source, by the table it names in the
    warehouse (`web_events` -> AssetKey(["web", "events"]))."""
    translator = DagsterDbtTranslator()
    keys = {}
    for unique_id, source in manifest["sources"].items():
        spec = translator.get_asset_spec(manifest, unique_id, project)
        keys[source["identifier"]] = spec.key
    return keys


def source_selector(manifest: Mapping[str, Any], identifier: str) -> str:
    """dbt's selector (`source:web.events`) of the source over a warehouse table."""
    for source in manifest["sources"].values():
        if source["identifier"] == identifier:
            return f"source:{source['source_name']}.{source['name']}"
    raise RunnerError(f"No dbt source reads the table {identifier}: add it to a _sources.yml.")


def project_var(project_dir: Path, name: str) -> Any:
    """A var of dbt_project.yml."""
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    values = (project or {}).get("vars") or {}
    if name not in values:
        raise RunnerError(f"dbt_project.yml has no var {name}.")
    return values[name]
