"""Fan-out vector search over shard actors on a local Ray cluster vs one process holding the same vectors.

Usage: python bench/cluster_search.py [--sizes 1m,10m] [--shards 4] [--queries 200] [--out /tmp/exorag-cluster-bench]
Synthetic vectors (bench/search_scale.py's clustered Gaussian mixture, 384 dims, normalised), split over `--shards`
shards by id (id mod shards). Per size, one coarse quantizer and one code book are trained on a sample and shared
by every shard and by the one-process index, so both search exactly the same inverted lists: 1M chunks as
IVF-fp16 (what an exorag index migrates to; 0.78 KB a vector), 10M chunks as IVF-PQ (48 bytes of codes a vector: fp16
would take 7.7 GB, too much beside other work on a 24 GB machine). The one-process index is the shards' inverted
lists merged (IndexIVF.merge_from), so the vectors are identical.
Serving: a two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py), one actor per shard holding its FAISS file,
queried through exorag.cluster.serve.ShardedIndex.dense_search (the gateway the CLI uses: fan-out, merge by
score), against exorag.index.vectors.Vectors.search on the whole index in this process (one thread, as `exorag
search`). One query at a time; p50/p95 latency in ms over `--queries` queries after 20 warm-up ones, and how often
the sharded top 10 equals the single top 10. Deliberately left out: the store (chunks, bm25), which a synthetic
benchmark has no text for; concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from tests.ray_cluster import RAY_ENV  # noqa: E402

os.environ.update(RAY_ENV)  # before ray is imported: Ray reads it once, at import

import faiss  # noqa: E402

from search_scale import mixture, percentile  # noqa: E402

from exorag.cluster.layout import Layout, shard_folder  # noqa: E402
from exorag.index.vectors import VECTORS_FILE, Vectors, default_nprobe  # noqa: E402
from exorag.settings import Settings, configure  # noqa: E402

DIM = 384
SIZES = {  # name: (chunks, FAISS factory codes, inverted lists, nprobe)
    "1m": (1_000_000, "SQfp16", 2564, None),  # nlist_for(1M); nprobe: exorag's default (35% of the lists)
    "10m": (10_000_000, "PQ48", 2048, 128),
    "10k": (10_000, "SQfp16", 64, None),  # a smoke test of this script
}
BATCH = 200_000


class VectorShard:
    """A shard actor that holds only a FAISS file (the ShardActor protocol: where(), call(name, *args))."""

    def __init__(self, folder: str, model: str, settings: Settings | None = None) -> None:
        configure(settings)
        index = faiss.read_index(str(Path(folder) / VECTORS_FILE))
        self.folder = folder
        self.vectors = Vectors(folder=Path(folder), model=model, dim=index.d, index=index)

    def where(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "vectors": self.vectors.size}

    def call(self, name: str, vector: np.ndarray, k: int, filters: object = None) -> tuple[str, object]:
        assert name == "dense_search" and filters is None
        return "ok", self.vectors.search(vector, k)


def build(root: Path, n: int, codes: str, nlist: int, shards: int) -> None:
    """Train once, fill `shards` IVF indexes (id mod shards), save them, then merge them into the one-process index."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    trained = faiss.index_factory(DIM, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    trained.train(mixture(max(40 * nlist, 50_000), DIM, seed=7))
    print(f"  trained IVF{nlist},{codes} in {time.perf_counter() - t:.0f} s", flush=True)
    parts = [faiss.clone_index(trained) for _ in range(shards)]
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        x = mixture(min(BATCH, n - start), DIM, seed=1000 + start // BATCH)
        ids = np.arange(start, start + len(x), dtype=np.int64)
        for s, part in enumerate(parts):
            mask = ids % shards == s
            part.add_with_ids(np.ascontiguousarray(x[mask]), ids[mask])
    print(f"  added {n:,} vectors in {time.perf_counter() - t:.0f} s", flush=True)
    for s, part in enumerate(parts):
        shard_folder(root, s).mkdir(parents=True, exist_ok=True)
        faiss.write_index(part, str(shard_folder(root, s) / VECTORS_FILE))
    single = trained
    for part in parts:
        single.merge_from(part, 0)  # moves the lists: the shards' files are already written
    faiss.write_index(single, str(root / VECTORS_FILE))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(name: str, root: Path, shards: int, queries: np.ndarray, address: str) -> dict:
    from exorag.cluster.serve import ShardedIndex

    n, codes, nlist, nprobe = SIZES[name]
    settings = Settings().replace("index", nprobe=nprobe)
    configure(settings)
    single = Vectors(folder=root, model="synthetic", dim=DIM, index=faiss.read_index(str(root / VECTORS_FILE)))
    gateway = ShardedIndex(root, Layout(shards=shards, model="synthetic", dim=DIM), "synthetic", replicas=1,
                           settings=settings, actor=VectorShard)
    nodes = {w["node"] for replicas in gateway.where() for w in replicas}
    times: dict[str, list[float]] = {"single": [], "sharded": []}
    same = 0
    for i, q in enumerate(queries):
        t = time.perf_counter()
        a = single.search(q, 10)
        t1 = time.perf_counter()
        b = gateway.dense_search(q, 10)
        t2 = time.perf_counter()
        if i >= 20:
            times["single"].append((t1 - t) * 1000)
            times["sharded"].append((t2 - t1) * 1000)
            same += [c for c, _ in a] == [c for c, _ in b]
    gateway.close()
    measured = len(queries) - 20
    size_mb = sum(f.stat().st_size for f in root.rglob(VECTORS_FILE)) / 2 / 1e6
    row = {"size": name, "chunks": n, "kind": f"IVF{nlist},{codes}", "nprobe": default_nprobe(nlist),
           "shards": shards, "nodes": len(nodes), "index_mb": round(size_mb),
           "single_p50_ms": percentile(times["single"], 0.5), "single_p95_ms": percentile(times["single"], 0.95),
           "sharded_p50_ms": percentile(times["sharded"], 0.5), "sharded_p95_ms": percentile(times["sharded"], 0.95),
           "same_top10": f"{same}/{measured}", "bench_peak_rss_mib": round(peak_rss_mib())}
    del single
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default="/tmp/exorag-cluster-bench")
    args = parser.parse_args()
    from tests.ray_cluster import LocalCluster

    queries = mixture(args.queries + 20, DIM, seed=99)
    rows = []
    for name in args.sizes.split(","):
        root = Path(args.out) / name
        if not (root / VECTORS_FILE).exists():
            print(f"{name}: building in {root}", flush=True)
            build(root, SIZES[name][0], SIZES[name][1], SIZES[name][2], args.shards)
        with LocalCluster(nodes=2, cpus=2) as cluster:
            from exorag.cluster.driver import connect

            connect(cluster.address)
            rows.append(run(name, root, args.shards, queries, cluster.address))
            import ray

            ray.shutdown()
        print(rows[-1], flush=True)
    print("\n| chunks | per shard | shards x nodes | nprobe | one process p50 / p95 ms | fan-out p50 / p95 ms |"
          " same top 10 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['chunks']:,} | {r['kind']} | {r['shards']} x {r['nodes']} | {r['nprobe']} | "
              f"{r['single_p50_ms']:.1f} / {r['single_p95_ms']:.1f} | {r['sharded_p50_ms']:.1f} / "
              f"{r['sharded_p95_ms']:.1f} | {r['same_top10']} |")


if __name__ == "__main__":
    main()
