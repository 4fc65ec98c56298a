"""A damaged, missing or busy index: each is named, repaired where it can be rebuilt, and never a traceback.

Real damage on a copy of the session index: a broken FTS5 table, a truncated FAISS file, index.json that is not an
object, a deleted store beside its vectors, a full disk (SQLite's max_page_count: the real "database or disk is
full"), a FAISS write that fails, and a second writer while one holds the index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exorag.ask.retrieve import search
from exorag.cli import main
from exorag.errors import DamagedIndex, ExoragError, IndexBusy
from exorag.index import vectors as vectors_module
from exorag.index.index import check, open_index

from .conftest import REPO

QUERY = "exosome markers"


def copy_of(built_index: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(built_index, folder)
    return folder


def test_a_broken_full_text_table_is_found_and_rebuilt(built_index: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(built_index, tmp_path)
    index = open_index(folder)
    before = [h.chunk.id for h in search(index, QUERY, k=5, mode="lexical")]
    index._conn.execute("UPDATE chunks_fts_data SET block = x'00ff00ff' WHERE id > 1")  # garble its pages
    index.close()
    assert main(["check", "--index", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "NOT consistent" in out and "damaged store: full-text table" in out
    # Garbled FTS5 pages answer every MATCH with nothing, silently: search must say the table is damaged instead.
    assert main(["search", QUERY, "--mode", "lexical", "--index", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "full-text table" in err and "is damaged" in err and "check --repair" in err and "Traceback" not in err
    assert main(["check", "--repair", "--index", str(folder)]) == 0
    assert "full-text table rebuilt" in capsys.readouterr().out
    index = open_index(folder)
    assert [h.chunk.id for h in search(index, QUERY, k=5, mode="lexical")] == before
    assert check(index)["consistent"]


def test_a_truncated_faiss_file_is_re_embedded_by_repair(built_index: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(built_index, tmp_path)
    good = open_index(folder)
    before = [h.chunk.id for h in search(good, QUERY, k=5, mode="dense")]
    chunks = good.chunk_count()
    good.close()
    path = folder / vectors_module.VECTORS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    assert main(["search", QUERY, "--index", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "unreadable FAISS file" in err and "check --repair" in err and "Traceback" not in err
    assert main(["check", "--repair", "--index", str(folder), "-q"]) == 0
    assert f"vectors +{chunks}" in capsys.readouterr().out
    assert (folder / "vectors.faiss.damaged").exists()  # set aside, not deleted
    index = open_index(folder)
    assert index.vectors.size == chunks and check(index)["consistent"]
    assert [h.chunk.id for h in search(index, QUERY, k=5, mode="dense")] == before


def test_index_json_that_is_not_an_object_is_a_clear_error(built_index: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(built_index, tmp_path)
    (folder / "index.json").write_text("[1, 2, 3]\n")
    assert main(["stats", "--index", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "index.json: index metadata is not a JSON object (got list)" in err and "Traceback" not in err


def test_a_deleted_store_is_not_recreated_empty(built_index: Path, tmp_path: Path) -> None:
    folder = copy_of(built_index, tmp_path)
    (folder / "store.sqlite").unlink()
    for name in ("store.sqlite-wal", "store.sqlite-shm"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(DamagedIndex, match="store.sqlite is missing but .* holds vectors"):
        open_index(folder)
    assert main(["check", "--repair", "--index", str(folder)]) == 1  # never "repairs" by deleting every vector
    assert not (folder / "store.sqlite").exists()
    assert (folder / "vectors.faiss").stat().st_size > 0


def test_a_full_disk_is_said_plainly_and_nothing_stored_is_lost(built_index: Path, tmp_path: Path) -> None:
    from exorag.build.ingest import ingest_paths

    folder = copy_of(built_index, tmp_path)
    index = open_index(folder)
    documents = index.counts()["documents"]
    pages = index._conn.execute("PRAGMA page_count").fetchone()[0]
    index._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own "database or disk is full"
    big = tmp_path / "big.txt"
    big.write_text("Exosomes carry PD-L1 to distant sites. " * 20000, encoding="utf-8")
    with pytest.raises(ExoragError, match="the disk is full") as caught:
        ingest_paths(index, [big], progress=False, embed=False)
    assert "cannot rollback" not in str(caught.value)
    assert index.counts()["documents"] == documents  # the failed document was rolled back, the rest intact
    index.close()


def test_a_failed_faiss_write_keeps_the_old_file_and_leaves_no_temporary(built_index: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_of(built_index, tmp_path)
    index = open_index(folder)
    old = (folder / "vectors.faiss").read_bytes()
    vectors = index.vectors

    def full(*args: object) -> None:
        Path(str(args[1])).write_bytes(b"")  # as a full disk leaves it: an empty temporary file
        raise RuntimeError("Error in faiss::FileIOWriter: No space left on device")

    monkeypatch.setattr(vectors_module.faiss, "write_index", full)
    with pytest.raises(ExoragError, match="cannot write .*vectors.faiss .*No space left.*previous vectors are kept"):
        vectors.save()
    assert (folder / "vectors.faiss").read_bytes() == old
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]


def test_a_second_writer_is_refused_while_one_writes(built_index: Path, tmp_path: Path) -> None:
    folder = copy_of(built_index, tmp_path)
    note = tmp_path / "note.txt"
    note.write_text("Exosomes from plasma carry CD63 and TSG101 as markers.", encoding="utf-8")
    index = open_index(folder)
    with index.writing():
        with index.writing():  # re-entrant in the same process
            pass
        done = subprocess.run([sys.executable, "-m", "exorag.cli", "ingest", str(note), "--index", str(folder)],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 1, done.stderr[-2000:]
        assert "another exorag process" in done.stderr and "is writing to the index" in done.stderr
        assert "Traceback" not in done.stderr
    with pytest.raises(IndexBusy):  # the lock is taken per folder: a second Index of the same folder waits its turn
        with index.writing():
            open_index(folder).writing().__enter__()
    done = subprocess.run([sys.executable, "-m", "exorag.cli", "ingest", str(note), "--index", str(folder), "-q"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0 and "added 1" in done.stdout, done.stderr[-2000:]
