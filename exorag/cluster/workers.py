"""The work a cluster build sends to Ray workers, as plain functions and one class (exorag.cluster.build wraps them
with `ray.remote`; nothing here imports ray at module level).

- `read_file`: a task per input file: reads, chunks and tags it once through the one read loop
  (exorag.build.ingest.parse_file, with its per-file time limit and its problems by name) and sends each document,
  in batches, to the writer of its shard (layout.shard_of_document). A retried task sends its file again: the
  writers skip what is already stored (content hash).
- `ShardWriter`: an actor per shard, the only writer of that shard's store (whose chunk ids start at
  layout.first_chunk_id(shard)): it holds the shard's write lock (Index.writing) from start to `finish` and stores
  each document in its own transaction (Index.put_document), so a killed writer leaves whole documents and its lock
  dies with its process; Ray restarts it and retries the call.
- `plan_shard`: the chunks of the shard that have neither a vector nor an embedding part, grouped into parts.
- `EmbedParts`: the Ray Data actor: one warm embedder (the index's own backend, int8 ONNX for the bundled model)
  per actor; each call embeds whole parts, read from the shard store through a read-only connection, and writes
  them atomically (exorag.cluster.parts). Ray restarts a killed actor and retries its call.
- `sample_shard`: a seeded sample of the shard's vectors, for training the one IVF quantiser.
- `shard_vectors`: the shard's vectors.faiss from its old vectors and its parts, into a flat index or a copy of
  the trained empty IVF; each live chunk exactly once, vectors of deleted chunks dropped; then the parts go.
Deliberately left out: scheduling, progress and merging (build.py), and the storage itself (every node must see
ROOT, e.g. one machine or a shared file system).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from exorag.cluster.layout import first_chunk_id, shard_folder, shard_of_document
from exorag.cluster.parts import iter_parts, part_ids, plan, remove_parts, write_part
from exorag.errors import ExoragError, IndexBusy
from exorag.settings import Settings, configure
from exorag.types import Chunk, Derived, Document

T = TypeVar("T")
OUTCOMES = ("added", "updated", "unchanged")
BATCH = 64  # documents a reader sends a shard's writer at once
IN_FLIGHT = 8  # batches a reader may have sent and not yet seen stored
LOCK_WAIT_S = 120.0  # how long a task waits for a shard's write lock (a killed run's worker may still hold it)


def _when_free(step: Callable[[], T], wait_s: float = LOCK_WAIT_S) -> T:
    """`step()`, retried while another process holds the shard's write lock (IndexBusy), for at most `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return step()
        except IndexBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


class ShardWriter:
    """A Ray actor: the one writer of one shard store for the whole store stage. It holds the shard's write lock
    (Index.writing) from its start to `finish`, and stores the batches of (document, chunks, derived) that readers
    send it (`put`), unchanged documents skipped by content hash."""

    def __init__(self, root: str, shard: int, settings: Settings) -> None:
        from exorag.index.index import open_index

        configure(settings)
        self.shard = shard
        self.index = open_index(shard_folder(Path(root), shard), settings.index.model)
        self.held = contextlib.ExitStack()
        _when_free(lambda: self.held.enter_context(self.index.writing()))  # a killed run's writer may still hold it
        self.index.seed_chunk_ids(first_chunk_id(shard))
        self.received = 0
        self.busy_s = self.cpu_s = 0.0  # wall and CPU time spent storing

    def put(self, batch: list[tuple[Document, list[Chunk], Derived]]) -> dict[str, int]:
        """Store each document of `batch` (one transaction each); how many were added, updated, unchanged."""
        started, cpu = time.monotonic(), time.process_time()
        counts = dict.fromkeys(OUTCOMES, 0)
        for doc, chunks, derived in batch:
            counts[self.index.put_document(doc, chunks, derived)] += 1
        self.received += len(batch)
        self.busy_s += time.monotonic() - started
        self.cpu_s += time.process_time() - cpu
        return counts

    def finish(self) -> dict[str, Any]:
        """Release the lock and close the store; the shard's chunk count, the documents received, time storing."""
        chunks = self.index.chunk_count()
        self.held.close()
        self.index.close()
        return {"shard": self.shard, "chunks": chunks, "received": self.received,
                "busy_s": round(self.busy_s, 2), "cpu_s": round(self.cpu_s, 2), "node": _node()}


def read_file(path: Path, shards: int, writers: list[Any], settings: Settings) -> dict[str, Any]:
    """Read, chunk and tag one input file once (exorag.build.ingest.parse_file, under the per-file time limit) and
    send each document to the writer of its shard in batches of BATCH, at most IN_FLIGHT batches unanswered; what
    happened (records read, outcomes, the file's problems by name)."""
    import ray

    from exorag.build.ingest import parse_file
    from exorag.build.reader_process import ReaderProcess
    from exorag.index import embed

    configure(settings)
    count_tokens = embed.load(settings.index.model).count_tokens
    counts = dict.fromkeys(OUTCOMES, 0)
    problems: dict[str, list[str]] = {"failed": [], "skipped": []}
    pending: dict[int, list[Any]] = {s: [] for s in range(shards)}
    in_flight: list[Any] = []
    records = 0

    def tick() -> None:
        nonlocal records
        records += 1

    def settle(refs: list[Any]) -> None:
        for done in ray.get(refs):
            for key in OUTCOMES:
                counts[key] += done[key]

    def send(shard: int) -> None:
        in_flight.append(writers[shard].put.remote(pending[shard]))
        pending[shard] = []
        if len(in_flight) > IN_FLIGHT:  # backpressure: a reader never runs far ahead of the writers
            done, rest = ray.wait(in_flight, num_returns=len(in_flight) - IN_FLIGHT)
            in_flight[:] = rest
            settle(done)

    readers = ReaderProcess()
    try:
        for doc, chunks, derived in parse_file(Path(path), settings.build.file_timeout_s or None, readers, count_tokens,
                                               lambda problem, bucket: problems[bucket].append(str(problem)), tick):
            shard = shard_of_document(doc.id, shards)
            pending[shard].append((doc, chunks, derived))
            if len(pending[shard]) >= BATCH:
                send(shard)
        for shard in range(shards):
            if pending[shard]:
                send(shard)
        settle(in_flight)
    finally:
        readers.close()
    return {"path": str(path), "records": records, **counts, **problems, "node": _node()}


def _faiss_ids(folder: Path) -> tuple[np.ndarray, str | None]:
    """The ids in the shard's vectors.faiss (memory-mapped, not loaded) and its kind; none when there is no file."""
    import faiss

    from exorag.index.vectors import VECTORS_FILE, all_ids, kind_of

    path = folder / VECTORS_FILE
    if not path.exists():
        return np.zeros(0, np.int64), None
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    return np.unique(all_ids(index)), kind_of(index)


def _live(folder: Path, settings: Settings) -> np.ndarray:
    from exorag.index.index import live_chunk_ids, open_index

    index = open_index(folder, settings.index.model)
    try:
        return live_chunk_ids(index)
    finally:
        index.close()


def plan_shard(root: Path, shard: int, settings: Settings, part_size: int) -> dict[str, Any]:
    """The shard's chunk count, its parts to embed (id arrays), stale vectors, parts on disk and vector kind."""
    configure(settings)
    folder = shard_folder(root, shard)
    live = _live(folder, settings)
    have, kind = _faiss_ids(folder)
    done = np.union1d(have, part_ids(folder))
    missing = live[~np.isin(live, done, assume_unique=True)]
    return {"shard": shard, "chunks": len(live), "todo": plan(missing, first_chunk_id(shard), part_size),
            "stale": int((~np.isin(have, live, assume_unique=True)).sum()), "vectors": len(have),
            "parts": int(np.isin(part_ids(folder), live).sum()), "kind": kind}


class EmbedParts:
    """A Ray Data actor: embeds parts (rows {"shard", "ids": int64 bytes}) and writes them beside the shard store."""

    def __init__(self, root: str, settings: Settings) -> None:
        from exorag.index import embed

        configure(settings)
        self.root = Path(root)
        self.embedder = embed.load(settings.index.model)  # warm for every call of this actor
        self.node = _node()
        self.conns: dict[int, Any] = {}

    def _conn(self, shard: int) -> Any:
        from exorag.index import store

        if shard not in self.conns:
            self.conns[shard] = store.connect_readonly(shard_folder(self.root, shard))
        return self.conns[shard]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from exorag.index import embed, store

        out: dict[str, list[Any]] = {"shard": [], "chunks": [], "node": [], "pid": []}
        for shard, raw in zip(batch["shard"], batch["ids"]):
            shard = int(shard)
            ids = np.frombuffer(bytes(raw), dtype=np.int64).tolist()
            rows = list(store.iter_chunks(self._conn(shard), ids))
            if rows:
                texts = [embed.passage_text(title, chunk.text) for chunk, title in rows]
                vectors = self.embedder.encode(texts, batch_size=32)
                write_part(shard_folder(self.root, shard), np.array([c.id for c, _ in rows], np.int64), vectors)
            for key, value in (("shard", shard), ("chunks", len(rows)), ("node", self.node), ("pid", os.getpid())):
                out[key].append(value)
        return {key: np.array(values) for key, values in out.items()}


def sample_shard(root: Path, shard: int, count: int, seed: int, settings: Settings) -> np.ndarray:
    """`count` vectors of the shard's live chunks chosen by a seeded generator (from vectors.faiss and parts)."""
    configure(settings)
    folder = shard_folder(root, shard)
    live = _live(folder, settings)
    if count <= 0 or not len(live):
        return np.zeros((0, 0), np.float32)
    rng = np.random.default_rng([seed, shard])
    chosen = live if count >= len(live) else np.sort(rng.choice(live, count, replace=False))
    found: dict[int, np.ndarray] = {}
    for ids, vectors in _old_and_parts(folder):
        for i in np.flatnonzero(np.isin(ids, chosen)):
            found.setdefault(int(ids[i]), vectors[i])
    return np.vstack([found[i] for i in sorted(found)]).astype(np.float32) if found else np.zeros((0, 0), np.float32)


def _old_and_parts(folder: Path):  # type: ignore[no-untyped-def]
    """(ids, vectors) of the shard's existing vectors.faiss (decoded), then of each part."""
    import faiss

    from exorag.index.vectors import VECTORS_FILE, all_vectors

    if (folder / VECTORS_FILE).exists():
        yield all_vectors(faiss.read_index(str(folder / VECTORS_FILE)))
    yield from iter_parts(folder)


def shard_vectors(root: Path, shard: int, settings: Settings, dim: int, trained: np.ndarray | None,
                  trained_for: int) -> dict[str, Any]:
    """Write the shard's vectors.faiss (flat, or the trained IVF `trained` serialised) from its old vectors and
    parts; every live chunk exactly once. Raises ExoragError when a live chunk has no vector."""
    from exorag.index.index import live_chunk_ids, open_index
    from exorag.index.vectors import Vectors, new_flat

    configure(settings)
    folder = shard_folder(root, shard)
    index = open_index(folder, settings.index.model)

    def write() -> dict[str, Any]:
        import faiss

        with index.writing():
            live = live_chunk_ids(index)
            added = np.zeros(len(live), dtype=bool)
            target = faiss.deserialize_index(trained) if trained is not None else new_flat(dim)
            for ids, vectors in _old_and_parts(folder):
                pos = np.minimum(np.searchsorted(live, ids), max(len(live) - 1, 0))
                keep = (live[pos] == ids) if len(live) else np.zeros(len(ids), bool)
                ids, vectors, pos = ids[keep], vectors[keep], pos[keep]
                pos, first = np.unique(pos, return_index=True)
                new = ~added[pos]
                added[pos[new]] = True
                if new.any():
                    target.add_with_ids(np.ascontiguousarray(vectors[first][new], dtype=np.float32), live[pos[new]])
            if not added.all():
                raise ExoragError(f"{folder}: {int((~added).sum())} chunks have no vector after embedding; "
                                  "run the build again")
            Vectors(folder=folder, model=index.model_name, dim=dim, index=target, trained_for=trained_for).save()
            return {"shard": shard, "vectors": int(target.ntotal), "parts_removed": remove_parts(folder),
                    "node": _node()}

    try:
        return _when_free(write)
    finally:
        index.close()
