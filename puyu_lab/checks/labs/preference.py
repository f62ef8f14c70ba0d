"""04 XTuner DPO Preference: DPO / ORPO on held-out preference pairs."""
from __future__ import annotations

from ...artifacts import DPO_MODEL
from ..core import Outcome, check, joined, pct, say
from ..evidence import read_json, read_jsonl, stale, unequal_steps

LAB = "04_preference.ipynb"
ORPO_MODEL = "model/orpo"


def _acc(ctx, name: str, when: str) -> tuple[int, int]:
    """Pairs whose chosen answer scores above the rejected one (recomputed from the stored log-probs)."""
    rows = read_jsonl(ctx.get(name).file("heldout_scores.jsonl"))
    return sum(_right(r[when]) for r in rows), len(rows)


def _right(score: dict) -> bool:
    """Whether a pair's score ranks its chosen answer above its rejected one."""
    return float(score["logp_chosen"]) > float(score["logp_rejected"])


@check("preference.dpo", LAB, "DPO 胜过 SFT", "DPO beats SFT on held-out pairs", needs=(DPO_MODEL,),
       verifies="model/dpo ranks the chosen answer above the rejected one on more held-out pairs than the SFT "
                "model it started from (recomputed from heldout_scores.jsonl)",
       verifies_zh='在留出的偏好对上，model/dpo 把 chosen 排在 rejected 之前的次数多于它出发时的 SFT 模型（由 heldout_scores.jsonl 重新计算）',
       hint="train longer: raise the time budget in lab 04 (`cfg = replace(cfg, budget_s=70)`) or `cfg.learning_rate`",
       hint_zh="训练更久：在实验 04 中提高时间预算（`cfg = replace(cfg, budget_s=70)`），或调高 `cfg.learning_rate`")
def dpo(ctx):
    b, n = _acc(ctx, DPO_MODEL, "before")
    a, _ = _acc(ctx, DPO_MODEL, "after")
    if not n:
        return Outcome(False, say("没有留出偏好对", "no held-out pairs"))
    return Outcome(a > b, f"SFT {b / n:.1%} → DPO {pct(a / n, a, n)}", value=a / n,
                   claimed=ctx.get(DPO_MODEL).metrics.get("heldout_accuracy"))


@check("preference.orpo", LAB, "ORPO 已运行", "ORPO ran", needs=(ORPO_MODEL,),
       verifies="model/orpo was trained (steps > 0) and scored on the held-out pairs",
       verifies_zh='model/orpo 确实训练过（steps > 0），并在留出偏好对上打过分',
       hint="run the ORPO cell of lab 04",
       hint_zh="运行实验 04 中的 ORPO 单元格")
def orpo(ctx):
    art = ctx.get(ORPO_MODEL)
    a, n = _acc(ctx, ORPO_MODEL, "after")
    steps = art.metrics.get("steps") or 0
    acc = pct(a / max(1, n), a, n)
    return Outcome(steps > 0 and n > 0, say(f"{steps} 步，{acc}", f"{steps} steps, {acc}"), value=a / max(1, n),
                   claimed=art.metrics.get("heldout_accuracy"))


# ---- 作业 Homework: the learner's own pairs scored by both models, and DPO's β -------------------------------------
PAIRS = "homework/preference/pairs"
BETA = "homework/preference/beta"
SFT_MODEL = "model/sft"
PREF_DATA = "pref/data"
MIN_PAIRS = 4
OTHER_TEXTS = say("打分的是别的文本", "scores of other texts")


def _tokenizer(ctx):
    from ...models.tokenizer import load_tokenizer

    return ctx.cached("sft_tokenizer", lambda: load_tokenizer(ctx.get(SFT_MODEL).path))


def _lengths(ctx, pairs: list[dict], max_length: int) -> list[tuple[int, int]]:
    """The (chosen, rejected) token counts model/sft's tokenizer makes of ``pairs`` (as trl cuts them)."""
    from ...preference.scoring import encode_pair

    tok = _tokenizer(ctx)
    return [(len(c), len(r)) for _, c, r in (encode_pair(tok, p, max_length) for p in pairs)]


def _scored_lengths(score: dict) -> tuple[int, int]:
    """The (chosen, rejected) token counts a pair's score says it scored."""
    return int(score["chosen_tokens"]), int(score["rejected_tokens"])


def _lengths_match(ctx, pairs: list[dict], scores: list[dict], max_length: int) -> list[str]:
    """The pairs whose scored token counts are not what model/sft's tokenizer makes of them (as trl cuts them)."""
    return [str(p["prompt"][-1]["content"])[:30]
            for p, n, s in zip(pairs, _lengths(ctx, pairs, max_length), scores) if n != _scored_lengths(s)]


@check("preference.hw_pairs", LAB, "作业：你自己的偏好对", "Homework: preference pairs of your own", homework="basic",
       needs=(PAIRS, SFT_MODEL, DPO_MODEL, PREF_DATA),
       verifies=f"homework/preference/pairs: at least {MIN_PAIRS} valid pairs of your own (the pair-file check passes "
                "every line; no prompt of pref/data), each scored by the current model/sft and model/dpo; the token "
                "counts recount with model/sft's tokenizer and the share ranked right by each model is recounted from "
                "the stored log-probabilities",
       verifies_zh=f"homework/preference/pairs：至少 {MIN_PAIRS} 个你自己写的合格偏好对（偏好对文件检查逐行通过；提示词都不在 "
                   "pref/data 里），每一对都由当前的 model/sft 和 model/dpo 打分；词元数用 model/sft 的分词器重新切分核对，"
                   "两个模型各自排对的比例由成绩单从保存的对数概率重新统计",
       hint=f"run the 作业 cell `preference.hw_pairs` at the end of lab 04 with {MIN_PAIRS} pairs or more that are your "
            "own (`my_pairs`)",
       hint_zh=f"运行实验 04 末尾的作业单元格 `preference.hw_pairs`，写至少 {MIN_PAIRS} 个你自己的偏好对（`my_pairs`）")
def hw_pairs(ctx):
    from ...preference.pairs import load_custom_pairs, prompt_key

    if out := stale(ctx, PAIRS, (SFT_MODEL, DPO_MODEL), say("打分用的是较早的模型", "scored by an earlier model")):
        return out
    art = ctx.get(PAIRS)
    good, bad = load_custom_pairs(art.file("pairs.jsonl"))
    if bad:
        return Outcome(False, say(f"pairs.jsonl 里有 {len(bad)} 行有问题", f"{len(bad)} bad line(s) in pairs.jsonl"),
                       detail=say("；".join(p.zh for p in bad[:3]), "; ".join(p.en for p in bad[:3])))
    if len(good) < MIN_PAIRS:
        return Outcome(False, say(f"只有 {len(good)} 对", f"{len(good)} pair(s)"),
                       detail=say(f"至少写 {MIN_PAIRS} 对", f"write at least {MIN_PAIRS}"))
    data = ctx.get(PREF_DATA)
    chain = {prompt_key(p) for part in ("train", "heldout") for p in read_jsonl(data.file(f"{part}.jsonl"))}
    old = [p["prompt"][-1]["content"][:30] for p in good if prompt_key(p) in chain]
    if old:
        return Outcome(False, say(f"{len(old)} 个提示词出自 pref/data", f"{len(old)} prompt(s) from pref/data"),
                       detail=joined(say("不是你自己写的：", "not your own: "), "; ".join(old[:3])))
    scores = read_json(art, "scores.json")
    if sorted(scores) != sorted(["model/sft", "model/dpo"]) or any(len(s) != len(good) for s in scores.values()):
        return Outcome(False, say("scores.json：model/sft 和 model/dpo 没有给每一对各打一个分",
                                  "scores.json: not one score per pair for model/sft and model/dpo"))
    max_length = int(art.params.get("max_length") or 256)
    off = [t for m in ("model/sft", "model/dpo") for t in _lengths_match(ctx, good, scores[m], max_length)]
    if off:
        return Outcome(False, OTHER_TEXTS, detail=joined(say("词元数对不上：", "token counts differ for: "), "; ".join(off[:3])))
    right = {m: sum(_right(s) for s in ss) for m, ss in scores.items()}
    margin = {m: sum(float(s["logp_chosen"]) - float(s["logp_rejected"]) for s in ss) / len(ss)
              for m, ss in scores.items()}
    n = len(good)
    return Outcome(True, f"SFT {right['model/sft']}/{n} → DPO {right['model/dpo']}/{n}",
                   value=right["model/dpo"] / n, claimed=art.metrics.get("dpo_right"),
                   detail=say(f"平均差距 log p(选中) − log p(拒绝)：SFT {margin['model/sft']:+.2f}，"
                              f"DPO {margin['model/dpo']:+.2f}",
                              f"mean margin log p(chosen) − log p(rejected): SFT {margin['model/sft']:+.2f}, "
                              f"DPO {margin['model/dpo']:+.2f}"))


def _heldout(ctx) -> list[dict]:
    return ctx.cached("pref_heldout", lambda: read_jsonl(ctx.get(PREF_DATA).file("heldout.jsonl")))


@check("preference.hw_beta", LAB, "作业：DPO 的 β", "Homework: DPO's β", homework="advanced",
       needs=(BETA, SFT_MODEL, PREF_DATA, DPO_MODEL),
       verifies="homework/preference/beta: DPO runs from the current model/sft on the current pref/data at two β or "
                "more, the same number of steps each, every run scoring every held-out pair (token counts recounted "
                "with model/sft's tokenizer); each run's held-out accuracy and how far its log-probabilities moved from "
                "model/sft's (model/dpo's stored scores before training) are recomputed from the stored scores",
       verifies_zh="homework/preference/beta：从当前的 model/sft 出发、在当前的 pref/data 上，用至少两个 β 各跑一次 DPO，"
                   "每次步数相同，每次都给全部留出偏好对打分（词元数用 model/sft 的分词器重新切分核对）；每次的留出准确率，"
                   "以及对数概率离 model/sft（model/dpo 保存的训练前分数）走了多远，都由成绩单从保存的分数重新计算",
       hint="run the 作业 cell `preference.hw_beta` at the end of lab 04 with two β or more (`betas = [0.05, 0.5]`)",
       hint_zh="运行实验 04 末尾的作业单元格 `preference.hw_beta`，至少用两个 β（`betas = [0.05, 0.5]`）")
def hw_beta(ctx):
    from ...preference.pairs import prompt_key

    if out := stale(ctx, BETA, (SFT_MODEL, PREF_DATA, DPO_MODEL),
                    say("用较早的 model/sft 或 pref/data 训练的", "trained from an earlier model/sft or pref/data")):
        return out
    art = ctx.get(BETA)
    runs = read_json(art, "runs.json")
    betas = sorted({float(r["beta"]) for r in runs})
    if len(betas) < 2:
        return Outcome(False, say(f"只有 {len(betas)} 个 β", f"{len(betas)} β"),
                       detail=say("至少用两个 β 值各训练一次", "train at two values of β or more"))
    if out := unequal_steps(runs, say(" β 值", "β")):
        return out
    held = _heldout(ctx)
    chain = read_jsonl(ctx.get(DPO_MODEL).file("heldout_scores.jsonl"))
    if [prompt_key(p) for p in chain] != [prompt_key(p) for p in held]:
        return Outcome(False, say("model/dpo 打分的是另一批留出偏好对", "model/dpo scored other held-out pairs"),
                       detail=say("先重新运行实验 04 的 DPO，再做这道题", "run lab 04's DPO again, then this task"))
    before = [r["before"] for r in chain]
    max_length = int(art.params.get("max_length") or 256)
    lens = ctx.cached("heldout_lens", lambda: _lengths(ctx, held, max_length))
    parts = []
    for r in sorted(runs, key=lambda r: float(r["beta"])):
        sc = r["scores"]
        if len(sc) != len(held):
            return Outcome(False, say(f"β {r['beta']}：{len(held)} 对留出偏好对只打了 {len(sc)} 对",
                                      f"β {r['beta']}: {len(sc)} of {len(held)} held-out pairs scored"))
        if [_scored_lengths(s) for s in sc] != lens:
            return Outcome(False, joined(f"β {r['beta']}", say("：", ": "), OTHER_TEXTS),
                           detail=say("词元数和 pref/data 的对不上", "token counts differ from pref/data's"))
        acc = sum(_right(s) for s in sc) / len(sc)
        moved = sum(abs(float(s["logp_chosen"]) - b["logp_chosen"]) + abs(float(s["logp_rejected"]) - b["logp_rejected"])
                    for s, b in zip(sc, before)) / (2 * len(sc))
        parts.append((float(r["beta"]), acc, moved))
    sft_acc = sum(_right(b) for b in before) / len(before)
    fig = say(" · ".join(f"β {b:g}：{a:.1%}，偏移 {m:.2f}" for b, a, m in parts),
              " · ".join(f"β {b:g}: {a:.1%}, moved {m:.2f}" for b, a, m in parts))
    steps = int(runs[0]["steps"])
    return Outcome(True, fig, value=max(a for _, a, _ in parts), claimed=art.metrics.get("best_accuracy"),
                   detail=say(f"每次 {steps} 步；model/sft 在同样 {len(held)} 对上是 {sft_acc:.1%}；"
                              "偏移：选中和拒绝回答的 |Δ log p| 相对 model/sft 的平均值，单位 nats",
                              f"{steps} steps each; model/sft {sft_acc:.1%} on the same {len(held)} pairs; "
                              "moved: mean |Δ log p| of chosen and rejected from model/sft, in nats"))
