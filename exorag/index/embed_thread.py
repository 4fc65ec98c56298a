"""Embedding behind ingest: a thread that embeds the chunks already stored while the main thread goes on parsing.

`EmbedThread` reads the store through its own SQLite connection (WAL: it sees committed documents while the main
thread, the one writer, adds more), walks chunk ids upwards in batches, embeds those without a vector and adds them
to the index's FAISS vectors, saving them atomically every `save_every_s` and when stopped. onnxruntime and the
tokenizer release the GIL while they compute, so parsing (pure Python) and embedding run on both cores at once.
It is only a head start: after `stop()` the caller runs `index.sync_vectors`, which drops the vectors of chunks
replaced meanwhile and embeds whatever is left, so correctness never depends on this thread. The progress bar
shows chunks embedded and the rate; its total is set by sync_vectors once parsing is over (before that the
number of chunks to come is not known).
Deliberately left out: more than one embedding thread, and embedding in another process (the vectors would have
to cross a pipe and the FAISS file would have two writers).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from exorag.index import store
from exorag.index.index import Index, embed_batch

SCAN = 4096  # chunk ids read from the store per query


class EmbedThread:
    """Start with `start()`; `stop()` finishes the batch in hand, saves the vectors and returns how many it added."""

    def __init__(self, index: Index, progress: bool = True, batch_size: int = 64, save_every_s: float = 30.0) -> None:
        self.index = index
        self.progress = progress
        self.batch_size = batch_size
        self.save_every_s = save_every_s
        self.bar: Any = None  # created when the first chunk needs a vector
        self.added = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exorag-embed", daemon=True)

    def start(self) -> EmbedThread:
        self.index.embedder  # noqa: B018 - load the model and the vectors here, not in two threads at once
        self.index.vectors  # noqa: B018
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.added

    def _run(self) -> None:
        conn = store.connect(self.index.folder)
        vectors = self.index.vectors
        last_save, dirty = time.monotonic(), False
        try:
            have = np.unique(vectors.ids())
            after = 0
            while not self._stop.is_set():
                ids = np.fromiter(store.iter_chunk_ids(conn, after=after, limit=SCAN), dtype=np.int64)
                if len(ids) == 0:
                    self._stop.wait(0.2)
                    continue
                after = int(ids[-1])
                todo = ids[~np.isin(ids, have, assume_unique=True)].tolist()
                for start in range(0, len(todo), self.batch_size):
                    if self._stop.is_set():
                        break
                    done = embed_batch(self.index, conn, todo[start:start + self.batch_size], self.batch_size)
                    if not done:
                        continue
                    self.added += done
                    dirty = True
                    if self.bar is None:
                        self.bar = tqdm(unit="chunk", desc="embedding", disable=not self.progress)
                    self.bar.update(done)
                    if time.monotonic() - last_save > self.save_every_s:
                        vectors.save()
                        last_save, dirty = time.monotonic(), False
        except BaseException as exc:  # handed to the caller by stop(); sync_vectors would meet it again anyway
            self.error = exc
        finally:
            try:
                if dirty:
                    vectors.save()
            finally:
                conn.close()
