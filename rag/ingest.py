"""Ingest: files and folders -> Documents -> chunks -> store, then vectors for the new chunks.

Each document is written in its own transaction (store.put_document), unchanged documents are skipped by content
hash, and vectors are synced at the end (index.sync_vectors), so an interrupted run is resumed by running the same
command again. Problems are collected per file (and per line) as `Problem`s; the rest of the batch goes on.
A reader that spends longer than `file_timeout` seconds on one file is abandoned (SIGALRM, so only in the main
thread; elsewhere there is no limit) and the file is reported as failed; chunking and storing are not timed.
Deliberately left out: parallel parsing, removal of documents whose files disappeared (see sync.py).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import store
from .chunk import chunk_document
from .errors import ParseError, UnsupportedFile
from .index import Index, sync_vectors
from .sources import expand_paths, read_path
from .types import Document

CHUNK_TOKENS = 200  # leaves room in MiniLM's 256-wordpiece window for the title prefixed to each passage
FILE_TIMEOUT_S = 120.0


class FileTimeout(ParseError):
    """A reader spent longer than the per-file limit on one file."""


@dataclass
class Problem:
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    files: int = 0
    skipped: list[Problem] = field(default_factory=list)  # files of a kind we do not read
    failed: list[Problem] = field(default_factory=list)  # unreadable files and records
    vectors_added: int = 0
    vectors_removed: int = 0
    seen: set[str] = field(default_factory=set)  # ids of the documents read (whatever their outcome)

    @property
    def ingested(self) -> int:
        return self.added + self.updated + self.unchanged


def _problem(exc: ParseError) -> Problem:
    return Problem(path=exc.path, reason=exc.reason, line=exc.line)


def _can_time(limit: float | None) -> bool:
    return limit is not None and limit > 0 and threading.current_thread() is threading.main_thread()


def _timeout(path: Path, limit: float | None) -> FileTimeout:
    return FileTimeout(str(path), f"took longer than {limit:g} s; abandoned (raise --file-timeout to allow more)")


@contextmanager
def _alarm(path: Path, limit: float | None) -> Iterator[Callable[[], bool]]:
    """A SIGALRM handler raising FileTimeout for `path` while the block runs; yields `expired()`.

    `_timed` arms and disarms the timer around each step of the reader. Once due, the alarm repeats every 0.5 s,
    so a reader that swallows the first exception (a broad `except Exception`) is interrupted again.
    """
    state = {"expired": False}
    usable = _can_time(limit)

    def fire(signum: int, frame: object) -> None:
        state["expired"] = True
        raise _timeout(path, limit)

    previous = signal.signal(signal.SIGALRM, fire) if usable else None
    try:
        yield lambda: state["expired"]
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _timed(items: Iterator[Document | ParseError], limit: float | None) -> Iterator[Document | ParseError]:
    """`items`, arming the alarm only while the reader runs, so that only its time counts against `limit`."""
    usable = _can_time(limit)
    spent = 0.0
    while True:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, max(limit - spent, 0.001), 0.5)  # type: ignore[operator]
        started = time.monotonic()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            if usable:
                signal.setitimer(signal.ITIMER_REAL, 0)
            spent += time.monotonic() - started
        yield item


def ingest_paths(
    index: Index,
    paths: Iterable[Path],
    progress: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
    embed: bool = True,
    file_timeout: float | None = FILE_TIMEOUT_S,
) -> IngestReport:
    """Read every supported file under `paths` into the index; report what happened.

    `file_timeout`: seconds a reader may spend on one file (None or 0: no limit).
    """
    report = IngestReport()
    count_tokens = index.embedder.count_tokens
    bar = tqdm(unit="doc", desc="ingesting", disable=not progress)

    def note(problem: Problem, bucket: list[Problem]) -> None:
        bucket.append(problem)
        if on_problem is not None:
            on_problem(problem)

    try:
        for path in expand_paths([Path(p) for p in paths], exclude=index.folder):
            report.files += 1
            bar.set_postfix_str(path.name[-40:], refresh=False)
            if not path.exists():
                note(Problem(str(path), "no such file or folder"), report.failed)
                continue
            with _alarm(path, file_timeout) as expired:
                try:
                    for item in _timed(read_path(path), file_timeout):
                        if isinstance(item, ParseError):
                            note(_problem(item), report.failed)
                            continue
                        report.seen.add(item.id)
                        chunks = chunk_document(item, count_tokens, CHUNK_TOKENS)
                        with index.lock:
                            outcome = store.put_document(index.conn, item, chunks)
                        setattr(report, outcome, getattr(report, outcome) + 1)
                        bar.update(1)
                except UnsupportedFile as exc:
                    note(_problem(exc), report.skipped)
                except ParseError as exc:
                    if expired():  # a reader may have wrapped the timeout into its own ParseError
                        exc = _timeout(path, file_timeout)
                    note(_problem(exc), report.failed)
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # a reader bug must not sink the batch
                    reason = _timeout(path, file_timeout).reason if expired() else \
                        f"unexpected {type(exc).__name__}: {exc}"
                    note(Problem(str(path), reason), report.failed)
    finally:
        bar.close()
    if embed:
        with index.lock:
            synced = sync_vectors(index, progress=progress)
        report.vectors_added, report.vectors_removed = synced["added"], synced["removed"]
    return report
