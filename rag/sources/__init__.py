"""Readers, one per input kind, and `read_path`, which picks the reader by file extension.

Every reader is `read(path) -> Iterator[Document | ParseError]`: it yields a ParseError *value* for a problem
that spoils one record (a bad JSONL line) and goes on; it *raises* ParseError when the whole file is unreadable
(a corrupt or encrypted PDF, a file that is not UTF-8). Readers never touch the store.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import ParseError, UnsupportedFile
from ..types import Document
# extension -> reader module (imported on first use, so pypdf loads only when a PDF is read)
READERS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".pdf": "pdf",
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
    ".ris": "ris",
    ".bib": "bibtex",
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def read_path(path: Path) -> Iterator[Document | ParseError]:
    """Read one file with the reader its extension names; raise UnsupportedFile for any other extension."""
    module = READERS.get(path.suffix.lower())
    if module is None:
        known = ", ".join(sorted(READERS))
        raise UnsupportedFile(str(path), f"unsupported file type {path.suffix or '(none)'!r}; exorag reads {known}")
    return importlib.import_module(f"{__name__}.{module}").read(path)


def expand_paths(paths: list[Path], exclude: Path | None = None) -> Iterator[Path]:
    """Files named directly, and every non-hidden file found (recursively, sorted) under folders named.

    Unsupported files are yielded too, so that ingest can report each one as skipped rather than pass over it.
    Files under `exclude` (the index folder itself, when it lies inside a folder being ingested) are left out.
    """
    skip = exclude.resolve() if exclude is not None else None
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(p.startswith(".") for p in child.relative_to(path).parts):
                    if skip is None or not child.resolve().is_relative_to(skip):
                        yield child
        else:
            yield path
