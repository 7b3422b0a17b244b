"""The runner reads the same dbt profile and target as dbt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from python_tests.conftest import PROJECT_DIR
from runner.config import (
    _render_profile_with_dbt,
    find_profiles_dir,
    load_settings,
    read_simple_profile,
)
from runner.errors import RunnerError
from runner.warehouse import connect


def test_default_target_is_duckdb_at_the_path_from_the_environment():
    settings = load_settings()
    assert settings.target == "duckdb"
    assert settings.adapter_type == "duckdb"
    assert settings.duckdb_path == Path(os.environ["DUCKDB_PATH"])
    assert settings.project_dir == PROJECT_DIR


def test_the_runner_opens_duckdb_with_the_profiles_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("DUCKDB_MEMORY_LIMIT", "512MB")
    with connect(load_settings()) as warehouse:
        _, rows = warehouse.query("select current_setting('memory_limit')")
    assert rows[0][0] in {"512.0 MiB", "488.2 MiB"}  # 512 MB, as DuckDB prints it


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


# --- reading the profile without dbt --------------------------------------------------

ATTRIBUTES = ("type", "schema", "database", "host", "port", "user", "password")


def described(target: str, credentials: object) -> tuple:
    values = tuple(getattr(credentials, name, None) for name in ATTRIBUTES)
    if credentials.type != "duckdb":
        return target, values, None
    return target, values, credentials.path, credentials.settings or {}


@pytest.mark.parametrize("target", [None, "duckdb", "postgres"])
@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"DUCKDB_PATH": "relative/dir/w.duckdb", "DUCKDB_MEMORY_LIMIT": "512MB"},
        {"PGHOST": "db.example", "PGPORT": "0", "PGUSER": "u", "PGDATABASE": "123"},
        {"PGPORT": "65535", "PGPASSWORD": "p{{ not jinja }}'\"%"},
        {"PGPASSWORD": ""},
    ],
)
def test_the_shipped_profile_reads_as_dbt_reads_it(
    monkeypatch: pytest.MonkeyPatch, profiles_dir: Path, target: str | None, environment: dict
):
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    simple = read_simple_profile(profiles_dir / "profiles.yml", target)
    assert simple is not None
    assert described(*simple) == described(*_render_profile_with_dbt(profiles_dir, target))


def test_loading_settings_does_not_import_dbt(profiles_dir: Path):
    code = (
        "import sys; from runner.config import load_settings; "
        "load_settings(); load_settings(target='postgres'); "
        "print(sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("environment", "port"),
    [({"PGPORT": "abc"}, None), ({"PGPORT": "05432"}, None), ({"PGPORT": "1e3"}, 1000)],
)
def test_values_only_dbt_can_judge_are_left_to_dbt(
    monkeypatch: pytest.MonkeyPatch, profiles_dir: Path, environment: dict, port: int | None
):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert read_simple_profile(profiles_dir / "profiles.yml", "postgres") is None
    if port is None:
        with pytest.raises(RunnerError, match="Could not render"):
            load_settings(target="postgres")
    else:
        assert load_settings(target="postgres").credentials.port == port


def write_profile(folder: Path, outputs: str, target: str = "dev") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "profiles.yml").write_text(
        f"customer_analytics:\n  target: {target}\n  outputs:\n{outputs}", encoding="utf-8"
    )
    return folder


def test_other_profiles_are_read_by_dbt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    folder = write_profile(
        tmp_path / "profiles",
        "    dev:\n      type: duckdb\n      schema: main\n      threads: 1\n"
        "      path: \"{{ env_var('WAREHOUSE_DIR', '/data') ~ '/w.duckdb' }}\"\n",
    )
    monkeypatch.setenv("DBT_PROFILES_DIR", str(folder))
    assert read_simple_profile(folder / "profiles.yml", None) is None
    assert load_settings().credentials.path == "/data/w.duckdb"


def test_profile_errors_are_dbts_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    folder = write_profile(
        tmp_path / "profiles",
        "    dev:\n      type: duckdb\n      schema: main\n"
        "      path: \"{{ env_var('NO_SUCH_VARIABLE_ANYWHERE') }}\"\n",
    )
    monkeypatch.setenv("DBT_PROFILES_DIR", str(folder))
    with pytest.raises(Exception, match="Env var required but not provided"):
        load_settings()  # dbt's EnvVarMissingError, as before the runner read profiles itself
    with pytest.raises(RunnerError, match="does not have a target named 'nope'"):
        load_settings(target="nope")
    (folder / "profiles.yml").write_text("other_profile: {}\n", encoding="utf-8")
    with pytest.raises(RunnerError, match="has no profile 'customer_analytics'"):
        load_settings()
