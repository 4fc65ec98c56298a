"""Parse/embed overlap: wall time of `ingest_paths` with embedding after parsing vs embedding in a thread alongside.

Usage: python bench/ingest_overlap.py [--n 2000] [--pdfs] [--threads 0] [--modes sequential,overlap] [--repeat 1]
Workloads: the first --n exo_corpus records (one JSONL file), and with --pdfs the real open-access PDFs of
../shared/data/pdfs_open_access as well (their reader runs in the reader child process). Each mode runs in its own
child process on a fresh index in a temporary folder (the ONNX model cache is shared):
  sequential  overlap=False; parse (read+chunk+store) and embed are timed apart: P, E
  overlap     overlap=True (the default): total T
Prints P, E, P+E, T per run (modes alternate, --repeat times), the median speed-up (P+E)/T and its bound
(P+E)/max(P, E); CPU seconds of the process (all threads) and the load average, since the 2 cores are shared with
other jobs: equal CPU seconds with very different wall times mean the load changed, not the code. --threads sets EXORAG_ONNX_THREADS (0: the
default, physical cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
CORPUS = SHARED / "exo_corpus" / "corpus.jsonl"
PDFS = SHARED / "pdfs_open_access"


def child(mode: str, inputs: list[Path], folder: Path) -> dict:
    from exorag.index import store
    from exorag.index.index import open_index, sync_vectors
    from exorag.build.ingest import ingest_paths

    index = open_index(folder)
    index.embedder  # noqa: B018 - model load is not what is measured
    cpu, started = time.process_time(), time.perf_counter()
    if mode == "sequential":
        report = ingest_paths(index, inputs, progress=False, embed=False)
        parsed = time.perf_counter()
        synced = sync_vectors(index, progress=False)
        ended = time.perf_counter()
        times = {"parse_s": parsed - started, "embed_s": ended - parsed, "vectors": synced["added"]}
    else:
        report = ingest_paths(index, inputs, progress=False, overlap=True)
        ended = time.perf_counter()
        times = {"vectors": report.vectors_added, "while_parsing": report.vectors_while_parsing}
    counts = index.counts()
    return {"total_s": ended - started, "cpu_s": time.process_time() - cpu, "documents": counts["documents"],
            "chunks": counts["chunks"], "failed": len(report.failed), **times}


def run(mode: str, inputs: list[Path], threads: int) -> dict:
    env = dict(os.environ)
    if threads:
        env["EXORAG_ONNX_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="exorag-overlap-") as scratch:
        load = os.getloadavg()[0]
        command = [sys.executable, __file__, "--child", mode, "--folder", str(Path(scratch) / "idx"),
                   *[str(p) for p in inputs]]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load"] = (load + os.getloadavg()[0]) / 2
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="exo_corpus records (default 2000; 0: none)")
    parser.add_argument("--pdfs", action="store_true", help="also the open-access PDFs, as a workload of their own")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--modes", default="sequential,overlap")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode, alternating (default 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.inputs, args.folder)))
        return

    workloads: list[tuple[str, list[Path]]] = []
    scratch = Path(tempfile.mkdtemp(prefix="exorag-overlap-data-"))
    if args.n:
        if not CORPUS.exists():
            sys.exit(f"no corpus at {CORPUS}")
        data = scratch / f"exo_corpus_first_{args.n}.jsonl"
        with CORPUS.open(encoding="utf-8") as src, data.open("w", encoding="utf-8") as out:
            for i, line in enumerate(src):
                if i == args.n:
                    break
                out.write(line)
        workloads.append((f"{args.n} exo_corpus records", [data]))
    if args.pdfs:
        files = sorted(PDFS.glob("*.pdf"))
        if not files:
            sys.exit(f"no PDFs in {PDFS}")
        workloads.append((f"{len(files)} open-access PDFs", files))
    try:
        compare(workloads, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def compare(workloads: list[tuple[str, list[Path]]], args: argparse.Namespace) -> None:
    modes = args.modes.split(",")
    print(f"ONNX threads: {args.threads or 'default (physical cores)'}; {os.cpu_count()} CPUs shared with other jobs; "
          f"modes alternate, {args.repeat} run(s) each, medians compared")
    for name, inputs in workloads:
        results: dict[str, list[dict]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode in modes:
                results[mode].append(run(mode, inputs, args.threads))
        first = results[modes[0]][0]
        print(f"\n{name}: {first['documents']} documents, {first['chunks']} chunks, {first['failed']} failed")
        for mode, runs in results.items():
            for r in runs:
                extra = f"  parse {r['parse_s']:.1f} s + embed {r['embed_s']:.1f} s" if mode == "sequential" else \
                    f"  ({r.get('while_parsing', 0)} embedded while parsing)"
                print(f"  {mode:10s} {r['total_s']:7.1f} s wall, {r['cpu_s']:7.1f} s CPU, load {r['load']:.1f}, "
                      f"{r['vectors']} vectors{extra}")
        if "sequential" in results and "overlap" in results:
            seq = statistics.median(r["parse_s"] + r["embed_s"] for r in results["sequential"])
            parse = statistics.median(r["parse_s"] for r in results["sequential"])
            ovl = statistics.median(r["total_s"] for r in results["overlap"])
            cpu_seq = statistics.median(r["cpu_s"] for r in results["sequential"])
            cpu_ovl = statistics.median(r["cpu_s"] for r in results["overlap"])
            print(f"  median wall: sequential {seq:.1f} s, overlap {ovl:.1f} s: speed-up {seq / ovl:.2f}x "
                  f"(at most {seq / max(parse, seq - parse):.2f}x: (P+E)/max(P,E)); median CPU {cpu_seq:.1f} s vs "
                  f"{cpu_ovl:.1f} s (the same work: a wall-time gap far beyond the bound is other jobs' load)")


if __name__ == "__main__":
    main()
