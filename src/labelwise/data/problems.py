"""Collecting the problems found in a file, so that one error reports many of them at once."""

from __future__ import annotations

from labelwise.errors import DataError

MAX_SHOWN = 20


class ProblemLog:
    """Problems of one file, in the order found: the first `limit` are kept verbatim, the rest only counted.

    Users fix a file faster from one message listing its first twenty problems than from twenty runs that
    each stop at the next one.
    """

    def __init__(self, source: str, limit: int = MAX_SHOWN) -> None:
        self.source = source
        self.limit = limit
        self.count = 0
        self.shown: list[str] = []
        self._first_located = False
        # A sentence on how to go on, added after the problems (e.g. the option that would accept them).
        self.hint: str | None = None

    def add(self, where: str | None, problem: str) -> None:
        """Record `problem`, located at `where` ("row 17") or at the file as a whole when None."""
        self.count += 1
        if self.count == 1:
            self._first_located = where is not None
        if len(self.shown) < self.limit:
            self.shown.append(f"{where}: {problem}" if where else problem)

    def __bool__(self) -> bool:
        return self.count > 0

    def message(self) -> str:
        """One line for a single problem ("train.csv row 17: text is empty"), else a counted list."""
        hint = f"; {self.hint}" if self.hint else ""
        if self.count == 1:
            # "train.csv row 17: ..." reads naturally; a file-wide problem gets "train.csv: ...".
            separator = " " if self._first_located else ": "
            return f"{self.source}{separator}{self.shown[0]}{hint}"
        more = f", the first {len(self.shown)} shown" if self.count > len(self.shown) else ""
        lines = "\n".join(f"  {line}" for line in self.shown)
        return f"{self.source}: {self.count} problems{more}{hint}:\n{lines}"

    def raise_if_any(self) -> None:
        """Raise one `DataError` carrying every problem shown and the total count, if there was any."""
        if self.count:
            raise DataError(self.message(), file=self.source, problems=list(self.shown), problem_count=self.count)
