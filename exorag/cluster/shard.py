"""One shard of a sharded index, as the Ray actor that serves it: its store and its FAISS vectors, read-only.

`ShardActor(folder, model, settings)` opens the shard folder as an ordinary index (open_index) in the actor's
process, under the gateway's Settings (so EXORAG_NPROBE and the like are the same on every node), and loads its
vectors at once (a broken shard fails when the gateway starts, not at the first question). `call(name, *args)` runs
one read method of Index named in READS (or `global_lexical_search`, bm25 under the whole index's statistics) and hands back ("ok", value) or ("error", the ExoragError): the gateway
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
    "find_documents", "document_origins", "drift_warning", "fts_totals", "phrase_hits", "global_lexical_search",
})
CANDIDATES = 2  # a shard first rescores its local bm25 top CANDIDATES·k; deeper only when that cannot be enough


class ShardActor:
    def __init__(self, folder: str, model: str, settings: Settings | None = None) -> None:
        from exorag.index.index import open_index

        if settings is not None:
            configure(settings)
        self.folder = Path(folder)
        self.index = open_index(self.folder, model)
        self.size = self.index.vectors.size  # load the FAISS file now
        self.totals: tuple[int, int] | None = None  # fts_totals, read once: a served shard does not change

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
            if name == "global_lexical_search":
                return "ok", self.global_lexical_search(*args)
            return "ok", getattr(self.index, name)(*args)
        except ExoragError as exc:
            return "error", exc

    def global_lexical_search(self, match: str, k: int, filters: Any, rows: int, tokens: int,
                              hits: list[int]) -> list[tuple[int, float]]:
        """This shard's top k for `match` by bm25 under the whole index's statistics (rows, tokens, and per phrase
        of the expression the chunks holding it): candidates by local bm25, rescored (exorag/cluster/bm25.py),
        taken deeper until no row left out can beat the k-th."""
        from exorag.cluster import bm25

        phrases, positive = bm25.phrases(match)
        local_rows, local_tokens = self.totals = self.totals or self.index.fts_totals()
        if not phrases or not local_rows:
            return []
        global_idfs = [bm25.idf(rows, h) for h in hits]
        local_idfs = [bm25.idf(local_rows, h) for h in self.index.phrase_hits(phrases)]
        avgdl, local_avgdl = tokens / rows, local_tokens / local_rows
        factor = bm25.bound_factor(global_idfs, local_idfs, positive, avgdl, local_avgdl)
        depth = max(k, CANDIDATES * k)
        while True:
            local = self.index.lexical_search(match, depth, filters)
            found = self.index.phrase_frequencies([cid for cid, _ in local], phrases)
            scored = sorted(((cid, bm25.score(found[cid][1], found[cid][0], global_idfs, avgdl)) for cid, _ in local
                             if cid in found), key=lambda pair: (-pair[1], pair[0]))
            if len(local) < depth or (len(scored) >= k and scored[k - 1][1] > factor * local[-1][1]):
                return scored[:k]
            depth *= 4
