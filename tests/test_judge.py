"""The shipped judge (exorag/data/judge): it loads offline, its outputs are probabilities, and it reads meaning, not
similarity: a sentence that answers beats an on-topic one that does not, a negated finding is contradicted."""

from __future__ import annotations

import pytest

from exorag.ask import judge
from exorag.ask.answer import is_quotable, specific_terms
from exorag.index.index import Index


def test_loads_from_the_package_and_gives_probabilities() -> None:
    j = judge.load()
    assert judge.load() is j  # once per process
    out = j.judge("Is CD63 found on exosomes?", ["CD63 is enriched on exosomes.", "The weather was cold.", ""])
    assert len(out) == 3
    for v in out:
        assert 0.0 <= v.answers <= 1.0
        assert v.neither + v.supports + v.contradicts == pytest.approx(1.0, abs=1e-5)
        assert v.stance in ("supports", "contradicts", "neither")
    assert j.judge("anything", []) == []


def test_a_sentence_is_judged_the_same_whatever_else_is_judged_with_it() -> None:
    """Each pair runs alone (judge.BATCH): the int8 graph quantises activations per tensor, so batched with other
    sentences (and their padding) a sentence's logits moved by up to 1.2. Now its judgement is the same alone, among
    other candidates, and from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    j = judge.load()
    question = "Which tetraspanins are used as exosome markers?"
    target = "The tetraspanins CD9, CD63 and CD81 are enriched in exosomes and are widely used as exosomal markers."
    others = ["Exosomes are studied in many laboratories around the world.",
              "Small extracellular vesicles were isolated from plasma by size-exclusion chromatography and "
              "characterised by nanoparticle tracking analysis, transmission electron microscopy and western "
              "blotting for CD9, CD63, CD81, TSG101 and Alix, with calnexin as a negative marker.", "Yes."]
    alone = j.logits(question, [target])[0]
    assert (j.logits(question, others + [target])[-1] == alone).all()
    assert (j.logits(question, [target] + others[:1])[0] == alone).all()
    with ThreadPoolExecutor(4) as pool:
        for out in pool.map(lambda _: j.logits(question, others + [target]), range(8)):
            assert (out[-1] == alone).all()


def test_missing_model_is_a_named_error(tmp_path) -> None:
    from exorag.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="judge model is missing"):
        judge.Judge(tmp_path)


@pytest.mark.parametrize("question, answering, not_answering", [
    ("Which tetraspanins are used as exosome markers?",
     "The tetraspanins CD9, CD63 and CD81 are enriched in exosomes and are widely used as exosomal markers.",
     "Exosomes are studied in many laboratories around the world."),
    ("What is the size range of exosomes?",
     "Exosomes are small vesicles with a diameter of 30 to 150 nm.",
     "Exosome research has grown rapidly in the last decade."),
    ("Which enzyme converts angiotensin I to angiotensin II?",
     "Angiotensin-converting enzyme cleaves angiotensin I to form angiotensin II.",
     "Angiotensin II levels were measured in 40 patients."),
])
def test_answering_sentence_beats_on_topic_non_answer(question: str, answering: str, not_answering: str) -> None:
    yes, no = judge.load().judge(question, [answering, not_answering])
    assert yes.answers > no.answers + 0.2
    assert yes.answering


@pytest.mark.parametrize("claim, sentence, stance", [
    ("Aspirin reduces the risk of colorectal cancer.",
     "Daily aspirin use significantly reduced the incidence of colorectal cancer.", "supports"),
    ("Aspirin increases the risk of colorectal cancer.",
     "Daily aspirin use significantly reduced the incidence of colorectal cancer.", "contradicts"),
    ("Smoking has no effect on lung cancer risk.",
     "Smoking strongly increased the risk of lung cancer in this cohort.", "contradicts"),
    ("Exosomes carry microRNAs.", "The hospital opened a new car park in 2019.", "neither"),
])
def test_stance(claim: str, sentence: str, stance: str) -> None:
    assert judge.load().judge(claim, [sentence])[0].stance == stance


@pytest.mark.parametrize("question, expected", [
    ("Is CD63 an exosomal marker?", True), ("Do exosomes carry DNA?", True), ("Can EVs cross the BBB?", True),
    ("What do exosomes carry?", False), ("Is it plasma or serum that gives more EVs?", False), ("", False),
])
def test_yes_no_questions(question: str, expected: bool) -> None:
    assert judge.is_yes_no(question) is expected


@pytest.mark.parametrize("sentence", [
    "Exosomes were isolated from plasma by size-exclusion chromatography,",  # a fragment
    "and were then characterised by nanoparticle tracking analysis in all samples.",  # starts mid-clause
    "© 2021 The Authors. Journal of Extracellular Vesicles published by Wiley Periodicals LLC.",
    "Correspondence should be addressed to J. Smith, e-mail: j.smith@example.org, Department of Biology.",
    "This is an open access article under the terms of the Creative Commons Attribution License.",
    "• CD63 • CD81 • TSG101 • Alix • flotillin-1 were the markers used in the panel of tests",
    "Table 2 | 12.3 ± 0.4 | 45.1 ± 2.2 | 0.031 | 0.44 | 19/20 | 3.1e-4 | n = 12 | 7.7",
])
def test_unquotable_sentences(sentence: str) -> None:
    assert not is_quotable(sentence)


@pytest.mark.parametrize("sentence", [
    "Exosomes were isolated from plasma by size-exclusion chromatography.",
    "miR-21 was enriched in serum exosomes of patients with colorectal cancer (p < 0.01).",
    "CD8+ T cells were suppressed by exosomal PD-L1 in the draining lymph node.",
])
def test_quotable_sentences(sentence: str) -> None:
    assert is_quotable(sentence)


def test_specific_terms(index: Index) -> None:
    terms = specific_terms(index, "Does exosomal PD-L1 or miR-21 suppress CD8 T cells in mice?")
    assert {"PD-L1", "miR-21", "CD8"} <= set(terms)
    assert not {"exosomal", "mice", "cells", "suppress"} & set(terms)
    assert specific_terms(index, "What are exosomes?") == []
