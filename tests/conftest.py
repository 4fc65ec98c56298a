"""Shared fixtures: one small real index built from the committed fixture corpus, and paths to ../shared/data.

The session index (`sample_jsonl`, `built_index`, `index`) is built once, always from the same committed files, so it
is the same on a fresh clone, on CI and on a machine with ../shared/data: the 207 real records of
tests/fixtures/corpus/ev_small.jsonl (EV papers first, non-EV neighbours last, two full texts with sections; origin
and licence of each in tests/fixtures/corpus/SOURCES.md) and one real CC BY PDF, SAMPLE_PDF, from
tests/fixtures/pdfs/. It is built with the real MiniLM model, real SQLite and a real FAISS file.

`SHARED` and `need()` are only for evaluations and benchmarks on the big sets (SciFact BEIR, BioASQ, the tag-precision
labels over exo_corpus, the six open-access PDFs): a test that needs them is skipped, with the path, where
../shared/data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_CORPUS = FIXTURES / "corpus" / "ev_small.jsonl"
FIXTURE_PDFS = FIXTURES / "pdfs"
SAMPLE_PDF = FIXTURE_PDFS / "datta2010_dvt_prophylaxis_trauma_bmc_10.1186_1752-2897-4-1.pdf"
SECOND_PDF = FIXTURE_PDFS / "agyemanduah2014_qi_malawi_bmchsr_10.1186_1472-6963-14-1.pdf"

SHARED = REPO.parent / "shared" / "data"
CORPUS = SHARED / "exo_corpus" / "corpus.jsonl"
PDFS = SHARED / "pdfs_open_access"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (a fresh clone has no ../shared/data)")
    return path


def corpus_records(n_head: int | None = None, n_tail: int = 0) -> list[dict]:
    """Records of the fixture corpus: all of them by default, else the first `n_head` (EV papers) and the last
    `n_tail` (non-EV neighbours), in file order."""
    lines = FIXTURE_CORPUS.read_text(encoding="utf-8").splitlines()
    if n_head is not None and n_head + n_tail < len(lines):
        lines = lines[:n_head] + (lines[-n_tail:] if n_tail else [])
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="session")
def sample_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus_records()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, sample_jsonl: Path) -> Path:
    """A real index folder of the whole fixture corpus and SAMPLE_PDF; tests that only read it may share it."""
    from exorag.index.index import open_index
    from exorag.build.ingest import ingest_paths

    folder = tmp_path_factory.mktemp("index")
    index = open_index(folder)
    report = ingest_paths(index, [sample_jsonl, SAMPLE_PDF], progress=False)
    assert not report.failed, report.failed
    assert report.added == len(corpus_records()) + 1, report
    index.close()
    return folder


@pytest.fixture()
def index(built_index: Path):
    from exorag.index.index import open_index

    idx = open_index(built_index)
    yield idx
    idx.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py), shared by the cluster tests and stopped after;
    skipped with the reason where ray (the [cluster] extra) is not installed. Drivers in this process connect with
    `ray.init(address=ray_cluster.address)`."""
    import os

    from tests.ray_cluster import RAY_ENV, RAY_SKIP, LocalCluster

    if RAY_SKIP:
        pytest.skip(RAY_SKIP)
    os.environ.update(RAY_ENV)
    with LocalCluster(nodes=2) as cluster:
        yield cluster
