"""A GRPO run's figures recomputed from its saved completions (``samples.jsonl``), without trl or a model: what a
report-card check compares with the figures trl logged (the manifest's ``per_step``)."""
from __future__ import annotations

import statistics


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0  # torch.std's default, as trl takes it (unbiased)


def per_step(samples: list[dict]) -> list[dict]:
    """Per optimizer step: the mean reward; its spread over the step's completions (trl 1.x's ``reward_std``:
    the standard deviation of the whole batch) and within groups (``group_std``: the mean of each group's standard
    deviation, the spread GRPO's advantages are made of); the share of groups with no spread, which teach nothing
    (trl's ``frac_reward_zero_std``); the share of completions whose answer was correct (checked runs), and of the tool
    questions' alone (``tool_correct``: the mean reward mixes kinds whose best score differs, 1.5 with a call and 1.0
    without, so it moves with the step's draw of questions); the share
    of no-tool questions answered with a call."""
    by_step: dict[int, list[dict]] = {}
    for s in samples:
        by_step.setdefault(s["step"], []).append(s)
    out = []
    for step in sorted(by_step):
        rows = by_step[step]
        groups: dict[int, list[float]] = {}
        for r in rows:
            groups.setdefault(r["group"], []).append(r["reward"])
        stds = [_std(g) for g in groups.values()]
        notool = [r for r in rows if r["kind"] == "notool"]
        correct = [r["rewards"]["answer_correct"] for r in rows if "answer_correct" in r["rewards"]]
        tool = [r["rewards"]["answer_correct"] for r in rows if "answer_correct" in r["rewards"] and r["kind"] != "notool"]
        out.append({"step": step, "reward": sum(r["reward"] for r in rows) / len(rows),
                    "reward_std": _std([r["reward"] for r in rows]), "group_std": sum(stds) / len(stds),
                    "frac_reward_zero_std": sum(s == 0 for s in stds) / len(stds),
                    "correct": sum(correct) / len(correct) if correct else None,
                    "tool_correct": sum(tool) / len(tool) if tool else None,
                    "notool_called": (sum("<|action_start|>" in r["completion"] for r in notool) / len(notool)
                                      if notool else None)})
    return out


def thirds(steps: list[dict], key: str) -> tuple[float | None, float | None]:
    """``key``'s mean over the first and the last third of the steps that have it (``None``, ``None`` where none
    does): how the lab and its checks read a run's start and end."""
    rows = [r for r in steps if r.get(key) is not None]
    if not rows:
        return None, None
    k = max(1, len(rows) // 3)
    return sum(r[key] for r in rows[:k]) / k, sum(r[key] for r in rows[-k:]) / k


def agree(manifest_metrics: dict, samples: list[dict], tol: float = 1e-4) -> list[str]:
    """Where trl's logged per-step reward, reward_std and frac_reward_zero_std differ from the ones recomputed from ``samples`` (empty:
    the figures hold)."""
    mine = {r["step"]: r for r in per_step(samples)}
    bad = []
    for row in manifest_metrics.get("per_step", []):
        r = mine.get(row["step"])
        if r is None:
            bad.append(f"step {row['step']}: no saved completions")
            continue
        for k in ("reward", "reward_std", "frac_reward_zero_std"):
            if row.get(k) is not None and abs(row[k] - r[k]) > tol * max(1.0, abs(r[k])):
                bad.append(f"step {row['step']}: {k} logged {row[k]:.6f}, recomputed {r[k]:.6f}")
    return bad
