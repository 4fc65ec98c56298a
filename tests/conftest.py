"""Shared fixtures: paths to ../shared/data (skipped with a reason where absent) and one small real index.

The session index is built once with the real MiniLM model, real SQLite and a real FAISS file from real records
of exo_corpus (the EV-heavy head of the file plus SciFact neighbours) and one real PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPUS = SHARED / "exo_corpus" / "corpus.jsonl"
PDFS = SHARED / "pdfs_open_access"
SAMPLE_PDF = PDFS / "datta2010_dvt_prophylaxis_trauma_bmc_10.1186_1752-2897-4-1.pdf"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (a fresh clone has no ../shared/data)")
    return path


def corpus_records(n_head: int = 140, n_tail: int = 40) -> list[dict]:
    """The first `n_head` records (EV papers) and the last `n_tail` (non-EV neighbours) of exo_corpus."""
    lines = need(CORPUS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n_head] + (lines[-n_tail:] if n_tail else [])]


@pytest.fixture(scope="session")
def sample_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus_records()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, sample_jsonl: Path) -> Path:
    """A real index folder; tests that only read it may share it."""
    from exorag.index.index import open_index
    from exorag.build.ingest import ingest_paths

    folder = tmp_path_factory.mktemp("index")
    index = open_index(folder)
    inputs = [sample_jsonl] + ([SAMPLE_PDF] if SAMPLE_PDF.exists() else [])
    report = ingest_paths(index, inputs, progress=False)
    assert not report.failed, report.failed
    index.close()
    return folder


@pytest.fixture()
def index(built_index: Path):
    from exorag.index.index import open_index

    idx = open_index(built_index)
    yield idx
    idx.close()
