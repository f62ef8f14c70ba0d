"""``puyu-lab rag …``: index the corpus and evaluate retrieval, refusal and grounded answers
→ ``rag/index`` + ``rag/eval``; ask the saved index a question."""
from __future__ import annotations

import argparse


def _config(args: argparse.Namespace):
    from ..profiles import get_profile, overrides
    from .config import RAGConfig

    changes = overrides(args, "encoder", "encoder_steps", "n_questions", "read_k", "n_read", "chunk_chars")
    return RAGConfig.for_profile(get_profile(args.profile), **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args))
    print(f"{'retriever':<10}" + "".join(f"{c:>9}" for c in ("hit@1", "hit@3", "hit@5", "hit@10", "MRR")))
    for r in res.table():
        print(f"{r['mode']:<10}" + "".join(f"{r[c]:>9.1%}" for c in ("hit@1", "hit@3", "hit@5", "hit@10"))
              + f"{r['mrr']:>9.3f}")
    m = res.metrics
    print(f"refusal threshold {m['threshold']:.2f}: precision {m['refusal_precision']:.0%}, recall "
          f"{m['refusal_recall']:.0%} (test half: {m['test_answerable']} answerable, {m['test_unanswerable']} not)")
    print(f"answers containing the answer: with retrieval {m['answer_rag']:.0%} (free-form {m['answer_rag_free']:.0%}), "
          f"without {m['answer_none']:.0%}")
    print(f"wrote {res.index.name}, {res.artifact.name}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import load_retriever

    retr = load_retriever(Workspace(args.home))
    for h in retr.search(args.query, args.k, args.mode):
        print(f"{h['score']:>8.3f}  {h['id']:<14} {h['text'][:100]}")
    return 0


def add_rag_commands(sub) -> None:
    p = sub.add_parser("rag", help="HuixiangDou stage: retrieval over your corpus, refusal threshold, grounded answers")
    ps = p.add_subparsers(dest="rag_cmd", required=True)
    r = ps.add_parser("run", help="index corpus/clean and evaluate → rag/index, rag/eval")
    r.add_argument("--profile", default=None)
    r.add_argument("--encoder", default=None, help="a local embedding-model directory (default: train one from model/base)")
    r.add_argument("--encoder-steps", type=int, default=None)
    r.add_argument("--n-questions", type=int, default=None)
    r.add_argument("--read-k", type=int, default=None, help="passages the reader sees")
    r.add_argument("--n-read", type=int, default=None)
    r.add_argument("--chunk-chars", type=int, default=None)
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
    s = ps.add_parser("search", help="search the saved index (rag/index)")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--mode", default="hybrid", choices=("sparse", "dense", "hybrid"))
    s.add_argument("--home", default=None)
    s.set_defaults(fn=cmd_search)
