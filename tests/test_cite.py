"""`exorag cite` on the real index: a paraphrase of a paper in the sample is traced to it, an off-topic sentence is not."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from exorag.index import store
from exorag.text import overlap
from exorag.cli import main
from exorag.index.index import open_index

PNAS = "doi:10.1073/pnas.1605146113"  # "Extracellular vesicles and viruses: Are they close relatives?" (fixture corpus)
PARAGRAPH = (
    "Extracellular vesicles released by cells resemble retroviruses in their physical and chemical properties and "
    "in the way they are made. The Eiffel Tower was completed in 1889.\n"
)
CITATION_KEYS = {"n", "doc_id", "title", "year", "pmid", "doi", "url", "quote", "section", "page", "char_start",
                 "char_end", "score"}


def test_stdin_json_supports_paraphrase_and_not_off_topic(built_index: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PARAGRAPH))
    assert main(["cite", "-", "--index", str(built_index), "--json", "-k", "6"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"sentences"}
    first, second = payload["sentences"]
    assert set(first) >= {"sentence", "verdict", "supported", "citations", "contradicting"}
    assert first["sentence"].startswith("Extracellular vesicles released") and first["supported"] is True
    assert first["verdict"] == "supported"
    assert first["citations"][0]["doc_id"] == PNAS
    assert "retroviruses" in first["citations"][0]["quote"]
    assert 1 <= len(first["citations"]) <= 3
    assert second == {"sentence": "The Eiffel Tower was completed in 1889.", "start": second["start"],
                      "end": second["end"], "verdict": "unsupported", "supported": False, "citations": [],
                      "contradicting": []}
    assert PARAGRAPH[second["start"]:second["end"]] == second["sentence"]
    index = open_index(built_index)
    try:
        for n, citation in enumerate(first["citations"], start=1):
            assert CITATION_KEYS <= set(citation) and citation["n"] == n
            doc = index.get_document(citation["doc_id"])
            assert doc.text[citation["char_start"]:citation["char_end"]] == citation["quote"]
    finally:
        index.close()


def test_file_text_output_has_markers_and_references(built_index: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "draft.txt"
    path.write_text(PARAGRAPH, encoding="utf-8")
    assert main(["cite", str(path), "--index", str(built_index), "--year-from", "2010"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Extracellular vesicles released") and re.search(r"made\. \[1\](\[[23]\])*$", lines[0])
    assert lines[1] == "The Eiffel Tower was completed in 1889. [no supporting passage in the index]"
    assert "\nReferences\n[1] " in out and "https://doi.org/10.1073/pnas.1605146113" in out
    assert re.search(r'^    \[1\] “.*retroviruses.*” \(Abstract\)$', out, re.MULTILINE)


def test_filters_apply_and_bad_input_is_an_error(built_index: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "draft.txt"
    path.write_text(PARAGRAPH, encoding="utf-8")
    assert main(["cite", str(path), "--index", str(built_index), "--json", "--year-to", "2015"]) == 0
    payload = json.loads(capsys.readouterr().out)  # the PNAS paper is from 2016: it may not be suggested
    assert all(c["doc_id"] != PNAS for s in payload["sentences"] for c in s["citations"])
    assert main(["cite", str(tmp_path / "missing.txt"), "--index", str(built_index)]) == 1
    assert "cannot read" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    assert main(["cite", "-", "--index", str(built_index)]) == 1
    assert "no text to cite" in capsys.readouterr().err


def test_overlap_matches_spelling_and_word_forms() -> None:
    assert overlap("Tumour exosomes drive metastasis", "tumor-derived exosomal cargo drives metastatic spread") == 1.0
    assert overlap("Metformin restores PUM1", "PUM1 is decreased in MASLD") == pytest.approx(1 / 3)
    assert overlap("the of and", "anything") == 0.0


def test_reversed_finding_is_contradicted_with_the_quote(index) -> None:  # type: ignore[no-untyped-def]
    from exorag.ask.cite import cite_paragraph

    # pmid:39979806 (in the fixture corpus): "Cancer-secreted exosomal miR-1246 promotes colorectal cancer liver
    # metastasis by activating hepatic stellate cells."
    same, reversed_, absent = cite_paragraph(index, (
        "Exosomal miR-1246 promotes colorectal cancer liver metastasis. "
        "Exosomal miR-1246 inhibits colorectal cancer liver metastasis. "
        "Saturn's rings are made of ice and rock."), k=8)
    assert same.verdict == "supported" and "pmid:39979806" in {c.document.id for c in same.citations}
    assert reversed_.verdict == "contradicted" and not reversed_.citations
    quote = reversed_.contradicting[0]
    assert quote.document.id == "pmid:39979806" and "miR-1246" in quote.quote
    assert quote.stance == "contradicts" and quote.document.text[quote.char_start:quote.char_end] == quote.quote
    assert absent.verdict == "unsupported" and not absent.citations and not absent.contradicting
