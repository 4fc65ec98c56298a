"""Whole `search` (hybrid, k=10) on a sharded index served from a local two-node Ray cluster vs the single index.

Usage: python bench/cluster_hybrid.py [--out /tmp/exo-serve] [--rounds 3]
The fixture corpus (tests/fixtures/corpus/ev_small.jsonl, 207 records, 573 chunks) as one index and as two shards
(tests/sharded.py; the shards take the single index's vectors), one actor per shard; tests/test_cluster_serve.py's
16 queries, `--rounds` times each, after a warm-up; p50/p95 in ms of retrieve.search on the single index, on the
sharded one with bm25 under global statistics (the default) and with each shard's own (global_bm25 = False).
Deliberately left out: large indexes (bench/cluster_search.py times the vector fan-out at 1M and 10M chunks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from tests.ray_cluster import RAY_ENV  # noqa: E402

os.environ.update(RAY_ENV)  # before ray is imported

from search_scale import percentile  # noqa: E402

from exorag.ask.retrieve import search  # noqa: E402
from exorag.cluster.serve import open_sharded  # noqa: E402
from exorag.index.index import open_index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/exo-serve")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from tests.conftest import corpus_records
    from tests.ray_cluster import LocalCluster
    from tests.sharded import make_sharded, make_single
    from tests.test_cluster_serve import QUERIES

    base = Path(args.out)
    if not (base / "single" / "vectors.faiss").exists():
        make_single(base / "single", corpus_records())
    if not (base / "sharded" / "cluster.json").exists():
        make_sharded(base / "sharded", corpus_records(), 2, vectors_from=base / "single")
    with LocalCluster(nodes=2) as cluster:
        sharded = open_sharded(base / "sharded", cluster.address, replicas=1)
        single = open_index(base / "single")
        for index in (single, sharded):
            search(index, "warm up exosomes", 10)
        for label, index, exact in (("single index", single, None), ("2 shards, global bm25", sharded, True),
                                    ("2 shards, per-shard bm25", sharded, False)):
            if exact is not None:
                sharded.global_bm25 = exact
            times = []
            for query in QUERIES * args.rounds:
                t = time.perf_counter()
                search(index, query, 10)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label}: search k=10 p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms "
                  f"({len(times)} searches)", flush=True)
        sharded.close()


if __name__ == "__main__":
    main()
