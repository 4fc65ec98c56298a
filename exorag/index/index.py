"""An index folder: the SQLite store, the FAISS vectors and the embedding model that goes with them.

`open_index(folder, model)` checks that the model asked for is the one the vectors were made with before it loads
anything heavy; the model and the vectors are loaded on first use, so `stats` and `show` stay instant.
`sync_vectors` makes the FAISS file match the store: it embeds chunks that have no vector and drops vectors whose
chunk is gone. Because chunk ids are never reused, running it after any interruption restores consistency without
losing or duplicating a vector. It and `check` hold the ids as int64 arrays (8 bytes a chunk, no Python object per
chunk) and read chunk texts in batches, so their memory beside the FAISS vectors themselves stays small.
`search_vectors` (the dense search) never returns a vector whose chunk is gone: it looks its hits up in the store
and, when one is missing, drops the stale vectors in memory (`drop_stale_vectors`) and searches again; the FAISS
file itself is fixed by the next write command's sync_vectors. Deliberately left out: parsing and chunking
(ingest.py), ranking (retrieve.py), and reconciling on open (the per-search lookup is cheaper and also covers
drift that appears while an index is open).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from exorag.index import embed, store
from exorag.errors import DamagedIndex, ExoragError, IndexBusy, IndexMismatch
from exorag.settings import current
from exorag.index.vectors import VECTORS_FILE, Vectors, open_vectors, read_meta

DEFAULT_FOLDER = Path("index")


def default_folder() -> Path:
    return current().index.folder


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An Index method from a store function: it takes the index's lock and passes the index's connection."""

    @functools.wraps(fn)
    def method(self: "Index", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(self._conn, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise store_failure(self.folder, exc) from exc

    return method


WRITE_LOCK = "write.lock"


def writes(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn(index, ...)` (a function or a generator) holding `index.writing()`: for every command that writes."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(index: Index, *args: Any, **kwargs: Any) -> Any:
            with index.writing():
                yield from fn(index, *args, **kwargs)
        return generator

    @functools.wraps(fn)
    def function(index: Index, *args: Any, **kwargs: Any) -> Any:
        with index.writing():
            return fn(index, *args, **kwargs)
    return function


def _take_write_lock(folder: Path) -> int:
    """An open descriptor holding an exclusive flock on folder/WRITE_LOCK (with this pid written in it)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise IndexBusy(f"another exorag process (pid {holder}) is writing to the index in {folder}; run this "
                        "command again when it has finished (two writers would embed the same chunks twice)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def store_failure(folder: Path, exc: sqlite3.DatabaseError) -> ExoragError:
    """The library's error for a failed store call: a full disk, a lock held by another process, or damage."""
    path, text = folder / store.STORE_FILE, str(exc)
    if "full" in text:
        return ExoragError(f"{path}: the disk is full ({text}); the document being written was rolled back and "
                           "nothing already stored is lost; free some space and run the command again")
    if "locked" in text or "busy" in text:
        return IndexBusy(f"{path}: {text}: another exorag process is writing to this index; try again when it is done")
    return DamagedIndex(f"{path} is damaged ({text}); `exorag check --repair --index {folder}` rebuilds the "
                        "full-text table and the vectors from the chunks; a damaged documents or chunks table cannot "
                        "be rebuilt: re-ingest the sources into a new --index folder")


@dataclass
class Index:
    """An open index folder. It owns its SQLite connection and lock: callers use the methods below (each takes the
    lock for one store call), never the connection. Safe to share between threads."""

    folder: Path
    model_name: str
    _conn: sqlite3.Connection = field(repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _write_depth: int = field(default=0, repr=False)
    _write_fd: int | None = field(default=None, repr=False)
    _fts_probed: bool = field(default=False, repr=False)
    _sync_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one sync_vectors at a time

    # documents and chunks
    put_document = _locked(store.put_document)
    remove_document = _locked(store.remove_document)
    get_document = _locked(store.get_document)
    get_documents = _locked(store.get_documents)
    document_chunks = _locked(store.document_chunks)
    document_hash = _locked(store.document_hash)
    get_chunks = _locked(store.get_chunks)
    chunk_ids = _locked(store.chunk_ids)
    chunk_count = _locked(store.chunk_count)
    chunk_id_bound = _locked(store.chunk_id_bound)
    seed_chunk_ids = _locked(store.seed_chunk_ids)
    existing_chunk_ids = _locked(store.existing_chunk_ids)
    # lexical search, filters, terms
    _lexical_search = _locked(store.lexical_search)
    _fts_answers = _locked(store.fts_answers)
    allowed_chunk_ids = _locked(store.allowed_chunk_ids)
    term_chunk_counts = _locked(store.term_chunk_counts)
    fts_totals = _locked(store.fts_totals)  # bm25 statistics, for the shards of a sharded index
    phrase_hits = _locked(store.phrase_hits)
    phrase_frequencies = _locked(store.phrase_frequencies)
    long_forms = _locked(store.long_forms)
    # tags and what the corpus holds
    document_tags = _locked(store.document_tags)
    tag_values = _locked(store.tag_values)
    distinct_sources = _locked(store.distinct_sources)
    distinct_pub_types = _locked(store.distinct_pub_types)
    pub_type_counts = _locked(store.pub_type_counts)
    counts = _locked(store.counts)
    year_counts = _locked(store.year_counts)
    source_counts = _locked(store.source_counts)
    recent_documents = _locked(store.recent_documents)
    count_documents = _locked(store.count_documents)
    find_documents = _locked(store.find_documents)

    @cached_property
    def embedder(self) -> embed.Embedder:
        return embed.load(self.model_name)

    _vectors: Vectors | None = field(default=None, repr=False)

    @property
    def vectors(self) -> Vectors:
        """The FAISS vectors; reloaded when another process (an `exorag ingest` beside a running app) saved newer ones."""
        path = self.folder / VECTORS_FILE
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if self._vectors is None or (stamp is not None and stamp != self._vectors.stamp):
            meta = read_meta(self.folder)
            dim = int(meta["dim"]) if meta and "dim" in meta else self.embedder.dim
            self._vectors = open_vectors(self.folder, self.model_name, dim)
        return self._vectors

    def lexical_search(self, match: str, k: int, filters: Any = None) -> list[tuple[int, float]]:
        """(chunk id, bm25 score) for an FTS5 MATCH expression within the filters (store.lexical_search). When it
        finds nothing, the full-text table is probed once per Index: garbled FTS pages answer every query with
        nothing, which must be an error (DamagedIndex), not an empty result."""
        found = self._lexical_search(match, k, filters)
        if not found and not self._fts_probed:
            self._fts_probed = True
            if not self._fts_answers():
                self._fts_probed = False
                raise DamagedIndex(f"the full-text table of {self.folder / store.STORE_FILE} is damaged (it finds "
                                   f"nothing the chunks hold); `exorag check --repair --index {self.folder}` rebuilds it")
        return found

    def dense_search(self, vector: np.ndarray, k: int, filters: Any = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) for a query vector among the chunks that pass `filters` (search_vectors): the
        one dense-search call of retrieve.py, which a sharded index (exorag/cluster/serve.py) answers by fan-out."""
        allowed = None
        if filters is not None and not filters.empty:
            allowed = np.array(self.allowed_chunk_ids(filters), dtype=np.int64)
            if len(allowed) == 0:
                return []
        return search_vectors(self, vector, k, allowed)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the folder's write lock (WRITE_LOCK, an flock) while a command writes: a second exorag process that
        wants to write the same index gets IndexBusy at once instead of embedding the same chunks twice. Re-entrant
        within this process (sync calls ingest, an upload calls sync_vectors)."""
        with self._lock:
            if not self._write_depth:
                self._write_fd = _take_write_lock(self.folder)
            self._write_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._write_depth -= 1
                if not self._write_depth and self._write_fd is not None:
                    os.close(self._write_fd)  # closing the descriptor releases the flock
                    self._write_fd = None

    def document_origins(self) -> list[tuple[str, str]]:
        """(document id, origin) of every document, read at once under the lock."""
        with self._lock:
            return list(store.document_origins(self._conn))

    def migrate(self) -> list[str]:
        """Recompute tags / abbreviations stored under older rules (open_index already did); what was redone."""
        from exorag.build import enrich

        with self._lock:
            return store.migrate(self._conn, enrich.derive, enrich.VERSIONS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_index(folder: Path | None = None, model: str | None = None) -> Index:
    """Open the index in `folder` (default ./index or $EXORAG_INDEX) for `model` (default: what built it)."""
    folder = Path(folder) if folder is not None else default_folder()
    if not (folder / store.STORE_FILE).exists() and ((folder / VECTORS_FILE).exists() or
                                                      (folder / "index.json").exists()):
        raise DamagedIndex(f"{folder / store.STORE_FILE} is missing but {folder} holds vectors: the store was "
                           "deleted or moved; it is not recreated empty (that would lose every document); restore "
                           "it, or re-ingest the sources into a new --index folder")
    meta = read_meta(folder)
    recorded = meta.get("model") if meta else None
    wanted = embed.canonical_name(model or current().index.model or recorded)
    if recorded and wanted != recorded:
        raise IndexMismatch(
            f"the index in {folder} was built with model {recorded!r}, not {wanted!r}; "
            f"query it with --model {recorded} or build a new index with --index"
        )
    from exorag.build import enrich  # the rules an older index's tags and abbreviations are recomputed by

    return Index(folder=folder, model_name=wanted, _conn=store.connect(folder, enrich.derive, enrich.VERSIONS))


def chunk_id_array(conn: sqlite3.Connection) -> np.ndarray:
    """Every chunk id, ascending, as int64 (8 bytes a chunk; no Python object per chunk)."""
    return np.fromiter(store.iter_chunk_ids(conn), dtype=np.int64, count=store.chunk_count(conn))


def live_chunk_ids(index: Index) -> np.ndarray:
    """Every chunk id of the index, ascending, as int64 (chunk_id_array under the index's lock)."""
    with index._lock:
        return chunk_id_array(index._conn)


def sync_vectors(index: Index, batch_size: int = 64, progress: bool = True, save_every_s: float = 30.0,
                 bar: Any = None) -> dict[str, int]:
    """Embed chunks that have no vector, drop vectors of deleted chunks; save atomically as it goes.

    Questions go on meanwhile: the index's lock is held only to compare the ids (and drop the stale vectors, first)
    and to read each batch of chunks; the embedding runs without it, and each batch's vectors go in under the
    vectors' own lock. A search during a sync therefore sees the stale vectors already gone and the new document's
    vectors arriving batch by batch (its chunks are in the store, so the lexical side finds them all along), never a
    vector whose chunk is gone. Syncs of one Index run one at a time (`_sync_lock`).

    Memory: the id lists are int64 arrays and chunks are read `batch_size * 4` at a time. `bar`: a tqdm bar to
    carry on (exorag.index.embed_thread's), whose total becomes what it has counted plus what is missing now.
    """
    with index._sync_lock:
        return _sync_vectors(index, batch_size, progress, save_every_s, bar)


def _sync_vectors(index: Index, batch_size: int, progress: bool, save_every_s: float, bar: Any) -> dict[str, int]:
    with index._lock:
        vectors = index.vectors
        have = np.unique(vectors.ids())
        want = chunk_id_array(index._conn)
        removed = vectors.remove(have[~np.isin(have, want, assume_unique=True)])
    missing = want[~np.isin(want, have, assume_unique=True)].tolist()
    del have, want
    added = 0
    last_save = time.monotonic()
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(missing), unit="chunk", desc="embedding", disable=not progress or not missing)
    else:
        bar.total = bar.n + len(missing)
        bar.refresh()
    try:
        step = batch_size * 4
        for start in range(0, len(missing), step):
            done = embed_batch(index, index._conn, missing[start : start + step], batch_size, lock=index._lock)
            added += done
            bar.update(done)
            if time.monotonic() - last_save > save_every_s:
                vectors.save()
                last_save = time.monotonic()
    finally:
        bar.close()
        if added or removed or vectors.dirty or not (index.folder / VECTORS_FILE).exists():
            vectors.save()  # dirty: drop_stale_vectors removed some in memory before this sync
    return {"added": added, "removed": removed, "total": vectors.size}


def embed_batch(index: Index, conn: sqlite3.Connection, ids: list[int], batch_size: int = 64,
                lock: Any = None) -> int:
    """Embed the chunks `ids` (read through `conn`, under `lock` when the connection is shared; ids without a chunk
    are skipped) and add their vectors in memory; how many were added. The one embedding step of sync_vectors and of
    ingest's EmbedThread. The embedding itself runs without any lock."""
    with lock if lock is not None else contextlib.nullcontext():
        rows = list(store.iter_chunks(conn, ids))
    if not rows:
        return 0
    texts = [embed.passage_text(title, chunk.text) for chunk, title in rows]
    vecs = index.embedder.encode(texts, batch_size=batch_size)
    index.vectors.add(np.array([chunk.id for chunk, _ in rows], dtype=np.int64), vecs)
    return len(rows)


def drop_stale_vectors(index: Index) -> int:
    """Remove from the vectors in memory (not from the file: only a write command saves) every vector whose chunk
    is gone; returns how many. One pass over the ids: the store's chunk ids and the FAISS ids, as int64 arrays."""
    with index._lock:
        vectors = index.vectors
        have = np.unique(vectors.ids())
        return vectors.remove(have[~np.isin(have, live_chunk_ids(index), assume_unique=True)])


def search_vectors(index: Index, vector: np.ndarray, k: int,
                   allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Top-k (chunk id, cosine) among the vectors whose chunk exists: never a vector of a removed chunk.

    `allowed` ids come from the store, so a filtered search needs no check. Otherwise the hits' ids are looked up
    in the store (primary-key lookups of at most k ids); only when one is missing (a `remove` or a replacement
    whose vectors were not saved yet, e.g. killed between the store commit and the FAISS save) are the stale
    vectors dropped in memory (drop_stale_vectors) and the search run again, so the ranking is that of a
    consistent index.
    """
    hits = index.vectors.search(vector, k, allowed)
    if allowed is not None or not hits:
        return hits
    for attempt in range(2):
        live = index.existing_chunk_ids([cid for cid, _ in hits])
        if len(live) == len(hits):
            return hits
        if attempt == 0:
            drop_stale_vectors(index)
            hits = index.vectors.search(vector, k, None)
    return [(cid, score) for cid, score in hits if cid in live]  # a writer removed more meanwhile


def check(index: Index, repair: bool = False, progress: bool = False, integrity: bool = True) -> dict[str, Any]:
    """Check the store (SQLite's quick_check and FTS5's integrity check, unless `integrity` is off) and compare its
    chunk ids with the FAISS ids; with `repair`, rebuild a damaged full-text table from the chunks, set an
    unreadable FAISS file aside and re-embed, and fix the drift through sync_vectors.

    Returns chunks, vectors, missing (chunks without a vector), stale (vectors without a chunk), store_problems,
    vectors_damaged, consistent, and with `repair` the vectors added and removed, fts_rebuilt and repaired. A damaged
    documents or chunks table is reported, not repaired (nothing to rebuild it from). Loads the embedding model only
    when there is something to embed.
    """
    with index.writing() if repair else contextlib.nullcontext():
        return _check(index, repair, progress, integrity)


def _check(index: Index, repair: bool, progress: bool, integrity: bool) -> dict[str, Any]:
    with index._lock:
        problems = store.integrity_problems(index._conn) if integrity else []
        remaining, fts_rebuilt = problems, False
        if repair and any(p.startswith("full-text") for p in problems):
            store.rebuild_fts(index._conn)  # refilled from chunks and titles
            remaining, fts_rebuilt = store.integrity_problems(index._conn), True
            index._fts_probed = False
        try:
            want = chunk_id_array(index._conn)
        except sqlite3.DatabaseError as exc:
            raise store_failure(index.folder, exc) from exc
    have = np.zeros(0, dtype=np.int64)
    damaged_vectors = ""
    try:
        if read_meta(index.folder) is not None or (index.folder / VECTORS_FILE).exists():
            have = np.unique(index.vectors.ids())
    except DamagedIndex as exc:
        damaged_vectors = str(exc)
        if repair:  # set the damaged files aside and embed every chunk again from the intact store
            for name in (VECTORS_FILE, "index.json"):
                if (index.folder / name).exists():
                    (index.folder / name).replace(index.folder / f"{name}.damaged")
            index._vectors = None
    result: dict[str, Any] = {
        "chunks": len(want), "vectors": len(have),
        "missing": int((~np.isin(want, have, assume_unique=True)).sum()),
        "stale": int((~np.isin(have, want, assume_unique=True)).sum()),
        "store_problems": problems, "vectors_damaged": damaged_vectors,
    }
    result["consistent"] = not (result["missing"] or result["stale"] or problems or damaged_vectors)
    if repair and not result["consistent"]:
        synced = sync_vectors(index, progress=progress)
        result.update(added=synced["added"], removed=synced["removed"], fts_rebuilt=fts_rebuilt,
                      repaired=not remaining)
    return result


def drift_warning(index: Index) -> str | None:
    """A cheap check (counts only) before a search: a message when vectors and chunks differ in number."""
    if read_meta(index.folder) is None and not (index.folder / VECTORS_FILE).exists():
        return None
    chunks, vectors = index.chunk_count(), index.vectors.size
    if chunks == vectors:
        return None
    return (f"the index in {index.folder} has {chunks} chunks but {vectors} vectors (an interrupted run?); "
            f"results may be incomplete; run `exorag check --repair --index {index.folder}`")


def stats(index: Index) -> dict[str, Any]:
    """What `exorag stats` shows: counts, model, size, drift, and the values filters can take (sources, publication
    types, study tags), each with its number of documents."""
    meta = read_meta(index.folder)
    counts = index.counts()
    drift = check(index, integrity=False)
    return {
        "index": str(index.folder), "documents": counts["documents"], "chunks": counts["chunks"],
        "vectors": index.vectors.size if meta else 0, "model": index.model_name,
        "dim": meta.get("dim") if meta else None, "size_bytes": disk_size(index.folder), "sources": counts["sources"],
        "vector_index": (meta.get("kind") or "flat") if meta else None,
        "consistent": drift["consistent"], "missing_vectors": drift["missing"], "stale_vectors": drift["stale"],
        "publication_types": dict(index.pub_type_counts()),
        "tags": {key: dict(values) for key, values in index.tag_values().items() if values},
    }


def disk_size(folder: Path) -> int:
    """Bytes used by the index folder's files."""
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file())
