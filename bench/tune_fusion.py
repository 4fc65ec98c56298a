"""Sweep fusion settings on a BEIR split in memory: candidate lists are computed once, then re-fused per setting.

Usage: python bench/tune_fusion.py --index DIR [--data ../shared/data/scifact/beir_format] [--split train]
       [--depth 500] [--top 25]
The index must already hold the BEIR corpus (e.g. a copy of the folder `exorag eval beir` built). For every judged
query of the split it embeds the query once, takes the top `--depth` dense chunks (FAISS; also with dense
pseudo-relevance feedback: the query moved towards its top 3 or 5 chunks and searched again) and the top `--depth`
lexical chunks (FTS5 bm25 over the store's table and over a temporary Porter-stemmed copy, for each title/text
column weighting tried), then scores every combination of: level (chunk: fuse chunk scores, a document takes its
best chunk; doc: each side's best chunk per document first, then fuse), normalisation (min-max, z-score), dense
weight alpha, candidate depth (50 as `search -k 10`, 500 as eval's k=100), and RRF for comparison. Prints nDCG@10
(and Recall@100) per setting, best first, then reference lines. Tune on train; report test once per choice.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exorag.ask.evaluate import metrics, read_beir  # noqa: E402
from exorag.index.index import open_index  # noqa: E402
from exorag.ask.retrieve import fts_expression, normalize_query  # noqa: E402

Ranking = list[tuple[int, float]]
WEIGHTS = [(0.5, 1.0), (1.0, 1.0), (2.0, 1.0)]


def lexical(conn, table: str, query: str, depth: int, weights: tuple[float, float]) -> Ranking:  # type: ignore[no-untyped-def]
    expression = fts_expression(query)
    if not expression:
        return []
    q = (f"SELECT rowid, bm25({table}, {weights[0]}, {weights[1]}) AS r FROM {table} WHERE {table} MATCH ? "
         "ORDER BY r LIMIT ?")
    return [(int(r[0]), -float(r[1])) for r in conn.execute(q, (expression, depth))]


def porter_table(conn) -> str:  # type: ignore[no-untyped-def]
    """A temporary FTS5 table like chunks_fts but with the Porter stemmer (in the temp schema: the file is untouched)."""
    conn.execute('CREATE VIRTUAL TABLE temp.fts_porter USING fts5(title, text, '
                 'tokenize="porter unicode61 remove_diacritics 2")')
    conn.execute("INSERT INTO temp.fts_porter(rowid, title, text) SELECT c.id, d.title, c.text FROM chunks c "
                 "JOIN documents d ON d.id = c.doc_id")
    return "fts_porter"


def prf(index, vector, ranking: Ranking, doc_of, beta: float, m: int, depth: int) -> Ranking:  # type: ignore[no-untyped-def]
    """Dense pseudo-relevance feedback: the query moved towards the mean of its top `m` chunks, searched again."""
    top = [cid for cid, _ in ranking[:m]]
    if not top:
        return ranking
    centroid = np.mean([index.vectors.index.reconstruct(int(c)) for c in top], axis=0)
    moved = vector + beta * centroid
    return index.vectors.search(moved / np.linalg.norm(moved), depth)


def normalise(ranking: Ranking, how: str) -> dict[int, float]:
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    if how == "minmax":
        low, span = min(values), (max(values) - min(values)) or 1.0
        return {i: (s - low) / span for i, s in ranking}
    mean, sd = statistics.fmean(values), (statistics.pstdev(values) or 1.0)
    low = min(values)
    return {i: (s - low) / sd for i, s in ranking}  # z-score shifted so that the list's minimum is 0 (= missing)


def best_per_doc(ranking: Ranking, doc_of: dict[int, str]) -> Ranking:
    best: dict[str, float] = {}
    for cid, s in ranking:
        d = doc_of[cid]
        if d not in best or s > best[d]:
            best[d] = s
    return sorted(best.items(), key=lambda kv: -kv[1])  # type: ignore[arg-type]


def fuse(dense: Ranking, lex: Ranking, alpha: float, how: str) -> dict:  # type: ignore[type-arg]
    fused: dict = {}  # type: ignore[type-arg]
    for weight, ranking in ((alpha, dense), (1 - alpha, lex)):
        for key, s in normalise(ranking, how).items():
            fused[key] = fused.get(key, 0.0) + weight * s
    return fused


def rrf(dense: Ranking, lex: Ranking, k: int = 60) -> dict:  # type: ignore[type-arg]
    fused: dict = {}  # type: ignore[type-arg]
    for ranking in (dense, lex):
        for rank, (key, _) in enumerate(ranking):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank + 1)
    return fused


def doc_run(scores: dict, doc_of: dict[int, str] | None) -> list[str]:  # type: ignore[type-arg]
    """Documents ranked by score; chunk-keyed scores give each document its best chunk's score."""
    if doc_of is not None:
        best: dict[str, float] = {}
        for cid, s in scores.items():
            d = doc_of[cid]
            if d not in best or s > best[d]:
                best[d] = s
        scores = best
    return sorted(scores, key=lambda d: -scores[d])[:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact" / "beir_format"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--depth", type=int, default=500, help="candidates per side (eval's k=100 searches use 500)")
    parser.add_argument("--top", type=int, default=25, help="settings to print")
    args = parser.parse_args()
    _, queries, qrels = read_beir(Path(args.data), args.split)
    index = open_index(Path(args.index))
    doc_of = {int(r[0]): r[1] for r in index._conn.execute("SELECT id, doc_id FROM chunks")}
    started = time.perf_counter()
    texts = {q: normalize_query(queries[q]) for q in qrels}
    vectors = index.embedder.encode(list(texts.values()), batch_size=64)
    dense_sides = {"dense": {q: index.vectors.search(v, args.depth) for q, v in zip(texts, vectors)}}
    for beta, m in ((0.3, 3), (0.5, 5)):
        dense_sides[f"dense-prf{beta}x{m}"] = {q: prf(index, v, dense_sides["dense"][q], doc_of, beta, m, args.depth)
                                               for q, v in zip(texts, vectors)}
    porter = porter_table(index._conn)
    lex_sides = {f"{table} w={w}": {q: lexical(index._conn, table, t, args.depth, w) for q, t in texts.items()}
                 for table in ("chunks_fts", porter) for w in WEIGHTS}
    print(f"{len(texts)} {args.split} queries: candidates in {time.perf_counter() - started:.1f} s", flush=True)

    results: list[tuple[float, float, str]] = []

    def score(name: str, runs: dict[str, list[str]]) -> None:
        m = metrics(runs, qrels)
        results.append((m["ndcg@10"], m["recall@100"], name))

    for name, side in {**dense_sides, **lex_sides}.items():
        score(name, {q: doc_run(dict(side[q]), doc_of) for q in texts})
    for (dname, dside), (lname, lside) in itertools.product(dense_sides.items(), lex_sides.items()):
        for depth in sorted({50, args.depth}):
            d = {q: dside[q][:depth] for q in texts}
            lx = {q: lside[q][:depth] for q in texts}
            dd = {q: best_per_doc(d[q], doc_of) for q in texts}
            ld = {q: best_per_doc(lx[q], doc_of) for q in texts}
            tag = f"{dname} + {lname} depth={depth}"
            score(f"rrf chunk {tag}", {q: doc_run(rrf(d[q], lx[q]), doc_of) for q in texts})
            for how, alpha in itertools.product(("minmax", "z"), (0.4, 0.5, 0.6, 0.7)):
                if how == "minmax" and alpha == 0.5 or dname == "dense":  # the chunk level as reference only
                    score(f"convex chunk {how} alpha={alpha} {tag}",
                          {q: doc_run(fuse(d[q], lx[q], alpha, how), doc_of) for q in texts})
                score(f"convex doc {how} alpha={alpha} {tag}",
                      {q: doc_run(fuse(dd[q], ld[q], alpha, how), None) for q in texts})
        print(f"  {dname} + {lname} done ({time.perf_counter() - started:.0f} s)", flush=True)
    results.sort(reverse=True)
    for ndcg, r100, name in results[: args.top]:
        print(f"nDCG@10 {ndcg:.4f}  R@100 {r100:.3f}  {name}")
    reference = {"dense", "convex chunk minmax alpha=0.5 dense + chunks_fts w=(0.5, 1.0) depth=500",
                 "convex chunk minmax alpha=0.5 dense + chunks_fts w=(0.5, 1.0) depth=50"}
    for ndcg, r100, name in results:
        if name in reference or name.startswith(("chunks_fts", "fts_porter", "dense")):
            print(f"[ref] nDCG@10 {ndcg:.4f}  R@100 {r100:.3f}  {name}")


if __name__ == "__main__":
    main()
