"""Word-level text helpers shared by retrieval, answering, claim checking and evaluation: one tokenization.

Words (`WORD`: hyphenated and apostrophe compounds kept whole; `TERM`: also decimals like 3.5, for query terms),
their parts (`PART`: runs of letters and digits), the stopword list, content words, a light stem, the overlap of
a claim's (or question's) words with a passage, and near-duplicate sentences. Deliberately left out: sentence
splitting (build/chunk.py), FTS5 query syntax (ask/retrieve.py) and the tokenizers of the neural models.
"""

from __future__ import annotations

import re
import urllib.parse

WORD = re.compile(r"\w+(?:[-'’]\w+)*")
TERM = re.compile(r"\w+(?:[-.'’]\w+)*")
PART = re.compile(r"\w+")
STOPWORDS = frozenset(
    "a an and are as at be by can could did do does for from had has have how in into is it its of on or that the "
    "their there these this those to was were what when where which who whom why will with would about than then "
    "they them we our you your i me my not no yes also there been being between both each more most other some such "
    "only own same so too very just over under again further once here all any few nor".split()
)


def parts(text: str) -> list[str]:
    """The lower-cased runs of letters and digits of `text`, in order."""
    return PART.findall(text.lower())


def content_words(text: str, pattern: re.Pattern[str] = WORD) -> list[str]:
    """Lower-cased words of `text` that are not stopwords or single letters (digits stay), in order, no repeats."""
    out: list[str] = []
    for word in pattern.findall(text.lower()):
        if word not in STOPWORDS and word not in out and (len(word) > 1 or word.isdigit()):
            out.append(word)
    return out


def stem(word: str) -> str:
    """A light stem for overlap counting: tumour/tumor, cells/cell, and the first six letters."""
    word = word.lower().replace("our", "or")
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:6]


def overlap(claim: str, passage: str) -> float:
    """Share of the claim's content words present, stemmed, in `passage` (a hyphenated word counts when all its
    parts are)."""
    words = content_words(claim)
    if not words:
        return 0.0
    stems = {stem(w) for w in PART.findall(passage)} | {stem(w) for w in WORD.findall(passage)}
    found = sum(1 for w in words if stem(w) in stems or all(stem(p) in stems for p in PART.findall(w)))
    return found / len(words)


def term_overlap(terms: list[str], sentence: str) -> float:
    """Share of `terms` (already lower-cased) that occur as words of `sentence`, unstemmed (a hyphenated term counts
    when all its parts do)."""
    if not terms:
        return 0.0
    words = set(parts(sentence))
    return sum(1 for t in terms if t in words or all(p in words for p in PART.findall(t))) / len(terms)


def near_duplicate(a: str, b: str, threshold: float = 0.6) -> bool:
    """Whether two sentences share more than `threshold` of their words (Jaccard)."""
    sa, sb = set(parts(a)), set(parts(b))
    return bool(sa and sb) and len(sa & sb) / len(sa | sb) > threshold


_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_CLOSING = {")": "(", "]": "[", "}": "{"}


def normalise_doi(value: str) -> str:
    """A DOI as found in a field or in running text, bare: 'https://doi.org/10.1/x.' or 'doi:10.1/x' -> '10.1/x'.

    Drops a resolver prefix, percent-escapes, trailing punctuation and closing brackets that have no opening
    partner inside the DOI (a DOI in parentheses); keeps brackets that belong to it (10.1002/(SICI)...)."""
    doi = urllib.parse.unquote(_DOI_PREFIX.sub("", (value or "").strip()).strip())
    while doi:
        last = doi[-1]
        if last in ".,;:'\"”’>":
            doi = doi[:-1]
        elif last in _CLOSING and doi.count(_CLOSING[last]) < doi.count(last):
            doi = doi[:-1]
        else:
            break
    return doi
