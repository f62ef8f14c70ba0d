"""``puyu-lab pretrain …``: train the tokenizer, train the model (also under ``accelerate launch``), or both (``run``)."""
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


def cmd_train(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .train import pretrain

    return _report(pretrain(Workspace(args.home), _config(args), resume=args.resume))


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    return _report(run(Workspace(args.home), _config(args)))


TRAINING = (opt("--config", help="a PretrainConfig as JSON"), *RUN_LENGTH)


def add_pretrain_commands(sub) -> None:
    add_stage(sub, "pretrain", "InternLM-Train stage: tokenizer and tiny model from corpus/clean",
              Verb("tokenizer", cmd_tokenizer, "train tokenizer/spm on corpus/clean", (opt("--vocab-size", type=int),)),
              Verb("train", cmd_train, "train model/base (works under accelerate launch / torchrun)",
                   (*TRAINING, opt("--resume", action="store_true", help="continue from the last checkpoint"))),
              Verb("run", cmd_run, "the whole stage: tokenizer/spm, then model/base", TRAINING))
