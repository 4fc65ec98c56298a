"""One shard of a sharded index, as the Ray actor that serves it: its store and its FAISS vectors, read-only.

`ShardActor(folder, model, settings)` opens the shard folder as an ordinary index (open_index) in the actor's
process, under the gateway's Settings (so EXORAG_NPROBE and the like are the same on every node), and loads its
vectors at once (a broken shard fails when the gateway starts, not at the first question). `call(name, *args)` runs
one read method of Index named in READS and hands back ("ok", value) or ("error", the ExoragError): the gateway
re-raises the library's own exception, not Ray's wrapper with a remote traceback. The query vector comes from the
gateway; a shard never loads the embedding model. Deliberately left out: writes (the builder,
`exorag cluster build`, writes shards) and Ray itself (serve.py makes this class an actor), so this file imports
without ray.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from exorag.errors import ExoragError
from exorag.settings import Settings, configure

READS = frozenset({
    "dense_search", "lexical_search", "allowed_chunk_ids", "term_chunk_counts", "long_forms",
    "get_document", "get_documents", "document_chunks", "get_chunks", "existing_chunk_ids",
    "chunk_count", "chunk_id_bound", "document_tags", "tag_values", "distinct_sources", "distinct_pub_types",
    "pub_type_counts", "counts", "year_counts", "source_counts", "recent_documents", "count_documents",
    "find_documents", "document_origins", "drift_warning",
})


class ShardActor:
    def __init__(self, folder: str, model: str, settings: Settings | None = None) -> None:
        from exorag.index.index import open_index

        if settings is not None:
            configure(settings)
        self.folder = Path(folder)
        self.index = open_index(self.folder, model)
        self.size = self.index.vectors.size  # load the FAISS file now

    def where(self) -> dict[str, Any]:
        """Which node and process serve this shard (for tests and `serve`'s start-up line)."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "host": socket.gethostname(),
                "folder": str(self.folder), "vectors": self.size}

    def call(self, name: str, *args: Any) -> tuple[str, Any]:
        if name not in READS:
            return "error", ExoragError(f"a shard serves reads only; {name!r} is not one")
        try:
            if name == "drift_warning":
                from exorag.index.index import drift_warning

                return "ok", drift_warning(self.index)
            return "ok", getattr(self.index, name)(*args)
        except ExoragError as exc:
            return "error", exc
