"""Passwords and the API key come only from the environment and never show: not in
output, logs, error messages or any file the project writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from devtools.ihc_emulator import EmulatorConfig, serve_in_thread
from python_tests.conftest import PROJECT_DIR, SAMPLE_DIR

pytestmark = pytest.mark.postgres


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_DIR,
    )


def files_written_since(start: float, *folders: Path) -> list[Path]:
    """Files modified since `start` under `folders`. Other processes (tests run in
    parallel) create and remove temporary folders meanwhile: os.walk skips what vanishes
    (Path.rglob raises FileNotFoundError for a folder removed during the walk)."""
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [name for name in dirs if name not in (".venv", ".git")]
            for name in files:
                path = Path(root, name)
                try:
                    if path.is_file() and path.stat().st_mtime >= start:
                        found.append(path)
                except FileNotFoundError:
                    continue
    return found


def test_password_and_key_never_appear(pg_database: str, tmp_path: Path):
    password = f"pw-{uuid.uuid4().hex}"  # trust auth here: accepted, never needed
    key = f"key-{uuid.uuid4().hex}"
    env = {"PGPASSWORD": password, "IHC_API_KEY": key, "IHC_CONV_TYPE_ID": "default"}
    start = time.time() - 1
    outputs = []

    ok = [
        run("load", "web-events", str(SAMPLE_DIR / "web_events.jsonl"), "-t", "postgres", env=env),
        run("load", "marketing", str(SAMPLE_DIR / "marketing"), "-t", "postgres", env=env),
        run(
            "build",
            "-t",
            "postgres",
            "--",
            "--select",
            "+customer_ltv",
            "+int_journeys_built",
            "--indirect-selection",
            "cautious",
            env=env,
        ),  # what the next commands read
        run("top-ltv", "3", "-t", "postgres", env=env),
    ]
    with serve_in_thread(EmulatorConfig(api_key=key)) as emulator:
        ok.append(run("attribute", "-t", "postgres", "--api-url", emulator.url, env=env))
    with serve_in_thread(EmulatorConfig(api_key="another-key")) as emulator:
        refused = run("attribute", "-t", "postgres", "--api-url", emulator.url, "--force", env=env)
    unreachable = run("top-ltv", "3", "-t", "postgres", env={**env, "PGPORT": "1"})
    for result in ok:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert refused.returncode == 1 and "refused the API key" in refused.stderr
    assert unreachable.returncode == 1 and "Cannot connect to PostgreSQL" in unreachable.stderr
    outputs = [*ok, refused, unreachable]

    for result in outputs:
        for text in (result.stdout, result.stderr):
            assert password not in text
            assert key not in text
    written = files_written_since(start, PROJECT_DIR, Path(os.environ.get("TMPDIR", "/tmp")))
    assert any(path.name == "dbt.log" for path in written)  # the scan sees dbt's logs
    for path in written:
        try:
            content = path.read_bytes()
        except OSError:
            continue
        assert password.encode() not in content, path
        assert key.encode() not in content, path
