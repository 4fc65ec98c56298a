"""Extractive answers: the sentences of the retrieved passages that the judge says answer the question, quoted
verbatim, each followed by `[n]`; or an abstention.

Every sentence of every retrieved chunk is a candidate, less those that cannot be an answer whatever they say
(`is_quotable`: fragments, front matter such as copyright lines, e-mail addresses and mastheads, bullet or table
blobs). Candidates are pre-ranked by the share of the question's content words they hold and their passage's
retrieval score (`prefilter`), the best JUDGED of them are read by the judge (exorag/ask/judge.py) together with the question, and only
sentences with P(answers) >= judge.ANSWERS are kept, ranked by it (framing sentences, "this review focuses on...",
lose META_PENALTY), with diversity (no near-duplicates, at most `per_doc` per paper). The strongest leads; the rest
follow grouped by paper. The answer abstains when no sentence is judged to answer, or when the question names
specific things (a gene, a drug, an acronym, a rare word: `specific_terms`) of which no answering sentence or its
paper's title mentions any; when only some are missing, the answer says which (`Answer.missing`, `Answer.note`).
Yes/no questions also get each paper's stance from the judge and a consensus count (`Answer.consensus`).
Each Citation records the document and the absolute character offsets of its quote, so
`document.text[char_start:char_end] == quote` always holds.
Deliberately left out: generative answers (generate.py) and answers assembled across sentences.
"""

from __future__ import annotations

import re
from functools import lru_cache

from exorag.ask import judge as judges
from exorag.build import thesaurus
from exorag.build.chunk import split_sentences
from exorag.index.index import Index
from exorag.output.render import consensus_line
from exorag.ask.retrieve import normalize_query, query_terms, search
from exorag.text import near_duplicate, term_overlap
from exorag.types import Answer, Citation, Filters, Hit

JUDGED = 24  # candidates (see `prefilter`) that the judge reads per question
MIN_SENTENCE_CHARS = 30
RARE_SHARE = 0.002  # a question word found in fewer than this share of the index's chunks is a specific term


# Sentences about the paper rather than about the world ("this review focuses on...", "here we discuss...",
# "X has attracted increasing attention") answer no question; they still count for support (abstention), but lose
# META_PENALTY when sentences are ranked, so a finding leads the answer instead of a paper's framing.
META_PENALTY = 0.1
_META = re.compile(
    r"\b(?:(?:this|the present|the current|our) (?:mini-?)?(?:review|article|chapter|paper|overview|perspective|"
    r"commentary|editorial)s?\b"
    r"|in this (?:review|article|chapter|paper|overview|study, we|work, we)"
    r"|(?:here|herein|below)[, ]+we (?:review|discuss|summari[sz]e|describe|highlight|outline|present|provide|focus"
    r"|propose|report)"
    r"|we (?:will )?(?:review|discuss|summari[sz]e|highlight|outline) (?:the|recent|current|here)"
    r"|(?:will|shall) (?:also )?be (?:discussed|reviewed|summari[sz]ed|presented|described|highlighted)"
    r"|(?:is|are) (?:also )?(?:discussed|reviewed|summari[sz]ed|highlighted) (?:here|in this)"
    r"|(?:ha(?:s|ve)|is|are) (?:become|attracted|gained|received|drawn|been gaining|gaining|been attracting)"
    r"[^.;]{0,40}\b(?:attention|interest|focus|momentum)"
    r"|to shed (?:some )?light (?:on|into)"
    r"|the (?:aim|purpose|goal|objective) of this (?:review|article|chapter|paper|study))",
    re.IGNORECASE,
)


def is_meta(sentence: str) -> bool:
    """Whether a sentence frames the paper (its aim, scope or topic's popularity) rather than stating a finding."""
    return _META.search(sentence) is not None


_FRONT_MATTER = re.compile(
    r"©|\(c\) ?(?:19|20)\d\d|\bcopyright\b|all rights reserved|\blicen[cs]ee\b|creative ?commons|open.access article"
    r"|\bpublished by\b|\be-?mail\b|@[\w-]+\.\w|\bcorresponding author\b|\bcorrespondence\b|\bdoi: ?10\.|https?://"
    r"|www\.|\breceived:? \d|\baccepted:? \d|\bkeywords?:|\bvol\. ?\d+|\bissn\b|\bpp\. ?\d",
    re.IGNORECASE,
)
_BULLETS = re.compile(r"[•▪●■◦‣∙]|(?:^|\n)\s*(?:[-*]|\d+[.)])\s")
_SHORT_LOWER_START = re.compile(r"(?:and|or|but|which|that|whereas|while|with|as|of|in|to|for|by|the|a|an|its|their)\b")


def is_quotable(sentence: str) -> bool:
    """Whether a sentence can stand as a quoted answer: a whole sentence (no fragment ending in a comma or starting
    mid-clause), not front matter (copyright, licence, e-mail, masthead, DOI/URL lines), not a bullet or table blob."""
    text = sentence.strip()
    if len(text) < MIN_SENTENCE_CHARS or not re.search(r"[a-zA-Z]{3}", text) or len(text) > 1200:
        return False
    if text[-1] in ",;:-–(" or _SHORT_LOWER_START.match(text):
        return False
    if _FRONT_MATTER.search(text) or len(_BULLETS.findall(text)) >= 2 or text.count("\n") >= 3:
        return False
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 0.55 * len(text)  # tables, numbers and symbols


def candidate_sentences(hits: list[Hit]) -> list[tuple[Hit, int, int]]:
    """(hit, start, end) for each quotable sentence of each hit's chunk, offsets into the document's text."""
    out = []
    for hit in hits:
        text = hit.document.text
        for s, e in split_sentences(text, hit.chunk.char_start, hit.chunk.char_end):
            if is_quotable(text[s:e]):
                out.append((hit, s, e))
    return out


def gene_shaped(word: str) -> bool:
    """A name rather than a word: letters with digits (CD63, DIS3, IL-6, PD-L1, miR-21), two or more capitals (FDA,
    TSG101, MSC) or a capital after a small letter (mTOR, sEV)."""
    core = word.replace("-", "").replace("'", "")
    if len(core) < 2:
        return False
    letters = [ch for ch in core if ch.isalpha()]
    if letters and any(ch.isdigit() for ch in core):
        return True
    return sum(ch.isupper() for ch in core) >= 2 or bool(re.search(r"[a-z][A-Z]", core))


def prefilter(question: str, candidates: list[tuple[Hit, int, int]], texts: list[str], n: int) -> list[int]:
    """The `n` candidates the judge reads: ranked by the share of the question's content words they hold plus half
    their passage's retrieval score (no second embedding pass: the judge is what decides)."""
    terms = query_terms(question)
    top = max((hit.score for hit, _, _ in candidates), default=0.0) or 1.0
    prelim = [term_overlap(terms, t) + 0.5 * hit.score / top for (hit, _, _), t in zip(candidates, texts)]
    return sorted(range(len(candidates)), key=lambda i: -prelim[i])[:n]


def specific_terms(index: Index, question: str) -> list[str]:
    """The question's specific terms: gene/protein/acronym-shaped words (DIS3, PD-L1, miR-21, FDA, CD8) and words
    found in fewer than RARE_SHARE of the index's chunks, less the EV vocabulary of the thesaurus (which has
    synonyms a sentence may use instead) and plain numbers."""
    words = re.findall(r"[A-Za-z0-9][\w]*(?:[-'’][\w]+)*", question)
    vocabulary = _ev_vocabulary()
    candidates = []
    for word in words:
        low = word.lower()
        if low in query_terms(word) and low not in vocabulary and not word.isdigit() and low not in candidates:
            candidates.append(word)
    if not candidates:
        return []
    size = max(1, index.chunk_count())
    counts = index.term_chunk_counts([c.lower() for c in candidates])
    out = []
    for word, n in zip(candidates, counts):
        if gene_shaped(word) or (n is not None and n < RARE_SHARE * size and len(word) > 3):
            out.append(word)
    return out


@lru_cache(maxsize=1)
def _ev_vocabulary() -> frozenset[str]:
    """Every word of the curated EV thesaurus (computed once)."""
    return frozenset(w for g in thesaurus.load().groups for t in g.terms + g.ambiguous for w in t)


def _mentions(term: str, text: str) -> bool:
    """Whether `text` names `term` (case-insensitive, whole word; plural or hyphen variants: PD-L1 / PDL1)."""
    flat = re.sub(r"[-‐‑–\s]", "", term.lower())
    words = {re.sub(r"[-‐‑–]", "", w.lower()) for w in re.findall(r"\w+(?:[-‐‑–]\w+)*", text)}
    return any(w == flat or w == flat + "s" or w.rstrip("s") == flat or (len(flat) > 5 and w.startswith(flat[:-1]))
               for w in words)


def ask(
    index: Index, question: str, k: int = 8, max_sentences: int = 5, per_doc: int = 2, mode: str = "hybrid",
    filters: Filters | None = None, expand: bool = True, hits: list[Hit] | None = None,
) -> Answer:
    """Answer `question` from the index (within `filters`) with quoted, judged, cited sentences, or abstain.
    `hits`: passages already retrieved for this question (the LLM fallback passes its own)."""
    question = normalize_query(question)
    if hits is None:
        hits = search(index, question, k=k, mode=mode, filters=filters, expand=expand)  # type: ignore[arg-type]
    candidates = candidate_sentences(hits)
    if not candidates:
        return _abstain(question, hits, 0.0)
    texts = [hit.document.text[s:e] for hit, s, e in candidates]
    judged = prefilter(question, candidates, texts, JUDGED)
    verdicts = dict(zip(judged, judges.load().judge(question, [texts[i] for i in judged])))
    scores = {i: v.answers - (META_PENALTY if is_meta(texts[i]) else 0.0) for i, v in verdicts.items()}
    best = max(v.answers for v in verdicts.values())
    answering = [i for i in judged if verdicts[i].answering]
    if not answering:
        return _abstain(question, hits, best)

    specific = specific_terms(index, question)
    order = sorted(answering, key=lambda i: -scores[i])
    chosen: list[int] = []
    per_paper: dict[str, int] = {}
    for i in order:
        hit, _, _ = candidates[i]
        if len(chosen) == max_sentences:
            break
        if per_paper.get(hit.document.id, 0) >= per_doc or any(near_duplicate(texts[i], texts[j]) for j in chosen):
            continue
        per_paper[hit.document.id] = per_paper.get(hit.document.id, 0) + 1
        chosen.append(i)

    seen = " ".join(texts[i] + " " + candidates[i][0].document.title for i in chosen)
    missing = tuple(t for t in specific if not _mentions(t, seen))
    if specific and len(missing) == len(specific):
        # Sentences judged to answer, yet about none of the specific things asked: the index does not answer.
        return _abstain(question, hits, best, missing)

    # Lead with the best sentence; then the rest grouped by paper, papers in order of their best sentence.
    paper_rank: dict[str, int] = {}
    for i in chosen:
        paper_rank.setdefault(candidates[i][0].document.id, len(paper_rank))
    arranged = [chosen[0]] + sorted(chosen[1:], key=lambda i: (paper_rank[candidates[i][0].document.id], -scores[i]))
    yes_no = judges.is_yes_no(question)
    citations = []
    for n, i in enumerate(arranged, start=1):
        hit, s, e = candidates[i]
        citations.append(Citation(n=n, document=hit.document, quote=hit.document.text[s:e], section=hit.chunk.section,
                                  page=hit.chunk.page, char_start=s, char_end=e, score=verdicts[i].answers,
                                  stance=verdicts[i].stance if yes_no else None))
    consensus = paper_consensus(citations) if yes_no else None
    parts = []
    for c in citations:
        parts.append(f"{c.quote} [{c.n}]" + (f" ({c.stance})" if c.stance else ""))
    text = " ".join(parts)
    note = _missing_note(missing)
    if consensus is not None:
        text = consensus_line(consensus) + "\n\n" + text
    return Answer(question=question, text=text, abstained=False, citations=tuple(citations), hits=tuple(hits),
                  support=best, consensus=consensus, missing=missing, note=note)


def paper_stance(stances: set[str]) -> str:
    """One paper's stance from those of its cited sentences: supports or contradicts when its sentences take that
    side only, mixed when they take both, else neither."""
    if "supports" in stances and "contradicts" in stances:
        return "mixed"
    return next((s for s in ("supports", "contradicts") if s in stances), "neither")


def paper_consensus(citations: list[Citation]) -> dict[str, int]:
    """Papers counted once each by `paper_stance`; a mixed paper counts as neither."""
    by_paper: dict[str, set[str]] = {}
    for c in citations:
        by_paper.setdefault(c.document.id, set()).add(c.stance or "neither")
    counts = {"supports": 0, "contradicts": 0, "neither": 0}
    for stances in by_paper.values():
        stance = paper_stance(stances)
        counts["neither" if stance == "mixed" else stance] += 1
    return counts


def _quoted(terms: tuple[str, ...]) -> str:
    return ", ".join(f'"{t}"' for t in terms)


def _missing_note(missing: tuple[str, ...]) -> str:
    if not missing:
        return ""
    return (f"No cited sentence mentions {_quoted(missing)}: the indexed literature may not cover that part of the "
            "question.")


def _abstain(question: str, hits: list[Hit], support: float, missing: tuple[str, ...] = ()) -> Answer:
    text = ("The indexed literature does not appear to answer this question. "
            "The closest passages found are listed below; none is cited as an answer.")
    note = f"No passage judged to answer mentions {_quoted(missing)}." if missing else ""
    return Answer(question=question, text=text, abstained=True, citations=(), hits=tuple(hits[:3]), support=support,
                  missing=missing, note=note)
