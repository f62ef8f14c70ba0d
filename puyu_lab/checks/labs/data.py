"""01 书生·万卷 Data: the cleaned corpus the rest of the chain trains on."""
from __future__ import annotations

from ...artifacts import CORPUS, load_corpus
from ..core import Outcome, check, joined, say
from ..evidence import read_json, stale

LAB = "01_data.ipynb"
MIN_DOCS = 1000


def _splits(ctx):
    return ctx.cached("corpus", lambda: (load_corpus(ctx.ws, "train"), load_corpus(ctx.ws, "heldout")))


@check("data.size", LAB, "语料规模", "Corpus size", needs=(CORPUS,),
       verifies=f"corpus/clean keeps more than {MIN_DOCS:,} training documents and a non-empty held-out split",
       verifies_zh='corpus/clean 保留了 1,000 篇以上的训练文档，留出集（held-out）不为空',
       hint="the cleaning rules drop too much: loosen the quality thresholds in the recipe (lab 01, the cleaning panel)",
       hint_zh="清洗规则删得太多：在清洗配方中放宽质量阈值（实验 01 的清洗面板）")
def size(ctx):
    train, held = _splits(ctx)
    art = ctx.get(CORPUS)
    claimed = art.metrics.get("documents")
    return Outcome(len(train) > MIN_DOCS and len(held) > 0,
                   say(f"训练 {len(train):,} 篇 + 留出 {len(held):,} 篇", f"{len(train):,} train + {len(held):,} held-out"),
                   value=len(train) + len(held), claimed=claimed)


@check("data.sources", LAB, "中文来源保留", "Chinese sources kept", needs=(CORPUS,),
       verifies="both Chinese sources (news-zh, reviews-zh) survive cleaning; reviews keep their pos/neg labels",
       verifies_zh='两个中文数据源（news-zh、reviews-zh）清洗后都还在；评论保留了 pos/neg 标签',
       hint="a filter removes a whole source: look at the funnel per source in lab 01 and loosen the rule that drops it",
       hint_zh="某条过滤规则删掉了整个来源：在实验 01 中按来源查看清洗漏斗，放宽删掉它的那条规则")
def sources(ctx):
    train, _ = _splits(ctx)
    srcs = set(train["source"])
    labels = {l for s, l in zip(train["source"], train["label"]) if s == "reviews-zh"}
    ok = {"news-zh", "reviews-zh"} <= srcs and labels == {"pos", "neg"}
    return Outcome(ok, say(f"{len(srcs)} 个来源；评论标签 {sorted(labels)}",
                           f"{len(srcs)} sources; review labels {sorted(labels)}"))


@check("data.pii", LAB, "无邮箱地址", "No e-mail addresses", needs=(CORPUS,),
       verifies="no e-mail address is left in the training text (the PII step replaced them)",
       verifies_zh='训练文本里不再有电子邮件地址（PII 步骤已把它们替换掉）',
       hint="turn the PII step back on in the recipe (lab 01) and export again",
       hint_zh="在清洗配方中重新打开隐私脱敏（PII）步骤（实验 01），然后重新导出")
def pii(ctx):
    from ...data.pii import EMAIL_RE

    train, _ = _splits(ctx)
    n = sum(1 for t in train["text"] if EMAIL_RE.search(t))
    return Outcome(n == 0, say(f"{n} 篇文档含邮箱地址", f"{n} document(s) with an address"), value=n)


# ---- 作业 Homework: the learner's own recipe and banding, measured against corpus/clean's own signals -------------
RULE = "homework/data/rule"
MINHASH = "homework/data/minhash"


def _stale(ctx, name: str) -> Outcome | None:
    """The failed outcome when ``name`` no longer measures the current corpus/clean (exported again since)."""
    return stale(ctx, name, (CORPUS,), say("用的是较早的 corpus/clean", "made from an older corpus/clean"),
                 detail=say("{name} 用的是另一份 {parent}（之后又重新导出过）：请重新运行它的作业单元格",
                            "{name} was made from another {parent} (re-exported since): run its 作业 cell again"))


def _recipes(ctx, name: str):
    """corpus/clean's cleaning recipe and ``name``'s."""
    from ...data.filters import Recipe

    return tuple(Recipe.from_dict(read_json(ctx.get(n), "recipe.json")) for n in (CORPUS, name))


def _changes(a: dict, b: dict, at: str = "") -> list[str]:
    """The settings in which recipe dicts ``a`` and ``b`` differ, as dotted names."""
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _changes(x, y, f"{at}{k}.")
        elif x != y:
            out.append(f"{at}{k}")
    return out


@check("data.hw_rule", LAB, "改一条清洗规则", "Move one cleaning rule", homework="basic",
       needs=(CORPUS, RULE),
       verifies="homework/data/rule: its recipe differs from corpus/clean's; the documents that pass the rules under "
                "each recipe are recounted from corpus/clean's signals (signals.parquet) and the change keeps a "
                "different set of documents",
       verifies_zh="homework/data/rule：它的配方与 corpus/clean 的不同；两份配方下通过规则的文档数，都用 corpus/clean 自己的"
                   "信号（signals.parquet）重新统计，而且这处改动确实改变了留下的文档",
       hint="run the 作业 cell `data.hw_rule` at the end of lab 01 with a threshold your documents cross "
            "(`mine.set(\"gopher_short_doc\", 50, \"zh\")`)",
       hint_zh="运行实验 01 末尾的作业单元格 `data.hw_rule`，改一个你的文档真会越过的阈值"
               "（`mine.set(\"gopher_short_doc\", 50, \"zh\")`）")
def hw_rule(ctx):
    import pandas as pd

    from ...data.filters import filter_mask

    if out := _stale(ctx, RULE):
        return out
    chain, mine = _recipes(ctx, RULE)
    changed = _changes(chain.to_dict(), mine.to_dict())
    if not changed:
        return Outcome(False, say("配方与 corpus/clean 的一模一样", "the same recipe as corpus/clean"),
                       detail=say("改一个阈值、一个规则组或一种语言", "change a threshold, a group or a language"))
    sig = ctx.cached("signals", lambda: pd.read_parquet(ctx.get(CORPUS).file("signals.parquet")))
    k0, k1 = filter_mask(sig, chain)[0], filter_mask(sig, mine)[0]
    n0, n1 = int(k0.sum()), int(k1.sum())
    what = ", ".join(changed[:2]) + ("…" if len(changed) > 2 else "")
    fig = say(f"通过规则的文档 {n0:,} → {n1:,}（{n1 / max(1, n0) - 1:+.1%}）",
              f"{n0:,} → {n1:,} pass the rules ({n1 / max(1, n0) - 1:+.1%})")
    if (k0 == k1).all():
        return Outcome(False, say(f"两份配方都是 {n1:,} 篇通过规则", f"{n1:,} pass the rules either way"), value=n1,
                       detail=say(f"{what}：没有文档越过它；选一个清洗漏斗上显示附近有文档的值",
                                  f"{what}: no document crosses it; pick a value the funnel shows documents near"))
    per = pd.DataFrame({"source": sig["source"], "d": k1.astype(int) - k0.astype(int)}).groupby("source")["d"].sum()
    most = per.abs().idxmax()
    return Outcome(True, fig, value=n1, claimed=ctx.get(RULE).metrics.get("passed_rules"),
                   detail=say(f"{what}；变化最大的来源是 {most}（{int(per[most]):+,}）",
                              f"{what}; most change in {most} ({int(per[most]):+,})"))


def _pairs_of(sigs, b: int, r: int) -> set:
    """The candidate pairs (i < j) of signatures ``sigs`` under ``b`` bands × ``r`` rows: those sharing a band."""
    from itertools import combinations

    import numpy as np

    from ...data.dedup import band_keys

    keys = band_keys(np.asarray(sigs), b, r)
    out = set()
    for j in range(b):
        order = np.argsort(keys[:, j], kind="stable")
        k = keys[order, j]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)]
        for s, e in zip(starts, ends):
            if e - s > 1:
                out.update(combinations(sorted(int(i) for i in order[s:e]), 2))
    return out


@check("data.hw_minhash", LAB, "换一种 MinHash 分带", "Band MinHash your way", homework="advanced",
       needs=(CORPUS, MINHASH),
       verifies="homework/data/minhash: a banding b × r other than corpus/clean's (b·r ≤ its signature length); every "
                "pair it lists is re-hashed from its two texts: a pair it gains shares a band under b × r and none "
                "under corpus/clean's banding, a pair it loses the other way round, and each true Jaccard recomputes",
       verifies_zh="homework/data/minhash：换一种与 corpus/clean 不同的分带 b × r（b·r 不超过签名长度）；列出的每一对文档"
                   "都从两篇原文重新计算 MinHash：新增的一对在 b × r 下共享某个分带、在 corpus/clean 的分带下不共享，"
                   "丢掉的一对正好相反，而且每对的真实 Jaccard 都能重新算出",
       hint="run the 作业 cell `data.hw_minhash` at the end of lab 01 with another `bands, rows` (say 20 × 5)",
       hint_zh="运行实验 01 末尾的作业单元格 `data.hw_minhash`，换一组 `bands, rows`（比如 20 × 5）")
def hw_minhash(ctx):
    import statistics

    import numpy as np

    from ...data.dedup import MinHasher, shingles, true_jaccard

    if out := _stale(ctx, MINHASH):
        return out
    art = ctx.get(MINHASH)
    chain = read_json(ctx.get(CORPUS), "recipe.json")
    b0, r0 = int(chain["minhash_bands"]), int(chain["minhash_rows"])
    ev = read_json(art, "pairs.json")
    b, r = int(ev["bands"]), int(ev["rows"])
    if (b, r) == (b0, r0):
        return Outcome(False, say(f"{b} × {r}：就是 corpus/clean 自己的分带",
                                  f"{b} × {r}: corpus/clean's own banding"),
                       detail=say("换一组分带数和每带行数", "pick other bands and rows"))
    if b * r > b0 * r0 or b < 1 or r < 1:
        return Outcome(False, f"{b} × {r} = {b * r} > {b0 * r0}",
                       detail=say(f"签名只有 {b0 * r0} 个值：分带数 × 每带行数不能超过它",
                                  f"the signatures hold {b0 * r0} values: bands × rows must not exceed it"))
    docs = ev["docs"]
    mh = MinHasher(b0 * r0, int(chain["minhash_seed"]))
    seeds = mh.params()
    sh = {i: shingles(d["text"], int(chain["minhash_ngram"]), bool(d["cjk"])) for i, d in docs.items()}
    sig = {i: mh.signature(s, seeds) for i, s in sh.items()}
    bad, tj = [], []
    for kind, pairs in (("gained", ev["gained"]), ("lost", ev["lost"])):
        for p in pairs:
            a, c = p["a"], p["b"]
            ours, theirs = (bool(_pairs_of([sig[a], sig[c]], bb, rr)) for bb, rr in ((b, r), (b0, r0)))
            j = true_jaccard(sh[a], sh[c])
            if (ours, theirs) != ((True, False) if kind == "gained" else (False, True)) or abs(j - p["true_jaccard"]) > 1e-6:
                bad.append((f"{kind} {a} / {c}", f"{'新增' if kind == 'gained' else '丢掉'}的 {a} / {c}"))
            if kind == "gained":
                tj.append(j)
    if bad:
        return Outcome(False, say(f"{len(bad)} 对文档重新计算 MinHash 后与所列不符",
                                  f"{len(bad)} pair(s) do not re-hash as listed"),
                       detail=say("；".join(zh for _, zh in bad[:3]), "; ".join(en for en, _ in bad[:3])))
    n_gained, n_lost = int(ev["n_gained"]), int(ev["n_lost"])
    if not (ev["gained"] or ev["lost"]) or n_gained + n_lost == 0:
        return Outcome(False, say(f"{b} × {r}：找到的文档对与 {b0} × {r0} 完全相同",
                                  f"{b} × {r}: the same pairs as {b0} × {r0}"),
                       detail=say("这种分带找到的候选对和主链完全一样：离它再远一些",
                                  "this banding finds exactly the chain's candidates: move further from it"))
    med = statistics.median(tj) if tj else None
    s = (1 / b) ** (1 / r)
    fig = say(f"{b}×{r}（s≈{s:.2f}）：新增 {n_gained:,} 对 / 丢掉 {n_lost:,} 对",
              f"{b}×{r} (s≈{s:.2f}): +{n_gained:,} / −{n_lost:,} pairs")
    gained = (say(f"新增文档对的真实 Jaccard 中位数 {med:.2f}（重新计算了 {len(tj)} 对）",
                  f"gained pairs' true Jaccard: median {med:.2f} ({len(tj)} re-hashed)") if tj
              else say("没有新增的文档对", "no pair gained"))
    return Outcome(True, fig, value=med, claimed=art.metrics.get("gained_median_jaccard"),
                   detail=joined(gained, say(f"；{b0}×{r0}：{ev['n_chain']:,} 对",
                                             f"; {b0}×{r0}: {ev['n_chain']:,} pairs")))
