"""The judge measured: stance on SciFact dev, answers and abstention on BioASQ 11B, our own EV sets, latency.

Sections (each prints its figures as JSON; `--only NAME` runs one):
- `stance`: SciFact dev with the gold rationales. Every sentence of every cited abstract of the 300 dev claims is
  judged against its claim: rationale sentences carry SUPPORT / CONTRADICT, all others are "neither". Accuracy and
  macro-F1 over the three classes, and supports-vs-contradicts accuracy on the rationale sentences alone.
- `claims`: SciFact dev claims through the whole pipeline (retrieve over the 5,183-abstract corpus + judge, as
  `exorag cite`): verdict vs the dev label (SUPPORT -> supported, CONTRADICT -> contradicted, no evidence ->
  unsupported); accuracy, macro-F1 and the confusion table. Builds (or reuses) an index of the corpus in `--work`.
- `bioasq`: BioASQ 11B (development data, never trained on) over an index of the 11B snippets grouped per PubMed
  document: answer-sentence precision@5 (share of cited sentences overlapping a gold snippet), gold-document recall
  among cited works, ROUGE-L vs the ideal answer, false-abstain rate; then leave-gold-out: each question asked with
  its own gold documents removed from the passages (it should abstain).
- `ev`: our hand-checked sets in bench/data over the demo index (`--index`, default /tmp/demo): abstention on
  ev_unanswerable.json, false abstention and yes/no consensus on ev_answerable.json, verdicts on ev_claims.json
  (reversed findings flagged contradicted, paraphrases supported, absent findings unsupported).
- `latency`: `ask` p50/p95 warm on the demo index with the judge on, and the judge's own share per question.

    python bench/judges.py [--only stance|claims|bioasq|ev|latency] [--index /tmp/demo] [--work /tmp/judge-bench]
                           [--judge-batch N]

Deliberately left out: SciFact test (its labels are hidden) and any tuning: thresholds live in exorag/ask/judge.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exorag.ask import judge as judges  # noqa: E402
from exorag.ask.evaluate import _overlaps, bioasq_corpus, bioasq_questions, rouge_l  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
PUBMED = re.compile(r"pubmed/(\d+)")
LABELS = ("neither", "supports", "contradicts")


def macro_f1(gold: list[str], pred: list[str], labels: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    f1s = {}
    for c in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        prec = tp / max(1, sum(1 for p in pred if p == c))
        rec = tp / max(1, sum(1 for g in gold if g == c))
        f1s[c] = round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0
    return round(float(np.mean(list(f1s.values()))), 4), f1s


def scifact_dev() -> tuple[list[dict], dict[int, dict]]:
    folder = SHARED / "scifact"
    corpus = {int(d["doc_id"]): d for d in map(json.loads, (folder / "corpus_sentences.jsonl").open(encoding="utf-8"))}
    claims = [json.loads(line) for line in (folder / "claims_dev.jsonl").open(encoding="utf-8")]
    return claims, corpus


def stance() -> dict:
    judge = judges.load()
    claims, corpus = scifact_dev()
    gold, pred, rationale_gold, rationale_pred, probs = [], [], [], [], []
    for c in claims:
        labels = {}
        for doc_id, sets in (c.get("evidence") or {}).items():
            for ev in sets:
                for i in ev["sentences"]:
                    labels[int(doc_id), i] = "supports" if ev["label"] == "SUPPORT" else "contradicts"
        for doc_id in c.get("cited_doc_ids", []):
            doc = corpus.get(int(doc_id))
            if not doc:
                continue
            sentences = [" ".join(s.split()) for s in doc["abstract"]]
            for i, (s, j) in enumerate(zip(sentences, judge.judge(c["claim"], sentences))):
                g = labels.get((int(doc_id), i), "neither")
                gold.append(g)
                pred.append(j.stance)
                probs.append((j.supports, j.contradicts))
                if g != "neither":
                    rationale_gold.append(g)
                    rationale_pred.append("supports" if j.supports >= j.contradicts else "contradicts")
    f1, per = macro_f1(gold, pred, LABELS)
    sweep = {}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        swept = ["supports" if ps >= t and ps >= pc else "contradicts" if pc >= t else "neither" for ps, pc in probs]
        sweep[f"{t:.1f}"] = macro_f1(gold, swept, LABELS)[0]
    return {"thresholds": [judges.SUPPORTS, judges.CONTRADICTS], "macro_f1_if_both_thresholds_were": sweep,
            "sentences": len(gold), "gold": dict(Counter(gold)), "accuracy": round(np.mean(
        [g == p for g, p in zip(gold, pred)]), 4), "macro_f1": f1, "f1": per,
        "rationale_supports_vs_contradicts_accuracy": round(np.mean(
            [g == p for g, p in zip(rationale_gold, rationale_pred)]), 4), "rationale_sentences": len(rationale_gold)}


def _open(folder: Path):
    from exorag.index.index import open_index

    return open_index(folder)


def claims(work: Path) -> dict:
    from exorag.ask.cite import cite_paragraph
    from exorag.build.ingest import ingest_paths

    index = _open(work / "scifact")
    ingest_paths(index, [SHARED / "scifact" / "beir_format" / "corpus.jsonl"], progress=True)
    dev, _ = scifact_dev()
    gold, pred = [], []
    for c in dev:
        labels = {ev["label"] for sets in (c.get("evidence") or {}).values() for ev in sets}
        g = "supported" if labels == {"SUPPORT"} else "contradicted" if labels == {"CONTRADICT"} else \
            "unsupported" if not labels else "mixed"
        if g == "mixed":
            continue
        result = cite_paragraph(index, c["claim"].replace("\n", " "), k=8)
        verdicts = [s.verdict for s in result]
        p = verdicts[0] if len(verdicts) == 1 else Counter(verdicts).most_common(1)[0][0]
        gold.append(g)
        pred.append(p)
    f1, per = macro_f1(gold, pred, ("supported", "contradicted", "unsupported"))
    confusion = Counter(f"{g}->{p}" for g, p in zip(gold, pred))
    return {"claims": len(gold), "accuracy": round(np.mean([g == p for g, p in zip(gold, pred)]), 4),
            "macro_f1": f1, "f1": per, "confusion": dict(sorted(confusion.items()))}


def bioasq(work: Path, limit: int | None) -> dict:
    from exorag.ask.answer import ask
    from exorag.build.ingest import ingest_paths
    from exorag.ask.retrieve import search

    questions = [q for q in bioasq_questions(SHARED / "bioasq_golden" / "Task11BGoldenEnriched")
                 if q.get("body") and q.get("snippets")]
    index = _open(work / "bioasq11b")
    corpus = bioasq_corpus(questions, work / "bioasq11b_snippets.jsonl")
    ingest_paths(index, [corpus], progress=True)
    chosen = questions[:limit] if limit else questions
    p5, recall, rouge, abstain_with, abstain_without = [], [], [], 0, 0
    sweep_with, sweep_without = [], []  # (best P(answers), abstained for another reason) per question
    t0 = time.perf_counter()
    for q in chosen:
        gold = {f"pmid:{m.group(1)}" for u in q.get("documents", []) if (m := PUBMED.search(u))}
        snippets = [s["text"] for s in q["snippets"]]
        answer = ask(index, q["body"], k=8)
        sweep_with.append((answer.support, answer.abstained and answer.support >= judges.ANSWERS))
        if answer.abstained:
            abstain_with += 1
        else:
            cited = answer.citations[:5]
            p5.append(np.mean([_overlaps(c.quote, snippets) for c in cited]))
            recall.append(len(gold & {c.document.id for c in answer.citations}) / max(1, len(gold)))
            ideal = q.get("ideal_answer") or [""]
            rouge.append(rouge_l(" ".join(c.quote for c in answer.citations), ideal[0] if isinstance(ideal, list)
                                 else str(ideal)))
        hits = [h for h in search(index, q["body"], k=8 + 2 * len(gold)) if h.document.id not in gold][:8]
        without = ask(index, q["body"], k=8, hits=hits)
        sweep_without.append((without.support, without.abstained and without.support >= judges.ANSWERS))
        if without.abstained:
            abstain_without += 1
    n = len(chosen)
    sweep = {}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        fa = np.mean([s < t or other for s, other in sweep_with])
        lgo = np.mean([s < t or other for s, other in sweep_without])
        sweep[f"{t:.1f}"] = {"false_abstain": round(float(fa), 3), "leave_gold_out_abstention": round(float(lgo), 3)}
    return {"questions": n, "answer_precision@5": round(float(np.mean(p5)), 4) if p5 else 0.0,
            "gold_doc_recall_in_cited": round(float(np.mean(recall)), 4) if recall else 0.0,
            "rouge_l_vs_ideal": round(float(np.mean(rouge)), 4) if rouge else 0.0,
            "false_abstain_rate": round(abstain_with / n, 4),
            "leave_gold_out_abstention": round(abstain_without / n, 4),
            "seconds_per_question_pair": round((time.perf_counter() - t0) / n, 3),
            "threshold": judges.ANSWERS, "sweep_of_the_answer_threshold": sweep}


def ev(index_dir: Path) -> dict:
    from exorag.ask.answer import ask
    from exorag.ask.cite import cite_paragraph

    index = _open(index_dir)
    data = REPO / "bench" / "data"
    unanswerable = json.loads((data / "ev_unanswerable.json").read_text(encoding="utf-8"))["questions"]
    answerable = json.loads((data / "ev_answerable.json").read_text(encoding="utf-8"))["questions"]
    claim_set = json.loads((data / "ev_claims.json").read_text(encoding="utf-8"))["claims"]
    answers = [ask(index, q["question"]) for q in unanswerable]
    abstained = [a.abstained for a in answers]
    sweep_u = [(a.support, a.abstained and a.support >= judges.ANSWERS) for a in answers]
    sweep_a = []
    by_kind = Counter(q["kind"] for q, a in zip(unanswerable, abstained) if a)
    false_abstain, cites_gold, yes_no_right, yes_no_total = 0, 0, 0, 0
    for q in answerable:
        answer = ask(index, q["question"])
        sweep_a.append((answer.support, answer.abstained and answer.support >= judges.ANSWERS))
        if answer.abstained:
            false_abstain += 1
            continue
        cites_gold += bool(set(q["doc_ids"]) & {c.document.id for c in answer.citations})
        if q.get("yesno") and answer.consensus:
            yes_no_total += 1
            c = answer.consensus
            said = "yes" if c["supports"] > c["contradicts"] else "no" if c["contradicts"] > c["supports"] else "?"
            yes_no_right += said == q["yesno"]
    verdicts = []
    for c in claim_set:
        verdicts.append((c["label"], c["kind"], cite_paragraph(index, c["claim"])[0].verdict))
    confusion = Counter(f"{g}->{p}" for g, _, p in verdicts)
    def rate(label: str, want: str) -> float:
        rows = [p for g, _, p in verdicts if g == label]
        return round(sum(p == want for p in rows) / max(1, len(rows)), 4)
    sweep = {f"{t:.1f}": {"abstention": round(float(np.mean([s < t or o for s, o in sweep_u])), 3),
                          "false_abstain": round(float(np.mean([s < t or o for s, o in sweep_a])), 3)}
             for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
    return {
        "threshold": judges.ANSWERS, "sweep_of_the_answer_threshold": sweep,
        "unanswerable": len(unanswerable), "abstained": sum(abstained), "abstention_rate": round(
            sum(abstained) / len(unanswerable), 4), "abstained_by_kind": dict(by_kind),
        "unanswerable_by_kind": dict(Counter(q["kind"] for q in unanswerable)),
        "answerable": len(answerable), "false_abstain_rate": round(false_abstain / len(answerable), 4),
        "answered_citing_a_gold_doc": round(cites_gold / max(1, len(answerable) - false_abstain), 4),
        "yes_no_consensus_correct": f"{yes_no_right}/{yes_no_total}",
        "claims": len(verdicts), "reversed_flagged_contradicted": rate("contradicted", "contradicted"),
        "reversed_flagged_contradicted_or_mixed": round(np.mean([p in ("contradicted", "mixed") for g, _, p in verdicts
                                                                 if g == "contradicted"]), 4),
        "paraphrase_supported": rate("supported", "supported"), "absent_unsupported": rate("unsupported",
                                                                                            "unsupported"),
        "claim_confusion": dict(sorted(confusion.items())),
    }


def latency(index_dir: Path, repeat: int = 2) -> dict:
    from exorag.ask.answer import ask
    from exorag.ask.retrieve import search

    index = _open(index_dir)
    questions = [q["question"] for q in json.loads((REPO / "bench" / "data" / "ev_questions.json").read_text(
        encoding="utf-8"))["questions"]]
    ask(index, questions[0])
    asks, searches, judging = [], [], []
    judge = judges.load()
    for _ in range(repeat):
        for q in questions:
            t = time.perf_counter()
            ask(index, q)
            asks.append(time.perf_counter() - t)
            t = time.perf_counter()
            hits = search(index, q, k=8)
            searches.append(time.perf_counter() - t)
            texts = [h.chunk.text[:300] for h in hits] * 4  # ~30 sentence-sized pairs, as ask judges
            t = time.perf_counter()
            judge.judge(q, texts[:30])
            judging.append(time.perf_counter() - t)
    ms = lambda xs, p: round(1000 * float(np.percentile(xs, p)), 1)  # noqa: E731
    return {"questions": len(asks), "ask_p50_ms": ms(asks, 50), "ask_p95_ms": ms(asks, 95),
            "search_p50_ms": ms(searches, 50), "judge_30_pairs_p50_ms": ms(judging, 50)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["stance", "claims", "bioasq", "ev", "latency"])
    parser.add_argument("--index", type=Path, default=Path("/tmp/demo"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/judge-bench"))
    parser.add_argument("--limit", type=int, default=0, help="BioASQ: first N questions only")
    parser.add_argument("--judge-batch", type=int, default=0,
                        help="pairs per ONNX run (default: judge.BATCH, 1); 32 reproduces the judge before issue 16")
    args = parser.parse_args()
    if args.judge_batch:
        judges.BATCH = args.judge_batch
    if not SHARED.exists():
        sys.exit(f"{SHARED} not found: these benchmarks need ../shared/data")
    runs = {"stance": stance, "claims": lambda: claims(args.work),
            "bioasq": lambda: bioasq(args.work, args.limit or None), "ev": lambda: ev(args.index),
            "latency": lambda: latency(args.index)}
    for name, run in runs.items():
        if args.only and name != args.only:
            continue
        t = time.perf_counter()
        result = run()
        print(json.dumps({name: result, "seconds": round(time.perf_counter() - t, 1)}, indent=1), flush=True)


if __name__ == "__main__":
    main()
