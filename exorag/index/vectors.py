"""The FAISS file: chunk vectors keyed by chunk id, plus `index.json` recording the model and the index kind.

Two kinds, chosen by size. "flat" (IndexIDMap2 over IndexFlatIP) is exact inner-product search on normalised
vectors, i.e. cosine, at 1.5 KB per 384-dim vector. Once `add` takes an index past `threshold` vectors (default
200,000, or `$EXORAG_APPROX_THRESHOLD`) it migrates to "ivf-fp16": an inverted file (IVF, nlist = 4·√n lists, at
most 1 per 39 training vectors; k-means trained on a sample of at most 100,000 of the vectors) whose residuals are
stored as float16, 0.78 KB per vector. A search visits 35% of the lists (`$EXORAG_NPROBE` sets a number): on the
real MiniLM vectors of the SciFact and demo indexes (11k, 16k) with real SciFact and BioASQ questions that gives
recall@10 >= 0.98 against exact, while 10% gives only ~0.9 (bench/search_scale.py --real); at 1M chunks it still
scans a third of the vectors, in ~1/3 of the exact time and half the memory. 8-bit codes would halve the memory
again but cap recall@10 near 0.98-0.99 even when every list is searched. The IVF keeps the chunk ids itself, so
`add`, `remove` (IVF remove_ids) and filtered search (an id selector; nprobe is widened when the filter leaves few
vectors) work on both kinds. When an IVF has grown to 4x the size it was trained for, it is retrained from its own
decoded vectors. An index never migrates back below the threshold.
Saving writes a temporary file beside the target and renames it over, so a crash never leaves
a torn index. A lock in each Vectors makes searches, adds, removals and saves from several threads safe (FAISS is
not safe to search while it changes). Single queries run on one thread (faster than two on this class of machine).
Deliberately left out: HNSW (no deletions in FAISS), product quantisation (lossier than the 8-bit codes, which
already cost recall, and no float32 copy is kept to re-rank from), GPUs and on-disk inverted lists.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from exorag.errors import DamagedIndex, ExoragError, IndexMismatch
from exorag.files import replace_atomically, write_atomic
from exorag.settings import current

VECTORS_FILE = "vectors.faiss"
META_FILE = "index.json"
Kind = Literal["flat", "ivf-fp16"]
APPROX_THRESHOLD = 200_000
PROBE_FRACTION = 0.35  # share of the inverted lists searched: recall@10 >= 0.98 on real MiniLM vectors and queries
MIN_NPROBE = 32
TRAIN_SAMPLE = 100_000
RETRAIN_GROWTH = 4  # retrain an IVF once it holds this many times the vectors it was trained for
MIN_PER_LIST = 39  # FAISS k-means wants >= 39 training points per centroid


def default_nprobe(nlist: int) -> int:
    """Lists to search: `$EXORAG_NPROBE`, else PROBE_FRACTION of them (at least MIN_NPROBE, at most all)."""
    value = current().index.nprobe
    if value:
        return max(1, min(nlist, value))
    return min(nlist, max(MIN_NPROBE, math.ceil(PROBE_FRACTION * nlist)))


def default_threshold() -> int:
    """`Settings.index.approx_threshold` ($EXORAG_APPROX_THRESHOLD, default APPROX_THRESHOLD)."""
    return current().index.approx_threshold


def kind_of(index: Any) -> Kind:
    return "ivf-fp16" if isinstance(index, faiss.IndexIVF) else "flat"


def nlist_for(n: int, sample: int = TRAIN_SAMPLE) -> int:
    """Inverted lists for `n` vectors: 4·√n, with at least MIN_PER_LIST training vectors per list."""
    return max(1, min(int(4 * math.sqrt(n)), min(n, sample) // MIN_PER_LIST))


def new_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def build_ivf(ids: np.ndarray, vectors: np.ndarray, sample: int = TRAIN_SAMPLE, seed: int = 0,
              codes: str = "SQfp16") -> Any:
    """An IVF index (float16 residuals; `codes="SQ8"` for 8-bit) trained on (a sample of) `vectors`, holding all
    of them under `ids`."""
    n, dim = vectors.shape
    index = faiss.index_factory(dim, f"IVF{nlist_for(n, sample)},{codes}", faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    train = vectors if n <= sample else vectors[np.sort(rng.choice(n, sample, replace=False))]
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core; search resets to one
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    for start in range(0, n, 100_000):
        index.add_with_ids(np.ascontiguousarray(vectors[start : start + 100_000], dtype=np.float32),
                           np.ascontiguousarray(ids[start : start + 100_000], dtype=np.int64))
    return index


def _list_ids(index: Any, list_no: int) -> np.ndarray:
    size = index.invlists.list_size(list_no)
    return faiss.rev_swig_ptr(index.invlists.get_ids(list_no), size).astype(np.int64) if size else np.zeros(0, np.int64)


def all_ids(index: Any) -> np.ndarray:
    if kind_of(index) == "flat":
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    parts = [_list_ids(index, i) for i in range(index.nlist)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def all_vectors(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every entry; for an IVF the vectors are decoded from their float16 codes."""
    if kind_of(index) == "flat":
        return all_ids(index), index.index.reconstruct_n(0, index.ntotal)
    ids, vecs = [], []
    code_size, coarse = index.code_size, index.coarse_code_size()
    for list_no in range(index.nlist):
        size = index.invlists.list_size(list_no)
        if not size:
            continue
        codes = faiss.rev_swig_ptr(index.invlists.get_codes(list_no), size * code_size).reshape(size, code_size)
        prefix = np.frombuffer(list_no.to_bytes(coarse, "little"), dtype=np.uint8)
        vecs.append(index.sa_decode(np.hstack([np.tile(prefix, (size, 1)), codes])))
        ids.append(_list_ids(index, list_no))
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    return np.concatenate(ids), np.vstack(vecs)


@dataclass
class Vectors:
    folder: Path
    model: str
    dim: int
    index: Any = field(repr=False)
    stamp: int | None = None  # mtime_ns of the file these vectors were loaded from or last saved to
    threshold: int = APPROX_THRESHOLD  # vectors above which a flat index migrates to IVF-fp16
    nprobe: int | None = None  # lists an IVF search visits; None: default_nprobe(nlist)
    trained_for: int = 0  # vectors the IVF was trained on (0 for flat)
    dirty: bool = False  # changed in memory since loaded or saved (add, remove, rebuild)
    # FAISS indexes are not safe to search while they are changed: every method below holds this lock (a search
    # takes milliseconds; embedding, the slow part of adding, happens before `add` is called)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> Kind:
        return kind_of(self.index)

    def ids(self) -> np.ndarray:
        with self._lock:
            return all_ids(self.index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexMismatch(f"vectors of dimension {vectors.shape[-1]} cannot go into an index of dimension {self.dim}")
        with self._lock:
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
            self.dirty = True
            if self.kind == "flat" and self.size > self.threshold:
                self.rebuild()
            elif self.kind == "ivf-fp16" and self.size > RETRAIN_GROWTH * max(1, self.trained_for):
                self.rebuild()

    def rebuild(self) -> None:
        """Train a fresh IVF-fp16 on the vectors held now (reconstructed from the current index) and switch to it."""
        with self._lock:
            ids, vecs = all_vectors(self.index)
            self.index = build_ivf(ids, vecs)
            self.trained_for = len(ids)

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        with self._lock:
            removed = int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))
            self.dirty = self.dirty or removed > 0
        return removed

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) for one normalised query vector, among the `allowed` ids when given."""
        with self._lock:
            return self._search(query, k, allowed)

    def _search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        faiss.omp_set_num_threads(1)
        k = min(k, self.size)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if self.kind == "flat":
            params = None if selector is None else faiss.SearchParameters(sel=selector)
            scores, ids = self.index.search(query, k, params=params)
        else:
            nlist = self.index.nlist
            nprobe = min(nlist, self.nprobe or default_nprobe(nlist))
            if allowed is not None:  # a filter keeping a fraction f of the vectors: probe ~1/f more lists
                nprobe = min(nlist, max(nprobe, math.ceil(4 * k * nlist / len(allowed))))
            while True:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe) if selector is not None \
                    else faiss.SearchParametersIVF(nprobe=nprobe)
                scores, ids = self.index.search(query, k, params=params)
                if nprobe >= nlist or int((ids[0] != -1).sum()) >= k:
                    break
                nprobe = min(nlist, nprobe * 4)  # too few hits within the probed lists: widen
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def describe(self) -> dict[str, Any]:
        if self.kind == "flat":
            return {"kind": "flat", "faiss": "IndexIDMap2(IndexFlatIP)"}
        return {"kind": "ivf-fp16", "faiss": f"IndexIVFScalarQuantizer(IVF{self.index.nlist},SQfp16)",
                "nlist": int(self.index.nlist), "nprobe": self.nprobe or default_nprobe(self.index.nlist),
                "trained_for": self.trained_for}

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / VECTORS_FILE
        with self._lock:
            try:
                replace_atomically(target, lambda tmp: faiss.write_index(self.index, str(tmp)))
            except (RuntimeError, OSError) as exc:  # e.g. a full disk: the old file stays, the temporary one is gone
                raise ExoragError(f"cannot write {target} ({str(exc).splitlines()[0] if str(exc) else exc}); "
                                  "the previous vectors are kept; free some space and run the command again") from exc
            self.stamp = target.stat().st_mtime_ns
            self.dirty = False
            _write_json(self.folder / META_FILE, {"model": self.model, "dim": self.dim, "metric": "cosine",
                                                  **self.describe(), "vectors": self.size})


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(payload, indent=2) + "\n")


def read_meta(folder: Path) -> dict[str, Any] | None:
    path = folder / META_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedIndex(f"{path}: unreadable index metadata ({exc}); `exorag check --repair` rewrites it") from exc
    if not isinstance(meta, dict):
        raise DamagedIndex(f"{path}: index metadata is not a JSON object (got {type(meta).__name__}); "
                           "`exorag check --repair` rewrites it")
    return meta


def open_vectors(folder: Path, model: str, dim: int, threshold: int | None = None) -> Vectors:
    """Open the vectors in `folder`, or start empty ones; raise IndexMismatch if they were made by another model.

    `threshold` (default `default_threshold()`) is the size past which a flat index migrates to IVF-fp16.
    """
    meta = read_meta(folder)
    path = folder / VECTORS_FILE
    if meta is not None and (meta.get("model") != model or int(meta.get("dim", dim)) != dim):
        raise IndexMismatch(
            f"the index in {folder} was built with model {meta.get('model')!r} (dimension {meta.get('dim')}), "
            f"not {model!r} (dimension {dim}); use --model {meta.get('model')} or a new --index folder"
        )
    stamp = None
    if path.exists():
        try:
            stamp = path.stat().st_mtime_ns
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise DamagedIndex(f"{path}: unreadable FAISS file ({str(exc).splitlines()[0]}); "
                               "`exorag check --repair` re-embeds every chunk from the store") from exc
        if index.d != dim:
            raise IndexMismatch(f"{path} holds vectors of dimension {index.d}, the model makes {dim}")
    else:
        index = new_flat(dim)
    meta = meta or {}
    trained_for = 0
    if kind_of(index) == "ivf-fp16":
        trained_for = int(meta.get("trained_for") or (index.nlist / 4) ** 2)
    return Vectors(folder=folder, model=model, dim=dim, index=index, stamp=stamp,
                   threshold=threshold if threshold is not None else default_threshold(), trained_for=trained_for)
