"""Oracle tests of sharded serving (exorag/cluster/serve.py) on a real two-node Ray cluster on 127.0.0.1.

The 207 records of the fixture corpus are indexed twice: once as one ordinary index, once as a sharded index of two
shards (tests/sharded.py, the plain way: documents routed by layout.shard_of_document, chunk ids seeded per shard).
Both take the vectors the session's built_index computed for the same passages, so nothing is embedded again. The
sharded index is served by two replicas per shard (four actors, spread over both nodes) and must give what the
single index gives: the same dense top k (same passages, cosine within 1e-5; chunk ids differ), the same lexical and
hybrid hits (bm25 under global statistics, exorag/cluster/bm25.py), the same corpus counts and lookups, the same
answers, evidence tables and draft checks. How much per-shard bm25 statistics would change is measured and printed. Writes are refused; a killed actor is replaced, and a shard that cannot come back is named in the
error. Skipped with the reason where ray (the [cluster] extra) is not installed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import pytest

from tests.ray_cluster import RAY_ENV, RAY_SKIP

if RAY_SKIP:
    pytest.skip(RAY_SKIP, allow_module_level=True)
os.environ.update(RAY_ENV)  # before ray is imported: Ray reads it once, at import

from exorag.ask.answer import ask  # noqa: E402
from exorag.ask.retrieve import search  # noqa: E402
from exorag.errors import ReadOnlyIndex, ShardUnavailable  # noqa: E402
from exorag.index.index import open_index  # noqa: E402
from exorag.types import Filters  # noqa: E402
from tests.conftest import corpus_records  # noqa: E402
from tests.sharded import make_sharded, make_single  # noqa: E402

QUESTIONS = [
    "Which markers are used to characterise extracellular vesicles?",
    "Does exosomal PD-L1 suppress anti-tumour immunity?",
    "How are exosomes isolated from plasma?",
    "Which exosomal miRNAs are biomarkers of cancer?",
    "Do tumour-derived exosomes promote metastasis?",
    "What is the recommended dose of zorbatinib?",
]
QUERIES = QUESTIONS + [
    "exosomal PD-L1 immunotherapy", "milk EVs", "ultracentrifugation size exclusion chromatography",
    "CD63 CD81 TSG101", "dendritic cell derived exosomes vaccine", "hypoxia tumor exosomes niche",
    "liquid biopsy", "nanoparticle tracking analysis", "RNA exosome complex", "engineered EV drug delivery",
]
FILTERS = [None, Filters(year_from=2021), Filters(tags=(("design", "review"),))]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, built_index):
    records = corpus_records()
    base = tmp_path_factory.mktemp("cluster-serve")
    return (make_single(base / "single", records, vectors_from=built_index),
            make_sharded(base / "sharded", records, 2, vectors_from=built_index))


@pytest.fixture(scope="module")
def single(folders):
    index = open_index(folders[0])
    yield index
    index.close()


@pytest.fixture(scope="module")
def sharded(ray_cluster, folders):
    import ray

    from exorag.cluster.serve import open_sharded

    index = open_sharded(folders[1], ray_cluster.address, replicas=2)
    yield index
    index.close()
    ray.shutdown()


_SINGLE: dict = {}  # what the single index answered, by call: each is compared more than once


def on_single(single, fn, *args, **kwargs):
    key = (fn.__name__, args, tuple(sorted(kwargs.items())))
    if key not in _SINGLE:
        _SINGLE[key] = fn(single, *args, **kwargs)
    return _SINGLE[key]


def passages(hits):
    return [(h.chunk.doc_id, h.chunk.text) for h in hits]


def same_ranking(a, b) -> bool:
    """The same scores (within 1e-9) and the same passages at each score; where several passages tie at the last
    score, which of them made the cut is the order of equal scores, which depends on chunk ids (they differ)."""
    if len(a) != len(b) or any(abs(x.score - y.score) > 1e-9 for x, y in zip(a, b)):
        return False
    last = a[-1].score if a else 0.0
    group = lambda hits: sorted((round(h.score, 9), h.chunk.doc_id, h.chunk.text) for h in hits  # noqa: E731
                                if abs(h.score - last) > 1e-9)
    return group(a) == group(b)


def test_actors_run_on_both_nodes(sharded, ray_cluster):
    where = sharded.where()
    assert [len(replicas) for replicas in where] == [2, 2]
    assert len({w["node"] for replicas in where for w in replicas}) == 2
    assert sum(replicas[0]["vectors"] for replicas in where) == 573


def test_dense_top_k_is_the_single_index_top_k(sharded, single):
    for query in QUERIES:
        for filters in FILTERS:
            a = search(single, query, k=10, mode="dense", filters=filters)
            b = search(sharded, query, k=10, mode="dense", filters=filters)
            assert passages(a) == passages(b), (query, filters)
            assert all(abs(x.score - y.score) < 1e-5 for x, y in zip(a, b))
        vector = single.embedder.encode([query])[0]
        raw_a, raw_b = single.dense_search(vector, 50), sharded.dense_search(vector, 50)
        ca, cb = single.get_chunks([c for c, _ in raw_a]), sharded.get_chunks([c for c, _ in raw_b])
        assert [(ca[c].doc_id, ca[c].ordinal) for c, _ in raw_a] == [(cb[c].doc_id, cb[c].ordinal) for c, _ in raw_b]
        assert all(abs(x - y) < 1e-5 for (_, x), (_, y) in zip(raw_a, raw_b))


def test_corpus_reads_match(sharded, single):
    assert sharded.counts() == single.counts()
    assert sharded.chunk_count() == single.chunk_count() == sharded.chunk_id_bound() == single.chunk_id_bound()
    assert sharded.tag_values() == single.tag_values()
    assert sharded.year_counts() == single.year_counts()
    assert sharded.source_counts() == single.source_counts()
    assert sharded.pub_type_counts() == single.pub_type_counts()
    assert sharded.distinct_sources() == single.distinct_sources()
    assert sharded.distinct_pub_types() == single.distinct_pub_types()
    for filters in FILTERS:
        assert sharded.count_documents(filters) == single.count_documents(filters)
    words = ["exosomes", "vesicles", "PD-L1", "plasma", "zorbatinib"]
    assert sharded.term_chunk_counts(words) == single.term_chunk_counts(words)
    assert sharded.long_forms(["pd-l1", "sec", "nta", "ev"]) == single.long_forms(["pd-l1", "sec", "nta", "ev"])
    total, rows = sharded.find_documents("", limit=500)
    assert total == 207 and {r["id"] for r in rows} == {r["id"] for r in single.find_documents("", limit=500)[1]}
    assert sharded.find_documents("exosomes", limit=5)[0] == single.find_documents("exosomes", limit=5)[0]
    assert [d for d, _ in sharded.document_origins()] == [d for d, _ in single.document_origins()]  # by id
    ids = [r["id"] for r in corpus_records()[::20]]
    assert {d: replace(doc, origin="") for d, doc in sharded.get_documents(ids).items()} == \
        {d: replace(doc, origin="") for d, doc in single.get_documents(ids).items()}  # origin: the JSONL file read
    assert sharded.document_tags(ids) == single.document_tags(ids)
    for doc_id in ids[:3]:
        assert replace(sharded.get_document(doc_id), origin="") == replace(single.get_document(doc_id), origin="")
        assert [c.text for c in sharded.document_chunks(doc_id)] == [c.text for c in single.document_chunks(doc_id)]


def test_hybrid_search_is_the_single_index_search(sharded, single):
    """With global bm25 statistics (the default) hybrid and lexical search give the single index's hits and scores;
    with each shard's own statistics (query-then-fetch) the agreement is measured and printed."""
    identical = searches = 0
    for n, query in enumerate(QUERIES):
        for mode, filters in (("hybrid", None), ("lexical", None), ("hybrid", FILTERS[1]), ("hybrid", FILTERS[2]))[
                :4 if n < 6 else 2]:
            searches += 1
            a = on_single(single, search, query, k=10, mode=mode, filters=filters)
            b = search(sharded, query, k=10, mode=mode, filters=filters)
            assert same_ranking(a, b), (query, mode, filters)
            identical += passages(a) == passages(b)
    print(f"\nhybrid and lexical top 10, global bm25: identical order for {identical}/{searches} searches "
          "(the others differ only in the order of tied scores)")
    same_order = same_docs = 0
    sharded.global_bm25 = False
    try:
        for query in QUERIES:
            a, b = on_single(single, search, query, k=10, mode="hybrid", filters=None), search(sharded, query, k=10)
            same_order += passages(a) == passages(b)
            same_docs += {h.chunk.doc_id for h in a} == {h.chunk.doc_id for h in b}
    finally:
        sharded.global_bm25 = True
    print(f"\nhybrid top 10 with per-shard bm25 statistics: identical for {same_order}/{len(QUERIES)} queries, "
          f"the same papers for {same_docs}/{len(QUERIES)}")


def answer_key(answer):
    return answer.abstained, [(c.document.id, c.quote, c.stance) for c in answer.citations], answer.consensus


def test_ask_gives_the_same_answer(sharded, single):
    for question in QUESTIONS:
        assert answer_key(ask(sharded, question)) == answer_key(on_single(single, ask, question)), question


def test_table_and_cite_run_unchanged(sharded, single):
    from exorag.ask.cite import cite_paragraph
    from exorag.output.table import evidence_table

    question = QUESTIONS[0]
    rows = [r.values() for r in evidence_table(single, question)]
    assert rows and [r.values() for r in evidence_table(sharded, question)] == rows
    draft = "Exosomes carry PD-L1 and suppress T cells. CD63 and CD81 are common exosome markers."
    key = lambda sentences: [(s.sentence, s.verdict, [(c.document.id, c.quote) for c in s.citations])  # noqa: E731
                             for s in sentences]
    assert key(cite_paragraph(sharded, draft)) == key(cite_paragraph(single, draft))


def test_per_shard_bm25_changes_answers(sharded, single):
    """Measured, not required: how often `ask` differs when each shard keeps its own bm25 statistics."""
    sharded.global_bm25 = False
    try:
        same = sum(answer_key(ask(sharded, q)) == answer_key(on_single(single, ask, q)) for q in QUESTIONS)
    finally:
        sharded.global_bm25 = True
    print(f"\nask with per-shard bm25 statistics: the same answer for {same}/{len(QUESTIONS)} questions")


def test_writes_are_refused(sharded, folders, sample_jsonl, capsys):
    from exorag.build.ingest import ingest_paths
    from exorag.build.sync import remove_documents
    from exorag.cli import main

    with pytest.raises(ReadOnlyIndex, match="exorag cluster build"):
        ingest_paths(sharded, [sample_jsonl], progress=False)
    with pytest.raises(ReadOnlyIndex, match="exorag cluster build"):
        remove_documents(sharded, ["pmid:38387275"])
    assert main(["ingest", str(sample_jsonl), "--index", str(folders[1])]) == 1
    assert "exorag cluster build" in capsys.readouterr().err
    assert main(["search", "exosomes", "--index", str(folders[1])]) == 1
    assert "--cluster ADDR" in capsys.readouterr().err
    assert not (folders[1] / "store.sqlite").exists()


def test_cli_search_on_the_cluster(sharded, single, folders, ray_cluster, capsys):
    import json

    from exorag.cli import main

    query = "exosomal PD-L1 immunotherapy"
    assert main(["search", query, "--mode", "dense", "--json", "-k", "5", "--index", str(folders[1]),
                 "--cluster", ray_cluster.address]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = search(single, query, k=5, mode="dense")
    assert [(r["doc_id"], r["text"]) for r in out["results"]] == passages(expected)


def test_a_killed_actor_is_replaced_and_a_lost_shard_is_named(sharded, single, folders, ray_cluster, tmp_path):
    import ray

    from exorag.cluster.serve import open_sharded

    before = sharded.replaced
    for replica in sharded._actors[0]:
        ray.kill(replica, no_restart=True)
    query = QUERIES[0]
    for _ in range(2):  # both replicas of shard 0 are met, each replaced once
        assert passages(search(sharded, query, k=10, mode="dense")) == \
            passages(search(single, query, k=10, mode="dense"))
    assert sharded.replaced == before + 2

    copy = shutil.copytree(folders[1], tmp_path / "copy")
    lost = open_sharded(copy, ray_cluster.address, replicas=1)
    try:
        (copy / "shard-001" / "store.sqlite").rename(copy / "shard-001" / "store.moved")
        ray.kill(lost._actors[1][0], no_restart=True)
        with pytest.raises(ShardUnavailable, match="shard 1"):
            lost.chunk_count()
    finally:
        lost.close()


def test_chat_handlers_on_the_cluster(sharded, single, tmp_path):
    from exorag.web import handlers as h

    assert h.panel_choices(sharded) == h.panel_choices(single)
    assert h.corpus_overview(sharded) == h.corpus_overview(single)
    assert h.filter_choices(sharded) == h.filter_choices(single)
    assert h.find_documents(sharded, "exosomes")[0] == h.find_documents(single, "exosomes")[0]
    with pytest.raises(ReadOnlyIndex, match="exorag cluster build"):
        list(h.ingest_uploads(sharded, [tmp_path / "x.pdf"], h.AppSettings(uploads=tmp_path / "uploads")))
    with pytest.raises(ReadOnlyIndex):
        h.remove_selected(sharded, ["pmid:38387275"], h.AppSettings(uploads=tmp_path / "uploads"))
