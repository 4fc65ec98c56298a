"""Claims against passages: which sentences support a claim, which contradict it; `exorag cite` and the LLM check.

For one claim (a sentence of the user's draft, or of an LLM answer) and some retrieved passages, the quotable
sentences of the passages are pre-ranked by word overlap and retrieval score (answer.prefilter), the best JUDGED
are read by the judge
(exorag/ask/judge.py) together with the claim, and each becomes Evidence with the judge's stance: supports, contradicts or
neither. Evidence counts only where the passage (with its paper's title) shares at least MIN_OVERLAP of the claim's
content words: the judge reads one sentence, and this keeps a claim about one drug, gene or number from being
"supported" by a sentence about another.

A claim's verdict: `supported` (some sentence supports it, none contradicts), `contradicted` (some contradicts,
none supports), `mixed` (both: the literature disagrees, and the writer should see both sides) or `unsupported`.
`cite_paragraph` splits a user's paragraph into sentences, retrieves passages for each and reports up to
MAX_QUOTES supporting and MAX_QUOTES contradicting quotes, each from a distinct paper (a paper counts once, with its
strongest stance: `paper_stances`), numbered through the text.
Deliberately left out: support spread over several sentences (each quote is one sentence) and claims longer
than one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from exorag.ask import judge as judges
from exorag.ask.answer import candidate_sentences, prefilter
from exorag.build.chunk import split_sentences
from exorag.errors import EmptyQuery
from exorag.index.index import Index
from exorag.ask.judge import Judgement
from exorag.ask.retrieve import search
from exorag.text import content_words, overlap, parts
from exorag.types import Citation, Filters, Hit

JUDGED = 24  # sentences per claim that the judge reads (answer.prefilter)
MIN_OVERLAP = 0.3  # share of the claim's content words the passage (or its title) must contain to count
MAX_QUOTES = 3  # supporting (and contradicting) quotes reported per sentence by `cite`
VERDICTS = ("supported", "contradicted", "mixed", "unsupported")


@dataclass(frozen=True)
class Evidence:
    """One judged sentence of one passage for one claim: offsets into `hit.document.text`, the judge's view and the
    share of the claim's content words in the passage (with its title)."""

    hit: Hit
    start: int
    end: int
    judgement: Judgement
    overlap: float

    restates: bool = False  # the claim is this sentence, word for word (a quote pasted into a draft)

    @property
    def stance(self) -> str:
        if self.restates:
            return "supports"
        return self.judgement.stance if self.overlap >= MIN_OVERLAP else "neither"

    @property
    def strength(self) -> float:
        """How strongly it takes its stance: the judge's probability for it plus half the claim's word coverage (the
        judge alone rates a sentence on the same topic about as high as the one that states the claim). A sentence
        that restates the claim word for word supports it with certainty: the judge may rate a neighbouring sentence
        of the same passage a little higher than the very sentence a model's or a draft's claim quotes."""
        if self.restates:
            return 1.0 + 0.5 * self.overlap
        p = {"supports": self.judgement.supports, "contradicts": self.judgement.contradicts}.get(
            self.stance, self.judgement.neither)
        return p + 0.5 * self.overlap

    @property
    def quote(self) -> str:
        return self.hit.document.text[self.start:self.end]

    def citation(self, n: int) -> Citation:
        chunk = self.hit.chunk
        return Citation(n=n, document=self.hit.document, quote=self.quote, section=chunk.section, page=chunk.page,
                        char_start=self.start, char_end=self.end, score=self.strength, stance=self.stance)


@dataclass(frozen=True)
class SentenceSupport:
    """One sentence of the user's paragraph (offsets into that paragraph), its verdict and the quotes behind it."""

    sentence: str
    start: int
    end: int
    citations: tuple[Citation, ...]  # supporting quotes
    contradicting: tuple[Citation, ...] = ()

    @property
    def verdict(self) -> str:
        if self.citations and self.contradicting:
            return "mixed"
        if self.citations:
            return "supported"
        return "contradicted" if self.contradicting else "unsupported"

    @property
    def supported(self) -> bool:
        return self.verdict == "supported"


def _sentences(hit: Hit) -> list[tuple[int, int]]:
    spans = [(s, e) for _, s, e in candidate_sentences([hit])]
    return spans or split_sentences(hit.document.text, hit.chunk.char_start, hit.chunk.char_end) or [
        (hit.chunk.char_start, hit.chunk.char_end)]


def restates(claim: str, sentence: str) -> bool:
    """Whether the claim's words (at least six) occur in the sentence in order and unbroken: a quotation."""
    c, s = " ".join(parts(claim)), " ".join(parts(sentence))
    return len(c.split()) >= 6 and f" {c} " in f" {s} "


def judge_claim(claim: str, hits: list[Hit], judged: int = JUDGED) -> list[Evidence]:
    """The judged sentences of `hits` for `claim` (at most `judged` of them, chosen by answer.prefilter)."""
    if not hits:
        return []
    spans = [(hit, s, e) for hit in hits for s, e in _sentences(hit)]
    texts = [hit.document.text[s:e] for hit, s, e in spans]
    order = prefilter(claim, spans, texts, judged)
    verdicts = judges.load().judge(claim, [texts[i] for i in order])
    passages: dict[int, float] = {}
    out = []
    for i, verdict in zip(order, verdicts):
        hit, s, e = spans[i]
        key = id(hit)
        if key not in passages:
            passages[key] = overlap(claim, f"{hit.document.title} {hit.chunk.text}")
        out.append(Evidence(hit=hit, start=s, end=e, judgement=verdict, overlap=passages[key],
                            restates=restates(claim, texts[i])))
    return out


def paper_stances(evidence: list[Evidence]) -> list[Evidence]:
    """Each paper's say on the claim: of its sentences that take a side, the one that takes it most strongly (a
    paper does not both support and contradict one claim; where its sentences seem to, the stronger one counts)."""
    best: dict[str, Evidence] = {}
    for e in evidence:
        if e.stance != "neither" and (e.hit.document.id not in best or e.strength > best[e.hit.document.id].strength):
            best[e.hit.document.id] = e
    return list(best.values())


def strongest(evidence: list[Evidence], stance: str, limit: int = MAX_QUOTES) -> list[Evidence]:
    """The evidence taking `stance`, strongest first, one per paper, `limit` in all."""
    chosen: list[Evidence] = []
    for e in sorted((e for e in evidence if e.stance == stance), key=lambda e: -e.strength):
        if len(chosen) == limit:
            break
        if all(c.hit.document.id != e.hit.document.id for c in chosen):
            chosen.append(e)
    return chosen


def cite_paragraph(index: Index, paragraph: str, k: int = 8, filters: Filters | None = None,
                   limit: int = MAX_QUOTES) -> list[SentenceSupport]:
    """The verdict and quotes for each sentence of `paragraph`; numbers run through the paragraph, one per quote."""
    spans = split_sentences(paragraph)
    if not spans:
        raise EmptyQuery("there is no text to cite: give a file with a paragraph, or pipe one into `exorag cite -`")
    numbers: dict[tuple[str, int, int], int] = {}
    out = []

    def cite(evidence: list[Evidence]) -> tuple[Citation, ...]:
        citations = []
        for e in evidence:
            n = numbers.setdefault((e.hit.document.id, e.start, e.end), len(numbers) + 1)
            citations.append(e.citation(n))
        return tuple(citations)

    for s, e in spans:
        sentence = " ".join(paragraph[s:e].split())
        hits = search(index, sentence, k=k, filters=filters) if content_words(sentence) else []
        evidence = paper_stances(judge_claim(sentence, hits))
        out.append(SentenceSupport(sentence=sentence, start=s, end=e,
                                   citations=cite(strongest(evidence, "supports", limit)),
                                   contradicting=cite(strongest(evidence, "contradicts", limit))))
    return out
