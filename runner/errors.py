"""The runner's own exceptions: a message that says what went wrong and what to do.

Library code raises these and never imports click; only the CLI (runner.cli) turns them
into click errors: `Error: <message>` on stderr, no traceback, exit `exit_code`.
"""

from __future__ import annotations


class RunnerError(Exception):
    """An expected failure. The CLI prints `Error: <message>` (no traceback), exits 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class WarehouseConnectionLost(RunnerError):
    """The warehouse connection broke mid-run (server restart, terminated backend, network).
    The transaction in progress was rolled back by the server; `reason` is the driver's
    first line, for callers that add what the rollback means for their work."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Interrupted(RunnerError):
    """Ctrl-C (SIGINT). The CLI prints one line, `interrupted: <outcome>`, where the
    outcome says what was kept and what to do, and exits 130 (128 + SIGINT), as shells do."""

    exit_code = 130

    def __init__(self, outcome: str) -> None:
        super().__init__(f"interrupted: {outcome}")
