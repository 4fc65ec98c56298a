"""Train the judge: one MiniLM cross-encoder with two heads, fine-tuned on CPU torch, then exported to int8 ONNX.

The network is the bundled all-MiniLM-L6-v2 transformer with a 4-output linear head over the [CLS] state:
output 0 is the answer judge's logit ("this sentence answers the question"), outputs 1-3 the stance judge's logits
(neither / supports / contradicts). One network serves both judges, so a yes/no question is judged for both in one
pass and the package ships one file. Each training row belongs to one task and trains only its head's outputs
(binary cross-entropy for answer rows, cross-entropy for stance rows) and the shared encoder.

Pairs come from `training/judge_data.py`. Batches are drawn from length buckets (dynamic padding), the learning rate
warms up then decays linearly, and a checkpoint (model, optimiser, scheduler, step, order) is written atomically
every `--save-every` steps: the same command after an interruption resumes where it stopped. Progress (tqdm) and
the development figures go to stdout.

    python training/train_judge.py --data training/data --out training/run [--epochs 1] [--threads 2]
    python training/train_judge.py --data training/data --out training/run --export exorag/data/judge

`--export` writes the trained network's ONNX graph, int8-quantised with the embedder's recipe, plus tokenizer.json and
judge.json (labels, max length) into the package folder. Deliberately left out: distillation from a bigger model
(none is available offline), hyper-parameter search, GPU code paths.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exorag.index import onnx_embed  # noqa: E402

MAX_LEN = 160
STANCE = ("neither", "supports", "contradicts")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tokenizer():
    return onnx_embed.load_tokenizer(onnx_embed.bundled_model_dir(), MAX_LEN)


def encode(tok, rows: list[dict]) -> list:
    return tok.encode_batch([(r["a"], r["b"]) for r in rows])


def batches(lengths: list[int], size: int, seed: int) -> list[list[int]]:
    """Index batches of similar length: shuffle, sort within windows of 50 batches, shuffle the batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out = []
    window = size * 50
    for w in range(0, len(order), window):
        part = sorted(order[w:w + window], key=lambda i: lengths[i])
        out.extend(part[i:i + size] for i in range(0, len(part), size))
    rng.shuffle(out)
    return out


def tensors(encodings, idx, torch):
    batch = onnx_embed._pad([encodings[i] for i in idx], pad_id=0)
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def build_model(torch):
    from transformers import AutoModelForSequenceClassification

    folder = onnx_embed.transformer_dir(onnx_embed.bundled_model_dir())
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=4, attn_implementation="eager")


def loss_of(logits, rows, torch):
    tasks = [r["task"] for r in rows]
    ans = [i for i, t in enumerate(tasks) if t == "answer"]
    sta = [i for i, t in enumerate(tasks) if t == "stance"]
    total = logits.new_zeros(())
    if ans:
        y = torch.tensor([float(rows[i]["label"]) for i in ans])
        total = total + torch.nn.functional.binary_cross_entropy_with_logits(logits[ans, 0], y) * len(ans)
    if sta:
        y = torch.tensor([int(rows[i]["label"]) for i in sta])
        total = total + torch.nn.functional.cross_entropy(logits[sta, 1:4], y) * len(sta)
    return total / len(rows)


def predict(model, tok, rows: list[dict], torch, size: int = 64) -> np.ndarray:
    model.eval()
    enc = encode(tok, rows)
    order = sorted(range(len(rows)), key=lambda i: len(enc[i].ids))
    out = np.zeros((len(rows), 4), dtype=np.float32)
    with torch.no_grad():
        for b in range(0, len(order), size):
            idx = order[b:b + size]
            out[idx] = model(**tensors(enc, idx, torch)).logits.numpy()
    model.train()
    return out


def report(logits: np.ndarray, rows: list[dict]) -> dict:
    """Development figures: answer AUC and precision/recall at p >= 0.5; stance accuracy and macro-F1."""
    figures: dict = {}
    ans = [i for i, r in enumerate(rows) if r["task"] == "answer"]
    if ans:
        p = 1 / (1 + np.exp(-logits[ans, 0]))
        y = np.array([rows[i]["label"] for i in ans])
        pos, neg = p[y == 1], p[y == 0]
        auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
        tp = int(((p >= 0.5) & (y == 1)).sum())
        figures["answer"] = {"pairs": len(ans), "auc": round(auc, 4),
                             "precision@0.5": round(tp / max(1, int((p >= 0.5).sum())), 4),
                             "recall@0.5": round(tp / max(1, int(y.sum())), 4)}
    sta = [i for i, r in enumerate(rows) if r["task"] == "stance"]
    if sta:
        pred = logits[sta, 1:4].argmax(1)
        y = np.array([rows[i]["label"] for i in sta])
        f1s = []
        for c in range(3):
            tp = int(((pred == c) & (y == c)).sum())
            prec, rec = tp / max(1, int((pred == c).sum())), tp / max(1, int((y == c).sum()))
            f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        figures["stance"] = {"pairs": len(sta), "accuracy": round(float((pred == y).mean()), 4),
                             "macro_f1": round(float(np.mean(f1s)), 4),
                             "f1": {STANCE[c]: round(f1s[c], 4) for c in range(3)}}
    return figures


def save_atomic(obj, path: Path, torch) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(args) -> None:
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    tok = tokenizer()
    rows = read(args.data / args.train_file)
    # Rebalance (seeded): BioASQ answer pairs are most of the data and easy; SciFact stance pairs are few and hard.
    rng = random.Random(7)
    rows = [r for r in rows if not (r["task"] == "answer" and r["src"] == "bioasq" and rng.random() > args.bioasq_keep)]
    rows += [r for r in rows if r["task"] == "stance" and r["src"].startswith("scifact")] * (args.scifact_repeat - 1)
    rng.shuffle(rows)
    if args.limit:
        rows = rows[: args.limit]
    print(f"{len(rows)} training pairs", flush=True)
    dev = read(args.data / "dev.jsonl")
    if args.dev_limit:
        random.Random(1).shuffle(dev)
        dev = dev[: args.dev_limit]
    enc = encode(tok, rows)
    plan = [b for e in range(args.epochs) for b in batches([len(x.ids) for x in enc], args.batch, seed=e)]
    model = build_model(torch)
    if args.init:  # a second phase starts from the first phase's weights
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(args.init), attn_implementation="eager")
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, int(0.06 * len(plan)))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (len(plan) - s) / max(1, len(plan) - warm)))
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "checkpoint.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        print(f"resuming at step {step} of {len(plan)}", flush=True)
    model.train()
    started = time.time()
    bar = tqdm(total=len(plan), initial=step, desc="train", unit="batch", mininterval=10, file=sys.stdout)
    running = None
    while step < len(plan):
        idx = plan[step]
        logits = model(**tensors(enc, idx, torch)).logits
        loss = loss_of(logits, [rows[i] for i in idx], torch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        step += 1
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        if step % args.save_every == 0 or step == len(plan):
            save_atomic({"model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
                         "step": step}, ckpt, torch)
    bar.close()
    print(f"trained {len(plan)} batches in {time.time() - started:.0f} s this run", flush=True)
    final = args.out / "model"
    model.save_pretrained(str(final))
    figures = report(predict(model, tok, dev, torch), dev)
    (args.out / "dev_figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1), flush=True)


def quantize(src: Path, dest: Path) -> None:
    """Dynamic int8 of every weight, the embedding table included (the embedder's recipe keeps the table and the FFN
    output projections fp32, 69 MB for this network; a classifier's decisions tolerate more: see --export's check)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})

    with onnx_embed._quiet_root_logger():
        onnx_embed.write_atomically(dest, write)


def export(args) -> None:
    """The trained network as int8 ONNX in `args.export`, checked against torch on a padded batch."""
    import shutil
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = args.out / "model"
    if not folder.is_dir():  # an interrupted run: export its last checkpoint (for trying the wiring early)
        print(f"no {folder}: exporting {args.out / 'checkpoint.pt'}")
        model = build_model(torch)
        model.load_state_dict(torch.load(args.out / "checkpoint.pt", weights_only=False)["model"])
        model.save_pretrained(str(args.out / "partial"))
        folder = args.out / "partial"
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    tok = tokenizer()
    sample = [{"a": "Is CD63 an exosomal marker?", "b": "CD63 is enriched in exosomes."},
              {"a": "What is DIS3?", "b": "DIS3 is the catalytic subunit of the RNA exosome complex in yeast."}]
    inputs = onnx_embed._pad(encode(tok, sample), pad_id=0)
    names = list(onnx_embed.INPUT_NAMES)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    wrapper = Wrapper().eval()
    targs = tuple(torch.from_numpy(inputs[n]) for n in names)
    with torch.no_grad():
        expected = wrapper(*targs).numpy()
    dest = args.export
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "plain.onnx"
        torch.onnx.export(wrapper, targs, str(plain), dynamo=False, input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
                          opset_version=onnx_embed.OPSET, do_constant_folding=True)
        fused, _ = onnx_embed._fuse(plain, Path(scratch) / "fused.onnx", AutoConfig.from_pretrained(str(folder)))
        chosen = fused or plain
        quantize(chosen, dest / "judge_int8.onnx")
    session = onnx_embed.make_session(dest / "judge_int8.onnx", threads=1)
    got = session.run(["logits"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
    print("int8 vs torch max |logit diff| on the sample:", float(np.abs(got - expected).max()))
    shutil.copy(onnx_embed.transformer_dir(onnx_embed.bundled_model_dir()) / "tokenizer.json", dest / "tokenizer.json")
    figures = json.loads((args.out / "dev_figures.json").read_text()) if (args.out / "dev_figures.json").exists() else {}
    meta = {"outputs": ["answer", *[f"stance_{s}" for s in STANCE]], "max_length": MAX_LEN,
            "base": "sentence-transformers/all-MiniLM-L6-v2", "exported_from": str(args.out / "model"),
            "dev_figures_torch": figures}  # how that model was trained: the README's model card
    (dest / "judge.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    print(f"wrote {dest}: {sorted(p.name for p in dest.iterdir())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("training/data"))
    parser.add_argument("--out", type=Path, default=Path("training/run"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-file", default="train.jsonl", help="pairs under --data to train on")
    parser.add_argument("--init", type=Path, default=None, help="start from this trained model folder")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bioasq-keep", type=float, default=0.55, help="share of BioASQ answer pairs used")
    parser.add_argument("--scifact-repeat", type=int, default=2, help="times each SciFact stance pair is seen")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training pairs (a quick run)")
    parser.add_argument("--dev-limit", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--export", type=Path, default=None, help="export the trained model into this folder")
    args = parser.parse_args()
    if args.export:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
