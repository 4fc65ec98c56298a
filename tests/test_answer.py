"""Extractive answers: framing sentences ('this review focuses on...') do not lead; support is unaffected."""

from __future__ import annotations

import pytest

from exorag.ask import answer
from exorag.index.index import Index
from exorag.types import Chunk, Document, Hit, Section


@pytest.mark.parametrize("sentence", [
    "To shed light into this complex but expanding field of science, this review focuses on the definition of exosomes.",
    "Extracellular vesicles (EVs) have become the focus of rising interest because of their numerous functions.",
    "Here, we review recent advances in the isolation of small EVs.",
    "In this review, we summarize the roles of exosomal miRNAs in cancer.",
    "Their clinical applications will also be discussed.",
    "Exosomes have attracted increasing attention as biomarkers.",
])
def test_framing_sentences(sentence: str) -> None:
    assert answer.is_meta(sentence)


@pytest.mark.parametrize("sentence", [
    "Exosomal PD-L1 suppressed CD8 T cell function in the draining lymph node.",
    "CD63, CD81 and TSG101 were enriched in the exosome fraction.",
    "Reviews of 120 patients showed no difference in survival.",
    "Whether exosomes cross the blood-brain barrier remains unknown.",
])
def test_findings_are_not_framing(sentence: str) -> None:
    assert not answer.is_meta(sentence)


def _hit(doc_id: str, text: str, score: float) -> Hit:
    doc = Document(id=doc_id, text=text, title="Markers of extracellular vesicles", sections=(Section("Abstract", 0, len(text)),))
    return Hit(chunk=Chunk(doc_id, 0, text, "Abstract", None, 0, len(text), id=hash(doc_id) % 10**6), document=doc,
               score=score)


def test_penalty_changes_order_not_support(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """A framing sentence the judge rates a little higher than a finding leads without the penalty and follows
    with it; the support (what abstention is decided on) is the same either way."""
    question = "Which markers are used to characterise extracellular vesicles?"
    framing = ("In this review we summarise the markers used to characterise extracellular vesicles, such as CD63, "
               "CD81 and TSG101.")
    finding = "Extracellular vesicles were characterised by the markers CD63, CD81 and TSG101 on western blot."
    hits = [_hit("review", framing, 1.0), _hit("study", finding, 0.9)]
    assert answer.is_meta(framing) and not answer.is_meta(finding)
    monkeypatch.setattr(answer, "META_PENALTY", 0.0)
    plain = answer.ask(index, question, hits=hits)
    monkeypatch.setattr(answer, "META_PENALTY", 0.1)
    penalised = answer.ask(index, question, hits=hits)
    assert [c.quote for c in plain.citations] == [framing, finding]  # the judge alone puts the framing first
    assert [c.quote for c in penalised.citations] == [finding, framing]
    assert plain.support == pytest.approx(penalised.support) and not penalised.abstained
    for c in penalised.citations:
        assert c.document.text[c.char_start:c.char_end] == c.quote


def test_yes_no_question_gets_a_consensus_and_labelled_quotes(built_index, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from exorag.cli import main

    assert main(["ask", "Does exosomal miR-1246 promote colorectal cancer liver metastasis?", "--index",
                 str(built_index), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert not payload["abstained"]
    consensus = payload["consensus"]
    assert set(consensus) == {"supports", "contradicts", "neither"}
    assert sum(consensus.values()) == len({c["doc_id"] for c in payload["citations"]})
    assert all(c["stance"] in ("supports", "contradicts", "neither") for c in payload["citations"])
    assert payload["answer"].startswith("Consensus: ")
    assert "pmid:39979806" in {c["doc_id"] for c in payload["citations"]}  # the paper that answers it is quoted


def test_abstains_when_no_answer_names_the_specific_term(index: Index) -> None:
    result = answer.ask(index, "What is the recommended dose of zorbatinib?")
    assert result.abstained and result.citations == ()
    assert "zorbatinib" in " ".join(result.missing).lower() or result.support < 0.5


def test_answers_quote_only_judged_answering_sentences(index: Index) -> None:
    from exorag.ask import judge

    result = answer.ask(index, "Which markers are used to characterise extracellular vesicles?")
    assert not result.abstained
    for c in result.citations:
        assert c.score >= judge.ANSWERS and answer.is_quotable(c.quote)
        assert c.document.text[c.char_start:c.char_end] == c.quote
