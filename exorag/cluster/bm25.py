"""FTS5's bm25, computed outside SQLite, so that the shards of a sharded index score with global statistics.

FTS5 scores a row as the sum over the phrases of the MATCH expression of IDF(q) · f(q,D)·(k1+1) /
(f(q,D) + k1·(1 − b + b·|D|/avgdl)), with k1 = 1.2, b = 0.75, IDF(q) = ln((N − n(q) + 0.5) / (n(q) + 0.5)) (at
least 1e-6), f(q,D) the phrase's occurrences in the row weighted per column, |D| the row's tokens, N and avgdl the
table's rows and tokens per row (fts5_aux.c, fts5Bm25Function). On one shard N, n(q) and avgdl are that shard's:
the same passage scores differently on two shards (Elasticsearch's query_then_fetch has the same local IDF). Here
the gateway sums N, tokens and n(q) over the shards, and each shard rescores its own candidates with those global
figures (`score`, in the same floating-point order as FTS5, so one index and its shards give the same number), as
Elasticsearch's dfs_query_then_fetch does. A shard takes its candidates by its local bm25; `enough` says when they
surely hold its global top k: no row below the last candidate can score globally more than the last candidate's
local score times the largest ratio of global to local weights (`bound_factor`). Deliberately left out: SQL
(store.py counts phrases and tokens) and Ray (shard.py, serve.py).
"""

from __future__ import annotations

import math
import re

K1 = 1.2
B = 0.75
_PHRASE = re.compile(r'"((?:[^"]|"")*)"')


def phrases(match: str) -> tuple[list[str], int]:
    """The quoted phrases of a MATCH expression made by retrieve.py (ORs of phrases, maybe `(...) NOT (...)`), in
    the order FTS5 numbers them, and how many come before NOT (those a matching row can hold)."""
    found = [m.group(1).replace('""', '"') for m in _PHRASE.finditer(match)]
    head = match.split(") NOT (", 1)[0]
    return found, len(_PHRASE.findall(head))


def idf(rows: int, hits: int) -> float:
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


def score(freqs: list[float], length: int, idfs: list[float], avgdl: float) -> float:
    """bm25 of one row: the sum in phrase order, each term as fts5Bm25Function computes it."""
    total = 0.0
    for f, w in zip(freqs, idfs):
        total += w * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * length / avgdl)))
    return total


def bound_factor(global_idfs: list[float], local_idfs: list[float], positive: int, global_avgdl: float,
                 local_avgdl: float) -> float:
    """An upper bound of (global score / local score) for any row: per phrase the IDF ratio, and the length
    normalisation, which can favour a row by at most the ratio of the average lengths."""
    ratio = max((g / l for g, l in zip(global_idfs[:positive], local_idfs[:positive])), default=1.0)
    return ratio * max(1.0, global_avgdl / local_avgdl) * (1 + 1e-9)
