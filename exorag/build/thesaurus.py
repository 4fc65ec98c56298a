"""EV-aware query expansion: curated synonym groups plus abbreviations mined from the corpus.

The curated groups live in `exorag/data/ev_thesaurus.json` (versioned data, shipped with the package): exosome /
extracellular vesicle / EV / sEV / microvesicle / ectosome, the EV markers and negative markers, isolation and
characterisation methods, and immunotherapy terms. A group is used when one of its terms occurs in the query
(as whole words, plural and tumour/tumor spellings included); its short forms that mean other things elsewhere
(TEX: exhausted T cells, Dex: dexamethasone, SEC, NTA, ...) count, and are searched, only when the query also
names a vesicle. A group's `unless` patterns switch it off: a question about the RNA exosome complex (EXOSC,
Rrp6, Dis3) is not expanded to vesicles.

Corpus abbreviations are mined at ingest with the Schwartz-Hearst rule ("long form (SHORT)": the short form's
letters appear in order in the preceding words, the first letter starting a word) and kept in the store; a query
short form written with capitals (e.g. "TDE") is expanded to its most frequent long forms, never the other way.

Expansions are returned per concept (Expansion: the phrases the query used, and their synonyms) for the lexical
side only; retrieve.py credits a synonym, at a lower weight, only in passages that lack the query's own word.
Deliberately left out: expansion of the dense query (MiniLM already embeds these synonyms close together) and any
ontology beyond this curated list (MeSH and UMLS are not available offline).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

THESAURUS_FILE = "ev_thesaurus.json"
VESICLE_GROUP = "ev"
MINER_VERSION = 1  # bump when mine_abbreviations changes: the store re-mines existing documents on open
MAX_LONG_FORMS = 2  # long forms searched per query short form
MIN_DOCS = 2  # a mined abbreviation is used once at least this many documents define it

_TOKEN = re.compile(r"[^\W_]+")  # as FTS5's unicode61 tokenizer splits words


def tokens(text: str) -> tuple[str, ...]:
    return tuple(t.lower() for t in _TOKEN.findall(text))


def _variants(term: str) -> set[tuple[str, ...]]:
    """Token sequences of a term: as written, plural of the last word, tumour/tumor spelled both ways."""
    base = tokens(term)
    if not base:
        return set()
    out = {base}
    last = base[-1]
    if last.isalpha() and len(last) > 2 and not last.endswith("s") and not last.endswith("al"):
        out.add(base[:-1] + (last + "s",))
    written = _TOKEN.findall(term)[-1]
    if written.isalpha() and written.isupper() and len(written) >= 2:
        out.add(base[:-1] + (last + "s",))  # TDE -> TDEs, EV -> EVs
    for seq in list(out):
        for a, b in (("tumor", "tumour"), ("tumour", "tumor")):
            if a in seq:
                out.add(tuple(b if t == a else t for t in seq))
    return out


@dataclass(frozen=True)
class Group:
    id: str
    label: str
    terms: tuple[tuple[str, ...], ...]  # token sequences, variants included
    ambiguous: tuple[tuple[str, ...], ...]
    unless: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Thesaurus:
    version: int
    groups: tuple[Group, ...]


def _group(raw: dict) -> Group:  # type: ignore[type-arg]
    def expand(words: Iterable[str]) -> tuple[tuple[str, ...], ...]:
        seen: dict[tuple[str, ...], None] = {}
        for word in words:
            for variant in sorted(_variants(word)):
                seen.setdefault(variant, None)
        return tuple(seen)

    return Group(id=raw["id"], label=raw.get("label", raw["id"]), terms=expand(raw.get("terms", ())),
                 ambiguous=expand(raw.get("ambiguous", ())),
                 unless=tuple(re.compile(p) for p in raw.get("unless", ())))


@lru_cache(maxsize=1)
def load() -> Thesaurus:
    """The curated thesaurus shipped in the package (parsed once)."""
    data = json.loads(resources.files("exorag.data").joinpath(THESAURUS_FILE).read_text(encoding="utf-8"))
    return Thesaurus(version=int(data["version"]), groups=tuple(_group(g) for g in data["groups"]))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _phrase(seq: tuple[str, ...]) -> str:
    return " ".join(seq)


@dataclass(frozen=True)
class Expansion:
    """Phrases to search for one concept of the query: `synonyms` stand in for the `present` phrases.

    Retrieval credits a synonym only in passages that lack every `present` phrase, so a passage that already
    matches the user's own word gains nothing more (synonyms substitute, they do not add up).
    """

    concept: str  # a thesaurus group id, or "abbr:<short form>"
    present: tuple[str, ...]  # the concept's phrases found in the query (lower-case tokens joined by spaces)
    synonyms: tuple[str, ...]


def curated_expansions(query: str, thesaurus: Thesaurus | None = None) -> list[Expansion]:
    """One Expansion per thesaurus group the query names (see the module docstring for ambiguous short forms)."""
    thesaurus = thesaurus or load()
    q = tokens(query)
    low = query.lower()
    groups = {g.id: g for g in thesaurus.groups}
    vesicle = groups.get(VESICLE_GROUP)
    context = bool(vesicle) and any(_contains(q, t) for t in vesicle.terms) \
        and not any(p.search(low) for p in vesicle.unless)
    out: list[Expansion] = []
    for group in thesaurus.groups:
        if any(p.search(low) for p in group.unless):
            continue
        usable = group.terms + (group.ambiguous if context else ())
        present = [seq for seq in usable if _contains(q, seq)]
        if not present:
            continue
        synonyms = [seq for seq in usable if seq not in present]
        if synonyms:
            out.append(Expansion(group.id, tuple(_phrase(p) for p in present), tuple(_phrase(p) for p in synonyms)))
    return out


_SHORT = re.compile(r"\(([A-Za-z][A-Za-z0-9\-]{1,9})\)")


def _short_ok(short: str) -> bool:
    letters = [c for c in short if c.isalpha()]
    return len(letters) >= 2 and sum(c.isupper() for c in short) >= 2 and " " not in short


def _long_form(short: str, before: str) -> str | None:
    """Schwartz & Hearst (2003): the shortest tail of `before` whose characters spell `short` in order."""
    words = before.split()
    window = words[-min(len(short) + 5, len(short) * 2):]
    candidate = " ".join(window)
    s, c = len(short) - 1, len(candidate) - 1
    letters = short.lower()
    text = candidate.lower()
    while s >= 0:
        ch = letters[s]
        if not ch.isalnum():
            s -= 1
            continue
        while c >= 0 and (text[c] != ch or (s == 0 and c > 0 and text[c - 1].isalnum())):
            c -= 1
        if c < 0:
            return None
        s -= 1
        c -= 1
    long_form = candidate[c + 1 :].strip(" ,;:-")
    if not long_form or len(long_form) <= len(short) or short.lower() in long_form.lower().split():
        return None
    if len(long_form.split()) > len(short) + 5 or not long_form[0].isalnum():
        return None
    return long_form


def normalise_short(short: str) -> str:
    """'TDEs' -> 'tde', 'EVs' -> 'ev': the lookup key of a short form."""
    if len(short) > 2 and short.endswith("s") and short[:-1].isupper():
        short = short[:-1]
    return short.lower()


def mine_abbreviations(text: str) -> list[tuple[str, str]]:
    """(short form key, long form lower-cased) for each "long form (SHORT)" definition in `text`, first per short."""
    found: dict[str, str] = {}
    for match in _SHORT.finditer(text):
        short = match.group(1)
        if not _short_ok(short):
            continue
        start = max(0, text.rfind(".", 0, match.start()) + 1, text.rfind("(", 0, match.start()) + 1)
        long_form = _long_form(short, text[start : match.start()])
        if long_form:
            found.setdefault(normalise_short(short), " ".join(long_form.lower().split()))
    return list(found.items())


def abbreviation_expansions(
    query: str, lookup: Callable[[list[str]], dict[str, list[tuple[str, int]]]], skip: Iterable[str] = ()
) -> list[Expansion]:
    """Long forms for the query's capitalised short forms, from `lookup(keys) -> {key: [(long form, docs)]}`.

    Short forms whose phrase is in `skip` (already handled by the curated thesaurus) are left alone.
    """
    shorts = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", query) if _short_ok(w)]
    if not shorts:
        return []
    skipped = set(skip)
    keys = [k for k in dict.fromkeys(normalise_short(s) for s in shorts) if k not in skipped]
    found = lookup(keys) if keys else {}
    q = tokens(query)
    out: list[Expansion] = []
    for key in keys:
        forms = [(lf, n) for lf, n in found.get(key, []) if n >= MIN_DOCS]
        longs = [tokens(lf) for lf, _ in sorted(forms, key=lambda f: (-f[1], f[0]))[:MAX_LONG_FORMS]]
        longs = [seq for seq in longs if seq and not _contains(q, seq)]
        if longs:
            present = tuple(dict.fromkeys(w.lower() for w in shorts if normalise_short(w) == key))
            out.append(Expansion(f"abbr:{key}", present, tuple(_phrase(seq) for seq in longs)))
    return out
