"""Evaluation: metric oracles computed by hand, and the BEIR/BioASQ paths end to end on a real SciFact subset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from exorag.cli import main
from exorag.ask.evaluate import bioasq_corpus, metrics, mrr_at, ndcg_at, read_beir, recall_at

from .conftest import SHARED, need

SCIFACT = SHARED / "scifact" / "beir_format"
BIOASQ = SHARED / "bioasq_golden"


def test_metrics_match_hand_computed_values() -> None:
    ranked = ["d3", "d1", "d9", "d2"]
    relevant = {"d1": 1, "d2": 1}
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(ranked, relevant) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert recall_at(ranked, relevant, 2) == 0.5 and recall_at(ranked, relevant, 10) == 1.0
    assert mrr_at(ranked, relevant) == 0.5
    assert ndcg_at(["d1", "d2"], relevant) == pytest.approx(1.0)
    graded = {"a": 2, "b": 1}
    assert ndcg_at(["b", "a"], graded) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    summary = metrics({"q1": ["d1"], "q2": []}, {"q1": {"d1": 1}, "q2": {"d5": 1}})
    assert summary["mrr@10"] == 0.5 and summary["queries"] == 2


def small_beir(folder: Path, n_queries: int = 25, n_distractors: int = 150) -> Path:
    """A real SciFact subset: judged test queries, their relevant abstracts and other abstracts as distractors."""
    corpus_path, queries, qrels = read_beir(need(SCIFACT), "test")
    chosen = dict(list(qrels.items())[:n_queries])
    wanted = {d for rel in chosen.values() for d in rel}
    docs, distractors = [], 0
    for line in corpus_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["_id"] in wanted or distractors < n_distractors:
            distractors += record["_id"] not in wanted
            docs.append(line)
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in chosen), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, rel in chosen.items() for d, s in rel.items()))
    return folder


def test_eval_beir_on_scifact_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = small_beir(tmp_path / "scifact")
    results = {}
    for mode in ("hybrid", "lexical"):
        assert main(["eval", "beir", str(folder), "--index", str(tmp_path / "idx"), "--mode", mode,
                     "--json", "-q"]) == 0
        results[mode] = json.loads(capsys.readouterr().out)
    for result in results.values():
        assert result["queries"] == 25
        assert 0.5 < result["ndcg@10"] <= 1.0 and result["recall@100"] >= result["recall@10"]
    assert results["hybrid"]["ndcg@10"] >= results["lexical"]["ndcg@10"] - 0.05


def test_eval_beir_missing_files_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "beir", str(tmp_path), "--index", str(tmp_path / "idx")]) == 1
    assert "corpus.jsonl: missing" in capsys.readouterr().err


def test_bioasq_corpus_groups_snippets_per_document(tmp_path: Path) -> None:
    questions = json.loads((need(BIOASQ) / "Task10BGoldenEnriched" / "10B1_golden.json").read_text())["questions"]
    out = bioasq_corpus(questions[:20], tmp_path / "c.jsonl")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) > 20 and all(i.startswith("pmid:") for i in ids)
    snippets = {s["text"].split()[0] for q in questions[:20] for s in q["snippets"]}
    assert any(r["abstract"].split()[0] in snippets for r in records)
