"""BibTeX reader (`.bib`): entries with abstracts, e.g. exported from Zotero, JabRef or a journal site.

A small hand-written scanner: `@type{key, field = {value}, field = "value", field = 2019, field = macro # {x}}`
(or round brackets), values with nested braces, `@string` macros (and the month names), `@comment` and
`@preamble` skipped. Fields read: title, author ("A and B", "Last, First" -> "Last F"), year (or biblatex
`date`), journal (or `journaltitle` / `booktitle`), abstract, doi, pmid, pmcid, keywords (kept in the record,
not indexed). LaTeX is turned into text best-effort: accents (`{\\"u}`, `\\'{e}`, `\\c{c}`) become the
accented letter, `\\ss`, `\\o`, `\\ae`... their letters, `\\textit{x}`-like commands their argument, `--` a dash,
remaining braces dropped. An entry without an abstract yields a ParseError naming its key ("no abstract"); a
malformed entry yields one naming its line, and reading goes on with the next `@`.
Deliberately left out: crossref inheritance, name parts beyond "von Last, Jr, First", and math mode.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ParseError
from ..types import Document
from .jsonl import record_to_document
from .ris import clean_doi, initials_name, text_file

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


class _Scanner:
    """Reads one entry's body from `pos` in `text`; raises ValueError with a reason on malformed input."""

    def __init__(self, text: str, pos: int, macros: dict[str, str]) -> None:
        self.text, self.pos, self.macros = text, pos, macros

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self) -> str:
        self.skip_space()
        match = re.compile(r"[^\s=,{}()\"#]+").match(self.text, self.pos)
        if not match:
            raise ValueError(f"expected a name at {self.text[self.pos:self.pos + 20]!r}")
        self.pos = match.end()
        return match.group(0)

    def braced(self) -> str:
        depth, start = 0, self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return self.text[start + 1 : self.pos - 1]
            self.pos += 1
        raise ValueError("unbalanced braces")

    def quoted(self) -> str:
        depth, start = 0, self.pos + 1
        self.pos += 1
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == '"' and depth == 0:
                self.pos += 1
                return self.text[start : self.pos - 1]
            self.pos += 1
        raise ValueError("unterminated quoted value")

    def value(self) -> str:
        parts = []
        while True:
            ch = self.peek()
            if ch == "{":
                parts.append(self.braced())
            elif ch == '"':
                parts.append(self.quoted())
            elif ch and ch not in ",})":
                word = self.name()
                parts.append(word if word.isdigit() else self.macros.get(word.lower(), word))
            else:
                raise ValueError("missing value")
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
    doi = clean_doi(get("doi"))
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
    """(line, type, key, fields) per entry, or (line, reason) for a malformed one."""
    macros = dict(MONTHS)
    pos = 0
    while True:
        at = text.find("@", pos)
        if at < 0:
            return
        line = text.count("\n", 0, at) + 1
        match = re.compile(r"@\s*([A-Za-z]+)\s*([{(])").match(text, at)
        if not match:
            pos = at + 1
            continue
        kind, opener = match.group(1).lower(), match.group(2)
        closer = "}" if opener == "{" else ")"
        scan = _Scanner(text, match.end(), macros)
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
                macros[name] = scan.value()
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
                fields[field] = scan.value()
            pos = scan.pos
            yield line, kind, key, fields
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
            yield exc
