"""BibTeX reader (`.bib`): entries with abstracts, e.g. exported from Zotero, JabRef or a journal site.

A small hand-written scanner: `@type{key, field = {value}, field = "value", field = 2019, field = macro # {x}}`
(or round brackets), values with nested braces, `@string` macros (and the month names), `@comment` and
`@preamble` skipped. Fields read: title, author ("A and B", "Last, First" -> "Last F"), year (or biblatex
`date`), journal (or `journaltitle` / `booktitle`), abstract, doi, pmid, pmcid, keywords (kept in the record,
not indexed). LaTeX is turned into text best-effort: accents (`{\\"u}`, `\\'{e}`, `\\c{c}`) become the
accented letter, `\\ss`, `\\o`, `\\ae`... their letters, `\\textit{x}`-like commands their argument, `--` a dash,
remaining braces dropped. An entry without an abstract yields a ParseError naming its key ("no abstract"); a
malformed entry yields one naming its line, and reading goes on with the next `@`.
Hostile input: a field may hold at most MAX_FIELD_CHARS after `@string` expansion, and a file's expansions at most
MAX_EXPANDED_CHARS in all (a chain of macros each doubling the last, `a2 = a1 # a1`, would otherwise make a
multi-MB title from a few hundred bytes); a `@string` over the limit is reported and left poisoned, so each entry
using it fails by name, and the rest of the file goes on. The scanner is linear in the file: brace pairs are found
in one pass up front (an unbalanced `{` is known to be unclosed without rescanning the rest of the file for each
malformed entry), quoted values jump over brace groups with a regex, and line numbers are counted incrementally.
Deliberately left out: crossref inheritance, name parts beyond "von Last, Jr, First", and math mode.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exorag.errors import ParseError
from exorag.types import Document
from exorag.build.sources.jsonl import record_to_document
from exorag.build.sources.ris import initials_name, text_file
from exorag.text import normalise_doi

MONTHS = {m: m.capitalize() for m in "jan feb mar apr may jun jul aug sep oct nov dec".split()}
_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304", ".": "\u0307",
            "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328", "r": "\u030a", "d": "\u0323"}
_LETTERS = {"ss": "ß", "o": "ø", "O": "Ø", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ",
            "l": "ł", "L": "Ł", "i": "ı", "j": "ȷ"}
_SYMBOL_ACCENT = re.compile(r"""\\(["'`^~=.])\s*(?:\{\s*(\\[A-Za-z]+|[A-Za-z])\s*\}|(\\[A-Za-z]+|[A-Za-z]))""")
_WORD_ACCENT = re.compile(r"\\([uvHckrd])(?:\s*\{\s*(\\[A-Za-z]+|[A-Za-z])\s*\}|\s+([A-Za-z]))")
_MATH = re.compile(r"\$([^$]*)\$")
_SYMBOLS = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "kappa": "κ", "lambda": "λ",
            "mu": "μ", "pi": "π", "sigma": "σ", "tau": "τ", "omega": "ω", "Delta": "Δ", "pm": "±", "times": "×",
            "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "textpm": "±", "textmu": "μ", "textdegree": "°"}
_SYMBOL = re.compile(r"\\(" + "|".join(sorted(_SYMBOLS, key=len, reverse=True)) + r")(?![A-Za-z])\s?")
_LETTER = re.compile(r"\\(ss|aa|AA|ae|AE|oe|OE|o|O|l|L|i|j)(?![A-Za-z])\s?")
_COMMAND_ARG = re.compile(r"\\[A-Za-z]+\*?\s*\{([^{}]*)\}")
_ESCAPED = re.compile(r"\\([&%$#_{}])")
_NAME = re.compile(r"[^\s=,{}()\"#]+")
_SPACE = re.compile(r"\s*")
_ENTRY = re.compile(r"@\s*([A-Za-z]+)\s*([{(])")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape (backslash and the next character) or a brace
_QUOTE_TOKEN = re.compile(r'\\.|["{}]', re.DOTALL)
MAX_FIELD_CHARS = 100_000  # a field's value after @string expansion
MAX_EXPANDED_CHARS = 5_000_000  # characters substituted from @string macros in one file, all fields together


def _accented(mark: str, base: str) -> str:
    if base.startswith("\\"):  # \'{\i} is an accented dotless i: í; \'{\o} is ǿ
        base = base[1:] if base[1:] in ("i", "j") else _LETTERS.get(base[1:], base[1:])
    return unicodedata.normalize("NFC", base + _ACCENTS[mark])


def latex_to_text(value: str) -> str:
    """Best-effort plain text of a BibTeX field value."""
    text = value.replace("\\$", "\x01")  # an escaped dollar is not math
    text = _MATH.sub(lambda m: re.sub(r"[\^_]", "", m.group(1)), text)  # $^+$ -> +, $\alpha$ -> \alpha
    text = _SYMBOL.sub(lambda m: _SYMBOLS[m.group(1)], text)
    text = _SYMBOL_ACCENT.sub(lambda m: _accented(m.group(1), m.group(2) or m.group(3)), text)
    text = _WORD_ACCENT.sub(lambda m: _accented(m.group(1), m.group(2) or m.group(3)), text)
    text = _LETTER.sub(lambda m: _LETTERS[m.group(1)], text)
    for _ in range(3):  # \textit{\textbf{x}}
        text = _COMMAND_ARG.sub(r"\1", text)
    text = text.replace("---", "\u2014").replace("--", "\u2013").replace("~", " ").replace("\\\\", " ")
    text = _ESCAPED.sub(lambda m: "\x00" + m.group(1), text)  # keep escaped braces through the brace removal
    text = text.replace("{", "").replace("}", "").replace("$", "").replace("\x00", "").replace("\x01", "$")
    text = re.sub(r"\\[A-Za-z]+\s?", "", text)  # any command left
    return " ".join(text.split())


class TooLong(ValueError):
    """A value over MAX_FIELD_CHARS after @string expansion (or using a @string that was), or the file's expansion
    budget MAX_EXPANDED_CHARS spent."""


class _Source:
    """The file's text with its brace pairs, found in one pass (escapes skipped as the scanner skips them), so that
    the end of a brace group, or the fact that it never closes, costs a binary search instead of a scan to the end
    of the file for every malformed entry (which made 30,000 unbalanced entries quadratic)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.opens, self.closes, stack = array("q"), array("q"), array("q")
        for match in _BRACE_TOKEN.finditer(text):
            if match.group() == "{":
                stack.append(len(self.opens))
                self.opens.append(match.start())
                self.closes.append(-1)
            elif match.group() == "}" and stack:
                self.closes[stack.pop()] = match.start()

    def close_of(self, pos: int) -> int:
        """Where the `}` closing the `{` at `pos` is; -1 when it is never closed."""
        i = bisect_left(self.opens, pos)
        if i < len(self.opens) and self.opens[i] == pos:
            return self.closes[i]
        # Not a brace the pass saw as one (it follows a backslash): scan from here, as the pass would have.
        depth = 0
        for match in _BRACE_TOKEN.finditer(self.text, pos):
            if match.group() == "{":
                depth += 1
            elif match.group() == "}":
                depth -= 1
                if depth == 0:
                    return match.start()
        return -1


class _Macros:
    """`@string` macros (and the month names), the ones over the limit, and the characters expanded so far."""

    def __init__(self) -> None:
        self.values: dict[str, str] = dict(MONTHS)
        self.too_long: set[str] = set()
        self.expanded = 0

    def expand(self, word: str) -> str:
        key = word.lower()
        if key in self.too_long:
            raise TooLong(f"uses @string {word!r}, which is over the limit of {MAX_FIELD_CHARS:,} characters")
        value = self.values.get(key)
        if value is None:
            return word
        self.expanded += len(value)
        if self.expanded > MAX_EXPANDED_CHARS:
            raise TooLong(f"uses @string {word!r} after the file's @string expansions passed "
                          f"{MAX_EXPANDED_CHARS:,} characters in all")
        return value


class _Scanner:
    """Reads one entry's body from `pos` in `source.text`; raises ValueError with a reason on malformed input."""

    def __init__(self, source: _Source, pos: int, macros: _Macros) -> None:
        self.source, self.text, self.pos, self.macros = source, source.text, pos, macros

    def skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self) -> str:
        self.skip_space()
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise ValueError(f"expected a name at {self.text[self.pos:self.pos + 20]!r}")
        self.pos = match.end()
        return match.group(0)

    def braced(self) -> str:
        start = self.pos
        end = self.source.close_of(start)
        if end < 0:
            raise ValueError("unbalanced braces")
        self.pos = end + 1
        return self.text[start + 1 : end]

    def quoted(self) -> str:
        """A "value": ends at the first `"` outside braces; a `}` outside braces (the entry's end) or a brace group
        that never closes means it is unterminated."""
        start = pos = self.pos + 1
        while True:
            match = _QUOTE_TOKEN.search(self.text, pos)
            if match is None or match.group() == "}":
                raise ValueError("unterminated quoted value")
            if match.group() == '"':
                self.pos = match.end()
                return self.text[start : match.start()]
            if match.group() == "{":
                end = self.source.close_of(match.start())
                if end < 0:
                    raise ValueError("unterminated quoted value")
                pos = end + 1
            else:  # an escape such as \" (an umlaut)
                pos = match.end()

    def value(self) -> str:
        parts, size = [], 0
        while True:
            ch = self.peek()
            if ch == "{":
                part = self.braced()
            elif ch == '"':
                part = self.quoted()
            elif ch and ch not in ",})":
                word = self.name()
                part = word if word.isdigit() else self.macros.expand(word)
            else:
                raise ValueError("missing value")
            size += len(part)
            if size > MAX_FIELD_CHARS:
                raise TooLong(f"is over the limit of {MAX_FIELD_CHARS:,} characters (@string macros expanded)")
            parts.append(part)
            if self.peek() != "#":
                return "".join(parts)
            self.pos += 1


def _split_authors(value: str) -> list[str]:
    """Split on ' and ' outside braces; the names stay LaTeX."""
    names, depth, current = [], 0, []
    for token in re.split(r"(\{|\}|\s+and\s+)", value):
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+and\s+", token or ""):
            names.append("".join(current))
            current = []
        elif token:
            current.append(token)
    names.append("".join(current))
    return [n.strip() for n in names if n.strip()]


def _short_name(latex: str) -> str:
    """'Müller, Anna' -> 'Müller A'; 'Anna van der Berg' -> 'van der Berg A'; '{EV-TRACK Consortium}' as it is."""
    name = latex_to_text(latex)
    if re.fullmatch(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", latex):  # wholly braced: a corporate name
        return name
    if "," in name:
        return initials_name(name)
    words = name.split()
    if len(words) < 2:
        return name
    last_start = len(words) - 1
    while last_start > 1 and words[last_start - 1][0].islower():
        last_start -= 1
    return initials_name(" ".join(words[last_start:]) + ", " + " ".join(words[:last_start]))


def to_record(key: str, fields: dict[str, str], path: Path) -> dict[str, Any]:
    def get(*names: str) -> str:
        for name in names:
            if fields.get(name, "").strip():
                return latex_to_text(fields[name])
        return ""

    pmid = get("pmid")
    pmcid = get("pmcid").upper()
    doi = normalise_doi(get("doi"))
    record: dict[str, Any] = {
        "title": get("title"),
        "abstract": get("abstract"),
        "authors": [_short_name(a) for a in _split_authors(fields.get("author", ""))],
        "year": get("year", "date"),
        "journal": get("journal", "journaltitle", "booktitle"),
        "doi": doi,
        "pmid": pmid if pmid.isdigit() else "",
        "pmcid": pmcid if re.fullmatch(r"PMC\d+", pmcid) else "",
        "keywords": [k.strip() for k in re.split(r"[;,]", get("keywords")) if k.strip()],
        "source": "bibtex",
    }
    if not record["pmid"] and not doi:
        record["id"] = f"{path.stem}:{key}"
    return record


def _entries(text: str) -> Iterator[tuple[int, str, str, dict[str, str]] | tuple[int, str]]:
    """(line, type, key, fields) per entry, or (line, reason) for a malformed one (or one over the size limits)."""
    source, macros = _Source(text), _Macros()
    pos, line, counted = 0, 1, 0
    while True:
        at = text.find("@", pos)
        if at < 0:
            return
        line += text.count("\n", counted, at)  # `at` only grows: counting from the last one keeps this linear
        counted = at
        match = _ENTRY.match(text, at)
        if not match:
            pos = at + 1
            continue
        kind, opener = match.group(1).lower(), match.group(2)
        closer = "}" if opener == "{" else ")"
        scan = _Scanner(source, match.end(), macros)
        name = key = None
        try:
            if kind in ("comment", "preamble"):
                scan.pos = match.end() - 1
                if opener == "{":
                    scan.braced()
                pos = max(scan.pos, match.end())
                continue
            if kind == "string":
                name = scan.name().lower()
                if scan.peek() != "=":
                    raise ValueError("expected '=' in @string")
                scan.pos += 1
                macros.too_long.discard(name)
                macros.values[name] = scan.value()
                pos = scan.pos
                continue
            key = scan.name()
            fields: dict[str, str] = {}
            while True:
                ch = scan.peek()
                if ch == ",":
                    scan.pos += 1
                    continue
                if ch == closer:
                    scan.pos += 1
                    break
                if not ch:
                    raise ValueError("entry not closed")
                field = scan.name().lower()
                if scan.peek() != "=":
                    raise ValueError(f"expected '=' after field {field!r}")
                scan.pos += 1
                try:
                    fields[field] = scan.value()
                except TooLong as exc:
                    raise TooLong(f"field {field!r} {exc}") from None
            pos = scan.pos
            yield line, kind, key, fields
        except TooLong as exc:
            if kind == "string" and name is not None:
                macros.values.pop(name, None)
                macros.too_long.add(name)  # entries using it fail by name instead of reading the bare word
                yield line, f"@string {name!r} {exc}; entries using it are skipped"
            else:
                yield line, f"entry {key!r}: {exc}; entry skipped"
            pos = match.end()
        except ValueError as exc:
            yield line, f"malformed @{kind} entry: {exc}"
            pos = match.end()


def read(path: Path) -> Iterator[Document | ParseError]:
    text = text_file(path)
    for item in _entries(text):
        if len(item) == 2:
            yield ParseError(str(path), item[1], item[0])
            continue
        line, _, key, fields = item
        record = to_record(key, fields, path)
        if not record["abstract"]:
            yield ParseError(str(path), f"no abstract: entry {key!r}", line)
            continue
        try:
            yield record_to_document(record, path, line)
        except ParseError as exc:
            yield ParseError(exc.path, f"entry {key!r}: {exc.reason}", exc.line)
