"""Extractive answers: the best sentences of the retrieved passages, quoted verbatim, each followed by `[n]`.

Every sentence of every retrieved chunk is scored against the question (cosine of MiniLM embeddings, plus a
little credit for sharing the question's content words, less META_PENALTY for sentences that frame the paper
rather than state a finding: "this review focuses on...", "here we discuss..."); the best are kept with diversity (no near-duplicates,
at most `per_doc` per paper), the strongest leads and the rest follow grouped by paper. Each Citation records the
document and the absolute character offsets of its quote, so `document.text[char_start:char_end] == quote` always
holds. When even the best sentence is weakly related the answer abstains and lists the closest passages instead.
Deliberately left out: generative (LLM) answers and calibrated thresholds (the answers issue).
"""

from __future__ import annotations

import re

import numpy as np

from .chunk import split_sentences
from .index import Index
from .retrieve import normalize_query, query_terms, search
from .types import Answer, Citation, Filters, Hit

ABSTAIN_BELOW = 0.50  # best sentence cosine under which we say the literature does not answer (bench/abstention.py)
KEEP_WITHIN = 0.20  # keep sentences scoring within this of the best one
MIN_SENTENCE_CHARS = 30
_TOKEN = re.compile(r"\w+")


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


def _overlap(terms: list[str], sentence: str) -> float:
    if not terms:
        return 0.0
    words = set(_TOKEN.findall(sentence.lower()))
    return sum(1 for t in terms if t in words or all(p in words for p in _TOKEN.findall(t))) / len(terms)


def _near_duplicate(a: str, b: str) -> bool:
    sa, sb = set(_TOKEN.findall(a.lower())), set(_TOKEN.findall(b.lower()))
    return bool(sa and sb) and len(sa & sb) / len(sa | sb) > 0.6


def candidate_sentences(hits: list[Hit]) -> list[tuple[Hit, int, int]]:
    """(hit, start, end) for each sentence of each hit's chunk, offsets into the document's text."""
    out = []
    for hit in hits:
        text = hit.document.text
        for s, e in split_sentences(text, hit.chunk.char_start, hit.chunk.char_end):
            if e - s >= MIN_SENTENCE_CHARS and re.search(r"[a-zA-Z]{3}", text[s:e]):
                out.append((hit, s, e))
    return out


def ask(
    index: Index, question: str, k: int = 8, max_sentences: int = 5, per_doc: int = 2, mode: str = "hybrid",
    filters: Filters | None = None, abstain_below: float = ABSTAIN_BELOW, expand: bool = True,
) -> Answer:
    """Answer `question` from the index (within `filters`) with quoted, cited sentences, or abstain."""
    question = normalize_query(question)
    hits = search(index, question, k=k, mode=mode, filters=filters, expand=expand)  # type: ignore[arg-type]
    candidates = candidate_sentences(hits)
    if not candidates:
        return _abstain(question, hits, 0.0)
    texts = [hit.document.text[s:e] for hit, s, e in candidates]
    vectors = index.embedder.encode([question] + texts, batch_size=64)
    cosines = vectors[1:] @ vectors[0]
    terms = query_terms(question)
    scores = [float(c) + 0.1 * _overlap(terms, t) - (META_PENALTY if is_meta(t) else 0.0)
              for c, t in zip(cosines, texts)]
    best = float(np.max(cosines))
    if best < abstain_below:
        return _abstain(question, hits, best)

    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    chosen: list[int] = []
    per_paper: dict[str, int] = {}
    for i in order:
        hit, _, _ = candidates[i]
        if scores[i] < scores[order[0]] - KEEP_WITHIN or len(chosen) == max_sentences:
            break
        if per_paper.get(hit.document.id, 0) >= per_doc or any(_near_duplicate(texts[i], texts[j]) for j in chosen):
            continue
        per_paper[hit.document.id] = per_paper.get(hit.document.id, 0) + 1
        chosen.append(i)

    # Lead with the best sentence; then the rest grouped by paper, papers in order of their best sentence.
    paper_rank = {}
    for i in chosen:
        paper_rank.setdefault(candidates[i][0].document.id, len(paper_rank))
    arranged = [chosen[0]] + sorted(chosen[1:], key=lambda i: (paper_rank[candidates[i][0].document.id], -scores[i]))
    citations = []
    for n, i in enumerate(arranged, start=1):
        hit, s, e = candidates[i]
        citations.append(Citation(n=n, document=hit.document, quote=hit.document.text[s:e], section=hit.chunk.section,
                                  page=hit.chunk.page, char_start=s, char_end=e, score=scores[i]))
    text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
    return Answer(question=question, text=text, abstained=False, citations=tuple(citations), hits=tuple(hits),
                  support=best)


def _abstain(question: str, hits: list[Hit], support: float) -> Answer:
    text = ("The indexed literature does not appear to answer this question. "
            "The closest passages found are listed below; none is cited as an answer.")
    return Answer(question=question, text=text, abstained=True, citations=(), hits=tuple(hits[:3]), support=support)
