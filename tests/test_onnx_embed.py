"""The ONNX backends against torch, with the real bundled MiniLM and 200 real texts of the fixture corpus.

The export and the int8 quantisation are built once per module into a temporary cache ($EXORAG_CACHE), so the test
exercises the whole build; vectors are compared with sentence-transformers' fp32 ones (run with -s to see figures).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from exorag.index import embed, onnx_embed
from exorag.errors import ExoragError

from .conftest import FIXTURE_CORPUS


@pytest.fixture(scope="module")
def records() -> list[dict]:
    lines = FIXTURE_CORPUS.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[:150] + lines[-50:]]  # EV papers and non-EV neighbours
    assert len(records) == 200
    return records


@pytest.fixture(scope="module")
def texts(records: list[dict]) -> list[str]:
    return [embed.passage_text(r["title"], r.get("abstract") or "") for r in records]


@pytest.fixture(scope="module")
def queries(records: list[dict]) -> list[str]:
    return [r["title"] for r in records[5::10]]  # 20 short real queries


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> Iterator[Path]:
    """A fresh EXORAG_CACHE with both ONNX files built once; yields the model's cache folder."""
    root = tmp_path_factory.mktemp("exorag-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXORAG_CACHE", str(root))
        started = time.perf_counter()
        path = onnx_embed.ensure_onnx(quantized=True)
        print(f"\nexport + quantise: {time.perf_counter() - started:.1f} s -> {path.parent}")
        yield path.parent


@pytest.fixture(scope="module")
def torch_model() -> embed.Embedder:
    return embed.load(None, backend="torch")


@pytest.fixture(scope="module")
def int8(cache: Path) -> onnx_embed.OnnxEncoder:
    return onnx_embed.load_encoder(quantized=True)


@pytest.fixture(scope="module")
def vectors(texts: list[str], queries: list[str], torch_model: embed.Embedder,
            int8: onnx_embed.OnnxEncoder) -> dict[str, np.ndarray]:
    return {"torch": torch_model.encode(texts), "int8": int8.encode(texts),
            "torch_q": torch_model.encode(queries), "int8_q": int8.encode(queries)}


def test_cache_layout(cache: Path) -> None:
    assert cache.name.startswith("sentence-transformers-all-minilm-l6-v2-")
    for name in (onnx_embed.FP32_FILE, onnx_embed.INT8_FILE):
        assert onnx_embed.is_intact(cache / name)
    meta = json.loads((cache / onnx_embed.META_FILE).read_text())
    assert meta["fused_ops"].get("Attention") == 6 and meta["kept_fp32"]
    assert not [p for p in cache.iterdir() if ".tmp" in p.name or p.name.startswith(".export-")]


def test_int8_close_to_torch(vectors: dict[str, np.ndarray]) -> None:
    assert vectors["int8"].dtype == np.float32 and vectors["int8"].shape == (200, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors["int8"], axis=1), 1.0, atol=1e-5)
    cosine = (vectors["int8"] * vectors["torch"]).sum(axis=1)
    print(f"\nint8 vs torch fp32 over 200 texts: mean {cosine.mean():.5f} min {cosine.min():.5f}")
    assert cosine.min() >= 0.99
    assert cosine.mean() >= 0.993
    titles = (vectors["int8_q"] * vectors["torch_q"]).sum(axis=1)  # short texts, batched together
    print(f"int8 vs torch fp32 over 20 titles: mean {titles.mean():.5f} min {titles.min():.5f}")
    assert titles.min() >= 0.99


def test_fp32_onnx_matches_torch(cache: Path, texts: list[str], queries: list[str],
                                 vectors: dict[str, np.ndarray]) -> None:
    fp32 = onnx_embed.load_encoder(quantized=False)
    sample = texts[::4] + queries[:10]  # long abstracts and short titles in the same batches: padding matters
    expected = np.concatenate([vectors["torch"][::4], vectors["torch_q"][:10]])
    cosine = (fp32.encode(sample, batch_size=16) * expected).sum(axis=1)
    print(f"\nfp32 ONNX vs torch fp32 over {len(sample)} texts: mean {cosine.mean():.7f} min {cosine.min():.7f}")
    assert cosine.min() >= 0.9999


def test_int8_keeps_neighbours(vectors: dict[str, np.ndarray]) -> None:
    def top10(q: np.ndarray, corpus: np.ndarray) -> list[set[int]]:
        return [set(row) for row in np.argsort(-(q @ corpus.T), axis=1)[:, :10].tolist()]

    reference = top10(vectors["torch_q"], vectors["torch"])
    got = top10(vectors["int8_q"], vectors["int8"])
    recall = np.mean([len(a & b) / 10 for a, b in zip(reference, got)])
    print(f"\nrecall@10 of int8 vs torch fp32 (20 queries, 200 texts): {recall:.3f}")
    assert recall >= 0.9


def test_batching_keeps_order(cache: Path, int8: onnx_embed.OnnxEncoder, texts: list[str],
                              queries: list[str]) -> None:
    sample = texts[:6] + queries[:6] + [""]
    fp32 = onnx_embed.load_encoder(quantized=False)  # fp32 results do not depend on the batch companions
    whole = fp32.encode(sample, batch_size=32)
    np.testing.assert_allclose(fp32.encode(sample, batch_size=3), whole, atol=1e-4)
    shuffled = list(range(len(sample)))[::-1]
    np.testing.assert_allclose(fp32.encode([sample[i] for i in shuffled], batch_size=4), whole[shuffled], atol=1e-4)
    # int8 activations are quantised per batch (one scale per tensor), so companions move a vector a little
    # (a text of 0-2 wordpieces batched with abstracts moves most: cosine ~0.97; it is left out here)
    cosine = (int8.encode(sample[:-1], batch_size=3) * int8.encode(sample[:-1], batch_size=32)).sum(axis=1)
    assert cosine.min() >= 0.99
    assert int8.encode([]).shape == (0, 384)


def test_embedder_interface(cache: Path, monkeypatch: pytest.MonkeyPatch, texts: list[str],
                            torch_model: embed.Embedder, vectors: dict[str, np.ndarray]) -> None:
    monkeypatch.setenv("EXORAG_CACHE", str(cache.parent.parent))
    monkeypatch.setenv("EXORAG_BACKEND", "onnx-int8")
    embedder = embed.load()
    assert embedder.backend == "onnx-int8" and embedder is embed.load("all-MiniLM-L6-v2")
    assert embedder is not embed.load(None, backend="torch")  # the cache key holds the backend
    assert (embedder.name, embedder.dim, embedder.max_tokens) == (torch_model.name, 384, 256)
    for text in texts[:20]:
        assert embedder.count_tokens(text) == torch_model.count_tokens(text)
    assert (embedder.encode(texts[:8]) * vectors["torch"][:8]).sum(axis=1).min() >= 0.99
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(ExoragError):
        embed.load(None, backend="tensorrt")


def test_cache_reused(cache: Path) -> None:
    files = [cache / onnx_embed.FP32_FILE, cache / onnx_embed.INT8_FILE]
    before = [p.stat().st_mtime_ns for p in files]
    started = time.perf_counter()
    onnx_embed.load_encoder(quantized=True)
    onnx_embed.load_encoder(quantized=False)
    assert [p.stat().st_mtime_ns for p in files] == before
    assert time.perf_counter() - started < 10  # a cache hit is a digest and a session, not an export


def test_crash_while_writing_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a model")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        onnx_embed.write_atomically(dest, crash)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_is_rebuilt(cache: Path, int8: onnx_embed.OnnxEncoder, texts: list[str]) -> None:
    fp32, quantized = cache / onnx_embed.FP32_FILE, cache / onnx_embed.INT8_FILE
    fp32_mtime = fp32.stat().st_mtime_ns
    data = bytearray(quantized.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still parses, wrong weights
    quantized.write_bytes(bytes(data))
    assert not onnx_embed.is_intact(quantized)
    rebuilt = onnx_embed.load_encoder(quantized=True)
    assert onnx_embed.is_intact(quantized) and fp32.stat().st_mtime_ns == fp32_mtime  # re-quantised, not re-exported
    np.testing.assert_allclose(rebuilt.encode(texts[:4]), int8.encode(texts[:4]), atol=1e-5)  # same recipe
    assert os.path.getsize(quantized) > 1_000_000
    quantized.write_bytes(quantized.read_bytes()[:1000])  # truncated
    assert not onnx_embed.is_intact(quantized)
