"""The time one file's work has taken against the per-file limit (`exorag ingest --file-timeout`, the chat's uploads).

Counted: the reader's own steps (in-process or waiting on the reader child), and chunking and tagging each document
(exorag.build.ingest `_step`). Not counted: storing (one short transaction a document, never interrupted halfway)
and embedding (done for the whole batch after parsing). On the main thread a SIGALRM set to the time left stops
even one long step; off the main thread (the chat's uploads; SIGALRM cannot be used there) the reader runs in the
killable child and the clock is checked after each chunking and tagging step, which the field caps of the readers
(a title of 2,000 characters, an abstract of 100,000) keep short: the largest record a reader lets through takes
well under a second (tests/test_ingest.py::test_file_limit_counts_chunking_and_tagging).
Deliberately left out: CPU time (wall time is what a user waits), memory limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FileClock:
    path: Path
    limit: float | None  # seconds; None or 0: no limit
    spent: float = 0.0

    @property
    def limited(self) -> bool:
        return self.limit is not None and self.limit > 0

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or None without a limit."""
        return max(self.limit - self.spent, 0.0) if self.limited else None  # type: ignore[operator]

    def over(self) -> bool:
        return self.limited and self.spent >= self.limit  # type: ignore[operator]
