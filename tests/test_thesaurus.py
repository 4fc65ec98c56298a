"""EV query expansion: the shipped thesaurus, ambiguity and RNA-exosome guards, mined abbreviations, retrieval."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from exorag.build import enrich
from exorag.index import store
from exorag.build import thesaurus
from exorag.cli import main
from exorag.index.index import open_index
from exorag.ask.retrieve import expansion_expression, expansions, search


def _synonyms(query: str) -> dict[str, tuple[str, ...]]:
    return {e.concept: e.synonyms for e in thesaurus.curated_expansions(query)}


def test_thesaurus_ships_with_the_package() -> None:
    t = thesaurus.load()
    assert t.version >= 1
    ids = {g.id for g in t.groups}
    assert {"ev", "cd63", "cd81", "alix", "tsg101", "syntenin", "calnexin", "sec", "nta", "pd_l1", "dex", "tex",
            "car_t", "checkpoint_blockade"} <= ids


def test_vesicle_synonyms_plurals_and_spellings() -> None:
    found = thesaurus.curated_expansions("What do exosomes carry?")
    assert [e.concept for e in found] == ["ev"]
    assert found[0].present == ("exosomes",)
    for phrase in ("exosome", "extracellular vesicles", "small ev", "sevs", "microvesicles", "ectosomes", "evs"):
        assert phrase in found[0].synonyms
    assert "exosomes" not in found[0].synonyms
    assert "tumour derived exosomes" in _synonyms("tumor-derived exosomes and T cells")["tex"]
    assert "cd274" in _synonyms("PD-L1 expression")["pd_l1"]
    assert "pdcd6ip" in _synonyms("ALIX as a marker")["alix"]


def test_ambiguous_short_forms_need_a_vesicle_context() -> None:
    assert _synonyms("Tex cells in chronic infection") == {}  # exhausted T cells, not tumour exosomes
    assert _synonyms("Dex treatment of asthma") == {}  # dexamethasone
    with_context = _synonyms("TEX exosomes suppress T cells")
    assert "tumor derived exosomes" in with_context["tex"]
    assert "dex" in _synonyms("dendritic cell-derived exosomes vaccine")["dex"]


def test_rna_exosome_complex_is_not_expanded_to_vesicles() -> None:
    for query in ("role of the RNA exosome complex in decay", "EXOSC10 and the nuclear exosome", "Rrp6 exosome"):
        assert "ev" not in _synonyms(query), query


def test_general_questions_are_not_expanded() -> None:
    for query in ("0-dimensional biomaterials lack inductive properties.", "Aspirin reduces the risk of stroke",
                  "Electric vehicles and battery recycling"):
        assert _synonyms(query) == {}, query


def test_abbreviation_mining_on_a_real_abstract() -> None:
    from tests.conftest import corpus_records

    records = {r["id"]: r for r in corpus_records(40, 0)}
    pairs = dict(thesaurus.mine_abbreviations(records["pmid:38387275"]["abstract"]))  # "... exosomes (TDEs) ..."
    assert pairs["tde"] == "tumor-derived exosomes"
    assert pairs["pmn"] == "premetastatic niche"
    pairs = dict(thesaurus.mine_abbreviations(records["pmid:29634426"]["abstract"]))
    assert pairs["tme"] == "tumor microenvironment"
    assert thesaurus.mine_abbreviations("values (P < 0.05) and (n = 3) and (see Fig 2)") == []


def test_mined_abbreviations_are_stored_and_expand_capitalised_short_forms(index) -> None:  # type: ignore[no-untyped-def]
    rows = index._conn.execute("SELECT count(DISTINCT doc_id) FROM abbreviations").fetchone()[0]
    assert rows > 50
    forms = index.long_forms(["ev", "nta"])
    assert ("extracellular vesicles", ) == tuple(lf for lf, n in forms["ev"] if n == max(m for _, m in forms["ev"]))
    assert any(lf == "nanoparticle tracking analysis" for lf, _ in forms["nta"])
    mined = {e.concept: e for e in thesaurus.abbreviation_expansions("NTA of urine samples",
                                                                     lambda keys: index.long_forms(keys))}
    assert mined["abbr:nta"].synonyms[0] == "nanoparticle tracking analysis"
    # lower-case words are never taken for abbreviations; thesaurus phrases are not expanded twice
    assert thesaurus.abbreviation_expansions("nta of urine", lambda keys: index.long_forms(keys)) == []
    concepts = [e.concept for e in expansions(index, "EV isolation")]
    assert concepts == ["ev"]


def test_synonyms_only_credit_passages_without_the_query_word(index) -> None:  # type: ignore[no-untyped-def]
    (ev,) = thesaurus.curated_expansions("exosomes")
    assert expansion_expression(ev).startswith('("exosome" OR "exosomal" OR "extracellular vesicle"')
    assert expansion_expression(ev).endswith(') NOT ("exosomes")')
    # Not "exosomes" itself: in the EV-heavy fixture corpus most passages say it, so its bm25 weight, and with it the
    # cap on its synonyms' credit, is about 0. "microvesicles" is a rarer word of the same concept.
    query = "microvesicles drug delivery"
    plain = search(index, query, k=20, mode="lexical", expand=False)
    expanded = search(index, query, k=20, mode="lexical")
    assert plain and expanded
    assert all(any(w in h.chunk.text.lower() + h.document.title.lower() for w in ("microvesicle", "drug", "delivery"))
               for h in plain)
    new = [h for h in expanded if h.chunk.id not in {p.chunk.id for p in plain}]  # only synonym credit lifts these
    assert new and all("microvesicle" not in h.chunk.text.lower() for h in new)
    assert any("extracellular vesicle" in (h.chunk.text + h.document.title).lower() for h in new)


def test_no_expand_flag(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "microvesicles drug delivery", "--index", str(built_index), "--mode", "lexical", "--json", "-k",
            "20"]
    assert main(args + ["--no-expand"]) == 0
    plain = [r["doc_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert main(args) == 0
    expanded = [r["doc_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert plain != expanded


def test_index_built_before_tags_is_migrated_on_open(built_index: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(built_index, old)
    db = sqlite3.connect(old / store.STORE_FILE)
    with db:
        before = db.execute("SELECT count(*) FROM doc_tags").fetchone()[0]
        db.executescript("DROP TABLE doc_tags; DROP TABLE abbreviations; DROP TABLE store_meta;")
    db.close()
    assert before > 0
    idx = open_index(old)
    try:
        assert idx._conn.execute("SELECT count(*) FROM doc_tags").fetchone()[0] == before
        assert idx._conn.execute("SELECT count(*) FROM abbreviations").fetchone()[0] > 0
        assert idx.migrate() == []  # nothing left to do
        idx._conn.execute("UPDATE store_meta SET value = '0' WHERE key = 'tags_version'")
        assert idx.migrate() == ["tags_version"]  # changed rules: recomputed
    finally:
        idx.close()


def test_locked_index_that_needs_tags_is_a_clear_error(built_index: Path, tmp_path: Path) -> None:
    old = tmp_path / "locked"
    shutil.copytree(built_index, old)
    db = sqlite3.connect(old / store.STORE_FILE, isolation_level=None)
    db.execute("DELETE FROM store_meta")  # as if built before the tag rules
    db.execute("BEGIN IMMEDIATE")  # another process holds the write lock past sqlite's 5 s wait
    try:
        with pytest.raises(store.StoreError, match="study tags and abbreviations.*database is locked"):
            store.connect(old, enrich.derive, enrich.VERSIONS)
    finally:
        db.execute("ROLLBACK")
        db.close()
    store.connect(old, enrich.derive, enrich.VERSIONS).close()  # once the lock is gone the same open computes them
