"""The judge: does a sentence answer a question, and does it support, contradict or neither a claim.

One small cross-encoder (all-MiniLM-L6-v2 fine-tuned with two heads by `training/train_judge.py` on BioASQ 7B-10B,
SciFact train and PubMedQA; model card in the README) reads (question or claim, sentence) pairs together, so it sees
negation, direction and whether the sentence is about the thing asked, which cosine similarity cannot. Its int8 ONNX
graph, tokenizer and judge.json ship in `exorag/data/judge/`; nothing is downloaded. Output 0 is the answer logit,
outputs 1-3 the stance logits (neither, supports, contradicts); `judge` returns their probabilities.

One rule sits on top of the network, because a model this small reads negation well but an antonym poorly ("X
raises Y" against "X reduced Y" is mostly called support): `direction_conflict` finds a change word of the claim
(increases, promotes, higher...) and one of the opposite direction in the sentence (decreases, inhibits, lower...)
acting on the same thing (a content word shared by the words around each; "not" or "removal of" before a change
word turns it round), and none of the same direction; then
a sentence the network takes as evidence either way (P(supports) + P(contradicts) >= EVIDENCE) contradicts.
Valence words (improves, worsens) are left out: "improves survival" and "reduces mortality" agree.

The thresholds that turn probabilities into decisions live here, next to the model they belong to, and were set on
development data only (BioASQ 11B, SciFact dev, bench/data): see the README's model card and `bench/judges.py`.
Deliberately left out: the sentence's surrounding context and its paper's title (each sentence is judged alone),
calibration beyond these thresholds, and batching pairs (see Judge: each pair runs alone).
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exorag.errors import ModelNotFound

FOLDER = Path(__file__).resolve().parent.parent / "data" / "judge"
MODEL_FILE = "judge_int8.onnx"

ANSWERS = 0.7  # P(answers) at or above which a sentence answers (chosen on BioASQ 11B and bench/data sweeps)
SUPPORTS = 0.5  # P(supports) at or above which a sentence supports the claim
CONTRADICTS = 0.5  # P(contradicts) at or above which a sentence contradicts the claim
RELEVANT = 0.5  # P(answers) under which a sentence takes no side on a claim (the stance head alone over-supports
# sentences on the claim's topic; gating on the answer head, which was trained to find rationale sentences, helps)
BATCH = 1  # pairs per ONNX run: each pair alone, so its judgement does not depend on the other candidates (Judge)
EVIDENCE = 0.4  # P(supports) + P(contradicts) from which a direction conflict makes a sentence contradict

_LOCK = threading.Lock()
_LOADED: dict[Path, "Judge"] = {}


@dataclass(frozen=True)
class Judgement:
    """The judge's probabilities for one (question or claim, sentence) pair."""

    answers: float
    neither: float
    supports: float
    contradicts: float
    reversed: bool = False  # direction_conflict(claim, sentence)

    @property
    def stance(self) -> str:
        """'supports', 'contradicts' or 'neither', by the thresholds above (support wins a tie); evidence whose
        direction is the claim's reversed contradicts; a sentence that does not bear on the claim takes no side."""
        if self.answers < RELEVANT:
            return "neither"
        if self.reversed and self.supports + self.contradicts >= EVIDENCE:
            return "contradicts"
        if self.supports >= SUPPORTS and self.supports >= self.contradicts:
            return "supports"
        if self.contradicts >= CONTRADICTS:
            return "contradicts"
        return "neither"

    @property
    def answering(self) -> bool:
        return self.answers >= ANSWERS


class Judge:
    """The loaded judge (one onnxruntime session); `judge` is safe to call from several threads.

    Each pair runs alone (BATCH): the int8 graph quantises its activations per tensor, so in a batch a pair's logits
    moved with its batch-mates and their padding (by up to 1.2 on the demo index), and a batch of 24 pairs padded to
    its longest cost 2.1x the CPU of the pairs alone. The session runs on one thread; the pairs of a question go side
    by side on a pool of `threads` workers (default: the physical cores) that every caller shares, so one question
    uses all cores and many questions at once never run more ONNX threads than there are cores."""

    def __init__(self, folder: Path = FOLDER, threads: int | None = None) -> None:
        from exorag.index import onnx_embed

        model = folder / MODEL_FILE
        if not model.is_file() or not (folder / "tokenizer.json").is_file():
            raise ModelNotFound(f"the judge model is missing from {folder} (expected {MODEL_FILE} and tokenizer.json);"
                                " reinstall exorag or rerun training/train_judge.py --export")
        meta = json.loads((folder / "judge.json").read_text(encoding="utf-8")) if (folder / "judge.json").is_file() \
            else {}
        self.max_length = int(meta.get("max_length", 160))
        self.session = onnx_embed.make_session(model, 1)
        self.tokenizer = onnx_embed.load_tokenizer(folder, self.max_length)
        self._pad = onnx_embed._pad
        self.inputs = [i.name for i in self.session.get_inputs()]
        workers = threads or onnx_embed.default_threads()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") if workers > 1 else None

    def logits(self, first: str, seconds: list[str], batch_size: int | None = None) -> np.ndarray:
        """Raw (n, 4) logits for (first, each of seconds): `batch_size` pairs a run (batched by length when more
        than one), the runs spread over the shared pool."""
        if not seconds:
            return np.zeros((0, 4), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([(first, s) for s in seconds])
        order = sorted(range(len(seconds)), key=lambda i: len(encodings[i].ids))
        size = batch_size or BATCH
        groups = [order[b:b + size] for b in range(0, len(order), size)]

        def run(idx: list[int]) -> tuple[list[int], np.ndarray]:
            batch = self._pad([encodings[i] for i in idx], 0)
            return idx, self.session.run(["logits"], {n: batch[n] for n in self.inputs})[0]

        out = np.zeros((len(seconds), 4), dtype=np.float32)
        for idx, logits in (self._pool.map(run, groups) if self._pool is not None and len(groups) > 1
                            else map(run, groups)):
            out[idx] = logits
        return out

    def judge(self, first: str, seconds: list[str], batch_size: int | None = None) -> list[Judgement]:
        """A Judgement of each sentence in `seconds` against the question or claim `first`."""
        logits = self.logits(first, seconds, batch_size)
        answers = 1 / (1 + np.exp(-logits[:, 0]))
        stance = np.exp(logits[:, 1:4] - logits[:, 1:4].max(axis=1, keepdims=True))
        stance /= stance.sum(axis=1, keepdims=True)
        mine = _changes(first)  # the claim's change words, read once for all its sentences
        return [Judgement(answers=float(a), neither=float(p[0]), supports=float(p[1]), contradicts=float(p[2]),
                          reversed=_conflict(mine, _changes(second)))
                for a, p, second in zip(answers, stance, seconds)]


def load(folder: Path = FOLDER) -> Judge:
    """The judge of `folder` (the shipped one by default), loaded once per process."""
    with _LOCK:
        if folder not in _LOADED:
            _LOADED[folder] = Judge(folder)
        return _LOADED[folder]


_UP = ("increase", "increases", "increased", "increasing", "raise", "raises", "raised", "elevate", "elevates",
       "elevated", "enhance", "enhances", "enhanced", "enhancing", "promote", "promotes", "promoted", "promoting",
       "stimulate", "stimulates", "stimulated", "upregulate", "upregulates", "upregulated", "up-regulate",
       "up-regulates", "up-regulated", "accelerate", "accelerates", "accelerated", "activate", "activates",
       "activated", "higher", "greater", "more", "boost", "boosts", "boosted", "augment", "augments", "augmented",
       "amplify", "amplifies", "amplified", "facilitate", "facilitates", "facilitated", "rise", "rises", "rose")
_DOWN = ("decrease", "decreases", "decreased", "decreasing", "reduce", "reduces", "reduced", "reducing", "lower",
         "lowers", "lowered", "diminish", "diminishes", "diminished", "inhibit", "inhibits", "inhibited",
         "inhibiting", "suppress", "suppresses", "suppressed", "suppressing", "downregulate", "downregulates",
         "downregulated", "down-regulate", "down-regulates", "down-regulated", "slow", "slows", "slowed",
         "attenuate", "attenuates", "attenuated", "block", "blocks", "blocked", "impair", "impairs", "impaired",
         "less", "fewer", "smaller", "decline", "declines", "declined", "abolish", "abolishes", "abolished",
         "prevent", "prevents", "prevented", "repress", "represses", "repressed")
_POLARITY = {**{w: 1 for w in _UP}, **{w: -1 for w in _DOWN}}
_NEGATORS = {"not", "no", "never", "without", "neither", "nor", "fail", "fails", "failed", "cannot", "unable",
             "removal", "loss", "knockdown", "knockout", "deletion", "depletion", "silencing", "absence",
             "deficiency", "lack", "ablation", "blockade"}
_FILLER = {"the", "a", "an", "of", "in", "on", "to", "and", "or", "its", "their", "this", "that", "these", "by",
           "with", "for", "from", "as", "at", "significantly", "markedly", "strongly", "also", "both", "levels",
           "level", "expression", "cells", "cell", "risk", "rate", "rates", "activity"}
_WORDS = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _changes(text: str, window: int = 6) -> list[tuple[int, set[str]]]:
    """(direction, stems of the content words around it) for each change word; a negation or a loss word in the
    five words before it ("not", "removal of", "knockdown of") turns its direction round."""
    words = _WORDS.findall(text.lower())
    out = []
    for i, w in enumerate(words):
        polarity = _POLARITY.get(w)
        if polarity is None:
            continue
        if sum(1 for x in words[max(0, i - 5):i] if x in _NEGATORS or x.endswith("n't")) % 2:
            polarity = -polarity
        after = {x[:6] for x in words[i + 1:i + 1 + window] if x not in _FILLER and x not in _POLARITY and len(x) > 2}
        before = {x[:6] for x in words[max(0, i - 4):i] if x not in _FILLER and x not in _POLARITY and len(x) > 2}
        out.append((polarity, after | before))
    return out


def direction_conflict(claim: str, sentence: str) -> bool:
    """Whether the sentence changes what the claim changes in the opposite direction (and never the same way):
    "X raises colorectal cancer incidence" against "X reduced the incidence of colorectal cancer"."""
    return _conflict(_changes(claim), _changes(sentence))


def _conflict(mine: list[tuple[int, set[str]]], theirs: list[tuple[int, set[str]]]) -> bool:
    if not mine or not theirs or len({p for p, _ in mine}) != 1:
        return False
    polarity = mine[0][0]
    objects = set().union(*(o for _, o in mine))
    opposite = [o for p, o in theirs if p != polarity and o & objects]
    same = [o for p, o in theirs if p == polarity and o & objects]
    return bool(opposite) and not same


_YESNO = ("is", "are", "does", "do", "did", "can", "could", "has", "have", "had", "was", "were", "will", "would",
          "should", "may", "might", "must", "shall")


def is_yes_no(question: str) -> bool:
    """A question answered by yes or no: it opens with an auxiliary verb ("Is CD63 ...?", "Do EVs ...?") and is not
    an either/or question ("Is it A or B?")."""
    words = question.strip().split()
    if not words or words[0].lower().strip("¿") not in _YESNO:
        return False
    return " or " not in question.lower()
