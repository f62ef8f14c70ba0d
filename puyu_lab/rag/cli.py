"""``puyu-lab rag …``: index the corpus and evaluate retrieval, refusal and grounded answers
→ ``rag/index`` + ``rag/eval``; ask the saved index a question."""
from __future__ import annotations

import argparse

from ..stagecli import Verb, add_stage, opt, stage_config, wrote


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .config import RAGConfig
    from .entry import run

    cfg = stage_config(args, RAGConfig, "encoder", "encoder_steps", "n_questions", "read_k", "n_read", "chunk_chars")
    res = run(Workspace(args.home), cfg)
    print(f"{'retriever':<10}" + "".join(f"{c:>9}" for c in ("hit@1", "hit@3", "hit@5", "hit@10", "MRR")))
    for r in res.table():
        print(f"{r['mode']:<10}" + "".join(f"{r[c]:>9.1%}" for c in ("hit@1", "hit@3", "hit@5", "hit@10"))
              + f"{r['mrr']:>9.3f}")
    m = res.metrics
    print(f"refusal threshold {m['threshold']:.2f}: precision {m['refusal_precision']:.0%}, recall "
          f"{m['refusal_recall']:.0%} (test half: {m['test_answerable']} answerable, {m['test_unanswerable']} not)")
    print(f"answers containing the answer: with retrieval {m['answer_rag']:.0%} (free-form {m['answer_rag_free']:.0%}), "
          f"without {m['answer_none']:.0%}")
    return wrote(res.index, res.artifact)


def cmd_search(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import load_retriever

    retr = load_retriever(Workspace(args.home))
    for h in retr.search(args.query, args.k, args.mode):
        print(f"{h['score']:>8.3f}  {h['id']:<14} {h['text'][:100]}")
    return 0


def add_rag_commands(sub) -> None:
    add_stage(sub, "rag", "HuixiangDou stage: retrieval over your corpus, refusal threshold, grounded answers",
              Verb("run", cmd_run, "index corpus/clean and evaluate → rag/index, rag/eval", (
                  opt("--encoder", help="a local embedding-model directory (default: train one from model/base)"),
                  opt("--encoder-steps", type=int),
                  opt("--n-questions", type=int),
                  opt("--read-k", type=int, help="passages the reader sees"),
                  opt("--n-read", type=int),
                  opt("--chunk-chars", type=int))),
              Verb("search", cmd_search, "search the saved index (rag/index)", (
                  opt("query"),
                  opt("-k", type=int, default=5),
                  opt("--mode", default="hybrid", choices=("sparse", "dense", "hybrid"))), profile=False))
