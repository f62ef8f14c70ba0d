"""03 XTuner Fine-tune: the self-cognition assistant (the camp's 个人小助手)."""
from __future__ import annotations

from ...artifacts import SFT_DATA, SFT_MODEL
from ..core import Outcome, check, joined, pct, say
from ..evidence import eval_losses, read_json, read_jsonl, stale, unequal_steps

LAB = "03_finetune.ipynb"
CAMP = "基础岛: XTuner 微调个人小助手认知"
NO_NAME = say("sft/data 里没有助手的名字", "no assistant name in sft/data")


def _selfcheck(ctx):
    return ctx.cached("selfcheck", lambda: read_json(ctx.get(SFT_MODEL), "selfcheck.json"))


def _name(ctx) -> str:
    return ctx.get(SFT_DATA).metrics.get("assistant_name") or ctx.get(SFT_DATA).params.get("data", {}).get("assistant_name", "")


@check("finetune.selfcog", LAB, "自我认知（未见过的问法）", "Self-cognition on unseen paraphrases", needs=(SFT_MODEL, SFT_DATA),
       verifies="model/sft's answers to the held-out self-cognition paraphrases (selfcheck.json) contain the "
                "assistant's name in ≥ 90 % of them",
       verifies_zh='model/sft 对留出的自我认知改写问题（selfcheck.json）的回答，≥ 90 % 含有助手的名字',
       hint="train longer: raise the time budget in lab 03 (`cfg = replace(cfg, budget_s=150)`)",
       hint_zh="训练更久：在实验 03 中提高时间预算（`cfg = replace(cfg, budget_s=150)`）",
       camp=CAMP)
def selfcog(ctx):
    name = _name(ctx)
    rows = _selfcheck(ctx)["selfcog"]
    if not rows or not name:
        return Outcome(False, say("没有留出问题的回答", "no held-out answers") if not rows else NO_NAME)
    n = sum(name in r["answer"] for r in rows)
    acc = n / len(rows)
    return Outcome(acc >= 0.9, pct(acc, n, len(rows)), value=acc,
                   claimed=ctx.get(SFT_MODEL).metrics.get("selfcog_heldout_acc"))


@check("finetune.stops", LAB, "回答会自己结束", "Answers end by themselves", needs=(SFT_MODEL,),
       verifies="every held-out self-cognition answer ends before the sampling limit (the trained <|im_end|>)",
       verifies_zh='每条留出的自我认知回答都在采样上限之前结束（靠训练出来的 <|im_end|>）',
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
    limit = read_json(art, "sft_config.json").get("sample_tokens", 40)
    lens = [len(tok(r["answer"], add_special_tokens=False)["input_ids"]) for r in _selfcheck(ctx)["selfcog"]]
    longest = max(lens, default=limit)
    return Outcome(bool(lens) and longest < limit,
                   say(f"最长 {longest} 个词元（上限 {limit}）", f"longest {longest} of {limit} tokens"), value=longest)


@check("finetune.loss", LAB, "微调损失下降", "Fine-tune loss fell", needs=(SFT_MODEL,),
       verifies="model/sft's held-out loss at the end of training is below its first evaluation (curve.json)",
       verifies_zh='model/sft 训练结束时的留出集损失低于第一次评估（curve.json）',
       hint="the fine-tune did not learn: check the learning rate (`cfg.learning_rate`) and that `sft/data` has rows",
       hint_zh="微调没有学到东西：检查学习率（`cfg.learning_rate`），并确认 `sft/data` 中有数据", camp=CAMP)
def loss(ctx):
    art = ctx.get(SFT_MODEL)
    ev = eval_losses(art)
    if len(ev) < 2:
        return Outcome(False, say(f"curve.json 里只有 {len(ev)} 次评估", f"{len(ev)} evaluation(s) in curve.json"))
    return Outcome(ev[-1] < ev[0], f"{ev[0]:.2f} → {ev[-1]:.2f}", value=ev[-1], claimed=art.metrics.get("eval_loss"))


# ---- 作业 Homework: the learner's own questions to model/sft, and LoRA ranks trained on sft/data ---------------------
PARAPHRASE = "homework/finetune/paraphrase"
LORA_RANK = "homework/finetune/lora_rank"
BASE_MODEL = "model/base"
MIN_QUESTIONS = 5  # of each kind: own paraphrases of "who are you?", own questions about something else


def _norm(question) -> str:
    """A question as it is compared: white space folded, case folded."""
    return " ".join(str(question).split()).casefold()


def _seen_prompts(ctx) -> set[str]:
    """Every user turn model/sft trained on, the questions sft/data held out and the unrelated prompts its run asked."""
    from ...contracts.dialogs import CONTROL_PROMPTS

    data = ctx.get(SFT_DATA)
    seen = {_norm(p) for p in CONTROL_PROMPTS}
    for row in read_jsonl(data.file("train.jsonl")):
        seen.update(_norm(m["content"]) for m in row["messages"] if m.get("role") == "user")
    for part in ("selfcog_heldout", "notool_heldout"):
        seen.update(_norm(row["prompt"]) for row in read_jsonl(data.file(f"{part}.jsonl")))
    return seen


@check("finetune.hw_paraphrase", LAB, "作业：用你自己的问法问助手", "Homework: ask your assistant in your own words",
       homework="basic", needs=(PARAPHRASE, SFT_MODEL, SFT_DATA),
       verifies=f"homework/finetune/paraphrase: at least {MIN_QUESTIONS} questions of your own about the assistant and "
                f"{MIN_QUESTIONS} about something else, none of them in sft/data (trained or held out) nor among the "
                "run's unrelated prompts, each answered by the current model/sft; the share of answers that name the "
                "assistant is recounted from the answers",
       verifies_zh=f"homework/finetune/paraphrase：至少 {MIN_QUESTIONS} 个你自己写的、问助手是谁的问题，和 {MIN_QUESTIONS} 个"
                   "问别的事的问题，都不在 sft/data 里（无论训练用的还是留出的），也不是训练时用来检查的无关提示词，"
                   "每个都由当前的 model/sft 作答；回答里报出助手名字的比例，由成绩单从回答重新统计",
       hint=f"run the 作业 cell `finetune.hw_paraphrase` at the end of lab 03 with {MIN_QUESTIONS} questions of each kind "
            "that are your own (`mine_self`, `mine_other`)",
       hint_zh=f"运行实验 03 末尾的作业单元格 `finetune.hw_paraphrase`，两类问题各写至少 {MIN_QUESTIONS} 个你自己的"
               "（`mine_self`、`mine_other`）")
def hw_paraphrase(ctx):
    if out := stale(ctx, PARAPHRASE, (SFT_MODEL,), say("问的是较早的 model/sft", "asked an earlier model/sft")):
        return out
    name = _name(ctx)
    rows = read_json(ctx.get(PARAPHRASE), "answers.json")
    seen = _seen_prompts(ctx)
    by = {k: [r for r in rows if r.get("kind") == k] for k in ("self", "other")}
    prompts = [_norm(r["prompt"]) for r in rows]
    old = [r["prompt"] for r, p in zip(rows, prompts) if p in seen]
    named = {k: sum(bool(name) and name in str(r.get("answer", "")) for r in v) for k, v in by.items()}
    fig = say(f"问身份 {named['self']}/{len(by['self'])} 报出 {name or '?'} · 无关问题 {named['other']}/{len(by['other'])}",
              f"{named['self']}/{len(by['self'])} named {name or '?'} · unrelated {named['other']}/{len(by['other'])}")
    if not name:
        return Outcome(False, NO_NAME)
    if old:
        return Outcome(False, say(f"{len(old)} 个问题出自 sft/data", f"{len(old)} question(s) from sft/data"),
                       detail=joined(say("不是你自己写的：", "not your own: "), "; ".join(old[:3])))
    if len(set(prompts)) != len(prompts):
        return Outcome(False, say("有一个问题问了两遍", "a question asked twice"),
                       detail=say("每个问题只写一次", "write each question once"))
    short = [k for k in ("self", "other") if len(by[k]) < MIN_QUESTIONS]
    if short:
        return Outcome(False, fig, detail=say(f"每类问题至少 {MIN_QUESTIONS} 个（{'、'.join(short)} 不够）",
                                              f"at least {MIN_QUESTIONS} questions of each kind ({', '.join(short)}: fewer)"))
    unanswered = [r["prompt"] for r in rows if not isinstance(r.get("answer"), str)]
    if unanswered:
        return Outcome(False, say(f"{len(unanswered)} 个问题没有回答", f"{len(unanswered)} question(s) without an answer"),
                       detail="; ".join(unanswered[:3]))
    rate = named["self"] / len(by["self"])
    collapse = ctx.get(SFT_MODEL).metrics.get("control_collapse")
    other = named["other"] / len(by["other"])
    if isinstance(collapse, (int, float)):
        detail = say(f"无关问题的回答里报出名字的比例：{other:.0%}（model/sft 自己的无关提示词：{collapse:.0%}）",
                     f"unrelated questions answered with the name: {other:.0%} (model/sft's own unrelated prompts: "
                     f"{collapse:.0%})")
    else:
        detail = say(f"无关问题的回答里报出名字的比例：{other:.0%}", f"unrelated questions answered with the name: {other:.0%}")
    return Outcome(True, fig, value=rate, claimed=ctx.get(PARAPHRASE).metrics.get("self_named"), detail=detail)


def _lora_width(ctx, targets: list[str]) -> tuple[int, int]:
    """(Σ in + out over model/base's linear layers whose leaf name is in ``targets``, the model's parameters), from its
    config.json alone: the model is built on the meta device (no weights are read), its nn.Linear shapes counted. A
    LoRA of rank r on those layers trains r × that sum."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    def count():
        conf = AutoConfig.from_pretrained(str(ctx.get(BASE_MODEL).path))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(conf)
        linears = [(name.rsplit(".", 1)[-1], m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        return linears, sum(p.numel() for p in model.parameters())

    linears, n = ctx.cached("base_linears", count)
    return sum(m.in_features + m.out_features for leaf, m in linears if leaf in set(targets)), n


def _si(n: float) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


@check("finetune.hw_lora_rank", LAB, "作业：LoRA 的秩", "Homework: LoRA's rank", homework="advanced",
       needs=(LORA_RANK, BASE_MODEL, SFT_DATA),
       verifies="homework/finetune/lora_rank: LoRA runs from the current model/base on the current sft/data at two "
                "ranks or more, the same number of steps each; each run's trainable parameters equal rank × Σ (in + "
                "out) over the linear layers it adapted, recounted from model/base's config; each has a held-out loss",
       verifies_zh="homework/finetune/lora_rank：从当前的 model/base 出发、在当前的 sft/data 上，用至少两种秩各跑一次 LoRA，"
                   "每次步数相同；每次的可训练参数量，都等于秩 × 它所适配的各个线性层的（输入维 + 输出维）之和——"
                   "成绩单按 model/base 的 config.json 重新计算；每次都有留出损失",
       hint="run the 作业 cell `finetune.hw_lora_rank` at the end of lab 03 with two ranks or more (`ranks = [4, 64]`)",
       hint_zh="运行实验 03 末尾的作业单元格 `finetune.hw_lora_rank`，至少用两种秩（`ranks = [4, 64]`）")
def hw_lora_rank(ctx):
    import math

    if out := stale(ctx, LORA_RANK, (BASE_MODEL, SFT_DATA),
                    say("用较早的 model/base 或 sft/data 训练的", "trained from an earlier model/base or sft/data")):
        return out
    runs = read_json(ctx.get(LORA_RANK), "runs.json")
    ranks = sorted({int(r["lora_r"]) for r in runs})
    if len(ranks) < 2:
        return Outcome(False, say(f"只有 {len(ranks)} 种秩", f"{len(ranks)} rank(s)"),
                       detail=say("至少用两种秩各训练一次", "train at two ranks or more"))
    if out := unequal_steps(runs, say("秩", "rank")):
        return out
    bad, total = [], None
    for r in runs:
        width, total = _lora_width(ctx, r["targets"])
        if not r["targets"] or int(r["trainable_parameters"]) != int(r["lora_r"]) * width:
            n_r = int(r['lora_r']) * width
            bad.append(("count", f"r={r['lora_r']}: {r['trainable_parameters']} trainable, r × {width} = {n_r}",
                        f"r={r['lora_r']}：可训练 {r['trainable_parameters']}，而 r × {width} = {n_r}"))
        loss = r.get("eval_loss")
        if loss is None or not math.isfinite(float(loss)):
            bad.append(("loss", f"r={r['lora_r']}: no held-out loss", f"r={r['lora_r']}：没有留出损失"))
    if bad:
        first = (say("可训练参数量重新计算对不上", "trainable parameters do not recount") if bad[0][0] == "count"
                 else say("没有留出损失", "no held-out loss"))
        return Outcome(False, first, detail=say("；".join(b[2] for b in bad[:3]), "; ".join(b[1] for b in bad[:3])))
    runs = sorted(runs, key=lambda r: int(r["lora_r"]))
    fig = say(" · ".join(f"r={r['lora_r']}：{_si(int(r['trainable_parameters']))}，损失 {float(r['eval_loss']):.2f}"
                         for r in runs),
              " · ".join(f"r={r['lora_r']}: {_si(int(r['trainable_parameters']))}, loss {float(r['eval_loss']):.2f}"
                         for r in runs))
    best = min(runs, key=lambda r: float(r["eval_loss"]))
    steps, share = int(runs[0]["steps"]), int(runs[-1]["trainable_parameters"]) / total
    return Outcome(True, fig, value=float(best["eval_loss"]),
                   detail=say(f"每次 {steps} 步；最大的秩训练了 model/base 全部 {_si(total)} 参数中的 {share:.1%}",
                              f"{steps} steps each; the largest rank trains {share:.1%} of model/base's {_si(total)} "
                              "parameters"))
