"""Retrieval on the real index: filters on every path, fusion variants, per-document cap, safe FTS expressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exorag.cli import main
from exorag.ask.retrieve import fts_expression, query_terms, search
from exorag.types import Filters


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
    unfiltered = search(index, "microRNA in colorectal cancer")
    assert {h.document.source for h in unfiltered} != {"scifact"}  # so that the filter has something to remove
    hits = search(index, "microRNA in colorectal cancer", filters=Filters(sources=("scifact",)))
    assert hits and {h.document.source for h in hits} == {"scifact"}
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


def _old_store_with_one_document(folder: Path) -> None:
    """A store as made before stemming: the same schema with the plain unicode61 FTS5 tokenizer."""
    import sqlite3

    from exorag.build.enrich import derive
    from exorag.index import store
    from exorag.types import Chunk, Document, Section

    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / store.STORE_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(store.SCHEMA.replace('tokenize="porter unicode61', 'tokenize="unicode61'))
    text = "Exosomes are secreted vesicles. Tumour cells released them."
    doc = Document(id="d1", text=text, sections=(Section("Abstract", 0, len(text)),), title="Secreted exosomes")
    store.put_document(conn, doc, [Chunk("d1", 0, text, "Abstract", None, 0, len(text))], derive(doc))
    assert store.lexical_search(conn, '"vesicle"', 5) == []  # unstemmed: the singular misses "vesicles"
    conn.close()


def test_store_made_before_stemming_is_rebuilt_on_open_and_stems(tmp_path: Path) -> None:
    from exorag.index import store

    _old_store_with_one_document(tmp_path / "old")
    conn = store.connect(tmp_path / "old")
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()[0]
    assert "porter" in sql
    for term in ('"vesicle"', '"secretion" OR "xyz"', '"releasing"', '"exosome"'):
        hits = store.lexical_search(conn, term, 5)
        assert [cid for cid, _ in hits] == [1], term
    # the triggers still feed the rebuilt table
    conn.execute("DELETE FROM chunks WHERE id = 1")
    assert store.lexical_search(conn, '"vesicle"', 5) == []
    conn.close()
    store.connect(tmp_path / "old").close()  # a second open finds it done


def test_store_that_cannot_be_rebuilt_is_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    from exorag.index import store

    _old_store_with_one_document(tmp_path / "busy")
    writer = sqlite3.connect(tmp_path / "busy" / store.STORE_FILE, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock past sqlite's 5 s wait
    try:
        with pytest.raises(store.StoreError, match="predates stemming.*database is locked"):
            store.connect(tmp_path / "busy")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    store.connect(tmp_path / "busy").close()


def test_stemmed_lexical_search_on_the_real_index(index) -> None:  # type: ignore[no-untyped-def]
    singular = search(index, "vesicle", k=5, mode="lexical")
    plural = search(index, "vesicles", k=5, mode="lexical")
    assert singular and [h.chunk.id for h in singular] == [h.chunk.id for h in plural]


def test_document_level_convex_fusion() -> None:
    from exorag.ask.retrieve import convex

    # paper A: its dense hit and its bm25 hit are different chunks (1, 2); paper B has one chunk (3) in both lists
    dense = [(1, 0.9), (3, 0.8), (4, 0.1)]
    lexical = [(2, 10.0), (3, 6.0), (5, 1.0)]
    doc_of = {1: "A", 2: "A", 3: "B", 4: "C", 5: "D"}
    chunk_level = convex(dense, lexical, alpha=0.5)
    assert max(chunk_level, key=chunk_level.get) == 3  # chunk-level: B wins, A's evidence is split in two
    doc_level = convex(dense, lexical, alpha=0.5, doc_of=doc_of)
    assert max(doc_level, key=doc_level.get) in (1, 2)  # A has the best dense and the best bm25 passage
    assert doc_level[1] == pytest.approx(1.0)  # A's best chunk carries A's document score
    assert doc_level[2] == pytest.approx(chunk_level[2]) == pytest.approx(0.5)  # its other chunk keeps its own
    assert doc_level[3] == pytest.approx(chunk_level[3])
    assert convex(dense, [], alpha=0.5, doc_of=doc_of)[1] == pytest.approx(0.5)


def test_term_chunk_counts_stem_like_the_index(index) -> None:  # type: ignore[no-untyped-def]
    from exorag.index import store

    counts = index.term_chunk_counts(["vesicles", "vesicle", "mir-21", "xyzzyqq"])
    assert counts[0] == counts[1] > 0  # both stem to the same token
    assert counts[2] is None  # two tokens: a phrase, never pruned
    assert counts[3] == 0
    expected = index._conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '\"vesicles\"'").fetchone()[0]
    assert counts[0] == expected


def test_very_common_words_leave_the_bm25_side_of_large_indexes(index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from exorag.ask import retrieve
    from exorag.index import store

    query = "Which vesicles carry PD-L1 zzyzx?"
    assert retrieve.searched_terms(index, query) == retrieve.query_terms(query)  # a small index: nothing pruned
    monkeypatch.setattr(retrieve, "PRUNE_FROM", 0)
    size = index.chunk_id_bound()
    share = index.term_chunk_counts(["vesicles"])[0] / size
    assert share > 0.05
    monkeypatch.setattr(retrieve, "COMMON_TERM_SHARE", share / 2)
    assert retrieve.searched_terms(index, query) == ["carry", "pd-l1", "zzyzx"]  # rarer words and the phrase stay
    assert retrieve.searched_terms(index, "vesicles") == ["vesicles"]  # a single word is kept
    monkeypatch.setattr(retrieve, "COMMON_TERM_SHARE", 0.0)
    assert retrieve.searched_terms(index, "vesicles exosomes") == ["vesicles", "exosomes"]  # all common: all kept
    hits = retrieve.search(index, query, k=5, mode="lexical")
    assert hits  # the pruned query still finds passages
