"""Benchmark of the sharded build (exorag cluster build) on a local Ray cluster on 127.0.0.1, and the figures the
README's sizing table is derived from.

0. Store stage alone (real; exorag.cluster.build._store, no embedding): --store-records (879: the whole demo
   corpus) records dealt into --store-files (4) JSONL files, 2 shards, on a one-node cluster (1 reader at a time)
   and on a two-node one (2 readers), 1 CPU per node: records/s, the busiest shard writer's storing time and the
   writers' CPU ms per record, records read per file (each file once), and the driver's own single-process read +
   chunk + tag time per record, wall and CPU (the work the readers divide).
1. Real: `exorag.cluster.build.build` on the first RECORDS records of the demo corpus, 2 shards, with 1 and then 2
   embedding workers (fresh roots), on a two-node cluster of 1 CPU per node: store seconds, embedding throughput
   (chunks/s over the whole stage, and steady: from the first part embedded to the last, i.e. without actor start),
   the ideal ratio (2 workers on 2 free cores: 2.0), chunks per document, store bytes per chunk, and the peak RSS of
   an embedding actor.
2. Synthetic (random unit vectors, NOT embeddings; no store): the vector stage at N_SYNTH chunks in 4 shards:
   train one IVF-fp16 quantiser (nlist = vectors.nlist_for(N)) on a 100,000 sample in the driver, add each
   shard's vectors as a Ray task into a copy of it (the shard_vectors step, minus reading parts), merge the
   inverted lists on disk (merge_ondisk): seconds and peak RSS of each process (per node: the largest task on it).
Run: `python bench/cluster_build.py [--records 200] [--synthetic 1000000] [--store-only]
[--out bench/cluster_build.json]`.
Prints one JSON object; with --store-only (step 0 alone) the other figures already in --out are kept.
Deliberately left out: more than one machine (this is a 2-core box shared with others: the
throughput per worker, not the wall time, is what extrapolates).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"})  # before ray
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tests.ray_cluster import LocalCluster  # noqa: E402

DEMO = REPO / "exorag" / "data" / "demo" / "ev_demo.jsonl.gz"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def embed_run(address: str, corpus: Path, workers: int, work: Path) -> dict:
    from exorag.cluster.build import build

    root = work / f"embed-{workers}"
    stamps: list[tuple[float, int, int]] = []
    report = build(root, [corpus], address, 2, workers=workers, part_size=64, progress=False,
                   on_part=lambda p: stamps.append((time.monotonic(), int(p["chunks"]), int(p["pid"]))))
    first = stamps[0][0]
    steady_chunks = sum(c for _, c, _ in stamps[1:])
    store_bytes = sum((root / f"shard-{s:03d}" / "store.sqlite").stat().st_size for s in range(2))
    return {"workers": workers, "chunks": report.chunks, "documents": report.documents["added"],
            "store_s": report.seconds["store"], "embed_s": report.seconds["embed"],
            "vectors_s": report.seconds["vectors"],
            "chunks_per_s_stage": round(report.chunks / report.seconds["embed"], 2),
            "chunks_per_s_steady": round(steady_chunks / (stamps[-1][0] - first), 2) if len(stamps) > 1 else None,
            "nodes": len(report.nodes), "actors": len({pid for _, _, pid in stamps}),
            "store_bytes_per_chunk": round(store_bytes / report.chunks)}


def store_run(address: str, files: list[Path], work: Path, nodes: int) -> dict:
    from exorag.cluster.build import BuildReport, _store
    from exorag.index.embed import canonical_name
    from exorag.settings import current

    settings = current().replace("index", model=canonical_name(current().index.model))
    root = work / f"store-{nodes}"
    report = BuildReport(root=str(root), shards=2)
    _store(root, files, 2, settings, 1, report, False)
    records = sum(report.reads.values())
    return {"nodes": nodes, "readers_at_once": nodes, "files": len(files), "records": records,
            "reads_per_file": sorted(set(report.reads.values())), "documents": report.documents["added"],
            "chunks": report.chunks, "store_s": report.seconds["store"],
            "records_per_s": round(records / report.seconds["store"], 1),
            "busiest_writer_s": report.seconds["writing"],
            "writer_records_per_s": round(report.received / 2 / max(report.seconds["writing"], 1e-9), 1),
            "writer_cpu_ms_per_record": round(report.seconds["writing_cpu"] * 1000 / max(report.received, 1), 2)}


def parse_ms_per_record(files: list[Path]) -> dict:
    """Single-process read + chunk + tag (exorag.build.ingest.parse_file, no store) per record, in ms of wall and of
    CPU time (the CPU time is what extrapolates to a quiet machine; the wall time here is inflated by the load)."""
    from exorag.build.ingest import parse_file
    from exorag.build.reader_process import ReaderProcess
    from exorag.index import embed

    count = embed.load().count_tokens
    readers = ReaderProcess()
    count("warm up the tokenizer")
    started, cpu, n = time.monotonic(), time.process_time(), 0
    try:
        for path in files:
            n += sum(1 for _ in parse_file(path, None, readers, count, lambda problem, bucket: None))
    finally:
        readers.close()
    return {"wall_ms_per_record": round((time.monotonic() - started) * 1000 / n, 2),
            "cpu_ms_per_record": round((time.process_time() - cpu) * 1000 / n, 2)}


def store_stage(work: Path, records: int, parts: int) -> dict:
    from exorag.cluster.driver import connect
    import ray

    with gzip.open(DEMO, "rt", encoding="utf-8") as src:
        lines = [line for _, line in zip(range(records), src)]
    files = []
    for i in range(parts):
        path = work / f"store-input-{i}.jsonl"
        path.write_text("".join(lines[i::parts]), encoding="utf-8")
        files.append(path)
    out: dict = {"parse_one_process": parse_ms_per_record(files), "runs": []}
    for nodes in (1, 2):
        with LocalCluster(nodes=nodes, cpus=1, memory_mb=3000) as cluster:
            connect(cluster.address)
            out["runs"].append(store_run(cluster.address, files, work, nodes))
            ray.shutdown()
    one, two = (r["records_per_s"] for r in out["runs"])
    out["ratio_2_to_1"] = round(two / one, 2)
    return out


def actor_rss(address: str) -> float:
    """Peak RSS (MB) of a process holding the warm embedder after embedding a batch (as an EmbedParts actor)."""
    import ray

    @ray.remote(num_cpus=1)
    def probe() -> float:
        from exorag.index import embed

        e = embed.load()
        e.encode(["exosomal PD-L1 suppresses T cells " * 20] * 64, batch_size=32)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return round(ray.get(probe.remote()), 1)


def add_shard(trained: np.ndarray, shard: int, n: int, dim: int, out: str) -> dict:
    """A copy of the trained IVF with `n` seeded random unit vectors under shard-range ids, written to `out`."""
    import faiss
    import ray

    from exorag.cluster.layout import first_chunk_id

    started = time.monotonic()
    index = faiss.deserialize_index(trained)
    rng = np.random.default_rng(shard)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index.add_with_ids(x, np.arange(start, start + m, dtype=np.int64) + first_chunk_id(shard) + 1)
    faiss.write_index(index, out)
    return {"shard": shard, "seconds": round(time.monotonic() - started, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "node": ray.get_runtime_context().get_node_id(), "bytes": os.path.getsize(out)}


def synthetic_run(address: str, n: int, work: Path, shards: int = 4, dim: int = 384) -> dict:
    import faiss
    import ray
    from faiss.contrib.ondisk import merge_ondisk

    from exorag.index.vectors import TRAIN_SAMPLE, nlist_for

    rng = np.random.default_rng(0)
    sample = rng.standard_normal((min(TRAIN_SAMPLE, n), dim), dtype=np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    started = time.monotonic()
    quantiser = faiss.index_factory(dim, f"IVF{nlist_for(n)},SQfp16", faiss.METRIC_INNER_PRODUCT)
    quantiser.train(sample)
    train_s = time.monotonic() - started
    del sample
    started = time.monotonic()
    trained = ray.put(faiss.serialize_index(quantiser))
    task = ray.remote(num_cpus=1)(add_shard)
    per = n // shards
    results = ray.get([task.remote(trained, s, per, dim, str(work / f"synth-{s}.faiss")) for s in range(shards)])
    add_s = time.monotonic() - started
    started = time.monotonic()
    merge_ondisk(quantiser, [str(work / f"synth-{s}.faiss") for s in range(shards)], str(work / "merged.ivfdata"))
    faiss.write_index(quantiser, str(work / "merged.faiss"))
    merge_s = time.monotonic() - started
    per_node: dict[str, float] = {}
    for r in results:
        per_node[r["node"]] = max(per_node.get(r["node"], 0.0), r["peak_rss_mb"])
    return {"chunks": n, "shards": shards, "nlist": int(quantiser.nlist), "train_s": round(train_s, 1),
            "add_wall_s": round(add_s, 1), "add_task_s": [r["seconds"] for r in results],
            "add_vectors_per_s_per_task": round(per / float(np.mean([r["seconds"] for r in results]))),
            "peak_rss_mb_per_node": sorted(per_node.values()), "shard_file_mb": round(results[0]["bytes"] / 2**20, 1),
            "merge_s": round(merge_s, 1), "merged_data_mb": round((work / "merged.ivfdata").stat().st_size / 2**20, 1),
            "driver_peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--synthetic", type=int, default=1_000_000)
    parser.add_argument("--out", default=None)
    parser.add_argument("--store-records", type=int, default=879)  # the whole demo corpus
    parser.add_argument("--store-files", type=int, default=4)
    parser.add_argument("--store-only", action="store_true")
    args = parser.parse_args()
    import ray

    from exorag.cluster.driver import connect

    work = Path(tempfile.mkdtemp(prefix="exorag-bench-cluster-"))
    corpus = work / "records.jsonl"
    with gzip.open(DEMO, "rt", encoding="utf-8") as src:
        corpus.write_text("".join(line for _, line in zip(range(args.records), src)), encoding="utf-8")
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}}
    if args.store_only and args.out and Path(args.out).exists():  # keep the other figures and their machine
        result = json.loads(Path(args.out).read_text(encoding="utf-8"))
    try:
        result["store"] = {"load_avg_start": os.getloadavg(), **store_stage(work, args.store_records,
                                                                           args.store_files)}
        result["store"]["load_avg_end"] = os.getloadavg()
        if args.store_only:
            raise SystemExit(finish(result, args.out, work, stamp=False))
        with LocalCluster(nodes=2, cpus=1, memory_mb=6000) as cluster:
            connect(cluster.address)
            result["embed"] = [embed_run(cluster.address, corpus, w, work) for w in (1, 2)]
            one, two = (r["chunks_per_s_steady"] or r["chunks_per_s_stage"] for r in result["embed"])
            result["embed_ratio_2_to_1"] = round(two / one, 2)
            result["embed_ratio_ideal"] = 2.0
            result["embed_actor_peak_rss_mb"] = actor_rss(cluster.address)
            if args.synthetic:
                result["synthetic"] = synthetic_run(cluster.address, args.synthetic, work)
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finish(result, args.out, work)


def finish(result: dict, out: str | None, work: Path, stamp: bool = True) -> int:
    shutil.rmtree(work, ignore_errors=True)
    if stamp:
        result["machine"]["load_avg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    main()
