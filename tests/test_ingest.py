"""Ingest with the real model, SQLite and FAISS: idempotence, replacement, bad input, interruption."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exorag.index import store
from exorag.errors import IndexMismatch
from exorag.index.index import open_index
from exorag.build.ingest import ingest_paths
from exorag.index.vectors import VECTORS_FILE

from .conftest import SAMPLE_PDF, corpus_records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def consistent(index) -> None:  # type: ignore[no-untyped-def]
    """Every chunk has exactly one vector and every vector a chunk."""
    ids = sorted(index.vectors.ids().tolist())
    assert ids == index.chunk_ids()


def test_reingest_adds_nothing_and_changed_document_replaces_chunks(tmp_path: Path) -> None:
    records = corpus_records(n_head=8, n_tail=0)
    data = write_jsonl(tmp_path / "few.jsonl", records)
    index = open_index(tmp_path / "idx")
    first = ingest_paths(index, [data], progress=False)
    assert (first.added, first.updated, first.unchanged) == (8, 0, 0)
    counts = index.counts()
    assert first.vectors_added == counts["chunks"] == index.vectors.size
    consistent(index)

    again = ingest_paths(index, [data], progress=False)
    assert (again.added, again.updated, again.unchanged, again.vectors_added) == (0, 0, 8, 0)
    assert index.counts() == counts

    target = records[3]["id"]
    old_chunks = {c.id for c in index.document_chunks(target)}
    records[3]["abstract"] = "Exosomal PD-L1 suppresses T cells in the draining lymph node. " * 3
    write_jsonl(data, records)
    changed = ingest_paths(index, [data], progress=False)
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 7)
    new_chunks = index.document_chunks(target)
    assert len(new_chunks) == 1 and not old_chunks & {c.id for c in new_chunks}
    assert changed.vectors_removed == len(old_chunks)
    consistent(index)

    # The saved FAISS file on disk holds the same ids as the store.
    reopened = open_index(tmp_path / "idx")
    consistent(reopened)


def test_bad_inputs_are_named_and_the_rest_is_ingested(tmp_path: Path) -> None:
    good = corpus_records(n_head=2, n_tail=0)
    lines = [json.dumps(good[0]), "{not json", json.dumps({"id": "x:1", "title": "No text here"}), "[1, 2]",
             json.dumps(good[1])]
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "x:2", "abstract": "caf\xe9"}\n')
    latin = tmp_path / "notes.txt"
    latin.write_bytes("Exosomes were isolated from serum by size-exclusion chromatography. caf\xe9".encode("latin-1"))
    unknown = tmp_path / "table.xlsx"
    unknown.write_bytes(b"PK\x03\x04")
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(SAMPLE_PDF.read_bytes()[:1500])
    note = tmp_path / "note.md"
    note.write_text("# Dex vaccines\n\nDendritic-cell-derived exosomes were tested in a phase II trial.\n")

    index = open_index(tmp_path / "idx")
    report = ingest_paths(index, [tmp_path], progress=False)
    messages = [str(p) for p in report.failed]
    assert report.added == 3  # two good JSONL records and the Markdown note
    assert f"{data}:2: not valid JSON" in "\n".join(messages)
    assert any(m.startswith(f"{data}:3: record has no text") for m in messages)
    assert any(m.startswith(f"{data}:4: expected a JSON object") for m in messages)
    assert any(m.startswith(f"{data}:6: not UTF-8") for m in messages)
    assert any(m.startswith(f"{latin}: not UTF-8") for m in messages)
    assert any(m.startswith(str(broken_pdf)) for m in messages)
    assert [str(p) for p in report.skipped] == [f"{unknown}: unsupported file type '.xlsx'; exorag reads "
                                                ".bib, .jsonl, .jsonl.gz, .markdown, .md, .ndjson, .pdf, .ris, .txt"]
    consistent(index)
    doc = index.get_document("file:note")
    assert doc.title == "Dex vaccines" and doc.sections[0].heading == "Dex vaccines"
    assert doc.text[doc.sections[0].start:doc.sections[0].end].startswith("Dendritic-cell-derived exosomes")


def test_hostile_jsonl_values_skip_their_line_and_the_file_goes_on(tmp_path: Path) -> None:
    """A year of 10**30 (OverflowError in SQLite), a lone surrogate in authors or id (UnicodeEncodeError), a number
    of 5,000 digits and a 2 MB abstract used to stop the file (or to be stored); each now names its line."""
    lines = [json.dumps({"id": "ok:1", "abstract": "Tumour exosomes carry PD-L1.", "year": 2021}),
             json.dumps({"id": "bad:year", "abstract": "Exosomes.", "year": 10**30}),
             '{"id": "bad:authors", "abstract": "Exosomes.", "authors": ["Doe \\ud800"]}',
             '{"id": "bad:\\udc80", "abstract": "Exosomes."}',
             '{"id": "bad:digits", "abstract": "Exosomes.", "year": ' + "9" * 5000 + "}",
             json.dumps({"id": "bad:huge", "abstract": "exosome " * 300_000}),
             json.dumps({"id": "ok:2", "abstract": "Milk vesicles survive digestion.", "year": True})]
    data = tmp_path / "hostile.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = open_index(tmp_path / "idx")
    try:
        report = ingest_paths(index, [data], progress=False)
        assert report.added == 2
        messages = [str(p) for p in report.failed]
        assert messages[3].startswith(f"{data}:5: not valid JSON (Exceeds the limit (4300 digits)")
        assert messages[:3] + messages[4:] == [
            f"{data}:2: year 10000000... (31 digits) is not a year; record skipped",
            f"{data}:3: field 'authors' holds a lone surrogate (U+D800), not valid Unicode text; record skipped",
            f"{data}:4: field 'id' holds a lone surrogate (U+DC80), not valid Unicode text; record skipped",
            f"{data}:6: field 'abstract' is 2,400,000 characters long, over the limit of 100,000; record skipped",
        ]
        assert index.get_document("ok:2").year is None  # a boolean is no year
        consistent(index)
    finally:
        index.close()


def test_cli_ingest_reports_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exorag.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    assert main(["ingest", str(bad), "--index", str(tmp_path / "idx"), "-q"]) == 1
    out = capsys.readouterr()
    assert f"failed: {bad}:1: not valid JSON" in out.err
    assert "Traceback" not in out.err + out.out
    assert "ingested 0 documents from 1 files" in out.out
    assert main(["ingest", str(tmp_path / "missing.pdf"), "--index", str(tmp_path / "idx"), "-q"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_index_built_with_another_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exorag.cli import main

    data = write_jsonl(tmp_path / "one.jsonl", corpus_records(n_head=1, n_tail=0))
    index = open_index(tmp_path / "idx")
    ingest_paths(index, [data], progress=False)
    with pytest.raises(IndexMismatch, match="built with model 'sentence-transformers/all-MiniLM-L6-v2'"):
        open_index(tmp_path / "idx", model="BAAI/bge-small-en-v1.5")
    assert main(["search", "exosome", "--index", str(tmp_path / "idx"), "--model", "BAAI/bge-small-en-v1.5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the index in") and "Traceback" not in err


def test_faiss_search_equals_numpy_brute_force(index) -> None:  # type: ignore[no-untyped-def]
    """Oracle test: FAISS top-k over the saved file equals exact numpy inner products."""
    import faiss

    raw = faiss.read_index(str(index.folder / VECTORS_FILE))
    ids = faiss.vector_to_array(raw.id_map)
    matrix = raw.index.reconstruct_n(0, raw.ntotal)
    query = index.embedder.encode(["exosomal microRNA biomarkers in plasma"])[0]
    expected = ids[np.argsort(-(matrix @ query))[:10]]
    got = [cid for cid, _ in index.vectors.search(query, 10)]
    assert got == expected.tolist()
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)


def test_interrupted_ingest_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) in the middle of embedding, then the same command again: same store as one clean run."""
    records = corpus_records(n_head=140, n_tail=0)
    data = write_jsonl(tmp_path / "some.jsonl", records)
    folder = tmp_path / "idx"
    cmd = [sys.executable, "-m", "exorag.cli", "ingest", str(data), "--index", str(folder)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    progress = re.compile(r"(\d+)/(\d+) \[")
    while time.monotonic() < deadline and proc.poll() is None:
        char = proc.stderr.read(1)  # type: ignore[union-attr]
        seen += char
        if char == "[" and "embedding:" in seen[-200:]:
            done = progress.findall(seen[-200:].rsplit("embedding:", 1)[-1])
            # Embedding has begun and more than one step (256 chunks) is left: Python runs the SIGINT handler as
            # soon as the encode in hand returns, so the signal lands before the last step can finish (no race).
            if done and int(done[-1][1]) - int(done[-1][0]) > 256:
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err

    resumed = subprocess.run(cmd + ["-q"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"added 0, updated 0, unchanged {len(records)}" in resumed.stdout
    index = open_index(folder)
    assert index.counts()["documents"] == len(records)
    consistent(index)
