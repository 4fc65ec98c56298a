"""JSONL reader: the exo_corpus schema and BEIR's `_id/title/text`.

One JSON object per line. Text is the abstract (or BEIR `text`) followed by any full-text `sections`
({heading, text}); each becomes a Section span of Document.text. A bad line (not JSON, not an object,
no text, not UTF-8) yields a ParseError naming the line, and reading goes on. Inline HTML emphasis tags
that PubMed leaves in abstracts (<sub>, <sup>, <i>...) are removed. Deliberately left out: nested
BEIR metadata beyond title/text, and any network lookup of missing fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ParseError
from ..types import Document, Section

_INLINE_TAGS = re.compile(r"</?(?:sub|sup|i|b|em|strong|u|br)\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def clean(text: str) -> str:
    """Strip inline HTML tags and control characters, fold runs of spaces; keep paragraph breaks."""
    text = _INLINE_TAGS.sub("", text)
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


def _year(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    match = re.search(r"\b(1[89]\d\d|20\d\d)\b", str(value or ""))
    return int(match.group(1)) if match else None


def record_to_document(record: dict[str, Any], path: Path, lineno: int) -> Document:
    """Build a Document from one parsed record; raise ParseError when it has no text."""
    parts: list[tuple[str, str]] = []
    abstract = record.get("abstract")
    if abstract is None:
        abstract = record.get("text")  # BEIR
    if isinstance(abstract, list):
        abstract = " ".join(str(a) for a in abstract)
    if isinstance(abstract, str) and clean(abstract):
        parts.append(("Abstract", clean(abstract)))
    sections_value = record.get("sections")
    for section in sections_value if isinstance(sections_value, list) else []:  # any other type: no sections
        if isinstance(section, dict) and isinstance(section.get("text"), str) and clean(section["text"]):
            parts.append((clean(str(section.get("heading") or "Body")) or "Body", clean(section["text"])))
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
    return Document(
        id=doc_id,
        text=text,
        sections=tuple(sections),
        title=clean(str(record.get("title") or "")),
        authors=_str_list(record.get("authors")),
        journal=clean(str(record.get("journal") or "")),
        year=_year(record.get("year")),
        pmid=pmid,
        doi=doi,
        pmcid=str(record.get("pmcid") or "").strip(),
        publication_types=_str_list(record.get("publication_types")),
        mesh=_str_list(record.get("mesh")),
        source=str(record.get("source") or path.stem),
        origin=str(path),
    )


def read(path: Path) -> Iterator[Document | ParseError]:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ParseError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    with handle:
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
            if not isinstance(record, dict):
                yield ParseError(str(path), f"expected a JSON object, got {type(record).__name__}", lineno)
                continue
            try:
                yield record_to_document(record, path, lineno)
            except ParseError as exc:
                yield exc
