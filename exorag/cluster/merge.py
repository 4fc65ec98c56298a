"""The gateway's reduce step: what the shards of a sharded index answered, merged into what one Index would answer.

Each function takes the per-shard answers of one Index read method (store.py's functions, as shard actors return
them) and gives the answer in the single store's shape and order: rankings merged by score, counts summed,
overviews re-sorted by the single store's ORDER BY. Exact where the shards partition the documents (counts, tags,
lookups, dense cosine scores); the one thing a merge cannot make exact is a bm25 score, whose IDF and average length
are each shard's own (see exorag/cluster/serve.py). Deliberately left out: talking to the shards (serve.py) and
anything that needs Ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from exorag.build import tags

T = TypeVar("T")


def top_k(rankings: Iterable[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """The best k (id, score) pairs of several rankings, highest score first (ties: lower id first)."""
    merged = [pair for ranking in rankings for pair in ranking]
    return sorted(merged, key=lambda pair: (-pair[1], pair[0]))[:k]


def term_counts(answers: list[list[int | None]]) -> list[int | None]:
    """Chunks holding each word, summed over the shards; None (a word of several tokens) stays None."""
    if not answers:
        return []
    return [None if any(a[i] is None for a in answers) else sum(int(a[i]) for a in answers)  # type: ignore[misc]
            for i in range(len(answers[0]))]


def summed_pairs(answers: Iterable[Iterable[tuple[T, int]]]) -> dict[T, int]:
    out: dict[T, int] = {}
    for answer in answers:
        for key, n in answer:
            out[key] = out.get(key, 0) + int(n)
    return out


def long_forms(answers: list[dict[str, list[tuple[str, int]]]]) -> dict[str, list[tuple[str, int]]]:
    """{short: [(long form, documents)]}: documents defining each long form, summed (store: GROUP BY short, long)."""
    keys = sorted({short for answer in answers for short in answer})
    return {short: sorted(summed_pairs(a.get(short, []) for a in answers).items()) for short in keys}


def by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(value, n), most common first, then by value (the store's ORDER BY n DESC, value)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def tag_values(answers: list[dict[str, list[tuple[str, int]]]]) -> dict[str, list[tuple[str, int]]]:
    keys = list(tags.TAG_KEYS) + sorted({k for a in answers for k in a} - set(tags.TAG_KEYS))
    return {key: by_count(summed_pairs(a.get(key, []) for a in answers)) for key in keys}


def counted(answers: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """pub_type_counts, source_counts: summed, most common first."""
    return by_count(summed_pairs(answers))


def counts(answers: list[dict[str, Any]]) -> dict[str, Any]:
    sources = summed_pairs(a["sources"].items() for a in answers)
    return {"documents": sum(a["documents"] for a in answers), "chunks": sum(a["chunks"] for a in answers),
            "sources": sources}


def year_counts(answers: list[list[tuple[int | None, int]]]) -> list[tuple[int | None, int]]:
    """(year, documents), oldest first, undated (None) last."""
    summed = summed_pairs(answers)
    return sorted(summed.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))


def distinct(answers: list[list[str]]) -> list[str]:
    """distinct_sources, distinct_pub_types: the union, sorted case-insensitively."""
    return sorted({v for a in answers for v in a}, key=lambda v: (v.lower(), v))


def newest(rows: Iterable[dict[str, Any]], limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Rows with an `added_at`, newest first (ties by id), one page of them."""
    ordered = sorted(rows, key=lambda r: (r.get("added_at") or "", r.get("id") or ""), reverse=True)
    return ordered[max(0, offset): max(0, offset) + max(0, limit)]


def found_documents(answers: list[tuple[int, list[dict[str, Any]]]], limit: int,
                    offset: int) -> tuple[int, list[dict[str, Any]]]:
    """find_documents: the total summed, one page of the rows merged newest first (each shard sent offset+limit)."""
    return sum(total for total, _ in answers), newest((r for _, rows in answers for r in rows), limit, offset)


def in_order(keys: Iterable[T], answers: Iterable[dict[T, Any]]) -> dict[T, Any]:
    """Several {key: value} lookups as one, in the order of `keys` (keys no shard has are left out)."""
    merged: dict[T, Any] = {}
    for answer in answers:
        merged.update(answer)
    return {key: merged[key] for key in dict.fromkeys(keys) if key in merged}
