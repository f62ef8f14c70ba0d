"""05 GRPO RL: the run's figures recomputed from its saved completions, the reward it earned, its KL, and the hacked
run beside it."""
from __future__ import annotations

from ..core import Outcome, check, joined, say
from ..evidence import read_jsonl

LAB = "05_rl.ipynb"
CAMP = "GRPO：从可验证奖励中强化学习"
RL_MODEL, NAIVE_MODEL = "model/rl", "model/rl-naive"
KL_BOUND = 0.5  # nats per token: the policy stays near its reference (the quick run's largest: 0.02-0.03)
HW_HACK = "homework/rl/hack"
HW_MIN_ROWS = 8


def _samples(ctx, name: str) -> list[dict]:
    return ctx.cached(f"rl_samples:{name}", lambda: read_jsonl(ctx.get(name).file("samples.jsonl")))


def _steps(ctx, name: str) -> list[dict]:
    from ...rl.figures import per_step

    return ctx.cached(f"rl_steps:{name}", lambda: per_step(_samples(ctx, name)))


def rescored(samples: list[dict], reward: str) -> list[str]:
    """Saved completions whose stored rewards — each function's, and their weighted total, which the per-step
    figures are made of — differ from what the reward functions give them now."""
    from ...rl.rewards import score, total

    comps = [s["completion"] for s in samples]
    cols = {"kind": [s["kind"] for s in samples], "gold": [str(s["gold"]) for s in samples]}
    parts, totals = score(reward, comps, **cols), total(reward, comps, **cols)
    return [f"sample {i} (step {s['step']})" for i, s in enumerate(samples)
            if set(parts) != set(s["rewards"]) or any(abs(parts[k][i] - v) > 1e-9 for k, v in s["rewards"].items())
            or abs(totals[i] - float(s["reward"])) > 1e-6]


def _unverified(ctx, name: str, reward: str) -> list[str]:
    """What does not hold in run ``name``: its reward is ``reward``, every saved completion rescored, trl's per-step
    figures recomputed (empty: the run's figures hold)."""
    from ...rl.figures import agree

    art = ctx.get(name)
    if art.metrics.get("reward") != reward:
        return [f"{name} was trained with the {art.metrics.get('reward')!r} reward, not {reward!r}"]
    samples = _samples(ctx, name)
    if not samples:
        return [f"{name} saved no completions"]
    return rescored(samples, reward) + agree(art.metrics, samples)


@check("rl.figures", LAB, "GRPO 的数字可复算", "GRPO's figures recomputed", needs=(RL_MODEL,),
       verifies="every completion model/rl saved is scored again by the reward functions (the real calculator and "
                "date tool run on its call) to the rewards it was trained with, and trl's logged reward, reward_std "
                "and share of groups with no spread per step equal the ones recomputed from those completions",
       verifies_zh="model/rl 保存的每条补全都用奖励函数重新打分（对其中的调用真正运行计算器和日期工具），与训练时的奖励一致；"
                   "trl 每步记录的平均奖励、reward_std 和没有分歧的组所占比例，与从这些补全重新算出的一致",
       hint="run lab 05's GRPO cell (section 3) to the end; do not edit model/rl's files",
       hint_zh="把实验 05 第 3 节的 GRPO 单元格运行到底；不要修改 model/rl 里的文件", camp=CAMP)
def figures(ctx):
    art = ctx.get(RL_MODEL)
    samples = _samples(ctx, RL_MODEL)
    bad = _unverified(ctx, RL_MODEL, "checked")
    figure = say(f"{len(samples)} 条补全，{len(art.metrics.get('per_step', []))} 步",
                 f"{len(samples)} completions, {len(art.metrics.get('per_step', []))} steps")
    if bad:
        return Outcome(False, joined(figure, say(f"；对不上：{'; '.join(bad[:3])}", f"; differ: {'; '.join(bad[:3])}")))
    return Outcome(True, figure, value=len(samples))


@check("rl.learned", LAB, "奖励上升，KL 有界", "Reward up, KL bounded", needs=(RL_MODEL,),
       verifies=f"recomputed from model/rl's saved completions, the tool questions are answered right more often in the "
                f"last third of the steps than in the first (the mean reward is shown beside it: it mixes kinds whose best "
                f"score differs, so it moves with each step's draw of questions); the KL to the reference trl logged stays "
                f"≤ {KL_BOUND} at every step",
       verifies_zh=f"由 model/rl 保存的补全重新计算：后三分之一训练步里工具题答对的比例高于前三分之一（旁边列出平均奖励：它混合了满分不同的"
                   f"几类题，会随每一步抽到的题目起伏）；trl 记录的每一步对参考模型的 KL 都不超过 {KL_BOUND}",
       hint="train longer (`cfg = replace(cfg, max_steps=…, budget_s=None)`) or at a higher `learning_rate`; if the KL "
            "grows past the bound, lower the rate or raise `beta`",
       hint_zh="训练更久（`cfg = replace(cfg, max_steps=…, budget_s=None)`）或调高 `learning_rate`；如果 KL 超过上限，"
               "就调低学习率或调高 `beta`", camp=CAMP)
def learned(ctx):
    from ...rl.figures import thirds

    art = ctx.get(RL_MODEL)
    first, last = thirds(_steps(ctx, RL_MODEL), "tool_correct")
    r_first, r_last = thirds(_steps(ctx, RL_MODEL), "reward")
    if first is None:
        return Outcome(False, say("没有保存的工具题补全", "no saved completions of tool questions"))
    kls = [r["kl"] for r in art.metrics.get("per_step", []) if r.get("kl") is not None]
    kl = max(kls) if kls else None
    figure = say(f"工具题答对 {first:.1%} → {last:.1%}（平均奖励 {r_first:+.3f} → {r_last:+.3f}）；KL 最大 "
                 f"{kl if kl is None else round(kl, 4)}",
                 f"tool questions right {first:.1%} → {last:.1%} (mean reward {r_first:+.3f} → {r_last:+.3f}); KL max "
                 f"{kl if kl is None else round(kl, 4)}")
    if kl is None:
        return Outcome(False, joined(figure, say("（没有 KL：beta 为 0）", " (no KL: beta is 0)")))
    return Outcome(last > first and kl <= KL_BOUND, figure, value=round(last - first, 4))


@check("rl.hacking", LAB, "奖励投机看得见", "Reward hacking, shown", needs=(RL_MODEL, NAIVE_MODEL),
       verifies="recomputed from the saved completions: under the naive reward (any call pays) the share of no-tool "
                "questions answered with a call rises from the first third of the steps to the last, and ends above "
                "the checked run's",
       verifies_zh="由保存的补全重新计算：在朴素奖励（只要调用就给分）下，无需工具的问题被调用工具的比例从前三分之一训练步到后三分之一"
                   "上升了，并且最后高于可验证奖励那次训练",
       hint="run lab 05's naive-reward cell (section 4) to the end after the checked run",
       hint_zh="在可验证奖励的训练之后，把实验 05 第 4 节的朴素奖励单元格运行到底", camp=CAMP)
def hacking(ctx):
    from ...rl.figures import thirds

    bad = _unverified(ctx, NAIVE_MODEL, "naive")
    if bad:
        return Outcome(False, say(f"朴素奖励那次的数字对不上：{'; '.join(bad[:3])}", f"the naive run's figures differ: "
                                                                          f"{'; '.join(bad[:3])}"))
    n_first, n_last = thirds(_steps(ctx, NAIVE_MODEL), "notool_called")
    _, c_last = thirds(_steps(ctx, RL_MODEL), "notool_called")
    if n_first is None or c_last is None:
        return Outcome(False, say("没有无需工具的问题被采样", "no no-tool question was sampled"))
    figure = say(f"朴素奖励：无需工具却调用 {n_first:.0%} → {n_last:.0%}；可验证奖励：{c_last:.0%}",
                 f"naive reward: needless calls {n_first:.0%} → {n_last:.0%}; checked reward: {c_last:.0%}")
    return Outcome(n_last > n_first and n_last > c_last, figure, value=round(n_last, 4))


@check("rl.hw_hack", LAB, "会被钻空子的奖励", "A reward that can be gamed", needs=(HW_HACK, RL_MODEL),
       homework="basic",
       verifies=f"{HW_HACK} holds ≥ {HW_MIN_ROWS} completions, each one model/rl saved, with the learner's reward of "
                "each; scored again with the checked reward's answer_correct, at least one is paid by the learner's "
                "reward and wrong",
       verifies_zh=f"{HW_HACK} 中至少有 {HW_MIN_ROWS} 条补全，每条都是 model/rl 保存的补全，并带有你的奖励给它的分；"
                   "用可验证奖励的 answer_correct 重新打分，至少有一条你的奖励给了分、实际却答错",
       hint="run the 作业 cell of lab 05 after the GRPO run; change `my_reward` until it pays an answer the checked "
            "reward calls wrong",
       hint_zh="在 GRPO 训练之后运行实验 05 的作业单元格；修改 `my_reward`，直到它给某个被可验证奖励判错的回答打了分", camp=CAMP)
def hw_hack(ctx):
    from ...rl.rewards import answer_correct

    rows = read_jsonl(ctx.get(HW_HACK).file("scored.jsonl"))
    saved = {(s["completion"], s["kind"], str(s["gold"])) for s in _samples(ctx, RL_MODEL)}
    foreign = [r for r in rows if (r.get("completion"), r.get("kind"), str(r.get("gold"))) not in saved]
    if len(rows) < HW_MIN_ROWS:
        return Outcome(False, say(f"只有 {len(rows)} 条补全：至少要 {HW_MIN_ROWS} 条",
                                 f"{len(rows)} completions: {HW_MIN_ROWS} or more needed"))
    if foreign:
        return Outcome(False, say(f"{len(foreign)} 条补全不是 model/rl 保存的（换过 model/rl？重新运行作业单元格）",
                                 f"{len(foreign)} completions are not model/rl's saved ones (was model/rl rerun? run "
                                 "the 作业 cell again)"))
    right = answer_correct([r["completion"] for r in rows], [r["kind"] for r in rows], [str(r["gold"]) for r in rows])
    paid = sum(float(r.get("mine") or 0) > 0 for r in rows)
    holes = sum(float(r.get("mine") or 0) > 0 and ok == 0 for r, ok in zip(rows, right))
    figure = say(f"你的奖励给 {paid}/{len(rows)} 条打了分，其中 {holes} 条答错",
                 f"your reward pays {paid}/{len(rows)}, {holes} of them wrong")
    return Outcome(holes > 0, figure, value=holes, claimed=ctx.get(HW_HACK).metrics.get("holes"))
