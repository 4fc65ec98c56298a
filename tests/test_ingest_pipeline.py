"""The parse/embed overlap and the reader child process, with the real model, SQLite, FAISS and a test-only
reader (tests/hang_reader.py) that misbehaves in ways only a process boundary contains: one long C call that
SIGALRM cannot interrupt, a segfault."""

from __future__ import annotations

import json
import os
import shutil
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exorag.build import ingest
from exorag.index import store
from exorag.index.index import open_index
from exorag.build.ingest import ingest_paths
from exorag.build.sources import READERS

from .conftest import REPO, corpus_records

TOOK_LONGER = "took longer than 0.3 s; abandoned (raise --file-timeout to allow more)"


@pytest.fixture()
def hang_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(READERS, ".hang", "tests.hang_reader")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def c_loop_size(seconds: float) -> int:
    """N for which sum(range(N)) (one C call) takes about `seconds` here and now."""
    n, started = 10**7, time.perf_counter()
    sum(range(n))
    return int(n * seconds / max(time.perf_counter() - started, 1e-3))


def test_sigalrm_waits_out_a_long_c_call_the_reader_process_kills_it(
        tmp_path: Path, hang_kind: None, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    stuck = write(folder / "a_stuck.hang", f"cloop {c_loop_size(4.0)}")  # calibrated for 4 s: still > 1 s when load drops
    index = open_index(tmp_path / "idx")

    # In-process (SIGALRM): the alarm is due after 0.3 s but its handler runs only once the C call returns.
    started = time.monotonic()
    report = ingest_paths(index, [folder], progress=False, embed=False, file_timeout=0.3)
    waited = time.monotonic() - started
    assert [str(p) for p in report.failed] == [f"{stuck}: {TOOK_LONGER}"]
    assert waited > 1.0, waited  # far past the limit: the C call ran to its end

    # In the reader child: killed at the limit, even for a C call that would run for hours; the next file is read
    # by a fresh child.
    monkeypatch.setattr(ingest, "ISOLATED", ingest.ISOLATED | {".hang"})
    write(stuck, "cloop 10000000000000")
    write(folder / "b_quick.hang", "cloop 10")
    started = time.monotonic()
    report = ingest_paths(index, [folder], progress=False, embed=False, file_timeout=0.3)
    assert time.monotonic() - started < 30
    assert [str(p) for p in report.failed] == [f"{stuck}: {TOOK_LONGER}"]
    assert report.seen == {"hang:a_stuck:before", "hang:b_quick:before", "hang:b_quick:after"}
    assert report.ingested == 3
    index.close()


def test_a_crashing_reader_fails_only_its_file(tmp_path: Path, hang_kind: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "ISOLATED", ingest.ISOLATED | {".hang"})
    folder = tmp_path / "in"
    folder.mkdir()
    crash = write(folder / "a_crash.hang", "segv")
    write(folder / "b_fine.hang", "cloop 10")
    write(folder / "c_note.md", "# Note\n\nExosomal miR-21 rises in plasma of glioma patients.\n")
    index = open_index(tmp_path / "idx")
    report = ingest_paths(index, [folder], progress=False, embed=False, file_timeout=0)  # no limit: still isolated
    assert [str(p) for p in report.failed] == [f"{crash}: the reader process died (killed by signal 11)"]
    assert report.added == 4  # a_crash's first document arrived before the crash; b_fine's two; the note
    index.close()


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_ingest_leaves_no_reader_child(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "stuck.hang", "cloop 10000000000000")
    script = ("import sys; from pathlib import Path; from exorag.build import ingest; from exorag.index.index import open_index; "
              "from exorag.build.sources import READERS; READERS['.hang'] = 'tests.hang_reader'; ingest.ISOLATED.add('.hang'); "
              f"ingest.ingest_paths(open_index(Path({str(tmp_path / 'idx')!r})), [Path({str(folder)!r})], "
              "progress=False, embed=False, file_timeout=0)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    deadline, children = time.monotonic() + 60, set()
    while time.monotonic() < deadline and not children:
        time.sleep(0.2)
        children = _children(proc.pid)  # the spawned reader (after spawn's own helpers have exited)
    assert children, "no reader child appeared"
    time.sleep(0.5)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    alive = [c for c in children if Path(f"/proc/{c}").exists()
             and "zombie" not in Path(f"/proc/{c}/status").read_text().lower()]
    assert not alive, f"reader child {alive} outlived its parent"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("moment", ["embedding", "saving"])
def test_kill_9_after_pdf_reading_leaves_no_child_alive(tmp_path: Path, moment: str) -> None:
    """kill -9 of `exorag ingest` once the PDFs are read (the reader child and multiprocessing's resource tracker
    started), while it embeds or as it saves: every child it had is dead (a zombie awaiting init counts as dead)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for pdf in (Path(__file__).parent / "fixtures" / "pdfs").glob("*.pdf"):
        shutil.copy(pdf, folder / pdf.name)
    lines = (Path(__file__).parent / "fixtures" / "corpus" / "ev_small.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "a.jsonl").write_text("\n".join(lines[:120]) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "exorag.cli", "ingest", str(folder), "--index", str(tmp_path / "idx")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seen, children, deadline = "", set(), time.monotonic() + 300
    done = re.compile(r"(\d+)/(\d+) \[")
    while time.monotonic() < deadline and proc.poll() is None:
        char = proc.stderr.read(1)  # type: ignore[union-attr]
        seen += char
        children |= _children(proc.pid)
        if char == "[" and "embedding:" in seen[-200:]:
            counts = done.findall(seen[-200:].rsplit("embedding:", 1)[-1])
            if counts and (moment == "embedding" or int(counts[-1][0]) >= int(counts[-1][1]) - 256):
                break
    children |= _children(proc.pid)
    assert children, "no child process appeared (the PDFs are read in a child)"
    proc.kill()
    proc.wait(timeout=30)
    end = time.monotonic() + 10

    def alive() -> list[int]:
        out = []
        for c in children:
            try:
                if "zombie" not in Path(f"/proc/{c}/status").read_text().lower():
                    out.append(c)
            except OSError:
                pass
        return out

    while time.monotonic() < end and alive():
        time.sleep(0.1)
    assert not alive(), f"children {alive()} outlived their parent"


def test_embedding_overlaps_parsing_and_the_result_equals_a_sequential_run(tmp_path: Path, hang_kind: None) -> None:
    """A JSONL file, then a reader that sleeps (GIL released) while the thread embeds what is stored, then a second
    JSONL replacing one document embedded meanwhile: every chunk ends with exactly one vector, stale ones dropped."""
    records = corpus_records(n_head=30, n_tail=0)
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write(folder / "b_pause.hang", "sleep 6")
    changed = dict(records[0], abstract="Exosomal PD-L1 suppresses CD8 T cells in the draining lymph node. " * 3)
    write(folder / "c.jsonl", json.dumps(changed) + "\n")

    index = open_index(tmp_path / "overlap")
    report = ingest_paths(index, [folder], progress=False, overlap=True)
    assert (report.added, report.updated, report.failed) == (32, 1, [])
    assert 0 < report.vectors_while_parsing <= report.vectors_added
    ids = index.vectors.ids().tolist()
    assert len(ids) == len(set(ids)) and sorted(ids) == index.chunk_ids()
    assert report.vectors_removed == report.vectors_added - len(ids)  # the replaced document's first chunks
    overlapped = index.counts()
    index.close()

    sequential = open_index(tmp_path / "sequential")
    plain = ingest_paths(sequential, [folder], progress=False, overlap=False)
    assert plain.vectors_while_parsing == 0 and plain.vectors_added == sequential.vectors.size
    assert sequential.counts() == overlapped
    doc = records[0]["id"]
    assert [c.text for c in sequential.document_chunks(doc)] == \
        [c.text for c in open_index(tmp_path / "overlap").document_chunks(doc)]
    sequential.close()


def test_kill_9_during_overlapped_ingest_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "some.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in corpus_records(n_head=100, n_tail=20)), encoding="utf-8")
    reference = open_index(tmp_path / "reference")
    ingest_paths(reference, [data], progress=False, embed=False)
    expected = reference.counts()
    reference.close()

    folder = tmp_path / "idx"
    cmd = [sys.executable, "-m", "exorag.cli", "ingest", str(data), "--index", str(folder), "--overlap"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True, cwd=REPO)
    seen, deadline = "", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and "embedding:" not in seen:
        seen += proc.stderr.read(1) or ""  # type: ignore[union-attr]
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert "embedding:" in seen

    rerun = subprocess.run(cmd + ["-q"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    index = open_index(folder)
    assert index.counts() == expected
    ids = index.vectors.ids().tolist()
    assert len(ids) == len(set(ids)) and sorted(ids) == index.chunk_ids()
    index.close()


def test_off_the_main_thread_every_kind_gets_the_hard_limit(tmp_path: Path, hang_kind: None) -> None:
    """The chat ingests uploads in a worker thread, where SIGALRM cannot be armed: the reader child serves every kind
    there, so a stuck reader of a non-ISOLATED kind is still abandoned at the limit and the rest still goes in."""
    import threading

    folder = tmp_path / "in"
    folder.mkdir()
    stuck = write(folder / "a_stuck.hang", "cloop 10000000000000")
    write(folder / "b_note.md", "# Note\n\nExosomal miR-21 rises in plasma of glioma patients.\n")
    index = open_index(tmp_path / "idx")
    result: dict[str, object] = {}

    def work() -> None:
        result["report"] = ingest_paths(index, [folder], progress=False, embed=False, file_timeout=0.3)

    started = time.monotonic()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and time.monotonic() - started < 30
    report = result["report"]
    assert [str(p) for p in report.failed] == [f"{stuck}: {TOOK_LONGER}"]  # type: ignore[attr-defined]
    assert "file:b_note" in report.seen  # type: ignore[attr-defined]
    index.close()



@pytest.mark.parametrize("thread", [False, True], ids=["main-thread", "upload-thread"])
def test_file_limit_counts_chunking_and_tagging(tmp_path: Path, thread: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile input 1: the per-file limit covers the whole per-file work (reader, chunking, tagging), not only the
    reader. Tagging is made slow here (the real tagger, after a 0.1 s pause per document), so a JSONL file that reads
    in milliseconds is abandoned at the limit (documents stored before it stay), and the next file still goes in; off
    the main thread (the chat's uploads) too, where the limit is checked after each step."""
    import threading

    real_derive = ingest.derive

    def slow_derive(doc):  # type: ignore[no-untyped-def]
        time.sleep(0.1)
        return real_derive(doc)

    monkeypatch.setattr(ingest, "derive", slow_derive)
    folder = tmp_path / "in"
    folder.mkdir()
    records = corpus_records(40)
    heavy = write(folder / "a_many.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write(folder / "b_note.md", "# Note\n\nExosomal miR-21 rises in plasma of glioma patients.\n")
    index = open_index(tmp_path / "idx")
    result: dict[str, object] = {}

    def work() -> None:
        result["report"] = ingest_paths(index, [folder], progress=False, embed=False, file_timeout=1.0)

    if thread:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join(120)
    else:
        work()
    report = result["report"]
    assert [str(p) for p in report.failed] == [  # type: ignore[attr-defined]
        f"{heavy}: took longer than 1 s; abandoned (raise --file-timeout to allow more)"]
    assert "file:b_note" in report.seen  # type: ignore[attr-defined]
    stored = index.count_documents() - 1  # less the note
    assert 1 <= stored <= 11, stored  # at 0.1 s a document, about 10 went in before the limit; not all 40
    index.close()


def test_chunking_a_long_unbroken_span_is_not_quadratic() -> None:
    """A 100,000-character abstract with an unclosed bracket is one "sentence" cut at word boundaries: the cut gallops
    and bisects over the words (O(log n) tokenizer calls a piece), and gives the pieces the word-by-word scan gave."""
    from exorag.build.chunk import _cut_long
    from exorag.index import embed

    count = embed.load("sentence-transformers/all-MiniLM-L6-v2").count_tokens
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return count(text)

    text = "(" + " ".join(r["abstract"] for r in corpus_records(60) if r.get("abstract"))[:100_000]
    pieces = _cut_long(text, 0, len(text), counting, 200)
    assert all(count(text[a:b]) <= 200 for a, b in pieces)
    assert all(text[b:pieces[n + 1][0]].isspace() for n, (a, b) in enumerate(pieces[:-1]))  # cut between words
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text.rstrip())
    assert calls < 20 * len(pieces), (calls, len(pieces))  # the old scan made one call per word: ~150 a piece
