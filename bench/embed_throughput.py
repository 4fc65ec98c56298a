"""Embedding throughput of the torch fp32, ONNX fp32 and ONNX int8 backends on real ~200-wordpiece chunks.

Usage: python bench/embed_throughput.py [--n 128] [--batch-size 32] [--rounds 3] [--threads N] [--cache DIR]
       [--corpus PATH]
Chunks are exo_corpus abstracts cut to 200 wordpieces with the model's tokenizer. Each step runs in its own child
process, so each peak RSS (resource.getrusage) is its own: first the ONNX export + int8 quantisation into --cache
(default: a fresh temporary folder, so the build is timed; give a folder to time a cache hit), then each backend.
Per backend: load time, chunks/s (best of --rounds, wall clock), CPU seconds per chunk (all threads; shows when
other processes share the cores: wall rate far below threads / cpu-per-chunk), cosine to torch (mean / min).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "exo_corpus" / "corpus.jsonl"
BACKENDS = ("torch", "onnx", "onnx-int8")


def real_chunks(corpus: Path, n: int, wordpieces: int = 200) -> list[str]:
    """The first `n` abstracts of at least `wordpieces` wordpieces, cut after the `wordpieces`-th one."""
    from tokenizers import Tokenizer

    from exorag.index import onnx_embed

    tokenizer = Tokenizer.from_file(str(onnx_embed.bundled_model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    chunks: list[str] = []
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            abstract = json.loads(line).get("abstract") or ""
            offsets = tokenizer.encode(abstract, add_special_tokens=False).offsets
            if len(offsets) >= wordpieces:
                chunks.append(abstract[: offsets[wordpieces - 1][1]])
                if len(chunks) == n:
                    break
    return chunks


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child_export(args: argparse.Namespace) -> dict:
    from exorag.index import onnx_embed

    started = time.perf_counter()
    path = onnx_embed.ensure_onnx(quantized=True)
    meta = json.loads((path.parent / onnx_embed.META_FILE).read_text())
    return {"total_s": time.perf_counter() - started, "export_s": meta.get("export_s"),
            "quantize_s": meta.get("quantize_s"), "folder": str(path.parent), "peak_rss_mib": peak_rss_mib()}


def child_backend(args: argparse.Namespace) -> dict:
    if args.child == "torch":
        import torch

        torch.set_num_threads(args.threads)
    from exorag.index import embed

    chunks = json.loads(Path(args.chunks).read_text())
    started = time.perf_counter()
    embedder = embed.load(None, backend=args.child)
    load_s = time.perf_counter() - started
    embedder.encode(chunks[:8], batch_size=args.batch_size)  # warm-up
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(args.rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = embedder.encode(chunks, batch_size=args.batch_size)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    np.save(args.vectors, vectors)
    return {"load_s": load_s, "chunks_per_s": len(chunks) / best_wall,
            "cpu_ms_per_chunk": 1000 * best_cpu / len(chunks), "peak_rss_mib": peak_rss_mib()}


def run_child(step: str, args: argparse.Namespace, work: Path) -> dict:
    env = dict(os.environ, EXORAG_CACHE=str(args.cache), EXORAG_ONNX_THREADS=str(args.threads))
    command = [sys.executable, __file__, "--child", step, "--chunks", str(work / "chunks.json"),
               "--vectors", str(work / f"{step}.npy"), "--batch-size", str(args.batch_size),
               "--rounds", str(args.rounds), "--threads", str(args.threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="number of chunks (default 128)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per backend; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="threads per backend (default: physical cores)")
    parser.add_argument("--cache", type=Path, default=None, help="EXORAG_CACHE to use (default: a fresh temp folder)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--child", choices=["export", *BACKENDS], help=argparse.SUPPRESS)
    parser.add_argument("--chunks", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_export(args) if args.child == "export" else child_backend(args)
        print(json.dumps(result))
        return

    from exorag.index import onnx_embed

    args.threads = args.threads or onnx_embed.physical_cores()
    with tempfile.TemporaryDirectory(prefix="exorag-bench-") as scratch:
        work = Path(scratch)
        args.cache = (args.cache or work / "cache").resolve()
        chunks = real_chunks(args.corpus, args.n)
        words = np.mean([len(c.split()) for c in chunks])
        (work / "chunks.json").write_text(json.dumps(chunks))
        print(f"{len(chunks)} exo_corpus abstracts cut to 200 wordpieces (~{words:.0f} words), batch "
              f"{args.batch_size}, {args.threads} threads, best of {args.rounds}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        built = run_child("export", args, work)
        print(f"ONNX export + int8 quantisation: {built['total_s']:.1f} s (export+fusion+check {built['export_s']} s, "
              f"quantise {built['quantize_s']} s, as recorded when built), peak RSS {built['peak_rss_mib']:.0f} MiB\n"
              f"  cache: {built['folder']}")
        print(f"{'backend':10s} {'chunks/s':>9s} {'cpu ms/chunk':>13s} {'load s':>7s} {'peak RSS MiB':>13s} "
              f"{'cos vs torch mean / min':>24s}")
        reference = None
        for backend in BACKENDS:
            result = run_child(backend, args, work)
            vectors = np.load(work / f"{backend}.npy")
            reference = vectors if reference is None else reference
            cosine = (vectors * reference).sum(axis=1)
            print(f"{backend:10s} {result['chunks_per_s']:9.1f} {result['cpu_ms_per_chunk']:13.1f} "
                  f"{result['load_s']:7.1f} {result['peak_rss_mib']:13.0f} "
                  f"{cosine.mean():15.5f} / {cosine.min():.5f}")


if __name__ == "__main__":
    main()
