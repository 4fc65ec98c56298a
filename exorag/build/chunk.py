"""Sentences and chunks, as character spans of a document's text. Pure functions.

`split_sentences` finds sentence boundaries with a rule-based splitter tuned for biomedical prose (it does not
split after "et al.", "Fig.", "e.g.", initials, decimals, or inside brackets). `chunk_document` packs
consecutive sentences of one section into chunks that fit a token budget, measured with the embedding model's
own tokenizer (passed in as `count_tokens`); chunks never cross a section or page. A sentence longer than the
budget is cut at word boundaries. Deliberately left out: overlap between chunks, and language detection.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from exorag.types import Chunk, Document

_ABBREVIATIONS = {
    "al", "fig", "figs", "e.g", "i.e", "eg", "ie", "vs", "cf", "ca", "approx", "no", "nos", "dr", "mr", "mrs",
    "ms", "prof", "st", "eq", "eqs", "ref", "refs", "tab", "suppl", "vol", "pp", "resp", "etc", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "sp", "spp", "var", "inc", "ltd",
    "co", "corp", "dept", "univ", "min", "max", "mol", "wt", "conc", "u.s", "u.k", "n.s",
}
# A boundary candidate: terminal punctuation, optional closing quotes/brackets, whitespace, then what may start
# a sentence (capital, digit, opening bracket or quote, Greek letter).
_BOUNDARY = re.compile(r"([.!?])[\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9\u0370-\u03ff])")
_PARAGRAPH = re.compile(r"\n\s*\n")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the '.' at `dot` ends an abbreviation, an initial or a number rather than a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "([":
        start -= 1
    word = text[start:dot].lower()
    if not word:
        return False
    if word in _ABBREVIATIONS or word.rstrip(".") in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return True
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):  # "e.g", "u.s.a"
        return True
    return False


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans `(s, e)` of `text[start:end]`, in absolute offsets, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for p_start, p_end in _paragraphs(text, start, end):
        cursor = p_start
        depth_text = text[p_start:p_end]
        depth = _bracket_depths(depth_text)  # O(1) bracket balance of any segment: no rescan per candidate
        for match in _BOUNDARY.finditer(depth_text):
            dot = p_start + match.start(1)
            if text[dot] == "." and _is_abbreviation(text, dot):
                continue
            a, b = cursor - p_start, dot - p_start
            if depth[0][b] - depth[0][a] > 0 or depth[1][b] - depth[1][a] > 0:
                continue  # inside an open bracket: "(p < 0.05. See ...)" is not a boundary
            boundary = p_start + match.start(2)
            _append_trimmed(spans, text, cursor, boundary)
            cursor = p_start + match.end(2)
        _append_trimmed(spans, text, cursor, p_end)
    return spans


def _bracket_depths(text: str) -> tuple[list[int], list[int]]:
    """Prefix sums over `text` of "(" minus ")" and of "[" minus "]": the balance of text[a:b] is p[b] - p[a]."""
    round_, square = [0], [0]
    r = q = 0
    for ch in text:
        if ch == "(":
            r += 1
        elif ch == ")":
            r -= 1
        elif ch == "[":
            q += 1
        elif ch == "]":
            q -= 1
        round_.append(r)
        square.append(q)
    return round_, square


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out, cursor = [], start
    for match in _PARAGRAPH.finditer(text, start, end):
        out.append((cursor, match.start()))
        cursor = match.end()
    out.append((cursor, end))
    return out


def _append_trimmed(spans: list[tuple[int, int]], text: str, s: int, e: int) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))


def _cut_long(text: str, s: int, e: int, count_tokens: Callable[[str], int], max_tokens: int) -> list[tuple[int, int]]:
    """Cut one over-long span at word boundaries into pieces within the budget: each piece is the longest run of
    words from where the last one ended whose tokens fit (a word over the budget alone is a piece of its own).
    The end of each piece is found by galloping then bisecting over the word count (token counts grow with the
    words), so a 100,000-character span costs O(pieces · log words) tokenizer calls, not one per word per piece."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[s:e])]

    def fits(i: int, j: int) -> bool:  # words i..j (inclusive) within the budget
        return count_tokens(text[s + words[i][0] : s + words[j][1]]) <= max_tokens

    pieces: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        good, step = i, 1  # words[i..good] fit (or good == i); find the first j that does not
        while good + step < len(words) and fits(i, good + step):
            good += step
            step *= 2
        bad = min(good + step, len(words))  # words[i..bad] do not fit, or bad is past the end
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(i, mid):
                good = mid
            else:
                bad = mid
        pieces.append((s + words[i][0], s + words[good][1]))
        i = good + 1
    return pieces


def chunk_document(
    doc: Document, count_tokens: Callable[[str], int], max_tokens: int = 200
) -> list[Chunk]:
    """Pack each indexed section's sentences into chunks of at most `max_tokens` tokens."""
    chunks: list[Chunk] = []
    text = doc.text
    for section in doc.sections:
        if not section.indexed:
            continue
        units: list[tuple[int, int, int]] = []  # (start, end, tokens)
        for s, e in split_sentences(text, section.start, section.end):
            n = count_tokens(text[s:e])
            if n <= max_tokens:
                units.append((s, e, n))
            else:
                units.extend((a, b, count_tokens(text[a:b])) for a, b in _cut_long(text, s, e, count_tokens, max_tokens))
        group: list[tuple[int, int, int]] = []
        for unit in units + [None]:  # type: ignore[list-item]
            if unit is not None and (not group or sum(u[2] for u in group) + unit[2] <= max_tokens):
                group.append(unit)
                continue
            if group:
                s, e = group[0][0], group[-1][1]
                chunks.append(
                    Chunk(doc_id=doc.id, ordinal=len(chunks), text=text[s:e], section=section.heading,
                          page=section.page, char_start=s, char_end=e)
                )
            group = [unit] if unit is not None else []
    return chunks
