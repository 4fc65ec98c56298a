"""Ingest at scale: 100,000 abstracts through read + chunk + store, with docs/s, peak RSS and RSS over time.

Usage: python bench/ingest_scale.py [--docs 100000] [--embed-limit 2000] [--work /tmp/exorag-scale] [--keep]

There are about 13,000 real abstracts in ../shared/data (exo_corpus, the SciFact BEIR corpus, miretrieve
abstracts_dedup, ev_literature_notes_aquiles, exosome_blog_pubmed_2025). They are streamed in that order into one
temporary JSONL file under --work (never into the repository) and, to reach --docs, streamed again and re-emitted
with new ids (`copyK:<original id>`): the texts repeat, the documents are distinct; the output says how many are
real. The 6 open-access PDFs are ingested too, so the reader child process takes part.

The ingest runs in a child process (so its RSS is its own) with embed=False: `exorag.build.ingest.ingest_paths` exactly as
`exorag ingest` runs it, minus the vectors. A sampler thread records the RSS (/proc/self/statm) and the number of
documents stored every second; printed at 10k, 25k, 50k, 75k and 100k documents, with ru_maxrss of the process and
the peak RSS (VmHWM) of the reader child. Then the store size on disk.

Embedding all ~220k chunks would take about 2 hours on 2 cores, so only --embed-limit chunks (default 2,000) are
embedded, in the same batches as index.sync_vectors, and the time for all chunks is extrapolated from that rate,
with the memory the FAISS vectors of all chunks would take (chunks x dim x 4 bytes). The load average is printed
at start and end: the 2 cores are shared with other jobs, so docs/s are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
SOURCES = [
    SHARED / "exo_corpus" / "corpus.jsonl",
    SHARED / "scifact" / "beir_format" / "corpus.jsonl",
    SHARED / "miretrieve_cancer_mirna" / "abstracts_dedup.jsonl",
    SHARED / "ev_literature_notes_aquiles" / "ev_abstracts.jsonl",
    SHARED / "exosome_blog_pubmed_2025" / "exosome_abstracts.jsonl",
]
PDFS = SHARED / "pdfs_open_access"
MARKS = (10_000, 25_000, 50_000, 75_000, 100_000)


def _original_id(record: dict, source: Path, lineno: int) -> str:
    for key in ("id", "_id"):
        if record.get(key):
            return str(record[key])
    if record.get("pmid"):
        return f"pmid:{record['pmid']}"
    if record.get("doi"):
        return f"doi:{str(record['doi']).lower()}"
    return f"{source.parent.name}:{lineno}"


def _records() -> Iterator[tuple[dict, str]]:
    for source in SOURCES:
        if not source.exists():
            continue
        with source.open(encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, start=1):
                if line.strip():
                    record = json.loads(line)
                    yield record, _original_id(record, source, lineno)


def generate(path: Path, docs: int) -> dict[str, int]:
    """Write `docs` records to `path`: the real ones once, then again with ids `copyK:<id>`; streamed."""
    seen: set[str] = set()  # ids written in this pass (a record in two sources is written once)
    real = copies = 0
    with path.open("w", encoding="utf-8") as out:
        copy = 0
        while real + copies < docs:
            wrote = 0
            seen.clear()
            for record, original in _records():
                if real + copies >= docs:
                    break
                if original in seen:
                    continue
                seen.add(original)
                if copy == 0:
                    record["id"], real = original, real + 1
                else:
                    record["id"], copies = f"copy{copy}:{original}", copies + 1
                record.pop("_id", None)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                wrote += 1
            if not wrote:
                sys.exit(f"no records found in {', '.join(str(s) for s in SOURCES)}")
            copy += 1
    return {"real": real, "copies": copies, "passes": copy, "bytes": path.stat().st_size}  # passes: incl. a partial last


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def children_peak_mib() -> float:
    """The largest VmHWM (peak RSS) among this process's living children (the reader child). ru_maxrss of
    RUSAGE_CHILDREN is no use here: a spawned child's is its parent's RSS at the fork before exec."""
    peak = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def child(args: argparse.Namespace) -> dict:
    import numpy as np

    from exorag.index import embed, store
    from exorag.index.index import open_index
    from exorag.build.ingest import ingest_paths

    folder = args.work / "idx"
    shutil.rmtree(folder, ignore_errors=True)
    index = open_index(folder)
    index.embedder  # noqa: B018 - loaded before the clock starts
    base_rss = rss_mib()
    samples: list[tuple[float, int, float]] = []
    done = threading.Event()
    child_peak = [0.0]

    def sample() -> None:
        conn = store.connect(folder)
        started = time.perf_counter()
        while not done.wait(1.0):
            stored = conn.execute("SELECT max(rowid) FROM documents").fetchone()[0] or 0
            samples.append((time.perf_counter() - started, int(stored), rss_mib()))
            child_peak[0] = max(child_peak[0], children_peak_mib())
        conn.close()

    sampler = threading.Thread(target=sample, daemon=True)
    inputs = sorted(PDFS.glob("*.pdf")) + [args.data]  # PDFs first: the reader child then lives until the end
    started, cpu = time.perf_counter(), time.process_time()
    sampler.start()
    report = ingest_paths(index, inputs, progress=not args.quiet, embed=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done.set()
    sampler.join()
    counts = index.counts()
    sizes = {p.name: p.stat().st_size for p in folder.glob("store.sqlite*")}
    result = {
        "elapsed_s": elapsed, "cpu_s": cpu, "documents": counts["documents"], "chunks": counts["chunks"],
        "added": report.added, "failed": len(report.failed), "files": report.files,
        "failures": [str(p) for p in report.failed[:5]],
        "base_rss_mib": base_rss, "end_rss_mib": rss_mib(),
        "maxrss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reader_child_peak_mib": child_peak[0],
        "samples": samples, "store_bytes": sizes,
    }
    if args.embed_limit:
        ids = [i for _, i in zip(range(args.embed_limit), index.iter_chunk_ids())]
        vectors = index.vectors
        t0, before = time.perf_counter(), rss_mib()
        for start in range(0, len(ids), 256):  # as sync_vectors: 4 batches of 64 per read
            rows = list(index.iter_chunks(ids[start:start + 256]))
            vecs = index.embedder.encode([embed.passage_text(t, c.text) for c, t in rows], batch_size=64)
            vectors.add(np.array([c.id for c, _ in rows], dtype=np.int64), vecs)
        result["embed"] = {"chunks": len(ids), "seconds": time.perf_counter() - t0, "rss_before_mib": before,
                           "rss_after_mib": rss_mib(), "dim": vectors.dim,
                           "maxrss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    index.close()
    return result


def at_marks(samples: list[list[float]], total: int) -> list[tuple[int, float, float]]:
    """(documents, seconds, RSS MiB) of the first sample at or past each mark (and the last sample)."""
    out = []
    for mark in [m for m in MARKS if m <= total] or [total]:
        hit = next((s for s in samples if s[1] >= mark), None)
        if hit is not None:
            out.append((int(hit[1]), hit[0], hit[2]))
    if samples and (not out or out[-1][0] != int(samples[-1][1])):
        out.append((int(samples[-1][1]), samples[-1][0], samples[-1][2]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--embed-limit", type=int, default=2000, help="chunks to embed for the rate (0: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/exorag-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the generated JSONL and the index")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"abstracts-{args.docs}.jsonl"
    t0 = time.perf_counter()
    made = generate(data, args.docs)
    print(f"generated {data}: {made['real'] + made['copies']:,} records in {time.perf_counter() - t0:.0f} s "
          f"({made['bytes'] / 2**20:.0f} MiB): {made['real']:,} real abstracts from ../shared/data, "
          f"{made['copies']:,} of them re-emitted with new ids (copyK:<id>; {made['passes']} passes)")
    load_start = os.getloadavg()
    command = [sys.executable, __file__, "--child", "--data", str(data), "--work", str(args.work),
               "--embed-limit", str(args.embed_limit)] + (["--quiet"] if args.quiet else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the ingest child failed (exit {done.returncode})")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    load_end = os.getloadavg()
    print(f"load average at start {load_start[0]:.1f} / {load_start[1]:.1f} (1 / 5 min), at end "
          f"{load_end[0]:.1f} / {load_end[1]:.1f}, on {os.cpu_count()} CPUs")
    print(f"ingested {r['documents']:,} documents ({r['added']:,} added, {r['failed']} failed, {r['files']} files) "
          f"into {r['chunks']:,} chunks in {r['elapsed_s']:.0f} s: {r['documents'] / r['elapsed_s']:.0f} docs/s, "
          f"{r['chunks'] / r['elapsed_s']:.0f} chunks/s; CPU {r['cpu_s']:.0f} s (main process, all threads)")
    for failure in r["failures"]:
        print(f"  failed: {failure}")
    print(f"RSS: {r['base_rss_mib']:.0f} MiB with the model loaded, before the first document; "
          f"at the end {r['end_rss_mib']:.0f} MiB")
    for docs, seconds, rss in at_marks(r["samples"], r["documents"]):
        print(f"  {docs:>7,} documents stored  t={seconds:5.0f} s  RSS {rss:6.0f} MiB")
    print(f"peak RSS: ingest process {r['maxrss_self_mib']:.0f} MiB (ru_maxrss), reader child "
          f"{r['reader_child_peak_mib']:.0f} MiB (VmHWM, sampled each second)")
    total = sum(r["store_bytes"].values())
    parts = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(r["store_bytes"].items()))
    print(f"store on disk: {total / 2**20:.0f} MiB ({parts}); {total / r['documents'] / 1024:.1f} KiB a document")
    if "embed" in r:
        e = r["embed"]
        rate = e["chunks"] / e["seconds"]
        hours = r["chunks"] / rate / 3600
        print(f"embedding (only {e['chunks']:,} of {r['chunks']:,} chunks, not all): {rate:.1f} chunks/s; all "
              f"chunks would take ~{hours:.1f} h at this rate (extrapolated, not run); RSS {e['rss_before_mib']:.0f}"
              f" -> {e['rss_after_mib']:.0f} MiB; the FAISS vectors of all chunks would hold "
              f"{r['chunks'] * e['dim'] * 4 / 2**20:.0f} MiB in memory and on disk")
    if not args.keep:
        shutil.rmtree(args.work / "idx", ignore_errors=True)
        data.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
