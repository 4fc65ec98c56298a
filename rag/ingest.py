"""Ingest: files and folders -> Documents -> chunks -> store, then vectors for the new chunks.

Each document is written in its own transaction (store.put_document), unchanged documents are skipped by content
hash, and vectors are synced at the end (index.sync_vectors), so an interrupted run is resumed by running the same
command again. Problems are collected per file (and per line) as `Problem`s; the rest of the batch goes on.
Deliberately left out: parallel parsing, removal of documents whose files disappeared (a later `sync`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import store
from .chunk import chunk_document
from .errors import ParseError, UnsupportedFile
from .index import Index, sync_vectors
from .sources import expand_paths, read_path

CHUNK_TOKENS = 200  # leaves room in MiniLM's 256-wordpiece window for the title prefixed to each passage


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

    @property
    def ingested(self) -> int:
        return self.added + self.updated + self.unchanged


def _problem(exc: ParseError) -> Problem:
    return Problem(path=exc.path, reason=exc.reason, line=exc.line)


def ingest_paths(
    index: Index,
    paths: Iterable[Path],
    progress: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
    embed: bool = True,
) -> IngestReport:
    """Read every supported file under `paths` into the index; report what happened."""
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
            try:
                for item in read_path(path):
                    if isinstance(item, ParseError):
                        note(_problem(item), report.failed)
                        continue
                    chunks = chunk_document(item, count_tokens, CHUNK_TOKENS)
                    with index.lock:
                        outcome = store.put_document(index.conn, item, chunks)
                    setattr(report, outcome, getattr(report, outcome) + 1)
                    bar.update(1)
            except UnsupportedFile as exc:
                note(_problem(exc), report.skipped)
            except ParseError as exc:
                note(_problem(exc), report.failed)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # a reader bug must not sink the batch
                note(Problem(str(path), f"unexpected {type(exc).__name__}: {exc}"), report.failed)
    finally:
        bar.close()
    if embed:
        with index.lock:
            synced = sync_vectors(index, progress=progress)
        report.vectors_added, report.vectors_removed = synced["added"], synced["removed"]
    return report
