"""JSONL reader: the exo_corpus schema and BEIR's `_id/title/text`.

One JSON object per line (a `.jsonl.gz` file is read through gzip; damaged gzip data ends the file with a
ParseError, the records before it kept). Text is the abstract (or BEIR `text`) followed by any full-text `sections`
({heading, text}); each becomes a Section span of Document.text. A bad line (not JSON, not an object,
no text, not UTF-8) yields a ParseError naming the line, and reading goes on. Literal inline HTML tags
that PubMed leaves in titles, abstracts and section texts go through `exorag.fetch.markup.tags_to_text`
(<sup>3</sup> -> "³", <sub>2</sub> -> "₂", <i>/<b>/<u> -> their text); elsewhere (journal, headings) they are
removed. Every reader's records go through `record_to_document`, which refuses (ParseError naming the line, the
record skipped) a title, abstract, author list, journal or id longer than FIELD_LIMITS (never truncated silently),
a year that is a number but not a year (e.g. 10**30, which SQLite cannot store), and text holding a lone surrogate
(JSON "\\ud800", which neither SQLite nor the tokenizer can take). Deliberately left out: nested
BEIR metadata beyond title/text, a size limit on full-text `sections`, and any network lookup of missing fields.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exorag.errors import ParseError
from exorag.fetch.markup import tags_to_text
from exorag.types import Document, Section

_INLINE_TAGS = re.compile(r"</?(?:sub|sup|i|b|em|strong|u|br)\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters a field may hold (authors: all names together). Real records stay far below: titles ~300, abstracts
# a few thousand, the longest author lists (physics collaborations) ~60,000.
FIELD_LIMITS = {"title": 2_000, "abstract": 100_000, "text": 100_000, "authors": 100_000, "journal": 2_000,
                "id": 1_000, "_id": 1_000, "pmid": 1_000, "doi": 1_000, "pmcid": 1_000}


def clean(text: str, markup: bool = False) -> str:
    """Strip inline HTML tags and control characters, fold runs of spaces; keep paragraph breaks. With `markup`,
    literal sup/sub/i/b/... tags are converted first (10<sup>3</sup> -> "10³"), not just removed."""
    text = _INLINE_TAGS.sub("", tags_to_text(text) if markup else text)
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _str_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p.strip() for p in re.split(r";|\|", value)] if (";" in value or "|" in value) else [value.strip()]
        return tuple(p for p in parts if p)
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):  # {"name": ...} or {"last": .., "first": ..}
                item = item.get("name") or " ".join(str(item.get(k, "")) for k in ("last", "first")).strip()
            if item is not None and str(item).strip():
                out.append(str(item).strip())
        return tuple(out)
    return (str(value),)


def _size(value: Any) -> int:
    """Characters of the strings in a field's value (lists and dicts: all they hold; no recursion)."""
    total, todo = 0, [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
    return total


def check_sizes(record: dict[str, Any], path: Path, lineno: int) -> None:
    """ParseError naming the first field longer than FIELD_LIMITS allows (the record is then skipped, not cut)."""
    for name, limit in FIELD_LIMITS.items():
        size = _size(record.get(name))
        if size > limit:
            raise ParseError(str(path), f"field {name!r} is {size:,} characters long, over the limit of "
                                        f"{limit:,}; record skipped", lineno)


def _check_text(doc: Document, path: Path, lineno: int) -> None:
    """ParseError when a field of `doc` holds a lone surrogate (JSON "\\ud800"): not text SQLite can store."""
    for name in ("id", "title", "text", "authors", "journal", "pmid", "doi", "pmcid", "publication_types", "mesh",
                 "source"):
        value = getattr(doc, name)
        for item in (value,) if isinstance(value, str) else value:
            bad = _SURROGATE.search(item)
            if bad:
                raise ParseError(str(path), f"field {name!r} holds a lone surrogate (U+{ord(bad.group(0)):04X}), "
                                            "not valid Unicode text; record skipped", lineno)


def _year(value: Any, path: Path, lineno: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not 0 <= value <= 9999:  # e.g. 10**30: SQLite stores at most 64-bit integers
            digits = str(value)
            shown = digits if len(digits) <= 12 else f"{digits[:8]}... ({len(digits)} digits)"
            raise ParseError(str(path), f"year {shown} is not a year; record skipped", lineno)
        return value
    match = re.search(r"\b(1[89]\d\d|20\d\d)\b", str(value or ""))
    return int(match.group(1)) if match else None


def record_to_document(record: dict[str, Any], path: Path, lineno: int) -> Document:
    """Build a Document from one parsed record; raise ParseError when it has no text, a field over FIELD_LIMITS, a
    year that is not one, or a lone surrogate."""
    check_sizes(record, path, lineno)
    parts: list[tuple[str, str]] = []
    abstract = record.get("abstract")
    if abstract is None:
        abstract = record.get("text")  # BEIR
    if isinstance(abstract, list):
        abstract = " ".join(str(a) for a in abstract)
    abstract = clean(abstract, markup=True) if isinstance(abstract, str) else ""
    if abstract:
        parts.append(("Abstract", abstract))
    sections_value = record.get("sections")
    for section in sections_value if isinstance(sections_value, list) else []:  # any other type: no sections
        body = clean(section["text"], markup=True) if isinstance(section, dict) and isinstance(
            section.get("text"), str) else ""
        if body:
            parts.append((clean(str(section.get("heading") or "Body")) or "Body", body))
    if not parts:
        raise ParseError(str(path), "record has no text (needs 'abstract', 'text' or 'sections')", lineno)

    text = ""
    sections = []
    for heading, body in parts:
        if text:
            text += "\n\n"
        sections.append(Section(heading=heading, start=len(text), end=len(text) + len(body)))
        text += body

    pmid = str(record.get("pmid") or "").strip()
    doi = str(record.get("doi") or "").strip()
    doc_id = str(record.get("id") or record.get("_id") or "").strip()
    if not doc_id:
        doc_id = f"pmid:{pmid}" if pmid else f"doi:{doi.lower()}" if doi else f"{path.stem}:{lineno}"
    doc = Document(
        id=doc_id,
        text=text,
        sections=tuple(sections),
        title=clean(str(record.get("title") or ""), markup=True),
        authors=_str_list(record.get("authors")),
        journal=clean(str(record.get("journal") or "")),
        year=_year(record.get("year"), path, lineno),
        pmid=pmid,
        doi=doi,
        pmcid=str(record.get("pmcid") or "").strip(),
        publication_types=_str_list(record.get("publication_types")),
        mesh=_str_list(record.get("mesh")),
        source=str(record.get("source") or path.stem),
        origin=str(path),
    )
    _check_text(doc, path, lineno)
    return doc


def read(path: Path) -> Iterator[Document | ParseError]:
    try:
        handle = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise ParseError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    with handle:
        try:
            yield from _read_lines(path, handle)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a truncated or corrupt .gz: what was read stays
            raise ParseError(str(path), f"damaged gzip data ({exc})") from exc


def _read_lines(path: Path, handle: Any) -> Iterator[Document | ParseError]:
    for lineno, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            yield ParseError(str(path), f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", lineno)
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ParseError(str(path), f"not valid JSON ({exc.msg} at column {exc.colno})", lineno)
            continue
        except RecursionError:  # e.g. 2,000 nested '[': the C scanner gives up; so do we, for this line
            yield ParseError(str(path), "not valid JSON (nested too deeply)", lineno)
            continue
        except ValueError as exc:  # a number of more than 4,300 digits (int_max_str_digits)
            yield ParseError(str(path), f"not valid JSON ({str(exc).split(';')[0]})", lineno)
            continue
        if not isinstance(record, dict):
            yield ParseError(str(path), f"expected a JSON object, got {type(record).__name__}", lineno)
            continue
        try:
            yield record_to_document(record, path, lineno)
        except ParseError as exc:
            yield exc
