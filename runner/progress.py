"""Progress bars for long runs, on stderr (tqdm): shown on a terminal, left out of logs
and pipes (where a bar redrawn in place is noise)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Protocol, TextIO

from tqdm import tqdm


class Progress(Protocol):
    """What follows a run (of runner.attribution, runner.messaging): told the number of
    items once, then how many more are done after each step. ProgressBar is one."""

    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


class ProgressBar:
    """A bar counting items (e.g. journeys), started once their number is known; a
    Progress. Use it as a context manager: it closes the bar."""

    def __init__(self, label: str, file: TextIO | None = None) -> None:
        self.label = label
        self.file = file if file is not None else sys.stderr
        self._bar: tqdm[Any] | None = None

    def start(self, total: int) -> None:
        self._bar = tqdm(
            total=total,
            desc=self.label,
            unit="",
            file=self.file,
            disable=None,  # only on a terminal
            dynamic_ncols=True,
        )

    def advance(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
