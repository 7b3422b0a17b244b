"""Errors the runner reports to users: a message that says what went wrong and what to do."""

from typing import IO, Any

import click


class RunnerError(click.ClickException):
    """An expected failure. The CLI prints `Error: <message>` (no traceback), exits 1."""


class WarehouseConnectionLost(RunnerError):
    """The warehouse connection broke mid-run (server restart, terminated backend, network).
    The transaction in progress was rolled back by the server; `reason` is the driver's
    first line, for callers that add what the rollback means for their work."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Interrupted(RunnerError):
    """Ctrl-C (SIGINT). The CLI prints one line, `interrupted: <outcome>`, where the
    outcome says what was kept and what to do, and exits 130 (128 + SIGINT), as shells do."""

    exit_code = 130

    def __init__(self, outcome: str):
        super().__init__(f"interrupted: {outcome}")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)
