"""The whole `search` and `ask` path at 100k and 1M chunks: query embedding, FAISS, FTS5 bm25, fusion, chunk fetch.

Usage: python bench/search_full.py --index DIR [--chunks 100000,1000000] [--work /tmp/exorag-full] [--repeat 2] [--reuse]
DIR is a built index (e.g. the demo index; it is only read). Its store is copied into --work and its documents and
chunks are duplicated in SQL (`copyK:<id>`, the FTS5 triggers index every copy) until the store holds the number
of chunks asked for; each copy's vector is the original chunk's real MiniLM vector plus a little Gaussian noise
(cosine ~0.99 to it), added through exorag.index.vectors in batches as `sync_vectors` would, so past the threshold the index
migrates to IVF-fp16 on its own. The texts repeat, which makes the bm25 and dense candidate lists full of near
duplicates: a hard case for fusion and the per-paper cap, and realistic for FTS5's posting lists (every term's
list grows with the copies). Then `search` (k=10) and `ask` (k=8) are timed, warm, over real questions (the
EV questions of bench/ask_latency.py and 40 BioASQ questions), then search's parts alone (query embedding, vector
search, FTS5 bm25), with the store size, the vector kind and peak RSS. --reuse grows the --work store of an earlier
run instead of starting again. --no-prune keeps very common query words on the bm25 side (by default an index of
exorag.ask.retrieve.PRUNE_FROM chunks or more leaves them out), to measure what that pruning saves.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exorag.index import store  # noqa: E402
from exorag.ask.answer import ask  # noqa: E402
from exorag.ask.evaluate import bioasq_questions  # noqa: E402
from exorag.index.index import disk_size, open_index  # noqa: E402
from exorag.ask import retrieve  # noqa: E402
from exorag.ask.retrieve import lexical_search, normalize_query, search  # noqa: E402
from exorag.index.vectors import VECTORS_FILE, all_vectors  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from ask_latency import QUESTIONS, percentiles  # noqa: E402

BIOASQ = REPO.parent / "shared" / "data" / "bioasq_golden"


def grow(folder: Path, target: int, originals: dict[int, np.ndarray], rng: np.random.Generator) -> None:
    """Duplicate documents and chunks of the store in `folder` until it holds `target` chunks; vectors follow."""
    index = open_index(folder)
    conn = index._conn
    base_docs = [r[0] for r in conn.execute("SELECT id FROM documents WHERE id NOT LIKE 'copy%'")]
    copy = 1 + int(conn.execute("SELECT count(*) FROM documents").fetchone()[0]) // len(base_docs)
    while store.chunk_count(conn) < target:
        first_new = int(conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]) + 1
        prefix = f"copy{copy}:"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO documents (id, pmid, doi, pmcid, title, authors, journal, year, publication_types, mesh,"
            " source, origin, text, sections, content_hash) SELECT ? || id, pmid, doi, pmcid, title, authors,"
            " journal, year, publication_types, mesh, source, origin, text, sections, content_hash FROM documents"
            " WHERE id NOT LIKE 'copy%'", (prefix,))
        conn.execute(
            "INSERT INTO chunks (doc_id, ordinal, text, section, page, char_start, char_end) SELECT ? || doc_id,"
            " ordinal, text, section, page, char_start, char_end FROM chunks WHERE doc_id NOT LIKE 'copy%'"
            " ORDER BY id", (prefix,))
        conn.execute("COMMIT")
        new = conn.execute(
            "SELECT n.id, o.id FROM chunks n JOIN chunks o ON o.doc_id = substr(n.doc_id, ?) AND o.ordinal = n.ordinal"
            " WHERE n.id >= ?", (len(prefix) + 1, first_new)).fetchall()
        ids = np.array([n for n, _ in new], dtype=np.int64)
        vecs = np.stack([originals[o] for _, o in new]) + rng.normal(scale=0.006, size=(len(new), 384))
        vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        for start in range(0, len(ids), 256 * 4):  # the batches of sync_vectors
            index.vectors.add(ids[start : start + 1024], vecs[start : start + 1024])
        copy += 1
    index.vectors.save()
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--chunks", default="100000,1000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/exorag-full"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep a --work store from an earlier run and grow it")
    parser.add_argument("--no-prune", action="store_true",
                        help="keep very common words on the bm25 side at any size (exorag.ask.retrieve.PRUNE_FROM)")
    args = parser.parse_args()
    if args.no_prune:
        retrieve.PRUNE_FROM = 1 << 62
    questions = QUESTIONS + [q["body"] for q in bioasq_questions(BIOASQ)[:40]] if BIOASQ.exists() else QUESTIONS
    if not (args.reuse and (args.work / store.STORE_FILE).exists()):
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        for name in (store.STORE_FILE, VECTORS_FILE, "index.json"):
            shutil.copy2(args.index / name, args.work / name)
    source = open_index(args.index)
    ids, vectors = all_vectors(source.vectors.index)
    originals = dict(zip(ids.tolist(), vectors))
    source.close()
    rng = np.random.default_rng(0)
    for target in [int(c) for c in args.chunks.split(",")]:
        started = time.perf_counter()
        grow(args.work, target, originals, rng)
        built = time.perf_counter() - started
        index = open_index(args.work)
        ask(index, questions[0])  # loads the model, the FAISS file, warms SQLite
        timings: dict[str, list[float]] = {"search k=10": [], "ask k=8": [], "  query embedding": [],
                                           "  vectors (k=50)": [], "  FTS5 bm25 (k=50)": []}
        for _ in range(args.repeat):
            for question in questions:
                t = time.perf_counter()
                search(index, question, k=10)
                timings["search k=10"].append(time.perf_counter() - t)
                t = time.perf_counter()
                ask(index, question)
                timings["ask k=8"].append(time.perf_counter() - t)
                query = normalize_query(question)  # the parts of search, one by one
                t = time.perf_counter()
                vector = index.embedder.encode([query])[0]
                timings["  query embedding"].append(time.perf_counter() - t)
                t = time.perf_counter()
                index.vectors.search(vector, 50)
                timings["  vectors (k=50)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                lexical_search(index, query, 50)
                timings["  FTS5 bm25 (k=50)"].append(time.perf_counter() - t)
        meta = json.loads((args.work / "index.json").read_text())
        print(f"\n== {index.chunk_count():,} chunks, {index.vectors.size:,} vectors ({meta['kind']}), "
              f"{disk_size(args.work) / 1e9:.2f} GB on disk; grown in {built:.0f} s")
        for name, samples in timings.items():
            print(f"{name:18s} {percentiles(samples)}")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        index.close()
    print(f"(left in {args.work}; delete it when done)")


if __name__ == "__main__":
    main()
