"""Serving a sharded index from a Ray cluster: shard actors, and the gateway (`ShardedIndex`) that fans out to them.

`open_sharded(root, address, replicas)` connects to the cluster, starts `replicas` ShardActors (exorag/cluster/
shard.py) for each shard folder of `root` (cluster.json, exorag/cluster/layout.py), spread over the nodes, and
returns a ShardedIndex: an object with the read methods of Index that retrieve.py, answer.py, cite.py, table.py and
the browser chat use, so they run unchanged in the gateway. The gateway embeds the query once (it holds the
embedder) and sends the vector to every shard; per-paper fusion, expansion, the judge and the answer are computed
here, on the merged candidates.

- Fan-out: a call that needs every shard (dense and lexical search, counts, term counts, long forms, overviews) is
  sent to one replica of each shard at once and the answers merged (exorag/cluster/merge.py). Filters travel as the
  Filters object, each shard applying them in SQL and to its FAISS ids. Lookups are routed: a chunk id names its
  shard (shard_of_chunk), a document id too (shard_of_document).
- Dense search is exact on flat shards: each returns its own top k by cosine and the merge keeps the best k, the
  same hits and scores as one index over the same vectors.
- Lexical search scores with the whole index's statistics, as Elasticsearch's dfs_query_then_fetch does: the
  gateway sums the shards' row and token counts (once) and each phrase's chunk count (per phrase, remembered), and each shard
  rescores its bm25 candidates with those figures (exorag/cluster/bm25.py), so the scores are the single index's
  and so are the hybrid ranking and the answers. FTS5's own bm25 on a shard uses that shard's IDF and average
  length (Elasticsearch's default query_then_fetch): `global_bm25 = False` serves that way, and
  tests/test_cluster_serve.py measures how much it changes (two shards of the fixture corpus: identical hybrid
  top 10 for 0 of 16 queries, the same answer for 3 of 6 questions).
- Replicas: the gateway takes each shard's replicas in turn (round-robin). A replica that died is replaced (a new
  actor on the same shard folder) and the call sent again once; a shard that cannot be brought back raises
  ShardUnavailable naming it.
- Read-only: `writing()` raises ReadOnlyIndex, so ingest, sync, remove and the chat's uploads and removals are
  refused with a message naming `exorag cluster build`.
Deliberately left out: writing shards (exorag/cluster/build.py), Ray Serve (plain actors carry the load of a chat;
HTTP stays with the Gradio app), and a merged IVF across shards (layout "merged").
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from exorag.cluster import merge
from exorag.cluster.driver import connect
from exorag.cluster.layout import Layout, read_layout, shard_folder, shard_of_chunk, shard_of_document
from exorag.errors import IndexMismatch, ReadOnlyIndex, ShardUnavailable
from exorag.settings import Settings, current

ACTOR_CPUS = 0.25  # a shard actor mostly waits on SQLite and one-thread FAISS; 2 shards x 2 replicas fit one CPU
ACTOR_THREADS = 4  # calls one actor serves at once (Index is thread-safe: its lock covers each store call)
CALL_TIMEOUT_S = 120.0
START_TIMEOUT_S = 300.0  # a shard loads its FAISS file when it starts
PHRASES_KEPT = 100_000  # phrase counts the gateway remembers


class ShardedIndex:
    """The read interface of Index over the shards of a sharded index served by actors (see the module docstring)."""

    def __init__(self, root: Path, layout: Layout, model_name: str, replicas: int = 1,
                 settings: Settings | None = None, actor: type | None = None) -> None:
        """`actor`: the class each shard actor runs (default ShardActor; bench/cluster_search.py passes one that
        holds synthetic vectors only), constructed as actor(shard folder, model name, settings)."""
        import ray

        from exorag.cluster.shard import ShardActor

        self.folder = Path(root)
        self.layout = layout
        self.model_name = model_name
        self.replicas = max(1, int(replicas))
        self._settings = settings or current()
        self._remote = ray.remote(actor or ShardActor)
        self._lock = threading.Lock()
        self._turns = [itertools.count() for _ in range(layout.shards)]
        self.replaced = 0  # replicas started again after they died
        self.global_bm25 = True  # False: each shard's own bm25 statistics (measured in tests/test_cluster_serve.py)
        self._totals: tuple[int, int] | None = None
        self._hits: dict[str, int] = {}
        self._actors = [[self._start(shard) for _ in range(self.replicas)] for shard in range(layout.shards)]
        for shard, actors in enumerate(self._actors):
            for actor in actors:
                self._ready(shard, actor)

    @property
    def shards(self) -> int:
        return self.layout.shards

    # actors: start, pick, replace, call

    def _start(self, shard: int) -> Any:
        return self._remote.options(num_cpus=ACTOR_CPUS, max_concurrency=ACTOR_THREADS,
                                    scheduling_strategy="SPREAD").remote(
            str(shard_folder(self.folder, shard)), self.model_name, self._settings)

    def _ready(self, shard: int, actor: Any) -> dict[str, Any]:
        import ray

        try:
            return ray.get(actor.where.remote(), timeout=START_TIMEOUT_S)
        except (ray.exceptions.RayError, OSError) as exc:
            raise ShardUnavailable(f"shard {shard} ({shard_folder(self.folder, shard)}) could not be started on "
                                   f"the cluster: {_reason(exc)}") from exc

    def _pick(self, shard: int) -> tuple[int, Any]:
        with self._lock:
            replica = next(self._turns[shard]) % self.replicas
            return replica, self._actors[shard][replica]

    def _replace(self, shard: int, replica: int, dead: Any) -> Any:
        with self._lock:
            if self._actors[shard][replica] is not dead:
                return self._actors[shard][replica]  # another thread replaced it already
            actor = self._start(shard)
            self._ready(shard, actor)
            self._actors[shard][replica] = actor
            self.replaced += 1
            return actor

    def _gather(self, calls: list[tuple[int, str, tuple[Any, ...]]]) -> list[Any]:
        """Send every (shard, method, args) at once, then collect the answers in order; a dead replica is replaced
        and its call sent again once."""
        import ray

        sent = []
        for shard, name, args in calls:
            replica, actor = self._pick(shard)
            sent.append((replica, actor, actor.call.remote(name, *args)))
        out = []
        for (shard, name, args), (replica, actor, ref) in zip(calls, sent):
            for attempt in range(2):
                try:
                    status, value = ray.get(ref, timeout=CALL_TIMEOUT_S)
                    break
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                    if attempt:
                        raise ShardUnavailable(f"shard {shard} ({shard_folder(self.folder, shard)}) did not answer "
                                               f"{name}: its actor died again after being replaced "
                                               f"({_reason(exc)})") from exc
                    actor = self._replace(shard, replica, actor)
                    ref = actor.call.remote(name, *args)
                except ray.exceptions.GetTimeoutError as exc:
                    raise ShardUnavailable(f"shard {shard} did not answer {name} within {CALL_TIMEOUT_S:g} s") from exc
            if status == "error":
                raise value
            out.append(value)
        return out

    def _everywhere(self, name: str, *args: Any) -> list[Any]:
        return self._gather([(shard, name, args) for shard in range(self.shards)])

    def _routed(self, keys: Iterable[Any], shard_of: Any, name: str, *rest: Any) -> list[Any]:
        """`name(keys of shard i, *rest)` on each shard that holds some of `keys`."""
        groups: dict[int, list[Any]] = {}
        for key in keys:
            shard = shard_of(key)
            if 0 <= shard < self.shards:
                groups.setdefault(shard, []).append(key)
        return self._gather([(shard, name, (group, *rest)) for shard, group in sorted(groups.items())])

    def _doc_shard(self, doc_id: str) -> int:
        return shard_of_document(doc_id, self.shards)

    def where(self) -> list[list[dict[str, Any]]]:
        """For each shard, where each replica runs: node id, pid, folder, vectors."""
        import ray

        return [ray.get([actor.where.remote() for actor in actors]) for actors in self._actors]

    def close(self) -> None:
        import ray

        for actors in self._actors:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)

    # what retrieve.py and answer.py read

    @cached_property
    def embedder(self) -> Any:
        from exorag.index import embed

        return embed.load(self.model_name)

    def dense_search(self, vector: np.ndarray, k: int, filters: Any = None) -> list[tuple[int, float]]:
        vector = np.asarray(vector, dtype=np.float32)
        return merge.top_k(self._everywhere("dense_search", vector, k, filters), k)

    def lexical_search(self, match: str, k: int, filters: Any = None) -> list[tuple[int, float]]:
        """bm25 top k: with `global_bm25` (the default) each shard rescores its candidates with the statistics of
        the whole index (the same scores as one index); without, each shard's own bm25 (query-then-fetch)."""
        if not self.global_bm25:
            return merge.top_k(self._everywhere("lexical_search", match, k, filters), k)
        from exorag.cluster import bm25

        phrases, _ = bm25.phrases(match)
        rows, tokens = self._fts_totals()
        hits = self._phrase_hits(phrases)
        return merge.top_k(self._everywhere("global_lexical_search", match, k, filters, rows, tokens, hits), k)

    def _phrase_hits(self, phrases: list[str]) -> list[int]:
        """Chunks holding each phrase, over all shards; remembered (a served index does not change), so the EV
        synonyms that many questions share cost one round trip once."""
        missing = [p for p in dict.fromkeys(phrases) if p not in self._hits]
        if missing:
            if len(self._hits) > PHRASES_KEPT:
                self._hits.clear()
            self._hits.update(zip(missing, (sum(h) for h in zip(*self._everywhere("phrase_hits", missing)))))
        return [self._hits[p] for p in phrases]

    def _fts_totals(self) -> tuple[int, int]:
        if self._totals is None:
            answers = self._everywhere("fts_totals")
            self._totals = (sum(r for r, _ in answers), sum(t for _, t in answers))
        return self._totals

    def allowed_chunk_ids(self, filters: Any) -> list[int]:
        return [cid for ids in self._everywhere("allowed_chunk_ids", filters) for cid in ids]

    def term_chunk_counts(self, words: list[str]) -> list[int | None]:
        return merge.term_counts(self._everywhere("term_chunk_counts", words)) if words else []

    def long_forms(self, shorts: list[str]) -> dict[str, list[tuple[str, int]]]:
        return merge.long_forms(self._everywhere("long_forms", shorts)) if shorts else {}

    def chunk_count(self) -> int:
        return sum(self._everywhere("chunk_count"))

    def chunk_id_bound(self) -> int:
        return sum(self._everywhere("chunk_id_bound"))

    def count_documents(self, filters: Any = None) -> int:
        return sum(self._everywhere("count_documents", filters))

    # lookups, routed to the shard that holds the chunk or document

    def get_chunks(self, chunk_ids: Iterable[int]) -> dict[int, Any]:
        ids = [int(i) for i in chunk_ids]
        return merge.in_order(ids, self._routed(ids, shard_of_chunk, "get_chunks"))

    def existing_chunk_ids(self, chunk_ids: Iterable[int]) -> set[int]:
        return set().union(*self._routed([int(i) for i in chunk_ids], shard_of_chunk, "existing_chunk_ids"))

    def get_documents(self, doc_ids: Iterable[str]) -> dict[str, Any]:
        ids = list(dict.fromkeys(doc_ids))
        return merge.in_order(ids, self._routed(ids, self._doc_shard, "get_documents"))

    def get_document(self, doc_id: str) -> Any:
        return self._gather([(self._doc_shard(doc_id), "get_document", (doc_id,))])[0]

    def document_chunks(self, doc_id: str) -> list[Any]:
        return self._gather([(self._doc_shard(doc_id), "document_chunks", (doc_id,))])[0]

    def document_tags(self, doc_ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        ids = list(dict.fromkeys(doc_ids))
        return dict(sorted(merge.in_order(ids, self._routed(ids, self._doc_shard, "document_tags")).items()))

    # what the corpus holds (the chat's filter panel and corpus tab)

    def tag_values(self) -> dict[str, list[tuple[str, int]]]:
        return merge.tag_values(self._everywhere("tag_values"))

    def distinct_sources(self) -> list[str]:
        return merge.distinct(self._everywhere("distinct_sources"))

    def distinct_pub_types(self) -> list[str]:
        return merge.distinct(self._everywhere("distinct_pub_types"))

    def pub_type_counts(self) -> list[tuple[str, int]]:
        return merge.counted(self._everywhere("pub_type_counts"))

    def source_counts(self) -> list[tuple[str, int]]:
        return merge.counted(self._everywhere("source_counts"))

    def counts(self) -> dict[str, Any]:
        return merge.counts(self._everywhere("counts"))

    def year_counts(self) -> list[tuple[int | None, int]]:
        return merge.year_counts(self._everywhere("year_counts"))

    def recent_documents(self, limit: int = 10) -> list[dict[str, Any]]:
        return merge.newest((r for rows in self._everywhere("recent_documents", limit) for r in rows), limit)

    def find_documents(self, query: str = "", limit: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        answers = self._everywhere("find_documents", query, max(0, offset) + max(0, limit), 0)
        return merge.found_documents(answers, limit, offset)

    def document_origins(self) -> list[tuple[str, str]]:
        return sorted(pair for pairs in self._everywhere("document_origins") for pair in pairs)

    def drift_warnings(self) -> list[str]:
        """Each shard's vectors-vs-chunks warning (index.drift_warning), where there is one."""
        return [w for w in self._everywhere("drift_warning") if w]

    # writes: refused

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        raise ReadOnlyIndex(f"the sharded index in {self.folder} is served read-only from a Ray cluster; add or "
                            "remove documents with `exorag cluster build` (then restart `exorag serve --cluster`)")
        yield  # pragma: no cover


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def open_sharded(root: Path, address: str, replicas: int | None = None, model: str | None = None) -> ShardedIndex:
    """Connect to the cluster at `address` and serve the sharded index in `root` with `replicas` actors per shard
    (default: Settings.cluster.replicas). NotACluster when `root` holds no cluster.json."""
    from exorag.index import embed

    layout = read_layout(root)
    wanted = embed.canonical_name(model or current().index.model or layout.model)
    if wanted != layout.model:
        raise IndexMismatch(f"the sharded index in {root} was built with model {layout.model!r}, not {wanted!r}; "
                            f"query it with --model {layout.model}")
    connect(address)
    return ShardedIndex(Path(root), layout, wanted, replicas or current().cluster.replicas)
