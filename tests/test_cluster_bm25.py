"""exorag/cluster/bm25.py and merge.py without Ray: FTS5's bm25 recomputed from the store's figures equals FTS5's own
score bit for bit on the session index, and the merges give one store's shapes and orders."""

from __future__ import annotations

from exorag.ask.retrieve import expansion_expression, expansions, fts_expression
from exorag.cluster import bm25, merge

QUERIES = ["Which markers are used to characterise extracellular vesicles?", "exosomal PD-L1 immunotherapy",
           "miR-21 biomarker", "CD63 CD81 TSG101", "How are exosomes isolated from plasma?"]


def test_bm25_from_the_store_figures_is_fts5s_own(index):
    rows, tokens = index.fts_totals()
    compared = 0
    for query in QUERIES:
        for match in [fts_expression(query)] + [expansion_expression(e) for e in expansions(index, query)]:
            phrases, _ = bm25.phrases(match)
            idfs = [bm25.idf(rows, h) for h in index.phrase_hits(phrases)]
            found = index.lexical_search(match, 50)
            figures = index.phrase_frequencies([cid for cid, _ in found], phrases)
            for chunk_id, score in found:
                length, freqs = figures[chunk_id]
                assert bm25.score(freqs, length, idfs, tokens / rows) == score, (match, chunk_id)
                compared += 1
    assert compared > 200


def test_phrases_of_retrieve_expressions():
    assert bm25.phrases('"exosome" OR "pd-l1"') == (["exosome", "pd-l1"], 2)
    assert bm25.phrases('("lamp 3" OR "tspan30") NOT ("cd63")') == (["lamp 3", "tspan30", "cd63"], 2)
    assert bm25.phrases('"say ""hi"""') == (['say "hi"'], 1)


def test_merges():
    assert merge.top_k([[(1, 0.5), (2, 0.9)], [(7, 0.7)]], 2) == [(2, 0.9), (7, 0.7)]
    assert merge.term_counts([[1, None, 0], [2, None, 3]]) == [3, None, 3]
    assert merge.long_forms([{"ev": [("extracellular vesicle", 2)]},
                             {"ev": [("extracellular vesicle", 1), ("embryonic villi", 1)]}]) == \
        {"ev": [("embryonic villi", 1), ("extracellular vesicle", 3)]}
    assert merge.year_counts([[(2020, 1), (None, 2)], [(2019, 3), (2020, 1)]]) == [(2019, 3), (2020, 2), (None, 2)]
    assert merge.counted([[("pubmed", 2)], [("pdf", 2), ("pubmed", 1)]]) == [("pubmed", 3), ("pdf", 2)]
    assert merge.found_documents([(2, [{"id": "a", "added_at": "2"}]), (1, [{"id": "b", "added_at": "3"}])], 1, 0) \
        == (3, [{"id": "b", "added_at": "3"}])
    assert merge.in_order(["b", "a", "c"], [{"a": 1}, {"b": 2}]) == {"b": 2, "a": 1}
