"""The RAG stage in one call: chunk ``corpus/clean``, index it (BM25 + a dense encoder trained from
``model/base``), ask it held-out questions with known answers and questions it cannot answer,
calibrate the refusal threshold, answer with ``model/sft`` with and without retrieval
→ ``rag/index`` and ``rag/eval``.

Questions are split in two halves: the fusion weight and the refusal threshold are chosen on the
*calibration* half, every reported figure is measured on the *test* half.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..events import Emitter, Event, StopFlag, progress
from ..workspace import Artifact, Workspace
from .config import RAGConfig

STAGE = "rag"
READ_GROUP = 10  # questions read per step (their free-form replies decoded together): a progress step each
INDEX, EVAL = "rag/index", "rag/eval"


@dataclass
class RAGResult:
    retriever: object  # index.Retriever
    rows: list[dict]  # one per question: ranks per mode, relevance, the reader's answers
    metrics: dict
    curve: list[dict]  # the refusal curve on the test half (evaluate.refusal_curve)
    history: list[dict]  # the encoder's training losses
    index: Artifact
    artifact: Artifact  # rag/eval

    def table(self) -> list[dict]:
        """One row per retriever: hit@1/3/5/10 and MRR on the test half."""
        from .evaluate import retrieval_table

        return retrieval_table(self.metrics)


def load_retriever(ws: Workspace, name: str = INDEX):
    """The saved index of ``rag/index`` as a :class:`~puyu_lab.rag.index.Retriever` (search it)."""
    from ..artifacts import load_rag_index
    from .index import Retriever, SparseIndex, load_encoder

    d = load_rag_index(ws, name)
    enc = load_encoder(d["path"] / "encoder")
    sparse = SparseIndex.load(d["path"] / "bm25", len(d["chunks"]))
    return Retriever(d["chunks"], sparse, enc, d["vectors"], alpha=d["info"]["alpha"], depth=d["info"]["depth"])


def _split_docs(ws: Workspace, cfg: RAGConfig):
    from ..artifacts import load_corpus

    train = load_corpus(ws, "train").to_list()
    held = load_corpus(ws, "heldout").to_list()
    news = sorted(str(d["id"]) for d in held if d.get("source") == "news-zh")
    rng = random.Random(cfg.seed)
    rng.shuffle(news)
    withheld = set(news[:cfg.withheld_docs])
    if len(news) < 2 * max(1, cfg.withheld_docs // 2):
        raise InputError(f"corpus/clean's held-out split has {len(news)} news documents; the RAG lab needs at "
                         f"least {cfg.withheld_docs} to leave out of the index and as many to ask about (run "
                         "labs/01_data.ipynb with more documents, or lower withheld_docs)",
                         zh=f"corpus/clean 的留出集只有 {len(news)} 篇新闻；检索增强实验至少需要 {cfg.withheld_docs} 篇"
                            "留在索引之外，还要同样多篇用来提问（请用更多文档重新运行 labs/01_data.ipynb，"
                            "或调小 withheld_docs）")
    indexed = train + [d for d in held if str(d["id"]) not in withheld]
    return train, held, indexed, [d for d in held if str(d["id"]) in withheld]


def _questions(cfg: RAGConfig, chunks: list[dict], held: list[dict], withheld_docs: list[dict]) -> list[dict]:
    from .chunking import chunk_docs
    from .questions import make_questions

    def make(cs, n, seed):
        return make_questions(cs, n, seed, per_doc=cfg.per_doc, left_chars=cfg.left_chars, right_chars=cfg.right_chars)

    held_ids = {str(d["id"]) for d in held}
    answerable = make([c for c in chunks if c["doc"] in held_ids], cfg.n_questions, cfg.seed)
    unanswerable = make(chunk_docs(withheld_docs, cfg.chunk_chars), cfg.n_questions, cfg.seed + 1)
    rows = []
    for kind, qs in (("answerable", answerable), ("unanswerable", unanswerable)):
        for j, q in enumerate(qs):
            rows.append({**q, "id": f"{kind[0]}{j}", "answerable": kind == "answerable",
                         "split": "calib" if j % 2 == 0 else "test"})
            if kind == "unanswerable":
                rows[-1]["chunk"] = None
    return rows


def _encoder(ws: Workspace, cfg: RAGConfig, train_chunks: list[dict], emit: Emitter, stop):
    from .index import DirectoryEncoder, build_encoder

    if cfg.encoder:
        if not Path(cfg.encoder).is_dir():
            raise InputError(f"encoder={cfg.encoder!r} is not a local directory: name an embedding model's directory "
                             "(e.g. a downloaded bge-small-zh), or leave it unset to train one from model/base",
                             zh=f"encoder={cfg.encoder!r} 不是本地目录：请指定一个向量模型的目录（例如下载好的 "
                                "bge-small-zh），或者不设置它，由 model/base 训练一个")
        return DirectoryEncoder(cfg.encoder, cfg.max_tokens), [], {"directory": str(cfg.encoder)}
    from ..models.tokenizer import load_tokenizer
    from .encoder import init_from_base, set_token_weights, train_encoder
    from .index import DenseEncoder

    base = ws.get(cfg.base).path
    base_config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    module = build_encoder(base_config, cfg.encoder_layers, cfg.encoder_dim)
    init_from_base(module, base, cfg.encoder_layers)
    tok = load_tokenizer(base)
    set_token_weights(module, tok, [c["text"] for c in train_chunks])
    history = train_encoder(module, tok, train_chunks, steps=cfg.encoder_steps, batch_size=cfg.encoder_batch,
                            lr=cfg.encoder_lr, max_tokens=cfg.max_tokens, temperature=cfg.temperature, seed=cfg.seed,
                            emit=emit, stop=stop)
    meta = {"base_config": base_config, "layers": cfg.encoder_layers, "dim": cfg.encoder_dim, "base": cfg.base}
    return DenseEncoder(module, tok, cfg.max_tokens), history, meta


def run(ws: Workspace, cfg: RAGConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> RAGResult:
    """Index, evaluate retrieval and refusal, read with and without retrieval; save ``rag/index`` and ``rag/eval``."""
    from .chunking import chunk_docs
    from .evaluate import KS, choose_threshold, rank_of, refusal_at, refusal_curve, retrieval_metrics, auc
    from .index import Retriever, SparseIndex

    ws = ws.for_stage(STAGE)  # reads only what stages.py declares for the stage
    cfg = cfg or RAGConfig.for_profile()
    emit = Emitter(STAGE, on_event)
    t0 = time.time()
    ws.require("corpus/clean", cfg.reader, *([] if cfg.encoder else [cfg.base]))
    emit.emit("start", phase="chunk")
    train, held, indexed, withheld_docs = _split_docs(ws, cfg)
    chunks = chunk_docs(indexed, cfg.chunk_chars)
    rows = _questions(cfg, chunks, held, withheld_docs)
    emit.emit("progress", phase="index", chunks=len(chunks), questions=len(rows))
    sparse = SparseIndex([c["text"] for c in chunks])
    encoder, history, meta = _encoder(ws, cfg, chunk_docs(train, cfg.chunk_chars), emit, stop)
    emit.emit("progress", phase="encode", chunks=len(chunks))
    vectors = encoder.encode([c["text"] for c in chunks], stop=stop)
    retr = Retriever(chunks, sparse, encoder, vectors, depth=cfg.depth)
    pos = {c["id"]: i for i, c in enumerate(chunks)}

    # retrieval: every question's candidates once; the fusion weight chosen on the calibration half (MRR)
    qvecs = encoder.encode([r["question"] for r in rows])
    cands = [retr.candidates(r["question"], qvecs[j]) for j, r in enumerate(rows)]
    calib = [j for j, r in enumerate(rows) if r["answerable"] and r["split"] == "calib"]

    def mrr(alpha, idx):
        return retrieval_metrics([rank_of(retr.rank(cands[j], 10, alpha)["hybrid"], pos[rows[j]["chunk"]])
                                  for j in idx])["mrr"]

    by_alpha = {a: mrr(a, calib) for a in cfg.alphas}
    retr.alpha = max(cfg.alphas, key=lambda a: (by_alpha[a], a))
    for j, r in enumerate(rows):
        got = retr.rank(cands[j], 10)
        r["relevance"] = round(got["relevance"], 4)
        r["top"] = {m: [chunks[i]["id"] for i, _ in got[m][:5]] for m in retr.MODES}
        r["ranks"] = {m: rank_of(got[m], pos[r["chunk"]]) if r["answerable"] else None for m in retr.MODES}

    test = [r for r in rows if r["split"] == "test"]
    metrics: dict = {"chunks": len(chunks), "indexed_docs": len(indexed), "withheld_docs": len(withheld_docs),
                     "questions": len(rows), "test_answerable": sum(r["answerable"] for r in test),
                     "test_unanswerable": sum(not r["answerable"] for r in test), "alpha": retr.alpha}
    for m in retr.MODES:
        rm = retrieval_metrics([r["ranks"][m] for r in test if r["answerable"]], KS)
        metrics.update({f"{m}_hit@{k}": round(v, 4) for k, v in rm["hit@k"].items()})
        metrics[f"{m}_mrr"] = round(rm["mrr"], 4)

    # refusal: the threshold with the best F1 on the calibration half, its precision / recall on the test half
    cal = [r for r in rows if r["split"] == "calib"]
    chosen = choose_threshold([r["relevance"] for r in cal], [r["answerable"] for r in cal])
    thr = chosen["threshold"]
    ts = ([r["relevance"] for r in test], [r["answerable"] for r in test])
    at = refusal_at(*ts, thr)
    curve = refusal_curve(*ts)
    metrics.update({"threshold": round(thr, 4), "refusal_precision": round(at["precision"], 4),
                    "refusal_recall": round(at["recall"], 4), "refused_unanswerable": at["refused_unanswerable"],
                    "refusal_auc": round(auc(*ts), 4), "calib_f1": round(chosen["f1"], 4)})

    # reading: the SFT model with the top read_k hybrid passages (extractive and free-form) and without any
    readers = [r for r in test if r["answerable"]][:cfg.n_read]
    metrics.update(_read(ws, cfg.reader, readers, chunks, pos, cfg, thr, emit, stop, key="read"))
    if cfg.course_reader or (cfg.course_reader is None and _course_shipped()):  # the shipped course assistant, which can copy from its context, on the same questions
        from ..models.course import course_path

        got = _read(ws, str(course_path("assistant")), readers, chunks, pos, cfg, thr, emit, stop, key="read_course")
        metrics.update({f"course_{k}": v for k, v in got.items()})
    metrics["answer_chance"] = round(sum(1 / r["read"]["rag"]["candidates"] if r["read"]["rag"]["candidates"] else 0
                                         for r in readers) / max(1, len(readers)), 4)
    metrics["answered_questions"] = len(readers)
    metrics["seconds"] = round(time.time() - t0, 1)

    index = _save_index(ws, cfg, retr, meta, history)
    art = _save_eval(ws, cfg, rows, metrics, curve, by_alpha, history, index)
    emit.emit("done", **{k: metrics[k] for k in ("hybrid_hit@5", "sparse_hit@5", "dense_hit@5", "answer_rag")})
    return RAGResult(retr, rows, metrics, curve, history, index, art)


def _course_shipped() -> bool:
    from ..models.course import CourseModelMissing, shipped_manifest

    try:
        shipped_manifest()
    except CourseModelMissing:
        return False
    return True


def _read(ws, reader_name: str, readers: list[dict], chunks, pos, cfg, thr: float, emit, stop, *, key: str) -> dict:
    """Each question read by ``reader_name`` with its top ``read_k`` passages (extractive and free-form) and
    without any; the rows get ``r[key]``, the rates come back."""
    from ..models import HFModel
    from . import reader

    emit.emit("progress", phase="read", reader=reader_name)
    model = HFModel.load(reader_name, ws=ws, batch_size=8)
    try:
        groups = [readers[i:i + READ_GROUP] for i in range(0, len(readers), READ_GROUP)]
        for group in progress(groups, desc="reading", emitter=emit, stop=stop, show=cfg.progress_bar):
            passages = [[chunks[pos[c]] for c in r["top"]["hybrid"][:cfg.read_k]] for r in group]
            # the free-form replies of the group, with and without the passages, decoded together
            replies = reader.free_all(model, [(r, ps) for r, ps in zip(group, passages)] + [(r, None) for r in group],
                                      cfg.max_new_tokens, stop_flag=stop)
            for j, (r, ps) in enumerate(zip(group, passages)):
                ex = reader.extractive(model, r, ps)
                fr, no = replies[j], replies[len(group) + j]
                r["passages"] = [p["id"] for p in ps]
                r[key] = {"rag": {**ex, "correct": reader.correct(r["answer"], ex["reply"])},
                          "rag_free": {**fr, "correct": reader.correct(r["answer"], fr["reply"])},
                          "none": {**no, "correct": reader.correct(r["answer"], no["reply"])}}
                r[key]["rag"]["answered"] = r["relevance"] >= thr
    finally:
        model.close()
    n = max(1, len(readers))
    out = {f"answer_{k}": round(sum(r[key][k]["correct"] for r in readers) / n, 4) for k in ("rag", "rag_free", "none")}
    out["answer_rag_with_refusal"] = round(sum(r[key]["rag"]["correct"] and r[key]["rag"]["answered"]
                                               for r in readers) / n, 4)
    return out


def _save_index(ws: Workspace, cfg: RAGConfig, retr, meta: dict, history: list[dict]) -> Artifact:
    parents = ["corpus/clean"] + ([] if cfg.encoder else [cfg.base])
    with ws.write(INDEX, kind="index", stage=STAGE, parents=parents,
                  params={"chunk_chars": cfg.chunk_chars, "encoder": cfg.encoder or "trained",
                          "encoder_layers": cfg.encoder_layers, "encoder_steps": cfg.encoder_steps}) as w:
        with open(w.path / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in retr.chunks:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        retr.sparse.save(w.path / "bm25")
        retr.encoder.save(w.path / "encoder", meta)
        np.save(w.path / "vectors.npy", retr.vectors.astype(np.float32))
        (w.path / "index.json").write_text(json.dumps({"alpha": retr.alpha, "depth": retr.depth, "fusion": "relative_score",
                                                       "chunks": len(retr.chunks)}, indent=1), encoding="utf-8")
        w.metrics.update(chunks=len(retr.chunks), dim=int(retr.vectors.shape[1]),
                         encoder_final_loss=history[-1]["loss"] if history else None)
    return ws.get(INDEX)


def _save_eval(ws, cfg, rows, metrics, curve, by_alpha, history, index) -> Artifact:
    with ws.write(EVAL, kind="report", stage=STAGE, parents=[index, cfg.reader],
                  params={"reader": cfg.reader, "read_k": cfg.read_k, "seed": cfg.seed}) as w:
        with open(w.path / "questions.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        (w.path / "curve.json").write_text(json.dumps(curve, indent=0), encoding="utf-8")
        (w.path / "calibration.json").write_text(json.dumps({"alpha_mrr": {str(a): v for a, v in by_alpha.items()},
                                                             "encoder_history": history}, indent=0), encoding="utf-8")
        first = ("hybrid_hit@5", "sparse_hit@5", "dense_hit@5", "answer_rag")  # the status table shows the first four
        for k in sorted(metrics, key=lambda k: k not in first):
            w.metrics[k] = metrics[k]
    return ws.get(EVAL)
