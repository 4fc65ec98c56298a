"""Calibrate abstention: the judge's best P(answers) on answerable vs unanswerable questions, rates per threshold.

Usage: python bench/abstention.py --index DIR --positives pubmedqa|exo [--limit N]
- pubmedqa: PubMedQA questions over an index of their own contexts (build it with
  `exorag eval pubmedqa ../shared/data/pubmedqa/ori_pqal.json --index DIR`): every question is answerable.
- exo: the EV questions below over the demo index (`exorag demo --index DIR`), answerable from exo_corpus.
Negatives are the off-topic / out-of-corpus questions below, asked against the same index.
Prints false-abstain (answerable questions abstained on) and false-answer (unanswerable answered) per threshold of
exorag.ask.judge.ANSWERS (the rule that also abstains when no answering sentence names the question's specific terms is
not part of this sweep; bench/judges.py measures the whole rule).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from exorag.ask.answer import ask
from exorag.ask.judge import ANSWERS
from exorag.index.index import open_index

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

NEGATIVES = [
    "What is the boiling point of tungsten in a vacuum furnace?",
    "Who wrote the novel War and Peace?",
    "How do I configure an ingress controller in Kubernetes?",
    "What is the capital city of Australia?",
    "How many moons does Jupiter have?",
    "What is the best way to season a cast iron pan?",
    "Which team won the 1998 football World Cup?",
    "How does a jet engine produce thrust?",
    "What is the time complexity of quicksort in the worst case?",
    "When was the Eiffel Tower built?",
    "How do you calculate compound interest on a mortgage?",
    "What are the rules of cricket's leg before wicket?",
    "Which programming language is best for writing a compiler?",
    "What causes the northern lights?",
    "How do I change a flat tyre on a bicycle?",
    "What is the plot of Hamlet?",
    "How is steel recycled in an electric arc furnace?",
    "What is the tallest mountain in Africa?",
    "How does blockchain consensus work in Bitcoin?",
    "What is the recommended tyre pressure for a family car?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How do solar panels convert sunlight into electricity?",
    "What is the GDP of Brazil?",
    "How do bees communicate the location of flowers?",
    "What temperature should bread be baked at?",
    "What is the speed of sound in water?",
    "How do I learn to play the guitar?",
    "What was the cause of the fall of the Roman Empire?",
    "How do noise-cancelling headphones work?",
    "What is the chemical formula of table salt?",
]

EXO_POSITIVES = [
    "What is the role of exosomal PD-L1 in tumour immune evasion?",
    "Which markers are used to characterise extracellular vesicles?",
    "How are exosomes isolated from plasma?",
    "Can dendritic cell-derived exosomes be used as cancer vaccines?",
    "Which exosomal microRNAs are biomarkers of colorectal cancer?",
    "Do tumour-derived exosomes promote metastasis?",
    "How do extracellular vesicles deliver drugs?",
    "Are circulating exosomes useful for liquid biopsy in pancreatic cancer?",
    "Does miR-21 promote chemoresistance in colorectal cancer?",
    "How is the size of extracellular vesicles measured?",
    "What cargo do exosomes carry?",
    "Do mesenchymal stem cell exosomes have therapeutic effects?",
    "How do tumour exosome integrins determine organotropic metastasis?",
    "What is nanoparticle tracking analysis used for?",
    "Can exosomes cross the blood-brain barrier?",
    "What are the challenges in reproducibility of extracellular vesicle research?",
    "Which microRNAs are dysregulated in pancreatic cancer?",
    "How do exosomes from cancer-associated fibroblasts cause therapy resistance?",
    "Can engineered exosomes deliver siRNA?",
    "Do bacteria release extracellular vesicles?",
]


def supports(index_dir: Path, questions: list[str]) -> list[float]:
    index = open_index(index_dir)
    return [ask(index, q).support for q in questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--positives", choices=["pubmedqa", "exo"], required=True)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    if args.positives == "pubmedqa":
        records = json.loads((SHARED / "pubmedqa" / "ori_pqal.json").read_text())
        questions = [r["QUESTION"] for r in list(records.values())[-args.limit:]]  # the last N: not the tuning head
    else:
        questions = EXO_POSITIVES
    pos = supports(Path(args.index), questions)
    neg = supports(Path(args.index), NEGATIVES)
    print(f"positives ({args.positives}): n={len(pos)} median {statistics.median(pos):.3f} min {min(pos):.3f}")
    print(f"negatives (off-topic):   n={len(neg)} median {statistics.median(neg):.3f} max {max(neg):.3f}")
    print("threshold  false-abstain  false-answer")
    for t in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
        fa = sum(p < t for p in pos) / len(pos)
        fn = sum(n >= t for n in neg) / len(neg)
        mark = "  <- current" if abs(t - ANSWERS) < 1e-9 else ""
        print(f"  {t:.2f}      {fa:6.3f}        {fn:6.3f}{mark}")


if __name__ == "__main__":
    main()
