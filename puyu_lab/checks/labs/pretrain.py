"""02 InternLM-Train Pretrain: the tokenizer and the base model trained from scratch."""
from __future__ import annotations

import json

from ...artifacts import BASE, TOKENIZER
from ..core import Outcome, check

LAB = "02_pretrain.ipynb"
LOSS_FALL = 0.30  # the held-out loss must fall by at least this share


def _evals(ctx):
    curve = json.loads(ctx.get(BASE).file("curve.json").read_text(encoding="utf-8"))
    return [r["eval_loss"] for r in curve if "eval_loss" in r]


@check("pretrain.loss", LAB, "预训练损失下降", "Held-out loss fell", needs=(BASE,),
       verifies="model/base: the last held-out loss of the training curve is at least 30 % below the first",
       hint="train longer: raise the time budget in lab 02 (`cfg = replace(cfg, budget_s=180)`) and rerun pretraining",
       hint_zh="训练更久：在实验 02 中提高时间预算（`cfg = replace(cfg, budget_s=180)`），然后重新预训练",
       camp="全链路开源体系: InternLM-Train")
def loss(ctx):
    ev = _evals(ctx)
    if len(ev) < 2:
        return Outcome(False, f"{len(ev)} evaluation(s) in curve.json")
    first, last = ev[0], ev[-1]
    # 30 %: a full schedule of the quick floor's steps (QUICK_MIN_STEPS, 200: a budget never buys fewer) reached 32.9 %;
    # the margin is the numerics' (bf16 or fp32) and the corpus a learner cleaned
    return Outcome(last <= first * (1 - LOSS_FALL), f"{first:.2f} → {last:.2f} ({1 - last / first:.0%} lower)",
                   value=last, claimed=ctx.get(BASE).metrics.get("eval_loss"))


@check("pretrain.samples", LAB, "生成像中文", "Samples read like Chinese", needs=(BASE,),
       verifies="model/base's samples after training are ≥ 30 % Chinese characters with ≥ 2 function characters (的是在了和)",
       hint="the model has not learned the language yet: train longer or check that `corpus/clean` is mostly Chinese",
       hint_zh="模型还没有学会这门语言：训练更久，或检查 `corpus/clean` 是否以中文为主")
def samples(ctx):
    s = json.loads(ctx.get(BASE).file("samples.json").read_text(encoding="utf-8"))
    after = "".join(s.get("after", {}).values())
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in after) / max(1, len(after))
    fn = sum(after.count(c) for c in "的是在了和")
    return Outcome(cjk > 0.3 and fn >= 2, f"{cjk:.0%} Chinese, {fn} function chars", value=cjk)


@check("pretrain.tokenizer", LAB, "分词器压缩", "Tokenizer compresses", needs=(TOKENIZER, BASE),
       verifies="tokenizer/spm: > 1 Chinese character per token and a tool call in ≤ 25 tokens; model/base uses it",
       hint="retrain the tokenizer in lab 02 with the default vocabulary size (`cfg.preset.vocab_size`)",
       hint_zh="在实验 02 中用默认词表大小（`cfg.preset.vocab_size`）重新训练分词器")
def tokenizer(ctx):
    m = ctx.get(TOKENIZER).metrics
    cpt, call = m.get("chars_per_token_zh") or 0.0, m.get("tokens_per_tool_call") or 1e9
    same = (ctx.get(BASE).path / "tokenizer.model").read_bytes() == ctx.get(TOKENIZER).file("tokenizer.model").read_bytes()
    return Outcome(cpt > 1.0 and call <= 25 and same, f"{cpt:.2f} chars/token, call {call:g} tokens"
                   + ("" if same else ", model/base has another tokenizer"), value=cpt)
