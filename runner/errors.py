"""Errors the runner reports to users: a message that says what went wrong and what to do."""

import click


class RunnerError(click.ClickException):
    """An expected failure. The CLI prints `Error: <message>` (no traceback), exits 1."""
