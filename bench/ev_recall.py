"""Recall of relevant documents on hand-judged EV questions, with and without EV query expansion.

Usage: python bench/ev_recall.py --index DIR [--questions bench/data/ev_questions.json] [--mode hybrid|lexical|dense]
DIR is a demo index (`exorag demo --index DIR`, 7,091 exo_corpus records); copy a shared one before use, since
opening an index built before the tags/abbreviations tables adds them. Prints mean recall@10 and recall@50 over
the questions (document level: one best chunk per document) with expansion off and on, then per question.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from exorag.ask.evaluate import recall_at
from exorag.index.index import open_index
from exorag.ask.retrieve import search

QUESTIONS = Path(__file__).resolve().parent / "data" / "ev_questions.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "lexical", "dense"])
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text(encoding="utf-8"))["questions"]
    index = open_index(args.index)
    rows = []
    for q in questions:
        relevant = {d: 1 for d in q["relevant"]}
        row = [q["question"]]
        for expand in (False, True):
            ranked = [h.document.id for h in search(index, q["question"], k=50, mode=args.mode, per_doc=1,
                                                    expand=expand)]
            row += [recall_at(ranked, relevant, 10), recall_at(ranked, relevant, 50)]
        rows.append(row)
    n = len(rows)
    mean = [sum(r[i] for r in rows) / n for i in range(1, 5)]
    print(f"{n} EV questions, {sum(len(q['relevant']) for q in questions)} relevant documents, mode {args.mode}")
    print(f"without expansion: recall@10 {mean[0]:.3f}  recall@50 {mean[1]:.3f}")
    print(f"with expansion:    recall@10 {mean[2]:.3f}  recall@50 {mean[3]:.3f}")
    print("\nper question (r@10 r@50 off -> on):")
    for q, a, b, c, d in rows:
        print(f"  {a:.2f} {b:.2f} -> {c:.2f} {d:.2f}  {q}")


if __name__ == "__main__":
    main()
