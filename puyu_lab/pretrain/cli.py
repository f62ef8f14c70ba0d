"""``puyu-lab pretrain …``: train the tokenizer, train the model, or both (``run``); ``--nproc N`` trains on N
processes (torchrun, the Trainer's DDP: :mod:`.launch`)."""
from __future__ import annotations

import argparse

from ..stagecli import RUN_LENGTH, Verb, add_stage, ended, opt, stage_config, wrote


def config_from_dict(d: dict):
    from .model import ModelPreset
    from .config import PretrainConfig

    d = dict(d)
    if isinstance(d.get("preset"), dict):
        d["preset"] = ModelPreset(**d["preset"])
    if "prompts" in d:
        d["prompts"] = tuple(d["prompts"])
    return PretrainConfig(**d)


def _config(args: argparse.Namespace, *, check: bool = True):
    from .config import PretrainConfig

    return stage_config(args, PretrainConfig, check=check, load=config_from_dict)


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .train import train_tokenizer

    vocab_size = args.vocab_size or _config(args, check=False).preset.vocab_size
    return wrote(train_tokenizer(Workspace(args.home), vocab_size), metrics=True)


def _report(res) -> int:
    print(f"{ended(res)}: {res.artifact.metrics}")
    return 0


def _train(ws, cfg, args: argparse.Namespace, resume: bool = False) -> int:
    """The model on ``--nproc`` processes (torchrun), or in this process; under torchrun only rank 0 reports."""
    from .launch import launch, world

    nproc = getattr(args, "nproc", None) or 1
    if nproc != 1:
        launch(ws, cfg, nproc, resume=resume)  # rank 0 of the processes it starts reports
        return 0
    from .train import pretrain

    res = pretrain(ws, cfg, resume=resume)
    return _report(res) if world()[0] == 0 else 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..workspace import Workspace

    return _train(Workspace(args.home), _config(args), args, resume=args.resume)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .train import train_tokenizer

    ws, cfg = Workspace(args.home), _config(args)
    if (getattr(args, "nproc", None) or 1) == 1:
        from .entry import run

        return _report(run(ws, cfg))
    from .launch import check_parallel

    check_parallel(cfg, args.nproc)  # a config the processes cannot share fails before the tokenizer's minutes
    train_tokenizer(ws, cfg.preset.vocab_size)
    return _train(ws, cfg, args)


NPROC = opt("--nproc", type=int, help="train on N processes: torchrun starts them, the HF Trainer runs them as DDP "
                                      "(gloo on a CPU, NCCL on GPUs); the batch is the global batch, split across them")
TRAINING = (opt("--config", help="a PretrainConfig as JSON"), *RUN_LENGTH, NPROC)


def add_pretrain_commands(sub) -> None:
    add_stage(sub, "pretrain", "InternLM-Train stage: tokenizer and tiny model from corpus/clean",
              Verb("tokenizer", cmd_tokenizer, "train tokenizer/spm on corpus/clean", (opt("--vocab-size", type=int),)),
              Verb("train", cmd_train, "train model/base (--nproc N: on N processes, torchrun + DDP)",
                   (*TRAINING, opt("--resume", action="store_true", help="continue from the last checkpoint"))),
              Verb("run", cmd_run, "the whole stage: tokenizer/spm, then model/base", TRAINING))
