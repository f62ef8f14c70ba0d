"""07 OpenCompass Evaluate: the leaderboard of the learner's own models."""
from __future__ import annotations

from collections import defaultdict

from ...artifacts import load_eval
from ..core import Outcome, check, joined, pct, say

LAB = "07_eval.ipynb"
CAMP = "基础岛: OpenCompass 评测书生大模型实践"
RUN = "eval/chain"


def _sample_score(s: dict, choice: bool = True) -> float | None:
    """One sample's score: a choice task's (``choice``) from its stored log-likelihoods (argmax = gold), otherwise the
    sample's own score; ``None`` for a perplexity row."""
    lls = s.get("lls")
    if lls and choice:
        return float(max(range(len(lls)), key=lambda j: lls[j]) == s["gold"])
    if "score" in s:
        return float(s["score"])
    return None


def _scores(ctx) -> dict:
    """model → task → (correct, n), recomputed from samples.jsonl: choice tasks from the stored
    log-likelihoods (argmax = gold), generation tasks from each sample's score."""
    def make():
        out: dict = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
        for s in load_eval(ctx.ws, RUN)["samples"]:
            ok = _sample_score(s)
            if ok is None:
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
        return Outcome(False, say(f"{RUN} 里没有 base/sft 的 {task} 结果", f"no base/sft {task} rows in {RUN}"))
    (bc, bn), (sc_, sn) = sc["base"][task], sc["sft"][task]
    b, s = bc / max(1, bn), sc_ / max(1, sn)
    return Outcome(s > b, f"base {b:.1%} → SFT {pct(s, int(sc_), sn)}", value=s, claimed=_claimed(ctx, "sft", task))


@check("eval.models", LAB, "排行榜比较基座与微调", "Leaderboard compares base and SFT", needs=(RUN,),
       verifies=f"{RUN} scores at least model/base and model/sft on at least 3 tasks each",
       verifies_zh='eval/chain 至少评测了 model/base 和 model/sft，每个模型至少 3 项任务',
       hint="run labs 02 and 03, then lab 07 to the end: it scores `model/base` and `model/sft` (and `model/dpo`, "
            "`model/orpo` when they exist)",
       hint_zh="先运行实验 02 和 03，再把实验 07 运行到底：它会评测 `model/base` 和 `model/sft`"
               "（若已存在，还有 `model/dpo`、`model/orpo`）", camp=CAMP)
def models(ctx):
    m = ctx.get(RUN).metrics
    ok = all(isinstance(m.get(x), dict) and len(m[x]) >= 3 for x in ("base", "sft"))
    n_tasks = max((len(v) for v in m.values()), default=0)
    return Outcome(ok, say(f"模型 {'、'.join(sorted(m))}；任务 {n_tasks} 个", f"models {', '.join(sorted(m))}; tasks {n_tasks}"))


@check("eval.selfcog", LAB, "微调学会了名字", "SFT learned its name", needs=(RUN,),
       verifies="self-cognition score of model/sft above model/base (recomputed from the samples)",
       verifies_zh='model/sft 的自我认知得分高于 model/base（由样本重新计算）',
       hint="fine-tune again (lab 03): the SFT model should answer with its name",
       hint_zh="重新微调（实验 03）：微调后的 SFT 模型应当说出自己的名字", camp=CAMP)
def selfcog(ctx):
    return _gain(ctx, "selfcog", "score")


@check("eval.sentiment", LAB, "微调提升情感分类", "SFT helps on sentiment", needs=(RUN,),
       verifies="sentiment accuracy of model/sft above model/base (recomputed: argmax of the stored log-likelihoods)",
       verifies_zh='model/sft 的情感分类准确率高于 model/base（重新计算：取存下的对数似然的 argmax）',
       hint="the SFT data needs its sentiment instructions (`data.sentiment_max` in lab 03)",
       hint_zh="SFT 数据需要包含情感分类指令（实验 03 中的 `data.sentiment_max`）", camp=CAMP)
def sentiment(ctx):
    return _gain(ctx, "sentiment", "acc")


@check("eval.preference", LAB, "DPO 提升偏好对排序", "DPO ranks held-out pairs better", needs=(RUN,),
       verifies="on the pref_* tasks pooled, model/dpo ranks the chosen answer first more often than model/sft",
       verifies_zh='把 pref_* 任务合在一起，model/dpo 把 chosen 排第一的次数多于 model/sft',
       hint="run lab 04 (preference) and then lab 07 again so the leaderboard holds `model/dpo`",
       hint_zh="先运行实验 04（偏好对齐），再重新运行实验 07，让排行榜包含 `model/dpo`")
def preference(ctx):
    sc = _scores(ctx)
    if "dpo" not in sc:
        return Outcome(False, say("排行榜上没有 model/dpo", "no model/dpo on the leaderboard"))
    tot = lambda m: [sum(v[i] for t, v in sc[m].items() if t.startswith("pref_")) for i in (0, 1)]  # noqa: E731
    (s, n), (d, n2) = tot("sft"), tot("dpo")
    if not n or not n2:
        return Outcome(False, say("SFT 和 DPO 都没有 pref_* 任务的结果", "no pref_* tasks for SFT and DPO"))
    return Outcome(d / n2 > s / n, f"SFT {s / n:.1%} → DPO {pct(d / n2, int(d), int(n2))}", value=d / n2)


# ---- 作业 homework -----------------------------------------------------------------------------------------------
HW_TASK = "eval/hw-my-task"  # 作业 1: a task of the learner's own, scored by the eval engine into a named variant
HW_SAMPLE = "eval/hw-sample-size"  # 作业 2: built-in tasks at a larger sample size
HW_MIN_DOCS = 10
BUILTIN_TASKS = ("news_ppl", "sentiment", "selfcog", "dialog", "arithmetic", "tool_use")  # and pref_<source>


def _per_doc(ctx, name: str) -> dict:
    """model → task → each document's score in order, recomputed where the samples allow: a choice task in lm-eval's
    mode from the stored log-likelihoods (argmax = gold), otherwise the sample's own score; perplexity rows left out."""
    def make():
        art = ctx.get(name)
        modes = {t: v.get("mode", "ll") for t, v in art.params.get("tasks", {}).items()}
        out: dict = defaultdict(lambda: defaultdict(list))
        for s in load_eval(ctx.ws, name)["samples"]:
            ok = _sample_score(s, choice=modes.get(s["task"], "ll") == "ll")
            if ok is None:
                continue
            out[s["model"]][s["task"]].append((s.get("doc_id", 0), ok))
        return {m: {t: [v for _, v in sorted(rows)] for t, rows in by.items()} for m, by in out.items()}
    return ctx.cached(f"per_doc:{name}", make)


def _paired(base: list[float], sft: list[float]) -> tuple[float, float]:
    """SFT − base over the same documents: the mean difference and its 95 % half-interval (1.96 standard errors
    of the per-document differences)."""
    import math

    d = [f - b for b, f in zip(base, sft)]
    if len(d) < 2:
        return (d[0] if d else 0.0), float("inf")
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return mean, 1.96 * sd / math.sqrt(len(d))


@check("eval.hw_task", LAB, "自己的评测集", "An eval task of your own", needs=(HW_TASK,), homework="basic",
       verifies=f"{HW_TASK} holds a task that is not built in, with ≥ {HW_MIN_DOCS} documents, answered by model/base "
                "and model/sft (a choice task's accuracy recomputed from the stored log-likelihoods; its gold answers "
                "not all the same option)",
       verifies_zh=f"{HW_TASK} 中有一个不属于内置任务的评测任务，至少 {HW_MIN_DOCS} 个样本，model/base 和 model/sft 都作答过"
                   "（选择题的正确率由保存的对数似然重新计算；标准答案不能全是同一个选项）",
       hint=f"run the first 作业 cell of lab 07 (an eval task of your own): write at least {HW_MIN_DOCS} samples of your own "
            "in `my_reviews` (both labels), then run it — it saves `eval/hw-my-task`",
       hint_zh=f"运行实验 07 的作业 1 单元格（你自己的评测集）：在 `my_reviews` 里写至少 {HW_MIN_DOCS} 条你自己的样本"
               "（正面和负面都要有），再运行——它会保存 `eval/hw-my-task`", camp=CAMP)
def hw_task(ctx):
    tasks = ctx.get(HW_TASK).params.get("tasks", {})
    own = [t for t in tasks if t not in BUILTIN_TASKS and not t.startswith("pref_")]
    if not own:
        return Outcome(False, say(f"{HW_TASK} 里只有内置任务（{', '.join(tasks) or '无'}）",
                                 f"only built-in tasks in {HW_TASK} ({', '.join(tasks) or 'none'})"))
    name = own[0]
    if tasks[name].get("kind") == "perplexity":  # bits per byte, recomputed from each document's log-likelihood
        import math

        rows: dict = defaultdict(lambda: [0.0, 0, 0])
        for s in load_eval(ctx.ws, HW_TASK)["samples"]:
            if s["task"] == name and "ll" in s:
                rows[s["model"]][0] += s["ll"]
                rows[s["model"]][1] += s["bytes"]
                rows[s["model"]][2] += 1
        bpb = {m: -ll / max(1, nb) / math.log(2) for m, (ll, nb, _) in rows.items()}
        n = rows["sft"][2] if "sft" in rows else 0
        figure = say(f"{name}（{n} 个）：" + " · ".join(f"{m} {v:.3f} 比特/字节" for m, v in bpb.items()),
                     f"{name} ({n}): " + " · ".join(f"{m} {v:.3f} bits/byte" for m, v in bpb.items()))
        ok = "base" in bpb and "sft" in bpb and n >= HW_MIN_DOCS
        return Outcome(ok, figure if ok else joined(figure, say(f"——base 和 SFT 都要评测，至少 {HW_MIN_DOCS} 个样本",
                                                                f" — base and SFT, {HW_MIN_DOCS} samples at least")),
                       value=round(bpb["sft"], 4) if "sft" in bpb else None,
                       claimed=ctx.get(HW_TASK).metrics.get("sft", {}).get(name))
    per = _per_doc(ctx, HW_TASK)
    missing = [m for m in ("base", "sft") if name not in per.get(m, {})]
    if missing:
        return Outcome(False, say(f"{name}：{'、'.join(missing)} 没有作答", f"{name}: not answered by {', '.join(missing)}"))
    n = len(per["sft"][name])
    accs = {m: sum(by[name]) / len(by[name]) for m, by in per.items() if by.get(name)}
    board = " · ".join(f"{m} {a:.0%}" for m, a in accs.items())
    figure = say(f"{name}（{n} 个）：{board}", f"{name} ({n}): {board}")
    if n < HW_MIN_DOCS:
        return Outcome(False, joined(figure, say(f"——样本太少，至少要 {HW_MIN_DOCS} 个",
                                                 f" — too few samples, {HW_MIN_DOCS} at least")))
    if tasks[name].get("kind") == "choice":
        golds = {s["gold"] for s in load_eval(ctx.ws, HW_TASK)["samples"] if s["task"] == name and s["model"] == "sft"}
        if len(golds) < 2:
            return Outcome(False, joined(figure, say("——标准答案全是同一个选项：它测的是偏向，不是能力",
                                                     " — every gold answer is the same option: that measures a bias, "
                                                     "not a skill")))
    claimed = ctx.get(HW_TASK).metrics.get("sft", {}).get(name)
    return Outcome(True, figure, value=round(accs["sft"], 4), claimed=claimed)


@check("eval.hw_sample", LAB, "差距是真的吗：样本量与置信区间", "Is the gap real? Sample size and the interval",
       needs=(HW_SAMPLE, RUN), homework="advanced",
       verifies=f"{HW_SAMPLE} scores model/base and model/sft on a built-in task with ≥ 2× the documents {RUN} used; "
                "the accuracies and the 95 % interval of the paired difference (SFT − base, per document) are recomputed "
                f"from the samples, beside the same interval on {RUN}",
       verifies_zh=f"{HW_SAMPLE} 在某个内置任务上用不少于 {RUN} 两倍的样本评测了 model/base 和 model/sft；"
                   f"两者的正确率和配对差值（SFT − base，逐样本相减）的 95% 区间都由样本重新计算，并与 {RUN} 上的同一区间对比",
       hint="run the second 作业 cell of lab 07 (is the gap real?) with `n_big` at least twice the chain's samples per task "
            "(`cfg.n`) — it saves `eval/hw-sample-size`",
       hint_zh="运行实验 07 的作业 2 单元格（差距是真的吗？），`n_big` 至少取链路每个任务样本数（`cfg.n`）的两倍——"
               "它会保存 `eval/hw-sample-size`", camp=CAMP)
def hw_sample(ctx):
    big, chain = _per_doc(ctx, HW_SAMPLE), _per_doc(ctx, RUN)
    found = []
    for task in BUILTIN_TASKS:
        if all(task in big.get(m, {}) and task in chain.get(m, {}) for m in ("base", "sft")):
            n, n0 = len(big["sft"][task]), len(chain["sft"][task])
            found.append((n >= 2 * n0, task, n, n0))
    if not found:
        return Outcome(False, say(f"{HW_SAMPLE} 和 {RUN} 没有 base 与 SFT 都作答过的同一个内置任务",
                                 f"no built-in task answered by base and SFT in both {HW_SAMPLE} and {RUN}"))
    ok, task, n, n0 = max(found)
    g, h = _paired(big["base"][task], big["sft"][task])
    g0, h0 = _paired(chain["base"][task], chain["sft"][task])
    figure = say(f"{task}：SFT − base {g:+.1%} ± {h:.1%}（{n} 个样本），链路 {g0:+.1%} ± {h0:.1%}（{n0} 个）",
                f"{task}: SFT − base {g:+.1%} ± {h:.1%} ({n} samples), chain {g0:+.1%} ± {h0:.1%} ({n0})")
    if not ok:
        return Outcome(False, joined(figure, say(f"——样本数要至少是链路的两倍（≥ {2 * n0}）",
                                                 f" — needs at least twice the chain's samples (≥ {2 * n0})")))
    sft = sum(big["sft"][task]) / n
    return Outcome(True, figure, value=round(sft, 4), claimed=ctx.get(HW_SAMPLE).metrics.get("sft", {}).get(task))
