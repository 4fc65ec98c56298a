"""Read one PDF paper into one Document, with pypdf, page by page.

What it does:
- extracts each page's text layer (after exorag.build.sources.pdf_spacing folds justification by character spacing into
  TJ offsets, so lines like "reactionsto,youknewwhat" keep their word spaces) and cleans it: drops control characters and running headers/footers (lines that
  repeat, modulo digits, in the first or last lines of many pages: journal names, licence footers, "Page 3 of 10",
  bare page numbers), re-joins words hyphenated across line breaks ("extra-\\ncellular" -> "extracellular", keeping
  the hyphen when the hyphenated form occurs elsewhere in the paper or the word before it is not lower case), joins
  the line breaks inside a paragraph into spaces and keeps "\\n\\n" where a paragraph break is detectable (a short
  line ending a sentence, a sub-heading, a list item, a section heading);
- joins the cleaned pages with "\\n\\n" into Document.text and cuts it into Sections: at least one per page, a new
  one at every recognised section heading (Abstract, Introduction, Methods, Results, ... References), the heading
  carrying on over later pages. Sections are trimmed spans (no leading/trailing whitespace), in order, never empty,
  never overlapping; only the whitespace between them is left uncovered. Back matter (References, Acknowledgements,
  Funding, Competing interests) is stored with `indexed=False`;
- finds the title (PDF metadata when it looks real, else the largest-font text on page 1, else the first substantial
  line), the DOI (metadata, page 1, running footers, "Cite this article" block), the authors (the byline after the
  title, else a metadata /Author naming people), the journal and year (a page-1 header "Journal (2014) 126, ...",
  else a metadata /Subject that reads like one), else the year of a "©"/"Copyright" on page 1 or the creation date.

What it leaves out on purpose:
- OCR: an image-only (scanned) PDF is refused with a ParseError, not recognised;
- layout analysis: the reading order is pypdf's; two-column pages usually come out column by column, but figure
  labels, tables, side bars and footnotes land where pypdf puts them; words glued together in the text layer itself
  (no gap on the page) stay glued;
- abstract-versus-body structure beyond headings; authors and journal only from a page-1 byline / header or the
  metadata (see _find_authors, _find_journal), never guessed from affiliations.

Errors: the whole file is refused by raising ParseError(path, reason) -- not a PDF, corrupt or truncated, encrypted
with a password other than the empty one, or no extractable text. Every exception pypdf raises is turned into one.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path

from pypdf import PageObject, PdfReader

from exorag.text import normalise_doi
from exorag.errors import ParseError
from exorag.types import Document, Section
from exorag.build.sources.pdf_spacing import normalise_spacing

# pypdf logs a warning for every odd object it recovers from; the ParseError we raise carries what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)

EDGE_LINES = 5  # how many lines at the top and at the bottom of a page may be a running header/footer
MIN_TEXT_CHARS = 20  # fewer letters/digits than this in the whole file: treat it as image-only

_HEADINGS = (
    r"abstract|summary|background|introduction"
    r"|(?:materials?|patients|subjects|participants)\s+and\s+methods?|methods?\s+and\s+materials?|methods?|methodology"
    r"|experimental\s+procedures|results\s+and\s+discussion|results|discussion|conclusions?|concluding\s+remarks"
    r"|references|bibliography|literature\s+cited|acknowledge?ments?"
    r"|funding|competing\s+interests?|conflicts?\s+of\s+interests?|declarations?\s+of\s+interests?"
)
_HEADING_RE = re.compile(
    r"(?:(?:\d{1,2}(?:\.\d{1,2})*|[IVX]{1,4})\.?\s+)?(?P<name>" + _HEADINGS + r")\s*[:.]?", re.IGNORECASE
)
_NOT_INDEXED_RE = re.compile(
    r"references|bibliography|literature cited|acknowledge?ments?|funding|competing interests?"
    r"|conflicts? of interests?|declarations? of interests?",
    re.IGNORECASE,
)
_DOI_RE = re.compile(r"10\.\d{4,9}/[^\s]+")
_YEAR_RE = re.compile(r"(?:©|\(c\)|copyright)\s*(?:©\s*)?((?:19|20)\d{2})\b", re.IGNORECASE)
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"}
)
_GLYPH_NAME_RE = re.compile(r"(?<!\S)/C\d{1,3}(?!\S)")  # pypdf's stand-in for an unmapped glyph (bullets)
_RULE_RE = re.compile(r"[\s.·…_\-–—=~*•]{3,}")  # dotted or drawn rules
_BULLET_RE = re.compile(r"[•●▪◦■]")
_DASH_ITEM_RE = re.compile(r"[-–*]\s")  # a list item only after a line that ended a sentence
_SENTENCE_END_RE = re.compile(r"[.!?:;][\"'”’)\]]*$")
_HYPHENATED_RE = re.compile(r"\b([^\W\d_]+-[^\W\d_]+)\b")
_TITLE_LABELS = {
    "research", "research article", "article", "original article", "review", "review article", "open access",
    "short report", "brief report", "letter", "editorial", "commentary", "case report", "methodology article",
}


def read(path: Path) -> Iterator[Document | ParseError]:
    """Yield the one Document of a readable PDF; raise ParseError when the file cannot be read as a whole."""
    yield read_document(path)


def read_document(path: Path) -> Document:
    """Read, clean and section one PDF; every failure (pypdf's included) becomes ParseError(path, reason)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = _open(path, data)
            raw_pages, font_title = _extract_pages(path, reader)
            metadata = _metadata(reader)
        except ParseError:
            raise
        except Exception as exc:  # pypdf raises many kinds on broken files; none may escape as a traceback
            raise ParseError(str(path), f"not a readable PDF: {_short(exc)}") from exc
    return _build_document(path, raw_pages, font_title, metadata)


def _open(path: Path, data: bytes) -> PdfReader:
    """Check that `data` is a whole PDF, open it, and decrypt it with the empty password if it is encrypted."""
    if b"%PDF-" not in data[:1024]:
        raise ParseError(str(path), "not a readable PDF: no %PDF header")
    if b"%%EOF" not in data[-4096:]:
        raise ParseError(str(path), "not a readable PDF: truncated (no %%EOF marker at the end)")
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # e.g. an AES file without the `cryptography` package
            raise ParseError(str(path), f"encrypted PDF (cannot decrypt: {_short(exc)})") from exc
        if not opened:
            raise ParseError(str(path), "encrypted PDF (password required)")
    return reader


def _extract_pages(path: Path, reader: PdfReader) -> tuple[list[str], str]:
    """The raw text of every page (empty for a page pypdf fails on) and the largest-font text of page 1."""
    pages: list[str] = []
    failures: list[Exception] = []
    font_title = ""
    for number, page in enumerate(reader.pages, start=1):
        try:
            try:
                normalise_spacing(page)
            except Exception:  # an odd content stream: read it as pypdf does
                pass
            if number == 1:
                text, font_title = _extract_first_page(page)
            else:
                text = page.extract_text() or ""
        except Exception as exc:
            failures.append(exc)
            text = ""
        pages.append(text)
    if not pages:
        raise ParseError(str(path), "not a readable PDF: no pages")
    if len(failures) == len(pages):
        raise ParseError(str(path), f"not a readable PDF: {_short(failures[0])}")
    return pages, font_title


def _extract_first_page(page: PageObject) -> tuple[str, str]:
    """Page 1's text, and the text set in its largest font that looks like a title (or "")."""
    fragments: list[tuple[float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        scale = (tm[2] ** 2 + tm[3] ** 2) ** 0.5 * (cm[2] ** 2 + cm[3] ** 2) ** 0.5
        fragments.append((round(size * scale, 1), text))

    text = page.extract_text(visitor_text=visit) or ""
    return text, _title_from_fonts(fragments)


def _title_from_fonts(fragments: list[tuple[float, str]]) -> str:
    """The first of the three largest font sizes whose text looks like a title, minus labels like "Research Article"."""
    amount: dict[float, int] = {}
    for size, text in fragments:
        amount[size] = amount.get(size, 0) + len(text.strip())
    sizes = sorted((size for size, chars in amount.items() if chars >= 10), reverse=True)[:3]
    for size in sizes:
        lines = "".join(text for s, text in fragments if abs(s - size) < 0.3).splitlines()
        kept = [_clean_line(line) for line in lines]
        kept = [line for line in kept if line and line.lower() not in _TITLE_LABELS]
        candidate = _join_title_lines(kept)
        if _looks_like_title(candidate):
            return candidate
    return ""


def _metadata(reader: PdfReader) -> dict[str, str]:
    """The document-information strings, plus the creation year under "year" when readable."""
    found: dict[str, str] = {}
    info = reader.metadata
    if not info:
        return found
    for key in ("/Title", "/Subject", "/Keywords", "/doi", "/DOI", "/Author"):
        value = info.get(key)
        if isinstance(value, str):
            found[key] = value
    try:
        created = info.creation_date
    except Exception:  # malformed date strings are common
        created = None
    if created is not None and 1900 <= created.year <= 2100:
        found["year"] = str(created.year)
    return found


def _build_document(path: Path, raw_pages: list[str], font_title: str, metadata: dict[str, str]) -> Document:
    """Clean the pages, cut the text into sections and fill in the metadata."""
    pages_lines = [_page_lines(raw) for raw in raw_pages]
    running = _running_keys(pages_lines)
    running_lines = [lines[i] for lines in pages_lines for i in _edges(lines) if _is_running(lines[i], running)]
    pages_lines = [_drop_running(lines, running) for lines in pages_lines]
    hyphenated = {m.lower() for lines in pages_lines for line in lines for m in _HYPHENATED_RE.findall(line)}
    text, sections = _assemble([_blocks(lines, hyphenated) for lines in pages_lines])
    if sum(ch.isalnum() for ch in text) < MIN_TEXT_CHARS:
        raise ParseError(str(path), "no extractable text (image-only or scanned PDF; OCR is not enabled)")
    doi = _find_doi(raw_pages, metadata, running_lines)
    title = _pick_title(metadata.get("/Title", ""), font_title, pages_lines[0])
    first_page = _page_lines(raw_pages[0])  # page 1 as printed, running lines kept: its header names the journal
    journal, journal_year = _find_journal(metadata, first_page[:12])
    return Document(
        id=f"doi:{doi.lower()}" if doi else f"file:{path.stem}",
        text=text,
        sections=sections,
        title=title,
        year=journal_year or _find_year(raw_pages[0], metadata),
        doi=doi,
        authors=_find_authors(metadata.get("/Author", ""), first_page[:30], title),
        journal=journal,
        source="pdf",
        origin=str(path),
    )


# --- cleaning ---------------------------------------------------------------------------------------------------


def _clean_line(line: str) -> str:
    """One line with ligatures expanded, control/format characters dropped and whitespace collapsed."""
    line = line.translate(_LIGATURES)
    kept = []
    for ch in line:
        category = unicodedata.category(ch)
        if category.startswith("Z") or ch == "\t":
            kept.append(" ")
        elif category in ("Cc", "Cf", "Co", "Cs"):
            continue
        else:
            kept.append(ch)
    line = _GLYPH_NAME_RE.sub("•", "".join(kept))
    return " ".join(line.split())


def _page_lines(raw: str) -> list[str]:
    """The page's lines, cleaned; blank lines kept as "" (they mark paragraph breaks), rules dropped."""
    lines = []
    for line in raw.splitlines():
        line = _clean_line(line)
        if line and _RULE_RE.fullmatch(line):
            continue
        lines.append(line)
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _key(line: str) -> str:
    """What a running header/footer line has in common across pages: lower case, digits masked."""
    return re.sub(r"\d+", "#", line.lower())


def _edges(lines: list[str]) -> list[int]:
    """Indexes of the first and last EDGE_LINES non-empty lines of a page."""
    filled = [i for i, line in enumerate(lines) if line]
    return sorted(set(filled[:EDGE_LINES] + filled[-EDGE_LINES:]))


def _running_keys(pages_lines: list[list[str]]) -> set[str]:
    """Keys of lines that sit at the top or bottom of at least max(2, 30%) of the pages."""
    if len(pages_lines) < 2:
        return set()
    seen: dict[str, int] = {}
    for lines in pages_lines:
        for key in {_key(lines[i]) for i in _edges(lines)}:
            seen[key] = seen.get(key, 0) + 1
    needed = max(2, -(-3 * len(pages_lines) // 10))
    return {key for key, pages in seen.items() if pages >= needed}


def _is_running(line: str, running: set[str]) -> bool:
    """True for a running line, or a long-enough start of one (page 1 often omits the "Page 1 of 10" tail)."""
    key = _key(line)
    return key in running or (len(key) >= 20 and any(other.startswith(key) for other in running))


def _drop_running(lines: list[str], running: set[str]) -> list[str]:
    """The page without its running header/footer lines (only at its top or bottom edge)."""
    drop = {i for i in _edges(lines) if _is_running(lines[i], running)}
    return [line for i, line in enumerate(lines) if i not in drop]


# --- paragraphs and headings ------------------------------------------------------------------------------------


def heading_name(line: str) -> str | None:
    """The section name if `line` is a recognised heading ("2. Methods", "METHODS", "Results:"), else None."""
    match = _HEADING_RE.fullmatch(line.strip())
    if match is None:
        return None
    name = " ".join(match.group("name").split())
    if name.isupper():
        return name.capitalize()
    if not name[0].isupper():
        return None  # "methods" in lower case is a line of running text
    return name


def _is_subheading(line: str, width: float) -> bool:
    """A short capitalised line without closing punctuation, like "Study approach, sampling and data analysis"."""
    return (
        len(line) < 0.6 * width
        and line[0].isupper()
        and not re.search(r"[.,;:\-–]$", line)
        and len(line.split()) <= 10
        and sum(ch.isdigit() for ch in line) <= 2
    )


def _join(left: str, right: str, hyphenated: set[str]) -> str:
    """Join two lines of one paragraph, undoing end-of-line hyphenation."""
    if left.endswith("-") and len(left) >= 2 and left[-2].isalnum() and right[:1].isalpha():
        head = re.search(r"([^\W\d_]+)-$", left)
        tail = re.match(r"[^\W\d_]+", right)
        if head and tail and head.group(1)[-1].islower() and right[0].islower():
            if f"{head.group(1)}-{tail.group(0)}".lower() in hyphenated:
                return left + right  # a real compound: "resource-limited"
            return left[:-1] + right  # "extra-" + "cellular"
        return left + right  # "CD63-" + "positive": keep the hyphen, no space
    if left.endswith(("–", "—")) and len(left) >= 2 and not left[-2].isspace():
        return left + right  # "1988–" + "1990", "needs—" + "restored"
    return f"{left} {right}"


def _blocks(lines: list[str], hyphenated: set[str]) -> list[tuple[str, str | None]]:
    """The page as paragraphs: (text, section name when the paragraph is a heading line, else None)."""
    lengths = [len(line) for line in lines if len(line) >= 20]
    width = statistics.median(lengths) if lengths else 60.0
    blocks: list[tuple[str, str | None]] = []
    current = ""
    sentence_ended = True  # the line before ended a sentence (or there was none)
    previous_short = False  # the line before stopped well short of the column width

    def flush() -> None:
        nonlocal current
        if current:
            blocks.append((current, None))
        current = ""

    for line in lines:
        if not line:
            flush()
            sentence_ended = True
            continue
        name = heading_name(line) if not current.endswith("-") else None
        if name is not None:
            flush()
            blocks.append((line.rstrip(":"), name))
            sentence_ended = True
            continue
        if sentence_ended and _is_subheading(line, width):
            flush()
            blocks.append((line, None))
            sentence_ended = True
            continue
        list_item = _BULLET_RE.match(line) or (sentence_ended and _DASH_ITEM_RE.match(line))
        if current and (list_item or (sentence_ended and previous_short)):
            flush()
        current = _join(current, line, hyphenated) if current else line
        sentence_ended = bool(_SENTENCE_END_RE.search(line))
        previous_short = len(line) < 0.8 * width
    flush()
    return blocks


def _assemble(pages_blocks: list[list[tuple[str, str | None]]]) -> tuple[str, tuple[Section, ...]]:
    """Join pages ("\\n\\n") and paragraphs ("\\n\\n") into one text, and cut it into trimmed sections."""
    parts: list[str] = []
    length = 0
    sections: list[Section] = []
    heading: str | None = None

    def close(name: str, start: int, end: int, page: int) -> None:
        if end > start:
            sections.append(Section(name, start, end, page, indexed=not _NOT_INDEXED_RE.fullmatch(name)))

    for page, blocks in enumerate(pages_blocks, start=1):
        if not blocks:
            continue
        if parts:
            parts.append("\n\n")
            length += 2
        name = heading or ("Front matter" if page == 1 else "Body")
        start = end = length
        for i, (block, block_heading) in enumerate(blocks):
            if i:
                parts.append("\n\n")
                length += 2
            if block_heading is not None:
                close(name, start, end, page)
                heading = name = block_heading
                start = length
            parts.append(block)
            length += len(block)
            end = length
        close(name, start, end, page)
    return "".join(parts), tuple(sections)


# --- metadata ---------------------------------------------------------------------------------------------------


def _looks_like_title(text: str) -> bool:
    """Not empty, not a file name or a producer's code ("Microsoft Word - x.doc", "ipg1300180a", "6489122 1..10")."""
    words = text.split()
    letters = sum(ch.isalpha() for ch in text)
    return (
        len(words) >= 3
        and 15 <= len(text) <= 400
        and letters >= 0.6 * len(text.replace(" ", ""))
        and not re.search(r"microsoft|untitled|\.(?:docx?|pdf|tex|indd|rtf|qxd)\b|www\.|https?:|@|©", text, re.I)
    )


def _join_title_lines(lines: list[str]) -> str:
    """Title lines into one string, undoing end-of-line hyphenation."""
    title = ""
    for line in lines:
        title = _join(title, line, set()) if title else line
    return title.strip()


def _pick_title(meta_title: str, font_title: str, first_page: list[str]) -> str:
    """Metadata title if real, else the largest-font text of page 1, else its first title-like line."""
    meta_title = _clean_line(meta_title)
    if _looks_like_title(meta_title):
        return meta_title
    if font_title:
        return font_title
    for line in first_page[:30]:
        if len(line.split()) >= 4 and _looks_like_title(line) and not re.search(r"doi|\d{4}", line, re.I):
            return line
    return ""




_NAME = r"[A-ZÀ-Ý][\w'’.\-]*(?:\s+(?:[A-ZÀ-Ý][\w'’.\-]*|van|von|de|der|da|del|di|le|la))*"
_MARKS = r"[\d*∗†‡§¶,\s]*"  # affiliation marks (and the comma) after a name
_AUTHOR_LINE = re.compile(rf"^{_NAME}{_MARKS}(?:(?:,|\band\b|&)?\s*{_NAME}{_MARKS})+$")
_NOT_NAMES = re.compile(r"\b(?:journal|university|department|institute|hospital|press|publishing|corporation|"
                        r"article|review|research|abstract|licen[cs]e|access|volume|copyright|received|editor|submitted|"
                        r"accepted|published|revised|correspond\w*|january|february|march|april|may|june|july|"
                        r"august|september|october|november|december)\b",
                        re.IGNORECASE)
_JOURNAL_LINE = re.compile(r"^([A-Z][A-Za-z&,.'’\- ]{3,90}?)\s*\(?((?:19|20)\d\d)\)?\s*[,;:]?\s*\d")


def _names(text: str) -> tuple[str, ...]:
    """Author names from a list: digits, asterisks and daggers (affiliation marks) removed, split on , ; and "and"."""
    text = re.sub(r"[\d*∗†‡§¶]+", " ", re.sub(r"\{?et al\.?\}?", "", text))
    parts = re.split(r"\s*(?:,|;|\band\b|&)\s*", text)
    names = tuple(" ".join(p.split()) for p in parts if len(p.split()) >= 2 and not _NOT_NAMES.search(p))
    return names[:50]


def _find_authors(meta_author: str, first_lines: list[str], title: str) -> tuple[str, ...]:
    """The byline of page 1 (the line of names after the title), else the metadata /Author when it names people
    (not a publisher such as "Cambridge Journals"); () when neither does."""
    title_words = set(title.lower().split())
    starts = [i for i, line in enumerate(first_lines) if len(set(line.lower().split()) & title_words) >= 3]
    after_title = first_lines[starts[0]:] if starts else []
    for line in after_title + first_lines:  # the byline follows the title; a sidebar may come first in the text
        clean = line.strip()
        if len(clean) < 8 or len(clean) > 400 or _NOT_NAMES.search(clean) or "@" in clean:
            continue
        if set(clean.lower().split()) <= title_words:
            continue  # a line of the title
        if _AUTHOR_LINE.match(clean):
            at = first_lines.index(line)
            for more in first_lines[at + 1:at + 3]:  # a byline that wraps onto the next lines
                if _AUTHOR_LINE.match(more.strip()) and not _NOT_NAMES.search(more):
                    clean += ", " + more.strip()
                else:
                    break
            names = _names(clean)
            if names and all(len(n) <= 60 for n in names):
                return names
    meta = _clean_line(meta_author)
    if meta and not _NOT_NAMES.search(meta) and not re.search(r"journals?|publish|press|\.com|inc\b", meta, re.I):
        return _names(meta)
    return ()


def _find_journal(metadata: dict[str, str], first_lines: list[str]) -> tuple[str, int | None]:
    """(journal, year) from a page-1 header like "Clinical Science (2014) 126, 305-313", else from the metadata
    /Subject when it reads "Journal … 2010 4:1" or is printed as a line of page 1; ("", None) when unknown."""
    for line in first_lines:
        m = _JOURNAL_LINE.match(line.strip())
        if m and len(m.group(1).split()) >= 2 and not _NOT_NAMES.search(m.group(1).replace("Journal", "")):
            return m.group(1).strip(" ,.;:"), int(m.group(2))
    subject = _clean_line(metadata.get("/Subject", ""))
    m = re.match(r"^(.{4,120}?)\s+((?:19|20)\d\d)\b", subject)
    if m and re.search(r"\d+\s*:\s*\d+|doi", subject[m.end():], re.I):
        return m.group(1).strip(" ,.;:"), int(m.group(2))
    if subject and any(_clean_line(line) == subject for line in first_lines):
        return subject, None
    return "", None


def _find_doi(raw_pages: list[str], metadata: dict[str, str], running_lines: list[str]) -> str:
    """The paper's DOI: metadata, page 1, a running header/footer, or a "Cite this article" block; "" if none."""
    places = [metadata.get(key, "") for key in ("/doi", "/DOI", "/Subject", "/Keywords", "/Title")]
    places.append(raw_pages[0])
    places.extend(running_lines)
    for place in places:
        match = _DOI_RE.search(place)
        if match and len(normalise_doi(match.group(0))) > 8:
            return normalise_doi(match.group(0))
    for page in raw_pages:  # BMC prints the DOI only next to "Cite this article as:" on the last page
        for cite in re.finditer(r"cite this article", page, re.IGNORECASE):
            near = [m for m in _DOI_RE.finditer(page, max(0, cite.start() - 200), cite.end() + 400)]
            if near:
                nearest = min(near, key=lambda m: min(abs(m.start() - cite.start()), abs(m.start() - cite.end())))
                return normalise_doi(nearest.group(0))
    return ""


def _find_year(first_page: str, metadata: dict[str, str]) -> int | None:
    """A "© 2014" / "Copyright 2014" year on page 1, else the metadata creation year."""
    match = _YEAR_RE.search(first_page)
    if match:
        return int(match.group(1))
    year = metadata.get("year")
    return int(year) if year else None


def _short(exc: BaseException) -> str:
    """A one-line, bounded description of an exception."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message if len(message) <= 120 else message[:117] + "..."
