"""Precision of the study-tag rules (exorag/build/tags.py) against hand labels of 60 exo_corpus records.

Usage: python bench/tag_precision.py [--labels FILE [FILE ...]] [--show-errors]
Reads the labelled records from ../shared/data/exo_corpus/corpus.jsonl, tags them with the rules and prints, per
tag key and overall, precision (predicted values that the labels confirm) and recall (labelled values predicted).
Label files in bench/data: tag_labels.json (60 records, the development sample the rules were refined on),
tag_labels_dev2.json (30, a second development sample), tag_labels_holdout.json (30, labelled after the rules were
frozen and never used to change them). Several files are pooled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from exorag.build.sources.jsonl import record_to_document
from exorag.build.tags import TAG_KEYS, tag_document

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "exo_corpus" / "corpus.jsonl"
LABELS = REPO / "bench" / "data" / "tag_labels.json"


def labelled_documents(labels: Path = LABELS, corpus: Path = CORPUS):  # type: ignore[no-untyped-def]
    """[(Document, {key: [values]})] for every labelled record, in label order."""
    wanted = {d["id"]: d["tags"] for d in json.loads(labels.read_text(encoding="utf-8"))["documents"]}
    found = {}
    with corpus.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            record = json.loads(line)
            if record.get("id") in wanted:
                found[record["id"]] = record_to_document(record, corpus, lineno)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise SystemExit(f"{corpus}: labelled ids not found: {', '.join(missing)}")
    return [(found[i], wanted[i]) for i in wanted]


def score(pairs) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """{key or 'overall': {tp, predicted, labelled, precision, recall}} over (Document, labels) pairs."""
    table = {k: {"tp": 0, "predicted": 0, "labelled": 0} for k in (*TAG_KEYS, "overall")}
    errors = []
    for doc, truth in pairs:
        predicted = tag_document(doc)
        for key in TAG_KEYS:
            p, t = set(predicted.get(key, [])), set(truth.get(key, []))
            for row in (table[key], table["overall"]):
                row["tp"] += len(p & t)
                row["predicted"] += len(p)
                row["labelled"] += len(t)
            errors += [(doc.id, key, v, "false positive") for v in sorted(p - t)]
            errors += [(doc.id, key, v, "missed") for v in sorted(t - p)]
    for row in table.values():
        row["precision"] = row["tp"] / row["predicted"] if row["predicted"] else float("nan")
        row["recall"] = row["tp"] / row["labelled"] if row["labelled"] else float("nan")
    table["_errors"] = errors  # type: ignore[assignment]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, nargs="+", default=[LABELS])
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    pairs = [pair for path in args.labels for pair in labelled_documents(path)]
    table = score(pairs)
    errors = table.pop("_errors")
    print(f"{len(pairs)} hand-labelled documents ({', '.join(p.name for p in args.labels)})")
    print(f"{'key':18s} {'precision':>9s} {'recall':>7s} {'predicted':>9s} {'labelled':>8s}")
    for key, row in table.items():
        print(f"{key:18s} {row['precision']:9.3f} {row['recall']:7.3f} {row['predicted']:9d} {row['labelled']:8d}")
    if args.show_errors:
        for doc_id, key, value, kind in errors:  # type: ignore[attr-defined]
            print(f"  {kind:14s} {doc_id} {key}={value}")


if __name__ == "__main__":
    main()
