"""Sentence splitting and chunking: spans are exact, budgets hold, sections and pages are never crossed."""

from __future__ import annotations

from exorag.build.chunk import chunk_document, split_sentences
from exorag.types import Document, Section


def words(text: str) -> int:
    return len(text.split())


def test_split_sentences_keeps_abbreviations_and_numbers_together() -> None:
    text = ("Exosomes (30-150 nm; see Fig. 2) carry PD-L1. Smith et al. showed that e.g. CD63 is enriched "
            "(p < 0.05. n = 3). In 2019, J. Doe found a 3.5-fold increase! What about miR-21? β-catenin rose.")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == [
        "Exosomes (30-150 nm; see Fig. 2) carry PD-L1.",
        "Smith et al. showed that e.g. CD63 is enriched (p < 0.05. n = 3).",
        "In 2019, J. Doe found a 3.5-fold increase!",
        "What about miR-21?",
        "β-catenin rose.",
    ]


def test_split_sentences_respects_paragraphs_and_offsets() -> None:
    text = "  Heading line\n\nFirst one. Second one.  "
    spans = split_sentences(text, 2, len(text))
    assert [text[s:e] for s, e in spans] == ["Heading line", "First one.", "Second one."]


def make_doc() -> Document:
    abstract = " ".join(f"Sentence number {i} talks about exosomes and vesicles." for i in range(30))
    methods = "Vesicles were isolated by ultracentrifugation. They were counted by NTA."
    text = abstract + "\n\n" + methods
    return Document(
        id="t:1", text=text, title="T",
        sections=(Section("Abstract", 0, len(abstract), page=1),
                  Section("Methods", len(abstract) + 2, len(text), page=2),),
    )


def test_chunks_fit_budget_and_are_exact_spans() -> None:
    doc = make_doc()
    chunks = chunk_document(doc, words, max_tokens=40)
    assert len(chunks) > 3
    for i, chunk in enumerate(chunks):
        assert chunk.ordinal == i
        assert doc.text[chunk.char_start:chunk.char_end] == chunk.text
        assert words(chunk.text) <= 40
    assert {c.section for c in chunks} == {"Abstract", "Methods"}
    methods = [c for c in chunks if c.section == "Methods"]
    assert len(methods) == 1 and methods[0].page == 2
    assert methods[0].text.startswith("Vesicles were isolated")


def test_overlong_sentence_is_cut_at_word_boundaries() -> None:
    text = " ".join(f"w{i}" for i in range(100)) + "."
    doc = Document(id="t:2", text=text, sections=(Section("Body", 0, len(text)),))
    chunks = chunk_document(doc, words, max_tokens=30)
    assert all(words(c.text) <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_unindexed_sections_are_not_chunked() -> None:
    text = "Main finding here.\n\nRef 1. Ref 2."
    doc = Document(id="t:3", text=text,
                   sections=(Section("Results", 0, 18), Section("References", 20, len(text), indexed=False)))
    assert [c.section for c in chunk_document(doc, words)] == ["Results"]
