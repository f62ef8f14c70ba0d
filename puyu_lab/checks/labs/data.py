"""01 书生·万卷 Data: the cleaned corpus the rest of the chain trains on."""
from __future__ import annotations

from ...artifacts import CORPUS, load_corpus
from ..core import Outcome, check

LAB = "01_data.ipynb"
MIN_DOCS = 1000


def _splits(ctx):
    return ctx.cached("corpus", lambda: (load_corpus(ctx.ws, "train"), load_corpus(ctx.ws, "heldout")))


@check("data.size", LAB, "语料规模", "Corpus size", needs=(CORPUS,),
       verifies=f"corpus/clean keeps more than {MIN_DOCS:,} training documents and a non-empty held-out split",
       hint="the cleaning rules drop too much: loosen the quality thresholds in the recipe (lab 01, the cleaning panel)",
       hint_zh="清洗规则删得太多：在清洗配方中放宽质量阈值（实验 01 的清洗面板）")
def size(ctx):
    train, held = _splits(ctx)
    art = ctx.get(CORPUS)
    claimed = art.metrics.get("documents")
    return Outcome(len(train) > MIN_DOCS and len(held) > 0, f"{len(train):,} train + {len(held):,} held-out",
                   value=len(train) + len(held), claimed=claimed)


@check("data.sources", LAB, "中文来源保留", "Chinese sources kept", needs=(CORPUS,),
       verifies="both Chinese sources (news-zh, reviews-zh) survive cleaning; reviews keep their pos/neg labels",
       hint="a filter removes a whole source: look at the funnel per source in lab 01 and loosen the rule that drops it",
       hint_zh="某条过滤规则删掉了整个来源：在实验 01 中按来源查看清洗漏斗，放宽删掉它的那条规则")
def sources(ctx):
    train, _ = _splits(ctx)
    srcs = set(train["source"])
    labels = {l for s, l in zip(train["source"], train["label"]) if s == "reviews-zh"}
    ok = {"news-zh", "reviews-zh"} <= srcs and labels == {"pos", "neg"}
    return Outcome(ok, f"{len(srcs)} sources; review labels {sorted(labels)}")


@check("data.pii", LAB, "无邮箱地址", "No e-mail addresses", needs=(CORPUS,),
       verifies="no e-mail address is left in the training text (the PII step replaced them)",
       hint="turn the PII step back on in the recipe (lab 01) and export again",
       hint_zh="在清洗配方中重新打开隐私脱敏（PII）步骤（实验 01），然后重新导出")
def pii(ctx):
    from ...data.pii import EMAIL_RE

    train, _ = _splits(ctx)
    n = sum(1 for t in train["text"] if EMAIL_RE.search(t))
    return Outcome(n == 0, f"{n} document(s) with an address", value=n)
