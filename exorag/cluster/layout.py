"""The on-disk layout of a sharded index: N ordinary index folders under one root, and `cluster.json`.

```
ROOT/cluster.json        {"format": 1, "shards": N, "model": ..., "dim": ..., "vectors": "shards" | "merged", ...}
ROOT/shard-000/ ...      each an ordinary exorag index folder (store.sqlite with its FTS5 table, vectors.faiss,
ROOT/shard-001/ ...      index.json): `exorag stats --index ROOT/shard-001` works on it as on any index
```
A document lives in exactly one shard, chosen by a stable hash of its id (`shard_of_document`), so running a build
again sends every document where it went before and unchanged ones are skipped. Chunk ids are global: shard i's
store hands out ids above `i << SHARD_BITS` (store.seed_chunk_ids), so a chunk id names its shard
(`shard_of_chunk`) and the FAISS ids of all shards can be merged into one index without clashes.
Deliberately left out: building (exorag/cluster/build.py) and serving (exorag/cluster/serve.py); this file only
names things and reads and writes cluster.json.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from exorag.errors import NotACluster
from exorag.files import write_atomic

CLUSTER_FILE = "cluster.json"
SHARD_BITS = 40  # 2**40 chunk ids per shard; int64 FAISS ids leave room for 2**23 shards
FORMAT = 1


@dataclass(frozen=True)
class Layout:
    """What cluster.json records. `vectors`: "shards" (each shard searches its own vectors.faiss) or "merged" (one
    IVF index over all shards, its inverted lists merged on disk, in `merged_index`)."""

    shards: int
    model: str
    dim: int | None = None
    vectors: Literal["shards", "merged"] = "shards"
    kind: str = "flat"
    merged_index: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT


def shard_folder(root: Path, shard: int) -> Path:
    return Path(root) / f"shard-{shard:03d}"


def shard_of_document(doc_id: str, shards: int) -> int:
    """The shard a document belongs to: crc32 of its id, mod the shard count (stable across runs and machines)."""
    return zlib.crc32(doc_id.encode("utf-8", "surrogatepass")) % shards


def first_chunk_id(shard: int) -> int:
    """Shard `shard`'s chunk ids are first_chunk_id(shard) + 1, + 2, ..."""
    return shard << SHARD_BITS


def shard_of_chunk(chunk_id: int) -> int:
    return int(chunk_id) >> SHARD_BITS


def is_cluster(root: Path) -> bool:
    return (Path(root) / CLUSTER_FILE).is_file()


def read_layout(root: Path) -> Layout:
    path = Path(root) / CLUSTER_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotACluster(f"{root} holds no sharded index (no {CLUSTER_FILE}); build one with "
                          "`exorag cluster build`") from None
    except (OSError, ValueError) as exc:
        raise NotACluster(f"{path} is unreadable ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("shards"), int) \
            or raw["shards"] < 1 or not isinstance(raw.get("model"), str):
        raise NotACluster(f"{path} is not a cluster.json of format {FORMAT} (shards, model)")
    known = {f for f in Layout.__dataclass_fields__}
    return Layout(**{k: v for k, v in raw.items() if k in known})


def write_layout(root: Path, layout: Layout) -> None:
    Path(root).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(root) / CLUSTER_FILE, json.dumps(asdict(layout), indent=2).encode("utf-8"))
