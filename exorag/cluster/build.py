"""The sharded build (`exorag cluster build`): documents into N shard stores, embedded by a Ray Data actor pool,
vectors per shard (flat, or IVF with one quantiser for all shards), optionally merged on disk into one index.

Stages, each resumable, each finishing before the next starts (the driver only schedules and counts):
1. Store: one Ray task per input file (exorag.cluster.workers.read_file) reads, chunks and tags it once, under
   the per-file time limit, and sends each document in batches to the writer of its shard
   (layout.shard_of_document): one actor per shard (workers.ShardWriter), the only writer of that store, holding
   its write lock. Reading, chunking and tagging scale with the cores; storing with the shards. Documents
   (with their chunks and tags) cross the network once, to their writer. Unchanged documents are skipped by
   content hash, so a rerun, or a retried task, stores nothing twice. Not split: one big file is one task (files
   are read whole; a corpus of many files, such as PubMed's ~1,200 baseline files, spreads).
2. Embed: each shard lists its chunks with neither a vector nor a part (plan_shard, a task per shard); the parts
   go through `ray.data.from_items(...).map_batches(EmbedParts, concurrency=workers, num_cpus=...)`: an actor pool
   with one warm embedder per actor (the int8 ONNX backend of `exorag ingest`), each call writing whole parts
   atomically (exorag.cluster.parts). Ray restarts a killed actor and retries its call; a killed driver loses
   only the parts being embedded, and the same command embeds only what is missing.
3. Vectors: flat (exact) per shard while the corpus holds at most Settings.index.approx_threshold chunks;
   with `ivf` (or `merge`, or past the threshold) one IVF-fp16 quantiser (nlist = vectors.nlist_for(total)) is
   trained in the driver on a seeded sample drawn from all shards in proportion to their size (sample_shard),
   saved as ROOT/trained.faiss, and each shard's vectors are added into a copy of it by a Ray task
   (shard_vectors), saved as that shard's vectors.faiss with index.json kind "ivf-fp16", so `exorag search
   --index ROOT/shard-002` works as on any index. With `merge`, the shards' inverted lists are merged on disk
   (faiss.contrib.ondisk.merge_ondisk) into ROOT/merged.faiss + ROOT/merged.ivfdata, recorded in cluster.json
   as vectors "merged".
cluster.json is written first (so a rerun with another shard count is refused) with extra.complete false, and
again at the end. Deliberately left out: serving (exorag.cluster.serve), removing documents whose files are gone
(`exorag sync` on one shard does it), and storage: ROOT must be visible to every node (one machine or a shared
file system), as must the input files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from exorag.cluster.driver import connect, ray_module
from exorag.cluster.layout import Layout, is_cluster, read_layout, shard_folder, write_layout
from exorag.cluster.parts import PART_SIZE
from exorag.errors import ClusterError, ExoragError
from exorag.settings import Settings, current

TRAINED_FILE = "trained.faiss"
MERGED_FILE = "merged.faiss"
MERGED_DATA = "merged.ivfdata"
SEED = 0


@dataclass
class BuildReport:
    root: str
    shards: int
    documents: dict[str, int] = field(default_factory=dict)  # added, updated, unchanged
    chunks: int = 0
    embedded: int = 0  # chunks embedded by this run
    parts: int = 0  # parts written by this run
    kind: str = "flat"
    vectors: int = 0
    merged: bool = False
    dim: int | None = None
    nodes: list[str] = field(default_factory=list)  # nodes whose actors embedded (Ray node ids)
    workers: int = 0
    failed: list[str] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)  # input file -> records its one reader yielded
    received: int = 0  # documents the shard writers were sent (each document once, unless a task was retried)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _remote(fn: Any, cpus: float) -> Any:
    return ray_module().remote(num_cpus=cpus, max_retries=3)(fn)


def _gather(refs: list[Any], bar: tqdm | None = None) -> list[Any]:
    """ray.get of every ref, in order, ticking `bar` as each finishes; a failed task is a ClusterError."""
    ray = ray_module()
    results: dict[Any, Any] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            results[done[0]] = ray.get(done[0])
        except ray.exceptions.RayError as exc:  # a task's own error, or its worker lost past its retries
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ExoragError):
                raise cause from None
            raise ClusterError(f"a build task failed: {str(exc).splitlines()[-1] if str(exc) else exc}; what was "
                               "done is kept: run the same command again") from exc
        if bar is not None:
            bar.update(1)
    return [results[r] for r in refs]


def _check_layout(root: Path, shards: int, model: str) -> Layout:
    if is_cluster(root):
        layout = read_layout(root)
        if layout.shards != shards:
            raise ExoragError(f"{root} holds a sharded index of {layout.shards} shards, not {shards}; "
                              f"run with --shards {layout.shards}, or build into a new --index folder")
        if layout.model != model:
            raise ExoragError(f"{root} was built with model {layout.model!r}, not {model!r}")
        return layout
    if root.exists() and any(root.iterdir()):
        raise ExoragError(f"{root} is not empty and holds no sharded index (no cluster.json); "
                          "pick a new --index folder")
    return Layout(shards=shards, model=model)


def build(root: Path, paths: Iterable[Path], address: str, shards: int, *, ivf: bool = False, merge: bool = False,
          workers: int | None = None, cpus_per_worker: float = 1.0, part_size: int = PART_SIZE,
          progress: bool = True, on_part: Callable[[dict[str, Any]], None] | None = None,
          nlist: int | None = None) -> BuildReport:
    """Build (or bring up to date) the sharded index in `root` from `paths` on the Ray cluster at `address`.

    `on_part`: called in the driver for each part embedded, with {"shard", "chunks", "node", "pid"} (the Ray node
    id and process id of the actor that embedded it). `nlist`: inverted lists of the IVF (default
    vectors.nlist_for(chunks), which gives a single list below 78 chunks)."""
    from exorag.index import embed

    if shards < 1:
        raise ExoragError("--shards must be at least 1")
    root, paths = Path(root).resolve(), [Path(p).resolve() for p in paths]
    settings = current()
    model = embed.canonical_name(settings.index.model)
    layout = _check_layout(root, shards, model)
    write_layout(root, Layout(**{**asdict(layout), "extra": {**layout.extra, "complete": False}}))
    # each worker's ONNX session gets the cores it was given
    threads = max(1, int(cpus_per_worker))
    settings = settings.replace("index", model=model, onnx_threads=threads)
    joined = connect(address)
    report = BuildReport(root=str(root), shards=shards)
    try:
        _store(root, paths, shards, settings, threads, report, progress)
        plans = _embed(root, shards, settings, workers, cpus_per_worker, part_size, report, progress, on_part)
        _vectors(root, shards, settings, plans, ivf or merge, merge, layout, report, progress, nlist)
    finally:
        if joined:
            ray_module().shutdown()
    write_layout(root, Layout(shards=shards, model=model, dim=report.dim, vectors="merged" if merge else "shards",
                              kind=report.kind, merged_index=MERGED_FILE if merge else None,
                              extra={"complete": True, "chunks": report.chunks,
                                     "trained": TRAINED_FILE if report.kind == "ivf-fp16" else None,
                                     "merged_data": MERGED_DATA if merge else None}))
    return report


def _store(root: Path, paths: list[Path], shards: int, settings: Settings, threads: int, report: BuildReport,
           progress: bool) -> None:
    """Each input file read once by a task (workers.read_file), its documents stored by one writer actor per shard
    (workers.ShardWriter). Writers take no CPU of Ray's count (so readers are never starved of a slot by them) and
    are spread over the nodes; they die with this stage (or with a killed driver), and their locks with them."""
    from exorag.build.sources import expand_paths
    from exorag.cluster.workers import ShardWriter, read_file

    ray = ray_module()
    started = time.monotonic()
    files = list(expand_paths(paths, exclude=root))
    writer = ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3, scheduling_strategy="SPREAD")(ShardWriter)
    writers = [writer.remote(str(root), s, settings) for s in range(shards)]
    try:
        task = _remote(read_file, threads)
        with tqdm(total=len(files), unit="file", desc="storing", disable=not progress) as bar:
            results = _gather([task.remote(path, shards, writers, settings) for path in files], bar)
        finished = _gather([w.finish.remote() for w in writers])
    finally:
        for w in writers:
            ray.kill(w)
    for key in ("added", "updated", "unchanged"):
        report.documents[key] = sum(r[key] for r in results)
    report.chunks = sum(r["chunks"] for r in finished)
    report.failed = [p for r in results for p in r["failed"]]
    report.skipped = [p for r in results for p in r["skipped"]]
    for r in results:
        report.reads[r["path"]] = report.reads.get(r["path"], 0) + r["records"]
    report.received = sum(r["received"] for r in finished)
    report.seconds["writing"] = max((r["busy_s"] for r in finished), default=0.0)  # the busiest shard writer
    report.seconds["writing_cpu"] = round(sum(r["cpu_s"] for r in finished), 2)  # all writers' CPU time
    report.seconds["store"] = round(time.monotonic() - started, 2)


def _embed(root: Path, shards: int, settings: Settings, workers: int | None, cpus: float, part_size: int,
           report: BuildReport, progress: bool, on_part: Callable[[dict[str, Any]], None] | None = None
           ) -> list[dict[str, Any]]:
    """Embed every chunk without a vector or part; the shards' plans (as they were before embedding)."""
    from exorag.cluster.workers import EmbedParts, plan_shard

    ray = ray_module()
    started = time.monotonic()
    plans = _gather([_remote(plan_shard, 1).remote(root, s, settings, part_size) for s in range(shards)])
    report.seconds["plan"] = round(time.monotonic() - started, 2)
    items = [{"shard": p["shard"], "ids": ids.astype(np.int64).tobytes()} for p in plans for ids in p["todo"]]
    total = sum(len(ids) for p in plans for ids in p["todo"])
    if not items:
        report.seconds["embed"] = 0.0
        return plans
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    report.workers = workers
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        EmbedParts, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
        fn_constructor_kwargs={"root": str(root), "settings": settings})
    nodes: set[str] = set()
    with tqdm(total=total, unit="chunk", desc="embedding", disable=not progress) as bar:
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                done = int(np.sum(batch["chunks"]))
                bar.update(done)
                report.embedded += done
                report.parts += int((batch["chunks"] > 0).sum())
                nodes.update(str(n) for n in batch["node"])
                for i in range(len(batch["chunks"])) if on_part is not None else ():
                    on_part({key: getattr(batch[key][i], "item", lambda v=batch[key][i]: v)()
                             for key in ("shard", "chunks", "node", "pid")})
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"embedding failed on the cluster: {str(exc).splitlines()[-1]}; what was embedded "
                               "is kept: run the same command again") from exc
    report.nodes = sorted(nodes)
    report.seconds["embed"] = round(time.monotonic() - started, 2)
    return plans


def _vectors(root: Path, shards: int, settings: Settings, plans: list[dict[str, Any]], ivf: bool, merge: bool, layout: Layout,
             report: BuildReport, progress: bool, nlist: int | None = None) -> None:
    import faiss

    from exorag.cluster.workers import sample_shard, shard_vectors
    from exorag.index.embed import load
    from exorag.index.vectors import TRAIN_SAMPLE, nlist_for

    started = time.monotonic()
    total = sum(p["chunks"] for p in plans)
    kind = "ivf-fp16" if ivf or total > settings.index.approx_threshold or layout.kind == "ivf-fp16" else "flat"
    report.kind = kind
    dim = load(settings.index.model).dim
    report.dim = dim
    # anything to do: chunks embedded now (parts), vectors of deleted chunks, or a shard of another kind
    unchanged = not any(p["todo"] or p["stale"] or p["parts"] or p["kind"] != kind for p in plans)
    if unchanged and (not merge or (root / MERGED_FILE).exists()):
        report.vectors = sum(p["vectors"] for p in plans)
        report.merged = merge
        report.seconds["vectors"] = round(time.monotonic() - started, 2)
        return
    trained, trained_for = None, 0
    if kind == "ivf-fp16":
        sample = min(TRAIN_SAMPLE, total)
        counts = [math.ceil(sample * p["chunks"] / max(total, 1)) for p in plans]
        parts = _gather([_remote(sample_shard, 1).remote(root, s, counts[s], SEED, settings) for s in range(shards)])
        train = np.vstack([p for p in parts if p.size]).astype(np.float32)
        quantiser = faiss.index_factory(dim, f"IVF{nlist or nlist_for(total)},SQfp16", faiss.METRIC_INNER_PRODUCT)
        quantiser.train(train)
        faiss.write_index(quantiser, str(root / TRAINED_FILE))
        trained, trained_for = faiss.serialize_index(quantiser), total
    task = _remote(shard_vectors, 1)
    ref = ray_module().put(trained) if trained is not None else None
    with tqdm(total=shards, unit="shard", desc="vectors", disable=not progress) as bar:
        results = _gather([task.remote(root, s, settings, dim, ref, trained_for) for s in range(shards)], bar)
    report.vectors = sum(r["vectors"] for r in results)
    if merge:
        merge_shards(root, shards)
        report.merged = True
    report.seconds["vectors"] = round(time.monotonic() - started, 2)


def merge_shards(root: Path, shards: int) -> Path:
    """Merge the shards' IVF inverted lists on disk (faiss.contrib.ondisk.merge_ondisk) into ROOT/merged.faiss,
    whose lists live in ROOT/merged.ivfdata; read it with faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR).
    Both are made in ROOT/.merging and renamed into ROOT (the data file first); its path."""
    import shutil

    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    from exorag.index.vectors import VECTORS_FILE

    trained = faiss.read_index(str(root / TRAINED_FILE))
    if not isinstance(trained, faiss.IndexIVF):
        raise ExoragError("--merge needs IVF shards (the merge joins inverted lists)")
    work = root / ".merging"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    merge_ondisk(trained, [str(shard_folder(root, s) / VECTORS_FILE) for s in range(shards)], str(work / MERGED_DATA))
    faiss.write_index(trained, str(work / MERGED_FILE))
    del trained
    (work / MERGED_DATA).replace(root / MERGED_DATA)
    (work / MERGED_FILE).replace(root / MERGED_FILE)
    work.rmdir()
    return root / MERGED_FILE


def open_merged(root: Path) -> Any:
    """The merged IVF index of a build with `merge` (its inverted lists memory-mapped from merged.ivfdata)."""
    import faiss

    return faiss.read_index(str(Path(root) / MERGED_FILE), faiss.IO_FLAG_ONDISK_SAME_DIR)
