"""Readers, one per input kind, and `read_path`, which picks the reader by file extension.

Every reader is `read(path) -> Iterator[Document | ParseError]`: it yields a ParseError *value* for a problem
that spoils one record (a bad JSONL line) and goes on; it *raises* ParseError when the whole file is unreadable
(a corrupt or encrypted PDF, a file that is not UTF-8). Readers never touch the store, so any of them can run in
a child process (exorag.build.reader_process). `estimate_records` counts a file's records cheaply (for progress bars).
"""

from __future__ import annotations

import gzip
import importlib
import zlib
from collections.abc import Iterator
from pathlib import Path

from exorag.errors import ParseError, UnsupportedFile
from exorag.types import Document
# extension -> reader module under exorag.build.sources (imported on first use, so pypdf loads only when a PDF is read);
# a name with a dot is a full module name (a reader outside this package, e.g. a test's)
READERS = {
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",  # gzip-compressed JSONL (the shipped demo corpus)
    ".ndjson": "jsonl",
    ".pdf": "pdf",
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
    ".ris": "ris",
    ".bib": "bibtex",
}


def kind_suffix(path: Path) -> str:
    """The extension that names the file's kind, lower-cased: ".pdf", or ".jsonl.gz" for a compressed JSONL."""
    name = path.name.lower()
    for double in (".jsonl.gz",):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def supported(path: Path) -> bool:
    return kind_suffix(path) in READERS


def reader_module(path: Path) -> str:
    """The full name of the module that reads `path`; raise UnsupportedFile for an extension no reader takes."""
    module = READERS.get(kind_suffix(path))
    if module is None:
        known = ", ".join(sorted(READERS))
        raise UnsupportedFile(str(path), f"unsupported file type {path.suffix or '(none)'!r}; exorag reads {known}")
    return module if "." in module else f"{__name__}.{module}"


def read_path(path: Path) -> Iterator[Document | ParseError]:
    """Read one file with the reader its extension names; raise UnsupportedFile for any other extension."""
    return importlib.import_module(reader_module(path)).read(path)


# What starts a record, per reader, for `estimate_records`; a kind not listed holds one record per file.
_RECORD_MARKS = {"jsonl": b"\n", "ris": b"\nER  -", "bibtex": b"\n@"}


def estimate_records(path: Path) -> int:
    """About how many records `path` holds (newlines of a JSONL file, ER tags of RIS, entries of BibTeX; 1 for
    other kinds; 0 for unsupported or unreadable files), counted in 1 MiB blocks without parsing."""
    kind = READERS.get(kind_suffix(path))
    if kind is None:
        return 0
    mark = _RECORD_MARKS.get(kind)
    if mark is None:
        return 1
    keep = len(mark) - 1  # bytes carried over between blocks, so that a mark split by a block edge is counted
    count, tail, last = 0, b"\n" if keep else b"", b""  # a leading "\n": a mark on the first line counts too
    try:
        with (gzip.open(path, "rb") if kind_suffix(path).endswith(".gz") else path.open("rb")) as handle:
            while block := handle.read(1 << 20):
                joined = tail + block
                count += joined.count(mark)
                tail, last = (joined[-keep:] if keep else b""), block[-1:]
    except (OSError, EOFError, zlib.error):
        return 0
    if kind == "jsonl" and last and last != b"\n":
        count += 1  # a last line without its newline
    return count


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
