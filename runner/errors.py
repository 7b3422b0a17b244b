"""Errors the runner reports to users: a message that says what went wrong and what to do."""


class RunnerError(Exception):
    """An expected failure. The CLI prints the message (no traceback) and exits non-zero."""
