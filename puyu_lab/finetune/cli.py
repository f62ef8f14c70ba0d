"""``puyu-lab finetune …``: build SFT data, check a custom file, train (full / LoRA / QLoRA) and merge."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path


def _config(args):
    from ..profiles import get_profile
    from .config import SFTConfig

    if getattr(args, "config", None):
        cfg = SFTConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        if args.profile == "gpu":  # repeat a CPU run on a real model: the gpu profile's base and sizes
            gpu = SFTConfig.for_profile(get_profile("gpu"))
            cfg = replace(cfg, method="qlora", base=gpu.base, learning_rate=gpu.learning_rate,
                          max_length=gpu.max_length, batch_size=gpu.batch_size, grad_accum=gpu.grad_accum)
    else:
        cfg = SFTConfig.for_profile(get_profile(args.profile, check=args.cmd_name == "train"))
    data = cfg.data
    if getattr(args, "name", None):
        data = replace(data, assistant_name=args.name)
    if getattr(args, "owner", None):
        data = replace(data, owner=args.owner)
    cfg = replace(cfg, data=data)
    if getattr(args, "method", None):
        cfg = replace(cfg, method=args.method)
    if getattr(args, "custom", None):
        cfg = replace(cfg, custom_data=args.custom)
    if getattr(args, "max_steps", None):  # a fixed number of steps: no time budget
        cfg = replace(cfg, max_steps=args.max_steps, budget_s=None)
    if getattr(args, "budget", None) is not None:
        cfg = replace(cfg, budget_s=args.budget or None)
    return cfg


def cmd_data(args) -> int:
    from ..workspace import Workspace
    from .train import prepare_data

    args.cmd_name = "data"
    art = prepare_data(Workspace(args.home), _config(args))
    print(f"wrote {art.name}: {art.metrics}")
    return 0


def cmd_check(args) -> int:
    """Like ``xtuner check-custom-dataset``: every bad record with its line and reason."""
    from .data import load_custom

    good, bad = load_custom(args.file)
    for b in bad:
        print(f"{args.file}:{b}")
    print(f"{len(good)} valid record(s), {len(bad)} bad")
    return 1 if bad else 0


def _report(res) -> int:
    m = res.metrics
    print(f"{'stopped' if res.stopped else 'finished'} at step {res.steps}/{res.max_steps} ({m['method']}): "
          f"held-out self-cognition {m['selfcog_heldout_acc']:.0%}, eval loss {m['eval_loss']:.3f}, "
          f"training state {m['memory']['total_mb']} MB")
    return 0


def cmd_train(args) -> int:
    from ..workspace import Workspace
    from .train import finetune

    args.cmd_name = "train"
    return _report(finetune(Workspace(args.home), _config(args), resume=args.resume))


def cmd_run(args) -> int:
    from ..workspace import Workspace
    from .entry import run

    args.cmd_name = "train"
    return _report(run(Workspace(args.home), _config(args)))


def add_finetune_commands(sub) -> None:
    p = sub.add_parser("finetune", help="XTuner stage: SFT data, full / LoRA / QLoRA, merge → model/sft")
    ps = p.add_subparsers(dest="finetune_cmd", required=True)
    for name, fn, hlp in (("data", cmd_data, "build sft/data"), ("train", cmd_train, "train and merge model/sft"),
                          ("run", cmd_run, "the whole stage: sft/data, then train and merge model/sft")):
        c = ps.add_parser(name, help=hlp)
        c.add_argument("--profile", default=None)
        c.add_argument("--config", default=None, help="an SFTConfig as JSON (e.g. a run's sft_config.json)")
        c.add_argument("--name", default=None, help="the assistant's name (self-cognition data)")
        c.add_argument("--owner", default=None, help="who made it")
        c.add_argument("--custom", default=None, help="custom data: OpenAI messages .jsonl or Alpaca .json")
        c.add_argument("--home", default=None)
        c.set_defaults(fn=fn)
        if name in ("train", "run"):
            c.add_argument("--method", choices=("full", "lora", "qlora"), default=None)
            c.add_argument("--max-steps", type=int, default=None, help="exactly this many steps (no time budget)")
            c.add_argument("--budget", type=float, default=None, help="seconds of training (0: the recipe's steps)")
        if name == "train":
            c.add_argument("--resume", action="store_true")
    ck = ps.add_parser("check", help="validate a custom data file, like `xtuner check-custom-dataset`")
    ck.add_argument("file")
    ck.set_defaults(fn=cmd_check)
