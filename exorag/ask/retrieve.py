"""Retrieval: dense (FAISS) and lexical (SQLite FTS5 bm25) search, fused -> list[Hit].

The query is embedded with the index's model; the lexical side turns the query into an OR of quoted FTS5 phrases,
one per word, so user text can never be read as FTS5 syntax (quotes, `*`, NEAR, AND, `-`, `:`) and biomedical tokens
such as miR-21 or IL-6 match as phrases (the FTS5 table stems them: see store.py). Fusion is a convex combination of
min-max-normalised scores taken per document (each side's best chunk of a paper; default) or reciprocal-rank fusion
(k=60), with a cap on chunks per document so one paper cannot fill the top k. Filters (year range, source, journal,
publication type, study tags) restrict both sides: an FAISS id selector on the dense side, a SQL join on the lexical
side. The dense side never ranks a vector whose chunk is gone (a `remove` killed before its vectors were saved): see
index.search_vectors. Dense search goes through `index.dense_search(vector, k, filters)` and everything else through
Index read methods, so a sharded index (exorag/cluster/serve.py) runs this module unchanged. With `expand` (the
default) the lexical side also searches the EV thesaurus's synonyms and the long forms of the query's abbreviations
(exorag/build/thesaurus.py): one more FTS5 query per concept, matching its synonyms only in passages that lack the
query's own word for it, whose bm25 (capped at the best bm25 the query's own word reaches, so a passage naming
several synonyms cannot outscore one with the word itself) is added at EXPANSION_WEIGHT. A query holding a lone
surrogate (bytes that were not UTF-8 on the command line) is refused with InvalidText before anything is embedded.
Deliberately left out: rerankers (no cross-encoder weights are available offline).
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from exorag.build import thesaurus

from exorag.errors import EmptyQuery, InvalidText
from exorag.index.index import Index
from exorag.text import TERM, content_words
from exorag.types import Filters, Hit

Mode = Literal["hybrid", "dense", "lexical"]
Fusion = Literal["rrf", "convex"]
K = TypeVar("K", int, str)  # chunk ids or document ids
RRF_K = 60
CONVEX_ALPHA = 0.4  # weight of the dense side in convex fusion
# Chosen on SciFact *train* with bench/tune_fusion.py (document-level convex, Porter-stemmed bm25 with equal title and
# text weights; nDCG@10 0.737 vs 0.712 for the chunk-level fusion over unstemmed bm25); test figures in the README.
EXPANSION_WEIGHT = 0.5  # bm25 of synonym phrases counts half as much as the query's own words
PRUNE_FROM = 100_000  # chunks from which very common query words are left out of the bm25 side (searched_terms)
COMMON_TERM_SHARE = 0.10  # "very common": in more than this share of the chunks
MAX_QUERY_CHARS = 2000
MAX_QUERY_TERMS = 48

_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize_query(query: str) -> str:
    """Whitespace-folded query cut to MAX_QUERY_CHARS; EmptyQuery when nothing searchable is left, InvalidText when
    it holds a lone surrogate (not UTF-8 on the command line)."""
    bad = _SURROGATE.search(query) if isinstance(query, str) else None
    if bad:
        code = ord(bad.group(0))
        what = (f"the byte 0x{code - 0xDC00:02x}, which is not UTF-8" if 0xDC80 <= code <= 0xDCFF
                else f"a lone surrogate U+{code:04X}")
        raise InvalidText(f"the query is not valid text: it holds {what} (check the terminal's encoding)")
    query = " ".join((query or "").split())[:MAX_QUERY_CHARS]
    if not TERM.search(query):
        raise EmptyQuery("the query is empty: type a question or some keywords")
    return query


def query_terms(query: str) -> list[str]:
    """Content words of the query (text.TERM words), in order, without duplicates or stopwords."""
    return content_words(query, TERM)[:MAX_QUERY_TERMS]


def fts_expression(query: str, terms: list[str] | None = None) -> str:
    """An FTS5 MATCH expression that ORs one quoted phrase per query term (no user syntax passes through)."""
    return phrases_expression(query_terms(query) if terms is None else terms)


def searched_terms(index: Index, query: str) -> list[str]:
    """The query's terms less, in an index of PRUNE_FROM chunks or more, the single-token words found in more than
    COMMON_TERM_SHARE of its chunks (never all of them): such words carry almost no bm25 weight, yet their long
    posting lists made FTS5 the slowest part of a search at 1M chunks."""
    terms = query_terms(query)
    if len(terms) < 2:
        return terms
    size = index.chunk_id_bound()
    if size < PRUNE_FROM:
        return terms
    counts = index.term_chunk_counts(terms)
    kept = [t for t, n in zip(terms, counts) if n is None or n <= COMMON_TERM_SHARE * size]
    return kept or terms


def phrases_expression(phrases: list[str]) -> str:
    """An FTS5 MATCH expression that ORs quoted phrases (quotes doubled, blank phrases left out)."""
    return " OR ".join('"' + p.replace('"', '""') + '"' for p in phrases if p.strip())


def expansions(index: Index, query: str) -> list[thesaurus.Expansion]:
    """Thesaurus synonyms and mined long forms for the query's concepts."""
    curated = thesaurus.curated_expansions(query)

    def lookup(keys: list[str]) -> dict[str, list[tuple[str, int]]]:
        return index.long_forms(keys)

    handled = {p for e in curated for p in e.present + e.synonyms}
    return curated + thesaurus.abbreviation_expansions(query, lookup, skip=handled)


def expansion_expression(expansion: thesaurus.Expansion) -> str:
    """FTS5: any synonym, in passages without the query's own phrases for that concept."""
    synonyms = phrases_expression(list(expansion.synonyms))
    present = phrases_expression(list(expansion.present))
    return f"({synonyms}) NOT ({present})" if present else synonyms


def dense_search(index: Index, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
    """Top-k (chunk id, cosine) by the query's vector within the filters; never a vector whose chunk is gone
    (Index.dense_search). The query is embedded here, once, also for a sharded index."""
    vector = index.embedder.encode([query])[0]
    return index.dense_search(vector, k, filters)


def lexical_search(
    index: Index, query: str, k: int, filters: Filters | None = None, expand: bool = True
) -> list[tuple[int, float]]:
    """(chunk id, bm25) of the query's words, plus EXPANSION_WEIGHT times the bm25 of synonyms standing in for them."""
    expression = fts_expression(query, searched_terms(index, query))
    found = expansions(index, query) if expand else []
    if not expression and not found:
        return []
    own = index.lexical_search(expression, k, filters) if expression else []
    more = []
    for e in found:
        ranking = index.lexical_search(expansion_expression(e), k, filters)
        # A passage naming several synonyms must not outscore one with the user's own word: cap the credit at
        # the best score the query's own phrases reach in any passage.
        best = index.lexical_search(phrases_expression(list(e.present)), 1, filters) if e.present else []
        cap = best[0][1] if best else None
        more.append([(cid, score if cap is None else min(score, cap)) for cid, score in ranking])
    if not any(more):
        return own
    scores = dict(own)
    for ranking in more:
        for chunk_id, score in ranking:
            scores[chunk_id] = scores.get(chunk_id, 0.0) + EXPANSION_WEIGHT * score
    return sorted(scores.items(), key=lambda kv: -kv[1])[:k]


def rrf(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank + 1)
    return fused


def convex(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], alpha: float = CONVEX_ALPHA,
           doc_of: dict[int, str] | None = None) -> dict[int, float]:
    """alpha * dense + (1 - alpha) * lexical, each min-max normalised over its own list (missing = 0).

    With `doc_of` (chunk id -> document id) the fusion is per document: each side keeps its best chunk per
    document, those document scores are fused, and the document's best chunk (by the chunk-level fusion) carries
    the document's score; its other chunks keep their chunk-level score, capped at it. A paper whose best dense
    passage and best bm25 passage are different chunks is thus not split in two half-scores.
    """
    fused = _convex_keys(dense, lexical, alpha)
    if doc_of is None:
        return fused
    per_doc = _convex_keys(_best_per_doc(dense, doc_of), _best_per_doc(lexical, doc_of), alpha)
    best: dict[str, int] = {}
    for chunk_id, score in fused.items():
        doc = doc_of.get(chunk_id)
        if doc is not None and (doc not in best or score > fused[best[doc]]):
            best[doc] = chunk_id
    for chunk_id in fused:
        doc = doc_of.get(chunk_id)
        if doc is not None:
            fused[chunk_id] = per_doc[doc] if best[doc] == chunk_id else min(fused[chunk_id], per_doc[doc])
    return fused


def _best_per_doc(ranking: list[tuple[int, float]], doc_of: dict[int, str]) -> list[tuple[str, float]]:
    best: dict[str, float] = {}
    for chunk_id, score in ranking:
        doc = doc_of.get(chunk_id)
        if doc is not None and (doc not in best or score > best[doc]):
            best[doc] = score
    return list(best.items())


def _convex_keys(dense: list[tuple[K, float]], lexical: list[tuple[K, float]], alpha: float) -> dict[K, float]:
    fused: dict[K, float] = {}
    for weight, ranking in ((alpha, dense), (1.0 - alpha, lexical)):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, span = min(values), (max(values) - min(values)) or 1.0
        for key, score in ranking:
            fused[key] = fused.get(key, 0.0) + weight * (score - low) / span
    return fused


def search(
    index: Index, query: str, k: int = 10, mode: Mode = "hybrid", per_doc: int = 2,
    filters: Filters | None = None, fusion: Fusion = "convex", expand: bool = True,
) -> list[Hit]:
    """The top `k` chunks for `query` within `filters`, at most `per_doc` from any one document.

    `expand`: also search EV synonyms and mined long forms on the lexical side (see exorag/build/thesaurus.py).
    """
    query = normalize_query(query)
    depth = max(50, k * 5)
    if filters is not None and not filters.empty and index.count_documents(filters) == 0:
        return []
    dense = dense_search(index, query, depth, filters) if mode in ("hybrid", "dense") else []
    lexical = lexical_search(index, query, depth, filters, expand) if mode in ("hybrid", "lexical") else []
    chunks = index.get_chunks(dict.fromkeys([cid for cid, _ in dense + lexical]))
    docs = index.get_documents((c.doc_id for c in chunks.values()))
    if mode == "dense":
        scores = dict(dense)
    elif mode == "lexical":
        scores = dict(lexical)
    elif fusion == "convex":
        scores = convex(dense, lexical, doc_of={cid: c.doc_id for cid, c in chunks.items()})
    else:
        scores = rrf([dense, lexical])
    ranked = sorted(scores, key=lambda cid: -scores[cid])
    dense_map, lexical_map = dict(dense), dict(lexical)
    hits: list[Hit] = []
    taken: dict[str, int] = {}
    for chunk_id in ranked:
        chunk = chunks.get(chunk_id)
        if chunk is None or chunk.doc_id not in docs:
            continue  # a vector whose chunk is gone: ignored until the next sync drops it
        if taken.get(chunk.doc_id, 0) >= per_doc:
            continue
        taken[chunk.doc_id] = taken.get(chunk.doc_id, 0) + 1
        hits.append(Hit(chunk=chunk, document=docs[chunk.doc_id], score=scores[chunk_id],
                        dense_score=dense_map.get(chunk_id), lexical_score=lexical_map.get(chunk_id)))
        if len(hits) == k:
            break
    return hits
