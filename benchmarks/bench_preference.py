"""DPO on a CPU, side by side in one run: trl's DPOTrainer with its own fused LM head (every position scored, prompt
and padding included, as trl does without Triton) vs the head that scores only the answers' tokens
(``puyu_lab.preference.lmhead``) — same model, pairs, seed and steps; seconds per step and the logged losses
compared. The model is a quick-preset base pretrained here; the pairs are real reviews (prompt: a review's start,
chosen: its own continuation, rejected: another review's).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

STEPS = 20


def main() -> str:
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from puyu_lab.data.pipeline import load_corpus
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.preference.lmhead import compact_trainer_heads
    from puyu_lab.workspace import Workspace
    from common import tiny_base

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ws = Workspace(d / "ws")
        tiny_base(ws, 60)
        src = ws.get("model/base").path
        texts = [r["text"] for r in load_corpus(ws, "train").to_list() if len(r["text"]) > 120][:400]
        rows = [{"prompt": t[:40 + i % 60], "chosen": t[40 + i % 60:140 + i % 60],
                 "rejected": texts[(i + 7) % len(texts)][40:100 + i % 80]} for i, t in enumerate(texts)]
        tok = load_tokenizer(src)
        runs = {}
        for name in ("trl's fused head (every position)", "answers' tokens only (lmhead)"):
            args = DPOConfig(output_dir=str(d / "out"), report_to="none", use_cpu=True, per_device_train_batch_size=8,
                             max_steps=STEPS, logging_steps=1, save_strategy="no", seed=0, max_length=256,
                             disable_tqdm=True, bf16=False, activation_checkpointing=False)
            trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(src)), args=args,
                                 train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
            if "lmhead" in name:
                assert compact_trainer_heads(trainer)
            t = time.perf_counter()
            trainer.train()
            s = time.perf_counter() - t
            runs[name] = (s, [h["loss"] for h in trainer.state.log_history if "loss" in h])
    (s0, l0), (s1, l1) = runs.values()
    diff = max(abs(float(a) - float(b)) for a, b in zip(l0, l1))
    lines = [f"DPO, quick-preset base (60 pretraining steps), {len(rows)} review pairs, batch 8, {STEPS} steps, fp32",
             f"{'head':38s} {'s/step':>8s} {'speed-up':>9s} {'last loss':>10s}"]
    for name, (s, losses) in runs.items():
        lines.append(f"{name:38s} {s / STEPS:8.3f} {s0 / s:8.2f}× {float(losses[-1]):10.4f}")
    lines.append(f"max |Δ loss| over the {len(l0)} logged steps: {diff:.2e}")
    return "\n".join(lines)
