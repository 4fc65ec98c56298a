"""Plain text and Markdown reader.

The file's text (UTF-8, newlines normalised) is the Document text. In Markdown, ATX headings (`# ...`) start
Sections and are left out of the section spans; the first heading, else the first line, is the title.
The id is `file:<stem>`. Deliberately left out: Markdown rendering, front matter, encodings other than UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from exorag.errors import ParseError
from exorag.types import Document, Section

# Linear on purpose: the former `\s+(.+?)\s*#*\s*$` backtracked cubically on a heading followed by a long run of
# spaces and another word (found by tests/test_fuzz.py). The closing #s are stripped in _name.
_HEADING = re.compile(r"^#{1,6}[ \t]+(\S.*)$", re.MULTILINE)


def _name(match: re.Match[str]) -> str:
    raw = match.group(1).strip()
    return raw.rstrip("#").rstrip() or raw


def _spans(text: str, markdown: bool) -> tuple[str, list[Section]]:
    headings = list(_HEADING.finditer(text)) if markdown else []
    title = _name(headings[0]) if headings else ""
    sections: list[Section] = []
    bounds = [(m.start(), m.end(), _name(m)) for m in headings]
    cursor, heading = 0, "Body"
    for start, end, name in bounds + [(len(text), len(text), "")]:
        body_start, body_end = cursor, start
        while body_start < body_end and text[body_start].isspace():
            body_start += 1
        while body_end > body_start and text[body_end - 1].isspace():
            body_end -= 1
        if body_end > body_start:
            sections.append(Section(heading=heading, start=body_start, end=body_end))
        cursor, heading = end, name
    return title, sections


def read(path: Path) -> Iterator[Document | ParseError]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(str(path), f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); convert it to UTF-8") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    markdown = path.suffix.lower() in {".md", ".markdown"}
    title, sections = _spans(text, markdown)
    if not sections:
        raise ParseError(str(path), "no text")
    if not title:
        first = text[sections[0].start : sections[0].end].split("\n", 1)[0].strip()
        title = first if len(first) <= 200 else path.stem
    yield Document(
        id=f"file:{path.stem}",
        text=text,
        sections=tuple(sections),
        title=title,
        source="text",
        origin=str(path),
    )
