"""Retrieval evaluation on human relevance judgments: BEIR folders (SciFact) and BioASQ golden sets.

`evaluate_beir` indexes a BEIR folder's corpus.jsonl (reusing the index when it is already built: ingest is
idempotent), runs every query of the split's qrels through `retrieve.search` at document level (one chunk per
document) and computes nDCG@10, Recall@10, Recall@100 and MRR@10 exactly as trec_eval does for binary/graded
judgments (linear gain, log2 discount). `evaluate_bioasq` builds a corpus of every gold snippet grouped per PubMed
document and reports recall of the gold documents in the top 10 and 100. Deliberately left out: answer-quality
metrics (the answers issue) and significance tests.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from exorag.errors import ExoragError
from exorag.index.index import Index
from exorag.build.ingest import ingest_paths
from exorag.ask.retrieve import search
from exorag.types import Filters


class EvalDataError(ExoragError):
    """An evaluation folder that is missing files or is malformed."""


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    positives = {doc for doc, rel in relevant.items() if rel > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def metrics(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean of each metric over the judged queries."""
    n = len(qrels)
    if not n:
        raise EvalDataError("no judged queries")
    return {
        "ndcg@10": sum(ndcg_at(runs.get(q, []), rel) for q, rel in qrels.items()) / n,
        "recall@10": sum(recall_at(runs.get(q, []), rel, 10) for q, rel in qrels.items()) / n,
        "recall@100": sum(recall_at(runs.get(q, []), rel, 100) for q, rel in qrels.items()) / n,
        "mrr@10": sum(mrr_at(runs.get(q, []), rel) for q, rel in qrels.items()) / n,
        "queries": n,
    }


def read_beir(folder: Path, split: str) -> tuple[Path, dict[str, str], dict[str, dict[str, int]]]:
    """(corpus path, queries, qrels of the split) of a BEIR folder."""
    corpus, queries_path, qrels_path = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for path in (corpus, queries_path, qrels_path):
        if not path.exists():
            raise EvalDataError(f"{path}: missing (a BEIR folder has corpus.jsonl, queries.jsonl, qrels/{split}.tsv)")
    queries = {}
    for line in queries_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            queries[str(record["_id"])] = record["text"]
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if lineno == 1 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) < 3:
            raise EvalDataError(f"{qrels_path}:{lineno}: expected query-id, corpus-id, score")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[-1])
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise EvalDataError(f"{qrels_path}: {len(missing)} judged queries are not in queries.jsonl (e.g. {missing[0]})")
    return corpus, queries, qrels


def run_queries(
    index: Index, queries: dict[str, str], mode: str, fusion: str, depth: int = 100, progress: bool = True,
    filters: Filters | None = None, expand: bool = True,
) -> dict[str, list[str]]:
    """Document ids ranked per query (one best chunk per document)."""
    runs = {}
    for qid, text in tqdm(queries.items(), desc="queries", unit="q", disable=not progress):
        hits = search(index, text, k=depth, mode=mode, per_doc=1, fusion=fusion, filters=filters,  # type: ignore[arg-type]
                      expand=expand)
        runs[qid] = [h.document.id for h in hits]
    return runs


def evaluate_beir(
    index: Index, folder: Path, split: str = "test", mode: str = "hybrid", fusion: str = "convex", progress: bool = True,
    expand: bool = True,
) -> dict[str, Any]:
    corpus, queries, qrels = read_beir(folder, split)
    report = ingest_paths(index, [corpus], progress=progress)
    if report.failed and not report.ingested:
        raise EvalDataError(f"{corpus}: nothing could be ingested ({report.failed[0]})")
    runs = run_queries(index, {q: queries[q] for q in qrels}, mode, fusion, progress=progress, expand=expand)
    return {"dataset": str(folder), "split": split, "mode": mode, "fusion": fusion, "expand": expand,
            **metrics(runs, qrels)}


_PUBMED_ID = re.compile(r"(\d+)\s*$")


def bioasq_questions(folder: Path) -> list[dict[str, Any]]:
    """Every question of every *golden*.json file under `folder` (BioASQ Task B format)."""
    files = sorted(folder.rglob("*.json"))
    if not files:
        raise EvalDataError(f"{folder}: no BioASQ .json files")
    questions = []
    for path in files:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}: not JSON ({exc.msg})") from exc
        questions.extend(payload.get("questions", []))
    return questions


def bioasq_corpus(questions: Iterable[dict[str, Any]], out: Path) -> Path:
    """Write the gold snippets grouped per PubMed document as a JSONL corpus (id pmid:N) and return its path."""
    docs: dict[str, list[str]] = {}
    for q in questions:
        for snippet in q.get("snippets", []):
            match = _PUBMED_ID.search(snippet.get("document", ""))
            text = " ".join(str(snippet.get("text", "")).split())
            if match and text:
                texts = docs.setdefault(match.group(1), [])
                if text not in texts:
                    texts.append(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for pmid, texts in sorted(docs.items()):
            record = {"id": f"pmid:{pmid}", "pmid": pmid, "abstract": "\n\n".join(texts), "source": "bioasq"}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def evaluate_bioasq(
    index: Index, folder: Path, mode: str = "hybrid", fusion: str = "convex", progress: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    questions = bioasq_questions(folder)
    corpus = bioasq_corpus(questions, index.folder / "bioasq_snippets.jsonl")
    ingest_paths(index, [corpus], progress=progress)
    in_corpus = {json.loads(line)["id"] for line in corpus.read_text(encoding="utf-8").splitlines()}
    qrels: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    for q in questions[:limit] if limit else questions:
        # Gold documents without any snippet are not in the corpus and could never be found: left out.
        gold = {f"pmid:{m.group(1)}": 1 for url in q.get("documents", [])
                if (m := _PUBMED_ID.search(url)) and f"pmid:{m.group(1)}" in in_corpus}
        if gold and q.get("body"):
            qrels[q["id"]] = gold
            texts[q["id"]] = q["body"]
    runs = run_queries(index, texts, mode, fusion, progress=progress)
    result = metrics(runs, qrels)
    return {"dataset": str(folder), "mode": mode, "fusion": fusion, "recall@10": result["recall@10"],
            "recall@100": result["recall@100"], "ndcg@10": result["ndcg@10"], "queries": result["queries"]}


# --- answer quality ---------------------------------------------------------------------------------------------

_WORDS = re.compile(r"\w+")


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens (longest common subsequence)."""
    a, b = _WORDS.findall(candidate.lower()), _WORDS.findall(reference.lower())
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _overlaps(quote: str, snippets: list[str]) -> bool:
    """True when the quote and a gold snippet share a long stretch (one contains most of the other's words)."""
    q = set(_WORDS.findall(quote.lower()))
    for snippet in snippets:
        s = set(_WORDS.findall(snippet.lower()))
        if q and s and len(q & s) / min(len(q), len(s)) >= 0.6:
            return True
    return False


def evaluate_answers_bioasq(
    index: Index, folder: Path, progress: bool = True, limit: int | None = 200, k: int = 8
) -> dict[str, Any]:
    """Answer BioASQ questions over an index of their snippets: gold-document recall among cited works, share of
    answers with a quote overlapping a gold snippet, ROUGE-L against the ideal answer, abstention rate."""
    from exorag.ask.answer import ask

    questions = [q for q in bioasq_questions(folder) if q.get("body") and q.get("snippets")]
    chosen = questions[:limit] if limit else questions
    # The corpus is the snippets of the evaluated questions (all of them when no limit is set), so that a quick run
    # does not have to embed all 14k BioASQ documents; every question still competes with the others' documents.
    corpus = bioasq_corpus(chosen, index.folder / f"bioasq_answer_snippets_{len(chosen)}.jsonl")
    ingest_paths(index, [corpus], progress=progress)
    cited_recall, overlap, rouge, abstained, per_question = [], [], [], 0, []
    for q in tqdm(chosen, desc="answers", unit="q", disable=not progress):
        answer = ask(index, q["body"], k=k)
        gold = {f"pmid:{m.group(1)}" for url in q.get("documents", []) if (m := _PUBMED_ID.search(url))}
        cited = {c.document.id for c in answer.citations}
        ideal = q.get("ideal_answer") or [""]
        ideal_text = ideal[0] if isinstance(ideal, list) else str(ideal)
        if answer.abstained:
            abstained += 1
        else:
            cited_recall.append(len(gold & cited) / len(gold) if gold else 0.0)
            overlap.append(any(_overlaps(c.quote, [s["text"] for s in q["snippets"]]) for c in answer.citations))
            rouge.append(rouge_l(answer.text, ideal_text))
        per_question.append({"id": q["id"], "abstained": answer.abstained, "cited": sorted(cited)})
    answered = len(chosen) - abstained
    return {
        "dataset": str(folder), "questions": len(chosen), "answered": answered,
        "abstain_rate": abstained / len(chosen) if chosen else 0.0,
        "gold_doc_recall_in_cited": sum(cited_recall) / answered if answered else 0.0,
        "quote_overlaps_gold_snippet": sum(overlap) / answered if answered else 0.0,
        "rouge_l_vs_ideal": sum(rouge) / answered if answered else 0.0,
    }


def evaluate_answers_pubmedqa(
    index: Index, path: Path, progress: bool = True, limit: int | None = 200, k: int = 8
) -> dict[str, Any]:
    """On PubMedQA (questions whose abstracts are in the index as pmid:N), how often the answer cites evidence
    from the question's own abstract, and how often it abstains on these answerable questions."""
    from exorag.ask.answer import ask

    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalDataError(f"{path}: unreadable PubMedQA file ({exc})") from exc
    corpus = index.folder / "pubmedqa_contexts.jsonl"
    if not corpus.exists():
        tmp = corpus.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for pmid, record in records.items():
                contexts = record.get("CONTEXTS") or []
                labels = record.get("LABELS") or []
                sections = [{"heading": (labels[i] if i < len(labels) else "Abstract").title(), "text": text}
                            for i, text in enumerate(contexts)]
                row = {"id": f"pmid:{pmid}", "pmid": pmid, "sections": sections, "year": record.get("YEAR"),
                       "source": "pubmedqa"}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(corpus)
    ingest_paths(index, [corpus], progress=progress)
    items = list(records.items())[:limit] if limit else list(records.items())
    own, top1_own, abstained = 0, 0, 0
    for pmid, record in tqdm(items, desc="answers", unit="q", disable=not progress):
        answer = ask(index, record["QUESTION"], k=k)
        if answer.abstained:
            abstained += 1
            continue
        cited = [c.document.id for c in answer.citations]
        own += f"pmid:{pmid}" in cited
        top1_own += cited[0] == f"pmid:{pmid}"
    answered = len(items) - abstained
    return {
        "dataset": str(path), "questions": len(items), "answered": answered,
        "false_abstain_rate": abstained / len(items) if items else 0.0,
        "own_abstract_cited": own / answered if answered else 0.0,
        "own_abstract_cited_first": top1_own / answered if answered else 0.0,
    }
