"""The sharded build (exorag/cluster/build.py) on a real two-node Ray cluster on 127.0.0.1 (the `ray_cluster` fixture).

Oracles: the sharded exact index answers every query with the same passages and scores as a single-process index
built from the same records; the IVF shards, trained on one quantiser, find the exact top 10 (recall@10 >= 0.98)
and the on-disk merge of their inverted lists answers exactly as the shards fanned out; the Ray Data embedding ran
on both nodes; a worker killed (kill -9) mid-embedding and a driver killed mid-embedding, run again, both end with
every chunk embedded exactly once and the same chunks and vectors as a clean build. Skipped where ray (the
[cluster] extra) is not installed.
Every build here embeds with the fp32 ONNX backend (EXORAG_BACKEND=onnx, a setting the driver hands to each
worker; the code path is the same as for the default int8 one): int8 dynamic quantisation scales activations per
batch, so the same passage embedded beside other passages differs by up to ~0.015 in a component (measured on the
fixture), and a single-process build and a sharded one batch passages differently. fp32 vectors do not depend on
their batch (0.0 difference), so the oracles can ask for the same hits with scores equal within 1e-5.
"""

from __future__ import annotations

import os

from tests.ray_cluster import RAY_ENV, RAY_SKIP

os.environ.update(RAY_ENV)  # Ray reads these once, at its first import: before any test imports it

import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.skipif(RAY_SKIP is not None, reason=RAY_SKIP or "")

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "corpus" / "ev_small.jsonl"
RECORDS = 24  # ~60 chunks: enough for several parts per shard, quick to embed on 2 cores
SHARDS = 2
QUERIES = ["exosomal PD-L1 and response to immunotherapy", "isolation of extracellular vesicles by ultracentrifugation",
           "microRNA cargo of tumour-derived exosomes", "dendritic cell derived exosomes as vaccines",
           "liquid biopsy biomarkers in plasma", "nanoparticle tracking analysis of vesicle size"]


@pytest.fixture(scope="module", autouse=True)
def fp32_backend():  # type: ignore[no-untyped-def]
    from exorag.settings import Settings, configure

    configure(Settings.from_env().replace("index", backend="onnx"))
    yield
    configure(None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:RECORDS]
    path = tmp_path_factory.mktemp("corpus") / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def joined(ray_cluster):  # type: ignore[no-untyped-def]
    """This process joined to the test cluster once for the module (each build then reuses the connection)."""
    import ray

    from exorag.cluster.driver import connect

    connect(ray_cluster.address)
    yield ray_cluster
    ray.shutdown()


@pytest.fixture(scope="module")
def clean(joined, corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from exorag.cluster.build import build

    root = tmp_path_factory.mktemp("clean") / "sharded"
    report = build(root, [corpus], joined.address, SHARDS, part_size=8, progress=False)
    return root, report


@pytest.fixture(scope="module")
def single(corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from exorag.build.ingest import ingest_paths
    from exorag.index.index import open_index

    index = open_index(tmp_path_factory.mktemp("single") / "index")
    ingest_paths(index, [corpus], progress=False)
    return index


def _shards(root: Path, count: int | None = None) -> list:  # type: ignore[type-arg]
    """The shard indexes under `root` (`count` of them; by default as many as its cluster.json says)."""
    from exorag.cluster.layout import read_layout, shard_folder
    from exorag.index.index import open_index

    return [open_index(shard_folder(root, s)) for s in range(count or read_layout(root).shards)]


def _vectors_by_chunk(index) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    from exorag.index.vectors import all_vectors

    ids, vecs = all_vectors(index.vectors.index)
    assert len(ids) == len(np.unique(ids)), "a chunk has two vectors"
    return dict(zip(ids.tolist(), vecs))


def _fan_out(shards: list, query: np.ndarray, k: int) -> list[tuple[tuple[str, str], float]]:  # type: ignore[type-arg]
    hits = []
    for index in shards:
        found = index.vectors.search(query, k)
        chunks = index.get_chunks([cid for cid, _ in found])
        hits += [((chunks[cid].doc_id, chunks[cid].text), score) for cid, score in found]
    return sorted(hits, key=lambda h: -h[1])[:k]


def _query_vectors() -> np.ndarray:
    from exorag.index import embed

    return embed.load().encode(QUERIES)


def _same_top_k(got: list, want: list, tol: float = 1e-5) -> None:  # type: ignore[type-arg]
    assert len(got) == len(want)
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=tol)
    cut = want[-1][1] + tol  # hits tied with the k-th may be cut either way
    assert {key for key, s in got if s > cut} == {key for key, s in want if s > cut}


def test_shards_hold_every_document_once_with_global_chunk_ids(clean, single, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    from exorag.cluster.layout import first_chunk_id, read_layout, shard_of_chunk, shard_of_document
    from exorag.index.index import check

    root, report = clean
    layout = read_layout(root)
    assert (layout.shards, layout.vectors, layout.kind, layout.extra["complete"]) == (SHARDS, "shards", "flat", True)
    assert report.documents["added"] == RECORDS and report.embedded == report.chunks == single.chunk_count()
    assert report.reads == {str(corpus): RECORDS} and report.received == RECORDS  # read once, not once per shard
    docs: list[str] = []
    for s, index in enumerate(_shards(root)):
        ids = index.chunk_ids()
        assert ids and all(shard_of_chunk(c) == s and c > first_chunk_id(s) for c in ids)
        assert check(index)["consistent"]
        shard_docs = [d for d, _ in index.document_origins()]
        assert all(shard_of_document(d, SHARDS) == s for d in shard_docs)
        docs += shard_docs
        assert not list((index.folder / "parts").glob("*.npz")), "parts are removed once in vectors.faiss"
    assert sorted(docs) == sorted(d for d, _ in single.document_origins())


def test_sharded_exact_search_equals_single_process(clean, single) -> None:  # type: ignore[no-untyped-def]
    root, _ = clean
    shards = _shards(root)
    for query in _query_vectors():
        want = single.vectors.search(query, 10)
        chunks = single.get_chunks([cid for cid, _ in want])
        _same_top_k(_fan_out(shards, query, 10), [((chunks[c].doc_id, chunks[c].text), s) for c, s in want])


def test_embedding_ran_on_both_nodes(clean) -> None:  # type: ignore[no-untyped-def]
    import ray

    _, report = clean
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(alive) == 2 and set(report.nodes) == alive and report.workers == 2


def test_ivf_shards_and_merged_index(clean, joined, corpus: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same shards rebuilt as IVF with one quantiser of 4 lists (no re-embedding): recall@10 >= 0.98 against
    exact at the default nprobe (all 4 lists at this size), and at nprobe 2 of 4 the on-disk merge of the shards'
    inverted lists answers exactly as the shards fanned out (the same lists are probed in every shard)."""
    import faiss

    from exorag.cluster.build import build, open_merged
    from exorag.cluster.layout import read_layout

    root = tmp_path / "ivf"
    shutil.copytree(clean[0], root)
    report = build(root, [corpus], joined.address, SHARDS, merge=True, progress=False, nlist=4)
    assert (report.kind, report.embedded, report.merged) == ("ivf-fp16", 0, True)
    assert read_layout(root).vectors == "merged"
    exact, shards = _shards(clean[0]), _shards(root)
    assert all(index.vectors.kind == "ivf-fp16" and index.vectors.index.nlist == 4 for index in shards)
    merged = open_merged(root)
    assert merged.ntotal == report.vectors == report.chunks
    found = wanted = 0
    for query in _query_vectors():
        want = {key for key, _ in _fan_out(exact, query, 10)}
        found += len(want & {key for key, _ in _fan_out(shards, query, 10)})
        wanted += len(want)
        # FAISS itself at nprobe 2 (Vectors.search would widen a shard's search that finds fewer than k)
        fanned, chunks = [], {}
        for index in shards:
            scores, ids = index.vectors.index.search(query.reshape(1, -1), 10,
                                                     params=faiss.SearchParametersIVF(nprobe=2))
            fanned += [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
            chunks.update(index.get_chunks([int(i) for i in ids[0] if i >= 0]))
        scores, ids = merged.search(query.reshape(1, -1), 10, params=faiss.SearchParametersIVF(nprobe=2))
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        assert {i for i, _ in hits} <= set(chunks)
        _same_top_k(hits, sorted(fanned, key=lambda h: -h[1])[:10])
    assert found / wanted >= 0.98


def test_a_worker_killed_mid_embedding_is_survived(joined, corpus: Path, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from exorag.cluster.build import build

    killed: list[int] = []

    def kill_once(part: dict) -> None:  # type: ignore[type-arg]
        if not killed:  # kill -9 the actor that just embedded a part, while it has more to do
            os.kill(int(part["pid"]), signal.SIGKILL)
            killed.append(int(part["pid"]))

    root = tmp_path / "killed"
    report = build(root, [corpus], joined.address, SHARDS, part_size=8, progress=False, on_part=kill_once)
    assert killed and not _alive(killed[0])
    assert report.embedded >= report.chunks  # a part in flight may have been embedded twice, never stored twice
    _assert_same_build(root, clean[0])


def test_a_killed_driver_then_the_same_command_finishes_the_job(joined, corpus: Path, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "exorag.cli", "cluster", "build", "--address", joined.address, "--shards", str(SHARDS),
           "--index", str(root), "--part-size", "8", "-q", "--json", str(corpus)]
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO), "EXORAG_BACKEND": "onnx"}
    driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not list(root.glob("shard-*/parts/*.npz")) and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, "the build ended before any part was written: nothing to resume"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    parts = len(list(root.glob("shard-*/parts/*.npz")))
    assert parts >= 1 and not (root / "shard-000" / "vectors.faiss").exists()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    report = json.loads(done.stdout)
    assert report["embedded"] <= report["chunks"] - parts * 1  # the parts written before the kill were kept
    # the killed run had stored everything (parts come after the store stage): the rerun read each file once more
    # and stored nothing
    assert report["documents"] == {"added": 0, "updated": 0, "unchanged": RECORDS}
    assert report["reads"] == {str(corpus.resolve()): RECORDS} and report["received"] == RECORDS
    _assert_same_build(root, clean[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _assert_same_build(root: Path, reference: Path) -> None:
    """The same documents, chunks (ids and texts) and vectors per shard as the clean build; each chunk one vector."""
    for got, want in zip(_shards(root), _shards(reference), strict=True):
        assert got.chunk_ids() == want.chunk_ids()
        ids = got.chunk_ids()
        assert {c: ch.text for c, ch in got.get_chunks(ids).items()} == {c: ch.text for c, ch in want.get_chunks(ids).items()}
        have, ref = _vectors_by_chunk(got), _vectors_by_chunk(want)
        assert sorted(have) == ids
        assert max(float(np.abs(have[c] - ref[c]).max()) for c in ids) < 1e-5


def test_the_store_stage_reads_each_file_once_and_names_bad_ones(joined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The store stage alone (no embedding): each input file is read by one task (records read per file, documents
    sent to the writers once each), a bad line, an unsupported file and a missing one are reported by name and
    the rest is stored in its shard. (A rerun storing nothing: the killed-driver test's second run.)"""
    from exorag.cluster.build import BuildReport, _store
    from exorag.cluster.layout import shard_of_document
    from exorag.index.embed import canonical_name
    from exorag.settings import current

    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:7]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(lines[:4] + ["{not json"]) + "\n", encoding="utf-8")
    (folder / "b.jsonl").write_text("\n".join(lines[4:]) + "\n", encoding="utf-8")
    (folder / "notes.xyz").write_text("not a corpus", encoding="utf-8")
    missing = tmp_path / "missing.jsonl"
    settings = current().replace("index", model=canonical_name(current().index.model))
    root = tmp_path / "stored"

    first = BuildReport(root=str(root), shards=SHARDS)
    _store(root, [folder, missing], SHARDS, settings, 1, first, False)
    shards = _shards(root, SHARDS)
    for s, index in enumerate(shards):
        assert all(shard_of_document(d, SHARDS) == s for d, _ in index.document_origins())
    chunks = [index.chunk_ids() for index in shards]
    assert first.reads == {str(folder / "a.jsonl"): 5, str(folder / "b.jsonl"): 3, str(folder / "notes.xyz"): 0,
                           str(missing): 0}  # 5: four records and the bad line
    assert first.received == 7 and first.documents == {"added": 7, "updated": 0, "unchanged": 0}
    assert [p.split(":")[0] for p in first.failed] == [str(folder / "a.jsonl"), str(missing)]
    assert ":5:" in first.failed[0] and "no such file" in first.failed[1]
    assert len(first.skipped) == 1 and str(folder / "notes.xyz") in first.skipped[0]
    assert first.chunks == sum(len(c) for c in chunks) > 7


def test_parts_group_chunks_by_window_of_ids() -> None:
    from exorag.cluster.layout import first_chunk_id
    from exorag.cluster.parts import plan

    base = first_chunk_id(3)
    groups = plan(np.array([base + 9, base + 1, base + 8, base + 17, base + 2], dtype=np.int64), base, part_size=8)
    assert [g.tolist() for g in groups] == [[base + 1, base + 2, base + 8], [base + 9], [base + 17]]
    assert plan(np.zeros(0, np.int64), base) == []


def test_a_rerun_with_another_shard_count_or_a_foreign_folder_is_refused(corpus: Path, tmp_path: Path) -> None:
    """Checked before the cluster is joined (the address here leads nowhere)."""
    from exorag.cluster.build import build
    from exorag.cluster.layout import Layout, write_layout
    from exorag.errors import ExoragError
    from exorag.index.embed import DEFAULT_MODEL

    write_layout(tmp_path / "built", Layout(shards=2, model=DEFAULT_MODEL))
    with pytest.raises(ExoragError, match="--shards 2"):
        build(tmp_path / "built", [corpus], "127.0.0.1:1", 3, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ExoragError, match="not empty"):
        build(tmp_path / "other", [corpus], "127.0.0.1:1", 2, progress=False)


def test_an_address_where_no_cluster_listens_is_a_clear_error_at_once(corpus: Path, tmp_path: Path) -> None:
    from tests.ray_cluster import free_port

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "exorag.cli", "cluster", "build", "--address", f"127.0.0.1:{free_port()}",
                           "--shards", "2", "--index", str(tmp_path / "x"), "-q", str(corpus)],
                          cwd=REPO, env={**os.environ, **RAY_ENV}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no Ray cluster answers" in done.stderr
    assert time.monotonic() - started < 30
