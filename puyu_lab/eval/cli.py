"""``puyu-lab eval …``: the built-in tasks over the chain's models → ``eval/chain``."""
from __future__ import annotations

import argparse


def _config(args: argparse.Namespace):
    from ..profiles import get_profile, overrides
    from .config import EvalConfig

    changes = overrides(args, "n", "ppl_docs", "models", "levels", "batch_size")
    if args.no_cache:
        changes["cache"] = False
    return EvalConfig.for_profile(get_profile(args.profile), **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args))
    rows = res.run.summary()
    models = res.run.models
    print(f"{'dataset':<16}{'metric':<16}" + "".join(f"{m:>14}" for m in models))
    for r in rows:
        vals = "".join(f"{r[m]:>14.4f}" if isinstance(r.get(m), float) else f"{str(r.get(m, '-')):>14}" for m in models)
        print(f"{r['dataset']:<16}{r['metric']:<16}{vals}")
    print(f"wrote {res.artifact.name}")
    return 0


def add_eval_commands(sub) -> None:
    p = sub.add_parser("eval", help="OpenCompass stage: perplexity, choice and generation tasks across models")
    ps = p.add_subparsers(dest="eval_cmd", required=True)
    r = ps.add_parser("run", help="evaluate model/base, model/sft (and its GGUF levels) → eval/chain")
    r.add_argument("--profile", default=None)
    r.add_argument("--n", type=int, default=None, help="documents per choice / generation task")
    r.add_argument("--ppl-docs", type=int, default=None, help="held-out news articles for perplexity")
    r.add_argument("--models", nargs="+", default=None, help="model artifacts (default model/base model/sft)")
    r.add_argument("--levels", nargs="*", default=None,
                   help="GGUF levels of model/sft to evaluate too (default Q4_K_M Q2_K; none with an empty list)")
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument("--no-cache", action="store_true", help="score every request again")
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
