"""``puyu-lab pretrain …``: train the tokenizer, train the model (also under ``accelerate launch``), or both (``run``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def config_from_dict(d: dict):
    from .model import ModelPreset
    from .config import PretrainConfig

    d = dict(d)
    if isinstance(d.get("preset"), dict):
        d["preset"] = ModelPreset(**d["preset"])
    if "prompts" in d:
        d["prompts"] = tuple(d["prompts"])
    return PretrainConfig(**d)


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from ..profiles import get_profile
    from ..workspace import Workspace
    from .config import PretrainConfig
    from .train import train_tokenizer

    cfg = PretrainConfig.for_profile(get_profile(args.profile, check=False))
    art = train_tokenizer(Workspace(args.home), args.vocab_size or cfg.preset.vocab_size)
    print(f"wrote {art.name}: {art.metrics}")
    return 0


def _config(args: argparse.Namespace):
    from dataclasses import replace

    from ..profiles import get_profile
    from .config import PretrainConfig

    if args.config:
        cfg = config_from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
    else:
        cfg = PretrainConfig.for_profile(get_profile(args.profile))
    if args.max_steps:  # a fixed number of steps: no time budget
        cfg = replace(cfg, max_steps=args.max_steps, budget_s=None)
    if args.budget is not None:
        cfg = replace(cfg, budget_s=args.budget or None)
    return cfg


def _report(res) -> int:
    print(f"{'stopped' if res.stopped else 'finished'} at step {res.steps}/{res.max_steps}: {res.artifact.metrics}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .train import pretrain

    return _report(pretrain(Workspace(args.home), _config(args), resume=args.resume))


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    return _report(run(Workspace(args.home), _config(args)))


def add_pretrain_commands(sub) -> None:
    p = sub.add_parser("pretrain", help="InternLM-Train stage: tokenizer and tiny model from corpus/clean")
    ps = p.add_subparsers(dest="pretrain_cmd", required=True)
    t = ps.add_parser("tokenizer", help="train tokenizer/spm on corpus/clean")
    t.add_argument("--profile", default=None)
    t.add_argument("--vocab-size", type=int, default=None)
    t.add_argument("--home", default=None)
    t.set_defaults(fn=cmd_tokenizer)
    tr = ps.add_parser("train", help="train model/base (works under accelerate launch / torchrun)")
    tr.add_argument("--profile", default=None)
    tr.add_argument("--config", default=None, help="a PretrainConfig as JSON")
    tr.add_argument("--max-steps", type=int, default=None, help="exactly this many steps (no time budget)")
    tr.add_argument("--budget", type=float, default=None, help="seconds of training (0: the recipe's steps exactly)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    tr.add_argument("--home", default=None)
    tr.set_defaults(fn=cmd_train)
    r = ps.add_parser("run", help="the whole stage: tokenizer/spm, then model/base")
    r.add_argument("--profile", default=None)
    r.add_argument("--config", default=None, help="a PretrainConfig as JSON")
    r.add_argument("--max-steps", type=int, default=None, help="exactly this many steps (no time budget)")
    r.add_argument("--budget", type=float, default=None, help="seconds of training (0: the recipe's steps exactly)")
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
