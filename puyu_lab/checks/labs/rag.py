"""08 HuixiangDou RAG: the index, retrieval on held-out questions, refusal and grounded answers."""
from __future__ import annotations

from ...artifacts import RAG_EVAL, RAG_INDEX, load_rag_eval, load_rag_index
from ..core import Outcome, check, pct

LAB = "08_rag.ipynb"
CAMP = "基础岛: 茴香豆 / LlamaIndex RAG 实践"


def _ev(ctx):
    return ctx.cached("rag_eval", lambda: load_rag_eval(ctx.ws))


def _test(ctx, answerable=None):
    return [r for r in _ev(ctx)["rows"] if r["split"] == "test" and (answerable is None or r["answerable"] == answerable)]


@check("rag.index", LAB, "检索索引完整", "The index is whole", needs=(RAG_INDEX, RAG_EVAL),
       verifies="rag/index has one dense vector per chunk, and no chunk of a document its unanswerable questions "
                "came from (those documents were left out of the index)",
       hint="run lab 08 to the end; do not edit `rag/index` by hand",
       hint_zh="把实验 08 运行到底；不要手动修改 `rag/index`", camp=CAMP)
def index(ctx):
    ix = ctx.cached("rag_index", lambda: load_rag_index(ctx.ws))
    n, nv = len(ix["chunks"]), int(ix["vectors"].shape[0])
    docs = {c["doc"] for c in ix["chunks"]}
    leaked = sorted({r["doc"] for r in _ev(ctx)["rows"] if not r["answerable"]} & docs)
    ok = n > 0 and n == nv and not leaked
    return Outcome(ok, f"{n} chunks, {nv} vectors" + (f"; withheld documents in the index: {leaked[:3]}" if leaked else ""),
                   value=n, claimed=ctx.get(RAG_INDEX).metrics.get("chunks"))


def _hit5(rows, mode):
    return sum(r["ranks"][mode] is not None and r["ranks"][mode] <= 5 for r in rows) / max(1, len(rows))


@check("rag.hybrid", LAB, "混合检索不逊于单一检索", "Hybrid retrieval at least as good as either", needs=(RAG_EVAL,),
       verifies="on the test half's answerable questions, hybrid hit@5 ≥ BM25's and ≥ the dense encoder's "
                "(recomputed from each question's ranks in rag/eval)",
       hint="keep the fusion weight chosen on the calibration half (`cfg.alphas`); a larger `cfg.encoder_steps` helps the dense side",
       hint_zh="保留在校准集上选出的融合权重（`cfg.alphas`）；调大 `cfg.encoder_steps` 能提升稠密检索的效果",
       camp=CAMP)
def hybrid(ctx):
    rows = _test(ctx, True)
    if not rows:
        return Outcome(False, "no answerable test questions")
    h = {m: _hit5(rows, m) for m in ("sparse", "dense", "hybrid")}
    ok = h["hybrid"] >= h["sparse"] and h["hybrid"] >= h["dense"]
    return Outcome(ok, f"hit@5 hybrid {h['hybrid']:.1%}, BM25 {h['sparse']:.1%}, dense {h['dense']:.1%} ({len(rows)} questions)",
                   value=h["hybrid"], claimed=_ev(ctx)["metrics"].get("hybrid_hit@5"))


@check("rag.grounded", LAB, "检索让回答更准，拒答指标可复算", "Retrieval grounds the answers; the refusal figures recompute",
       needs=(RAG_EVAL,),
       verifies="with retrieval the reply contains the answer more often than without (held-out answerable questions), "
                "and at the chosen threshold the refusal's precision and recall recompute to rag/eval's figures",
       hint="run the reading cell of lab 08 to the end (it needs `model/sft` from lab 03)",
       hint_zh="把实验 08 的阅读作答单元格运行到底（它需要实验 03 产出的 `model/sft`）", camp=CAMP)
def grounded(ctx):
    ev = _ev(ctx)
    rows = [r for r in _test(ctx, True) if r.get("read")]
    if not rows:
        return Outcome(False, "no answered questions")
    w = sum(r["read"]["rag"]["correct"] for r in rows)
    wo = sum(r["read"]["none"]["correct"] for r in rows)
    thr = ev["metrics"].get("threshold")
    test = _test(ctx)
    answered = [r for r in test if r["relevance"] >= thr]
    tp = sum(r["answerable"] for r in answered)
    prec = tp / len(answered) if answered else 1.0
    rec = tp / max(1, sum(r["answerable"] for r in test))
    same = (abs(prec - ev["metrics"].get("refusal_precision", -1)) < 1e-3
            and abs(rec - ev["metrics"].get("refusal_recall", -1)) < 1e-3)
    ok = w > wo and same
    return Outcome(ok, f"with retrieval {pct(w / len(rows), w, len(rows))}, without {pct(wo / len(rows), wo, len(rows))}; "
                       f"refusal at {thr:.2f}: precision {prec:.0%}, recall {rec:.0%}"
                       + ("" if same else " (rag/eval says otherwise)"),
                   value=w / len(rows), claimed=ev["metrics"].get("answer_rag"))
