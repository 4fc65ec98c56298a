"""The FAISS file: chunk vectors keyed by chunk id, plus `index.json` recording the model that made them.

Exact inner-product search (IndexFlatIP inside an IndexIDMap2) on normalised vectors, i.e. cosine. Saving
writes a temporary file beside the target and renames it over, so a crash never leaves a torn index.
Single queries run on one thread (faster than two on this class of machine). Deliberately left out:
approximate indexes (HNSW/IVF) for very large collections.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .errors import ExoragError, IndexMismatch

VECTORS_FILE = "vectors.faiss"
META_FILE = "index.json"


@dataclass
class Vectors:
    folder: Path
    model: str
    dim: int
    index: Any = field(repr=False)
    stamp: int | None = None  # mtime_ns of the file these vectors were loaded from or last saved to

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.shape[1] != self.dim:
            raise IndexMismatch(f"vectors of dimension {vectors.shape[1]} cannot go into an index of dimension {self.dim}")
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) for one normalised query vector, among the `allowed` ids when given."""
        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        faiss.omp_set_num_threads(1)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self.index.search(query, min(k, self.size), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / VECTORS_FILE
        tmp = target.with_suffix(".faiss.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, target)
        self.stamp = target.stat().st_mtime_ns
        _write_json(self.folder / META_FILE, {"model": self.model, "dim": self.dim, "metric": "cosine",
                                              "faiss": "IndexIDMap2(IndexFlatIP)", "vectors": self.size})


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_meta(folder: Path) -> dict[str, Any] | None:
    path = folder / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExoragError(f"{path}: unreadable index metadata ({exc})") from exc


def open_vectors(folder: Path, model: str, dim: int) -> Vectors:
    """Open the vectors in `folder`, or start empty ones; raise IndexMismatch if they were made by another model."""
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
            raise ExoragError(f"{path}: unreadable FAISS file ({str(exc).splitlines()[0]})") from exc
        if index.d != dim:
            raise IndexMismatch(f"{path} holds vectors of dimension {index.d}, the model makes {dim}")
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    return Vectors(folder=folder, model=model, dim=dim, index=index, stamp=stamp)
