"""Fetched JSONL files into an index, with metadata-only records reported as skipped rather than failed.

The JSONL reader refuses a record without text, and rightly so for hand-made files; but a fetched record flagged
`"no_abstract": true` (a letter, an erratum, a paper PubMed has no abstract for) is kept on purpose as metadata.
`ingest_fetched` runs the ordinary `exorag.build.ingest.ingest_paths` and moves exactly those lines from `failed` to
`skipped` with the reason "no abstract (metadata only)". Deliberately left out: storing metadata-only records in
the index (the store holds documents with text to retrieve).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from exorag.index.index import Index
from exorag.build.ingest import IngestReport, Problem, ingest_paths
from exorag.fetch.files import metadata_only_lines

METADATA_ONLY = "no abstract (metadata only)"


def ingest_fetched(
    index: Index,
    paths: Iterable[Path],
    progress: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
) -> IngestReport:
    """`ingest_paths` over fetched JSONL files; `on_problem` hears of real failures and metadata-only skips alike."""
    paths = [Path(p) for p in paths]
    metadata_only = {(str(p), line) for p in paths for line in metadata_only_lines(p)}

    def reclassify(problem: Problem) -> None:
        if (problem.path, problem.line) in metadata_only:
            problem.reason = METADATA_ONLY
        if on_problem is not None:
            on_problem(problem)

    report = ingest_paths(index, paths, progress=progress, on_problem=reclassify)
    moved = [p for p in report.failed if p.reason == METADATA_ONLY]
    report.failed = [p for p in report.failed if p.reason != METADATA_ONLY]
    report.skipped.extend(moved)
    return report
