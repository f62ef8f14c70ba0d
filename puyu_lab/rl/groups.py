"""A few GRPO groups sampled and scored outside training: what the lab shows before a run, to see whether a policy
gives GRPO anything to learn from.

GRPO's advantage is a completion's reward minus its group's mean, divided by the group's spread. A group whose
completions all score the same — all wrong, or all right — has advantage 0 everywhere and moves nothing. On the
learner's own quick model every tool question's group fails alike (it cannot copy the question's numbers into a
call); on the course assistant, asked in a phrasing it was not taught, the group disagrees. The sampling is the
model layer's (``generate`` with a temperature and a seed per completion), the scoring the stage's own rewards.
"""
from __future__ import annotations

import statistics

from .rewards import reward_set


def sample_groups(model, tasks: list[dict], num_generations: int = 8, *, reward: str = "checked",
                  temperature: float = 1.0, max_new_tokens: int = 48, seed: int = 0, stop_flag=None) -> list[dict]:
    """For each task (``prompt`` messages, ``kind``, ``gold``, ``question``): ``num_generations`` completions
    sampled from ``model`` (a :mod:`puyu_lab.models` backend) with the protocol's markers kept, each scored by the
    reward ``reward``; per group the rewards, their mean and standard deviation (trl's, unbiased)."""
    fns, weights = reward_set(reward)
    out = []
    for t in tasks:
        texts = [model.generate(t["prompt"], max_new_tokens=max_new_tokens, temperature=temperature, keep_special=True,
                                seed=seed + i, stop_flag=stop_flag).text for i in range(num_generations)]
        cols = {"kind": [t["kind"]] * len(texts), "gold": [str(t["gold"])] * len(texts)}
        parts = {f.__name__: f(texts, **cols) for f in fns}
        totals = [sum(w * parts[f.__name__][i] for f, w in zip(fns, weights)) for i in range(len(texts))]
        out.append({"question": t["question"], "kind": t["kind"], "gold": t["gold"], "completions": texts,
                    "rewards": totals, "parts": parts, "mean": statistics.fmean(totals),
                    "std": statistics.stdev(totals) if len(totals) > 1 else 0.0})
    return out
