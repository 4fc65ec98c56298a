"""Embedding parts: the resumable unit of a cluster build's embedding, one `.npz` file per group of chunks.

```
ROOT/shard-003/parts/<first id:016x>-<last id:016x>-<count>.npz    {"ids": int64 (n,), "vectors": float32 (n, dim)}
```
A part holds the vectors of chunks of one shard whose ids fall in one window of `part_size` consecutive ids above
the shard's first id, so the same chunks always group into the same parts. A part is written to a temporary file
and renamed (exorag.files), so a part on disk is complete; a part that is written twice (a retried actor call, a
driver run again) is written with the same name. `plan` groups the chunks that have neither a vector in the
shard's vectors.faiss nor a part into new parts: after a killed worker or driver, running the build again embeds
exactly those. Parts are deleted once the shard's vectors.faiss holds them (exorag.cluster.workers.shard_vectors).
Deliberately left out: compression (float32 as embedded; parts are temporary) and reading them from other
machines (ROOT is on storage every node sees).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from exorag.files import replace_atomically

PARTS = "parts"
PART_SIZE = 256  # chunks per part: ~2-10 s of one embedding worker, so a killed worker loses little


def parts_folder(shard_folder: Path) -> Path:
    return Path(shard_folder) / PARTS


def part_path(shard_folder: Path, ids: np.ndarray) -> Path:
    return parts_folder(shard_folder) / f"{int(ids[0]):016x}-{int(ids[-1]):016x}-{len(ids)}.npz"


def write_part(shard_folder: Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """Write one part atomically; its path."""
    ids = np.asarray(ids, dtype=np.int64)
    path = part_path(shard_folder, ids)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, ids=ids, vectors=np.asarray(vectors, dtype=np.float32))

    replace_atomically(path, write)
    return path


def part_files(shard_folder: Path) -> list[Path]:
    folder = parts_folder(shard_folder)
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def iter_parts(shard_folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of every part of the shard, in id order."""
    for path in part_files(shard_folder):
        with np.load(path) as part:
            yield part["ids"].astype(np.int64), part["vectors"].astype(np.float32)


def part_ids(shard_folder: Path) -> np.ndarray:
    """The chunk ids held by the shard's parts (sorted, unique); reads only the ids of each file."""
    found = []
    for path in part_files(shard_folder):
        with np.load(path) as part:
            found.append(part["ids"].astype(np.int64))
    return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def remove_parts(shard_folder: Path) -> int:
    files = part_files(shard_folder)
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)


def plan(missing: np.ndarray, base: int, part_size: int = PART_SIZE) -> list[np.ndarray]:
    """The sorted chunk ids `missing` of a shard whose ids start after `base`, grouped by window of `part_size`."""
    missing = np.unique(np.asarray(missing, dtype=np.int64))
    if not len(missing):
        return []
    window = (missing - base - 1) // part_size
    cuts = np.flatnonzero(np.diff(window)) + 1
    return list(np.split(missing, cuts))
