"""Make the index match a folder (`exorag sync`), and remove documents by id (`exorag remove`).

`sync_folder` ingests the folder (new documents added, changed ones replaced, through exorag.build.ingest.ingest_paths),
then removes the documents whose recorded `origin` lies under the folder but that were not read this time: their
file is gone, or (for a JSONL/RIS/BibTeX file still present) their id no longer appears in it. Documents of a
file that failed as a whole this time (unreadable, too slow) are kept: a transient failure must not delete them.
Documents from other folders are never touched. Vectors are synced once at the end (index.sync_vectors), so an
interrupted sync is finished by running it again. Origins recorded as relative paths are resolved against the
current directory. `remove_documents` always ends with that sync, so rerunning an interrupted `exorag remove` (or
any write command) drops the vectors it left behind. Deliberately left out: watching the folder for changes, and
moving a document's recorded origin when its file was renamed (it is kept, since its id is read again from the new
file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from exorag.errors import ExoragError, NotFound
from exorag.index.index import Index, sync_vectors, writes
from exorag.build.ingest import FILE_TIMEOUT_S, IngestReport, Problem, ingest_paths


@dataclass
class SyncReport:
    ingest: IngestReport
    removed: list[str] = field(default_factory=list)
    vectors_added: int = 0
    vectors_removed: int = 0

    @property
    def summary(self) -> dict[str, int]:
        r = self.ingest
        return {"added": r.added, "updated": r.updated, "unchanged": r.unchanged, "removed": len(self.removed),
                "failed": len(r.failed), "skipped": len(r.skipped)}


@dataclass
class RemoveReport:
    removed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    vectors_removed: int = 0


def _resolved(origin: str) -> Path | None:
    if not origin:
        return None
    try:
        return Path(origin).resolve()
    except (OSError, RuntimeError):
        return None


def stale_documents(index: Index, folder: Path, seen: set[str], keep_files: set[Path]) -> list[str]:
    """Ids of documents read from under `folder` that are not in `seen` and whose file is not in `keep_files`."""
    root = folder.resolve()
    stale = []
    for doc_id, origin in index.document_origins():
        path = _resolved(origin)
        if path is None or doc_id in seen or not path.is_relative_to(root) or path in keep_files:
            continue
        stale.append(doc_id)
    return stale


@writes
def remove_documents(index: Index, doc_ids: Iterable[str], embed: bool = True) -> RemoveReport:
    """Remove each document with its chunks, then sync the vectors (even when every id was already absent, so a
    `remove` killed between the store commit and the FAISS save is finished by running it again). Ids with no
    document are collected in `not_found` ("already absent": the goal holds), the others still removed."""
    report = RemoveReport()
    for doc_id in dict.fromkeys(doc_ids):
        try:
            index.remove_document(doc_id)
            report.removed.append(doc_id)
        except NotFound:
            report.not_found.append(doc_id)
    if embed:
        report.vectors_removed = sync_vectors(index, progress=False)["removed"]
    return report


@writes
def sync_folder(
    index: Index,
    folder: Path,
    progress: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
    file_timeout: float | None = FILE_TIMEOUT_S,
) -> SyncReport:
    """Add new, update changed and remove vanished documents of `folder`; then sync the vectors."""
    folder = Path(folder)
    if not folder.is_dir():  # never read a missing folder as "every file under it is gone"
        raise ExoragError(f"{folder}: no such folder")
    ingested = ingest_paths(index, [folder], progress=progress, on_problem=on_problem, embed=False,
                            file_timeout=file_timeout)
    keep = {p for p in (_resolved(problem.path) for problem in ingested.failed if problem.line is None) if p}
    report = SyncReport(ingest=ingested)
    stale = stale_documents(index, folder, ingested.seen, keep)
    report.removed = remove_documents(index, stale, embed=False).removed
    synced = sync_vectors(index, progress=progress)
    report.vectors_added, report.vectors_removed = synced["added"], synced["removed"]
    ingested.vectors_added, ingested.vectors_removed = synced["added"], synced["removed"]
    return report
