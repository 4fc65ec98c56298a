"""remove, sync, the consistency check, kill -9 recovery and the per-file time limit, with the real model,
SQLite and FAISS."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from exorag.build.enrich import derive
from exorag.index import store
from exorag.build.chunk import chunk_document
from exorag.cli import main
from exorag.index.index import check, open_index
from exorag.build.ingest import ingest_paths
from exorag.build.sources import READERS
from exorag.types import Document, Section

from .conftest import corpus_records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def faiss_ids_equal_chunk_ids(folder: Path) -> None:
    index = open_index(folder)
    try:
        assert sorted(index.vectors.ids().tolist()) == index.chunk_ids()
    finally:
        index.close()


def stats_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["stats", "--json", "--index", str(folder)]) == 0
    return json.loads(capsys.readouterr().out)


NOTES = {
    "dex.md": "# Dex vaccines\n\nDendritic-cell-derived exosomes were tested in a phase II trial of lung cancer.\n",
    "pdl1.txt": "Exosomal PD-L1 from melanoma cells suppresses CD8 T cells in the draining lymph node.\n",
    "sec.md": "# Isolation\n\nSize-exclusion chromatography separates vesicles from plasma lipoproteins.\n",
}


def make_folder(root: Path) -> Path:
    folder = root / "papers"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_remove_drops_chunks_and_vectors_and_names_unknown_ids(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder, idx = make_folder(tmp_path), tmp_path / "idx"
    index = open_index(idx)
    ingest_paths(index, [folder], progress=False)
    index.close()
    assert main(["remove", "file:dex", "no:such", "file:pdl1", "--index", str(idx)]) == 0
    out = capsys.readouterr().out
    assert "already absent: 'no:such' (no document with this id)" in out
    assert "removed 2 documents, 1 already absent" in out
    info = stats_json(idx, capsys)
    assert (info["documents"], info["chunks"], info["vectors"], info["consistent"]) == (1, 1, 1, True)
    faiss_ids_equal_chunk_ids(idx)
    assert main(["remove", "no:such", "file:dex", "--index", str(idx)]) == 0  # the goal (absent) holds: no error
    out = capsys.readouterr().out
    assert "already absent: 'file:dex'" in out and "removed 0 documents, 2 already absent; vectors -0" in out
    assert main(["remove", "bad:\udcff", "--index", str(idx)]) == 0  # an argv byte that is not UTF-8: no such id
    assert "already absent: 'bad:\\udcff'" in capsys.readouterr().out


def test_sync_adds_updates_and_removes_only_under_its_folder(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    records = corpus_records(n_head=3, n_tail=0)
    folder, idx = make_folder(tmp_path), tmp_path / "idx"
    data = write_jsonl(folder / "abstracts.jsonl", records)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.md").write_text("# Kept\n\nTumour-derived exosomes carry MHC class I molecules.\n")
    assert main(["ingest", str(folder), str(elsewhere), "-q", "--index", str(idx)]) == 0
    capsys.readouterr()
    assert main(["sync", str(folder), "-q", "--json", "--index", str(idx)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["added"], first["unchanged"], first["removed"]) == (0, 6, 0)

    (folder / "dex.md").unlink()  # a file gone
    (folder / "pdl1.txt").write_text(NOTES["pdl1.txt"] + "It also binds PD-1 on activated T cells.\n")  # changed
    (folder / "new.md").write_text("# New\n\nExosomes from NK cells kill neuroblastoma cells in vitro.\n")  # added
    write_jsonl(data, records[1:])  # one record dropped from a JSONL file that is still there
    assert main(["sync", str(folder), "-q", "--json", "--index", str(idx)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["added"], got["updated"], got["unchanged"], got["removed"], got["failed"]) == (1, 1, 3, 2, 0)
    assert sorted(got["removed_ids"]) == sorted(["file:dex", records[0]["id"]])
    index = open_index(idx)
    ids = {doc_id for doc_id, _ in index.document_origins()}
    index.close()
    assert ids == {"file:keep", "file:pdl1", "file:sec", "file:new", records[1]["id"], records[2]["id"]}
    info = stats_json(idx, capsys)
    assert info["consistent"] and info["chunks"] == info["vectors"]
    faiss_ids_equal_chunk_ids(idx)

    assert main(["sync", str(tmp_path / "nope"), "-q", "--index", str(idx)]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert stats_json(idx, capsys)["documents"] == 6


def test_check_reports_drift_warns_on_search_and_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, idx = make_folder(tmp_path), tmp_path / "idx"
    index = open_index(idx)
    ingest_paths(index, [folder], progress=False)
    assert check(index)["consistent"]
    text = "Exosomes cross the blood-brain barrier."
    doc = Document(id="x:1", text=text, sections=(Section("Body", 0, len(text)),))
    index.put_document(doc, chunk_document(doc, index.embedder.count_tokens, 200), derive(doc))  # no vector yet
    index.close()
    capsys.readouterr()
    assert main(["search", "exosomes", "--index", str(idx), "--mode", "lexical"]) == 0
    assert "warning: the index in" in capsys.readouterr().err  # 4 chunks, 3 vectors

    index = open_index(idx)
    index.remove_document("file:dex")  # store only: its vector is now stale
    drift = check(index)
    assert (drift["missing"], drift["stale"], drift["consistent"]) == (1, 1, False)
    index.close()
    info = stats_json(idx, capsys)
    assert (info["consistent"], info["missing_vectors"], info["stale_vectors"]) == (False, 1, 1)
    assert main(["check", "--index", str(idx)]) == 1
    assert main(["check", "--repair", "-q", "--index", str(idx)]) == 0
    assert "repaired: vectors +1 -1" in capsys.readouterr().out
    assert main(["check", "--index", str(idx)]) == 0
    faiss_ids_equal_chunk_ids(idx)


# ------------------------------------------------------------------ remove killed before its vectors were saved

CRASHING_REMOVE = """
import os, signal, sys
import exorag.build.sync

def killed(*args, **kwargs):  # the moment after the store commit, before the FAISS file is written
    os.kill(os.getpid(), signal.SIGKILL)

exorag.build.sync.sync_vectors = killed
from exorag.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _remove_killed_after_the_store_commit(folder: Path, doc_id: str) -> None:
    done = subprocess.run([sys.executable, "-c", CRASHING_REMOVE, "remove", doc_id, "--index", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _ranking(folder: Path, query: str, mode: str) -> list[tuple[int, str, float]]:
    from exorag.ask.retrieve import search

    index = open_index(folder)
    try:
        return [(h.chunk.id, h.document.id, round(h.score, 6)) for h in search(index, query, k=5, mode=mode)]
    finally:
        index.close()


@pytest.fixture()
def three_notes(tmp_path: Path) -> Path:
    """An index of the three NOTES (one chunk each) and `file:trials`, 60 one-sentence sections (60 chunks: more
    than the 50 dense hits a search takes, so that its stale vectors could crowd out every live one)."""
    base, folder = tmp_path / "base", make_folder(tmp_path)
    (folder / "trials.md").write_text("".join(
        f"# Trial {i}\n\nDendritic-cell-derived exosomes were given to {i + 10} patients with lung cancer.\n\n"
        for i in range(60)), encoding="utf-8")
    index = open_index(base)
    ingest_paths(index, [folder], progress=False)
    index.close()
    return base


def test_a_remove_killed_before_saving_vectors_never_serves_them_and_its_rerun_finishes_it(
        three_notes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from exorag.ask.retrieve import dense_search

    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    shutil.copytree(three_notes, crashed)
    shutil.copytree(three_notes, clean)
    assert main(["remove", "file:trials", "--index", str(clean)]) == 0
    _remove_killed_after_the_store_commit(crashed, "file:trials")

    index = open_index(crashed)  # the store lost file:trials, the FAISS file still holds its 60 vectors
    try:
        stale = set(index.vectors.ids().tolist()) - set(index.chunk_ids())
        assert len(stale) == 60 and check(index)["stale"] == 60
        query = "dendritic cell exosomes in a lung cancer trial"
        raw = index.vectors.search(index.embedder.encode([query])[0], 50)
        assert {cid for cid, _ in raw} <= stale  # the FAISS file alone would give only removed passages
        assert not stale & {cid for cid, _ in dense_search(index, query, 50)}  # what a search may use
        assert index.vectors.size == 3  # dropped in memory only: the file is a write command's business
    finally:
        index.close()
    for query in ("dendritic cell exosomes in a lung cancer trial", "PD-L1 on melanoma exosomes", "plasma"):
        for mode in ("hybrid", "dense"):
            assert _ranking(crashed, query, mode) == _ranking(clean, query, mode), (query, mode)

    capsys.readouterr()
    assert main(["remove", "file:trials", "--index", str(crashed)]) == 0  # rerun: the goal holds, vectors go
    out = capsys.readouterr().out
    assert "already absent: 'file:trials'" in out and "vectors -60" in out
    faiss_ids_equal_chunk_ids(crashed)
    assert main(["check", "--index", str(crashed)]) == 0


def test_an_interrupted_remove_is_finished_by_the_next_write_command(three_notes: Path, tmp_path: Path) -> None:
    _remove_killed_after_the_store_commit(three_notes, "file:pdl1")
    note = tmp_path / "later" / "milk.md"
    note.parent.mkdir()
    note.write_text("# Milk\n\nMilk-derived vesicles survive digestion in the infant gut.\n", encoding="utf-8")
    index = open_index(three_notes)
    try:
        report = ingest_paths(index, [note.parent], progress=False)
        assert (report.added, report.vectors_added, report.vectors_removed) == (1, 1, 1)
        assert check(index)["consistent"]
    finally:
        index.close()
    faiss_ids_equal_chunk_ids(three_notes)


# ---------------------------------------------------------------------------------------- kill -9 recovery


def _kill_during(cmd: list[str], marker: str, delay: float) -> None:
    """Start `cmd`, wait until `marker` shows on its stderr, sleep `delay`, SIGKILL it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    seen, deadline = "", time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        char = proc.stderr.read(1)  # type: ignore[union-attr]
        if not char:
            break
        seen += char
        if marker in seen:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def forty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """40 real records and the stats of one uninterrupted ingest of them."""
    root = tmp_path_factory.mktemp("forty")
    data = write_jsonl(root / "forty.jsonl", corpus_records(n_head=32, n_tail=8))
    index = open_index(root / "clean")
    ingest_paths(index, [data], progress=False)
    counts = index.counts()
    clean = {"documents": counts["documents"], "chunks": counts["chunks"], "vectors": index.vectors.size}
    index.close()
    return data, clean


@pytest.mark.parametrize("phase", ["ingesting", "embedding"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(phase: str, forty: tuple[Path, dict], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data, clean = forty
    folder = tmp_path / "idx"
    cmd = [sys.executable, "-m", "exorag.cli", "ingest", str(data), "--index", str(folder)]
    _kill_during(cmd, f"{phase}:", random.uniform(0.0, 0.3))
    rerun = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    info = stats_json(folder, capsys)
    assert {k: info[k] for k in ("documents", "chunks", "vectors")} == clean
    assert info["consistent"]
    faiss_ids_equal_chunk_ids(folder)


# ---------------------------------------------------------------------------------------- per-file time limit


def _slow_read(path: Path) -> Iterator[Document]:
    """A reader stuck on its input (for a test-only extension), swallowing the first interruption like a
    broad `except Exception` in a real parser would."""
    text = "Exosomes were isolated by ultracentrifugation."
    yield Document(id=f"slow:{path.stem}", text=text, sections=(Section("Body", 0, len(text)),), origin=str(path))
    try:
        time.sleep(30)
    except Exception:
        pass
    time.sleep(30)


def test_a_reader_past_the_file_timeout_is_abandoned_and_the_batch_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = types.ModuleType("exorag.build.sources._slow_test")
    module.read = _slow_read  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "exorag.build.sources._slow_test", module)
    monkeypatch.setitem(READERS, ".slow", "_slow_test")
    folder = make_folder(tmp_path)
    (folder / "stuck.slow").write_text("anything")
    started = time.monotonic()
    assert main(["ingest", str(folder), "-q", "--file-timeout", "0.5", "--index", str(tmp_path / "idx")]) == 0
    assert time.monotonic() - started < 20
    out = capsys.readouterr()
    assert f"failed: {folder / 'stuck.slow'}: took longer than 0.5 s" in out.err
    assert "added 4" in out.out  # the three notes, and the record the slow reader gave before it got stuck
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_questions_are_answered_while_an_upload_embeds(tmp_path: Path) -> None:
    """Issue 16: sync_vectors holds the index's lock only to compare ids and read each batch, so searches run while
    it embeds (before, every question waited for the whole embedding), and the FAISS index is never searched while it
    changes (Vectors' own lock). Every hit is a chunk of the store, during the sync and after it; the result equals a
    clean index."""
    import threading

    from exorag.ask.retrieve import search

    records = corpus_records()
    index = open_index(tmp_path / "idx")
    ingest_paths(index, [write_jsonl(tmp_path / "first.jsonl", records[:40])], progress=False)
    ingest_paths(index, [write_jsonl(tmp_path / "more.jsonl", records[40:200])], progress=False, embed=False)
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            from exorag.index.index import sync_vectors

            sync_vectors(index, progress=False, batch_size=8)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=upload)
    worker.start()
    during = 0
    while worker.is_alive():
        hits = search(index, "exosomal microRNA in plasma as a cancer biomarker", k=5)
        assert hits and all(index.get_chunks([h.chunk.id]) for h in hits)
        during += worker.is_alive()
    worker.join()
    assert not errors, errors
    assert during >= 2, during  # searches finished while the embedding went on
    result = check(index)
    assert result["consistent"] and result["vectors"] == result["chunks"]
    index.close()
