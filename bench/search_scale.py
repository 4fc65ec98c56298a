"""Vector search at 10k, 100k and 1M chunks on synthetic clustered vectors: latency, recall@10 vs exact, memory.

Usage: python bench/search_scale.py [--sizes 10000,100000,1000000] [--queries 200] [--kinds flat,ivf-fp16,ivf-sq8]
       [--probe 0.05,0.1,0.2,0.35] [--dim 384] [--real DIR --real-queries JSONL]...
Vectors are normalised draws from a two-level Gaussian mixture (shared direction, topics, sub-topics, noise; real
embeddings are clustered, not uniform), tuned so that a query's 10th neighbour has a cosine near the one real
MiniLM chunks have (~0.56 in the SciFact index) and random pairs a cosine of ~0.12 as there. Queries are held-out
draws of the same mixture, and harder "between-topic" queries (each the sum of two draws, whose neighbours straddle
several inverted lists). Each index is built with exorag.index.vectors (`flat` exact; `ivf-fp16`, the kind an index
migrates to past the threshold; `ivf-sq8`, 8-bit codes, for comparison) and searched through `Vectors.search`,
one query at a time on one thread, as `exorag search` does. Per size and kind: build seconds, p50/p95 latency,
recall@10 against exact (FAISS flat over the same vectors), bytes per chunk of the saved index file (vectors or
codes, ids, centroids), the RSS growth and peak RSS of a fresh process that opens the saved index with
exorag.index.vectors.open_vectors and searches it (what `exorag search` holds), and a filtered search (an id selector
keeping 10% of the chunks). After each size: the bench's own peak RSS (getrusage; it includes the float32 data and
the exact index). With --real DIR --real-queries JSONL the IVF recall is also checked on an index's real MiniLM
vectors with real queries (e.g. a SciFact index and its queries.jsonl, the demo index and the BioASQ questions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402

from exorag.index import vectors as rv  # noqa: E402


def mixture(n: int, dim: int, seed: int, topics: int = 200, subtopics: int = 20) -> np.ndarray:
    """`n` normalised vectors: shared direction + topic centre + sub-topic offset + noise (all Gaussian), float32."""
    rng = np.random.default_rng(1234)  # the same centres for data and queries
    shared = rng.normal(scale=0.62, size=dim).astype(np.float32)  # a common direction: random pairs at cosine ~0.12
    topic_centres = (rng.normal(size=(topics, dim)) + shared).astype(np.float32)
    sub_offsets = rng.normal(scale=0.8, size=(topics * subtopics, dim)).astype(np.float32)
    draw = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        sub = draw.integers(0, topics * subtopics, m)
        x = topic_centres[sub // subtopics] + sub_offsets[sub] + draw.normal(scale=1.1, size=(m, dim)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def between(n: int, dim: int, seed: int) -> np.ndarray:
    """Harder queries: each the normalised sum of two draws of the mixture (usually of different sub-topics, so
    their neighbours straddle several inverted lists)."""
    a, b = mixture(n, dim, seed), mixture(n, dim, seed + 1)
    x = a + b
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def real_check(folder: Path, queries_path: Path, probes: list[int]) -> None:
    """IVF-fp16 recall@10 against exact on the real MiniLM vectors of an index, for real queries (the first 500 of
    a JSONL file with a "text" field, e.g. BEIR queries.jsonl, or of a BioASQ golden-set folder's questions)."""
    import json as _json

    from exorag.index import embed
    from exorag.index.index import open_index

    index = open_index(folder)
    ids, x = rv.all_vectors(index.vectors.index)
    if queries_path.is_dir():  # a BioASQ golden-set folder: its question bodies
        from exorag.ask.evaluate import bioasq_questions

        texts = [q["body"] for q in bioasq_questions(queries_path) if q.get("body")]
    else:
        texts = [_json.loads(line)["text"] for line in queries_path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    q = index.embedder.encode(texts[:500], batch_size=64)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, pos = exact.search(q, 10)
    truth = [set(ids[row].tolist()) for row in pos]
    ivf = rv.build_ivf(ids, x)
    vecs = rv.Vectors(folder=folder, model="real", dim=x.shape[1], index=ivf, trained_for=len(ids))
    probes = sorted(set(probes) | {rv.PROBE_FRACTION})
    print(f"\n== real: {len(ids):,} MiniLM vectors of {folder}, {len(q)} real queries of {queries_path.name}; "
          f"ivf-fp16 nlist {ivf.nlist}")
    for share in probes:
        vecs.nprobe = max(1, math.ceil(share * ivf.nlist))
        latencies, found = timed_search(vecs, q)
        recall = statistics.fmean(len(truth[i] & set(f)) / 10 for i, f in enumerate(found))
        print(f"   {share:4.0%} of lists ({vecs.nprobe:4d})  recall@10 {recall:.3f}  "
              f"p50 {percentile(latencies, 0.5) * 1000:6.2f} ms")
    index.close()
    del embed


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SERVE = """
import json, sys
from pathlib import Path
import numpy as np
from exorag.index.vectors import open_vectors
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = rss()
v = open_vectors(Path(sys.argv[1]), "synthetic", int(sys.argv[2]))
q = np.random.default_rng(0).normal(size=(20, int(sys.argv[2]))).astype(np.float32)
for row in q:
    v.search(row / np.linalg.norm(row), 10)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps([int(hwm.split()[1]) / 1024, rss() - before]))
"""


def serving_rss(folder: Path, dim: int) -> tuple[float, float]:
    """(peak RSS MiB (VmHWM), RSS MiB added by opening the index) of a new process that opens `folder` and searches it."""
    done = subprocess.run([sys.executable, "-c", SERVE, str(folder), str(dim)], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    peak, added = json.loads(done.stdout.strip().splitlines()[-1])
    return peak, added


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def build(kind: str, ids: np.ndarray, x: np.ndarray) -> object:
    if kind == "flat":
        index = rv.new_flat(x.shape[1])
        index.add_with_ids(x, ids)
        return index
    return rv.build_ivf(ids, x, codes={"ivf-fp16": "SQfp16", "ivf-sq8": "SQ8"}[kind])


def timed_search(vecs: rv.Vectors, queries: np.ndarray, allowed: np.ndarray | None = None) -> tuple[list[float], list[list[int]]]:
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = vecs.search(q, 10, allowed)
        latencies.append(time.perf_counter() - t)
        found.append([i for i, _ in hits])
    return latencies, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", default="flat,ivf-fp16,ivf-sq8")
    parser.add_argument("--probe", default="0.05,0.1,0.2,0.35",
                        help="shares of the inverted lists to search (the library default is exorag.index.vectors.PROBE_FRACTION)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--real", type=Path, action="append", default=[],
                        help="also check IVF recall on this index folder's real vectors (repeatable)")
    parser.add_argument("--real-queries", type=Path, action="append", default=[],
                        help="JSONL with a 'text' field per query, or a BioASQ folder; one per --real")
    args = parser.parse_args()
    if args.real:
        for folder, queries_path in zip(args.real, args.real_queries):
            real_check(folder, queries_path, [0.05, 0.1, 0.2, 0.3, 0.4])
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    probes = [float(p) for p in args.probe.split(",")]
    queries = mixture(args.queries, args.dim, seed=99)
    hard = between(args.queries, args.dim, seed=199)
    print(f"synthetic {args.dim}-dim clustered vectors; {args.queries} single queries, k=10, 1 search thread; "
          f"library default: search {rv.PROBE_FRACTION:.0%} of the IVF lists")
    with tempfile.TemporaryDirectory(prefix="exorag-scale-") as scratch:
        for n in sizes:
            started = time.perf_counter()
            x = mixture(n, args.dim, seed=n)
            ids = np.arange(n, dtype=np.int64) * 2 + 1  # chunk ids need not be dense
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            exact = faiss.IndexFlatIP(args.dim)
            exact.add(x)
            top_scores, truth_pos = exact.search(queries, 10)
            truth = [set(ids[row].tolist()) for row in truth_pos]
            hard_scores, hard_pos = exact.search(hard, 10)
            hard_truth = [set(ids[row].tolist()) for row in hard_pos]
            del exact
            print(f"\n== {n:,} chunks (data + exact top-10 in {time.perf_counter() - started:.1f} s; "
                  f"mean cosine of the 1st / 10th neighbour {top_scores[:, 0].mean():.2f} / {top_scores[:, 9].mean():.2f}; "
                  f"between-topic queries {hard_scores[:, 0].mean():.2f} / {hard_scores[:, 9].mean():.2f})")
            allowed = ids[:: 10]
            for kind in kinds:
                t = time.perf_counter()
                index = build(kind, ids, x)
                build_s = time.perf_counter() - t
                folder = Path(scratch) / f"{kind}-{n}"
                folder.mkdir()
                path = folder / rv.VECTORS_FILE
                faiss.write_index(index, str(path))
                file_bytes = path.stat().st_size
                serving = serving_rss(folder, args.dim)
                path.unlink()
                vecs = rv.Vectors(folder=Path(scratch), model="synthetic", dim=args.dim, index=index,
                                  trained_for=n if kind != "flat" else 0)
                head = (f"{kind:9s} build {build_s:6.1f} s  {file_bytes / n:5.0f} B/chunk (index file); a new process "
                        f"serving it: {serving[1] / n * 2**20:5.0f} B/chunk RSS growth, peak RSS {serving[0]:.0f} MiB")
                if kind == "flat":
                    print(head)
                    settings = [None]
                else:
                    print(f"{head}  nlist {index.nlist}")
                    settings = probes
                for share in settings:
                    nprobe = None if share is None else max(1, math.ceil(share * index.nlist))
                    if nprobe is not None:
                        vecs.nprobe = nprobe
                    latencies, found = timed_search(vecs, queries)
                    recall = statistics.fmean(len(truth[i] & set(f)) / 10 for i, f in enumerate(found))
                    hard_latencies, hard_found = timed_search(vecs, hard)
                    hard_recall = statistics.fmean(len(hard_truth[i] & set(f)) / 10 for i, f in enumerate(hard_found))
                    label = "exact" if nprobe is None else f"{share:4.0%} ({nprobe:4d})"
                    print(f"   {label:11s} p50 {percentile(latencies, 0.5) * 1000:7.2f} ms  "
                          f"p95 {percentile(latencies, 0.95) * 1000:7.2f} ms  recall@10 {recall:.3f}  "
                          f"(between-topic queries: p50 {percentile(hard_latencies, 0.5) * 1000:6.2f} ms, "
                          f"recall@10 {hard_recall:.3f})")
                vecs.nprobe = None  # the library default
                latencies, found = timed_search(vecs, queries[:50], allowed)
                assert all(set(f) <= set(allowed.tolist()) for f in found)
                print(f"   filtered (10% of chunks allowed, default lists): "
                      f"p50 {percentile(latencies, 0.5) * 1000:7.2f} ms  p95 {percentile(latencies, 0.95) * 1000:7.2f} ms")
                del vecs, index
            del x
            print(f"peak RSS so far {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
