"""Latency of `search` and `ask` on a built index, warm (model loaded once), as p50/p95 over real questions.

Usage: python bench/ask_latency.py [--index DIR] [--repeat N] [--no-expand]
Prints one line per operation and the index's size. Questions are EV/immunotherapy questions a researcher would ask.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from exorag.ask.answer import ask
from exorag.index.index import disk_size, open_index
from exorag.ask.retrieve import search

QUESTIONS = [
    "What is the role of exosomal PD-L1 in tumour immune evasion?",
    "Which markers are used to characterise extracellular vesicles?",
    "How are exosomes isolated from plasma?",
    "Can dendritic cell-derived exosomes be used as cancer vaccines?",
    "Which exosomal microRNAs are biomarkers of colorectal cancer?",
    "Do tumour-derived exosomes promote metastasis?",
    "How do exosomes deliver drugs to tumours?",
    "What is the function of TSG101 and CD63 in exosome biogenesis?",
    "Are circulating exosomes useful for liquid biopsy in pancreatic cancer?",
    "Does miR-21 in exosomes promote chemoresistance?",
]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   n={len(ordered)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="index")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-expand", dest="expand", action="store_false", help="without EV query expansion")
    args = parser.parse_args()
    index = open_index(Path(args.index))
    started = time.perf_counter()
    ask(index, QUESTIONS[0])  # loads the model and the FAISS file
    print(f"first ask (model + index load): {time.perf_counter() - started:.2f} s")
    timings: dict[str, list[float]] = {"search k=10": [], "ask k=8": []}
    abstained = 0
    for _ in range(args.repeat):
        for question in QUESTIONS:
            t = time.perf_counter()
            search(index, question, k=10, expand=args.expand)
            timings["search k=10"].append(time.perf_counter() - t)
            t = time.perf_counter()
            abstained += ask(index, question, expand=args.expand).abstained
            timings["ask k=8"].append(time.perf_counter() - t)
    for name, samples in timings.items():
        print(f"{name:12s} {percentiles(samples)}")
    print(f"abstained on {abstained} of {len(timings['ask k=8'])} asks")
    print(f"index: {index.vectors.size} vectors, {disk_size(index.folder) / 1e6:.1f} MB on disk in {index.folder}")


if __name__ == "__main__":
    main()
