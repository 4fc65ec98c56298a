"""Fetching literature from remote services into JSONL files that `exorag ingest` reads.

One module per idea: `http` (a polite HTTP client: timeout, rate limit, retries), `xmlsafe` (XML without entities
or DTDs), `files` (what a fetch leaves on disk: JSONL, state, raw-response cache), `pubmed` (NCBI E-utilities),
`europepmc` (Europe PMC search and JATS full text), `jats` (JATS body -> sections), `ids` (PMIDs, PMCIDs and DOIs
found in pasted text), `defaults` (the versioned default query list), `ingest` (fetched files into an index).
Only this package talks to the network, and only when `exorag fetch` is run; nothing here runs at question time.
An open-access paper without JATS gets its PDF downloaded and read (europepmc.py). Base URLs and the NCBI key come
from Settings.fetch. Deliberately left out: any service other than these two, and authenticated (paywalled) access.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[str], None]


@dataclass
class FetchReport:
    """What one fetch run did: the JSONL it wrote and what went wrong along the way."""

    path: Path | None = None  # the JSONL file (None when nothing matched)
    found: int = 0  # hits the service reported for the query
    written: int = 0  # records in the JSONL file after this run
    new: int = 0  # records added by this run (0 when everything came from an earlier run)
    no_abstract: int = 0  # metadata-only records (kept, flagged "no_abstract")
    errata: int = 0  # records that are published errata (kept, flagged "erratum")
    full_texts: int = 0  # records with JATS full-text sections
    failures: list[str] = field(default_factory=list)  # batches or requests that failed; the rest was written
    not_found: list[str] = field(default_factory=list)  # identifiers no service knew (fetch ids)
    note: str = ""  # e.g. "no results", "already complete"


def say(progress: Progress | None, message: str) -> None:
    """Pass a progress line to the caller's callback, if it gave one."""
    if progress is not None:
        progress(message)


def summarise(report: FetchReport) -> FetchReport:
    """Fill the counts of `report` from the JSONL it names."""
    from exorag.fetch.files import read_records

    if report.path is not None and report.path.exists():
        records = read_records(report.path)
        report.written = len(records)
        report.no_abstract = sum(1 for r in records if r.get("no_abstract"))
        report.errata = sum(1 for r in records if r.get("erratum"))
        report.full_texts = sum(1 for r in records if r.get("sections"))
    return report
