"""Real `runner` processes in tests: start them, wait (never a guessed sleep) until they
do what the test waits for, then interrupt or finish them.

A test module that starts processes imports the autouse fixture `no_process_left_behind`
along with the helpers, so that a test that fails half-way leaves no paused or blocked
process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

TIMEOUT = 120  # seconds: generous, the machine is shared
STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Kill what the test started with `start` and is still running when it ends."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)


def runner_command(*args: str) -> list[str]:
    """`runner ARGS` as a command line: the runner of this test run's Python."""
    return [sys.executable, "-m", "runner", *args]


def start(command: list[str], **env: str) -> subprocess.Popen[str]:
    """Start `command` with `env` added to this environment, unbuffered, its output read as
    text through pipes, its input empty (never the terminal of the test run)."""
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    STARTED.append(process)
    return process


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for `process` to exit; its exit code and output."""
    out, err = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def interrupt(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Ctrl-C: SIGINT, then wait for `process` to exit."""
    process.send_signal(signal.SIGINT)
    return finish(process)


def wait_for(
    condition: Callable[[], object],
    what: str,
    *processes: subprocess.Popen[str],
    every: float = 0.02,
) -> object:
    """Poll `condition` every `every` seconds until it holds (what it returned); fail
    early, with its stderr, if one of `processes` exits first, or after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        for process in processes:
            if process.poll() is not None:
                result = finish(process)
                pytest.fail(f"exited ({result.returncode}) before {what}: {result.stderr}")
        time.sleep(every)
    pytest.fail(f"timed out after {TIMEOUT} s waiting for {what}")


def events_file(path: Path, lines: int) -> Path:
    """A web events file of `lines` distinct site visits, for loads that take real work."""
    with path.open("wb") as handle:
        for number in range(lines):
            record = {"type": "SITE_VISIT", "key": f"p{number}", "customer_id": f"c{number}"}
            handle.write(orjson.dumps(record) + b"\n")
    return path
