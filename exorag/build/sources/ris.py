"""RIS reader (`.ris`): reference-manager exports (EndNote, Zotero, Mendeley, journal sites) with abstracts.

A record runs from `TY  - ` to `ER  - `; a line that is not a tag continues the value before it (wrapped
abstracts). Tags read: TI/T1 title, AU/A1 authors ("Last, First M." -> "Last FM"), PY/Y1/DA year, JO/JF/T2/JA/J2
journal, AB/N2 abstract, DO doi, AN accession number (a PMID when it is one), C2 PMCID, KW keywords (kept in the
record, not indexed). A byte-order mark is tolerated; a file that is not UTF-8 is refused whole. A record without
an abstract yields a ParseError naming it ("no abstract"), and reading goes on; so does one with a field over
exorag.build.sources.jsonl.FIELD_LIMITS (e.g. a multi-MB abstract). Deliberately left out: the other
RIS tags (pages, volume, URLs, notes), and merging a record that appears twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exorag.text import normalise_doi
from exorag.errors import ParseError
from exorag.types import Document
from exorag.build.sources.jsonl import record_to_document

_TAG = re.compile(r"^([A-Z][A-Z0-9])  ?-(?: (.*))?$")
JOURNAL_TAGS = ("JF", "JO", "T2", "JA", "J2")




def initials_name(name: str) -> str:
    """'Müller, Anna Maria' -> 'Müller AM'; a name without a comma, or one already short, is kept as it is."""
    name = " ".join(name.split())
    if "," not in name:
        return name
    last, _, given = (part.strip() for part in name.partition(","))
    given = given.split(",")[0]  # "Smith, John, Jr."
    initials = "".join(w[0] for w in re.split(r"[\s.\-]+", given) if w and w[0].isalpha())
    return f"{last} {initials.upper()}".strip() if last else given


def text_file(path: Path) -> str:
    """The file as text (BOM dropped); ParseError when it cannot be opened or is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParseError(str(path), f"not UTF-8 (byte 0x{raw[exc.start]:02x})", line) from None


def _joined(fields: dict[str, list[list[str]]]) -> dict[str, list[str]]:
    return {tag: [" ".join(p for p in parts if p) for parts in values] for tag, values in fields.items()}


def _records(text: str) -> Iterator[tuple[int, dict[str, list[str]]]]:
    """(line of TY, {tag: [values]}) per record. A value's continuation lines are collected and joined once (not
    appended one by one, which is quadratic for a multi-MB field)."""
    fields: dict[str, list[list[str]]] | None = None
    start = 0
    last = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _TAG.match(line.rstrip())
        if match:
            tag, value = match.group(1), (match.group(2) or "").strip()
            if tag == "TY":
                if fields:
                    yield start, _joined(fields)  # a record missing its ER
                fields, start, last = {"TY": [[value]]}, lineno, "TY"
            elif tag == "ER":
                if fields is not None:
                    yield start, _joined(fields)
                fields, last = None, ""
            elif fields is not None:
                fields.setdefault(tag, []).append([value])
                last = tag
        elif fields is not None and last and line.strip():
            fields[last][-1].append(line.strip())
    if fields:
        yield start, _joined(fields)


def _first(fields: dict[str, list[str]], *tags: str) -> str:
    for tag in tags:
        for value in fields.get(tag, []):
            if value.strip():
                return value.strip()
    return ""


def to_record(fields: dict[str, list[str]]) -> dict[str, Any]:
    accession = _first(fields, "AN")
    accession = re.sub(r"^PMID:?\s*", "", accession, flags=re.IGNORECASE)
    pmcid = _first(fields, "C2")
    keywords = [k.strip() for v in fields.get("KW", []) for k in re.split(r";|\n", v) if k.strip()]
    return {
        "title": _first(fields, "TI", "T1", "CT"),
        "abstract": _first(fields, "AB", "N2"),
        "authors": [initials_name(a) for a in fields.get("AU", []) + fields.get("A1", []) if a.strip()],
        "year": _first(fields, "PY", "Y1", "DA"),
        "journal": _first(fields, *JOURNAL_TAGS),
        "doi": normalise_doi(_first(fields, "DO")),
        "pmid": accession if accession.isdigit() else "",
        "pmcid": pmcid if re.fullmatch(r"PMC\d+", pmcid) else "",
        "keywords": keywords,
        "source": "ris",
    }


def read(path: Path) -> Iterator[Document | ParseError]:
    text = text_file(path)
    for lineno, fields in _records(text):
        record = to_record(fields)
        if not record["abstract"]:
            name = record["title"][:80] or f"record at line {lineno}"
            yield ParseError(str(path), f"no abstract: {name!r}", lineno)
            continue
        try:
            yield record_to_document(record, path, lineno)
        except ParseError as exc:
            yield exc
