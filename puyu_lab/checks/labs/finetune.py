"""03 XTuner Fine-tune: the self-cognition assistant (the camp's 个人小助手)."""
from __future__ import annotations

import json

from ...artifacts import SFT_DATA, SFT_MODEL
from ..core import Outcome, check, pct

LAB = "03_finetune.ipynb"
CAMP = "基础岛: XTuner 微调个人小助手认知"


def _selfcheck(ctx):
    return ctx.cached("selfcheck", lambda: json.loads(ctx.get(SFT_MODEL).file("selfcheck.json").read_text(encoding="utf-8")))


def _name(ctx) -> str:
    return ctx.get(SFT_DATA).metrics.get("assistant_name") or ctx.get(SFT_DATA).params.get("data", {}).get("assistant_name", "")


@check("finetune.selfcog", LAB, "自我认知（未见过的问法）", "Self-cognition on unseen paraphrases", needs=(SFT_MODEL, SFT_DATA),
       verifies="model/sft's answers to the held-out self-cognition paraphrases (selfcheck.json) contain the "
                "assistant's name in ≥ 90 % of them",
       hint="train longer: raise the time budget in lab 03 (`cfg = replace(cfg, budget_s=150)`)",
       hint_zh="训练更久：在实验 03 中提高时间预算（`cfg = replace(cfg, budget_s=150)`）",
       camp=CAMP)
def selfcog(ctx):
    name = _name(ctx)
    rows = _selfcheck(ctx)["selfcog"]
    if not rows or not name:
        return Outcome(False, "no held-out answers" if not rows else "no assistant name in sft/data")
    n = sum(name in r["answer"] for r in rows)
    acc = n / len(rows)
    return Outcome(acc >= 0.9, pct(acc, n, len(rows)), value=acc,
                   claimed=ctx.get(SFT_MODEL).metrics.get("selfcog_heldout_acc"))


@check("finetune.stops", LAB, "回答会自己结束", "Answers end by themselves", needs=(SFT_MODEL,),
       verifies="every held-out self-cognition answer ends before the sampling limit (the trained <|im_end|>)",
       hint="the model never learned to close its turn: check that the chat template ends turns with `<|im_end|>` "
            "and that the loss covers it (lab 03, section 2 'The chat template': the inspector shows the trained "
            "tokens in green, the closing `<|im_end|>` among them)",
       hint_zh="模型没有学会结束自己的回合：检查对话模板是否以 `<|im_end|>` 结束每一轮、损失是否覆盖了它"
               "（实验 03 第 2 节“对话模板”：检查器把参与训练的词元标成绿色，结尾的 `<|im_end|>` 也在其中）",
       camp=CAMP)
def stops(ctx):
    from transformers import PreTrainedTokenizerFast

    art = ctx.get(SFT_MODEL)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(art.file("tokenizer.json")))
    limit = json.loads(art.file("sft_config.json").read_text(encoding="utf-8")).get("sample_tokens", 40)
    lens = [len(tok(r["answer"], add_special_tokens=False)["input_ids"]) for r in _selfcheck(ctx)["selfcog"]]
    longest = max(lens, default=limit)
    return Outcome(bool(lens) and longest < limit, f"longest {longest} of {limit} tokens", value=longest)


@check("finetune.loss", LAB, "微调损失下降", "Fine-tune loss fell", needs=(SFT_MODEL,),
       verifies="model/sft's held-out loss at the end of training is below its first evaluation (curve.json)",
       hint="the fine-tune did not learn: check the learning rate (`cfg.learning_rate`) and that `sft/data` has rows",
       hint_zh="微调没有学到东西：检查学习率（`cfg.learning_rate`），并确认 `sft/data` 中有数据", camp=CAMP)
def loss(ctx):
    art = ctx.get(SFT_MODEL)
    ev = [r["eval_loss"] for r in json.loads(art.file("curve.json").read_text(encoding="utf-8")) if "eval_loss" in r]
    if len(ev) < 2:
        return Outcome(False, f"{len(ev)} evaluation(s) in curve.json")
    return Outcome(ev[-1] < ev[0], f"{ev[0]:.2f} → {ev[-1]:.2f}", value=ev[-1], claimed=art.metrics.get("eval_loss"))
