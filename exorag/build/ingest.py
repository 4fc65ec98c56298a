"""Ingest: files and folders -> Documents -> chunks -> store, with the vectors embedded alongside.

Each document is written in its own transaction (store.put_document), unchanged documents are skipped by content
hash, and vectors are synced at the end (index.sync_vectors), so an interrupted run is resumed by running the same
command again. Problems are collected per file (and per line) as `Problem`s; the rest of the batch goes on.
Pipelining, optional (`overlap=True`, `exorag ingest --overlap`, EXORAG_OVERLAP=1): while the main thread reads,
chunks and stores, an exorag.index.embed_thread.EmbedThread embeds the chunks already stored (onnxruntime runs without the
GIL); sync_vectors then finishes the rest and drops vectors of chunks replaced meanwhile. Off by default because it
does not pay here (bench/ingest_overlap.py, 2 cores): embedding is ~97% of the time for abstracts and its two
onnxruntime threads already keep both cores busy, so parsing beside it only takes turns with it (2,000 abstracts:
best runs 62.4 s sequential, 63.5 s overlapped; 6 PDFs 4.7 s vs 4.8 s; ~4% more CPU). It pays where embedding
leaves cores idle (more cores than EXORAG_ONNX_THREADS, or a slow reader that waits on I/O).
Per-file time limit (`file_timeout`; exorag.build.file_clock: the reader's own time plus chunking and tagging each
document, not storing): readers of the ISOLATED kinds (PDF) run
in a reusable child process (exorag.build.reader_process) that is killed when the limit is past, which stops even a reader
stuck in one C call; the other readers run in-process under SIGALRM, which Python delivers only between
bytecodes, except off the main thread (the chat's uploads), where SIGALRM cannot be used and every kind goes
through the child instead. Either way the file is reported as failed with "took longer than S s" and
the batch goes on; documents stored before the limit stay. Progress bars: documents (rate, and an ETA against a cheap
count of records, exorag.build.sources.estimate_records) and embedded chunks (rate, ETA; with overlap, the total is known
only once parsing is over).
`parse_file` is the one read loop (a file's documents, chunked and tagged, under its time limit, problems noted):
`ingest_paths` stores what it yields, and the cluster build's readers (exorag.cluster.workers) send it to shard writers.
Memory does not grow with the corpus except for `IngestReport.seen` (the ids read, for `exorag sync`): readers
stream, documents are stored one by one and id lists are int64 arrays.
Deliberately left out: parsing several files at once (2 cores: one parses, the other embeds), removal of documents
whose files disappeared (see sync.py), and a time limit on storing and embedding.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from exorag.build.chunk import chunk_document
from exorag.build.enrich import derive
from exorag.build.file_clock import FileClock
from exorag.index.embed_thread import EmbedThread
from exorag.errors import ExoragError, FileTimeout, ParseError, UnsupportedFile
from exorag.settings import BuildSettings, current
from exorag.index.index import Index, sync_vectors, writes
from exorag.build.reader_process import ReaderProcess
from exorag.build.sources import estimate_records, expand_paths, read_path, reader_module
from exorag.types import Chunk, Derived, Document

CHUNK_TOKENS = 200  # leaves room in MiniLM's 256-wordpiece window for the title prefixed to each passage
FILE_TIMEOUT_S = BuildSettings.file_timeout_s
ISOLATED = {".pdf"}  # kinds whose reader runs in a child process (exorag.build.reader_process): a hard limit, crashes contained


T = TypeVar("T")
Problem = ParseError  # a report's entry is the error met: its path, reason and line (str: "path:line: reason")


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
    vectors_while_parsing: int = 0  # of vectors_added, those the EmbedThread added before parsing was over
    seen: set[str] = field(default_factory=set)  # ids of the documents read (whatever their outcome)

    @property
    def ingested(self) -> int:
        return self.added + self.updated + self.unchanged


def _can_time(limit: float | None) -> bool:
    return limit is not None and limit > 0 and threading.current_thread() is threading.main_thread()


def _timeout(path: Path, limit: float | None) -> FileTimeout:
    return FileTimeout(str(path), limit or 0.0)


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


def _timed(items: Iterator[Document | ParseError], clock: FileClock) -> Iterator[Document | ParseError]:
    """`items`, arming the alarm only while the reader runs (its time is added to `clock`)."""
    while True:
        try:
            item = _step(clock, next, items)
        except StopIteration:
            return
        yield item


def _step(clock: FileClock, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` as part of `clock`'s file: its time counts against the file's limit. On the main thread the alarm
    is armed for the time left (it interrupts the step); off it, the limit is checked once the step is done."""
    usable = _can_time(clock.limit)
    if usable:
        signal.setitimer(signal.ITIMER_REAL, max(clock.remaining() or 0.0, 0.001), 0.5)
    started = time.monotonic()
    try:
        result = fn(*args)
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
        clock.spent += time.monotonic() - started
    if clock.over():
        raise _timeout(clock.path, clock.limit)
    return result


def _items(path: Path, clock: FileClock, readers: ReaderProcess) -> Iterator[Document | ParseError]:
    """What the reader of `path` yields: from the reader child for ISOLATED kinds, and for every kind when a limit is
    asked for off the main thread (the chat's uploads), where SIGALRM cannot serve; else in-process under SIGALRM."""
    off_main = clock.limited and not _can_time(clock.limit)
    if path.suffix.lower() in ISOLATED or off_main:
        return readers.read(path, reader_module(path), clock)
    return _timed(read_path(path), clock)


def parse_file(path: Path, file_timeout: float | None, readers: ReaderProcess, count_tokens: Callable[[str], int],
               note: Callable[[Problem, str], None], tick: Callable[[], None] | None = None,
               ) -> Iterator[tuple[Document, list[Chunk], Derived]]:
    """(document, chunks, derived) of each record of one file, read, chunked and tagged under the per-file limit.

    Problems go to `note(problem, bucket)`, bucket "failed" or "skipped", and the file's rest goes on where it can.
    `tick()` is called for each item the reader yields (documents and bad records alike). What the caller does with
    a document between two items (storing it) is not timed; an error it raises is its own, not the file's.
    The one read loop of `exorag ingest` and of the cluster build's readers (exorag.cluster.workers)."""
    if not path.exists():
        note(Problem(str(path), "no such file or folder"), "failed")
        return
    clock = FileClock(path, file_timeout)
    with _alarm(path, file_timeout) as expired:
        try:
            for item in _items(path, clock, readers):
                if tick is not None:
                    tick()
                if isinstance(item, ParseError):
                    note(item, "failed")
                    continue
                chunks = _step(clock, chunk_document, item, count_tokens, CHUNK_TOKENS)
                derived = _step(clock, derive, item)  # timed, and off the index's lock
                yield item, chunks, derived  # storing is not timed
        except FileTimeout as exc:
            note(exc, "failed")
        except UnsupportedFile as exc:
            note(exc, "skipped")
        except ParseError as exc:
            if expired():  # a reader may have wrapped the timeout into its own ParseError
                exc = _timeout(path, file_timeout)
            note(exc, "failed")
        except (KeyboardInterrupt, MemoryError, ExoragError):
            raise
        except Exception as exc:  # a reader bug must not sink the batch
            reason = _timeout(path, file_timeout).reason if expired() else f"unexpected {type(exc).__name__}: {exc}"
            note(Problem(str(path), reason), "failed")


@writes
def ingest_paths(
    index: Index,
    paths: Iterable[Path],
    progress: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
    embed: bool = True,
    file_timeout: float | None = FILE_TIMEOUT_S,
    overlap: bool | None = None,
) -> IngestReport:
    """Read every supported file under `paths` into the index; report what happened.

    `file_timeout`: seconds a reader may spend on one file (None or 0: no limit). `embed`: sync the vectors at the
    end. `overlap`: embed in a thread while parsing goes on (default: `$EXORAG_OVERLAP` == "1", i.e. off; the
    module docstring says why).
    """
    report = IngestReport()
    count_tokens = index.embedder.count_tokens
    files = list(expand_paths([Path(p) for p in paths], exclude=index.folder))
    expected = sum(estimate_records(path) for path in files)
    if overlap is None:
        overlap = current().build.overlap
    behind = EmbedThread(index, progress=progress).start() if embed and overlap else None  # may raise IndexMismatch
    bar = tqdm(total=expected or None, unit="doc", desc="ingesting", disable=not progress)
    readers = ReaderProcess()

    def note(problem: Problem, bucket: str) -> None:
        getattr(report, bucket).append(problem)
        if on_problem is not None:
            on_problem(problem)

    try:
        for path in files:
            report.files += 1
            bar.set_postfix_str(path.name[-40:], refresh=False)
            for doc, chunks, derived in parse_file(path, file_timeout, readers, count_tokens, note,
                                                   tick=lambda: bar.update(1)):
                report.seen.add(doc.id)
                # an error here is the index's (a full disk, damage, a second writer): it stops the batch
                outcome = index.put_document(doc, chunks, derived)
                setattr(report, outcome, getattr(report, outcome) + 1)
        bar.total = bar.n  # the estimate counted blank lines and the like
        bar.refresh()
    finally:
        bar.close()
        readers.close()
        if behind is not None:
            report.vectors_added = report.vectors_while_parsing = behind.stop()
    if behind is not None and behind.error is not None:
        raise behind.error
    if embed:
        synced = sync_vectors(index, progress=progress, bar=behind.bar if behind is not None else None)
        report.vectors_added += synced["added"]
        report.vectors_removed = synced["removed"]
    return report
