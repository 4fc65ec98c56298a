"""How often extractive answers quote a paper's framing ("this review focuses on...") instead of a finding.

Usage: python bench/answer_focus.py --index DIR [--penalty 0.1]
DIR is a demo index (`exorag demo --index DIR`); copy a shared one before use (opening an older index migrates it).
For the 20 EV questions of bench/abstention.py and the 21 hand-judged ones of bench/data/ev_questions.json, asks
each question with META_PENALTY = 0 and = --penalty, and prints: answers whose lead sentence is framing, share of
all quoted sentences that are framing (exorag.ask.answer.is_meta), and, on the judged questions, the share of cited papers
judged relevant and the mean best evidence score (`Answer.support`, which drives abstention and must not move).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abstention import EXO_POSITIVES  # noqa: E402

from exorag.ask import answer as answer_mod  # noqa: E402
from exorag.index.index import open_index  # noqa: E402

JUDGED = Path(__file__).resolve().parent / "data" / "ev_questions.json"


def run(index, questions: list[str], judged: dict[str, set[str]], penalty: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    answer_mod.META_PENALTY = penalty
    lead_meta = quoted = quoted_meta = answered = 0
    relevant = cited = 0
    supports = []
    for q in questions:
        a = answer_mod.ask(index, q)
        supports.append(a.support)
        if a.abstained:
            continue
        answered += 1
        lead_meta += answer_mod.is_meta(a.citations[0].quote)
        quoted += len(a.citations)
        quoted_meta += sum(answer_mod.is_meta(c.quote) for c in a.citations)
        if q in judged:
            docs = {c.document.id for c in a.citations}
            cited += len(docs)
            relevant += len(docs & judged[q])
    return {"answered": answered, "lead_meta": lead_meta, "quoted_meta_share": quoted_meta / max(quoted, 1),
            "cited_relevant_share": relevant / max(cited, 1), "mean_support": statistics.mean(supports)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--penalty", type=float, default=answer_mod.META_PENALTY)
    args = parser.parse_args()
    judged = {q["question"]: set(q["relevant"]) for q in json.loads(JUDGED.read_text(encoding="utf-8"))["questions"]}
    questions = list(dict.fromkeys(EXO_POSITIVES + list(judged)))
    index = open_index(Path(args.index))
    print(f"{len(questions)} EV questions ({len(judged)} with judged relevant papers), index {args.index}")
    for penalty in (0.0, args.penalty):
        r = run(index, questions, judged, penalty)
        print(f"META_PENALTY={penalty:.2f}: answered {r['answered']}, lead sentence is framing in {r['lead_meta']}, "
              f"framing share of quotes {r['quoted_meta_share']:.3f}, cited papers judged relevant "
              f"{r['cited_relevant_share']:.3f}, mean support {r['mean_support']:.4f}")


if __name__ == "__main__":
    main()
