"""PDF parsing speed (pages/s) of exorag.build.sources.pdf on the real PDFs in ../shared/data/pdfs_open_access.

Usage: python bench/pdf_parse.py [--rounds N]
Prints per-file pages, seconds and sections found, then the total pages/s (best of N rounds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from exorag.build.sources.pdf import read_document

PDFS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pdfs_open_access"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(PDFS.glob("*.pdf"))
    if not files:
        raise SystemExit(f"no PDFs in {PDFS} (shared data absent)")
    best = float("inf")
    pages = 0
    for _ in range(args.rounds):
        started, pages = time.perf_counter(), 0
        for path in files:
            doc = read_document(path)
            pages += max(s.page or 1 for s in doc.sections)
        best = min(best, time.perf_counter() - started)
    for path in files:
        doc = read_document(path)
        headings = list(dict.fromkeys(s.heading for s in doc.sections))
        print(f"{path.name[:50]:50s} pages {max(s.page or 1 for s in doc.sections):3d}  sections {len(headings)}")
    print(f"{pages} pages in {best:.2f} s: {pages / best:.1f} pages/s (best of {args.rounds})")


if __name__ == "__main__":
    main()
