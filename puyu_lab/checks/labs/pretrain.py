"""02 InternLM-Train Pretrain: the tokenizer and the base model trained from scratch."""
from __future__ import annotations

from ...artifacts import BASE, CORPUS, TOKENIZER
from ..core import Outcome, check, joined, say
from ..evidence import eval_losses, read_json, stale

LAB = "02_pretrain.ipynb"
LOSS_FALL = 0.30  # the held-out loss must fall by at least this share


@check("pretrain.loss", LAB, "预训练损失下降", "Held-out loss fell", needs=(BASE,),
       verifies="model/base: the last held-out loss of the training curve is at least 30 % below the first",
       verifies_zh='model/base：训练曲线上最后一次留出集损失比第一次至少低 30 %',
       hint="train longer: raise the time budget in lab 02 (`cfg = replace(cfg, budget_s=180)`) and rerun pretraining",
       hint_zh="训练更久：在实验 02 中提高时间预算（`cfg = replace(cfg, budget_s=180)`），然后重新预训练",
       camp="全链路开源体系: InternLM-Train")
def loss(ctx):
    ev = eval_losses(ctx.get(BASE))
    if len(ev) < 2:
        return Outcome(False, say(f"curve.json 里只有 {len(ev)} 次评估", f"{len(ev)} evaluation(s) in curve.json"))
    first, last = ev[0], ev[-1]
    # 30 %: a full schedule of the quick floor's steps (QUICK_MIN_STEPS, 200: a budget never buys fewer) reached 32.9 %;
    # the margin is the numerics' (bf16 or fp32) and the corpus a learner cleaned
    fell = 1 - last / first
    return Outcome(last <= first * (1 - LOSS_FALL),
                   say(f"{first:.2f} → {last:.2f}（降低 {fell:.0%}）", f"{first:.2f} → {last:.2f} ({fell:.0%} lower)"),
                   value=last, claimed=ctx.get(BASE).metrics.get("eval_loss"))


@check("pretrain.samples", LAB, "生成像中文", "Samples read like Chinese", needs=(BASE,),
       verifies="model/base's samples after training are ≥ 30 % Chinese characters with ≥ 2 function characters (的是在了和)",
       verifies_zh='model/base 训练后的生成样本中汉字占比 ≥ 30 %，且至少含 2 个虚词（的是在了和）',
       hint="the model has not learned the language yet: train longer or check that `corpus/clean` is mostly Chinese",
       hint_zh="模型还没有学会这门语言：训练更久，或检查 `corpus/clean` 是否以中文为主")
def samples(ctx):
    s = read_json(ctx.get(BASE), "samples.json")
    after = "".join(s.get("after", {}).values())
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in after) / max(1, len(after))
    fn = sum(after.count(c) for c in "的是在了和")
    return Outcome(cjk > 0.3 and fn >= 2, say(f"汉字占 {cjk:.0%}，虚词 {fn} 个", f"{cjk:.0%} Chinese, {fn} function chars"),
                   value=cjk)


@check("pretrain.tokenizer", LAB, "分词器压缩", "Tokenizer compresses", needs=(TOKENIZER, BASE),
       verifies="tokenizer/spm: > 1 Chinese character per token and a tool call in ≤ 25 tokens; model/base uses it",
       verifies_zh='tokenizer/spm：每个词元平均超过 1 个汉字，一次工具调用不超过 25 个词元；model/base 用的就是它',
       hint="retrain the tokenizer in lab 02 with the default vocabulary size (`cfg.preset.vocab_size`)",
       hint_zh="在实验 02 中用默认词表大小（`cfg.preset.vocab_size`）重新训练分词器")
def tokenizer(ctx):
    m = ctx.get(TOKENIZER).metrics
    cpt, call = m.get("chars_per_token_zh") or 0.0, m.get("tokens_per_tool_call") or 1e9
    same = (ctx.get(BASE).path / "tokenizer.model").read_bytes() == ctx.get(TOKENIZER).file("tokenizer.model").read_bytes()
    figure = joined(say(f"每词元 {cpt:.2f} 个字符，一次调用 {call:g} 个词元", f"{cpt:.2f} chars/token, call {call:g} tokens"),
                    "" if same else say("，model/base 用的是另一个分词器", ", model/base has another tokenizer"))
    return Outcome(cpt > 1.0 and call <= 25 and same, figure, value=cpt)


@check("pretrain.course_copies", LAB, "课程模型会照抄上下文", "The course model copies from its context", needs=(BASE,),
       verifies="the copy probe (models/probes.py: 16 random 32-token runs shown twice) on the shipped course base: a "
                "gain of ≥ 4 nats/token and ≥ 80 % of runs copied exactly by greedy decoding, measured now; your "
                "model/base's gain (its manifest) beside it",
       verifies_zh='在随包发布的课程基座上现测复制探针（models/probes.py：16 段 32 词元的随机序列各出现两遍）：增益 ≥ 4 nats/词元，'
                   '贪心解码完整照抄 ≥ 80 %；旁边列出你的 model/base 的增益（取自它的 manifest）',
       hint="the package has no course model, or a changed one: `puyu-lab course status`; build and ship it with "
            "`make course`",
       hint_zh="安装包里没有课程模型，或者它被改动过：`puyu-lab course status`；用 `make course` 构建并发布")
def course_copies(ctx):
    from ...models import course
    from ...models.probes import copy_probe

    try:
        problems = course.verify()
    except course.CourseModelMissing as e:
        return Outcome(False, say(f"没有课程模型：{e.zh}", f"no course model: {e}"))
    if problems:
        return Outcome(False, say(f"课程模型的文件与 manifest 不符：{problems[0]}", f"the course model's files differ from "
                                  f"their manifest: {problems[0]}"))
    r = copy_probe(course.load("base"))
    mine = ctx.get(BASE).metrics.get("copy_gain")
    mine_s = f"{mine:.2f}" if isinstance(mine, (int, float)) else "—"
    return Outcome(r["gain"] >= course.MIN_COPY_GAIN and r["copied"] >= course.MIN_COPIED,
                   say(f"课程基座：增益 {r['gain']:.2f} nats/词元，完整照抄 {r['copied']:.0%}；你的 model/base：增益 {mine_s}",
                       f"course base: gain {r['gain']:.2f} nats/token, {r['copied']:.0%} copied exactly; your model/base: "
                       f"gain {mine_s}"), value=r["gain"])


# ---- 作业 Homework: a vocabulary sweep and a second optimizer, measured against the chain's own artifacts ----------
VOCAB = "homework/pretrain/vocab"
ADAMW = "model/base-adamw"


def _zh_heldout(ctx) -> list[str]:
    """The Chinese held-out texts ``tokenizer/spm``'s chars/token is measured on (its first 200, as the stage does)."""
    from ...artifacts import load_corpus

    def make():
        held = load_corpus(ctx.ws, "heldout")
        return [t for t, lg in zip(held["text"], held["lang"]) if lg == "zh"][:200]

    return ctx.cached("zh_heldout", make)


def _k(v: int) -> str:
    return f"{v / 1000:g}k"


@check("pretrain.hw_vocab", LAB, "词表大小与压缩率", "Vocabulary size vs compression", homework="basic",
       needs=(CORPUS, TOKENIZER, VOCAB),
       verifies="homework/pretrain/vocab: tokenizers of ≥ 2 vocabulary sizes other than tokenizer/spm's, trained on "
                "the current corpus/clean; each has the size it claims, and its Chinese characters per token on "
                "corpus/clean's held-out split are measured again",
       verifies_zh="homework/pretrain/vocab：除 tokenizer/spm 之外，至少再用 2 种词表大小、在当前的 corpus/clean 上训练"
                   "分词器；每个分词器的词表都和声称的一样大，它在 corpus/clean 留出集中文上的每词元字符数都重新测量",
       hint="run the 作业 cell `pretrain.hw_vocab` at the end of lab 02 (`vocab_sizes`: at least the size its error "
            "names, e.g. `[3000, 6000, 12000]`)",
       hint_zh="运行实验 02 末尾的作业单元格 `pretrain.hw_vocab`（`vocab_sizes` 不能小于报错里给出的下限，例如 "
               "`[3000, 6000, 12000]`）")
def hw_vocab(ctx):
    from ...models.tokenizer import load_tokenizer
    from ...pretrain.tokenizer import chars_per_token

    if out := stale(ctx, VOCAB, (CORPUS,), say("用的是较早的 corpus/clean", "made from an older corpus/clean"),
                    detail=say("{name} 是在 {parent} 重新导出之前训练的：请重新运行它的作业单元格",
                               "{name} was trained before {parent} was re-exported: run its 作业 cell again")):
        return out
    art = ctx.get(VOCAB)
    rows = read_json(art, "vocab.json")["rows"]
    chain_v = int(ctx.get(TOKENIZER).params.get("vocab_size") or 0)
    zh = _zh_heldout(ctx)
    got, bad = {}, []
    for r in rows:
        v = int(r["vocab_size"])
        tok = load_tokenizer(art.file(r["dir"]))
        cpt = chars_per_token(tok, zh)
        if len(tok) != v or abs(cpt - float(r["chars_per_token_zh"])) > 1e-3 * cpt:
            bad.append((f"{v}: {len(tok)} pieces, {cpt:.3f} chars/token (written {r['chars_per_token_zh']})",
                        f"{v}：{len(tok)} 个词元，每词元 {cpt:.3f} 个字符（记录的是 {r['chars_per_token_zh']}）"))
        got[v] = cpt
    if bad:
        return Outcome(False, say(f"{len(bad)} 个分词器重新测量的结果对不上", f"{len(bad)} tokenizer(s) measure otherwise"),
                       detail=say("；".join(zh for _, zh in bad[:3]), "; ".join(en for en, _ in bad[:3])))
    others = sorted(set(got) - {chain_v})
    if len(others) < 2:
        return Outcome(False, say(f"除 {chain_v:,} 外只有 {len(others)} 种大小", f"{len(others)} size(s) besides {chain_v:,}"),
                       detail=say("除 tokenizer/spm 的词表大小外，至少再训练 2 种",
                                  "train at least 2 vocabulary sizes other than tokenizer/spm's"))
    spm = ctx.get(TOKENIZER).metrics.get("chars_per_token_zh")
    if spm is not None:
        got.setdefault(chain_v, float(spm))
    sizes = " · ".join(f"{_k(v)} {c:.2f}" for v, c in sorted(got.items()))
    fig = say(f"每词元字符数：{sizes}", f"{sizes} chars/token")
    top = max(others)
    return Outcome(True, fig, value=got[top], claimed=next((float(r["chars_per_token_zh"]) for r in rows
                                                             if int(r["vocab_size"]) == top), None),
                   detail=say(f"tokenizer/spm：{chain_v:,} 个词元" + (f"，每词元 {float(spm):.3f} 个字符" if spm else ""),
                              f"tokenizer/spm: {chain_v:,} pieces" + (f", {float(spm):.3f} chars/token" if spm else "")))


@check("pretrain.hw_optimizer", LAB, "AdamW 对比 Muon", "AdamW against Muon", homework="advanced",
       needs=(BASE, ADAMW),
       verifies="model/base-adamw: trained with AdamW alone on model/base's corpus, tokenizer and recipe (every other "
                "setting of its config, the time budget included, the same); both held-out losses read from their "
                "training curves",
       verifies_zh="model/base-adamw：只用 AdamW，在与 model/base 相同的语料、分词器和配方上训练（除优化器外配置完全相同，"
                   "时间预算也一样）；两者的留出集损失都从各自的训练曲线读出",
       hint="run the 作业 cell `pretrain.hw_optimizer` at the end of lab 02: it rebuilds model/base's config from its "
            "manifest and changes the optimizer only",
       hint_zh="运行实验 02 末尾的作业单元格 `pretrain.hw_optimizer`：它从 model/base 的清单还原出配置，只换掉优化器")
def hw_optimizer(ctx):
    base, other = ctx.get(BASE), ctx.get(ADAMW)
    a, b = base.params.get("config", {}), other.params.get("config", {})
    if b.get("optimizer") != "adamw" or a.get("optimizer") != "muon":
        return Outcome(False, f"model/base {a.get('optimizer')}, model/base-adamw {b.get('optimizer')}",
                       detail=say("比较的是 Muon（model/base）和单用 AdamW（model/base-adamw）",
                                  "compare Muon (model/base) with AdamW alone (model/base-adamw)"))
    skip = {"optimizer", "progress_bar"}
    differ = sorted(k for k in set(a) & set(b) if k not in skip and a[k] != b[k])
    if differ:
        return Outcome(False, say(f"还有 {len(differ)} 项设置不同", f"{len(differ)} other setting(s) differ"),
                       detail=", ".join(f"{k}: {a[k]} vs {b[k]}" for k in differ[:4]))
    parents = {p["name"]: p["id"] for p in base.parents}
    theirs = {p["name"]: p["id"] for p in other.parents}
    moved = [n for n in (CORPUS, TOKENIZER) if parents.get(n) != theirs.get(n)]
    if moved:
        now = {n: ctx.get(n).id for n in (CORPUS, TOKENIZER) if ctx.ws.exists(n)}
        older = "model/base" if any(parents.get(n) != now.get(n) for n in now) else "model/base-adamw"
        return Outcome(False, say(f"用的是另一份 {'和'.join(moved)}", f"another {' and '.join(moved)}"),
                       detail=say(f"{older} 是在较早的 {' / '.join(moved)} 上训练的：重新训练它（model/base 用实验 02 的"
                                  "训练单元格；model/base-adamw 用它的作业单元格），让两者从同样的数据学起",
                                  f"{older} was trained on an earlier {' / '.join(moved)}: train it again (model/base: "
                                  "lab 02's training cell; model/base-adamw: its 作业 cell), so that both learn from the "
                                  "same"))

    def last(art):
        ev = eval_losses(art)
        return ev[-1] if len(ev) >= 2 else None

    la, lb = last(base), last(other)
    if la is None or lb is None:
        return Outcome(False, say("有一条曲线不到两次评估", "a curve without two evaluations"),
                       detail=say("让训练跑完（结束前不要按停止）", "let the run finish (no Stop before its end)"))
    budget = (say(f"时间预算 {a['budget_s']:g} 秒", f"{a['budget_s']:g} s budget") if a.get("budget_s")
              else say(f"{a.get('max_steps')} 步", f"{a.get('max_steps')} steps"))
    return Outcome(True, joined(f"AdamW {lb:.2f} vs Muon {la:.2f}", say("（", " ("), budget, say("）", ")")), value=lb,
                   claimed=other.metrics.get("eval_loss"),
                   detail=say(f"步数：AdamW {other.metrics.get('steps')}，Muon {base.metrics.get('steps')}",
                              f"steps: AdamW {other.metrics.get('steps')}, Muon {base.metrics.get('steps')}"))
