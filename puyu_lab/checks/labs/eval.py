"""06 OpenCompass Evaluate: the leaderboard of the learner's own models."""
from __future__ import annotations

from collections import defaultdict

from ...artifacts import load_eval
from ..core import Outcome, check, pct

LAB = "06_eval.ipynb"
CAMP = "基础岛: OpenCompass 评测书生大模型实践"
RUN = "eval/chain"


def _scores(ctx) -> dict:
    """model → task → (correct, n), recomputed from samples.jsonl: choice tasks from the stored
    log-likelihoods (argmax = gold), generation tasks from each sample's score."""
    def make():
        out: dict = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
        for s in load_eval(ctx.ws, RUN)["samples"]:
            if s.get("lls"):
                lls = s["lls"]
                ok = float(max(range(len(lls)), key=lambda j: lls[j]) == s["gold"])
            elif "score" in s:
                ok = float(s["score"])
            else:
                continue  # perplexity rows
            cell = out[s["model"]][s["task"]]
            cell[0] += ok
            cell[1] += 1
        return out
    return ctx.cached("eval", make)


def _claimed(ctx, model, task):
    m = ctx.get(RUN).metrics.get(model, {}).get(task)
    return m.get("acc", m.get("score")) if isinstance(m, dict) else m


def _gain(ctx, task: str, metric_name: str):
    sc = _scores(ctx)
    if "base" not in sc or "sft" not in sc or task not in sc["sft"] or task not in sc["base"]:
        return Outcome(False, f"no base/sft {task} rows in {RUN}")
    (bc, bn), (sc_, sn) = sc["base"][task], sc["sft"][task]
    b, s = bc / max(1, bn), sc_ / max(1, sn)
    return Outcome(s > b, f"base {b:.1%} → SFT {pct(s, int(sc_), sn)}", value=s, claimed=_claimed(ctx, "sft", task))


@check("eval.models", LAB, "排行榜比较基座与微调", "Leaderboard compares base and SFT", needs=(RUN,),
       verifies=f"{RUN} scores at least model/base and model/sft on at least 3 tasks each",
       hint="run labs 02 and 03, then lab 06 to the end: it scores `model/base` and `model/sft` (and `model/dpo`, "
            "`model/orpo` when they exist)",
       hint_zh="先运行实验 02 和 03，再把实验 06 运行到底：它会评测 `model/base` 和 `model/sft`"
               "（若已存在，还有 `model/dpo`、`model/orpo`）", camp=CAMP)
def models(ctx):
    m = ctx.get(RUN).metrics
    ok = all(isinstance(m.get(x), dict) and len(m[x]) >= 3 for x in ("base", "sft"))
    return Outcome(ok, f"models {', '.join(sorted(m))}; tasks {max((len(v) for v in m.values()), default=0)}")


@check("eval.selfcog", LAB, "微调学会了名字", "SFT learned its name", needs=(RUN,),
       verifies="self-cognition score of model/sft above model/base (recomputed from the samples)",
       hint="fine-tune again (lab 03): the SFT model should answer with its name",
       hint_zh="重新微调（实验 03）：微调后的 SFT 模型应当说出自己的名字", camp=CAMP)
def selfcog(ctx):
    return _gain(ctx, "selfcog", "score")


@check("eval.sentiment", LAB, "微调提升情感分类", "SFT helps on sentiment", needs=(RUN,),
       verifies="sentiment accuracy of model/sft above model/base (recomputed: argmax of the stored log-likelihoods)",
       hint="the SFT data needs its sentiment instructions (`data.sentiment_max` in lab 03)",
       hint_zh="SFT 数据需要包含情感分类指令（实验 03 中的 `data.sentiment_max`）", camp=CAMP)
def sentiment(ctx):
    return _gain(ctx, "sentiment", "acc")


@check("eval.preference", LAB, "DPO 提升偏好对排序", "DPO ranks held-out pairs better", needs=(RUN,),
       verifies="on the pref_* tasks pooled, model/dpo ranks the chosen answer first more often than model/sft",
       hint="run lab 04 (preference) and then lab 06 again so the leaderboard holds `model/dpo`",
       hint_zh="先运行实验 04（偏好对齐），再重新运行实验 06，让排行榜包含 `model/dpo`")
def preference(ctx):
    sc = _scores(ctx)
    if "dpo" not in sc:
        return Outcome(False, "no model/dpo on the leaderboard")
    tot = lambda m: [sum(v[i] for t, v in sc[m].items() if t.startswith("pref_")) for i in (0, 1)]  # noqa: E731
    (s, n), (d, n2) = tot("sft"), tot("dpo")
    if not n or not n2:
        return Outcome(False, "no pref_* tasks for SFT and DPO")
    return Outcome(d / n2 > s / n, f"SFT {s / n:.1%} → DPO {pct(d / n2, int(d), int(n2))}", value=d / n2)
