"""Vector search at 10k, 100k and 1M chunks on synthetic clustered vectors: latency, recall@10 vs exact, memory.

Usage: python bench/search_scale.py [--sizes 10000,100000,1000000] [--queries 200] [--kinds flat,ivf-fp16,ivf-sq8]
       [--nprobe 8,16,32,64] [--dim 384]
Vectors are normalised draws from a two-level Gaussian mixture (shared direction, topics, sub-topics, noise; real embeddings are
clustered, not uniform), tuned so that a query's 10th neighbour has a cosine near the one real MiniLM chunks have
(~0.56 in the SciFact index), with random pairs at cosine ~0.12 as there; queries are held-out draws of the same mixture. Each index is built with rag.vectors (`flat` exact, the
`ivf-fp16` kind that an index migrates to past the threshold, and `ivf-sq8`, 8-bit codes, for comparison) and
searched through `Vectors.search`, one query at a time on one thread, as `exorag search` does. Per size and kind:
build seconds, p50/p95 latency, recall@10 against exact (FAISS flat over the same vectors), bytes per chunk of the
saved index file (vectors or codes, ids, centroids: what the index holds in memory), and the peak RSS (getrusage)
after each size, which includes the float32 data and the exact index of the bench itself; and the RSS of a fresh
process that opens the saved index with rag.vectors.open_vectors and searches it (what `exorag search` would hold). A filtered search
(an id selector keeping 10% of the chunks) is timed too.
"""

from __future__ import annotations

import argparse
import json
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

from rag import vectors as rv  # noqa: E402


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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SERVE = """
import json, resource, sys
from pathlib import Path
import numpy as np
from rag.vectors import open_vectors
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = rss()
v = open_vectors(Path(sys.argv[1]), "synthetic", int(sys.argv[2]))
q = np.random.default_rng(0).normal(size=(20, int(sys.argv[2]))).astype(np.float32)
for row in q:
    v.search(row / np.linalg.norm(row), 10)
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss() - before]))
"""


def serving_rss(folder: Path, dim: int) -> tuple[float, float]:
    """(peak RSS MiB, RSS MiB added by opening the index) of a new process that opens `folder` and searches it."""
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
    parser.add_argument("--nprobe", default="8,16,32,64")
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    probes = [int(p) for p in args.nprobe.split(",")]
    queries = mixture(args.queries, args.dim, seed=99)
    print(f"synthetic {args.dim}-dim clustered vectors; {args.queries} single queries, k=10, 1 search thread; "
          f"library nprobe default {rv.NPROBE}")
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
            del exact
            print(f"\n== {n:,} chunks (data + exact top-10 in {time.perf_counter() - started:.1f} s; "
                  f"mean cosine of the 1st / 10th neighbour {top_scores[:, 0].mean():.2f} / {top_scores[:, 9].mean():.2f})")
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
                for nprobe in settings:
                    if nprobe is not None:
                        vecs.nprobe = nprobe
                    latencies, found = timed_search(vecs, queries)
                    recall = statistics.fmean(len(truth[i] & set(f)) / 10 for i, f in enumerate(found))
                    label = "exact" if nprobe is None else f"nprobe {nprobe:3d}"
                    print(f"   {label:11s} p50 {percentile(latencies, 0.5) * 1000:7.2f} ms  "
                          f"p95 {percentile(latencies, 0.95) * 1000:7.2f} ms  recall@10 {recall:.3f}")
                vecs.nprobe = rv.NPROBE
                latencies, found = timed_search(vecs, queries[:50], allowed)
                assert all(set(f) <= set(allowed.tolist()) for f in found)
                print(f"   filtered (10% of chunks allowed, nprobe {rv.NPROBE if kind != 'flat' else '-'}): "
                      f"p50 {percentile(latencies, 0.5) * 1000:7.2f} ms  p95 {percentile(latencies, 0.95) * 1000:7.2f} ms")
                del vecs, index
            del x
            print(f"peak RSS so far {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
