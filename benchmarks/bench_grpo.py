"""GRPO on a CPU: the seconds per step of trl's GRPOTrainer with its own generation (transformers' ``generate``,
sampling a group per prompt), through the RL stage's own ``run`` — per group size, on the lab's policy (the shipped
course assistant), with the tasks of an ``sft/data`` made here by a few fine-tune steps of a quick-preset base.

The model layer's batched generation (``generate_batch``) would plug in through trl's (experimental)
``rollout_func``, but it is not offered: it decodes greedily (no temperature, no sampling), so the
``num_generations`` completions of one prompt would be identical, every group's spread zero and every advantage
zero — GRPO would learn nothing. The table says so instead of timing it.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

STEPS = 4


def _sft(ws) -> None:
    from puyu_lab.finetune.data import SFTDataSettings
    from puyu_lab.finetune.train import SFTConfig, finetune
    from common import tiny_base

    tiny_base(ws, 30)
    data = SFTDataSettings(dialogs_zh=60, dialogs_en=20, sentiment_max=40, tool_examples=60, tool_heldout=10,
                           self_repeat=1)
    finetune(ws, SFTConfig(max_steps=10, batch_size=4, max_length=160, sample_every=0, save_every=10,
                           progress_bar=False, data=data, bf16=False), score=False)


def main() -> str:
    from puyu_lab.models.base import BatchedLocalModel
    from puyu_lab.rl import RLConfig, run
    from puyu_lab.rl.config import TaskMix
    from puyu_lab.workspace import Workspace

    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(Path(d) / "ws")
        _sft(ws)
        base = RLConfig.for_profile("quick")
        rows = []
        for g in (4, 8):
            cfg = replace(base, num_generations=g, max_steps=STEPS, budget_s=None, progress_bar=False, bf16=False,
                          tasks=TaskMix(arithmetic=16, date=8, notool=16))
            t = time.perf_counter()
            res = run(ws, cfg)
            total = time.perf_counter() - t
            length = sum(r["mean_length"] for r in res.metrics["per_step"]) / len(res.metrics["per_step"])
            rows.append((g, res.metrics["seconds"] / res.steps, total, length))
    sampling = "temperature" in BatchedLocalModel.generate_batch.__code__.co_varnames
    lines = [f"GRPO (trl {__import__('trl').__version__}), policy {base.model} (the shipped course assistant), "
             f"{base.prompts_per_step} prompts per step, ≤ {base.max_completion_tokens} completion tokens, "
             f"{STEPS} steps, fp32",
             f"{'generation':34s} {'group':>5s} {'s/step':>8s} {'run s':>7s} {'mean len':>9s}"]
    for g, per, total, length in rows:
        lines.append(f"{'trl (transformers generate)':34s} {g:5d} {per:8.2f} {total:7.1f} {length:9.1f}")
    lines.append(f"{'model layer (generate_batch)':34s}   not offered: " + (
        "it samples, but is not wired in yet" if sampling else
        "generate_batch decodes greedily (no sampling): a group's completions would be identical, its advantages "
        "zero"))
    return "\n".join(lines)
