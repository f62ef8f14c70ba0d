"""04 XTuner DPO Preference: DPO / ORPO on held-out preference pairs."""
from __future__ import annotations

import json

from ...artifacts import DPO_MODEL
from ..core import Outcome, check, pct

LAB = "04_preference.ipynb"
ORPO_MODEL = "model/orpo"


def _acc(ctx, name: str, when: str) -> tuple[int, int]:
    """Pairs whose chosen answer scores above the rejected one (recomputed from the stored log-probs)."""
    rows = [json.loads(l) for l in ctx.get(name).file("heldout_scores.jsonl").read_text(encoding="utf-8").splitlines()
            if l.strip()]
    n = sum(r[when]["logp_chosen"] > r[when]["logp_rejected"] for r in rows)
    return n, len(rows)


@check("preference.dpo", LAB, "DPO 胜过 SFT", "DPO beats SFT on held-out pairs", needs=(DPO_MODEL,),
       verifies="model/dpo ranks the chosen answer above the rejected one on more held-out pairs than the SFT "
                "model it started from (recomputed from heldout_scores.jsonl)",
       hint="train longer: raise the time budget in lab 04 (`cfg = replace(cfg, budget_s=70)`) or `cfg.learning_rate`",
       hint_zh="训练更久：在实验 04 中提高时间预算（`cfg = replace(cfg, budget_s=70)`），或调高 `cfg.learning_rate`")
def dpo(ctx):
    b, n = _acc(ctx, DPO_MODEL, "before")
    a, _ = _acc(ctx, DPO_MODEL, "after")
    if not n:
        return Outcome(False, "no held-out pairs")
    return Outcome(a > b, f"SFT {b / n:.1%} → DPO {pct(a / n, a, n)}", value=a / n,
                   claimed=ctx.get(DPO_MODEL).metrics.get("heldout_accuracy"))


@check("preference.orpo", LAB, "ORPO 已运行", "ORPO ran", needs=(ORPO_MODEL,),
       verifies="model/orpo was trained (steps > 0) and scored on the held-out pairs",
       hint="run the ORPO cell of lab 04",
       hint_zh="运行实验 04 中的 ORPO 单元格")
def orpo(ctx):
    art = ctx.get(ORPO_MODEL)
    a, n = _acc(ctx, ORPO_MODEL, "after")
    steps = art.metrics.get("steps") or 0
    return Outcome(steps > 0 and n > 0, f"{steps} steps, {pct(a / max(1, n), a, n)}", value=a / max(1, n),
                   claimed=art.metrics.get("heldout_accuracy"))
