"""FAISS vectors against a numpy oracle: exact flat search, IVF-fp16 recall, the flat -> IVF switch on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exorag.errors import IndexMismatch
from exorag.index.vectors import META_FILE, RETRAIN_GROWTH, open_vectors

DIM = 64


def clustered(n: int, seed: int = 0, centers: int = 40) -> np.ndarray:
    """Normalised vectors from a Gaussian mixture (real embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, DIM))
    x = means[rng.integers(0, centers, n)] + rng.normal(size=(n, DIM)) * 0.7
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(ids: np.ndarray, x: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    scores = x @ q
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].tolist()


def test_flat_top_k_equals_numpy_brute_force(tmp_path: Path) -> None:
    x, ids = clustered(3000), np.arange(3000, dtype=np.int64) * 5 + 11
    vectors = open_vectors(tmp_path, "m", DIM, threshold=10_000)
    vectors.add(ids, x)
    assert vectors.kind == "flat"
    for q in clustered(20, seed=1):
        got = vectors.search(q, 10)
        assert [i for i, _ in got] == brute_force(ids, x, q, 10)
        assert np.allclose([s for _, s in got], np.sort(x @ q)[::-1][:10], atol=1e-5)


def test_ivf_recall_at_10_against_exact_and_the_switch_survives_reopen(tmp_path: Path) -> None:
    everything = clustered(4100)
    x, ids = everything[:4000], np.arange(4000, dtype=np.int64) * 3 + 1
    vectors = open_vectors(tmp_path, "m", DIM, threshold=2500)
    vectors.add(ids[:2000], x[:2000])
    vectors.save()
    assert vectors.kind == "flat" and json.loads((tmp_path / META_FILE).read_text())["kind"] == "flat"
    vectors.add(ids[2000:], x[2000:])  # crosses the threshold: migrates, trained on the vectors held
    assert vectors.kind == "ivf-fp16" and vectors.trained_for == 4000
    vectors.save()
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["kind"] == "ivf-fp16" and meta["vectors"] == 4000 and meta["nlist"] > 1

    reopened = open_vectors(tmp_path, "m", DIM, threshold=2500)
    assert reopened.kind == "ivf-fp16" and reopened.trained_for == 4000
    assert sorted(reopened.ids().tolist()) == ids.tolist()
    queries = everything[4000:]  # held-out points of the same mixture
    recall = np.mean([len(set(i for i, _ in reopened.search(q, 10)) & set(brute_force(ids, x, q, 10))) / 10
                      for q in queries])
    assert recall >= 0.98, recall


def test_ivf_add_remove_and_filtered_search(tmp_path: Path) -> None:
    x, ids = clustered(3000, seed=3), np.arange(3000, dtype=np.int64) + 100
    vectors = open_vectors(tmp_path, "m", DIM, threshold=1000)
    vectors.add(ids[:1500], x[:1500])
    assert vectors.kind == "ivf-fp16"
    vectors.add(ids[1500:], x[1500:])  # 2x the trained size: added without retraining
    assert vectors.trained_for == 1500 and vectors.size == 3000
    q = x[2500]
    assert vectors.search(q, 1)[0][0] == ids[2500]  # a vector added after training is found

    gone = ids[2500:2600]
    assert vectors.remove(gone) == 100
    assert vectors.size == 2900 and not set(gone.tolist()) & set(vectors.ids().tolist())
    assert ids[2500] not in [i for i, _ in vectors.search(q, 50)]

    allowed = ids[::150]  # 20 ids, a filter keeping <1 % of the vectors: nprobe widens to find them all
    allowed = allowed[~np.isin(allowed, gone)]
    got = vectors.search(q, 50, allowed=allowed)
    assert sorted(i for i, _ in got) == sorted(allowed.tolist())
    top = vectors.search(q, 5, allowed=allowed)
    keep = np.isin(ids, allowed)
    assert [i for i, _ in top] == brute_force(ids[keep], x[keep], q, 5)
    assert vectors.search(q, 5, allowed=np.array([], dtype=np.int64)) == []

    vectors.save()
    reopened = open_vectors(tmp_path, "m", DIM, threshold=1000)
    assert sorted(reopened.ids().tolist()) == sorted(set(ids.tolist()) - set(gone.tolist()))


def test_ivf_is_retrained_when_it_outgrows_its_training(tmp_path: Path) -> None:
    x = clustered(RETRAIN_GROWTH * 600 + 200, seed=4)
    ids = np.arange(len(x), dtype=np.int64)
    vectors = open_vectors(tmp_path, "m", DIM, threshold=500)
    vectors.add(ids[:600], x[:600])
    first_nlist = vectors.index.nlist
    vectors.add(ids[600:], x[600:])
    assert vectors.kind == "ivf-fp16" and vectors.trained_for == len(x) and vectors.index.nlist > first_nlist
    assert sorted(vectors.ids().tolist()) == ids.tolist()
    assert vectors.search(x[-1], 1)[0][0] == ids[-1]


def test_wrong_dimension_and_model_are_clear_errors(tmp_path: Path) -> None:
    vectors = open_vectors(tmp_path, "m", DIM)
    with pytest.raises(IndexMismatch, match="dimension 32"):
        vectors.add(np.arange(3), np.zeros((3, 32), dtype=np.float32))
    vectors.add(np.arange(3), clustered(3))
    vectors.save()
    with pytest.raises(IndexMismatch, match="built with model 'm'"):
        open_vectors(tmp_path, "other", DIM)


def test_real_index_migrates_past_the_threshold_and_keeps_working(built_index: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real path: sync_vectors adds a few vectors to an index above the threshold, which then migrates;
    search, filters, stats and check work on the IVF index read back from disk."""
    import shutil

    from exorag.cli import main
    from exorag.index.index import check, open_index, sync_vectors
    from exorag.ask.retrieve import search
    from exorag.types import Filters

    folder = tmp_path / "idx"
    shutil.copytree(built_index, folder)
    monkeypatch.setenv("EXORAG_APPROX_THRESHOLD", "50")
    index = open_index(folder)
    before = search(index, "exosomal microRNA biomarkers in plasma", k=5, mode="dense")
    assert index.vectors.kind == "flat" and index.vectors.size > 50
    others = [i for i in index.vectors.ids().tolist() if i not in {h.chunk.id for h in before}]
    index.vectors.remove(np.array(others[:3]))  # three chunks lose their vector, as after a crash
    assert sync_vectors(index, progress=False)["added"] == 3
    index.close()

    index = open_index(folder)
    assert index.vectors.kind == "ivf-fp16"
    assert check(index)["consistent"] is True
    after = search(index, "exosomal microRNA biomarkers in plasma", k=5, mode="dense")
    # the same passages (float16 residuals may swap near-ties), the same cosines to 1e-3
    assert {h.chunk.id for h in after} == {h.chunk.id for h in before}
    assert np.allclose([h.score for h in after], [h.score for h in before], atol=1e-3)
    hits = search(index, "extracellular vesicles drug delivery", k=5, filters=Filters(year_from=2019, year_to=2021))
    assert hits and all(2019 <= (h.document.year or 0) <= 2021 for h in hits)
    index.close()
    capsys.readouterr()
    assert main(["stats", "--json", "--index", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["vector_index"] == "ivf-fp16"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from exorag.errors import ExoragError
    from exorag.index.vectors import APPROX_THRESHOLD, default_nprobe, default_threshold

    assert default_threshold() == APPROX_THRESHOLD
    assert default_nprobe(1000) == 350 and default_nprobe(50) == 32 and default_nprobe(10) == 10
    monkeypatch.setenv("EXORAG_APPROX_THRESHOLD", "5000")
    monkeypatch.setenv("EXORAG_NPROBE", "7")
    assert default_threshold() == 5000 and default_nprobe(1000) == 7 and default_nprobe(5) == 5
    monkeypatch.setenv("EXORAG_NPROBE", "many")
    with pytest.raises(ExoragError, match="EXORAG_NPROBE='many'"):
        default_nprobe(100)
    monkeypatch.setenv("EXORAG_NPROBE", "7")
    monkeypatch.setenv("EXORAG_APPROX_THRESHOLD", "1e5")
    with pytest.raises(ExoragError, match="EXORAG_APPROX_THRESHOLD='1e5'"):
        default_threshold()
