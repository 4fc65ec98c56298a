"""Training and development pairs for the judge, built from the expert data in ../shared/data (training splits only).

Two tasks, one file of pairs each per split (JSONL rows `{"task", "a", "b", "label", "src"}`):

- `answer` (a = question, b = one sentence, label 1 when the sentence answers the question, else 0):
  BioASQ 7B-10B golden sets: positives are the sentences of the question's expert snippets; hard negatives are the
  sentences of *other* questions' snippets closest to the question by MiniLM cosine (on topic, not an answer; a
  sentence of one of the question's own gold documents, or of a question with the same body, is never a negative),
  plus one random one. SciFact train: claim vs its rationale sentences (positive) and the other sentences of the
  same abstracts (negative). PubMedQA (outside its official 500 test ids): question vs the conclusion's sentences
  (positive) and background/methods sentences (negative: context, not an answer).
- `stance` (a = claim or yes/no question, b = sentence, label 0 neither / 1 supports / 2 contradicts):
  SciFact train rationales labelled SUPPORT / CONTRADICT; neither = the other sentences of the cited abstracts and
  the closest sentences of other abstracts. A rule-reversed copy of each supported claim ("increases" ->
  "decreases", "is" -> "is not", see `reverse_claim`) is paired with the same rationale as CONTRADICT. PubMedQA
  (non-test): question vs conclusion sentences, yes -> supports, no -> contradicts, maybe -> neither, background
  sentences -> neither. BioASQ 7B-10B yes/no questions vs their snippet sentences (yes -> supports, no ->
  contradicts; the yes side subsampled to twice the no side).

Development data: BioASQ 11B (answer task, built like the training pairs but over 11B alone) and SciFact dev
(stance task, gold rationales; neither = the other sentences of the cited abstracts). Training questions whose body
equals an 11B question's are dropped, so repeated BioASQ questions do not leak into the development figures.

Run: `python training/judge_data.py --data ../shared/data --out training/data` (about 3 minutes, most of it
embedding the BioASQ sentences for the hard negatives). Deliberately left out: the PubMedQA test ids, SciFact test
(no labels) and any data from outside ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exorag.build.chunk import split_sentences  # noqa: E402

PUBMED = re.compile(r"pubmed/(\d+)")
MIN_CHARS = 25

# Reversals of a finding's direction, applied once per claim (the first that matches), both ways round.
_SWAPS = [
    ("increases", "decreases"), ("increased", "decreased"), ("increase", "decrease"), ("increasing", "decreasing"),
    ("promotes", "inhibits"), ("promoted", "inhibited"), ("promote", "inhibit"), ("promoting", "inhibiting"),
    ("enhances", "reduces"), ("enhanced", "reduced"), ("enhance", "reduce"),
    ("higher", "lower"), ("more", "less"), ("greater", "smaller"), ("larger", "smaller"),
    ("upregulates", "downregulates"), ("upregulated", "downregulated"), ("up-regulated", "down-regulated"),
    ("activates", "suppresses"), ("activated", "suppressed"), ("activate", "suppress"),
    ("accelerates", "slows"), ("accelerated", "slowed"), ("improves", "worsens"), ("improved", "worsened"),
    ("positive", "negative"), ("positively", "negatively"), ("elevated", "reduced"), ("raises", "lowers"),
    ("induces", "prevents"), ("induced", "prevented"), ("stimulates", "inhibits"), ("gain", "loss"),
    ("benefit", "harm"), ("beneficial", "harmful"), ("protects against", "predisposes to"),
    ("required", "dispensable"), ("necessary", "dispensable"),
    ("effective", "ineffective"), ("sensitive", "resistant"), ("sensitizes", "desensitizes"),
]
_NEGATIONS = [(" is not ", " is "), (" are not ", " are "), (" does not ", " does "), (" do not ", " do "),
              (" cannot ", " can "), (" no ", " a "), (" not ", " ")]
_AUX = [(" is ", " is not "), (" are ", " are not "), (" can ", " cannot "), (" has ", " has no "),
        (" was ", " was not "), (" were ", " were not ")]


def reverse_claim(claim: str) -> str | None:
    """The claim with its direction reversed by one rule (a swapped antonym, or a negation added or removed), or
    None when no rule applies. Crude on purpose: it makes CONTRADICT pairs from SUPPORT ones."""
    padded = f" {claim} "
    for x, y in _NEGATIONS[:5]:  # a claim that already negates is un-negated rather than antonym-swapped
        if x in padded:
            return padded.replace(x, y, 1).strip()
    for a, b in _SWAPS:
        for x, y in ((a, b), (b, a)):
            pattern = re.compile(rf"\b{re.escape(x)}\b", re.IGNORECASE)
            if pattern.search(claim):
                return pattern.sub(lambda m: _case(m.group(0), y), claim, count=1)
    for x, y in _NEGATIONS[5:]:
        if x in padded:
            return padded.replace(x, y, 1).strip()
    for x, y in _AUX:
        if x in padded:
            return padded.replace(x, y, 1).strip()
    return None


def _case(found: str, repl: str) -> str:
    return repl[0].upper() + repl[1:] if found[:1].isupper() else repl


def sentences(text: str) -> list[str]:
    text = " ".join(str(text).split())
    return [text[s:e] for s, e in split_sentences(text) if e - s >= MIN_CHARS]


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def load_bioasq(folder: Path, tasks: list[str]) -> list[dict]:
    out = []
    for task in tasks:
        for path in sorted((folder / f"Task{task}GoldenEnriched").glob("*.json")):
            out.extend(json.loads(path.read_text(encoding="utf-8"))["questions"])
    return out


def bioasq_pool(questions: list[dict]) -> list[tuple[int, str, str]]:
    """(question index, pmid, sentence) for every snippet sentence, deduplicated per question."""
    pool = []
    for qi, q in enumerate(questions):
        seen = set()
        for snippet in q.get("snippets", []):
            match = PUBMED.search(snippet.get("document", ""))
            for s in sentences(snippet.get("text", "")):
                if s not in seen:
                    seen.add(s)
                    pool.append((qi, match.group(1) if match else "", s))
    return pool


def embed(texts: list[str]) -> np.ndarray:
    from exorag.index import embed as embed_mod

    return embed_mod.load().encode(texts, batch_size=128, progress=True)


def bioasq_answer_pairs(questions: list[dict], rng: random.Random, hard: int = 6, tag: str = "bioasq") -> list[dict]:
    pool = bioasq_pool(questions)
    bodies = [_norm(q.get("body", "")) for q in questions]
    gold_docs = [{m.group(1) for u in q.get("documents", []) if (m := PUBMED.search(u))} for q in questions]
    qv = embed([q.get("body", "") for q in questions])
    sv = embed([s for _, _, s in pool])
    by_q: dict[int, list[int]] = {}
    for i, (qi, _, _) in enumerate(pool):
        by_q.setdefault(qi, []).append(i)
    rows = []
    for qi, q in enumerate(questions):
        own = by_q.get(qi, [])
        if not own or not q.get("body"):
            continue
        for i in own:
            rows.append({"task": "answer", "a": q["body"], "b": pool[i][2], "label": 1, "src": tag})
        cos = sv @ qv[qi]
        negatives = []
        for i in np.argsort(-cos)[:200]:
            oq, pmid, s = pool[int(i)]
            if oq == qi or pmid in gold_docs[qi] or bodies[oq] == bodies[qi]:
                continue
            negatives.append(s)
            if len(negatives) >= max(hard, min(len(own), 2 * hard)):
                break
        negatives.append(pool[rng.randrange(len(pool))][2])
        for s in dict.fromkeys(negatives):
            rows.append({"task": "answer", "a": q["body"], "b": s, "label": 0, "src": tag})
    return rows


def bioasq_stance_pairs(questions: list[dict], rng: random.Random) -> list[dict]:
    yes, no = [], []
    for q in questions:
        if q.get("type") != "yesno" or not q.get("body"):
            continue
        exact = str(q.get("exact_answer", "")).strip().lower()
        if exact not in ("yes", "no"):
            continue
        for snippet in q.get("snippets", [])[:6]:
            for s in sentences(snippet.get("text", ""))[:2]:
                row = {"task": "stance", "a": q["body"], "b": s, "label": 1 if exact == "yes" else 2, "src": "bioasq"}
                (yes if exact == "yes" else no).append(row)
    rng.shuffle(yes)
    return no + yes[: 2 * len(no)]


def scifact(folder: Path, split: str) -> tuple[list[dict], dict[int, dict]]:
    corpus = {}
    for line in (folder / "corpus_sentences.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        corpus[int(d["doc_id"])] = d
    claims = [json.loads(line) for line in (folder / f"claims_{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    return claims, corpus


def scifact_pairs(folder: Path, split: str, rng: random.Random, augment: bool) -> list[dict]:
    claims, corpus = scifact(folder, split)
    rows = []
    for c in claims:
        claim = c["claim"]
        rationale: dict[tuple[int, int], int] = {}
        for doc_id, sets in (c.get("evidence") or {}).items():
            for evidence in sets:
                for idx in evidence["sentences"]:
                    rationale[int(doc_id), idx] = 1 if evidence["label"] == "SUPPORT" else 2
        others = []
        for doc_id in c.get("cited_doc_ids", []):
            doc = corpus.get(int(doc_id))
            if not doc:
                continue
            for idx, s in enumerate(doc["abstract"]):
                s = " ".join(s.split())
                if (int(doc_id), idx) in rationale:
                    label = rationale[int(doc_id), idx]
                    rows.append({"task": "stance", "a": claim, "b": s, "label": label, "src": f"scifact-{split}"})
                    rows.append({"task": "answer", "a": claim, "b": s, "label": 1, "src": f"scifact-{split}"})
                    if augment and label == 1 and (rev := reverse_claim(claim)):
                        rows.append({"task": "stance", "a": rev, "b": s, "label": 2, "src": "scifact-reversed"})
                elif len(s) >= MIN_CHARS:
                    others.append(s)
        rng.shuffle(others)
        limit = len(others) if not augment else 4
        for s in others[:limit]:
            rows.append({"task": "stance", "a": claim, "b": s, "label": 0, "src": f"scifact-{split}"})
            if rationale:
                rows.append({"task": "answer", "a": claim, "b": s, "label": 0, "src": f"scifact-{split}"})
    return rows


def pubmedqa_pairs(folder: Path, rng: random.Random) -> list[dict]:
    records = json.loads((folder / "ori_pqal.json").read_text(encoding="utf-8"))
    test = set(json.loads((folder / "test_ground_truth.json").read_text(encoding="utf-8")))
    rows = []
    for pmid, r in records.items():
        if pmid in test:
            continue
        q, decision = r["QUESTION"], r["final_decision"]
        conclusion = sentences(r.get("LONG_ANSWER", ""))
        label = {"yes": 1, "no": 2}.get(decision, 0)
        for s in conclusion:
            rows.append({"task": "answer", "a": q, "b": s, "label": 1, "src": "pubmedqa"})
            rows.append({"task": "stance", "a": q, "b": s, "label": label, "src": "pubmedqa"})
        background = [s for text, lab in zip(r.get("CONTEXTS", []), r.get("LABELS", []))
                      if lab.upper() in ("BACKGROUND", "OBJECTIVE", "METHODS") for s in sentences(text)]
        rng.shuffle(background)
        for s in background[:2]:
            rows.append({"task": "answer", "a": q, "b": s, "label": 0, "src": "pubmedqa"})
            rows.append({"task": "stance", "a": q, "b": s, "label": 0, "src": "pubmedqa"})
    return rows


def focus_pairs(data: Path, train: list[dict], rng: random.Random, answer_keep: int = 8000) -> list[dict]:
    """The second training phase's mix, for the stance head (phase one leaves it weak on direction): the stance pairs
    of `train` with SciFact's rationales three times, the reversed claims twice, each SciFact CONTRADICT claim
    reversed back and paired with its rationale as SUPPORT, synthetic direction pairs from BioASQ snippet sentences
    (the sentence itself as a claim supports it; its reversal contradicts it), and `answer_keep` answer pairs so the
    answer head is kept."""
    stance = [r for r in train if r["task"] == "stance"]
    out = list(stance)
    out += [r for r in stance if r["src"] == "scifact-train" and r["label"] in (1, 2)] * 2
    out += [r for r in stance if r["src"] == "scifact-reversed"]
    for r in stance:
        if r["src"] == "scifact-train" and r["label"] == 2 and (back := reverse_claim(r["a"])):
            out.append({"task": "stance", "a": back, "b": r["b"], "label": 1, "src": "scifact-reversed-back"})
    questions = load_bioasq(data / "bioasq_golden", ["7B", "8B", "9B", "10B"])
    pool = [s for _, _, s in bioasq_pool(questions) if 40 <= len(s) <= 300]
    rng.shuffle(pool)
    made = 0
    for s in pool:
        if made >= 1500:
            break
        rev = reverse_claim(s)
        if rev and rev != s:
            out.append({"task": "stance", "a": s, "b": s, "label": 1, "src": "synthetic-same"})
            out.append({"task": "stance", "a": rev, "b": s, "label": 2, "src": "synthetic-reversed"})
            made += 1
    answers = [r for r in train if r["task"] == "answer"]
    rng.shuffle(answers)
    out += answers[:answer_keep]
    rng.shuffle(out)
    return out


def write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['task']}:{row['label']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"{path}: {len(rows)} pairs {dict(sorted(counts.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("training/data"))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--focus", action="store_true",
                        help="write the second phase's mix (focus.jsonl) from train.jsonl instead")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.focus:
        train = [json.loads(line) for line in (args.out / "train.jsonl").open(encoding="utf-8")]
        write(focus_pairs(args.data, train, rng), args.out / "focus.jsonl")
        return
    dev_q = load_bioasq(args.data / "bioasq_golden", ["11B"])
    dev_bodies = {_norm(q.get("body", "")) for q in dev_q}
    train_q = [q for q in load_bioasq(args.data / "bioasq_golden", ["7B", "8B", "9B", "10B"])
               if _norm(q.get("body", "")) not in dev_bodies]
    train = (bioasq_answer_pairs(train_q, rng) + bioasq_stance_pairs(train_q, rng)
             + scifact_pairs(args.data / "scifact", "train", rng, augment=True)
             + pubmedqa_pairs(args.data / "pubmedqa", rng))
    rng.shuffle(train)
    write(train, args.out / "train.jsonl")
    dev = bioasq_answer_pairs(dev_q, rng, tag="bioasq-11b") + [
        r for r in scifact_pairs(args.data / "scifact", "dev", rng, augment=False) if r["task"] == "stance"]
    write(dev, args.out / "dev.jsonl")


if __name__ == "__main__":
    main()
