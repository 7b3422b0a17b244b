"""The runner reads the same dbt profile and target as dbt."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import find_profiles_dir, load_settings
from runner.errors import RunnerError
from runner.tests.conftest import PROJECT_DIR


def test_default_target_is_duckdb_at_the_path_from_the_environment(tmp_path: Path):
    settings = load_settings()
    assert settings.target == "duckdb"
    assert settings.adapter_type == "duckdb"
    assert settings.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.project_dir == PROJECT_DIR


def test_relative_duckdb_path_is_taken_from_the_project_folder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DUCKDB_PATH")
    assert load_settings().duckdb_path == PROJECT_DIR / "warehouse.duckdb"


def test_postgres_target_reads_the_standard_pg_variables(monkeypatch: pytest.MonkeyPatch):
    for key, value in {
        "PGHOST": "db.example",
        "PGPORT": "6543",
        "PGUSER": "analyst",
        "PGPASSWORD": "not-a-real-secret",
        "PGDATABASE": "shop",
    }.items():
        monkeypatch.setenv(key, value)
    credentials = load_settings(target="postgres").credentials
    assert (credentials.host, credentials.port, credentials.user, credentials.database) == (
        "db.example",
        6543,
        "analyst",
        "shop",
    )
    assert credentials.password == "not-a-real-secret"


def test_postgres_target_has_local_defaults(monkeypatch: pytest.MonkeyPatch):
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        monkeypatch.delenv(key, raising=False)
    credentials = load_settings(target="postgres").credentials
    assert (credentials.host, credentials.port, credentials.user, credentials.database) == (
        "localhost",
        5432,
        "postgres",
        "customer_analytics",
    )


def test_missing_profiles_file_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("DBT_PROFILES_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(RunnerError, match="make setup"):
        find_profiles_dir(project)
    (project / "profiles.yml").write_text("customer_analytics: {}\n")
    assert find_profiles_dir(project) == project


def test_project_is_found_from_a_subfolder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DBT_PROJECT_DIR")
    monkeypatch.chdir(PROJECT_DIR / "models" / "marts")
    assert load_settings().project_dir == PROJECT_DIR
