"""Train the dense encoder: the base model's embeddings and first layers, contrastively, on the corpus.

Pairs come from the corpus's *training* split only: a query made like the questions the index will
get (a clause of a chunk, one span blanked out with ____) and the chunk it came from; the other
chunks in the batch are the negatives (InfoNCE with in-batch negatives, as in DPR and E5). The
questions the lab evaluates on are made from held-out documents the encoder never trained on.
"""
from __future__ import annotations

import random
import time

from ..events import Emitter, StopFlag
from .questions import quantities


def make_query(text: str, rng: random.Random) -> str:
    """A cloze-like query from a chunk: a window of 10–24 characters, one span in it blanked."""
    n = len(text)
    w = min(n, rng.randint(10, 24))
    s = rng.randint(0, max(0, n - w))
    win = text[s:s + w]
    qs = quantities(win)
    if qs:
        m = rng.choice(qs)
        a, b = m.start(), m.end()
    else:
        a = rng.randint(0, max(0, len(win) - 3))
        b = a + rng.randint(2, 4)
    return "填空：" + win[:a] + "____" + win[b:]


def init_from_base(module, base_dir, layers: int) -> None:
    """Copy the base model's embeddings, first ``layers`` layers and final norm into the encoder body."""
    import torch
    from safetensors.torch import load_file

    files = sorted(base_dir.glob("*.safetensors"))
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    body = {}
    for k, v in state.items():
        if not k.startswith("model."):
            continue
        k = k[len("model."):]
        if k.startswith("layers.") and int(k.split(".")[1]) >= layers:
            continue
        body[k] = v.to(torch.float32)
    missing, unexpected = module.body.load_state_dict(body, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise ValueError(f"the base model's weights do not fit the encoder: missing {missing[:3]}, unexpected {unexpected[:3]}")


def set_token_weights(module, tok, texts: list[str], a: float = 1e-3) -> None:
    """SIF weights from the token frequencies of ``texts`` (the chunks the index will hold)."""
    import numpy as np
    import torch

    counts = np.zeros(module.token_weight.shape[0], dtype=np.float64)
    for ids in tok(texts, add_special_tokens=False)["input_ids"]:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1)
    p = counts / max(1.0, counts.sum())
    module.token_weight.copy_(torch.tensor(a / (a + p), dtype=module.token_weight.dtype))


def train_encoder(module, tok, chunks: list[dict], *, steps: int, batch_size: int, lr: float, max_tokens: int,
                  temperature: float, seed: int, emit: Emitter, stop: StopFlag | None = None) -> list[dict]:
    """InfoNCE on (query, chunk) pairs from ``chunks``; returns the loss history."""
    import torch

    from .index import DenseEncoder, dense_text

    torch.manual_seed(seed)
    rng = random.Random(seed)
    enc = DenseEncoder(module, tok, max_tokens)
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)))
    history, t0 = [], time.time()
    pool = [c for c in chunks if len(c["text"]) >= 20]
    for step in range(1, steps + 1):
        if stop is not None:
            stop.check()
        batch = rng.sample(pool, min(batch_size, len(pool)))
        q = module(*enc.batch([dense_text(make_query(c["text"], rng)) for c in batch]))
        d = module(*enc.batch([c["text"] for c in batch]))
        logits = q @ d.T / temperature
        target = torch.arange(len(batch))
        loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        acc = float((logits.argmax(1) == target).float().mean())
        history.append({"step": step, "loss": round(loss.item(), 4), "in_batch_acc": round(acc, 3)})
        emit.emit("log", step=step, steps=steps, loss=loss.item(), in_batch_acc=acc, seconds=time.time() - t0)
    module.eval()
    return history
