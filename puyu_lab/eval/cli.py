"""``puyu-lab eval …``: the built-in tasks over the chain's models → ``eval/chain``."""
from __future__ import annotations

import argparse

from ..stagecli import Verb, add_stage, opt, stage_config, wrote


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .config import EvalConfig
    from .entry import run

    cfg = stage_config(args, EvalConfig, "n", "ppl_docs", "models", "levels", "batch_size", "cache")
    res = run(Workspace(args.home), cfg)
    models = res.run.models
    print(f"{'dataset':<16}{'metric':<16}" + "".join(f"{m:>14}" for m in models))
    for r in res.run.summary():
        vals = "".join(f"{r[m]:>14.4f}" if isinstance(r.get(m), float) else f"{str(r.get(m, '-')):>14}" for m in models)
        print(f"{r['dataset']:<16}{r['metric']:<16}{vals}")
    return wrote(res.artifact)


def add_eval_commands(sub) -> None:
    add_stage(sub, "eval", "OpenCompass stage: perplexity, choice and generation tasks across models",
              Verb("run", cmd_run, "evaluate model/base, model/sft (and its GGUF levels) → eval/chain", (
                  opt("--n", type=int, help="documents per choice / generation task"),
                  opt("--ppl-docs", type=int, help="held-out news articles for perplexity"),
                  opt("--models", nargs="+", help="model artifacts (default model/base model/sft)"),
                  opt("--levels", nargs="*",
                      help="GGUF levels of model/sft to evaluate too (default Q4_K_M Q2_K; none with an empty list)"),
                  opt("--batch-size", type=int),
                  opt("--no-cache", dest="cache", action="store_false", default=None,
                      help="score every request again"))))
