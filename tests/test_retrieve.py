"""Retrieval on the real index: filters on every path, fusion variants, per-document cap, safe FTS expressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main
from rag.retrieve import fts_expression, query_terms, search
from rag.types import Filters


def test_fts_expression_quotes_every_term() -> None:
    assert fts_expression('CD63 AND "NEAR" title:x* -miR-21') == '"cd63" OR "near" OR "title" OR "mir-21"'
    assert query_terms("What is the role of IL-6?") == ["role", "il-6"]
    assert fts_expression("the of and") == ""


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_year_filter_applies_to_every_mode(index, mode: str) -> None:  # type: ignore[no-untyped-def]
    filters = Filters(year_from=2019, year_to=2021)
    hits = search(index, "extracellular vesicles drug delivery", k=10, mode=mode, filters=filters)  # type: ignore[arg-type]
    assert hits
    assert all(h.document.year is not None and 2019 <= h.document.year <= 2021 for h in hits)


def test_source_journal_and_pub_type_filters(index) -> None:  # type: ignore[no-untyped-def]
    hits = search(index, "microRNA in colorectal cancer", filters=Filters(sources=("miretrieve_cancer_mirna",)))
    assert hits and {h.document.source for h in hits} == {"miretrieve_cancer_mirna"}
    hits = search(index, "vesicles", filters=Filters(journals=("journal of extracellular vesicles",)))
    assert hits and {h.document.journal for h in hits} == {"Journal of Extracellular Vesicles"}
    hits = search(index, "microRNA", filters=Filters(pub_types=("journal article",)))
    assert hits and all("Journal Article" in h.document.publication_types for h in hits)


def test_filters_that_match_nothing_give_no_results(index, built_index: Path,  # type: ignore[no-untyped-def]
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert search(index, "exosomes", filters=Filters(year_from=2090)) == []
    assert main(["search", "exosomes", "--index", str(built_index), "--source", "nowhere"]) == 0
    assert capsys.readouterr().out.strip() == "no results"
    assert main(["ask", "What do exosomes carry?", "--index", str(built_index), "--year-to", "1900", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["abstained"] is True


def test_per_document_cap_and_convex_fusion(index) -> None:  # type: ignore[no-untyped-def]
    for fusion in ("rrf", "convex"):
        hits = search(index, "extracellular vesicle characterisation methods", k=20, per_doc=1, fusion=fusion)  # type: ignore[arg-type]
        ids = [h.document.id for h in hits]
        assert len(ids) == len(set(ids)) == 20
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
