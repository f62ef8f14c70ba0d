"""09 HuixiangDou RAG: the index, retrieval on held-out questions, refusal and grounded answers."""
from __future__ import annotations

from ...artifacts import RAG_EVAL, RAG_INDEX, load_rag_eval, load_rag_index
from ..core import Outcome, check, joined, pct, say
from ..evidence import read_jsonl

LAB = "09_rag.ipynb"
CAMP = "基础岛: 茴香豆 / LlamaIndex RAG 实践"


def _ev(ctx):
    return ctx.cached("rag_eval", lambda: load_rag_eval(ctx.ws))


def _test(ctx, answerable=None):
    return [r for r in _ev(ctx)["rows"] if r["split"] == "test" and (answerable is None or r["answerable"] == answerable)]


@check("rag.index", LAB, "检索索引完整", "The index is whole", needs=(RAG_INDEX, RAG_EVAL),
       verifies="rag/index has one dense vector per chunk, and no chunk of a document its unanswerable questions "
                "came from (those documents were left out of the index)",
       verifies_zh='rag/index 每个文本块对应一个稠密向量，且不含任何“不可回答问题”所来自文档的块（这些文档已排除在索引之外）',
       hint="run lab 09 to the end; do not edit `rag/index` by hand",
       hint_zh="把实验 09 运行到底；不要手动修改 `rag/index`", camp=CAMP)
def index(ctx):
    ix = ctx.cached("rag_index", lambda: load_rag_index(ctx.ws))
    n, nv = len(ix["chunks"]), int(ix["vectors"].shape[0])
    docs = {c["doc"] for c in ix["chunks"]}
    leaked = sorted({r["doc"] for r in _ev(ctx)["rows"] if not r["answerable"]} & docs)
    ok = n > 0 and n == nv and not leaked
    figure = joined(say(f"{n} 个片段，{nv} 个向量", f"{n} chunks, {nv} vectors"),
                    say(f"；留出的文档进了索引：{leaked[:3]}", f"; withheld documents in the index: {leaked[:3]}")
                    if leaked else "")
    return Outcome(ok, figure,
                   value=n, claimed=ctx.get(RAG_INDEX).metrics.get("chunks"))


def _hit5(rows, mode):
    return sum(r["ranks"][mode] is not None and r["ranks"][mode] <= 5 for r in rows) / max(1, len(rows))


@check("rag.hybrid", LAB, "混合检索不逊于单一检索", "Hybrid retrieval at least as good as either", needs=(RAG_EVAL,),
       verifies="on the test half's answerable questions, hybrid hit@5 ≥ BM25's and ≥ the dense encoder's "
                "(recomputed from each question's ranks in rag/eval)",
       verifies_zh='在测试半的可回答问题上，混合检索的 hit@5 ≥ BM25 的，也 ≥ 稠密编码器的（由 rag/eval 里每题的排名重新计算）',
       hint="keep the fusion weight chosen on the calibration half (`cfg.alphas`); a larger `cfg.encoder_steps` helps the dense side",
       hint_zh="保留在校准集上选出的融合权重（`cfg.alphas`）；调大 `cfg.encoder_steps` 能提升稠密检索的效果",
       camp=CAMP)
def hybrid(ctx):
    rows = _test(ctx, True)
    if not rows:
        return Outcome(False, say("没有可回答的测试问题", "no answerable test questions"))
    h = {m: _hit5(rows, m) for m in ("sparse", "dense", "hybrid")}
    ok = h["hybrid"] >= h["sparse"] and h["hybrid"] >= h["dense"]
    return Outcome(ok, say(f"hit@5 混合 {h['hybrid']:.1%}，BM25 {h['sparse']:.1%}，稠密 {h['dense']:.1%}（{len(rows)} 个问题）",
                           f"hit@5 hybrid {h['hybrid']:.1%}, BM25 {h['sparse']:.1%}, dense {h['dense']:.1%} "
                           f"({len(rows)} questions)"),
                   value=h["hybrid"], claimed=_ev(ctx)["metrics"].get("hybrid_hit@5"))


@check("rag.grounded", LAB, "检索让回答更准，拒答指标可复算", "Retrieval grounds the answers; the refusal figures recompute",
       needs=(RAG_EVAL,),
       verifies="with retrieval the reply contains the answer more often than without (held-out answerable questions), "
                "and at the chosen threshold the refusal's precision and recall recompute to rag/eval's figures",
       verifies_zh='有检索时回复含有答案的次数多于无检索（留出的可回答问题）；在选定阈值下，拒答的精确率和召回率能重新算出 rag/eval 的数字',
       hint="run the reading cell of lab 09 to the end (it needs `model/sft` from lab 03)",
       hint_zh="把实验 09 的阅读作答单元格运行到底（它需要实验 03 产出的 `model/sft`）", camp=CAMP)
def grounded(ctx):
    ev = _ev(ctx)
    rows = [r for r in _test(ctx, True) if r.get("read")]
    if not rows:
        return Outcome(False, say("没有作答的问题", "no answered questions"))
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
    with_, without = pct(w / len(rows), w, len(rows)), pct(wo / len(rows), wo, len(rows))
    figure = joined(say(f"有检索 {with_}，无检索 {without}；拒答阈值 {thr:.2f}：精确率 {prec:.0%}，召回率 {rec:.0%}",
                        f"with retrieval {with_}, without {without}; refusal at {thr:.2f}: precision {prec:.0%}, "
                        f"recall {rec:.0%}"),
                    "" if same else say("（与 rag/eval 记录的不同）", " (rag/eval says otherwise)"))
    return Outcome(ok, figure,
                   value=w / len(rows), claimed=ev["metrics"].get("answer_rag"))


COURSE_MIN_READ = 0.6


@check("rag.course", LAB, "课程助手读段落、自己写出答案", "The course assistant reads the passage and writes the answer",
       needs=(RAG_EVAL,),
       verifies="the shipped course assistant, reading the retrieved passage, writes the completed sentence itself "
                "(greedy, free-form) and its reply holds the gold quantity on ≥ 60 % of the held-out answerable "
                "questions, above a random pick among the passage's quantities and above its replies without retrieval; "
                "its extractive pick (the quantity of the passage it finds most likely in the blank) is shown beside "
                "(recomputed from rag/eval's questions.jsonl)",
       verifies_zh='随包发布的课程助手读检索到的段落，自己把句子写完整（贪心解码、自由生成），在留出的可回答问题上，'
                   '回复里含有标准答案数量的 ≥ 60 %，而且高于在段落的数量里随机挑一个、也高于它不检索时的回答；'
                   '旁边列出它抽取式的挑选（段落里它认为最可能填进空里的数量）的正确率（由 rag/eval 的 questions.jsonl 重新计算）',
       hint="run lab 09's evaluation cell (section 2) to the end: it reads with the course assistant whenever the "
            "package carries the course model (`puyu-lab course status`; build and ship it with `make course`)",
       hint_zh="把实验 09 第 2 节的评测单元格运行到底：只要安装包里带有课程模型，它就会让课程助手也来读"
               "（`puyu-lab course status`；用 `make course` 构建并发布）", camp=CAMP)
def course(ctx):
    rows = [r for r in _test(ctx, True) if r.get("read_course")]
    if not rows:
        return Outcome(False, say("rag/eval 里没有课程助手的作答", "rag/eval holds no answers of the course assistant"))
    from ...rag.reader import correct

    n = len(rows)
    # recomputed from each reply (the stored "correct" flags are not trusted)
    free, ex, wo = (sum(correct(r["answer"], r["read_course"][k]["reply"]) for r in rows) for k in ("rag_free", "rag", "none"))
    chance = _ev(ctx)["metrics"].get("answer_chance", 0)
    ok = free / n >= COURSE_MIN_READ and free / n > chance and free > wo
    return Outcome(ok, say(f"有检索、自己写 {pct(free / n, free, n)}（抽取式 {pct(ex / n, ex, n)}），无检索 {pct(wo / n, wo, n)}；"
                           f"随机挑一个 {chance:.0%}",
                           f"with retrieval, generative {pct(free / n, free, n)} (extractive {pct(ex / n, ex, n)}), without "
                           f"{pct(wo / n, wo, n)}; a random pick {chance:.0%}"),
                   value=free / n, claimed=_ev(ctx)["metrics"].get("course_answer_rag_free"))


# ---- 作业 homework -----------------------------------------------------------------------------------------------
HW_THRESHOLD = "homework/rag/threshold"  # 作业 1: the refusal threshold for a precision the learner chooses
HW_CHUNKS = "homework/rag/chunks"  # 作业 2: the index re-chunked, retrieval and the extractive reader measured again
HW_MIN_READ = 30


def _refusal(rows, thr):
    from ...rag.evaluate import refusal_at

    return refusal_at([r["relevance"] for r in rows], [r["answerable"] for r in rows], thr)


@check("rag.hw_threshold", LAB, "按目标精确率定拒答阈值", "A refusal threshold for a target precision",
       needs=(HW_THRESHOLD, RAG_EVAL), homework="basic",
       verifies=f"{HW_THRESHOLD}'s target precision is above what the chain's threshold gives on the calibration half, "
                "and its threshold is the lowest at which the calibration half's precision reaches the target; its "
                "precision and recall on the test half are recomputed from rag/eval's questions, beside the chain's",
       verifies_zh=f"{HW_THRESHOLD} 的目标精确率高于链路阈值在校准集上的精确率，它的阈值是校准集上精确率达到目标的最低阈值；"
                   "它在测试集上的精确率和召回率由 rag/eval 的问题重新计算，并与链路阈值的结果对比",
       hint="run the first 作业 cell of lab 09 with `target_precision` above the chain's calibration precision; keep the "
            "threshold it picks (the lowest that reaches the target on the calibration half)",
       hint_zh="把 `target_precision` 设得高于链路阈值在校准集上的精确率，运行实验 09 的作业 1 单元格；"
               "保留它选出的阈值（校准集上达到目标的最低阈值）", camp=CAMP)
def hw_threshold(ctx):
    art = ctx.get(HW_THRESHOLD)
    ev = _ev(ctx)
    target, thr = float(art.params["target_precision"]), float(art.params["threshold"])
    calib = [r for r in ev["rows"] if r["split"] == "calib"]
    test = _test(ctx)
    chain_thr = ev["metrics"]["threshold"]
    chain_cal = _refusal(calib, chain_thr)["precision"]
    mine_cal = _refusal(calib, thr)
    lower = sorted({r["relevance"] for r in calib if r["relevance"] < thr})
    reached_lower = [s for s in lower if _refusal(calib, s)["precision"] >= target]
    mine, chain = _refusal(test, thr), _refusal(test, chain_thr)
    figure = say(f"阈值 {thr:.2f}（校准集精确率 ≥ {target:.0%}）：测试集精确率 {mine['precision']:.0%}、召回率 {mine['recall']:.0%}；"
                f"链路阈值 {chain_thr:.2f}：{chain['precision']:.0%}、{chain['recall']:.0%}",
                f"threshold {thr:.2f} (calibration precision ≥ {target:.0%}): test precision {mine['precision']:.0%}, "
                f"recall {mine['recall']:.0%}; the chain's {chain_thr:.2f}: {chain['precision']:.0%}, {chain['recall']:.0%}")
    if target <= chain_cal:
        return Outcome(False, joined(figure, say(f"——目标要高于链路阈值在校准集上的精确率 {chain_cal:.1%}",
                                                 f" — aim above the chain's calibration precision, {chain_cal:.1%}")))
    if mine_cal["precision"] < target:
        return Outcome(False, joined(figure, say(f"——这个阈值在校准集上的精确率只有 {mine_cal['precision']:.1%}",
                                                 f" — at this threshold the calibration precision is {mine_cal['precision']:.1%}")))
    if reached_lower:
        return Outcome(False, joined(figure, say(f"——更低的阈值 {reached_lower[0]:.2f} 已经达到目标：选最低的那个（它拒答得最少）",
                                                 f" — the lower threshold {reached_lower[0]:.2f} already reaches it: take the lowest "
                                                 "(it refuses the fewest)")))
    return Outcome(True, figure, value=round(mine["precision"], 4), claimed=art.metrics.get("test_precision"))


@check("rag.hw_chunks", LAB, "分块大小：检索与阅读", "Chunk size: retrieval and reading",
       needs=(HW_CHUNKS, RAG_EVAL, RAG_INDEX), homework="advanced",
       verifies=f"{HW_CHUNKS} re-chunks the index at another size than rag/index and asks ≥ {HW_MIN_READ} of the test half's "
                "questions that the chain's reader answered; every passage read fits the chunk size, every extractive "
                "reply is the question around a quantity of its passage, and hit@1, hit@5 and the share of answers "
                "are recomputed from the rows, beside the chain's on the same questions",
       verifies_zh=f"{HW_CHUNKS} 用不同于 rag/index 的大小重新分块，并问了测试集中链路阅读器答过的问题（至少 {HW_MIN_READ} 个）；"
                   "读到的每个段落都不超过分块大小，每个抽取式回答都是题目中间填上段落里的一个数量；hit@1、hit@5 和答对的比例"
                   "由逐题记录重新计算，并与链路在同一批问题上的结果对比",
       hint="run the second 作业 cell of lab 09 with `chunk_chars` other than the chain's `cfg.chunk_chars` (it re-chunks "
            "the corpus, reuses the chain's encoder and reader, and saves `homework/rag/chunks`; `rag/index` stays as it is)",
       hint_zh="把 `chunk_chars` 设成不同于链路 `cfg.chunk_chars` 的值，运行实验 09 的作业 2 单元格"
               "（它重新分块，沿用链路的编码器和阅读器，保存 `homework/rag/chunks`；`rag/index` 保持不变）", camp=CAMP)
def hw_chunks(ctx):
    from ...rag.evaluate import retrieval_metrics
    from ...rag.reader import REFUSAL, correct

    art = ctx.get(HW_CHUNKS)
    size = int(art.params["chunk_chars"])
    chain_size = ctx.get(RAG_INDEX).params.get("chunk_chars")
    rows = read_jsonl(art.file("rows.jsonl"))
    chain = {r["id"]: r for r in _test(ctx, True) if r.get("read")}
    if size == chain_size:
        return Outcome(False, say(f"chunk_chars {size} 和链路的 rag/index 一样：换一个大小",
                                 f"chunk_chars {size} is rag/index's own: choose another size"))
    asked = [r for r in rows if r.get("id") in chain]
    if len(asked) < min(HW_MIN_READ, len(chain)):
        return Outcome(False, say(f"只问了 {len(asked)} 个链路答过的测试问题，至少要 {min(HW_MIN_READ, len(chain))} 个",
                                 f"{len(asked)} of the test questions the chain's reader answered, "
                                 f"{min(HW_MIN_READ, len(chain))} needed"))
    for r in asked:
        texts, reply = [p["text"] for p in r.get("passages") or []], r["reply"]
        if any(len(t) > size for t in texts):
            return Outcome(False, say(f"{r['id']} 读到的段落有 {max(map(len, texts))} 个字符，超过了 {size}",
                                     f"{r['id']}: a passage read has {max(map(len, texts))} characters, more than {size}"))
        src = chain[r["id"]]
        left, right = src["left"], src["right"]
        mid = reply[len(left):len(reply) - len(right)] if right else reply[len(left):]
        if reply != REFUSAL and not (reply.startswith(left) and reply.endswith(right) and mid
                                     and any(mid in t for t in texts)):
            return Outcome(False, say(f"{r['id']} 的回答 {reply!r} 不是题目填上段落里的一个数量",
                                     f"{r['id']}: the reply {reply!r} is not the question filled with a quantity of its passage"))
    n = len(asked)
    mine = retrieval_metrics([r["rank"] for r in asked], (1, 5))
    theirs = retrieval_metrics([chain[r["id"]]["ranks"]["hybrid"] for r in asked], (1, 5))
    a1 = sum(correct(chain[r["id"]]["answer"], r["reply"]) for r in asked)
    a0 = sum(bool(chain[r["id"]]["read"]["rag"]["correct"]) for r in asked)
    figure = say(f"{size} 字：hit@1 {mine['hit@k'][1]:.0%}、hit@5 {mine['hit@k'][5]:.0%}、答对 {a1}/{n}；"
                f"{chain_size} 字（链路）：{theirs['hit@k'][1]:.0%}、{theirs['hit@k'][5]:.0%}、{a0}/{n}",
                f"{size} chars: hit@1 {mine['hit@k'][1]:.0%}, hit@5 {mine['hit@k'][5]:.0%}, answered {a1}/{n}; "
                f"{chain_size} (chain): {theirs['hit@k'][1]:.0%}, {theirs['hit@k'][5]:.0%}, {a0}/{n}")
    return Outcome(True, figure, value=round(a1 / n, 4), claimed=art.metrics.get("answer_rag"))
